/*
 * routing.h — the routing records of one checkpoint over one probe set:
 * what the forward pass produces (SPEC §3) and a routing file carries
 * (SPEC §5), and what the metrics consume (SPEC §4).
 *
 * Layout: N samples, L MoE layers (in model order), E experts, top-k k.
 *   gbar[(i*L + l)*E + e]   mean over the sample's tokens of p_t[e]
 *   loss[i]                 mean next-token NLL (nats), NaN if unknown
 *   ntokens[i]              tokens in sample i
 * Per-token records are present only when the forward pass made them
 * (has_tokens); tokens of sample i are tok_offset[i] .. tok_offset[i+1]-1:
 *   topk_ids[(t*L + l)*k + j], topk_w[...]   the top-k experts and weights
 *                                            as the model uses them
 *   entropy[t*L + l]        entropy of p_t in nats
 *   lse[t*L + l]            logsumexp(z)
 * router[l] is layer l's router weight [E][hidden], or NULL if not known.
 * probe_hash, checkpoint and arch describe where the records came from
 * (owned strings, NULL when unknown); a routing file carries them in its
 * metadata (routing_file.h).
 */
#ifndef GW_ENGINE_ROUTING_H
#define GW_ENGINE_ROUTING_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/error.h"

struct routing {
	int n_samples, n_layers, n_experts, top_k, hidden;
	int64_t step;           /* -1 if unknown */
	float *gbar;
	float *loss;
	int32_t *ntokens;
	char **groups;          /* [N] group names (owned) */
	char **ids;             /* [N] sample ids (owned; "" if none) */
	bool has_tokens;
	int64_t *tok_offset;    /* [N+1] */
	uint16_t *topk_ids;
	float *topk_w;
	float *entropy;
	float *lse;
	float **router;         /* [L], each [E*hidden] or NULL */
	char *probe_hash;       /* hex SHA-256 of the probe, or NULL */
	char *checkpoint;       /* checkpoint name or path, or NULL */
	char *arch;             /* model class name, or NULL */
};

/* Allocate with gbar/loss/ntokens/groups/ids sized for N, L, E (zeroed,
 * loss NaN, step -1).  Aborts on out-of-memory. */
struct routing *routing_new(int n_samples, int n_layers, int n_experts, int top_k);
/* Allocate the per-token arrays for tok_offset[N] tokens (call after
 * filling ntokens; fills tok_offset). */
void routing_alloc_tokens(struct routing *r);
void routing_free(struct routing *r); /* accepts NULL */

#endif
