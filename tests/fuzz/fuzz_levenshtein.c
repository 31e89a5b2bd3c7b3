/*
 * fuzz_levenshtein.c — libFuzzer target: the bit-parallel distance (scalar
 * and the vector-lane pair driver) against a plain dynamic program on two
 * fuzzer-chosen strings.  The first two bytes choose where the rest is split
 * in two; inputs are capped at 4,096 bytes so the DP stays fast.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/levenshtein.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t dp_distance(const uint8_t *a, size_t m, const uint8_t *b, size_t n)
{
	static size_t prev[4097], cur[4097];
	size_t i, j;

	for (j = 0; j <= n; j++)
		prev[j] = j;
	for (i = 1; i <= m; i++) {
		cur[0] = i;
		for (j = 1; j <= n; j++) {
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *a, *b, *s[2];
	size_t m, n, len[2], want;
	struct lev_pair_opts o = { .threads = 1 };
	struct lev_mean mean;
	int kernel;

	if (size < 2 || size > 4096 + 2)
		return 0;
	m = ((size_t)data[0] << 8 | data[1]) % (size - 1);
	a = data + 2;
	b = a + m;
	n = size - 2 - m;
	want = dp_distance(a, m, b, n);
	if (lev_distance_bytes(a, m, b, n) != want || lev_distance_bytes(b, n, a, m) != want)
		abort();
	s[0] = a, s[1] = b, len[0] = m, len[1] = n;
	for (kernel = LEV_KERNEL_AUTO; kernel <= LEV_KERNEL_LANES8; kernel++) {
		o.kernel = kernel;
		if (lev_mean_pairs(s, len, 2, &o, &mean, NULL) != 0 || mean.total != want ||
		    mean.n_pairs != 1)
			abort();
	}
	return 0;
}
