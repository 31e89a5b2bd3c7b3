/*
 * amx.h — matrix products with a BF16 weight on Intel AMX tiles, at fp32
 * accuracy.
 *
 * Most of the forward pass is X W^T with W a BF16 weight as the checkpoint
 * stores it (the experts, the vocabulary head).  A CPU with AMX-BF16
 * (Xeon from Sapphire Rapids on, the hosts of most GPU nodes) multiplies
 * BF16 tiles into fp32 sums at sixteen times the rate of its AVX-512 FMA.
 * W is exact in BF16; X is fp32, so each row of X is split into three
 * BF16 parts, x = x0 + x1 + x2 (x0 = bf16(x), x1 = bf16(x - x0), x2 =
 * bf16(x - x0 - x1): 24 bits, every bit of the fp32 value for normal
 * numbers), and C = x0 W^T + x1 W^T + x2 W^T is summed in fp32 by the
 * tiles.  Each product of a BF16 pair is exact in fp32, so the result
 * differs from an fp32 sgemm only in the order of the fp32 additions: the
 * unit test holds it to the same error bound as sgemm against a
 * double-precision product.  Three passes, still about three times
 * sgemm's rate on one core here.  (The tiles read subnormal BF16 inputs
 * as zero: a part below 2^-126 is lost, an error below 2^-126 absolute.)
 *
 * Layouts:
 *  - struct amx_a: X [M, K] as three BF16 planes [Mp, Kp] (M and K
 *    rounded up to 32 and zero-padded), built by amx_a_split;
 *  - struct amx_w: W [N, K] as 16 x 32 tiles in the pair-interleaved
 *    order the tiles multiply (W's rows, two K at a time, transposed),
 *    built by amx_w_pack from W's BF16 values (little-endian bytes,
 *    rows of K contiguous).
 * Both own their buffers and reuse them from call to call; zero-initialize,
 * and release with amx_a_free / amx_w_free.
 *
 * amx_usable() says whether the products can run here: the CPU has
 * AMX-BF16 and AVX512-BF16, Linux granted this process the tile state
 * (arch_prctl ARCH_REQ_XCOMP_PERM; refused under valgrind, which does not
 * know the instructions), and the environment does not set
 * GROKWATCH_AMX=0.  Decided once, at the first call; thread-safe.  The
 * functions below are only called when it is true.
 */
#ifndef GW_ENGINE_AMX_H
#define GW_ENGINE_AMX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct amx_a {
	uint16_t *p;       /* 3 planes of Mp * Kp */
	void *base;
	size_t cap;
	int M, K, Mp, Kp;
};

struct amx_w {
	uint32_t *p;       /* (Np/16) x (Kp/32) tiles of 16 x 16 pairs */
	void *base;
	size_t cap;
	int N, K, Np, Kp;
};

bool amx_usable(void);

/* X rows i: A + i * lda, i < M, K values each. */
void amx_a_split(struct amx_a *a, const float *A, int M, int K, int64_t lda);
/* The same in parts (from several threads at once): amx_a_reserve for
 * M x K, then amx_a_split_part for rows [i0, i1) of X, over [0, M). */
void amx_a_reserve(struct amx_a *a, int M, int K);
void amx_a_split_part(struct amx_a *a, const float *A, int64_t lda, int i0, int i1);
/* The same with row i taken from A + rows[i] * lda (a gather). */
void amx_a_split_rows(struct amx_a *a, const float *A, const int64_t *rows, int M, int K,
		      int64_t lda);
void amx_a_free(struct amx_a *a);

/* W [N, K] as BF16 values, rows contiguous. */
void amx_w_pack(struct amx_w *w, const uint16_t *W, int N, int K);
void amx_w_free(struct amx_w *w);

/* C[i - r0] = X[i] W^T for rows i in [r0, r1) of a (r0 a multiple of 32),
 * each row N floats of C with row stride ldc.  a.K must equal w.K. */
void amx_gemm(float *C, int64_t ldc, const struct amx_a *a, int r0, int r1,
	      const struct amx_w *w);

#endif
