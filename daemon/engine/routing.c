/*
 * routing.c — allocation and release of routing records (routing.h).
 */
#include "engine/routing.h"

#include <math.h>
#include <stdlib.h>

struct routing *routing_new(int n_samples, int n_layers, int n_experts, int top_k)
{
	struct routing *r = gw_calloc(1, sizeof(*r));
	size_t n = (size_t)n_samples;

	GW_BUG_ON(n_samples < 0 || n_layers < 0 || n_experts < 0 || top_k < 0);
	r->n_samples = n_samples;
	r->n_layers = n_layers;
	r->n_experts = n_experts;
	r->top_k = top_k;
	r->step = -1;
	r->gbar = gw_calloc(n * (size_t)n_layers * (size_t)n_experts, sizeof(float));
	r->loss = gw_calloc(n, sizeof(float));
	for (size_t i = 0; i < n; i++)
		r->loss[i] = NAN;
	r->ntokens = gw_calloc(n, sizeof(int32_t));
	r->groups = gw_calloc(n, sizeof(char *));
	r->ids = gw_calloc(n, sizeof(char *));
	r->router = gw_calloc((size_t)n_layers, sizeof(float *));
	return r;
}

void routing_alloc_tokens(struct routing *r)
{
	size_t L = (size_t)r->n_layers, k = (size_t)r->top_k, total;

	GW_BUG_ON(r->has_tokens);
	r->tok_offset = gw_calloc((size_t)r->n_samples + 1, sizeof(int64_t));
	for (int i = 0; i < r->n_samples; i++)
		r->tok_offset[i + 1] = r->tok_offset[i] + r->ntokens[i];
	total = (size_t)r->tok_offset[r->n_samples];
	r->topk_ids = gw_calloc(total * L * k, sizeof(uint16_t));
	r->topk_w = gw_calloc(total * L * k, sizeof(float));
	r->entropy = gw_calloc(total * L, sizeof(float));
	r->lse = gw_calloc(total * L, sizeof(float));
	r->has_tokens = true;
}

void routing_free(struct routing *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->n_samples; i++) {
		free(r->groups[i]);
		free(r->ids[i]);
	}
	for (int l = 0; l < r->n_layers; l++)
		free(r->router[l]);
	free(r->router);
	free(r->groups);
	free(r->ids);
	free(r->gbar);
	free(r->loss);
	free(r->ntokens);
	free(r->tok_offset);
	free(r->topk_ids);
	free(r->topk_w);
	free(r->entropy);
	free(r->lse);
	free(r->probe_hash);
	free(r->checkpoint);
	free(r->arch);
	free(r);
}
