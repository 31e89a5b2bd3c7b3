/*
 * bench_analyze.c — the whole `grokwatchd analyze` process on one routing
 * file of 600 OLMoE-like samples against edlib's C library computing the
 * same all-pairs mean distance (issue 20, item 1).
 *
 * The file: N = 600 samples in one group, 16 MoE layers, 64 experts, the
 * router weights of each layer (64 x 2048, for the consistency), no
 * per-token records; gbar from the synthetic routing of bench_distance.c
 * (a layer-wide popularity, a per-group preference and per-sample noise,
 * through a softmax whose temperature is bisected until the pathways
 * average TARGET_LEN bytes).  It is written twice, with the same gbar:
 *   - "mean": every loss unknown (NaN), so the memorized subset is empty,
 *     and analyze runs with --no-per-layer: the all-pairs mean alone (with
 *     its jackknife, which analyze always computes, and the consistency);
 *   - "full": every loss 0.5 nats, so every sample is memorized (epsilon
 *     1): the group, `all`, and both memorized subsets are the same set,
 *     and the per-layer distances are computed too.
 *
 * The peer: edlibAlign (edlibDefaultAlignConfig(): global distance only,
 * one thread, the library's own choice of band doubling) over every pair
 * of the same pathway strings, built by the engine's pathway builder from
 * the same gbar.  Its total must equal the n_pairs * pathway_distance that
 * analyze prints.  edlib is single-threaded; analyze runs with --threads 0
 * (all cores), as a user runs it.
 *
 * The three timings (analyze mean, analyze full, edlib) are interleaved,
 * REPS rounds, so a change in the machine's load hits all of them; each
 * figure is the median.  The load is printed before and after.  Wall time
 * of the child process from fork to exit, and its CPU time (user + system,
 * from wait4) over its wall time: how many cores it kept busy.
 *
 * Needs GW_BIN (the grokwatchd to run; make bench sets it).  With
 * GW_BENCH_ANALYZE_WRITE=DIR it only writes DIR/mean.safetensors and
 * DIR/full.safetensors (for profiling by hand) and exits.
 * Output: a readable summary and a JSON line {"bench": "analyze", ...}.
 */
#include <edlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>

#include "bench_util.h"
#include "engine/pathway.h"
#include "engine/routing.h"
#include "engine/routing_file.h"

#define N 600
#define LAYERS 16
#define EXPERTS 64
#define HIDDEN 2048
#define REPS 3
#define TARGET_LEN 680.0

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *msg)
{
	fprintf(stderr, "bench_analyze: %s\n", msg);
	exit(1);
}

/* Raw logits z[i][l][e] (one group: a popularity and one preference). */
static float *make_logits(int n)
{
	static double pop[LAYERS][EXPERTS], grp[LAYERS][EXPERTS];
	float *z = malloc((size_t)n * LAYERS * EXPERTS * sizeof(float));

	if (!z)
		abort();
	for (int l = 0; l < LAYERS; l++)
		for (int e = 0; e < EXPERTS; e++) {
			pop[l][e] = normal();
			grp[l][e] = normal();
		}
	for (int i = 0; i < n; i++)
		for (int l = 0; l < LAYERS; l++)
			for (int e = 0; e < EXPERTS; e++)
				z[((size_t)i * LAYERS + l) * EXPERTS + e] = (float)(
					0.6 * pop[l][e] + 0.8 * grp[l][e] + 0.7 * normal());
	return z;
}

static void softmax_rows(const float *z, float *g, int n, double scale)
{
	for (size_t r = 0; r < (size_t)n * LAYERS; r++) {
		double mx = -1e300, sum = 0;

		for (int e = 0; e < EXPERTS; e++)
			if (z[r * EXPERTS + e] > mx)
				mx = z[r * EXPERTS + e];
		for (int e = 0; e < EXPERTS; e++)
			sum += exp(scale * (z[r * EXPERTS + e] - mx));
		for (int e = 0; e < EXPERTS; e++)
			g[r * EXPERTS + e] = (float)(exp(scale * (z[r * EXPERTS + e] - mx)) / sum);
	}
}

static struct pathway_set *build(const float *z, float *g, double scale, double *ret_mean_len)
{
	struct pathway_set *ps = NULL;
	struct gw_err err;
	double sum = 0;

	softmax_rows(z, g, N, scale);
	if (pathway_set_new(g, N, LAYERS, EXPERTS, PATHWAY_TAU_DEFAULT, &ps, &err) != 0)
		die(err.msg);
	for (int i = 0; i < N; i++) {
		size_t len;

		pathway_set_str(ps, i, &len);
		sum += (double)len;
	}
	*ret_mean_len = sum / N;
	return ps;
}

/* gbar (into g) with pathways of TARGET_LEN bytes on average; returns
 * their set. */
static struct pathway_set *olmoe_like(float *g, double *ret_mean_len)
{
	float *z = make_logits(N);
	double lo = 0.05, hi = 5, len = 0;
	struct pathway_set *ps;

	for (int it = 0; it < 30; it++) {
		double mid = (lo + hi) / 2;

		pathway_set_free(build(z, g, mid, &len));
		if (len > TARGET_LEN)
			lo = mid;
		else
			hi = mid;
	}
	ps = build(z, g, (lo + hi) / 2, ret_mean_len);
	free(z);
	return ps;
}

/* The routing file at `path`: gbar g, every loss `loss`, router weights
 * correlated from layer to layer (so consistency is defined). */
static void write_file(const char *path, const float *g, float loss)
{
	struct routing *r = routing_new(N, LAYERS, EXPERTS, 8);
	struct gw_err err;
	char id[32];

	memcpy(r->gbar, g, (size_t)N * LAYERS * EXPERTS * sizeof(float));
	r->hidden = HIDDEN;
	for (int i = 0; i < N; i++) {
		r->loss[i] = loss;
		r->ntokens[i] = 512;
		r->groups[i] = strdup("default");
		snprintf(id, sizeof(id), "s%d", i);
		r->ids[i] = strdup(id);
	}
	for (int l = 0; l < LAYERS; l++) {
		r->router[l] = malloc((size_t)EXPERTS * HIDDEN * sizeof(float));
		if (!r->router[l])
			abort();
		for (size_t k = 0; k < (size_t)EXPERTS * HIDDEN; k++)
			r->router[l][k] = (float)((l ? 0.8 * r->router[l - 1][k] : 0) +
						  normal() / sqrt((double)HIDDEN));
	}
	r->step = 1000;
	if (routing_file_write(path, r, &err) != 0)
		die(err.msg);
	routing_free(r);
}

struct run {
	double wall, cpu;         /* seconds */
	double mean;              /* group "all"'s pathway_distance */
	double n_pairs;
	int memorized;            /* samples in all's memorized subset */
	bool layers;              /* per_layer_distance present */
};

/* `grokwatchd analyze --json FILE [extra]`, timed from fork to exit. */
static struct run run_analyze(const char *gw, const char *file, const char *extra)
{
	static char big[1 << 20];
	struct run r = { 0 };
	struct rusage ru;
	int pfd[2], status;
	size_t got = 0;
	ssize_t k;
	double t0;
	pid_t pid;
	cJSON *o, *all;

	if (pipe(pfd) != 0)
		die("pipe failed");
	t0 = now();
	pid = fork();
	if (pid < 0)
		die("fork failed");
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		if (extra)
			execl(gw, gw, "analyze", "--json", "--threads", "0", extra, file, (char *)NULL);
		else
			execl(gw, gw, "analyze", "--json", "--threads", "0", file, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	while ((k = read(pfd[0], big + got, sizeof(big) - 1 - got)) > 0)
		got += (size_t)k;
	big[got] = 0;
	close(pfd[0]);
	if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("grokwatchd analyze failed");
	r.wall = now() - t0;
	r.cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
		(double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
	o = cJSON_Parse(big);
	if (!o)
		die("analyze printed no JSON");
	all = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "groups"), "all");
	if (!all)
		die("analyze's JSON has no group \"all\"");
	r.mean = cJSON_GetObjectItem(all, "pathway_distance")->valuedouble;
	r.n_pairs = cJSON_GetObjectItem(all, "n_pairs")->valuedouble;
	r.memorized = cJSON_GetObjectItem(cJSON_GetObjectItem(all, "memorized"), "n_samples")->valueint;
	r.layers = cJSON_IsArray(cJSON_GetObjectItem(all, "per_layer_distance"));
	cJSON_Delete(o);
	return r;
}

static double time_edlib(const struct pathway_set *ps, uint64_t *ret_total)
{
	uint64_t total = 0;
	double t0 = now();

	for (int i = 0; i < N; i++) {
		size_t li;
		const char *si = pathway_set_str(ps, i, &li);

		for (int j = i + 1; j < N; j++) {
			size_t lj;
			const char *sj = pathway_set_str(ps, j, &lj);
			EdlibAlignResult res = edlibAlign(si, (int)li, sj, (int)lj,
							  edlibDefaultAlignConfig());

			if (res.status != EDLIB_STATUS_OK || res.editDistance < 0)
				die("edlib failed");
			total += (uint64_t)res.editDistance;
			edlibFreeAlignResult(res);
		}
	}
	*ret_total = total;
	return now() - t0;
}

static void load(char *buf, size_t n)
{
	FILE *f = fopen("/proc/loadavg", "r");

	buf[0] = 0;
	if (f) {
		if (!fgets(buf, (int)n, f))
			buf[0] = 0;
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = 0;
}

int main(void)
{
	const char *gw = getenv("GW_BIN");
	char dir[] = "/tmp/gwbench_analyze.XXXXXX", fmean[64], ffull[64], l0[128], l1[128];
	float *g = malloc((size_t)N * LAYERS * EXPERTS * sizeof(float));
	double mean_len, tm[REPS], tf[REPS], te[REPS], cm[REPS], cf[REPS];
	struct pathway_set *ps;
	struct run rm = { 0 }, rf = { 0 };
	uint64_t total = 0;
	double pairs = (double)N * (N - 1) / 2, d_m, d_f, d_e;
	int status = 0;

	if (!gw || !g)
		die("set GW_BIN to the grokwatchd to measure");
	if (!mkdtemp(dir))
		die("mkdtemp failed");
	bench_rng = 0x2020202020202020ULL;
	ps = olmoe_like(g, &mean_len);
	snprintf(fmean, sizeof(fmean), "%s/mean.safetensors", dir);
	snprintf(ffull, sizeof(ffull), "%s/full.safetensors", dir);
	write_file(fmean, g, NAN);
	write_file(ffull, g, 0.5f);
	if (getenv("GW_BENCH_ANALYZE_WRITE")) {
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "mv %s/mean.safetensors %s/full.safetensors '%s'/", dir,
			 dir, getenv("GW_BENCH_ANALYZE_WRITE"));
		status = system(cmd) == 0 ? 0 : 1;
		rmdir(dir);
		return status;
	}
	load(l0, sizeof(l0));
	for (int k = 0; k < REPS; k++) {
		rm = run_analyze(gw, fmean, "--no-per-layer");
		te[k] = time_edlib(ps, &total);
		rf = run_analyze(gw, ffull, NULL);
		tm[k] = rm.wall, cm[k] = rm.cpu / rm.wall;
		tf[k] = rf.wall, cf[k] = rf.cpu / rf.wall;
	}
	load(l1, sizeof(l1));
	/* Exact means of integer totals: equal to edlib's to the last bit
	 * of the double. */
	if (rm.n_pairs != pairs || rf.n_pairs != pairs || rm.mean != (double)total / pairs ||
	    rf.mean != rm.mean || rm.layers || !rf.layers || rm.memorized != 0 ||
	    rf.memorized != N)
		status = 1;
	d_m = median(tm, REPS), d_f = median(tf, REPS), d_e = median(te, REPS);
	printf("analyze N=%d (one group, %d layers, %d experts, mean pathway %.1f bytes, "
	       "%.0f pairs): the mean alone %.3f s (%.2f cores busy), with per-layer distances "
	       "and the memorized subset %.3f s (%.2f cores busy); edlib %.3f s; "
	       "ratio %.2fx (target 10x) and %.2fx (target 4x); distances %s; "
	       "load %s -> %s\n",
	       N, LAYERS, EXPERTS, mean_len, pairs, d_m, median(cm, REPS), d_f, median(cf, REPS),
	       d_e, d_e / d_m, d_e / d_f, status ? "DIFFER" : "identical to edlib's", l0, l1);
	printf("{\"bench\": \"analyze\", \"n\": %d, \"layers\": %d, \"experts\": %d, "
	       "\"mean_len\": %.1f, \"reps\": %d, \"mean_s\": %.4f, \"mean_cores\": %.2f, "
	       "\"full_s\": %.4f, \"full_cores\": %.2f, \"edlib_s\": %.4f, \"ratio_mean\": %.3f, "
	       "\"ratio_full\": %.3f, \"identical\": %s, \"load_before\": \"%s\", "
	       "\"load_after\": \"%s\"}\n",
	       N, LAYERS, EXPERTS, mean_len, REPS, d_m, median(cm, REPS), d_f, median(cf, REPS),
	       d_e, d_e / d_m, d_e / d_f, status ? "false" : "true", l0, l1);
	unlink(fmean);
	unlink(ffull);
	rmdir(dir);
	pathway_set_free(ps);
	free(g);
	return status;
}
