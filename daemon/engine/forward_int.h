/*
 * forward_int.h — what the files of the forward pass share, and nothing
 * outside them includes: the pass's state (struct fwd), its constants,
 * and the helpers of forward.c (the products, the fork-join loops, the
 * row kernels) and forward_weights.c (loading, struct wmat) that
 * forward_attn.c (attention), forward_ffn.c (dense and MoE blocks) and
 * forward_head.c (the vocabulary head and the loss) call.  forward.c's
 * header comment describes the pass as a whole.
 */
#ifndef GW_ENGINE_FORWARD_INT_H
#define GW_ENGINE_FORWARD_INT_H

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/amx.h"
#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "engine/pool.h"
#include "engine/probe.h"
#include "engine/routing.h"
#include "engine/safetensors.h"
#include "engine/vec.h"

#define ATTN_QBLOCK 64      /* query rows per block of attention scores */
#define HEAD_SLICE 512      /* vocabulary rows of the lm_head a unit of work */
#define HEAD_ROWS 1024       /* token rows of a logits tile (HEAD_ROWS x HEAD_SLICE) */
#define PAR_MIN_ROWS 64     /* below this a row loop stays on one thread */
#define MLP_ROWS 2048       /* token rows per gated-MLP product (bounds scratch) */
#define GEMM_MIN_ROWS 64    /* rows of a product part on one thread */
#define EXPERT_OUT_FLOATS (4 * 1024 * 1024) /* expert output rows held between two scatter-adds */
#define THREADS_MAX 256
#define FWD_MMAP_THRESHOLD (32 << 20) /* malloc: blocks below this from the heap (glibc's most) */
#define FWD_TRIM_THRESHOLD (1 << 30)   /* malloc: free heap kept up to this */

/* fmaxf is a library call at -O2 (it must handle NaN); the hot loops here
 * want a compare the compiler can vectorize.  A NaN anywhere still ends up
 * in the result through the exponentials that follow. */
static inline float max_f(float a, float b)
{
	return a > b ? a : b;
}

struct fwd {
	const struct ckpt *c;
	const struct model_desc *m;
	const struct probe *p;
	const atomic_int *cancel;
	struct pool *pool;  /* the pass's threads (threads of them) */
	bool amx;           /* BF16 weights' products on AMX tiles (amx.h) */
	struct amx_a ax;    /* linear_amx's split of its input */
	struct forward_stats st;
	struct gw_err *err;
	int threads;

	int64_t T;          /* tokens over all samples */
	int64_t *off;       /* [N+1] first token of each sample */
	int max_len;        /* longest sample */
	int H, nh, nkv;     /* hidden, heads, KV heads (MLA: one per head) */
	int dq, dv;         /* q/k and v dims of a head (equal in GQA) */
	int rd;             /* rotary dims of a head */
	int qdim, kdim, vdim, qkvdim, odim; /* nh*dq, nkv*dq, nkv*dv, their sum, nh*dv */

	float *x;           /* [T, H] the residual stream */
	float *xn;          /* [T, H] the normalized stream */
	float *y;           /* [T, H] a block's output */
	float *qkv;         /* [T, qkvdim] q | k | v of every token */
	float *att;         /* [T, odim] attention output before o_proj */
	float *rope_cos, *rope_sin; /* [max_len, rd/2], times YaRN's attention factor */
};

/* Time and FLOPs inside sgemm, kept per thread in the parallel units. */
struct gacc {
	double sec, flop;
};

typedef void (*row_fn)(void *ud, int64_t i0, int64_t i1);

typedef void (*unit_fn)(void *ud, int tid, int64_t u, struct gacc *acc);

struct amx_job {
	struct fwd *f;
	const float *X;
	int64_t ldx, T;
	const struct amx_w *w;
	float *Y;
	int64_t ldy;
};

struct norm_job {
	const float *x;
	float *out;
	const float *w;
	int64_t ld;  /* row stride of x and out */
	int n;       /* width normed */
	int groups;  /* groups of n per row (heads for per-head norm) */
	float eps;
};

/*
 * A weight [N, K] of a linear layer: its fp32 values (f), or, where the
 * pass runs on AMX and the checkpoint stores it as BF16, packed into tiles
 * (a).  Several tensors may be stacked into one (q|k|v, gate|up).
 */
struct wmat {
	float *f;
	struct amx_w a;
	int64_t N, K;
};

/* forward.c: the clock; sgemm counted (fw_gemm_acc, one thread) and split
 * by rows over the threads (fw_gemm, fw_linear: Y = X W^T); the cancel
 * flag; fork-join over rows and units of work on the pass's pool; AMX
 * products counted (fw_amx_acc) and over a layer's rows (fw_linear_amx,
 * its rows split by fw_amx_split_rows, a row job over struct amx_job). */
double fw_now_sec(void);
void fw_gemm_acc(struct gacc *a, bool transb, int64_t M, int64_t N, int64_t K, float alpha,
		 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
		 int64_t ldc);
void fw_gemm(struct fwd *f, bool transb, int64_t M, int64_t N, int64_t K, float alpha,
	     const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
	     int64_t ldc);
void fw_linear(struct fwd *f, const float *X, int64_t T, int64_t K, const float *W, int64_t N,
	       float *Y);
int fw_cancelled(const struct fwd *f);
void fw_par_rows(const struct fwd *f, int64_t n, row_fn fn, void *ud);
void fw_par_units(struct fwd *f, int64_t n, unit_fn fn, void *ud);
int fw_unit_threads(const struct fwd *f, int64_t n);
void fw_amx_acc(struct gacc *acc, float *C, int64_t ldc, const struct amx_a *a, int m,
		const struct amx_w *w, int r0);
void fw_linear_amx(struct fwd *f, const float *X, int64_t ldx, int64_t T,
		   const struct amx_w *w, float *Y, int64_t ldy);
void fw_amx_split_rows(void *ud, int64_t i0, int64_t i1);
/* forward.c: row kernels (RMSNorm of a row, of rows as a row job over
 * struct norm_job, of the stream; the residual add; RoPE). */
void fw_rmsnorm_row(const float *x, const float *w, int n, float eps, float *out);
void fw_norm_rows(void *ud, int64_t i0, int64_t i1);
void fw_rmsnorm(const struct fwd *f, const float *x, float *out, int64_t rows, int64_t ld,
		int n, int groups, const float *w);
void fw_residual(const struct fwd *f, const float *b);
void fw_rope_apply(const struct fwd *f, float *v, int pos);
/* forward_weights.c: a tensor as fp32 (-ENOENT quietly if optional and
 * absent); linear layers' weights (struct wmat). */
int fw_load(struct fwd *f, enum model_tensor kind, int layer, int expert, float *out,
	    size_t count, bool optional);
int fw_load_new(struct fwd *f, enum model_tensor kind, int layer, int expert, size_t count,
		bool optional, float **ret);
void wmat_free(struct wmat *w);
int wmat_load(struct fwd *f, const enum model_tensor *kinds, const int64_t *rows, int n,
	      int l, int e, int64_t K, struct wmat *w);
int wmat_load1(struct fwd *f, enum model_tensor kind, int l, int64_t N, int64_t K,
	       struct wmat *w);
void wmat_mul(struct fwd *f, const float *X, int64_t ldx, int64_t T, const struct wmat *w,
	      float *Y, int64_t ldy);
/* The blocks: forward_attn.c, forward_ffn.c, forward_head.c. */
int fw_attention(struct fwd *f, int l, const int32_t *pos);
int fw_attention_mla(struct fwd *f, int l, const int32_t *pos);
int fw_dense_ffn(struct fwd *f, int l);
int fw_moe_ffn(struct fwd *f, int l, struct routing *rt);
int fw_head(struct fwd *f, struct routing *rt);

#endif
