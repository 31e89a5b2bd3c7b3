/*
 * forward.h — the MoE forward pass on the CPU (SPEC §3).
 *
 * forward_run runs every probe sample through the model layer by layer:
 * one layer's weights are loaded and converted to fp32, every sample goes
 * through it, and they are freed before the next layer, so memory holds one
 * layer (plus the activations of the probe set).  Each expert's tokens from
 * all samples go through one sgemm.  It fills a struct routing with gbar,
 * the per-token top-k records, router entropy and logsumexp, the loss and
 * token count of every sample, and the router weights.
 *
 * It is called off the event loop; `progress` is called from the calling
 * thread, and `cancel` is read between layers (and between sample blocks):
 * when it becomes non-zero, forward_run returns -ECANCELED.
 * A checkpoint file that vanishes or shrinks mid-run gives an error.
 */
#ifndef GW_ENGINE_FORWARD_H
#define GW_ENGINE_FORWARD_H

#include <stdatomic.h>

#include "engine/checkpoint.h"
#include "engine/probe.h"
#include "engine/routing.h"

struct forward_opts {
	/* layers_done of n_layers, called after each layer and at the end. */
	void (*progress)(void *ud, int layers_done, int n_layers);
	void *ud;
	const atomic_int *cancel; /* may be NULL */
};

int forward_run(const struct ckpt *c, const struct probe *p, const struct forward_opts *o,
		struct routing **ret, struct gw_err *err);

#endif
