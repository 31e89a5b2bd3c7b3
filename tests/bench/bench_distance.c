/*
 * bench_distance.c — all-pairs pathway distance, ours against edlib.
 *
 * Builds N = 1,000 and 2,000 OLMoE-like pathways (16 layers, 64 experts,
 * about 700 bytes each) with the engine's own pathway builder from synthetic
 * routing vectors, then times the exact mean over all pairs with
 * lev_mean_pairs (all cores, and one thread for the per-core figure, and
 * one thread with the jackknife the metrics ask for, its cost) and
 * with edlib's C library called pair by pair in a loop (edlibAlign with
 * edlibDefaultAlignConfig(): global (NW) distance only, one thread).  Both
 * totals must be identical.  Each figure is the median of REPS runs.
 *
 * Synthetic routing: per layer and expert, a layer-wide popularity, a
 * per-group preference (three groups, as math/code/web) and per-sample
 * noise, all standard normals, mixed and passed through a softmax whose
 * temperature is tuned (bisection on the mean pathway length) so pathways
 * average ~700 bytes; this gives the long-tailed, group-structured rows a
 * 64-expert router averaged over a sample's tokens produces.
 *
 * Output: a readable line per N and JSON lines {"bench": "distance", ...}.
 */
#include <edlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "engine/pathway.h"

#define LAYERS 16
#define EXPERTS 64
#define GROUPS 3
#define REPS 3
#define TARGET_LEN 700.0

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Raw logits z[i][l][e] for n samples. */
static float *make_logits(int n)
{
	static double pop[LAYERS][EXPERTS], grp[GROUPS][LAYERS][EXPERTS];
	float *z = malloc((size_t)n * LAYERS * EXPERTS * sizeof(float));
	int i, l, e, g;

	if (!z)
		abort();
	for (l = 0; l < LAYERS; l++)
		for (e = 0; e < EXPERTS; e++) {
			pop[l][e] = normal();
			for (g = 0; g < GROUPS; g++)
				grp[g][l][e] = normal();
		}
	for (i = 0; i < n; i++)
		for (l = 0; l < LAYERS; l++)
			for (e = 0; e < EXPERTS; e++)
				z[((size_t)i * LAYERS + l) * EXPERTS + e] = (float)(
					0.6 * pop[l][e] + 0.8 * grp[i % GROUPS][l][e] + 0.7 * normal());
	return z;
}

static void softmax_rows(const float *z, float *g, int n, double scale)
{
	size_t r, e;

	for (r = 0; r < (size_t)n * LAYERS; r++) {
		double mx = -1e300, sum = 0;

		for (e = 0; e < EXPERTS; e++)
			if (z[r * EXPERTS + e] > mx)
				mx = z[r * EXPERTS + e];
		for (e = 0; e < EXPERTS; e++)
			sum += exp(scale * (z[r * EXPERTS + e] - mx));
		for (e = 0; e < EXPERTS; e++)
			g[r * EXPERTS + e] = (float)(exp(scale * (z[r * EXPERTS + e] - mx)) / sum);
	}
}

static struct pathway_set *build(const float *z, float *g, int n, double scale, double *ret_mean_len)
{
	struct pathway_set *ps = NULL;
	struct gw_err err;
	double sum = 0;
	int i;

	softmax_rows(z, g, n, scale);
	if (pathway_set_new(g, n, LAYERS, EXPERTS, PATHWAY_TAU_DEFAULT, &ps, &err) != 0) {
		fprintf(stderr, "bench_distance: %s\n", err.msg);
		exit(1);
	}
	for (i = 0; i < n; i++) {
		size_t len;

		pathway_set_str(ps, i, &len);
		sum += (double)len;
	}
	*ret_mean_len = sum / n;
	return ps;
}

/* Tune the softmax scale so pathways average TARGET_LEN bytes. */
static struct pathway_set *olmoe_like(int n, double *ret_mean_len)
{
	float *z = make_logits(n), *g = malloc((size_t)n * LAYERS * EXPERTS * sizeof(float));
	double lo = 0.05, hi = 5, len = 0;
	struct pathway_set *ps;
	int it;

	if (!g)
		abort();
	for (it = 0; it < 30; it++) {
		double mid = (lo + hi) / 2;

		ps = build(z, g, n, mid, &len);
		pathway_set_free(ps);
		if (len > TARGET_LEN)
			lo = mid;   /* too flat: sharpen */
		else
			hi = mid;
	}
	ps = build(z, g, n, (lo + hi) / 2, ret_mean_len);
	free(z);
	free(g);
	return ps;
}

static double time_ours(const uint8_t **s, const size_t *len, int n, int threads, int kernel,
			bool jackknife, uint64_t *ret_total)
{
	struct lev_pair_opts o = { .budget = (uint64_t)n * n, .threads = threads, .kernel = kernel,
				   .jackknife = jackknife };
	struct lev_mean m;
	struct gw_err err;
	double t[REPS];
	int r;

	for (r = 0; r < REPS; r++) {
		double t0 = now();

		if (lev_mean_pairs(s, len, (size_t)n, &o, &m, &err) != 0) {
			fprintf(stderr, "bench_distance: %s\n", err.msg);
			exit(1);
		}
		t[r] = now() - t0;
		if (m.sampled)
			abort();
		if (r > 0 && m.total != *ret_total) {
			fprintf(stderr, "bench_distance: totals differ between runs\n");
			exit(1);
		}
		*ret_total = m.total;
	}
	return median(t, REPS);
}

static double time_edlib(const uint8_t **s, const size_t *len, int n, uint64_t *ret_total)
{
	double t[REPS];
	int r, i, j;

	for (r = 0; r < REPS; r++) {
		uint64_t total = 0;
		double t0 = now();

		for (i = 0; i < n; i++)
			for (j = i + 1; j < n; j++) {
				EdlibAlignResult res = edlibAlign((const char *)s[i], (int)len[i],
								  (const char *)s[j], (int)len[j],
								  edlibDefaultAlignConfig());

				if (res.status != EDLIB_STATUS_OK || res.editDistance < 0) {
					fprintf(stderr, "bench_distance: edlib failed\n");
					exit(1);
				}
				total += (uint64_t)res.editDistance;
				edlibFreeAlignResult(res);
			}
		t[r] = now() - t0;
		*ret_total = total;
	}
	return median(t, REPS);
}

int main(void)
{
	static const int sizes[] = { 1000, 2000 };
	int cores = (int)sysconf(_SC_NPROCESSORS_ONLN), k, status = 0;

	bench_rng = 0x0123456789abcdefULL;
	for (k = 0; k < 2; k++) {
		int n = sizes[k], i;
		double mean_len, t_all, t_one, t_jack, t_ed;
		uint64_t tot_all = 0, tot_one = 0, tot_jack = 0, tot_ed = 0;
		uint64_t pairs = (uint64_t)n * (n - 1) / 2;
		struct pathway_set *ps = olmoe_like(n, &mean_len);
		const uint8_t **s = malloc((size_t)n * sizeof(*s));
		size_t *len = malloc((size_t)n * sizeof(*len));

		if (!s || !len)
			abort();
		for (i = 0; i < n; i++)
			s[i] = (const uint8_t *)pathway_set_str(ps, i, &len[i]);
		t_all = time_ours(s, len, n, 0, LEV_KERNEL_AUTO, false, &tot_all);
		t_one = time_ours(s, len, n, 1, LEV_KERNEL_AUTO, false, &tot_one);
		/* What the jackknife (metrics' standard error) adds, on one core. */
		t_jack = time_ours(s, len, n, 1, LEV_KERNEL_AUTO, true, &tot_jack);
		t_ed = time_edlib(s, len, n, &tot_ed);
		if (tot_all != tot_ed || tot_one != tot_ed || tot_jack != tot_ed)
			status = 1;
		printf("distance N=%d (%llu pairs, mean length %.1f, mean distance %.2f): "
		       "ours %.0f pairs/s on %d cores (%.3f s), %.0f pairs/s on 1 core; "
		       "edlib %.0f pairs/s (%.3f s); ratio %.2fx (%.2fx per core); totals %s; "
		       "with the jackknife %.2fx the time on 1 core\n",
		       n, (unsigned long long)pairs, mean_len, (double)tot_all / (double)pairs,
		       pairs / t_all, cores, t_all, pairs / t_one, pairs / t_ed, t_ed,
		       t_ed / t_all, t_ed / t_one, tot_all == tot_ed ? "identical" : "DIFFER",
		       t_jack / t_one);
		printf("{\"bench\": \"distance\", \"n\": %d, \"pairs\": %llu, \"mean_len\": %.1f, "
		       "\"cores\": %d, \"reps\": %d, \"ours_s\": %.4f, \"ours_pairs_per_s\": %.0f, "
		       "\"ours_1core_pairs_per_s\": %.0f, \"edlib_s\": %.4f, "
		       "\"edlib_pairs_per_s\": %.0f, \"ratio\": %.3f, \"ratio_per_core\": %.3f, "
		       "\"jackknife_time_ratio_1core\": %.3f, "
		       "\"total\": %llu, \"edlib_total\": %llu, \"identical\": %s}\n",
		       n, (unsigned long long)pairs, mean_len, cores, REPS, t_all, pairs / t_all,
		       pairs / t_one, t_ed, pairs / t_ed, t_ed / t_all, t_ed / t_one, t_jack / t_one,
		       (unsigned long long)tot_all, (unsigned long long)tot_ed,
		       tot_all == tot_ed ? "true" : "false");
		fflush(stdout);
		free(s);
		free(len);
		pathway_set_free(ps);
	}
	return status;
}
