/* test_amx.c — the AMX product (amx.h): the three BF16 parts of a float
 * add up to it exactly; the packed weight holds each pair where the tiles
 * read it; and C = X W^T over odd shapes and row ranges is within sgemm's
 * own error bound of a double-precision product (|error| <= K * 2^-24 *
 * sum |x w| per element, the standard bound for an fp32 dot product),
 * with infinities and NaN carried through.  On a CPU without AMX (or
 * under valgrind) the tests note that and pass: the forward pass then
 * never calls these functions. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "engine/amx.h"

static uint64_t rng = 88172645463325252ull;

static double unif(void) /* [-1, 1) */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static float f32_of_bf16(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

static uint16_t bf16_trunc(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	return (uint16_t)(u >> 16);
}

static int skip(void)
{
	if (amx_usable())
		return 0;
	tap_note("no AMX-BF16 here (or refused, or GROKWATCH_AMX=0): skipped");
	return 1;
}

static void test_split_exact(void)
{
	struct amx_a a = { 0 };
	int M = 37, K = 45;
	float *A = malloc(sizeof(float) * (size_t)M * (size_t)K);
	size_t plane;

	if (skip())
		goto out;
	for (int i = 0; i < M * K; i++)
		A[i] = (float)(unif() * pow(2.0, (double)(i % 40 - 20)));
	A[3] = 0.0f;
	A[4] = -0.0f;
	amx_a_split(&a, A, M, K, K);
	CHECK_INT_EQ(a.Mp, 64);
	CHECK_INT_EQ(a.Kp, 64);
	plane = (size_t)a.Mp * (size_t)a.Kp;
	for (int i = 0; i < a.Mp; i++)
		for (int k = 0; k < a.Kp; k++) {
			size_t at = (size_t)i * (size_t)a.Kp + (size_t)k;
			double s = (double)f32_of_bf16(a.p[at]) + (double)f32_of_bf16(a.p[plane + at]) +
				   (double)f32_of_bf16(a.p[2 * plane + at]);

			if (i < M && k < K) {
				if (s != (double)A[i * K + k])
					tap_fail(__FILE__, __LINE__, "row %d col %d: parts add to %.9g, "
						 "not %.9g", i, k, s, (double)A[i * K + k]);
			} else {
				CHECK(a.p[at] == 0 && a.p[plane + at] == 0 && a.p[2 * plane + at] == 0);
			}
		}
out:
	amx_a_free(&a);
	free(A);
}

static void test_pack_layout(void)
{
	static const int shapes[][2] = { { 48, 64 }, { 37, 45 }, { 16, 32 }, { 1, 1 }, { 64, 96 } };
	struct amx_w w = { 0 };

	if (skip())
		return;
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		int N = shapes[s][0], K = shapes[s][1], nkb;
		uint16_t *W = malloc(sizeof(uint16_t) * (size_t)N * (size_t)K);

		for (int i = 0; i < N * K; i++)
			W[i] = (uint16_t)(i * 2654435761u >> 16);
		amx_w_pack(&w, W, N, K);
		nkb = w.Kp / 32;
		for (int nb = 0; nb < w.Np / 16; nb++)
			for (int kb = 0; kb < nkb; kb++)
				for (int i = 0; i < 16; i++)
					for (int n = 0; n < 16; n++) {
						int nn = nb * 16 + n, k = kb * 32 + 2 * i;
						uint32_t lo = nn < N && k < K ? W[nn * K + k] : 0;
						uint32_t hi = nn < N && k + 1 < K ? W[nn * K + k + 1] : 0;
						uint32_t got = w.p[((size_t)nb * nkb + kb) * 256 + 16 * i + n];

						if (got != (lo | hi << 16))
							tap_fail(__FILE__, __LINE__, "N %d K %d: tile (%d, %d) "
								 "word (%d, %d) is %08x, not %08x", N, K, nb,
								 kb, i, n, got, lo | hi << 16);
					}
		free(W);
	}
	amx_w_free(&w);
}

/* C rows [r0, r1) of X W^T against double; returns the worst error over
 * the bound (<= 1 passes). */
static double worst(int M, int N, int K, int r0, int r1, struct amx_a *a, struct amx_w *w)
{
	float *X = malloc(sizeof(float) * (size_t)M * (size_t)K), *C;
	uint16_t *W = malloc(sizeof(uint16_t) * (size_t)N * (size_t)K);
	int64_t ldc = N + 3;
	double q = 0.0;

	C = malloc(sizeof(float) * (size_t)(r1 - r0 + 1) * (size_t)ldc);
	for (int i = 0; i < M * K; i++)
		X[i] = (float)(unif() * 3.0);
	for (int i = 0; i < N * K; i++)
		W[i] = bf16_trunc((float)(unif() * 0.2));
	for (int i = 0; i < (r1 - r0 + 1) * ldc; i++)
		C[i] = -7.0f; /* must be overwritten inside the range only */
	amx_a_split(a, X, M, K, K);
	amx_w_pack(w, W, N, K);
	amx_gemm(C, ldc, a, r0, r1, w);
	for (int i = r0; i < r1; i++) {
		for (int j = 0; j < N; j++) {
			double ref = 0.0, mag = 0.0, e;

			for (int k = 0; k < K; k++) {
				double p = (double)X[i * K + k] * (double)f32_of_bf16(W[j * K + k]);

				ref += p;
				mag += fabs(p);
			}
			e = fabs((double)C[(int64_t)(i - r0) * ldc + j] - ref) /
			    ((double)K * ldexp(1.0, -24) * mag + 1e-30);
			if (e > q)
				q = e;
		}
		for (int j = N; j < ldc; j++)
			CHECK(C[(int64_t)(i - r0) * ldc + j] == -7.0f);
	}
	free(X);
	free(W);
	free(C);
	return q;
}

static void test_gemm_bound(void)
{
	static const int shapes[][5] = {
		/* M, N, K, r0, r1 */
		{ 1, 1, 1, 0, 1 },      { 5, 7, 3, 0, 5 },      { 33, 17, 40, 0, 33 },
		{ 31, 48, 64, 0, 31 },  { 96, 50, 70, 32, 93 }, { 200, 300, 257, 64, 200 },
		{ 256, 512, 512, 0, 256 }, { 300, 64, 64, 128, 300 },
	};
	struct amx_a a = { 0 };
	struct amx_w w = { 0 };

	if (skip())
		return;
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		const int *d = shapes[s];
		double q = worst(d[0], d[1], d[2], d[3], d[4], &a, &w);

		tap_note("%d x %d x %d rows [%d, %d): worst error %.3g of the bound", d[0], d[1], d[2],
			 d[3], d[4], q);
		if (q > 1.0)
			tap_fail(__FILE__, __LINE__, "%d x %d x %d: error %.3g times sgemm's bound",
				 d[0], d[1], d[2], q);
	}
	amx_a_free(&a);
	amx_w_free(&w);
}

static void test_nonfinite(void)
{
	struct amx_a a = { 0 };
	struct amx_w w = { 0 };
	float X[2 * 32] = { 0 }, C[2 * 16];
	uint16_t W[16 * 32];

	if (skip())
		return;
	for (int i = 0; i < 16 * 32; i++)
		W[i] = bf16_trunc(1.0f);
	X[0] = __builtin_inff();
	X[32] = __builtin_nanf("");
	amx_a_split(&a, X, 2, 32, 32);
	amx_w_pack(&w, W, 16, 32);
	amx_gemm(C, 16, &a, 0, 2, &w);
	for (int j = 0; j < 16; j++) {
		CHECK(isinf(C[j]) && C[j] > 0);
		CHECK(isnan(C[16 + j]));
	}
	amx_a_free(&a);
	amx_w_free(&w);
}

static void test_gather_rows(void)
{
	struct amx_a a = { 0 }, b = { 0 };
	float X[10 * 40];
	float G[3 * 40];
	const int64_t rows[3] = { 7, 2, 9 };

	if (skip())
		return;
	for (int i = 0; i < 400; i++)
		X[i] = (float)unif();
	for (int r = 0; r < 3; r++)
		memcpy(G + r * 40, X + rows[r] * 40, 40 * sizeof(float));
	amx_a_split_rows(&a, X, rows, 3, 40, 40);
	amx_a_split(&b, G, 3, 40, 40);
	CHECK(a.Mp == b.Mp && a.Kp == b.Kp);
	CHECK(memcmp(a.p, b.p, 3 * (size_t)a.Mp * (size_t)a.Kp * sizeof(uint16_t)) == 0);
	amx_a_free(&a);
	amx_a_free(&b);
}

static const struct tap_test tests[] = {
	{ "split_exact", test_split_exact },
	{ "pack_layout", test_pack_layout },
	{ "gemm_within_sgemm_bound", test_gemm_bound },
	{ "nonfinite", test_nonfinite },
	{ "gather_rows", test_gather_rows },
	{ NULL, NULL },
};
TAP_MAIN(tests)
