/*
 * bench_metrics.c — pathway consistency (metrics_consistency) at the
 * issue's sizes: N = 1,000 and 2,000 samples, 16 MoE layers, 64 experts,
 * hidden 2048 (OLMoE-like).  Target: well under a second.
 *
 * Synthetic routing with the structure real models have, so that adjacent
 * layers' routing embeddings are correlated and C_i is defined (max c_l
 * above the 0.05 floor): a sample's gbar rows are softmaxes of normals that
 * share a per-sample part, and each layer's router weight is 0.8 of the
 * layer before plus fresh noise (all standard normal / sqrt(H)).  Timed with OpenBLAS on all
 * cores and on one; each figure the median of REPS runs.  Before timing,
 * a few samples' C_i are checked against a plain double-precision loop
 * (e = W^T g written out, no BLAS), so the figure is of a right answer.
 *
 * Then the whole metrics_compute once per N (three groups, per-layer
 * distances included) for scale.
 *
 * Output: a readable line per N and thread count, and JSON lines
 * {"bench": "consistency", ...}, {"bench": "metrics_compute", ...}.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "engine/json.h"
#include "engine/metrics.h"
#include "engine/routing.h"

#define LAYERS 16
#define EXPERTS 64
#define HIDDEN 2048
#define REPS 3

static struct routing *make_routing(int n)
{
	struct routing *r = routing_new(n, LAYERS, EXPERTS, 8);
	double base[EXPERTS];

	r->hidden = HIDDEN;
	for (int i = 0; i < n; i++) {
		for (int e = 0; e < EXPERTS; e++)
			base[e] = normal();
		for (int l = 0; l < LAYERS; l++) {
			float *g = r->gbar + ((size_t)i * LAYERS + l) * EXPERTS;
			double s = 0;

			for (int e = 0; e < EXPERTS; e++) {
				g[e] = (float)exp(1.5 * (0.8 * base[e] + 0.6 * normal()));
				s += g[e];
			}
			for (int e = 0; e < EXPERTS; e++)
				g[e] = (float)(g[e] / s);
		}
	}
	for (int l = 0; l < LAYERS; l++) {
		r->router[l] = gw_malloc((size_t)EXPERTS * HIDDEN * sizeof(float));
		for (size_t j = 0; j < (size_t)EXPERTS * HIDDEN; j++)
			r->router[l][j] = (float)((l ? 0.8 * r->router[l - 1][j] * sqrt(HIDDEN) : 0) +
						  (l ? 0.6 : 1.0) * normal()) /
					  (float)sqrt(HIDDEN);
	}
	for (int i = 0; i < n; i++)
		r->groups[i] = gw_strdup(i % 3 == 0 ? "math" : i % 3 == 1 ? "code" : "web");
	return r;
}

/* C_i the plain way, in double. */
static double plain_c(const struct routing *r, int i)
{
	static double e[2][HIDDEN];
	double sum = 0, mx = -INFINITY, na = 0;

	for (int l = 0; l < LAYERS; l++) {
		double *cur = e[l & 1], *prev = e[(l + 1) & 1], nb = 0, dot = 0;
		const float *g = r->gbar + ((size_t)i * LAYERS + l) * EXPERTS;

		for (int h = 0; h < HIDDEN; h++) {
			double v = 0;

			for (int k = 0; k < EXPERTS; k++)
				v += (double)g[k] * r->router[l][(size_t)k * HIDDEN + h];
			cur[h] = v;
			nb += v * v;
			if (l)
				dot += v * prev[h];
		}
		nb = sqrt(nb);
		if (l) {
			double c = dot / (na * nb);

			sum += c;
			if (c > mx)
				mx = c;
		}
		na = nb;
	}
	return mx > 0.05 ? 1 - sum / (LAYERS - 1) / (mx + 1e-8) : NAN;
}

int main(void)
{
	static const int sizes[2] = { 1000, 2000 };
	int cores = (int)sysconf(_SC_NPROCESSORS_ONLN), status = 0;

	json_init(); /* metrics.c counts on the hooked allocator */
	bench_rng = 0x243f6a8885a308d3ULL;
	for (int s = 0; s < 2; s++) {
		int n = sizes[s];
		struct routing *r = make_routing(n);
		struct metrics_cons *c = NULL;
		struct gw_err err;
		int threads[2] = { cores, 1 };

		if (metrics_consistency(r, METRICS_CONSISTENCY_FLOOR, &c, &err) < 0) {
			fprintf(stderr, "bench_metrics: %s\n", err.msg);
			return 1;
		}
		for (int i = 0; i < n; i += n / 4) {
			double want = plain_c(r, i);

			/* Defined, and equal: an undefined C_i would check nothing. */
			if (isnan(want) || !(fabs(c->c[i] - want) <= 1e-4 * (1 + fabs(want)))) {
				fprintf(stderr, "bench_metrics: C_%d = %.9g, plain loop %.9g\n", i,
					c->c[i], want);
				status = 1;
			}
		}
		metrics_cons_free(c);
		for (int t = 0; t < 2; t++) {
			double sec[REPS], med, flop = 2.0 * n * EXPERTS * HIDDEN * LAYERS;

			openblas_set_num_threads(threads[t]);
			for (int k = 0; k < REPS; k++) {
				double t0 = now();

				metrics_consistency(r, METRICS_CONSISTENCY_FLOOR, &c, NULL);
				sec[k] = now() - t0;
				metrics_cons_free(c);
			}
			qsort(sec, REPS, sizeof(double), cmp_double);
			med = sec[REPS / 2];
			printf("consistency N=%d (%d layers, %d experts, hidden %d), %d thread%s: "
			       "%.1f ms (%.1f GFLOP/s in the sgemms' flops)\n", n, LAYERS, EXPERTS, HIDDEN,
			       threads[t], threads[t] == 1 ? "" : "s", med * 1e3, flop / med * 1e-9);
			printf("{\"bench\": \"consistency\", \"n\": %d, \"layers\": %d, \"experts\": %d, "
			       "\"hidden\": %d, \"threads\": %d, \"sec\": %.6f, \"samples_per_sec\": %.1f}\n",
			       n, LAYERS, EXPERTS, HIDDEN, threads[t], med, n / med);
			fflush(stdout);
		}
		/* The whole of metrics_compute once (distance per group and for
		 * all with the per-layer diagnostic, consistency, memorized), for
		 * scale: the distance dominates and has its own benchmark. */
		{
			struct metrics_result *m = NULL;
			struct metrics_opts o;
			double t0;

			metrics_opts_init(&o);
			openblas_set_num_threads(cores);
			t0 = now();
			if (metrics_compute(r, NULL, NULL, NULL, &o, &m, &err) < 0) {
				fprintf(stderr, "bench_metrics: %s\n", err.msg);
				return 1;
			}
			printf("metrics_compute N=%d, 3 groups: %.3f s (pathways %.3f s, consistency "
			       "%.3f s, memorized %.3f s)\n", n, now() - t0, m->sec.pathways,
			       m->sec.consistency, m->sec.memorized);
			printf("{\"bench\": \"metrics_compute\", \"n\": %d, \"sec\": %.6f, "
			       "\"pathways_sec\": %.6f, \"consistency_sec\": %.6f}\n", n, m->sec.total,
			       m->sec.pathways, m->sec.consistency);
			metrics_result_free(m);
		}
		routing_free(r);
	}
	return status;
}
