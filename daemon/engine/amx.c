/*
 * amx.c — see amx.h.  The product works on blocks of 32 x 32 of C, four
 * accumulator tiles (tmm0-3), with two tiles of W (tmm4-5) and two of one
 * BF16 plane of X (tmm6-7): per 32 of K, 2 loads of W, then per plane 2
 * loads of X and 4 multiplies.  X is taken 128 rows at a time (three
 * planes of them stay in L2), and over those rows each pair of W's
 * column tiles (a panel of 2 x K/32 tiles) is used by four blocks.
 */
#include "amx.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define AMX_ATTR __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512bf16")))
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define MC 128 /* rows of X a pass over W */

static int rup(int x, int m)
{
	return (x + m - 1) / m * m;
}

/* A buffer of at least n bytes aligned to 64, reused when big enough. */
static void *grow(void **base, size_t *cap, size_t n)
{
	if (n + 64 > *cap) {
		free(*base);
		*cap = n + 64;
		*base = gw_malloc(*cap);
	}
	return (void *)(((uintptr_t)*base + 63) & ~(uintptr_t)63);
}

bool amx_usable(void)
{
	static atomic_int ok = -1; /* unknown yet; threads may race to decide */
	int v = atomic_load_explicit(&ok, memory_order_acquire);
	unsigned a, b, c, d;
	const char *env;

	if (v >= 0)
		return v;
	v = 0;
	env = getenv("GROKWATCH_AMX");
	if ((!env || strcmp(env, "0") != 0) && __get_cpuid_count(7, 0, &a, &b, &c, &d) &&
	    (d & (1u << 22)) && (d & (1u << 24)) && /* AMX-BF16, AMX-TILE */
	    (b & (1u << 16)) && (b & (1u << 30)) && /* AVX512F, AVX512BW */
	    __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5)) && /* AVX512-BF16 */
	    syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0)
		v = 1;
	atomic_store_explicit(&ok, v, memory_order_release);
	return v;
}

/* bf16 of 16 floats, round to nearest even, and back to fp32. */
AMX_ATTR static inline __m256i bf16_of(__m512 x, __m512 *back)
{
	__m256i h = (__m256i)_mm512_cvtneps_pbh(x);

	*back = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
	return h;
}

/* One row: K floats into the three planes' rows (Kp each, zero past K). */
AMX_ATTR static void split_row(const float *x, int K, int Kp, uint16_t *o0, uint16_t *o1,
			       uint16_t *o2)
{
	for (int k = 0; k < Kp; k += 16) {
		__mmask16 m = K - k >= 16 ? (__mmask16)0xffff
					  : K > k ? (__mmask16)((1u << (K - k)) - 1) : 0;
		__m512 v = _mm512_maskz_loadu_ps(m, x + k), f0, f1, f2, r1, r2;
		__m256i h0 = bf16_of(v, &f0), h1, h2;
		/* An infinite part leaves no remainder (inf - inf is NaN). */
		__mmask16 fin = _mm512_cmp_ps_mask(_mm512_abs_ps(f0), _mm512_set1_ps(__builtin_inff()),
						   _CMP_NEQ_UQ);

		r1 = _mm512_maskz_sub_ps(fin, v, f0);
		h1 = bf16_of(r1, &f1);
		r2 = _mm512_sub_ps(r1, f1);
		h2 = bf16_of(r2, &f2);
		_mm256_storeu_si256((__m256i *)(o0 + k), h0);
		_mm256_storeu_si256((__m256i *)(o1 + k), h1);
		_mm256_storeu_si256((__m256i *)(o2 + k), h2);
	}
}

static uint16_t *planes(struct amx_a *a, int M, int K)
{
	a->M = M;
	a->K = K;
	a->Mp = rup(M > 0 ? M : 1, 32);
	a->Kp = rup(K > 0 ? K : 1, 32);
	a->p = grow(&a->base, &a->cap, 3 * (size_t)a->Mp * (size_t)a->Kp * sizeof(uint16_t));
	return a->p;
}

static void zero_tail(struct amx_a *a)
{
	size_t plane = (size_t)a->Mp * (size_t)a->Kp, rows = (size_t)(a->Mp - a->M);

	for (int s = 0; s < 3; s++)
		memset(a->p + s * plane + (size_t)a->M * (size_t)a->Kp, 0,
		       rows * (size_t)a->Kp * sizeof(uint16_t));
}

void amx_a_reserve(struct amx_a *a, int M, int K)
{
	planes(a, M, K);
	zero_tail(a);
}

AMX_ATTR void amx_a_split_part(struct amx_a *a, const float *A, int64_t lda, int i0, int i1)
{
	size_t plane = (size_t)a->Mp * (size_t)a->Kp;

	GW_BUG_ON(i0 < 0 || i1 > a->M);
	for (int i = i0; i < i1; i++) {
		uint16_t *o = a->p + (size_t)i * (size_t)a->Kp;

		split_row(A + (int64_t)i * lda, a->K, a->Kp, o, o + plane, o + 2 * plane);
	}
}

void amx_a_split(struct amx_a *a, const float *A, int M, int K, int64_t lda)
{
	amx_a_reserve(a, M, K);
	amx_a_split_part(a, A, lda, 0, M);
}

AMX_ATTR void amx_a_split_rows(struct amx_a *a, const float *A, const int64_t *rows, int M,
			       int K, int64_t lda)
{
	uint16_t *p = planes(a, M, K);
	size_t plane = (size_t)a->Mp * (size_t)a->Kp;

	for (int i = 0; i < M; i++) {
		uint16_t *o = p + (size_t)i * (size_t)a->Kp;

		split_row(A + rows[i] * lda, K, a->Kp, o, o + plane, o + 2 * plane);
	}
	zero_tail(a);
}

void amx_a_free(struct amx_a *a)
{
	free(a->base);
	memset(a, 0, sizeof(*a));
}

/* 16 x 16 32-bit transpose of r[0..15] in place. */
AMX_ATTR static void transpose16(__m512i r[16])
{
	__m512i t[16];

	for (int i = 0; i < 8; i++) {
		t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
		t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
	}
	for (int i = 0; i < 4; i++) {
		r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
		r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
		r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
		r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
	}
	for (int h = 0; h < 2; h++)
		for (int i = 0; i < 4; i++) {
			t[8 * h + i] = _mm512_shuffle_i32x4(r[8 * h + i], r[8 * h + 4 + i], 0x88);
			t[8 * h + 4 + i] = _mm512_shuffle_i32x4(r[8 * h + i], r[8 * h + 4 + i], 0xdd);
		}
	for (int i = 0; i < 8; i++) {
		r[i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0x88);
		r[8 + i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0xdd);
	}
}

/*
 * Tile (nb, kb): row r holds, for columns n = 16 nb .. 16 nb + 15 of C,
 * the pair W[n][32 kb + 2r], W[n][32 kb + 2r + 1] as one 32-bit word:
 * the 16 x 16 words of W's rows n, columns 32 kb .., transposed.
 */
AMX_ATTR void amx_w_pack(struct amx_w *w, const uint16_t *W, int N, int K)
{
	int nkb;

	w->N = N;
	w->K = K;
	w->Np = rup(N > 0 ? N : 1, 32);
	w->Kp = rup(K > 0 ? K : 1, 32);
	nkb = w->Kp / 32;
	w->p = grow(&w->base, &w->cap, (size_t)w->Np * (size_t)w->Kp * sizeof(uint16_t));
	for (int nb = 0; nb < w->Np / 16; nb++)
		for (int kb = 0; kb < nkb; kb++) {
			uint32_t *t = w->p + ((size_t)nb * (size_t)nkb + (size_t)kb) * 256;
			int n0 = nb * 16, k0 = kb * 32;

			if (n0 + 16 <= N && k0 + 32 <= K) {
				__m512i r[16];

				for (int n = 0; n < 16; n++)
					r[n] = _mm512_loadu_si512(W + (size_t)(n0 + n) * (size_t)K +
								  k0);
				transpose16(r);
				for (int i = 0; i < 16; i++)
					_mm512_storeu_si512(t + 16 * i, r[i]);
				continue;
			}
			for (int i = 0; i < 16; i++)
				for (int n = 0; n < 16; n++) {
					int nn = n0 + n, k = k0 + 2 * i;
					uint32_t lo = 0, hi = 0;

					if (nn < N && k < K)
						lo = W[(size_t)nn * (size_t)K + k];
					if (nn < N && k + 1 < K)
						hi = W[(size_t)nn * (size_t)K + k + 1];
					t[16 * i + n] = lo | hi << 16;
				}
		}
}

void amx_w_free(struct amx_w *w)
{
	free(w->base);
	memset(w, 0, sizeof(*w));
}

struct tilecfg {
	uint8_t palette, start_row;
	uint8_t reserved[14];
	uint16_t colsb[16];
	uint8_t rows[16];
};

AMX_ATTR void amx_gemm(float *C, int64_t ldc, const struct amx_a *a, int r0, int r1,
		       const struct amx_w *w)
{
	struct tilecfg cfg;
	size_t plane = (size_t)a->Mp * (size_t)a->Kp, kp = (size_t)a->Kp;
	int nkb = w->Kp / 32, N = w->N;
	float tmp[32 * 32];

	GW_BUG_ON(a->K != w->K || r0 % 32 != 0 || r0 < 0 || r1 > a->M || r0 > r1);
	memset(&cfg, 0, sizeof(cfg));
	cfg.palette = 1;
	for (int i = 0; i < 8; i++) {
		cfg.rows[i] = 16;
		cfg.colsb[i] = 64;
	}
	_tile_loadconfig(&cfg);
	for (int mc = r0; mc < r1; mc += MC) {
		int mend = mc + MC < r1 ? mc + MC : r1;

		for (int n0 = 0; n0 < w->Np; n0 += 32) {
			const uint32_t *b0 = w->p + (size_t)(n0 / 16) * (size_t)nkb * 256;
			const uint32_t *b1 = b0 + (size_t)nkb * 256;

			for (int m0 = mc; m0 < mend; m0 += 32) {
				const uint16_t *x = a->p + (size_t)m0 * kp;
				float *c = C + (int64_t)(m0 - r0) * ldc + n0;

				_tile_zero(0);
				_tile_zero(1);
				_tile_zero(2);
				_tile_zero(3);
				for (int kb = 0; kb < nkb; kb++) {
					_tile_loadd(4, b0 + kb * 256, 64);
					_tile_loadd(5, b1 + kb * 256, 64);
					for (int s = 0; s < 3; s++) {
						const uint16_t *xs = x + s * plane + kb * 32;

						_tile_loadd(6, xs, (long)(kp * 2));
						_tile_loadd(7, xs + 16 * kp, (long)(kp * 2));
						_tile_dpbf16ps(0, 6, 4);
						_tile_dpbf16ps(1, 6, 5);
						_tile_dpbf16ps(2, 7, 4);
						_tile_dpbf16ps(3, 7, 5);
					}
				}
				if (m0 + 32 <= r1 && n0 + 32 <= N) {
					_tile_stored(0, c, ldc * 4);
					_tile_stored(1, c + 16, ldc * 4);
					_tile_stored(2, c + 16 * ldc, ldc * 4);
					_tile_stored(3, c + 16 * ldc + 16, ldc * 4);
					continue;
				}
				_tile_stored(0, tmp, 128);
				_tile_stored(1, tmp + 16, 128);
				_tile_stored(2, tmp + 512, 128);
				_tile_stored(3, tmp + 528, 128);
				for (int i = 0; i < 32 && m0 + i < r1; i++)
					for (int j = 0; j < 32 && n0 + j < N; j++)
						c[(int64_t)i * ldc + j] = tmp[i * 32 + j];
			}
		}
	}
	_tile_release();
}

#else /* no AMX outside x86-64 */

bool amx_usable(void)
{
	return false;
}

void amx_a_split(struct amx_a *a, const float *A, int M, int K, int64_t lda)
{
	(void)a, (void)A, (void)M, (void)K, (void)lda;
	GW_BUG_ON(1);
}

void amx_a_split_rows(struct amx_a *a, const float *A, const int64_t *rows, int M, int K,
		      int64_t lda)
{
	(void)a, (void)A, (void)rows, (void)M, (void)K, (void)lda;
	GW_BUG_ON(1);
}

void amx_a_reserve(struct amx_a *a, int M, int K)
{
	(void)a, (void)M, (void)K;
	GW_BUG_ON(1);
}

void amx_a_split_part(struct amx_a *a, const float *A, int64_t lda, int i0, int i1)
{
	(void)a, (void)A, (void)lda, (void)i0, (void)i1;
	GW_BUG_ON(1);
}

void amx_a_free(struct amx_a *a)
{
	free(a->base);
	memset(a, 0, sizeof(*a));
}

void amx_w_pack(struct amx_w *w, const uint16_t *W, int N, int K)
{
	(void)w, (void)W, (void)N, (void)K;
	GW_BUG_ON(1);
}

void amx_w_free(struct amx_w *w)
{
	free(w->base);
	memset(w, 0, sizeof(*w));
}

void amx_gemm(float *C, int64_t ldc, const struct amx_a *a, int r0, int r1,
	      const struct amx_w *w)
{
	(void)C, (void)ldc, (void)a, (void)r0, (void)r1, (void)w;
	GW_BUG_ON(1);
}
#endif
