/*
 * vec.c — see vec.h.  The kernels are written once as macros over GCC's
 * vector types (a vector op a scalar broadcasts the scalar) and
 * instantiated at sixteen lanes under target("avx512f") and at four; the
 * public functions pick one.
 */
#include "vec.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VEC_AVX512 1
#include <immintrin.h>
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
#endif

/* Cephes' expf on a vector x of type VF (int lanes VI); z is VF zero. */
#define VEXP(VF, VI, x, z) ({                                                   \
	VF x_ = (x), t_, fn_, r_, p_;                                           \
	VI k_, hi_, lo_;                                                        \
	hi_ = (VI)(x_ > 88.3762626647949f);                                     \
	x_ = (VF)(((VI)((z) + 88.3762626647949f) & hi_) | ((VI)x_ & ~hi_));     \
	lo_ = (VI)(x_ < -87.3365447504f);                                       \
	x_ = (VF)(((VI)((z) + -87.3365447504f) & lo_) | ((VI)x_ & ~lo_));       \
	t_ = x_ * 1.44269504088896341f + 12582912.0f;                           \
	fn_ = t_ - 12582912.0f;                                                 \
	k_ = (VI)t_ - (VI)((z) + 12582912.0f);                                  \
	r_ = x_ - fn_ * 0.693359375f - fn_ * -2.12194440e-4f;                   \
	p_ = (z) + 1.9875691500e-4f;                                            \
	p_ = p_ * r_ + 1.3981999507e-3f;                                        \
	p_ = p_ * r_ + 8.3334519073e-3f;                                        \
	p_ = p_ * r_ + 4.1665795894e-2f;                                        \
	p_ = p_ * r_ + 1.6666665459e-1f;                                        \
	p_ = p_ * r_ + 5.0000001201e-1f;                                        \
	p_ = p_ * r_ * r_ + r_ + 1.0f;                                          \
	p_ * (VF)((k_ + 127) << 23);                                            \
})

/* The kernels at lane count W (vector VF, int VI), suffix S. */
#define KERNELS(S, W, VF, VI, ATTR)                                             \
ATTR static double sum_exp_##S(const float *x, int64_t n, float m)             \
{                                                                               \
	const VF z = { 0 };                                                     \
	double s = 0.0;                                                         \
	int64_t i = 0;                                                          \
	while (i + W <= n) {                                                    \
		VF acc = z, v;                                                  \
		int64_t end = i + 1024 < n ? i + 1024 : n;                      \
		for (; i + W <= end; i += W) {                                  \
			memcpy(&v, x + i, sizeof(v));                           \
			acc += VEXP(VF, VI, v - m, z);                          \
		}                                                               \
		for (int j = 0; j < W; j++)                                     \
			s += (double)acc[j];                                    \
	}                                                                       \
	for (; i < n; i++)                                                      \
		s += expf(x[i] - m);                                            \
	return s;                                                               \
}                                                                               \
ATTR static float exp_sub_##S(float *x, int64_t n, float m)                    \
{                                                                               \
	const VF z = { 0 };                                                     \
	VF acc = z, v;                                                          \
	float s = 0.0f;                                                         \
	int64_t i = 0;                                                          \
	for (; i + W <= n; i += W) {                                            \
		memcpy(&v, x + i, sizeof(v));                                   \
		v = VEXP(VF, VI, v - m, z);                                     \
		memcpy(x + i, &v, sizeof(v));                                   \
		acc += v;                                                       \
	}                                                                       \
	for (; i < n; i++) {                                                    \
		x[i] = expf(x[i] - m);                                          \
		s += x[i];                                                      \
	}                                                                       \
	for (int j = 0; j < W; j++)                                             \
		s += acc[j];                                                    \
	return s;                                                               \
}                                                                               \
ATTR static float max_##S(const float *x, int64_t n)                           \
{                                                                               \
	const VF z = { 0 };                                                     \
	VF a = z - INFINITY, v;                                                 \
	float mx = -INFINITY;                                                   \
	int64_t i = 0;                                                          \
	for (; i + W <= n; i += W) {                                            \
		memcpy(&v, x + i, sizeof(v));                                   \
		a = (VF)(((VI)v & (VI)(v > a)) | ((VI)a & ~(VI)(v > a)));       \
	}                                                                       \
	for (int j = 0; j < W; j++)                                             \
		mx = a[j] > mx ? a[j] : mx;                                     \
	for (; i < n; i++)                                                      \
		mx = x[i] > mx ? x[i] : mx;                                     \
	return mx;                                                              \
}                                                                               \
ATTR static void axpy_##S(float *y, const float *x, float a, int64_t n)        \
{                                                                               \
	VF v, w;                                                                \
	int64_t i = 0;                                                          \
	for (; i + W <= n; i += W) {                                            \
		memcpy(&v, x + i, sizeof(v));                                   \
		memcpy(&w, y + i, sizeof(w));                                   \
		w += v * a;                                                     \
		memcpy(y + i, &w, sizeof(w));                                   \
	}                                                                       \
	for (; i < n; i++)                                                      \
		y[i] += x[i] * a;                                               \
}                                                                               \
ATTR static void scale_##S(float *x, float a, int64_t n)                       \
{                                                                               \
	VF v;                                                                   \
	int64_t i = 0;                                                          \
	for (; i + W <= n; i += W) {                                            \
		memcpy(&v, x + i, sizeof(v));                                   \
		v *= a;                                                         \
		memcpy(x + i, &v, sizeof(v));                                   \
	}                                                                       \
	for (; i < n; i++)                                                      \
		x[i] *= a;                                                      \
}                                                                               \
ATTR static void rms_apply_##S(float *out, const float *x, const float *w,     \
			       float r, int64_t n)                             \
{                                                                               \
	VF v, g;                                                                \
	int64_t i = 0;                                                          \
	for (; i + W <= n; i += W) {                                            \
		memcpy(&v, x + i, sizeof(v));                                   \
		memcpy(&g, w + i, sizeof(g));                                   \
		v = g * (v * r);                                                \
		memcpy(out + i, &v, sizeof(v));                                 \
	}                                                                       \
	for (; i < n; i++)                                                      \
		out[i] = w[i] * (x[i] * r);                                     \
}                                                                               \
ATTR static void swiglu_##S(float *out, const float *g, const float *u,        \
			    int64_t n)                                         \
{                                                                               \
	const VF z = { 0 };                                                     \
	VF gv, uv;                                                              \
	int64_t i = 0;                                                          \
	for (; i + W <= n; i += W) {                                            \
		memcpy(&gv, g + i, sizeof(gv));                                 \
		memcpy(&uv, u + i, sizeof(uv));                                 \
		gv = gv / (1.0f + VEXP(VF, VI, -gv, z)) * uv;                   \
		memcpy(out + i, &gv, sizeof(gv));                               \
	}                                                                       \
	for (; i < n; i++)                                                      \
		out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];                    \
}

KERNELS(4, 4, v4f, v4i, )
#ifdef VEC_AVX512
KERNELS(16, 16, v16f, v16i, __attribute__((target("avx512f"))))

/* sum of squares: eight doubles a step. */
__attribute__((target("avx512f"))) static double sumsq_16(const float *x, int64_t n)
{
	__m512d a = _mm512_setzero_pd(), b = _mm512_setzero_pd();
	double s;
	int64_t i = 0;

	for (; i + 16 <= n; i += 16) {
		__m512d lo = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
		__m512d hi = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));

		a = _mm512_fmadd_pd(lo, lo, a);
		b = _mm512_fmadd_pd(hi, hi, b);
	}
	s = _mm512_reduce_add_pd(_mm512_add_pd(a, b));
	for (; i < n; i++)
		s += (double)x[i] * (double)x[i];
	return s;
}

/* BF16 is the high half of an fp32: widen and shift, sixteen at a time. */
__attribute__((target("avx512f"))) static void bf16_16(float *dst, const void *src, size_t n)
{
	const unsigned char *s = src;
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		__m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(s + 2 * i)));

		_mm512_storeu_si512(dst + i, _mm512_slli_epi32(v, 16));
	}
	for (; i < n; i++) {
		uint32_t u = (uint32_t)(s[2 * i] | s[2 * i + 1] << 8) << 16;

		memcpy(&dst[i], &u, sizeof(u));
	}
}

#endif

static bool wide(void)
{
#ifdef VEC_AVX512
	static atomic_int have = -1; /* unknown yet; threads may race to set it */
	int h = atomic_load_explicit(&have, memory_order_relaxed);

	if (h < 0) {
		__builtin_cpu_init();
		h = __builtin_cpu_supports("avx512f") ? 1 : 0;
		atomic_store_explicit(&have, h, memory_order_relaxed);
	}
	return h;
#else
	return false;
#endif
}

#ifdef VEC_AVX512
#define PICK(name, ...) (wide() ? name##_16(__VA_ARGS__) : name##_4(__VA_ARGS__))
#else
#define PICK(name, ...) name##_4(__VA_ARGS__)
#endif

double vec_sum_exp(const float *x, int64_t n, float m)
{
	return PICK(sum_exp, x, n, m);
}

float vec_exp_sub(float *x, int64_t n, float m)
{
	return PICK(exp_sub, x, n, m);
}

float vec_max(const float *x, int64_t n)
{
	return PICK(max, x, n);
}

void vec_axpy(float *y, const float *x, float a, int64_t n)
{
	PICK(axpy, y, x, a, n);
}

void vec_scale(float *x, float a, int64_t n)
{
	PICK(scale, x, a, n);
}

void vec_rms_apply(float *out, const float *x, const float *w, float r, int64_t n)
{
	PICK(rms_apply, out, x, w, r, n);
}

void vec_swiglu(float *out, const float *g, const float *u, int64_t n)
{
	PICK(swiglu, out, g, u, n);
}

double vec_sumsq(const float *x, int64_t n)
{
	double s = 0.0;

#ifdef VEC_AVX512
	if (wide())
		return sumsq_16(x, n);
#endif
	for (int64_t i = 0; i < n; i++)
		s += (double)x[i] * (double)x[i];
	return s;
}

void vec_bf16_to_f32(float *dst, const void *src, size_t n)
{
	const unsigned char *s = src;

#ifdef VEC_AVX512
	if (wide()) {
		bf16_16(dst, src, n);
		return;
	}
#endif
	for (size_t i = 0; i < n; i++) {
		uint32_t u = (uint32_t)(s[2 * i] | s[2 * i + 1] << 8) << 16;

		memcpy(&dst[i], &u, sizeof(u));
	}
}
