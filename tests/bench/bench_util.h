/*
 * bench_util.h — what the C benchmarks share: a seeded splitmix64 stream,
 * standard normals from it, a monotonic clock, and a comparator for the
 * medians.  Header-only (static functions), since each bench_*.c is built
 * into its own program.  Each benchmark seeds `bench_rng` itself.
 */
#ifndef GW_TESTS_BENCH_UTIL_H
#define GW_TESTS_BENCH_UTIL_H

#include <math.h>
#include <stdint.h>
#include <time.h>

static uint64_t bench_rng;

static inline uint64_t next_u64(void)
{
	uint64_t z = (bench_rng += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* Box-Muller over two 53-bit uniforms; u is never 0. */
static inline double normal(void)
{
	double u = ((double)(next_u64() >> 11) + 0.5) / 9007199254740992.0;
	double v = (double)(next_u64() >> 11) / 9007199254740992.0;

	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static inline double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

#endif
