/*
 * analyze.c — `grokwatchd analyze`: the daemon's computation run once, with
 * no daemon, over the checkpoints named on the command line.
 *
 * The file is divided as the work flows:
 *   - options: the command line, into struct analyze_opts; every option
 *     that is also a config key (probe.*, metrics.*, threads.blas) is
 *     checked against that key's row of the config table, so analyze takes
 *     what the config takes and refuses the rest in the config's words;
 *   - sources: each argument's routing through the engine's pipeline
 *     (engine/analysis.h: routing file, DIR/routing.safetensors or the
 *     forward pass over the probe set), and its step;
 *   - metrics: checkpoints in step order through the same struct analysis
 *     the daemon's job uses (series, memorized mask, churn against the step
 *     before), then the memorized subset of every step recomputed against
 *     the latest one (SPEC §4);
 *   - output: a per-group table, or one JSON object a checkpoint (--json).
 * Progress goes to stderr when it is a terminal.
 */
#include <cJSON.h>
#include <cblas.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "engine/analysis.h"
#include "engine/file.h"
#include "engine/forward.h"
#include "engine/json.h"
#include "engine/levenshtein.h"
#include "engine/metrics.h"
#include "engine/probe.h"
#include "engine/routing.h"
#include "engine/routing_file.h"
#include "engine/routing_series.h"
#include "engine/source.h"
#include "engine/step.h"

#define ANALYZE_CKPTS_MAX 10000

struct analyze_opts {
	struct probe_load_opts probe; /* path NULL: no probe */
	const char *dump_path;
	bool json;
	int threads;
	struct metrics_opts m;
};

/* One checkpoint argument and what became of it. */
struct item {
	const char *arg;
	char *name;          /* basename, for display */
	int64_t step;
	enum source_kind kind;
	char *arch;          /* NULL unknown */
	int n_samples, n_layers;
	struct routing *r;   /* loaded; the analysis owns it once added */
	struct analysis_out out;
	double sec;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: grokwatchd analyze [OPTIONS] CKPT...\n"
		"\n"
		"Compute the routing metrics of each checkpoint once, with no daemon.  CKPT is a\n"
		"checkpoint directory (config.json and safetensors weights), a directory holding\n"
		"routing.safetensors (used instead of running the model), or a routing file.\n"
		"Checkpoints are taken in step order (from the name, trainer_state.json or the\n"
		"routing file); churn is against the previous one and the memorized subset\n"
		"against the latest.\n"
		"\n"
		"Options:\n"
		"  --probe FILE          probe set; needed unless every CKPT has routing records\n"
		"  --probe-format FMT    jsonl (default), u16 or u32 (raw token memmap)\n"
		"  --sample-length N     tokens a sample for u16/u32 (default 512)\n"
		"  --count N             samples for u16/u32 (default 64)\n"
		"  --offset N            first token for u16/u32 (default 0)\n"
		"  --group NAME          group of the u16/u32 samples (default \"default\")\n"
		"  --dump-routing FILE   write the routing records of the (single) CKPT\n"
		"  --json                one JSON object a checkpoint, a line each\n"
		"  --tau X               pathway threshold, 1e-6 to 1 (default 0.7)\n"
		"  --pair-budget N       exact mean up to N pairs, else sampled (default %llu)\n"
		"  --seed N              seed of the pair sample (default 0: built-in)\n"
		"  --epsilon X           memorization loss threshold in nats, or auto (default %g)\n"
		"  --delta X             memorization stability band (default %g)\n"
		"  --memorized-share X   share an auto epsilon memorizes per group (default %g)\n"
		"  --consistency-floor X largest adjacent cosine below which C is undefined\n"
		"                        (default %g)\n"
		"  --no-per-layer        no per-layer distances (metrics.per_layer_distance false)\n"
		"  --threads N           threads; 0 (the default) = all cores\n"
		"  -h, --help            this text\n"
		"\n"
		"An option that is also a config key (probe.*, metrics.*, threads.blas) takes\n"
		"the values the key takes (grokwatchd.json(5)).\n"
		"\n"
		"Exit status: 0 success, 1 an input is unusable or the work failed, 2 usage.\n",
		(unsigned long long)LEV_DEFAULT_BUDGET, METRICS_EPSILON_DEFAULT,
		METRICS_DELTA_DEFAULT, METRICS_MEMORIZED_SHARE_DEFAULT, METRICS_CONSISTENCY_FLOOR);
}

/*
 * The options that are config keys, checked against the key's row of the
 * config table (config.h): its type, bounds and enum values, with the
 * config's words after "OPTION: KEY: ".  `s` is the option's text.
 */
static const struct config_key *key_of(const char *key)
{
	const struct config_key *k = config_key_find(key);

	GW_BUG_ON(!k);
	return k;
}

static int opt_fail(const char *opt, const struct config_key *k, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int opt_fail(const char *opt, const struct config_key *k, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "grokwatchd: analyze: %s: %s: ", opt, k->path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

static int opt_number(const char *opt, const char *key, const char *s, double *ret)
{
	const struct config_key *k = key_of(key);
	bool integer = k->type == CONFIG_INT;
	char *end;
	double v;

	cJSON *n;
	enum json_num r;

	GW_BUG_ON(k->type != CONFIG_INT && k->type != CONFIG_DOUBLE);
	if (k->word && !strcmp(s, k->word)) {
		*ret = k->word_value;
		return 0;
	}
	v = strtod(s, &end);
	if ((end == s || *end || isspace((unsigned char)*s)) && k->word)
		return opt_fail(opt, k, "expected a number or \"%s\", got \"%s\"", k->word, s);
	if (end == s || *end || isspace((unsigned char)*s))
		return opt_fail(opt, k, "expected %s, got '%s'", integer ? "an integer" : "a number",
				s);
	/* The config's checks, in its order (engine/json.h's bounded number). */
	n = cJSON_CreateNumber(v);
	r = json_number(n, k->min, k->max, integer, ret);
	cJSON_Delete(n);
	switch (r) {
	case JSON_NUM_OK:
		return 0;
	case JSON_NUM_NOT_NUMBER:
		break;
	case JSON_NUM_NOT_FINITE:
		return opt_fail(opt, k, "the number is out of range");
	case JSON_NUM_NOT_INTEGER:
		return opt_fail(opt, k, "expected an integer, got %g", v);
	case JSON_NUM_BELOW:
		return opt_fail(opt, k, "%.17g is below the minimum %.17g", v, k->min);
	case JSON_NUM_ABOVE:
		return opt_fail(opt, k, "%.17g is above the maximum %.17g", v, k->max);
	}
	GW_BUG_ON(1);
	return -1;
}

static int opt_int(const char *opt, const char *key, const char *s, int64_t *ret)
{
	double v;

	GW_BUG_ON(key_of(key)->type != CONFIG_INT);
	if (opt_number(opt, key, s, &v) < 0)
		return -1;
	*ret = (int64_t)v;
	return 0;
}

static int opt_string(const char *opt, const char *key, const char *s)
{
	const struct config_key *k = key_of(key);
	size_t len = strlen(s), max = k->max > 0 ? (size_t)k->max : CONFIG_STRING_MAX;
	struct gw_err e;

	GW_BUG_ON(k->type != CONFIG_STRING);
	if (len > max)
		return opt_fail(opt, k, "the string is %zu bytes, more than the maximum %zu", len,
				max);
	if (len < (size_t)k->min)
		return opt_fail(opt, k, "must not be empty");
	if (k->check && k->check(s, &e) < 0)
		return opt_fail(opt, k, "%s", e.msg);
	return 0;
}

/* The index of s among the key's enum values. */
static int opt_enum(const char *opt, const char *key, const char *s, int *ret)
{
	const struct config_key *k = key_of(key);
	char list[256] = "";
	size_t used = 0;

	GW_BUG_ON(k->type != CONFIG_ENUM);
	for (int i = 0; k->enums[i]; i++)
		if (!strcmp(k->enums[i], s)) {
			*ret = i;
			return 0;
		}
	for (int j = 0; k->enums[j] && used < sizeof(list); j++) {
		int w = snprintf(list + used, sizeof(list) - used, "%s%s", j ? ", " : "", k->enums[j]);

		if (w < 0)
			break;
		used += (size_t)w;
	}
	return opt_fail(opt, k, "\"%.64s\" is not one of %s", s, list);
}

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int all_cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

static bool is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

struct progress {
	const char *name;
	bool tty;
};

static void on_progress(void *ud, int done, int total)
{
	struct progress *p = ud;

	if (!p->tty)
		return;
	fprintf(stderr, "\r\033[Kanalyze: %s: layer %d/%d", p->name, done, total);
	if (done == total)
		fprintf(stderr, "\r\033[K");
	fflush(stderr);
}

/* Load or compute the routing of one argument (analysis_load: source.h
 * picks the source) and find its step. */
static int item_load(struct item *it, const struct analysis *an, int threads, struct gw_err *err)
{
	struct progress pr = { .name = it->name, .tty = isatty(STDERR_FILENO) };
	struct forward_opts fo = { .progress = on_progress, .ud = &pr, .threads = threads };
	int rc;

	rc = analysis_load(an, it->arg, &fo, &it->r, &it->kind, err);
	if (rc < 0)
		return rc;
	it->arch = it->r->arch ? gw_strdup(it->r->arch) : NULL;
	it->n_samples = it->r->n_samples;
	it->n_layers = it->r->n_layers;
	if (it->r->step >= 0) {
		it->step = it->r->step;
	} else if (step_from_name(it->name, step_default_patterns, &it->step) < 0) {
		int64_t s;

		if (is_dir(it->arg) && step_from_trainer_state(it->arg, &s, NULL) == 0)
			it->step = s;
	}
	it->r->step = it->step;
	return 0;
}

static int cmp_item(const void *a, const void *b)
{
	const struct item *x = a, *y = b;

	/* Unknown steps (-1) keep their place after the known ones. */
	if ((x->step < 0) != (y->step < 0))
		return x->step < 0 ? 1 : -1;
	return (x->step > y->step) - (x->step < y->step);
}

static void print_num(double v, int width, int prec)
{
	if (isnan(v))
		printf(" %*s", width, "-");
	else
		printf(" %*.*f", width, prec, v);
}

/* The trainer's own figures (analysis.h "trainer"), where it logged them. */
static void print_trainer(const cJSON *t)
{
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(t, "loss");
	const cJSON *ls = cJSON_GetObjectItemCaseSensitive(t, "loss_step");
	const cJSON *lr = cJSON_GetObjectItemCaseSensitive(t, "learning_rate");
	const cJSON *lrs = cJSON_GetObjectItemCaseSensitive(t, "learning_rate_step");

	if (!t)
		return;
	printf("  trainer:");
	if (cJSON_IsNumber(l) && cJSON_IsNumber(ls))
		printf(" loss %.4f (logged at step %.0f)", l->valuedouble, ls->valuedouble);
	if (cJSON_IsNumber(lr) && cJSON_IsNumber(lrs))
		printf("%s learning rate %.4g (step %.0f)", cJSON_IsNumber(l) ? "," : "",
		       lr->valuedouble, lrs->valuedouble);
	printf("\n");
}

static void print_text(const struct item *it)
{
	const struct metrics_result *m = it->out.res;

	printf("%s", it->name);
	if (it->step >= 0)
		printf("  step %lld", (long long)it->step);
	printf("  (%s, %s, %d samples, %d MoE layers, %.2f s)\n", it->arch ? it->arch : "?",
	       source_kind_name(it->kind), it->n_samples, it->n_layers, it->sec);
	printf("  %-12s %5s %9s %10s %7s %11s %8s  %9s %7s %10s\n", "group", "n", "loss",
	       "distance", "dist_se", "consistency", "adj_cos", "memorized", "epsilon", "mem_dist");
	for (int g = 0; g < m->n_groups; g++) {
		const struct metrics_group *gr = &m->groups[g];

		printf("  %-12s %5d", gr->name, gr->all.n_samples);
		print_num(gr->all.loss, 9, 4);
		print_num(gr->all.pathway_distance, 10, 3);
		print_num(gr->all.pathway_distance_se, 7, 3);
		print_num(gr->all.pathway_consistency, 11, 4);
		print_num(gr->all.adjacent_cosine, 8, 4);
		printf("  %9d", gr->memorized.n_samples);
		print_num(gr->memorized.epsilon, 7, 1);
		print_num(gr->memorized.pathway_distance, 10, 3);
		if (gr->all.sampled)
			printf("  (sampled %llu pairs, se %.3f)", (unsigned long long)gr->all.n_pairs,
			       gr->all.pathway_distance_stderr);
		printf("\n");
	}
	if (m->consistency_note)
		printf("  consistency: %s\n", m->consistency_note);
	if (m->health)
		printf("  health: imbalance %.3f (max %.3f), load entropy %.3f, dead experts %d, "
		       "router entropy %.3f, z-loss %.3f\n",
		       m->health->imbalance, m->health->max_imbalance, m->health->load_entropy,
		       m->health->dead_experts, m->health->router_entropy, m->health->z_loss);
	else if (m->health_note)
		printf("  health: %s\n", m->health_note);
	if (!isnan(m->churn))
		printf("  churn: %.4f of token-layer top-k sets changed\n", m->churn);
	print_trainer(cJSON_GetObjectItemCaseSensitive(it->out.result, "trainer"));
}

/*
 * Show the memorized-subset values of `memo` (recomputed against the
 * latest checkpoint) in the item's JSON and table.  The table borrows the
 * memo's sets; cmd_analyze clears them before freeing the result.
 */
static void memo_use(struct item *it, const struct metrics_memo *memo)
{
	struct metrics_result *res = it->out.res;

	routing_series_memo_apply(it->out.result, memo);
	for (int g = 0; g < res->n_groups; g++)
		for (int s = 0; s < memo->n_sets; s++)
			if (!strcmp(res->groups[g].name, memo->names[s])) {
				free(res->groups[g].memorized.per_layer_distance);
				res->groups[g].memorized = memo->sets[s];
			}
}

/* The JSON as analyze has always printed it: the "type" label first, and
 * no "source" or "arch" (the table shows those). */
static void json_for_output(cJSON *o)
{
	cJSON *t;

	cJSON_DeleteItemFromObjectCaseSensitive(o, "source");
	cJSON_DeleteItemFromObjectCaseSensitive(o, "arch");
	cJSON_AddStringToObject(o, "type", "metrics");
	t = cJSON_DetachItemFromObjectCaseSensitive(o, "type");
	cJSON_InsertItemInArray(o, 0, t);
}

static int parse_args(int argc, char **argv, struct analyze_opts *o)
{
	enum { O_PROBE = 256, O_FMT, O_LEN, O_COUNT, O_OFFSET, O_GROUP, O_DUMP, O_JSON, O_TAU,
	       O_BUDGET, O_SEED, O_EPS, O_DELTA, O_SHARE, O_FLOOR, O_NO_LAYER, O_THREADS };
	static const struct option longopts[] = {
		{ "probe", required_argument, NULL, O_PROBE },
		{ "probe-format", required_argument, NULL, O_FMT },
		{ "sample-length", required_argument, NULL, O_LEN },
		{ "count", required_argument, NULL, O_COUNT },
		{ "offset", required_argument, NULL, O_OFFSET },
		{ "group", required_argument, NULL, O_GROUP },
		{ "dump-routing", required_argument, NULL, O_DUMP },
		{ "json", no_argument, NULL, O_JSON },
		{ "tau", required_argument, NULL, O_TAU },
		{ "pair-budget", required_argument, NULL, O_BUDGET },
		{ "seed", required_argument, NULL, O_SEED },
		{ "epsilon", required_argument, NULL, O_EPS },
		{ "delta", required_argument, NULL, O_DELTA },
		{ "memorized-share", required_argument, NULL, O_SHARE },
		{ "consistency-floor", required_argument, NULL, O_FLOOR },
		{ "no-per-layer", no_argument, NULL, O_NO_LAYER },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	/* By probe.format's enum index (config.h). */
	static const enum probe_format formats[] = {
		[CONFIG_PROBE_JSONL] = PROBE_FORMAT_JSONL,
		[CONFIG_PROBE_U16] = PROBE_FORMAT_U16,
		[CONFIG_PROBE_U32] = PROBE_FORMAT_U32,
	};
	int64_t v;
	int c, i = 0;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			exit(0);
		case O_PROBE: o->probe.path = optarg; break;
		case O_FMT:
			if (opt_enum("--probe-format", "probe.format", optarg, &i) < 0)
				return -1;
			o->probe.format = formats[i];
			break;
		case O_LEN:
			if (opt_int("--sample-length", "probe.sample_length", optarg, &v) < 0)
				return -1;
			o->probe.length = (int)v;
			break;
		case O_COUNT:
			if (opt_int("--count", "probe.count", optarg, &v) < 0)
				return -1;
			o->probe.count = (int)v;
			break;
		case O_OFFSET:
			if (opt_int("--offset", "probe.offset", optarg, &o->probe.offset) < 0)
				return -1;
			break;
		case O_GROUP:
			if (opt_string("--group", "probe.group", optarg) < 0)
				return -1;
			o->probe.group = optarg;
			break;
		case O_DUMP: o->dump_path = optarg; break;
		case O_JSON: o->json = true; break;
		case O_TAU:
			if (opt_number("--tau", "metrics.tau", optarg, &o->m.tau) < 0)
				return -1;
			break;
		case O_BUDGET:
			if (opt_int("--pair-budget", "metrics.pair_budget", optarg, &v) < 0)
				return -1;
			o->m.pair_budget = (uint64_t)v;
			break;
		case O_SEED:
			if (opt_int("--seed", "metrics.seed", optarg, &v) < 0)
				return -1;
			o->m.seed = (uint64_t)v;
			break;
		case O_EPS:
			if (opt_number("--epsilon", "metrics.epsilon", optarg, &o->m.epsilon) < 0)
				return -1;
			break;
		case O_DELTA:
			if (opt_number("--delta", "metrics.delta", optarg, &o->m.delta) < 0)
				return -1;
			break;
		case O_SHARE:
			if (opt_number("--memorized-share", "metrics.memorized_share", optarg,
				       &o->m.memorized_share) < 0)
				return -1;
			break;
		case O_FLOOR:
			if (opt_number("--consistency-floor", "metrics.consistency_floor", optarg,
				       &o->m.consistency_floor) < 0)
				return -1;
			break;
		case O_NO_LAYER: o->m.per_layer = false; break;
		case O_THREADS:
			if (opt_int("--threads", "threads.blas", optarg, &v) < 0)
				return -1;
			o->threads = v > 0 ? (int)v : all_cores();
			o->m.threads = o->threads;
			break;
		default:
			if (optopt && optopt < 256)
				fprintf(stderr, "grokwatchd: analyze: unknown option '-%c'\n", optopt);
			else
				fprintf(stderr, "grokwatchd: analyze: unknown option or missing value in '%s'\n",
					argv[optind - 1]);
			return -1;
		}
	}
	return 0;
}

static void item_release(struct item *it)
{
	free(it->name);
	free(it->arch);
	routing_free(it->r);
	analysis_out_release(&it->out);
}

int cmd_analyze(int argc, char **argv)
{
	struct analyze_opts o = {
		.probe = { .format = PROBE_FORMAT_JSONL, .length = 512, .count = 64, .offset = 0,
			   .group = "default" },
	};
	struct analysis *an = NULL;
	struct metrics_memo *memo = NULL;
	struct item *items = NULL;
	struct probe *probe = NULL;
	size_t n_memo = 0;
	struct gw_err err = { "" };
	int n, rc = 1;

	/* The forward pass and the metrics spread their work over their own
	 * threads; OpenBLAS's products here are one core's each, and its idle
	 * workers would only spin beside them. */
	openblas_set_num_threads(1);
	forward_blas_rest();
	metrics_opts_init(&o.m);
	o.threads = all_cores();
	o.m.threads = o.threads;
	if (parse_args(argc, argv, &o) < 0) {
		fprintf(stderr, "Try 'grokwatchd analyze --help'.\n");
		return 2;
	}
	n = argc - optind;
	if (n < 1) {
		usage(stderr);
		return 2;
	}
	if (n > ANALYZE_CKPTS_MAX) {
		fprintf(stderr, "grokwatchd: analyze: at most %d checkpoints at once\n", ANALYZE_CKPTS_MAX);
		return 2;
	}
	if (o.dump_path && n != 1) {
		fprintf(stderr, "grokwatchd: analyze: --dump-routing takes exactly one checkpoint\n");
		return 2;
	}
	if (metrics_opts_check(&o.m, &err) < 0) {
		fprintf(stderr, "grokwatchd: analyze: %s\n", err.msg);
		return 2;
	}
	if (o.probe.path && probe_load(&o.probe, &probe, &err) < 0)
		goto fail;
	an = analysis_new(probe, &o.m, o.threads);
	probe = NULL;

	items = gw_calloc((size_t)n, sizeof(*items));
	for (int i = 0; i < n; i++) {
		double t0 = now_sec();

		items[i].arg = argv[optind + i];
		items[i].name = gw_path_base(items[i].arg);
		items[i].step = -1;
		if (item_load(&items[i], an, o.threads, &err) < 0)
			goto fail;
		items[i].sec = now_sec() - t0;
	}
	if (o.dump_path && routing_file_write(o.dump_path, items[0].r, &err) < 0)
		goto fail;

	qsort(items, (size_t)n, sizeof(*items), cmp_item);
	for (int i = 0; i < n; i++) {
		struct routing *r = items[i].r;
		double t0 = now_sec();

		items[i].r = NULL; /* the analysis owns it now */
		if (analysis_add(an, items[i].arg, r, items[i].kind, NULL, items[i].step, false,
				 &items[i].out, &err) < 0)
			goto fail;
		items[i].sec += now_sec() - t0;
		json_for_output(items[i].out.result);
	}
	/* The memorized subset of every step against the latest checkpoint. */
	if (analysis_memo(an, &memo, &n_memo, &err) < 0)
		goto fail;
	for (size_t j = 0; j < n_memo; j++)
		for (int i = 0; i < n; i++)
			if (items[i].step == memo[j].step)
				memo_use(&items[i], &memo[j]);
	for (int i = 0; i < n; i++) {
		if (o.json) {
			char *s = cJSON_PrintUnformatted(items[i].out.result);

			puts(s);
			free(s);
		} else {
			print_text(&items[i]);
			if (i + 1 < n)
				printf("\n");
		}
	}
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "grokwatchd: analyze: %s\n", err.msg);
	rc = 1;
out:
	if (memo) {
		/* The sets were shown through res->groups: only the memo owns them. */
		for (int i = 0; items && i < n; i++)
			if (items[i].out.res)
				for (int g = 0; g < items[i].out.res->n_groups; g++)
					memset(&items[i].out.res->groups[g].memorized, 0,
					       sizeof(struct metrics_set));
		routing_series_memo_free(memo, n_memo);
	}
	for (int i = 0; items && i < n; i++)
		item_release(&items[i]);
	free(items);
	analysis_free(an);
	probe_free(probe);
	return rc;
}
