/*
 * vec.h — the forward pass's row kernels: the loops between its matrix
 * products (softmaxes, norms, SwiGLU, the experts' weighted sums, BF16
 * weights' conversion to fp32).  Each runs in sixteen lanes where the CPU
 * has AVX-512F (chosen once, at the first call) and in four lanes (GCC's
 * vector extensions: SSE on x86-64, NEON on ARM) or one elsewhere.  At
 * -O2 without -march the compiler leaves most of these loops scalar (a
 * loop that may alias is not versioned), and together they were a tenth
 * of the pass.
 *
 * exp is Cephes' expf (x = n ln2 + r, a degree-6 polynomial in r,
 * relative error below 2e-7 on the clamped range), lane for lane the same
 * operations at either width; inputs beyond about +-88 are clamped (exp
 * stays finite and positive) and a NaN stays NaN.  Where the compiler
 * fuses a multiply and an add (AVX-512 has FMA) the last bit may differ
 * between the widths; no result depends on how rows are split over
 * threads, since every call works on its own row.
 */
#ifndef GW_ENGINE_VEC_H
#define GW_ENGINE_VEC_H

#include <stddef.h>
#include <stdint.h>

/* sum of exp(x[i] - m), in float over runs of 1024, the runs added in
 * double so the error does not grow with the length (a vocabulary). */
double vec_sum_exp(const float *x, int64_t n, float m);
/* x[i] = exp(x[i] - m); returns their sum (in float). */
float vec_exp_sub(float *x, int64_t n, float m);
/* The largest x[i] (n >= 1). */
float vec_max(const float *x, int64_t n);
/* y[i] += x[i] * a (x and y do not overlap). */
void vec_axpy(float *y, const float *x, float a, int64_t n);
/* x[i] *= a. */
void vec_scale(float *x, float a, int64_t n);
/* sum of x[i]^2 in double. */
double vec_sumsq(const float *x, int64_t n);
/* out[i] = w[i] * (x[i] * r); out may be x. */
void vec_rms_apply(float *out, const float *x, const float *w, float r, int64_t n);
/* out[i] = silu(g[i]) * u[i] = g[i] / (1 + exp(-g[i])) * u[i]. */
void vec_swiglu(float *out, const float *g, const float *u, int64_t n);
/* dst[i] = the BF16 value at src + 2i (little-endian bytes). */
void vec_bf16_to_f32(float *dst, const void *src, size_t n);

#endif
