/*
 * forward.h — the MoE forward pass on the CPU (SPEC §3).
 *
 * forward_run runs every probe sample through the model layer by layer:
 * one layer's weights are loaded and converted to fp32, every sample goes
 * through it, and they are freed before the next layer, so memory holds one
 * layer (plus the activations of the probe set).  Each expert's tokens from
 * all samples go through one sgemm.  It fills a struct routing with gbar,
 * the per-token top-k records, router entropy and logsumexp, the loss and
 * token count of every sample, and the router weights.  For the DeepSeek-V3
 * family's sigmoid routers p_t is s / sum(s) (no correction bias) while the
 * top-k records are the experts and weights the model applies (model.h).
 *
 * It is called off the event loop; `progress` is called from the calling
 * thread, and `cancel` is read between layers (and between sample blocks):
 * when it becomes non-zero, forward_run returns -ECANCELED.
 * A checkpoint file that vanishes or shrinks mid-run gives an error.
 */
#ifndef GW_ENGINE_FORWARD_H
#define GW_ENGINE_FORWARD_H

#include <stdatomic.h>
#include <stdint.h>

#include "engine/checkpoint.h"
#include "engine/probe.h"
#include "engine/routing.h"

/* Tokens over all samples of one run: bounds every activation buffer. */
#define FORWARD_TOKENS_MAX (16 * 1024 * 1024)

/*
 * Where the time went, for `make bench` and the daemon's log.  Filled by
 * forward_run when forward_opts.stats is not NULL (also on failure, with
 * what was done until then).
 */
struct forward_stats {
	int64_t tokens;       /* tokens over all samples */
	double gemm_flop;     /* 2*M*N*K summed over every product (sgemm or AMX) */
	double gemm_sec;      /* wall time inside those products */
	double load_sec;      /* reading and converting weights to fp32 */
	double load_bytes;    /* fp32 bytes of weights loaded */
	/* Wall time by phase (each including its sgemm calls and loads). */
	double embed_sec, attn_sec, ffn_sec, head_sec;
	double total_sec;     /* the whole forward_run */
};

struct forward_opts {
	/* layers_done of n_layers, called after each layer; the call with
	 * layers_done == n_layers comes after the final norm and the loss,
	 * when the pass is complete.  So exactly n_layers calls. */
	void (*progress)(void *ud, int layers_done, int n_layers);
	void *ud;
	const atomic_int *cancel; /* may be NULL */
	/* The engine's threads (0: OpenBLAS's current count).  During the
	 * pass OpenBLAS runs one thread (openblas_set_num_threads, which is
	 * process-wide) and the engine spreads products and the work between
	 * them over its own threads; at the end OpenBLAS is left with the
	 * count it had. */
	int threads;
	/* Products with BF16 weights stay on sgemm (fp32 copies of the
	 * weights) even where AMX could take them (amx.h); for tests. */
	bool no_amx;
	struct forward_stats *stats; /* may be NULL */
};

/*
 * Stop OpenBLAS's worker threads.  Its pthread build starts them when the
 * library loads, and again at every openblas_set_num_threads, and an idle
 * worker spins in sched_yield for about 2^28 cycles (a tenth of a second)
 * before it sleeps: beside as many engine threads as cores, that spinning
 * took a core from the first tenth of a second of every `analyze` (6% of
 * its CPU samples).  For a process that then keeps OpenBLAS at one thread
 * (`analyze`: call openblas_set_num_threads(1) first); OpenBLAS starts its
 * workers again when the count is next set.  Only while no other thread
 * is inside BLAS; a no-op where the library has no such call.
 */
void forward_blas_rest(void);

/*
 * Run the forward pass of checkpoint `c` over probe `p` (every token id must
 * be below the vocabulary: checked, -EINVAL).  On success *ret is a new
 * routing record (the caller frees it with routing_free) with N = probe
 * samples, L = MoE layers, E experts, top-k k, hidden H, per-token records,
 * router weights, groups and ids copied from the probe, arch, checkpoint
 * (ckpt_dir) and probe_hash (when probe_finish has run); step is -1.
 * `o` may be NULL (no progress, no cancel, threads as they are).
 *
 * Errors: -EINVAL (empty probe, too many tokens), probe_check_vocab's error
 * for a token out of range, -ECANCELED, and whatever reading the checkpoint gives (-EIO for a file
 * truncated while open, -ENOENT ...), each with a message in err.
 * Not reentrant with respect to OpenBLAS's global thread count; otherwise
 * it touches no global state, so two runs may go at once on two threads.
 */
int forward_run(const struct ckpt *c, const struct probe *p, const struct forward_opts *o,
		struct routing **ret, struct gw_err *err);

#endif
