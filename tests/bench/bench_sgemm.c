/*
 * bench_sgemm.c — the peak that the forward pass's matrix products are
 * measured against, and the forward pass's own achieved rate.
 *
 *   bench_sgemm [peak [N]]                 cblas_sgemm on N x N x N (default
 *                                          2048): best and median of 5, GFLOP/s
 *   bench_sgemm forward CKPT PROBE.jsonl   forward_run once with its stats:
 *                                          FLOPs and time inside sgemm, load
 *                                          time, whole-run time, peak RSS
 *
 * Both print a readable line and one JSON line ({"bench": ...}) for
 * tests/bench/run.sh.  OpenBLAS keeps its default thread count (all cores),
 * the same in both modes, so the ratio of the two rates is the figure.
 * The file is divided into: timing helpers, the peak mode, the forward
 * mode, main.
 */
#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "engine/checkpoint.h"
#include "engine/forward.h"
#include "engine/probe.h"
#include "engine/routing.h"

#define PEAK_REPS 5
#define PEAK_N_MAX 16384

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int peak(int n)
{
	size_t nn = (size_t)n * (size_t)n;
	float *a = malloc(nn * sizeof(float)), *b = malloc(nn * sizeof(float));
	float *c = malloc(nn * sizeof(float));
	double sec[PEAK_REPS], flop = 2.0 * n * (double)n * n, best, med;

	if (!a || !b || !c) {
		fprintf(stderr, "bench_sgemm: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < nn; i++) {
		a[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
		b[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
	}
	/* One warm-up call lets OpenBLAS start its threads and fault in c. */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
		    n);
	for (int r = 0; r < PEAK_REPS; r++) {
		double t0 = now_sec();

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
			    c, n);
		sec[r] = now_sec() - t0;
	}
	qsort(sec, PEAK_REPS, sizeof(double), cmp_double);
	best = flop / sec[0] / 1e9;
	med = flop / sec[PEAK_REPS / 2] / 1e9;
	printf("sgemm %dx%dx%d, %d threads: best %.1f GFLOP/s, median %.1f GFLOP/s\n", n, n, n,
	       openblas_get_num_threads(), best, med);
	printf("{\"bench\": \"sgemm_peak\", \"n\": %d, \"threads\": %d, \"gflops_best\": %.2f, "
	       "\"gflops_median\": %.2f}\n",
	       n, openblas_get_num_threads(), best, med);
	free(a);
	free(b);
	free(c);
	return 0;
}

static int forward(const char *dir, const char *probe_path)
{
	struct gw_err err = { "" };
	struct ckpt *c = NULL;
	struct probe *p = probe_new();
	struct routing *rt = NULL;
	struct forward_stats st;
	int threads = openblas_get_num_threads(); /* OpenBLAS's default: the cores */
	struct forward_opts o = { .stats = &st, .threads = threads };
	struct rusage ru;
	int r, status = 1;

	/* As `grokwatchd analyze` does: the engine's threads, one OpenBLAS
	 * thread and no idle OpenBLAS workers. */
	openblas_set_num_threads(1);
	forward_blas_rest();
	if ((r = ckpt_open(dir, &c, &err)) < 0 ||
	    (r = probe_add_jsonl(p, probe_path, ckpt_model(c)->vocab, &err)) < 0) {
		fprintf(stderr, "bench_sgemm: %s\n", err.msg);
		goto out;
	}
	probe_finish(p);
	if ((r = forward_run(c, p, &o, &rt, &err)) < 0) {
		fprintf(stderr, "bench_sgemm: forward: %s\n", err.msg);
		goto out;
	}
	getrusage(RUSAGE_SELF, &ru);
	printf("forward %s: %lld tokens in %.3f s (%.0f tokens/s); sgemm %.2f GFLOP in %.3f s = "
	       "%.1f GFLOP/s; loading %.3f s; peak RSS %ld MB\n",
	       dir, (long long)st.tokens, st.total_sec, (double)st.tokens / st.total_sec,
	       st.gemm_flop / 1e9, st.gemm_sec, st.gemm_flop / st.gemm_sec / 1e9, st.load_sec,
	       ru.ru_maxrss / 1024);
	printf("  phases: embeddings %.3f s, attention %.3f s, feed-forward %.3f s, "
	       "head and loss %.3f s\n",
	       st.embed_sec, st.attn_sec, st.ffn_sec, st.head_sec);
	printf("{\"bench\": \"forward_engine\", \"checkpoint\": \"%s\", \"tokens\": %lld, "
	       "\"threads\": %d, \"total_sec\": %.4f, \"gemm_gflop\": %.4f, \"gemm_sec\": %.4f, "
	       "\"gemm_gflops\": %.2f, \"load_sec\": %.4f, \"embed_sec\": %.4f, "
	       "\"attn_sec\": %.4f, \"ffn_sec\": %.4f, \"head_sec\": %.4f, \"maxrss_kb\": %ld}\n",
	       dir, (long long)st.tokens, threads, st.total_sec,
	       st.gemm_flop / 1e9, st.gemm_sec, st.gemm_flop / st.gemm_sec / 1e9, st.load_sec,
	       st.embed_sec, st.attn_sec, st.ffn_sec, st.head_sec, ru.ru_maxrss);
	status = 0;
out:
	routing_free(rt);
	probe_free(p);
	ckpt_free(c);
	return status;
}

int main(int argc, char **argv)
{
	if (argc == 1)
		return peak(2048);
	if (strcmp(argv[1], "peak") == 0 && argc <= 3) {
		long n = 2048;
		char *end;

		if (argc == 3) {
			errno = 0;
			n = strtol(argv[2], &end, 10);
			if (errno || *end || n < 1 || n > PEAK_N_MAX) {
				fprintf(stderr, "bench_sgemm: N must be 1..%d\n", PEAK_N_MAX);
				return 2;
			}
		}
		return peak((int)n);
	}
	if (strcmp(argv[1], "forward") == 0 && argc == 4)
		return forward(argv[2], argv[3]);
	fprintf(stderr, "usage: bench_sgemm [peak [N]] | bench_sgemm forward CKPT PROBE.jsonl\n");
	return 2;
}
