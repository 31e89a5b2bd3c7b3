/*
 * metrics.h — the numbers users watch, from one checkpoint's routing
 * records (SPEC §4): per group and for `all`, pathway distance, pathway
 * consistency, adjacent cosine, loss and sample count, for all samples and
 * for the memorized subset; routing health per layer and overall; routing
 * churn against the previous checkpoint; and the JSON object that
 * `analyze --json` prints and the daemon publishes.
 *
 * Definitions, exactly:
 *
 * Pathway distance: pathway.h (strings at threshold tau) and
 * levenshtein.h (exact mean over pairs up to the pair budget, otherwise a
 * fixed-seed sample with its standard error).  Per group, for `all`, and
 * per layer (`per_layer_distance`, a diagnostic, over the same pairs;
 * null when opts.per_layer is off).
 *
 * Each distinct sample set is computed once per checkpoint: a group that
 * holds every sample is the same set as `all`, a memorized subset that is
 * its whole group the same as the group, and identical subsets of
 * different sets the same; such sets share one computation
 * (metrics_sets_compute), whose values are those computing each would
 * give, to the bit (same strings in the same order, same pairs, integer
 * totals).
 *
 * Pathway consistency: e_l = W_l^T gbar[i][l] (an H-vector; W_l = router[l]
 * [E][H]) for all samples at once, one sgemm [N,E] x [E,H] a layer.
 * c_l = cos(e_l, e_{l+1}) for l = 0 .. L-2 (the L layers of a routing are
 * the MoE layers in model order), from the fp32 e_l with BLAS dot
 * products (float partial sums, ~1e-6 relative) and the division in
 * double; a zero vector has no direction, and its cosine with anything
 * counts as 0.
 * C_i = 1 - mean_l(c_l) / (max_l(c_l) + 1e-8).  A sample with
 * max_l(c_l) <= the floor (opts.consistency_floor, default
 * METRICS_CONSISTENCY_FLOOR 0.05) has no C_i: it is left out of the
 * consistency mean and counted in n_undefined.  `pathway_consistency` is
 * the mean of the defined C_i; `adjacent_cosine` the mean over ALL the
 * set's samples of mean_l(c_l).  With fewer than 3 MoE layers (one or no
 * c_l: with one, mean = max and C_i would be 0 whatever the routing), or
 * without router weights, neither exists: both are null and the result's
 * consistency_note says why.
 *
 * Loss: the mean of the set's finite sample losses (NaN losses, unknown,
 * are left out); null when there are none.
 *
 * Memorized subset (the paper's rule; with a series, routing_series.h;
 * without one the checkpoint is its own latest): sample i is memorized at
 * checkpoint t when, at EVERY checkpoint s of the series with
 * t <= s <= latest, loss_s(i) is finite, loss_s(i) <= epsilon(group of i)
 * and |loss_s(i) - loss_latest(i)| <= delta.  So membership cannot flicker:
 * a sample memorized at t is memorized at every later checkpoint.  (The
 * losses 2.0, 0.99, 1.02, 1.00 at four checkpoints, epsilon 1, delta 0.05:
 * memorized at the last only; a rule that checked loss <= epsilon at t
 * alone would say the second and the fourth.)  A NaN loss anywhere in
 * t .. latest means not memorized at t.  The memorized values are the same
 * set metrics over that subset (without the per-layer diagnostic), and
 * carry the epsilon they were judged with.
 *
 * Epsilon, per group: the group's eps_groups entry, else opts.epsilon; a
 * value of METRICS_EPSILON_AUTO means chosen as the paper does: the
 * smallest multiple of 0.1 nats (0.1, 0.2, ...) for which at least
 * ceil(memorized_share * n) of the group's n samples have a finite latest
 * loss at or below it, i.e. are memorized at the latest checkpoint (NaN,
 * nothing memorized, when fewer than that many have a finite loss).  It
 * moves with the latest checkpoint, as the rest of the memorized history.
 * The `all` set is the union of the groups' subsets; its epsilon is the
 * groups' common one, or NaN (null) when they differ.
 *
 * Routing health (only with per-token records): for layer l, count[e] =
 * top-k assignments of expert e over all tokens (T*k in all); load[e] =
 * count[e] / (T*k); imbalance = max(load) / mean(load) = max(load) * E;
 * load_entropy = -sum load ln load / ln E (1 = perfectly even; null when
 * E = 1); dead_experts = experts with count 0; router_entropy = mean over
 * tokens of the entropy of p_t (nats); z_loss = mean over tokens of lse^2.
 * Overall: imbalance, load_entropy, router_entropy and z_loss are means over
 * layers (experts of different layers are different experts, so their
 * loads are not pooled), max_imbalance the largest layer's, dead_experts
 * the number of (layer, expert) pairs with no assignment.
 *
 * Churn: with a previous checkpoint's routing of the same probe (same N,
 * L, k and ntokens, both with per-token records), the share of
 * (token, layer) pairs whose top-k SET of experts differs (order ignored);
 * per layer as well.  Otherwise null, with churn_note saying why.
 *
 * Thread safety: no global state.  metrics_consistency calls cblas_sgemm
 * and leaves OpenBLAS's (process-wide) thread count as it finds it; the
 * caller sets it.  The distance uses opts.threads threads of its own.
 */
#ifndef GW_ENGINE_METRICS_H
#define GW_ENGINE_METRICS_H

#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/routing.h"

#define METRICS_EPS_COS 1e-8
/* C_i is undefined where max_l c_l is at or below the floor (SPEC §4;
 * this is its default): near zero the ratio mean/max explodes on float
 * noise (a sample with max c 0.00038 gave C = 543, and fp32 against
 * float64 differed in the fifth digit). */
#define METRICS_CONSISTENCY_FLOOR 0.05
/* Consistency needs at least this many MoE layers (two adjacent cosines). */
#define METRICS_CONSISTENCY_MIN_LAYERS 3
#define METRICS_DELTA_DEFAULT 0.05
#define METRICS_EPSILON_DEFAULT 1.0
/* An epsilon of this value is chosen per group (above). */
#define METRICS_EPSILON_AUTO (-1.0)
#define METRICS_EPSILON_GRID 0.1
#define METRICS_MEMORIZED_SHARE_DEFAULT 0.2

struct metrics_dcache; /* below */

/* A per-group memorization threshold. */
struct metrics_epsilon {
	const char *group;
	double epsilon;
};

struct metrics_opts {
	double tau;                   /* (0, 1] */
	uint64_t pair_budget;         /* 1 .. LEV_MAX_BUDGET */
	uint64_t seed;                /* 0 = LEV_DEFAULT_SEED */
	int threads;                  /* distance threads; <= 0 = online CPUs */
	double epsilon;               /* threshold of groups not listed below, >= 0,
				       * or METRICS_EPSILON_AUTO */
	const struct metrics_epsilon *eps_groups; /* borrowed, may be NULL; the
				       * same values as epsilon */
	int n_eps_groups;
	double delta;                 /* >= 0 */
	double memorized_share;       /* (0, 1]: the share an auto epsilon memorizes */
	double consistency_floor;     /* [0, 1) */
	bool per_layer;               /* the per-layer distances of each group and
				       * of `all` (a diagnostic; off: null) */
};

/* Defaults: tau 0.7, budget LEV_DEFAULT_BUDGET, seed 0, all threads,
 * epsilon METRICS_EPSILON_DEFAULT, no group thresholds, delta 0.05,
 * memorized share 0.2, consistency floor METRICS_CONSISTENCY_FLOOR,
 * per-layer distances on. */
void metrics_opts_init(struct metrics_opts *o);
/* epsilon of `group` as configured: its eps_groups entry, else o->epsilon
 * (either may be METRICS_EPSILON_AUTO). */
double metrics_epsilon_for(const struct metrics_opts *o, const char *group);

/*
 * The auto epsilon (above) of n samples whose latest losses are
 * loss[idx[0 .. n)] (idx NULL: loss[0 .. n)): the smallest k * 0.1, k >= 1,
 * with at least ceil(share * n) of the losses finite and <= it.  NaN when
 * n is 0 or too few losses are finite.
 */
double metrics_epsilon_auto(const float *loss, const int *idx, int n, double share);

/*
 * The epsilon each of ng groups is judged with against the latest losses
 * `latest` [N] (gid [N] the samples' group numbers, names [ng] their
 * names, as metrics_groups gives them): eps[g] = metrics_epsilon_for, or
 * metrics_epsilon_auto over the group's samples where that is AUTO.
 */
void metrics_epsilons(const struct metrics_opts *o, const char *const *names, int ng,
		      const int *gid, const float *latest, int N, double *eps);
/* The epsilon of the `all` set: eps[0] when all ng are equal (all NaN
 * counting as equal), else NaN. */
double metrics_common_epsilon(const double *eps, int ng);

/*
 * Per-sample consistency of one checkpoint: c[i] = C_i (NaN where
 * undefined), adj[i] = mean_l c_l.  When consistency does not exist for
 * this routing (L < 2, no router weights) c and adj are NULL and note says
 * why (a static string); otherwise note is NULL.
 */
struct metrics_cons {
	int n_samples;
	double *c, *adj;
	const char *note;
};

/* Compute the above from r (gbar, router, hidden), C_i undefined at or
 * below `floor`.  Errors: -EINVAL for sizes that do not fit BLAS's int.
 * Aborts on OOM (needs 2*N*H floats). */
int metrics_consistency(const struct routing *r, double floor, struct metrics_cons **ret,
			struct gw_err *err);
void metrics_cons_free(struct metrics_cons *c); /* accepts NULL */

/* The metrics of one set of samples.  Doubles are NaN where undefined
 * (null in JSON). */
struct metrics_set {
	int n_samples;
	double pathway_distance;
	/* The error of sampling pairs (0 when every pair is computed): levenshtein.h. */
	double pathway_distance_stderr;
	/* The standard error over the choice of probe samples: the delete-one
	 * jackknife of the mean distance over the set's samples (levenshtein.h
	 * states it); NaN with fewer than 3 samples. */
	double pathway_distance_se;
	uint64_t n_pairs;
	bool sampled;
	double pathway_consistency, adjacent_cosine;
	int n_undefined;
	double loss;
	double *per_layer_distance; /* [L] for the all-samples set, NULL for memorized */
	double epsilon;              /* a memorized set's epsilon (NaN: none, or not one) */
};

struct metrics_group {
	char *name;                  /* "all" for the last one */
	struct metrics_set all, memorized;
};

struct metrics_layer_health {
	double *load;                /* [E] */
	double imbalance, load_entropy, router_entropy, z_loss;
	int dead_experts;
	double churn;                /* NaN without a previous checkpoint */
};

struct metrics_health {
	int n_layers, n_experts;
	double imbalance, max_imbalance, load_entropy, router_entropy, z_loss;
	int dead_experts;
	struct metrics_layer_health *layers; /* [n_layers] */
};

struct metrics_result {
	int64_t step;                /* -1 unknown (null) */
	char *checkpoint, *probe_hash; /* NULL unknown (null) */
	double tau;
	int n_layers;
	int n_groups;                /* groups in order of first appearance, then "all" */
	struct metrics_group *groups;
	const char *consistency_note; /* NULL, or why consistency is null */
	struct metrics_health *health; /* NULL without per-token records */
	const char *health_note;
	double churn;                /* NaN: none (churn_note says why) */
	const char *churn_note;
	struct {
		double pathways, consistency, memorized, health, total; /* seconds */
	} sec;
};

/* Which samples are memorized at one checkpoint, and the epsilon each
 * group was judged with (routing_series_memorized fills both). */
struct metrics_memorized {
	const bool *mask;            /* [N] */
	const double *epsilon;       /* [n_groups], metrics_groups order */
	int n_groups;
};

/*
 * All metrics of routing `r`.  `prev` (may be NULL) is the previous
 * checkpoint's routing of the same probe, for churn.  `cons` (may be NULL:
 * then computed here) is r's per-sample consistency, when the caller has
 * it already (routing_series_put needs it too).  `memorized` (may be NULL:
 * the single-checkpoint rule, epsilons from r's own losses) is the
 * memorized mask at r's checkpoint with its epsilons, from
 * routing_series_memorized.  On success *ret is a new result
 * (metrics_result_free).
 * Errors: -EINVAL for options out of range, a group named "all", gbar
 * values the pathway rule refuses, a cons of another N, a memorized of
 * another group count; those of the distance.  Each message names what
 * is wrong.
 */
int metrics_compute(const struct routing *r, const struct routing *prev,
		    const struct metrics_cons *cons, const struct metrics_memorized *memorized,
		    const struct metrics_opts *o, struct metrics_result **ret, struct gw_err *err);
/* metrics_compute with a distance cache keyed to r (may be NULL). */
int metrics_compute_cached(const struct routing *r, const struct routing *prev,
			   const struct metrics_cons *cons,
			   const struct metrics_memorized *memorized, const struct metrics_opts *o,
			   struct metrics_dcache *cache, struct metrics_result **ret,
			   struct gw_err *err);
void metrics_result_free(struct metrics_result *m); /* accepts NULL */

/*
 * The metrics as JSON, with no message label (the publisher adds "type",
 * the journal marks its lines with "kind", analyze --json prints "type"):
 *   {"step", "checkpoint", "probe_hash", "tau",
 *    "groups": {"<g>": SET + "memorized": MSET, ..., "all": ...},
 *    "consistency_note", "health": {"overall": {...}, "layers": [{...}]} | null,
 *    "health_note", "churn", "churn_note",
 *    "timings": {"pathways_sec", "consistency_sec", "memorized_sec",
 *                "health_sec", "total_sec"}}
 * SET = {"pathway_distance", "pathway_distance_se", "pathway_distance_stderr",
 *        "n_pairs", "sampled", "pathway_consistency", "adjacent_cosine",
 *        "n_undefined", "loss", "n_samples", "per_layer_distance": [...] | null};
 * MSET the same without per_layer_distance, with "epsilon".  NaN
 * (undefined) values are null.  A new object the caller frees with
 * cJSON_Delete; aborts on OOM.
 */
cJSON *metrics_result_json(const struct metrics_result *m);
/* One set as JSON: per_layer_distance its n_layers values when it has
 * them, null when it has none and n_layers > 0 (opts.per_layer off),
 * absent when n_layers is 0 (a memorized set). */
cJSON *metrics_set_json(const struct metrics_set *s, int n_layers);
/* A memorized set as JSON: MSET above. */
cJSON *metrics_memorized_json(const struct metrics_set *s);

/*
 * Building blocks, shared with routing_series.c.
 *
 * metrics_groups: the distinct names among groups[0 .. n) in order of first
 * appearance (*ret_names, *ret_ng; the strings are borrowed from groups)
 * and each sample's group number (*ret_gid, [n]).  Free both arrays.
 * O(n log n).
 */
void metrics_groups(char *const *groups, int n, const char ***ret_names, int *ret_ng,
		    int **ret_gid);

struct pathway_set;
/*
 * The set metrics of samples idx[0 .. n) (n may be 0): the distance over
 * ps with its jackknife standard error (with per_layer_distance,
 * allocated, when `layers`), consistency and adjacent cosine from cons
 * (may lack them: NaN), loss from loss[]; epsilon NaN.
 * Errors: those of pathway_distance.  Free out->per_layer_distance.
 */
int metrics_set_compute(const struct pathway_set *ps, const struct metrics_cons *cons,
			const float *loss, const int *idx, int n, const struct metrics_opts *o,
			bool layers, struct metrics_set *out, struct gw_err *err);
/*
 * Distances already computed for one checkpoint's routing, by sample set,
 * so that a later computation over the same routing takes them instead of
 * computing them again: the daemon's and analyze's republished memorized
 * subsets (routing_series_recompute_cached) include the newest step's,
 * which metrics_compute_cached has just computed.  The caller keys it to
 * the routing: metrics_dcache_reset(c, step) before computing a step's
 * metrics, and passes it only for that step's routing and the same
 * options.  Entries hold their own copy of the index sequence.  One
 * thread at a time.
 */
struct metrics_dcache *metrics_dcache_new(void);
void metrics_dcache_free(struct metrics_dcache *c); /* accepts NULL */
/* Forget every entry; the cache is now for step `step` (-1: none). */
void metrics_dcache_reset(struct metrics_dcache *c, int64_t step);
int64_t metrics_dcache_step(const struct metrics_dcache *c);

/*
 * The set metrics of nreq sets at once, as metrics_set_compute gives each
 * (req[q].out), with the distance of each distinct index sequence computed
 * once: requests whose idx[0 .. n) are equal share it (with per-layer
 * distances when any of them asks: req.layers), and their values are those
 * separate calls would give, exactly.  Callers list a set's samples in
 * ascending order, so equal sets are equal sequences.  *ret_distinct (may
 * be NULL) receives the number of distances computed.
 * Errors: those of pathway_distance; on failure no out is written.
 */
struct metrics_set_req {
	const int *idx;              /* borrowed */
	int n;
	bool layers;
	struct metrics_set *out;
	double sec;                  /* set: seconds its distance took (0 when
				      * it shared an earlier request's) */
};
int metrics_sets_compute(const struct pathway_set *ps, const struct metrics_cons *cons,
			 const float *loss, struct metrics_set_req *req, int nreq,
			 const struct metrics_opts *o, int *ret_distinct, struct gw_err *err);
/* The same, taking distances from `cache` (may be NULL) where it has the
 * set, and adding those it computes. */
int metrics_sets_compute_cached(const struct pathway_set *ps, const struct metrics_cons *cons,
				const float *loss, struct metrics_set_req *req, int nreq,
				const struct metrics_opts *o, struct metrics_dcache *cache,
				int *ret_distinct, struct gw_err *err);

/* -EINVAL with a message when an option is out of range. */
int metrics_opts_check(const struct metrics_opts *o, struct gw_err *err);

#endif
