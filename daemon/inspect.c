/*
 * inspect.c — `grokwatchd inspect [--json] PATH`: describe a checkpoint
 * directory or a single safetensors file, or say exactly why it is unusable.
 *
 * The file is divided into:
 *   - the command line;
 *   - a checkpoint directory: opened and fully validated by ckpt_open (config,
 *     every file, every tensor the forward pass needs), then described: the
 *     model, the dtypes, tensor and byte counts, the files, completeness;
 *   - a single safetensors file: its tensors (names, dtypes, shapes), bytes
 *     and metadata;
 *   - output as aligned text or as one JSON object (--json).
 * Any fault gives exit 1 and one line on stderr, "grokwatchd: inspect: "
 * followed by the engine's message, which names the file and the fault.
 */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "engine/checkpoint.h"
#include "engine/model.h"
#include "engine/safetensors.h"

#define TEXT_TENSORS_MAX 64 /* tensors listed in text; --json lists all */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: grokwatchd inspect [--json] [--all] PATH\n"
		"\n"
		"Describe a checkpoint directory (config.json plus model.safetensors or the shards\n"
		"model.safetensors.index.json lists) or a single .safetensors file, after\n"
		"validating it completely.\n"
		"\n"
		"For a checkpoint: the architecture, layers (and which are MoE), experts and\n"
		"top-k (and for the DeepSeek-V3 family the sigmoid router's groups and\n"
		"scaling), hidden size, the attention (heads, KV heads and head_dim, or the\n"
		"latent attention's ranks and dims), RoPE (rotary dims, YaRN), vocabulary,\n"
		"the dtypes present, tensor count, bytes of tensor data, the files, and\n"
		"whether it is complete (every file as long as its header declares).  For a\n"
		"safetensors file: the tensors with dtype and shape (the first %d; --all for\n"
		"every one), bytes and metadata.\n"
		"\n"
		"Options:\n"
		"  --json      print one JSON object instead (it lists every tensor of a file)\n"
		"  --all       list every tensor of a safetensors file in text\n"
		"  -h, --help  this text\n"
		"\n"
		"Exit status: 0 usable; 1 unusable, with one message on stderr naming the file\n"
		"and the fault; 2 usage error.\n",
		TEXT_TENSORS_MAX);
}

static int fail(const struct gw_err *err)
{
	fprintf(stderr, "grokwatchd: inspect: %s\n", err->msg);
	return 1;
}

static void print_json(cJSON *o)
{
	char *s = cJSON_Print(o);

	if (!s)
		abort(); /* cJSON failed to allocate: the daemon aborts on OOM */
	printf("%s\n", s);
	free(s);
	cJSON_Delete(o);
}

static void shape_text(char *buf, size_t len, const struct st_tensor *t)
{
	size_t n = (size_t)snprintf(buf, len, "[");

	for (int i = 0; i < t->ndim && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "",
				      (long long)t->shape[i]);
	if (n < len)
		snprintf(buf + n, len - n, "]");
}

static cJSON *shape_json(const struct st_tensor *t)
{
	cJSON *a = cJSON_CreateArray();

	for (int i = 0; i < t->ndim; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber((double)t->shape[i]));
	return a;
}

/* Bit d set: some tensor has dtype d. */
static unsigned dtypes_of(const struct st_header *h, unsigned mask)
{
	for (size_t i = 0; i < st_header_count(h); i++)
		mask |= 1u << st_header_tensor(h, i)->dtype;
	return mask;
}

static void dtypes_text(char *buf, size_t len, unsigned mask)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int d = 0; d < ST_DTYPE_COUNT && n < len; d++)
		if (mask & (1u << d))
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "",
					      st_dtype_name((enum st_dtype)d));
	if (!buf[0])
		snprintf(buf, len, "none");
}

static cJSON *dtypes_json(unsigned mask)
{
	cJSON *a = cJSON_CreateArray();

	for (int d = 0; d < ST_DTYPE_COUNT; d++)
		if (mask & (1u << d))
			cJSON_AddItemToArray(a, cJSON_CreateString(st_dtype_name((enum st_dtype)d)));
	return a;
}

/* "0-2" or "0, 2-23": the MoE layers as ranges. */
static void layers_text(char *buf, size_t len, const struct model_desc *m)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < m->n_layers && n < len; i++) {
		int j = i;

		if (!m->layer_moe[i])
			continue;
		while (j + 1 < m->n_layers && m->layer_moe[j + 1])
			j++;
		if (j == i)
			n += (size_t)snprintf(buf + n, len - n, "%s%d", n ? ", " : "", i);
		else
			n += (size_t)snprintf(buf + n, len - n, "%s%d-%d", n ? ", " : "", i, j);
		i = j;
	}
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

/* ---- a checkpoint directory ------------------------------------------ */

static int inspect_dir(const char *path, bool json)
{
	struct gw_err err = { "" }, why = { "" };
	struct ckpt *c = NULL;
	const struct model_desc *m;
	unsigned mask = 0;
	int complete;

	if (ckpt_open(path, &c, &err) < 0)
		return fail(&err);
	m = ckpt_model(c);
	for (size_t i = 0; i < ckpt_file_count(c); i++)
		mask = dtypes_of(st_file_header(ckpt_file_at(c, i)), mask);
	complete = ckpt_check_complete(path, NULL, &why);
	if (complete < 0) {
		ckpt_free(c);
		return fail(&why);
	}

	if (json) {
		cJSON *o = cJSON_CreateObject(), *a;

		cJSON_AddStringToObject(o, "path", path);
		cJSON_AddStringToObject(o, "kind", "checkpoint");
		cJSON_AddStringToObject(o, "arch", m->arch_name);
		cJSON_AddNumberToObject(o, "n_layers", m->n_layers);
		a = cJSON_AddArrayToObject(o, "moe_layers");
		for (int i = 0; i < m->n_layers; i++)
			if (m->layer_moe[i])
				cJSON_AddItemToArray(a, cJSON_CreateNumber(i));
		cJSON_AddNumberToObject(o, "n_experts", m->n_experts);
		cJSON_AddNumberToObject(o, "top_k", m->top_k);
		cJSON_AddBoolToObject(o, "norm_topk_prob", m->norm_topk_prob);
		cJSON_AddNumberToObject(o, "hidden", m->hidden);
		cJSON_AddNumberToObject(o, "n_heads", m->n_heads);
		cJSON_AddNumberToObject(o, "n_kv_heads", m->n_kv_heads);
		cJSON_AddNumberToObject(o, "head_dim", m->head_dim);
		cJSON_AddNumberToObject(o, "vocab", m->vocab);
		cJSON_AddNumberToObject(o, "moe_intermediate", m->moe_intermediate);
		cJSON_AddNumberToObject(o, "dense_intermediate", m->dense_intermediate);
		cJSON_AddNumberToObject(o, "shared_intermediate", m->shared_intermediate);
		cJSON_AddStringToObject(o, "router",
					m->router == ROUTER_SIGMOID ? "sigmoid" : "softmax");
		if (m->router == ROUTER_SIGMOID) {
			cJSON_AddNumberToObject(o, "n_group", m->n_group);
			cJSON_AddNumberToObject(o, "topk_group", m->topk_group);
			cJSON_AddNumberToObject(o, "routed_scaling_factor", m->routed_scaling);
		}
		cJSON_AddStringToObject(o, "attention", m->attn == ATTN_MLA ? "mla" : "gqa");
		if (m->attn == ATTN_MLA) {
			cJSON_AddNumberToObject(o, "q_lora_rank", m->q_lora_rank);
			cJSON_AddNumberToObject(o, "kv_lora_rank", m->kv_lora_rank);
			cJSON_AddNumberToObject(o, "qk_nope_head_dim", m->qk_nope_dim);
			cJSON_AddNumberToObject(o, "qk_rope_head_dim", m->qk_rope_dim);
			cJSON_AddNumberToObject(o, "v_head_dim", m->v_head_dim);
		}
		cJSON_AddNumberToObject(o, "softmax_scale", m->attn_scale);
		cJSON_AddBoolToObject(o, "tied", m->tie_embeddings);
		cJSON_AddNumberToObject(o, "rope_theta", m->rope_theta);
		cJSON_AddNumberToObject(o, "rope_dim", m->rope_dim);
		cJSON_AddBoolToObject(o, "rope_interleave", m->rope_interleave);
		cJSON_AddStringToObject(o, "rope_scaling", m->yarn ? "yarn" : "none");
		if (m->yarn) {
			cJSON_AddNumberToObject(o, "yarn_factor", m->yarn_factor);
			cJSON_AddNumberToObject(o, "yarn_original_max_position_embeddings",
						m->yarn_orig_max_pos);
			cJSON_AddNumberToObject(o, "yarn_attention_factor", m->rope_attn_factor);
		}
		cJSON_AddNumberToObject(o, "rms_norm_eps", m->rms_eps);
		cJSON_AddItemToObject(o, "dtypes", dtypes_json(mask));
		cJSON_AddNumberToObject(o, "tensors", (double)ckpt_tensor_count(c));
		cJSON_AddNumberToObject(o, "bytes", (double)ckpt_data_bytes(c));
		cJSON_AddBoolToObject(o, "sharded", ckpt_sharded(c));
		a = cJSON_AddArrayToObject(o, "files");
		for (size_t i = 0; i < ckpt_file_count(c); i++)
			cJSON_AddItemToArray(a, cJSON_CreateString(
							base_name(st_file_path(ckpt_file_at(c, i)))));
		cJSON_AddBoolToObject(o, "complete", complete == 1);
		if (complete == 0)
			cJSON_AddStringToObject(o, "incomplete", why.msg);
		print_json(o);
	} else {
		char buf[4096];

		printf("%-13s %s\n", "checkpoint", path);
		printf("%-13s %s\n", "architecture", m->arch_name);
		layers_text(buf, sizeof(buf), m);
		printf("%-13s %d (MoE: %s%s)\n", "layers", m->n_layers, buf,
		       m->n_moe_layers == m->n_layers ? ", all" : "");
		printf("%-13s %d, top-%d%s", "experts", m->n_experts, m->top_k,
		       m->norm_topk_prob ? " renormalized" : "");
		if (m->router == ROUTER_SIGMOID)
			printf(", sigmoid router with correction bias (%d groups, keep %d, "
			       "scaling %g)", m->n_group, m->topk_group, m->routed_scaling);
		printf("\n");
		printf("%-13s %d (expert FFN %d", "hidden", m->hidden, m->moe_intermediate);
		if (m->n_moe_layers < m->n_layers)
			printf(", dense FFN %d", m->dense_intermediate);
		if (m->shared_intermediate)
			printf(", shared expert %d", m->shared_intermediate);
		printf(")\n");
		if (m->attn == ATTN_MLA)
			printf("%-13s latent (MLA), %d heads, q_lora_rank %d%s, kv_lora_rank %d, "
			       "qk %d + %d rotary, v %d\n", "attention", m->n_heads, m->q_lora_rank,
			       m->q_lora_rank ? "" : " (q_proj)", m->kv_lora_rank, m->qk_nope_dim,
			       m->qk_rope_dim, m->v_head_dim);
		else
			printf("%-13s %d heads, %d KV heads, head_dim %d\n", "attention", m->n_heads,
			       m->n_kv_heads, m->head_dim);
		printf("%-13s theta %g, %d dims%s", "rope", m->rope_theta, m->rope_dim,
		       m->rope_interleave ? " interleaved" : "");
		if (m->yarn)
			printf(", YaRN factor %g over %g positions (attention factor %.6g)",
			       m->yarn_factor, m->yarn_orig_max_pos, m->rope_attn_factor);
		printf("\n");
		printf("%-13s %d%s\n", "vocab", m->vocab, m->tie_embeddings ? " (tied lm_head)" : "");
		dtypes_text(buf, sizeof(buf), mask);
		printf("%-13s %s\n", "dtypes", buf);
		printf("%-13s %zu\n", "tensors", ckpt_tensor_count(c));
		printf("%-13s %llu (%.1f MiB)\n", "bytes", (unsigned long long)ckpt_data_bytes(c),
		       (double)ckpt_data_bytes(c) / (1024.0 * 1024.0));
		printf("%-13s %zu%s\n", "files", ckpt_file_count(c),
		       ckpt_sharded(c) ? " (sharded, " CKPT_INDEX ")" : "");
		for (size_t i = 0; i < ckpt_file_count(c); i++)
			printf("%-13s %s\n", "", base_name(st_file_path(ckpt_file_at(c, i))));
		printf("%-13s %s%s%s\n", "complete", complete == 1 ? "yes" : "no",
		       complete == 1 ? "" : ": ", complete == 1 ? "" : why.msg);
	}
	ckpt_free(c);
	return 0;
}

/* ---- a single safetensors file ---------------------------------------- */

static int inspect_file(const char *path, bool json, bool all)
{
	struct gw_err err = { "" };
	struct st_file *f = NULL;
	const struct st_header *h;
	uint64_t data = 0;
	size_t n;

	if (st_file_open(path, &f, &err) < 0)
		return fail(&err);
	h = st_file_header(f);
	n = st_header_count(h);
	for (size_t i = 0; i < n; i++)
		data += st_header_tensor(h, i)->end - st_header_tensor(h, i)->begin;

	if (json) {
		cJSON *o = cJSON_CreateObject(), *meta, *list;

		cJSON_AddStringToObject(o, "path", path);
		cJSON_AddStringToObject(o, "kind", "safetensors");
		cJSON_AddNumberToObject(o, "tensors", (double)n);
		cJSON_AddNumberToObject(o, "bytes", (double)data);
		cJSON_AddNumberToObject(o, "file_bytes", (double)st_file_size(f));
		cJSON_AddItemToObject(o, "dtypes", dtypes_json(dtypes_of(h, 0)));
		meta = cJSON_AddObjectToObject(o, "metadata");
		for (size_t i = 0; i < st_header_meta_count(h); i++) {
			const char *k, *v;

			st_header_meta_at(h, i, &k, &v);
			cJSON_AddStringToObject(meta, k, v);
		}
		list = cJSON_AddArrayToObject(o, "tensor_list");
		for (size_t i = 0; i < n; i++) {
			const struct st_tensor *t = st_header_tensor(h, i);
			cJSON *e = cJSON_CreateObject();

			cJSON_AddStringToObject(e, "name", t->name);
			cJSON_AddStringToObject(e, "dtype", t->dtype_name);
			cJSON_AddItemToObject(e, "shape", shape_json(t));
			cJSON_AddItemToArray(list, e);
		}
		print_json(o);
	} else {
		char buf[512];
		size_t shown = all || n <= TEXT_TENSORS_MAX ? n : TEXT_TENSORS_MAX;

		printf("%-9s %s\n", "file", path);
		printf("%-9s %zu\n", "tensors", n);
		printf("%-9s %llu of tensor data, %llu in the file\n", "bytes",
		       (unsigned long long)data, (unsigned long long)st_file_size(f));
		dtypes_text(buf, sizeof(buf), dtypes_of(h, 0));
		printf("%-9s %s\n", "dtypes", buf);
		for (size_t i = 0; i < st_header_meta_count(h); i++) {
			const char *k, *v;

			st_header_meta_at(h, i, &k, &v);
			printf("%-9s %s = %s\n", i ? "" : "metadata", k, v);
		}
		for (size_t i = 0; i < shown; i++) {
			const struct st_tensor *t = st_header_tensor(h, i);

			shape_text(buf, sizeof(buf), t);
			printf("  %-5s %-16s %s\n", t->dtype_name, buf, t->name);
		}
		if (shown < n)
			printf("  ... %zu more (--all or --json lists them)\n", n - shown);
	}
	st_file_free(f);
	return 0;
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "all", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false, all = false;
	struct gw_err err = { "" };
	struct stat st;
	const char *path;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'a': all = true; break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "grokwatchd: inspect: unknown option '%s'\n",
				argv[optind - 1]);
			fprintf(stderr, "Try 'grokwatchd inspect --help'.\n");
			return 2;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "grokwatchd: inspect: %s\n",
			argc - optind < 1 ? "a PATH is needed" : "one PATH only");
		usage(stderr);
		return 2;
	}
	path = argv[optind];
	if (stat(path, &st) < 0) {
		gw_errf(&err, -errno, "\"%s\": %s", path, strerror(errno));
		return fail(&err);
	}
	if (S_ISDIR(st.st_mode))
		return inspect_dir(path, json);
	return inspect_file(path, json, all);
}
