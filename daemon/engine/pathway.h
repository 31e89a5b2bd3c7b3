/*
 * pathway.h — routing pathways of samples and the pathway distance of a
 * set of samples (SPEC §4).
 *
 * The pathway of one layer: sort the experts by the sample's routing
 * weight gbar[l][e], descending, ties to the lower index; keep the shortest
 * prefix whose weights sum to at least tau; write the kept indices in that
 * order, in decimal, joined by ','.  The sample's pathway joins its layers'
 * by '-': "3,1,5-12,0-9,1".
 *
 * The rule, exactly, since float sums are not associative:
 *   - the prefix sums are accumulated in double, in the sorted order, each
 *     float weight converted exactly to double;
 *   - a prefix whose sum equals the target reaches it (>=, not >);
 *   - the target is min(tau, total), total being the sum of all the layer's
 *     weights accumulated the same way.  So when the weights total less than
 *     tau (tau = 1 with float rounding, or a row that does not sum to 1),
 *     the prefix ends at the first point where the sum reaches the total:
 *     every expert with nonzero weight is kept, experts of weight zero are
 *     not (nor a trailing weight too small to change the double sum);
 *   - at least one expert is kept: a layer whose weights are all zero keeps
 *     expert 0.
 * tau is in (0, 1]; weights must be finite and >= 0 (-0 counts as 0).
 *
 * Thread safety: a pathway_set is read-only after pathway_set_new and may be
 * read by several threads; the functions keep no global state.
 */
#ifndef GW_ENGINE_PATHWAY_H
#define GW_ENGINE_PATHWAY_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/levenshtein.h"

#define PATHWAY_TAU_DEFAULT 0.7
#define PATHWAY_MAX_EXPERTS 65536
#define PATHWAY_MAX_LAYERS 4096
/* A sample's pathway is at most LEV_MAX_LEN bytes (it must be usable by the
 * distance); a longer one is refused with -E2BIG. */

/*
 * Select the experts of one layer: order[0 .. n_experts) receives the expert
 * indices sorted by w descending, ties to the lower index, and *ret_kept the
 * length of the kept prefix (1 .. n_experts), by the rule above.  order is
 * the caller's array of n_experts ints; scratch is n_experts * 8 bytes of the
 * caller's (or NULL, then it is allocated).  Errors: -EINVAL for tau outside
 * (0, 1], n_experts outside 1 .. PATHWAY_MAX_EXPERTS, or a weight that is
 * not finite or negative (err says which expert).
 */
int pathway_layer_select(const float *w, int n_experts, double tau, int *order,
			 void *scratch, int *ret_kept, struct gw_err *err);

/*
 * The pathway string of one sample from its gbar[l][e] (n_layers x
 * n_experts, row-major).  *ret_str is a new NUL-terminated string the
 * caller frees; *ret_len its length.  Errors as pathway_layer_select, the
 * message prefixed with the layer; -EINVAL for n_layers outside 1 ..
 * PATHWAY_MAX_LAYERS; -E2BIG for a string over LEV_MAX_LEN.
 */
int pathway_string(const float *gbar, int n_layers, int n_experts, double tau,
		   char **ret_str, size_t *ret_len, struct gw_err *err);

/* The pathways of N samples, with each layer's part addressable for the
 * per-layer diagnostic. */
struct pathway_set;

/*
 * Build the pathways of samples 0 .. n_samples-1 from gbar[(i*L + l)*E + e]
 * (the layout of struct routing).  gbar is read only during the call.
 * Errors as pathway_string, the message prefixed with the sample, and
 * -EINVAL for n_samples outside 0 .. LEV_MAX_STRINGS.  Aborts on OOM.
 */
int pathway_set_new(const float *gbar, int n_samples, int n_layers, int n_experts,
		    double tau, struct pathway_set **ret_set, struct gw_err *err);
void pathway_set_free(struct pathway_set *ps); /* accepts NULL */
int pathway_set_samples(const struct pathway_set *ps);
int pathway_set_layers(const struct pathway_set *ps);

/* Sample i's pathway, NUL-terminated, owned by the set; *ret_len (if not
 * NULL) its length.  i must be valid (a programming error aborts). */
const char *pathway_set_str(const struct pathway_set *ps, int i, size_t *ret_len);
/* Layer l's part of sample i's pathway, without the '-' separators and NOT
 * NUL-terminated: *ret_len bytes from the returned pointer. */
const char *pathway_set_layer(const struct pathway_set *ps, int i, int l, size_t *ret_len);

/*
 * The pathway distance of a set of samples: lev_mean_pairs over the
 * pathways of samples[0 .. n) (all samples of the set in order when samples
 * is NULL; then n must equal pathway_set_samples).  When ret_layers is not
 * NULL it receives pathway_set_layers(ps) means, layer l's being the mean
 * over pairs of the distance between the samples' layer-l strings; when
 * sampled, the pairs are the same as for the whole strings (same seed, n
 * and budget; never with a jackknife).  opts as lev_mean_pairs (NULL for
 * the defaults).
 * Errors: -EINVAL for a sample index out of range or n outside 0 ..
 * LEV_MAX_STRINGS, and those of lev_mean_pairs.  Aborts on OOM.
 */
int pathway_distance(const struct pathway_set *ps, const int *samples, int n,
		     const struct lev_pair_opts *opts, struct lev_mean *ret_mean,
		     struct lev_mean *ret_layers, struct gw_err *err);

#endif
