/*
 * routing_file.c — reading and writing routing files (routing_file.h,
 * SPEC §5).
 *
 * Divided into: small parsers for metadata values (integers, JSON string
 * arrays); the header check, which sees only names, dtypes, shapes and
 * metadata and is what the fuzzer drives; the value check, shared by the
 * reader (after the tensors are in memory) and the writer (before anything
 * is written, so we never produce a file we would refuse); and the reader
 * and writer themselves.
 */
#include "engine/routing_file.h"

#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/json.h"

/* ---- metadata values ---------------------------------------------------- */

/* A decimal integer in [lo, hi]: digits only, no sign, no leading zero
 * (so every number has one spelling), no blanks. */
static int parse_int_meta(const char *what, const char *key, const char *s, int64_t lo,
			  int64_t hi, int64_t *ret, struct gw_err *err)
{
	int64_t v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 19 || (n > 1 && s[0] == '0'))
		goto bad;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			goto bad;
		if (v > (INT64_MAX - (s[i] - '0')) / 10)
			goto bad;
		v = v * 10 + (s[i] - '0');
	}
	if (v < lo || v > hi)
		return gw_errf(err, -EBADMSG, "\"%s\": metadata \"%s\" is %" PRId64
			       ", outside %" PRId64 " .. %" PRId64, what, key, v, lo, hi);
	*ret = v;
	return 0;
bad:
	return gw_errf(err, -EBADMSG, "\"%s\": metadata \"%s\" is \"%.40s\", not a decimal integer",
		       what, key, s);
}

static void free_strv(char **v, int n)
{
	if (!v)
		return;
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int routing_meta_strings(const char *what, const char *key, const char *json, int n,
			 size_t min_len, size_t max_len, int *ret_n, char ***ret_v,
			 struct gw_err *err)
{
	/* An array of strings: depth 2; the entries and the array itself. */
	static const struct json_limits lim = { .depth_max = 2,
						.values_max = ROUTING_MAX_SAMPLES + 1 };
	cJSON *root = NULL, *it;
	struct json_scan sc;
	char **v = NULL;
	int count, i = 0, r = -EBADMSG;

	r = json_scan(json, strlen(json), &lim, &sc);
	json_scan_release(&sc);
	if (sc.fault == JSON_FAULT_ESCAPED_NUL)
		return gw_errf(err, -EBADMSG, "\"%s\": metadata \"%s\" holds a NUL character "
			       "(\\u0000)", what, key);
	if (sc.fault == JSON_FAULT_VALUES)
		return gw_errf(err, -EBADMSG, "\"%s\": metadata \"%s\" has more than %d entries",
			       what, key, ROUTING_MAX_SAMPLES);
	root = r < 0 ? NULL : cJSON_ParseWithOpts(json, NULL, 1);
	if (!root) {
		r = gw_errf(err, -EBADMSG, "\"%s\": metadata \"%s\" is not valid JSON", what, key);
		goto out;
	}
	if (!cJSON_IsArray(root)) {
		r = gw_errf(err, -EBADMSG, "\"%s\": metadata \"%s\" is not a JSON array", what, key);
		goto out;
	}
	count = cJSON_GetArraySize(root);
	if (n >= 0 && count != n) {
		r = gw_errf(err, -EBADMSG, "\"%s\": metadata \"%s\" has %d entries, expected %d (N)",
			    what, key, count, n);
		goto out;
	}
	if (count > ROUTING_MAX_SAMPLES) {
		r = gw_errf(err, -EBADMSG, "\"%s\": metadata \"%s\" has %d entries, over %d", what,
			    key, count, ROUTING_MAX_SAMPLES);
		goto out;
	}
	v = gw_calloc(count > 0 ? (size_t)count : 1, sizeof(char *));
	cJSON_ArrayForEach(it, root) {
		size_t len;

		if (!cJSON_IsString(it) || !it->valuestring) {
			r = gw_errf(err, -EBADMSG, "\"%s\": metadata \"%s\" entry %d is not a string",
				    what, key, i);
			goto out;
		}
		len = strlen(it->valuestring);
		if (len < min_len || len > max_len) {
			r = gw_errf(err, -EBADMSG,
				    "\"%s\": metadata \"%s\" entry %d has %zu bytes, outside %zu .. %zu",
				    what, key, i, len, min_len, max_len);
			goto out;
		}
		v[i++] = gw_strdup(it->valuestring);
	}
	*ret_n = count;
	*ret_v = v;
	v = NULL;
	r = 0;
out:
	free_strv(v, i);
	cJSON_Delete(root);
	return r;
}

/* ---- the header ---------------------------------------------------------- */

static const char *const known_tensors[] = {
	"gbar", "loss", "ntokens", "topk_ids", "topk_w", "entropy", "lse", NULL
};

/* "router.<l>" with l in 0 .. max-1, no leading zeros: *ret_l, else -1. */
static int router_index(const char *name)
{
	const char *p;
	long v = 0;

	if (strncmp(name, "router.", 7) != 0)
		return -1;
	p = name + 7;
	if (!*p || (p[0] == '0' && p[1]))
		return -2;
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || v > ROUTING_MAX_LAYERS)
			return -2;
		v = v * 10 + (*p - '0');
	}
	return v > INT_MAX ? -2 : (int)v;
}

static void shape_str(const struct st_tensor *t, char *buf, size_t size)
{
	size_t off = 0;

	off += (size_t)snprintf(buf, size, "[");
	for (int d = 0; d < t->ndim && off < size; d++)
		off += (size_t)snprintf(buf + off, size - off, "%s%" PRId64, d ? ", " : "",
					t->shape[d]);
	if (off < size)
		snprintf(buf + off, size - off, "]");
}

/* Tensor t must have dtype d (or, when alt_ok, F16/BF16) and ndim dims;
 * each of want[] >= 0 must match (want[d] < 0: any, checked by caller). */
static int check_tensor(const char *what, const struct st_tensor *t, enum st_dtype d,
			bool alt_ok, int ndim, const int64_t *want, struct gw_err *err)
{
	char got[160], exp[160];
	size_t off = 0;

	if (t->dtype != d && !(alt_ok && (t->dtype == ST_F16 || t->dtype == ST_BF16)))
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\" has dtype %s, expected %s%s",
			       what, t->name, st_dtype_name(t->dtype), st_dtype_name(d),
			       alt_ok ? " (or F16, BF16)" : "");
	shape_str(t, got, sizeof(got));
	if (t->ndim != ndim)
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\" has shape %s, expected %d dimensions",
			       what, t->name, got, ndim);
	for (int i = 0; i < ndim; i++) {
		if (want[i] >= 0 && t->shape[i] != want[i]) {
			off += (size_t)snprintf(exp, sizeof(exp), "[");
			for (int j = 0; j < ndim && off < sizeof(exp); j++) {
				if (want[j] >= 0)
					off += (size_t)snprintf(exp + off, sizeof(exp) - off, "%s%" PRId64,
								j ? ", " : "", want[j]);
				else
					off += (size_t)snprintf(exp + off, sizeof(exp) - off, "%s*",
								j ? ", " : "");
			}
			if (off < sizeof(exp))
				snprintf(exp + off, sizeof(exp) - off, "]");
			return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\" has shape %s, expected %s",
				       what, t->name, got, exp);
		}
	}
	if (t->nelem > ROUTING_MAX_ELEMS)
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\" has %" PRIu64
			       " elements, over %" PRIu64, what, t->name, t->nelem, ROUTING_MAX_ELEMS);
	return 0;
}

static int dim_limit(const char *what, const char *tname, const char *dname, int64_t v,
		     int64_t lo, int64_t hi, struct gw_err *err)
{
	if (v < lo || v > hi)
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\": %s is %" PRId64
			       ", outside %" PRId64 " .. %" PRId64, what, tname, dname, v, lo, hi);
	return 0;
}

void routing_file_info_free(struct routing_file_info *info)
{
	if (!info)
		return;
	free_strv(info->groups, info->n_samples);
	free_strv(info->ids, info->n_samples);
	free(info->probe_hash);
	free(info->checkpoint);
	free(info->arch);
	free(info);
}

static int check_text_meta(const char *what, const char *key, const char *v, size_t max,
			   struct gw_err *err)
{
	size_t n = strlen(v);

	if (n > max)
		return gw_errf(err, -EBADMSG, "\"%s\": metadata \"%s\" has %zu bytes, over %zu", what,
			       key, n, max);
	if (!json_utf8_valid(v, n))
		return gw_errf(err, -EBADMSG, "\"%s\": metadata \"%s\" is not valid UTF-8", what, key);
	return 0;
}

int routing_file_check_header(const char *what, const struct st_header *h,
			      struct routing_file_info **ret, struct gw_err *err)
{
	struct routing_file_info *info = gw_calloc(1, sizeof(*info));
	const struct st_tensor *gbar, *loss, *ntok, *tok[4];
	static const char *const tok_names[4] = { "topk_ids", "topk_w", "entropy", "lse" };
	const char *v;
	int64_t N, L, E, x;
	int n_router = 0, n_tok = 0, r = -EBADMSG, ngot;
	size_t count = st_header_count(h);

	info->step = -1;
	/* Metadata first: a file that is not a routing file at all should say
	 * so, not complain about some tensor. */
	v = st_header_meta(h, "format");
	if (!v) {
		r = gw_errf(err, -EBADMSG, "\"%s\": metadata \"format\" missing (not a routing file; "
			    "expected \"%s\")", what, ROUTING_FORMAT);
		goto out;
	}
	if (strcmp(v, ROUTING_FORMAT) != 0) {
		r = gw_errf(err, -EBADMSG, "\"%s\": metadata \"format\" is \"%.64s\", expected \"%s\"",
			    what, v, ROUTING_FORMAT);
		goto out;
	}
	v = st_header_meta(h, "version");
	if (!v) {
		r = gw_errf(err, -EBADMSG, "\"%s\": metadata \"version\" missing", what);
		goto out;
	}
	if (strcmp(v, ROUTING_VERSION) != 0) {
		r = gw_errf(err, -EBADMSG, "\"%s\": metadata \"version\" is \"%.64s\", this reader "
			    "knows version \"%s\"", what, v, ROUTING_VERSION);
		goto out;
	}

	/* Every tensor must be one we know. */
	for (size_t i = 0; i < count; i++) {
		const struct st_tensor *t = st_header_tensor(h, i);
		bool known = false;

		for (int j = 0; known_tensors[j]; j++)
			known |= strcmp(t->name, known_tensors[j]) == 0;
		if (!known && router_index(t->name) == -1) {
			r = gw_errf(err, -EBADMSG, "\"%s\": unexpected tensor \"%.64s\"", what, t->name);
			goto out;
		}
		if (!known && router_index(t->name) < 0) {
			r = gw_errf(err, -EBADMSG, "\"%s\": tensor \"%.64s\" is not router.<layer> "
				    "with a layer number 0 .. %d", what, t->name, ROUTING_MAX_LAYERS - 1);
			goto out;
		}
	}

	gbar = st_header_find(h, "gbar");
	loss = st_header_find(h, "loss");
	ntok = st_header_find(h, "ntokens");
	if (!gbar || !loss || !ntok) {
		r = gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\" missing", what,
			    !gbar ? "gbar" : !loss ? "loss" : "ntokens");
		goto out;
	}
	{
		const int64_t any3[3] = { -1, -1, -1 };

		r = check_tensor(what, gbar, ST_F32, false, 3, any3, err);
		if (r < 0)
			goto out;
	}
	N = gbar->shape[0], L = gbar->shape[1], E = gbar->shape[2];
	if ((r = dim_limit(what, "gbar", "N (samples)", N, 1, ROUTING_MAX_SAMPLES, err)) < 0 ||
	    (r = dim_limit(what, "gbar", "L (layers)", L, 1, ROUTING_MAX_LAYERS, err)) < 0 ||
	    (r = dim_limit(what, "gbar", "E (experts)", E, 1, ROUTING_MAX_EXPERTS, err)) < 0)
		goto out;
	info->n_samples = (int)N, info->n_layers = (int)L, info->n_experts = (int)E;
	if ((r = check_tensor(what, loss, ST_F32, false, 1, &N, err)) < 0 ||
	    (r = check_tensor(what, ntok, ST_I32, false, 1, &N, err)) < 0)
		goto out;

	/* router.<l>: all L or none, one H. */
	for (size_t i = 0; i < count; i++) {
		const struct st_tensor *t = st_header_tensor(h, i);
		int l = router_index(t->name);
		int64_t want[2] = { E, -1 };

		if (l < 0)
			continue;
		if (l >= L) {
			r = gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\" names layer %d, but gbar has "
				    "%" PRId64 " layers", what, t->name, l, L);
			goto out;
		}
		if (n_router)
			want[1] = info->hidden;
		r = check_tensor(what, t, ST_F32, true, 2, want, err);
		if (r < 0)
			goto out;
		if (!n_router) {
			r = dim_limit(what, t->name, "H (hidden)", t->shape[1], 1, ROUTING_MAX_HIDDEN,
				      err);
			if (r < 0)
				goto out;
			info->hidden = (int)t->shape[1];
		}
		n_router++;
	}
	if (n_router && n_router != L) {
		for (int l = 0; l < L; l++) {
			char name[32];

			snprintf(name, sizeof(name), "router.%d", l);
			if (!st_header_find(h, name)) {
				r = gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\" missing (router tensors "
					    "must cover all %" PRId64 " layers or none; %d present)",
					    what, name, L, n_router);
				goto out;
			}
		}
	}
	info->has_router = n_router > 0;

	/* Per-token records: all four or none. */
	for (int j = 0; j < 4; j++) {
		tok[j] = st_header_find(h, tok_names[j]);
		n_tok += tok[j] != NULL;
	}
	if (n_tok && n_tok != 4) {
		int missing = 0;

		while (tok[missing])
			missing++;
		r = gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\" missing (the per-token tensors "
			    "topk_ids, topk_w, entropy, lse come all four or none; %d present)",
			    what, tok_names[missing], n_tok);
		goto out;
	}
	if (n_tok) {
		const int64_t any3[3] = { -1, L, -1 };
		int64_t T, k, want3[3], want2[2];

		if ((r = check_tensor(what, tok[0], ST_U16, false, 3, any3, err)) < 0)
			goto out;
		T = tok[0]->shape[0], k = tok[0]->shape[2];
		if ((r = dim_limit(what, "topk_ids", "T (tokens)", T, 1, ROUTING_MAX_TOKENS, err)) < 0 ||
		    (r = dim_limit(what, "topk_ids", "k", k, 1, E < ROUTING_MAX_TOP_K ? E :
				   ROUTING_MAX_TOP_K, err)) < 0)
			goto out;
		want3[0] = T, want3[1] = L, want3[2] = k;
		want2[0] = T, want2[1] = L;
		if ((r = check_tensor(what, tok[1], ST_F32, false, 3, want3, err)) < 0 ||
		    (r = check_tensor(what, tok[2], ST_F32, false, 2, want2, err)) < 0 ||
		    (r = check_tensor(what, tok[3], ST_F32, false, 2, want2, err)) < 0)
			goto out;
		v = st_header_meta(h, "top_k");
		if (!v) {
			r = gw_errf(err, -EBADMSG, "\"%s\": metadata \"top_k\" missing (required with "
				    "the per-token tensors)", what);
			goto out;
		}
		if ((r = parse_int_meta(what, "top_k", v, 1, E, &x, err)) < 0)
			goto out;
		if (x != k) {
			r = gw_errf(err, -EBADMSG, "\"%s\": metadata \"top_k\" is %" PRId64 ", but "
				    "topk_ids has k = %" PRId64, what, x, k);
			goto out;
		}
		info->top_k = (int)k;
		info->n_tokens = T;
		info->has_tokens = true;
	} else if ((v = st_header_meta(h, "top_k"))) {
		if ((r = parse_int_meta(what, "top_k", v, 1,
					E < ROUTING_MAX_TOP_K ? E : ROUTING_MAX_TOP_K, &x, err)) < 0)
			goto out;
		info->top_k = (int)x;
	}

	v = st_header_meta(h, "step");
	if (v && (r = parse_int_meta(what, "step", v, 0, INT64_MAX, &info->step, err)) < 0)
		goto out;

	v = st_header_meta(h, "groups");
	if (!v) {
		r = gw_errf(err, -EBADMSG, "\"%s\": metadata \"groups\" missing", what);
		goto out;
	}
	r = routing_meta_strings(what, "groups", v, (int)N, 1, ROUTING_GROUP_MAX, &ngot,
				 &info->groups, err);
	if (r < 0)
		goto out;
	for (int i = 0; i < N; i++) {
		if (strcmp(info->groups[i], "all") == 0) {
			r = gw_errf(err, -EBADMSG, "\"%s\": metadata \"groups\" entry %d is \"all\", "
				    "a name reserved for every sample", what, i);
			goto out;
		}
	}
	v = st_header_meta(h, "ids");
	if (!v) {
		r = gw_errf(err, -EBADMSG, "\"%s\": metadata \"ids\" missing", what);
		goto out;
	}
	r = routing_meta_strings(what, "ids", v, (int)N, 0, ROUTING_ID_MAX, &ngot, &info->ids, err);
	if (r < 0)
		goto out;

	if ((v = st_header_meta(h, "probe_hash"))) {
		size_t n = strlen(v);
		bool hex = n == 64;

		for (size_t i = 0; hex && i < n; i++)
			hex = (v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f');
		if (!hex) {
			r = gw_errf(err, -EBADMSG, "\"%s\": metadata \"probe_hash\" is not 64 lowercase "
				    "hex digits", what);
			goto out;
		}
		info->probe_hash = gw_strdup(v);
	}
	if ((v = st_header_meta(h, "checkpoint"))) {
		if ((r = check_text_meta(what, "checkpoint", v, ROUTING_TEXT_MAX, err)) < 0)
			goto out;
		info->checkpoint = gw_strdup(v);
	}
	if ((v = st_header_meta(h, "arch"))) {
		if ((r = check_text_meta(what, "arch", v, ROUTING_TEXT_MAX, err)) < 0)
			goto out;
		info->arch = gw_strdup(v);
	}
	*ret = info;
	info = NULL;
	r = 0;
out:
	routing_file_info_free(info);
	return r;
}

/* ---- the values ---------------------------------------------------------- */

static bool all_finite(const float *v, size_t n, size_t *ret_at)
{
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(v[i])) {
			*ret_at = i;
			return false;
		}
	}
	return true;
}

/* The rules on values, for a routing in memory.  `code` is what to return:
 * -EBADMSG when checking a file read, -EINVAL when checking before a write. */
static int check_values(const char *what, const struct routing *r, int code,
			struct gw_err *err)
{
	size_t N = (size_t)r->n_samples, L = (size_t)r->n_layers, E = (size_t)r->n_experts;
	size_t at;
	int64_t T = 0;

	for (size_t i = 0; i < N; i++) {
		if (r->ntokens[i] < 1 || r->ntokens[i] > ROUTING_MAX_SAMPLE_TOKENS)
			return gw_errf(err, code, "\"%s\": ntokens of sample %zu is %d, outside 1 .. %d",
				       what, i, (int)r->ntokens[i], ROUTING_MAX_SAMPLE_TOKENS);
		T += r->ntokens[i];
	}
	if (T > ROUTING_MAX_TOKENS)
		return gw_errf(err, code, "\"%s\": ntokens sum to %" PRId64 ", over %d", what, T,
			       ROUTING_MAX_TOKENS);
	for (size_t i = 0; i < N; i++) {
		for (size_t l = 0; l < L; l++) {
			const float *row = r->gbar + (i * L + l) * E;
			double sum = 0;

			for (size_t e = 0; e < E; e++) {
				if (!isfinite(row[e]) || row[e] < 0)
					return gw_errf(err, code, "\"%s\": gbar of sample %zu, layer %zu, "
						       "expert %zu is %g, not a finite number >= 0",
						       what, i, l, e, (double)row[e]);
				sum += row[e];
			}
			if (!(fabs(sum - 1) <= ROUTING_GBAR_TOL))
				return gw_errf(err, code, "\"%s\": gbar row of sample %zu, layer %zu "
					       "sums to %.6g, not 1 (tolerance %g)", what, i, l, sum,
					       ROUTING_GBAR_TOL);
		}
	}
	for (size_t i = 0; i < N; i++)
		if (isinf(r->loss[i]))
			return gw_errf(err, code, "\"%s\": loss of sample %zu is %g (finite or NaN "
				       "expected)", what, i, (double)r->loss[i]);
	for (size_t l = 0; l < L && r->hidden > 0; l++) {
		if (r->router[l] && !all_finite(r->router[l], E * (size_t)r->hidden, &at))
			return gw_errf(err, code, "\"%s\": router.%zu element [%zu, %zu] is not finite",
				       what, l, at / (size_t)r->hidden, at % (size_t)r->hidden);
	}
	if (r->has_tokens) {
		size_t k = (size_t)r->top_k, n = (size_t)T * L * k;

		if (r->tok_offset[N] != T)
			return gw_errf(err, code, "\"%s\": per-token records hold %" PRId64
				       " tokens, but ntokens sum to %" PRId64, what, r->tok_offset[N], T);
		for (size_t j = 0; j < n; j++)
			if (r->topk_ids[j] >= E)
				return gw_errf(err, code, "\"%s\": topk_ids of token %zu, layer %zu, "
					       "slot %zu is %u, not below E = %zu", what, j / (L * k),
					       j / k % L, j % k, (unsigned)r->topk_ids[j], E);
		if (!all_finite(r->topk_w, n, &at))
			return gw_errf(err, code, "\"%s\": topk_w of token %zu is not finite", what,
				       at / (L * k));
		if (!all_finite(r->entropy, (size_t)T * L, &at))
			return gw_errf(err, code, "\"%s\": entropy of token %zu, layer %zu is not finite",
				       what, at / L, at % L);
		if (!all_finite(r->lse, (size_t)T * L, &at))
			return gw_errf(err, code, "\"%s\": lse of token %zu, layer %zu is not finite",
				       what, at / L, at % L);
	}
	return 0;
}

/* ---- reading ------------------------------------------------------------- */

static int read_f32(struct st_file *f, const char *name, float *out, struct gw_err *err)
{
	return st_file_read_f32(f, st_header_find(st_file_header(f), name), out, err);
}

int routing_file_read(const char *path, struct routing **ret, struct gw_err *err)
{
	struct st_file *f = NULL;
	struct routing_file_info *info = NULL;
	struct routing *r = NULL;
	const struct st_header *h;
	int rc;

	rc = st_file_open(path, &f, err);
	if (rc < 0)
		goto out;
	h = st_file_header(f);
	rc = routing_file_check_header(path, h, &info, err);
	if (rc < 0)
		goto out;
	r = routing_new(info->n_samples, info->n_layers, info->n_experts, info->top_k);
	r->hidden = info->hidden;
	r->step = info->step;
	/* The strings move to the routing. */
	for (int i = 0; i < info->n_samples; i++) {
		r->groups[i] = info->groups[i];
		r->ids[i] = info->ids[i];
		info->groups[i] = info->ids[i] = NULL;
	}
	r->probe_hash = info->probe_hash, info->probe_hash = NULL;
	r->checkpoint = info->checkpoint, info->checkpoint = NULL;
	r->arch = info->arch, info->arch = NULL;

	if ((rc = read_f32(f, "gbar", r->gbar, err)) < 0 ||
	    (rc = read_f32(f, "loss", r->loss, err)) < 0 ||
	    (rc = st_file_read_raw(f, st_header_find(h, "ntokens"), r->ntokens, err)) < 0)
		goto out;
	for (int l = 0; l < r->n_layers && info->has_router; l++) {
		char name[32];

		snprintf(name, sizeof(name), "router.%d", l);
		r->router[l] = gw_malloc((size_t)r->n_experts * (size_t)r->hidden * sizeof(float));
		if ((rc = read_f32(f, name, r->router[l], err)) < 0)
			goto out;
	}
	if (info->has_tokens) {
		int64_t T = 0;

		/* ntokens are checked before their sum sizes anything. */
		for (int i = 0; i < r->n_samples; i++) {
			if (r->ntokens[i] < 1 || r->ntokens[i] > ROUTING_MAX_SAMPLE_TOKENS) {
				rc = gw_errf(err, -EBADMSG, "\"%s\": ntokens of sample %d is %d, outside "
					     "1 .. %d", path, i, (int)r->ntokens[i],
					     ROUTING_MAX_SAMPLE_TOKENS);
				goto out;
			}
			T += r->ntokens[i];
		}
		if (T != info->n_tokens) {
			rc = gw_errf(err, -EBADMSG, "\"%s\": per-token tensors have T = %" PRId64
				     " tokens, but ntokens sum to %" PRId64, path, info->n_tokens, T);
			goto out;
		}
		routing_alloc_tokens(r);
		if ((rc = st_file_read_raw(f, st_header_find(h, "topk_ids"), r->topk_ids, err)) < 0 ||
		    (rc = read_f32(f, "topk_w", r->topk_w, err)) < 0 ||
		    (rc = read_f32(f, "entropy", r->entropy, err)) < 0 ||
		    (rc = read_f32(f, "lse", r->lse, err)) < 0)
			goto out;
	}
	rc = check_values(path, r, -EBADMSG, err);
	if (rc < 0)
		goto out;
	*ret = r;
	r = NULL;
out:
	routing_free(r);
	routing_file_info_free(info);
	st_file_free(f);
	return rc;
}

/* ---- writing ------------------------------------------------------------- */

static char *strv_json(char *const *v, int n)
{
	cJSON *a = cJSON_CreateArray();
	char *s;

	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v[i] ? v[i] : ""));
	s = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	if (!s)
		abort(); /* cJSON fails only on out-of-memory */
	return s;
}

int routing_file_write(const char *path, const struct routing *r, struct gw_err *err)
{
	struct st_write_tensor *t = NULL;
	struct st_write_meta m[9];
	char step[24], topk[24], (*names)[24] = NULL;
	char *groups = NULL, *ids = NULL;
	size_t nt = 0, nm = 0;
	int64_t N = r->n_samples, L = r->n_layers, E = r->n_experts, T;
	bool router = L > 0 && r->hidden > 0;
	int rc = -EINVAL;

	if (N < 1 || N > ROUTING_MAX_SAMPLES || L < 1 || L > ROUTING_MAX_LAYERS || E < 1 ||
	    E > ROUTING_MAX_EXPERTS || r->hidden < 0 || r->hidden > ROUTING_MAX_HIDDEN ||
	    r->top_k < 0 || r->top_k > ROUTING_MAX_TOP_K || r->top_k > E ||
	    (r->has_tokens && r->top_k < 1)) {
		rc = gw_errf(err, -EINVAL, "\"%s\": cannot write N=%" PRId64 " L=%" PRId64 " E=%"
			     PRId64 " H=%d k=%d: outside the routing file limits", path, N, L, E,
			     r->hidden, r->top_k);
		goto out;
	}
	for (int l = 0; l < L; l++)
		router &= r->router[l] != NULL;
	for (int i = 0; i < N; i++) {
		const char *g = r->groups[i] ? r->groups[i] : "";
		const char *id = r->ids[i] ? r->ids[i] : "";

		if (strlen(g) < 1 || strlen(g) > ROUTING_GROUP_MAX || !json_utf8_valid(g, strlen(g)) ||
		    strcmp(g, "all") == 0 || strlen(id) > ROUTING_ID_MAX || !json_utf8_valid(id, strlen(id))) {
			rc = gw_errf(err, -EINVAL, "\"%s\": sample %d has group \"%.64s\" and id "
				     "\"%.64s\", not a valid name pair (group 1 .. %d bytes, not "
				     "\"all\"; id up to %d bytes)", path, i, g, id, ROUTING_GROUP_MAX,
				     ROUTING_ID_MAX);
			goto out;
		}
	}
	if (r->probe_hash) {
		bool hex = strlen(r->probe_hash) == 64;

		for (size_t i = 0; hex && i < 64; i++)
			hex = (r->probe_hash[i] >= '0' && r->probe_hash[i] <= '9') ||
			      (r->probe_hash[i] >= 'a' && r->probe_hash[i] <= 'f');
		if (!hex) {
			rc = gw_errf(err, -EINVAL, "\"%s\": probe hash \"%.80s\" is not 64 lowercase "
				     "hex digits", path, r->probe_hash);
			goto out;
		}
	}
	if ((r->checkpoint && (rc = check_text_meta(path, "checkpoint", r->checkpoint,
						    ROUTING_TEXT_MAX, err)) < 0) ||
	    (r->arch && (rc = check_text_meta(path, "arch", r->arch, ROUTING_TEXT_MAX, err)) < 0)) {
		rc = -EINVAL;
		goto out;
	}
	rc = check_values(path, r, -EINVAL, err);
	if (rc < 0)
		goto out;
	T = r->has_tokens ? r->tok_offset[N] : 0;
	t = gw_calloc(7 + (size_t)L, sizeof(*t));

	t[nt++] = (struct st_write_tensor){ "gbar", ST_F32, 3, { N, L, E }, r->gbar };
	t[nt++] = (struct st_write_tensor){ "loss", ST_F32, 1, { N }, r->loss };
	t[nt++] = (struct st_write_tensor){ "ntokens", ST_I32, 1, { N }, r->ntokens };
	if (router) {
		names = gw_calloc((size_t)L, sizeof(*names));
		for (int l = 0; l < L; l++) {
			snprintf(names[l], sizeof(names[l]), "router.%d", l);
			t[nt++] = (struct st_write_tensor){ names[l], ST_F32, 2, { E, r->hidden },
							    r->router[l] };
		}
	}
	if (r->has_tokens) {
		int64_t k = r->top_k;

		t[nt++] = (struct st_write_tensor){ "topk_ids", ST_U16, 3, { T, L, k }, r->topk_ids };
		t[nt++] = (struct st_write_tensor){ "topk_w", ST_F32, 3, { T, L, k }, r->topk_w };
		t[nt++] = (struct st_write_tensor){ "entropy", ST_F32, 2, { T, L }, r->entropy };
		t[nt++] = (struct st_write_tensor){ "lse", ST_F32, 2, { T, L }, r->lse };
	}
	groups = strv_json(r->groups, r->n_samples);
	ids = strv_json(r->ids, r->n_samples);
	m[nm++] = (struct st_write_meta){ "format", ROUTING_FORMAT };
	m[nm++] = (struct st_write_meta){ "version", ROUTING_VERSION };
	m[nm++] = (struct st_write_meta){ "groups", groups };
	m[nm++] = (struct st_write_meta){ "ids", ids };
	if (r->step >= 0) {
		snprintf(step, sizeof(step), "%" PRId64, r->step);
		m[nm++] = (struct st_write_meta){ "step", step };
	}
	if (r->top_k > 0) {
		snprintf(topk, sizeof(topk), "%d", r->top_k);
		m[nm++] = (struct st_write_meta){ "top_k", topk };
	}
	if (r->probe_hash)
		m[nm++] = (struct st_write_meta){ "probe_hash", r->probe_hash };
	if (r->checkpoint)
		m[nm++] = (struct st_write_meta){ "checkpoint", r->checkpoint };
	if (r->arch)
		m[nm++] = (struct st_write_meta){ "arch", r->arch };
	rc = st_write(path, t, nt, m, nm, err);
out:
	free(t);
	free(names);
	free(groups);
	free(ids);
	return rc;
}
