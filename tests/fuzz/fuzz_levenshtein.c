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
#include "../lev_dp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t dp_distance(const uint8_t *a, size_t m, const uint8_t *b, size_t n)
{
	static size_t prev[4097], cur[4097];

	return lev_dp(a, m, b, n, prev, cur);
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
