/*
 * lev_dp.h — the textbook O(mn) edit distance, two rows, that the tests
 * and the fuzz target check the bit-parallel kernels against.  It shares
 * nothing with daemon/engine/levenshtein.c on purpose.  The caller gives
 * two rows of n + 1 size_t each, so the fuzz target can use static ones.
 */
#ifndef GW_TESTS_LEV_DP_H
#define GW_TESTS_LEV_DP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline size_t lev_dp(const void *a_, size_t m, const void *b_, size_t n, size_t *prev,
			    size_t *cur)
{
	const uint8_t *a = a_, *b = b_;

	for (size_t j = 0; j <= n; j++)
		prev[j] = j;
	for (size_t i = 1; i <= m; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= n; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;

			cur[j] = sub < del ? sub : del;
			if (ins < cur[j])
				cur[j] = ins;
		}
		memcpy(prev, cur, (n + 1) * sizeof(size_t));
	}
	return prev[n];
}

#endif
