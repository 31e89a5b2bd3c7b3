/*
 * checkpoint.c — a Hugging Face checkpoint directory (SPEC §2): config.json
 * plus model.safetensors, or the shards model.safetensors.index.json names.
 *
 * The file is divided into:
 *   - small helpers: path joining, reading a small file under a limit, and
 *     a name -> (file, tensor) hash map (the forward pass looks tensors up
 *     by name thousands of times; a linear search would be quadratic);
 *   - the index: weight_map parsed into shard names (plain file names
 *     only, so an index cannot point outside the directory) and entries;
 *   - ckpt_open and the accessors: config, files, the resolved map (for a
 *     sharded checkpoint built only from weight_map), the tensor check;
 *   - ckpt_check_complete, the watcher's cheap test, which reads only the
 *     8-byte length and the header of each file.
 */
#include "engine/checkpoint.h"
#include "engine/file.h"
#include "engine/foreign.h"
#include "engine/hash.h"
#include "engine/json.h"
#include "engine/sys.h"
#include "engine/tensor_map.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ent {
	const char *name; /* NULL: empty slot */
	uint32_t file;
	const struct st_tensor *t;
	const struct st_tensor *alt; /* canonical map: a second stored tensor of this name */
};

/*
 * A tensor the model needs, as stored: all of t, or (a fused expert) the
 * nelem elements from e0 on, of shape [rows, cols]; times its block scales
 * when `scale` is set (FP8, 128 x 128 blocks).
 */
struct view {
	const char *name; /* canonical; NULL: empty slot */
	uint32_t file;
	const struct st_tensor *t;
	uint64_t e0, nelem;
	int ndim;                      /* of the view: t's, or 2 for a slice */
	int64_t shape[ST_MAX_DIMS];
	uint32_t sfile;
	const struct st_tensor *scale; /* [ceil(rows/128), ceil(cols/128)] or NULL */
};

struct views {
	struct view *v;
	size_t cap; /* a power of two */
	size_t n;
};

struct map {
	struct ent *v;
	size_t cap; /* a power of two, at least twice the entries */
};

struct ckpt {
	char *dir;
	struct model_desc model;
	struct st_file **files;
	size_t nfiles;
	bool sharded;
	struct map map;    /* stored name -> tensor */
	struct map canon;  /* canonical name (tensor_map.h) -> tensor */
	struct views need; /* each tensor the model needs -> where it is stored */
	char **names;      /* the canonical and needed names the maps point to */
	size_t nnames, cap_names;
	size_t ntensors;
	uint64_t bytes;
};

/* ---- helpers ---------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
	return gw_fnv1a(GW_FNV_BASIS, s, strlen(s));
}

static void map_init(struct map *m, size_t n)
{
	m->cap = 16;
	while (m->cap < 2 * n)
		m->cap *= 2;
	m->v = gw_calloc(m->cap, sizeof(struct ent));
}

static struct ent *map_slot(const struct map *m, const char *name)
{
	size_t i = (size_t)hash_str(name) & (m->cap - 1);

	while (m->v[i].name && strcmp(m->v[i].name, name) != 0)
		i = (i + 1) & (m->cap - 1);
	return &m->v[i];
}

/* Insert; false if the name is already there.  `name` is not copied. */
static bool map_put(struct map *m, const char *name, uint32_t file, const struct st_tensor *t)
{
	struct ent *e = map_slot(m, name);

	if (e->name)
		return false;
	*e = (struct ent){ name, file, t, NULL };
	return true;
}

static const struct ent *map_get(const struct map *m, const char *name)
{
	const struct ent *e;

	if (!m->v)
		return NULL;
	e = map_slot(m, name);
	return e->name ? e : NULL;
}

/* ---- the index ------------------------------------------------------- */

struct index {
	cJSON *root;          /* owns the strings below */
	const char **shard;   /* distinct shard names, sorted */
	size_t nshard;
	const char **tensor;  /* weight_map keys ... */
	uint32_t *tshard;     /* ... and their shard (index into shard) */
	size_t ntensor;
};

static void index_release(struct index *x)
{
	cJSON_Delete(x->root);
	free(x->shard);
	free(x->tensor);
	free(x->tshard);
	memset(x, 0, sizeof(*x));
}

/* A shard must be a plain file name in the checkpoint directory. */
static bool shard_name_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= CKPT_SHARD_NAME_MAX && !strchr(s, '/') && strcmp(s, ".") != 0 &&
	       strcmp(s, "..") != 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int index_parse(const char *path, const char *text, size_t len, struct index *ret,
		       struct gw_err *err)
{
	struct index x = { 0 };
	struct map names = { 0 };
	const cJSON *wm = NULL;
	const char *end = NULL;
	size_t n = 0;
	int r;

	x.root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!x.root) {
		r = gw_errf(err, -EBADMSG, "\"%s\": not JSON (error at byte %zu)", path,
			    end && end >= text ? (size_t)(end - text) : (size_t)0);
		goto out;
	}
	for (const char *p = end; p < text + len; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
			r = gw_errf(err, -EBADMSG, "\"%s\": not JSON (trailing data at byte %zu)",
				    path, (size_t)(p - text));
			goto out;
		}
	if (!cJSON_IsObject(x.root)) {
		r = gw_errf(err, -EBADMSG, "\"%s\": not a JSON object", path);
		goto out;
	}
	for (const cJSON *it = x.root->child; it; it = it->next)
		if (it->string && !strcmp(it->string, "weight_map")) {
			if (wm) {
				r = gw_errf(err, -EBADMSG, "\"%s\": \"weight_map\" appears twice", path);
				goto out;
			}
			wm = it;
		}
	if (!wm || !cJSON_IsObject(wm)) {
		r = gw_errf(err, -EBADMSG, "\"%s\": %s", path,
			    wm ? "\"weight_map\" is not an object" : "no \"weight_map\"");
		goto out;
	}
	for (const cJSON *it = wm->child; it; it = it->next)
		if (++n > CKPT_TENSORS_MAX) {
			r = gw_errf(err, -EBADMSG, "\"%s\": more than %d tensors in weight_map", path,
				    CKPT_TENSORS_MAX);
			goto out;
		}
	if (n == 0) {
		r = gw_errf(err, -EBADMSG, "\"%s\": weight_map is empty", path);
		goto out;
	}

	/* Distinct shard names first (in a map, so n entries cost O(n)), then
	 * sorted so files are opened and listed in a stable order. */
	x.tensor = gw_malloc(n * sizeof(*x.tensor));
	x.tshard = gw_malloc(n * sizeof(*x.tshard));
	map_init(&names, n);
	{
		struct map seen = { 0 };

		map_init(&seen, n);
		for (const cJSON *it = wm->child; it; it = it->next) {
			const char *s = cJSON_IsString(it) ? it->valuestring : NULL;

			if (!s) {
				r = gw_errf(err, -EBADMSG, "\"%s\": weight_map[\"%.200s\"] is not a "
					    "string", path, it->string);
			} else if (strlen(it->string) == 0 || strlen(it->string) > ST_NAME_MAX) {
				r = gw_errf(err, -EBADMSG, "\"%s\": weight_map has a tensor name of "
					    "%zu bytes", path, strlen(it->string));
			} else if (!shard_name_ok(s)) {
				r = gw_errf(err, -EBADMSG, "\"%s\": shard \"%.200s\" (of tensor "
					    "\"%.200s\") is not a plain file name in the checkpoint",
					    path, s, it->string);
			} else if (!map_put(&seen, it->string, 0, NULL)) {
				r = gw_errf(err, -EBADMSG, "\"%s\": weight_map names tensor \"%.200s\" "
					    "twice", path, it->string);
			} else {
				if (map_put(&names, s, 0, NULL)) {
					if (x.nshard == CKPT_SHARDS_MAX) {
						r = gw_errf(err, -EBADMSG, "\"%s\": more than %d "
							    "shards", path, CKPT_SHARDS_MAX);
						free(seen.v);
						goto out;
					}
					x.shard = gw_realloc(x.shard,
							     (x.nshard + 1) * sizeof(*x.shard));
					x.shard[x.nshard++] = s;
				}
				x.tensor[x.ntensor++] = it->string;
				continue;
			}
			free(seen.v);
			goto out;
		}
		free(seen.v);
	}
	qsort(x.shard, x.nshard, sizeof(*x.shard), cmp_str);
	for (size_t i = 0; i < x.nshard; i++)
		map_slot(&names, x.shard[i])->file = (uint32_t)i;
	x.ntensor = 0;
	for (const cJSON *it = wm->child; it; it = it->next, x.ntensor++)
		x.tshard[x.ntensor] = map_get(&names, it->valuestring)->file;
	*ret = x;
	memset(&x, 0, sizeof(x));
	r = 0;
out:
	free(names.v);
	index_release(&x);
	return r;
}

static int index_read(const char *path, struct index *ret, struct gw_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	if ((r = gw_file_read(path, CKPT_INDEX_MAX, &text, &len, err)) < 0)
		return r;
	r = index_parse(path, text, len, ret, err);
	free(text);
	return r;
}

/* ---- opening ---------------------------------------------------------- */

void ckpt_free(struct ckpt *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nfiles; i++)
		st_file_free(c->files[i]);
	free(c->files);
	free(c->map.v);
	free(c->canon.v);
	free(c->need.v);
	for (size_t i = 0; i < c->nnames; i++)
		free(c->names[i]);
	free(c->names);
	free(c->dir);
	free(c);
}

static int add_file(struct ckpt *c, const char *path, struct gw_err *err)
{
	struct st_file *f = NULL;
	int r;

	if ((r = st_file_open(path, &f, err)) < 0)
		return r;
	c->files = gw_realloc(c->files, (c->nfiles + 1) * sizeof(*c->files));
	c->files[c->nfiles++] = f;
	return 0;
}

static int open_single(struct ckpt *c, const char *path, struct gw_err *err)
{
	const struct st_header *h;
	size_t n;
	int r;

	if ((r = add_file(c, path, err)) < 0)
		return r;
	h = st_file_header(c->files[0]);
	n = st_header_count(h);
	map_init(&c->map, n);
	for (size_t i = 0; i < n; i++) {
		const struct st_tensor *t = st_header_tensor(h, i);

		/* st_file_open refuses duplicate names; a repeat here is a bug. */
		GW_BUG_ON(!map_put(&c->map, t->name, 0, t));
	}
	return 0;
}

static int open_sharded(struct ckpt *c, const char *index_path, struct gw_err *err)
{
	struct index x = { 0 };
	struct stat st;
	char *p = NULL;
	int r;

	if ((r = index_read(index_path, &x, err)) < 0)
		return r;
	for (size_t i = 0; i < x.nshard; i++) {
		p = gw_join(c->dir, '/', x.shard[i]);
		if (stat(p, &st) < 0) {
			r = errno == ENOENT
				    ? gw_errf(err, -ENOENT, "\"%s\": shard named by %s is missing", p,
					      CKPT_INDEX)
				    : gw_errf(err, -errno, "\"%s\": %s", p, strerror(errno));
			goto out;
		}
		if ((r = add_file(c, p, err)) < 0)
			goto out;
		free(p);
		p = NULL;
	}
	/* Only what weight_map names is reachable, and it must be where the
	 * index says. */
	map_init(&c->map, x.ntensor);
	for (size_t i = 0; i < x.ntensor; i++) {
		const struct st_tensor *t =
			st_header_find(st_file_header(c->files[x.tshard[i]]), x.tensor[i]);

		if (!t) {
			r = gw_errf(err, -EBADMSG, "\"%s\": tensor \"%.200s\" is not in shard "
				    "\"%s\"", index_path, x.tensor[i], x.shard[x.tshard[i]]);
			goto out;
		}
		GW_BUG_ON(!map_put(&c->map, t->name, x.tshard[i], t));
	}
	r = 0;
out:
	free(p);
	index_release(&x);
	return r;
}

/* ---- resolving the tensors the model needs ----------------------------- */

static const char *keep_name(struct ckpt *c, const char *s)
{
	if (c->nnames == c->cap_names) {
		c->cap_names = c->cap_names ? 2 * c->cap_names : 256;
		c->names = gw_realloc(c->names, c->cap_names * sizeof(*c->names));
	}
	return c->names[c->nnames++] = gw_strdup(s);
}

/*
 * The canonical map over every stored tensor.  Two stored names with one
 * canonical name are kept as `alt`: refused only when the model needs the
 * tensor (resolve_one), so an unused leftover does not reject the
 * checkpoint.
 */
static int build_canon(struct ckpt *c, struct gw_err *err)
{
	size_t n = 0;

	for (size_t i = 0; i < c->nfiles; i++)
		n += st_header_count(st_file_header(c->files[i]));
	map_init(&c->canon, n);
	for (size_t i = 0; i < c->map.cap; i++) {
		const struct ent *e = &c->map.v[i];
		char name[ST_NAME_MAX + 16];
		struct ent *slot;

		if (!e->name)
			continue;
		if (tmap_canonical(e->name, name, sizeof(name)) < 0)
			return gw_errf(err, -EBADMSG, "\"%s\": tensor name \"%.200s\" is too long",
				       c->dir, e->name);
		slot = map_slot(&c->canon, name);
		if (slot->name) {
			/* Keep the pair in a fixed order, whatever the hash order. */
			if (strcmp(e->t->name, slot->t->name) < 0) {
				slot->alt = slot->t;
				slot->t = e->t;
				slot->file = e->file;
			} else if (!slot->alt || strcmp(e->t->name, slot->alt->name) < 0) {
				slot->alt = e->t;
			}
			continue;
		}
		*slot = (struct ent){ keep_name(c, name), e->file, e->t, NULL };
	}
	return 0;
}

static struct view *views_slot(const struct views *v, const char *name)
{
	size_t i = (size_t)hash_str(name) & (v->cap - 1);

	while (v->v[i].name && strcmp(v->v[i].name, name) != 0)
		i = (i + 1) & (v->cap - 1);
	return &v->v[i];
}

static const struct view *views_get(const struct views *v, const char *name)
{
	const struct view *x;

	if (!v->v)
		return NULL;
	x = views_slot(v, name);
	return x->name ? x : NULL;
}

/* A canonical name's stored tensor; NULL when absent, -EBADMSG naming
 * both when two stored tensors claim it. */
static int canon_get(const struct ckpt *c, const char *name, const struct ent **ret,
		     struct gw_err *err)
{
	const struct ent *e = map_get(&c->canon, name);

	if (e && e->alt)
		return gw_errf(err, -EBADMSG, "\"%s\": tensors \"%.200s\" and \"%.200s\" are both "
			       "\"%s\" (one name map, two candidates); keep one of them", c->dir,
			       e->t->name, e->alt->name, name);
	*ret = e;
	return 0;
}

struct resolve {
	struct ckpt *c;
	struct gw_err *err;
};

/*
 * Fused experts, as Transformers v5 holds them (conversion_mapping.py:
 * MergeModulelist(dim=0) then Concatenate(dim=1) of gate and up) and as raw
 * state dicts save them: "mlp.experts.gate_up_proj" [E, 2I, H], gate rows
 * first, and "mlp.experts.down_proj" [E, H, I].  Mixtral's are there too,
 * under "mlp" rather than "block_sparse_moe".
 */
static int resolve_fused(struct resolve *rs, enum model_tensor kind, int layer, int expert,
			 struct view *v)
{
	const struct model_desc *m = &rs->c->model;
	bool down = kind == MT_EXPERT_DOWN;
	int64_t E = m->n_experts, I = m->moe_intermediate, H = m->hidden;
	int64_t want[3] = { E, down ? H : 2 * I, down ? I : H };
	const struct ent *e = NULL;
	char name[128], scale[160];
	int r;

	snprintf(name, sizeof(name), "model.layers.%d.mlp.experts.%s", layer,
		 down ? "down_proj" : "gate_up_proj");
	if ((r = canon_get(rs->c, name, &e, rs->err)) < 0 || !e)
		return r;
	if (e->t->ndim != 3 || e->t->shape[0] != want[0] || e->t->shape[1] != want[1] ||
	    e->t->shape[2] != want[2])
		return gw_errf(rs->err, -EBADMSG, "\"%s\": fused tensor \"%s\" is not [%lld, %lld, "
			       "%lld] as config.json implies", rs->c->dir, e->t->name,
			       (long long)want[0], (long long)want[1], (long long)want[2]);
	snprintf(scale, sizeof(scale), "%s_scale_inv", name);
	if (map_get(&rs->c->canon, scale))
		return gw_errf(rs->err, -ENOTSUP, "\"%s\": fused tensor \"%s\" has block scales; "
			       "FP8 fused experts are not supported (save them per expert)",
			       rs->c->dir, e->t->name);
	v->file = e->file;
	v->t = e->t;
	v->ndim = 2;
	v->shape[0] = down ? H : I;
	v->shape[1] = down ? I : H;
	v->nelem = (uint64_t)(I * H);
	v->e0 = (uint64_t)expert * (uint64_t)(2 * I * H) +
		(kind == MT_EXPERT_UP ? (uint64_t)(I * H) : 0);
	if (down)
		v->e0 = (uint64_t)expert * (uint64_t)(I * H);
	return 1;
}

/* FP8 block scales: "<name>_scale_inv" beside an F8 "....weight" (as
 * DeepSeek-V3's released checkpoints store them). */
static int resolve_scale(struct resolve *rs, const char *name, struct view *v)
{
	const struct ent *e = NULL;
	char sname[ST_NAME_MAX + 32];
	int64_t rows, cols;
	int r;

	if (v->t->dtype != ST_F8_E4M3 && v->t->dtype != ST_F8_E5M2)
		return 0;
	snprintf(sname, sizeof(sname), "%s_scale_inv", name);
	if ((r = canon_get(rs->c, sname, &e, rs->err)) < 0 || !e)
		return r;
	if (v->ndim != 2)
		return gw_errf(rs->err, -EBADMSG, "\"%s\": tensor \"%s\" has block scales but "
			       "%d dimensions, not 2", rs->c->dir, v->t->name, v->ndim);
	rows = (v->shape[0] + 127) / 128;
	cols = (v->shape[1] + 127) / 128;
	if (e->t->ndim != 2 || e->t->shape[0] != rows || e->t->shape[1] != cols)
		return gw_errf(rs->err, -EBADMSG, "\"%s\": scale tensor \"%s\" is not [%lld, %lld] "
			       "(128 x 128 blocks of \"%s\")", rs->c->dir, e->t->name,
			       (long long)rows, (long long)cols, v->t->name);
	if (!st_dtype_readable(e->t->dtype) || e->t->dtype == ST_F8_E4M3 ||
	    e->t->dtype == ST_F8_E5M2)
		return gw_errf(rs->err, -EBADMSG, "\"%s\": scale tensor \"%s\" is %s, not F32, "
			       "BF16 or F16", rs->c->dir, e->t->name, e->t->dtype_name);
	v->scale = e->t;
	v->sfile = e->file;
	return 0;
}

static int resolve_one(void *ud, enum model_tensor kind, int layer, int expert,
		       const char *name)
{
	struct resolve *rs = ud;
	struct ckpt *c = rs->c;
	const struct ent *e = NULL;
	struct view v = { 0 }, *slot;
	int r;

	if ((r = canon_get(c, name, &e, rs->err)) < 0)
		return r;
	/* Transformers v5 renames Mixtral's router ".block_sparse_moe.gate" to
	 * ".mlp.gate". */
	if (!e && kind == MT_ROUTER && c->model.arch == ARCH_MIXTRAL) {
		char alt[128];

		snprintf(alt, sizeof(alt), "model.layers.%d.mlp.gate.weight", layer);
		if ((r = canon_get(c, alt, &e, rs->err)) < 0)
			return r;
	}
	if (e) {
		v.file = e->file;
		v.t = e->t;
		v.nelem = e->t->nelem;
		v.ndim = e->t->ndim;
		memcpy(v.shape, e->t->shape, sizeof(v.shape));
	} else if (kind == MT_EXPERT_GATE || kind == MT_EXPERT_UP || kind == MT_EXPERT_DOWN) {
		if ((r = resolve_fused(rs, kind, layer, expert, &v)) <= 0)
			return r; /* absent: model_check_tensors names it */
	} else {
		return 0;
	}
	if (!st_dtype_readable(v.t->dtype))
		return gw_errf(rs->err, -EBADMSG, "\"%s\": tensor \"%s\" is %s, which grokwatch "
			       "cannot read (F32, F16, BF16, F8_E4M3 and F8_E5M2 only)",
			       st_file_path(c->files[v.file]), v.t->name, v.t->dtype_name);
	if ((r = resolve_scale(rs, name, &v)) < 0)
		return r;
	slot = views_slot(&c->need, name);
	GW_BUG_ON(slot->name); /* model_tensor_foreach names each tensor once */
	v.name = keep_name(c, name);
	*slot = v;
	c->need.n++;
	return 0;
}

static int count_one(void *ud, enum model_tensor kind, int layer, int expert, const char *name)
{
	(void)kind;
	(void)layer;
	(void)expert;
	(void)name;
	++*(size_t *)ud;
	return 0;
}

static int resolve_all(struct ckpt *c, struct gw_err *err)
{
	struct resolve rs = { c, err };
	size_t n = 0;
	int r;

	if ((r = build_canon(c, err)) < 0)
		return r;
	model_tensor_foreach(&c->model, count_one, &n);
	c->need.cap = 16;
	while (c->need.cap < 2 * n)
		c->need.cap *= 2;
	c->need.v = gw_calloc(c->need.cap, sizeof(struct view));
	return model_tensor_foreach(&c->model, resolve_one, &rs);
}

static int lookup(void *ud, const char *name, int *ret_ndim, int64_t ret_shape[8])
{
	const struct view *v = views_get(&((struct ckpt *)ud)->need, name);

	if (!v)
		return -ENOENT;
	*ret_ndim = v->ndim;
	for (int i = 0; i < v->ndim && i < 8; i++)
		ret_shape[i] = v->shape[i];
	return 0;
}

int ckpt_open(const char *dir, struct ckpt **ret, struct gw_err *err)
{
	struct ckpt *c = gw_calloc(1, sizeof(*c));
	char *cfg_path = NULL, *single = NULL, *index = NULL, *text = NULL;
	size_t len = 0;
	struct stat st;
	int r;

	c->dir = gw_strdup(dir);
	if (stat(dir, &st) < 0) {
		r = gw_errf(err, -errno, "\"%s\": %s", dir, strerror(errno));
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		r = gw_errf(err, -ENOTDIR, "\"%s\": not a directory", dir);
		goto out;
	}
	cfg_path = gw_join(dir, '/', CKPT_CONFIG);
	if (stat(cfg_path, &st) < 0 && errno == ENOENT) {
		enum foreign_kind k = foreign_detect(dir);

		r = k ? foreign_refuse(dir, k, err)
		      : gw_errf(err, -ENOENT, "\"%s\": no config.json (not a Hugging Face "
				"checkpoint)", dir);
		goto out;
	}
	if ((r = gw_file_read(cfg_path, CKPT_CONFIG_MAX, &text, &len, err)) < 0 ||
	    (r = model_desc_parse(cfg_path, text, len, &c->model, err)) < 0)
		goto out;

	single = gw_join(dir, '/', CKPT_SINGLE);
	index = gw_join(dir, '/', CKPT_INDEX);
	if (stat(single, &st) == 0) {
		r = open_single(c, single, err);
	} else if (errno != ENOENT) {
		r = gw_errf(err, -errno, "\"%s\": %s", single, strerror(errno));
	} else if (stat(index, &st) == 0 || errno != ENOENT) {
		c->sharded = true;
		r = open_sharded(c, index, err);
	} else if (foreign_detect(dir)) {
		r = foreign_refuse(dir, foreign_detect(dir), err);
	} else {
		r = gw_errf(err, -ENOENT, "\"%s\": no %s or %s", dir, CKPT_SINGLE, CKPT_INDEX);
	}
	if (r < 0)
		goto out;

	if ((r = resolve_all(c, err)) < 0 ||
	    (r = model_check_tensors(&c->model, dir, lookup, c, err)) < 0)
		goto out;
	for (size_t i = 0; i < c->nfiles; i++) {
		const struct st_header *h = st_file_header(c->files[i]);
		size_t n = st_header_count(h);

		c->ntensors += n;
		for (size_t j = 0; j < n; j++) {
			const struct st_tensor *t = st_header_tensor(h, j);

			c->bytes += t->end - t->begin;
		}
	}
	*ret = c;
	c = NULL;
	r = 0;
out:
	free(cfg_path);
	free(single);
	free(index);
	free(text);
	ckpt_free(c);
	return r;
}

const char *ckpt_dir(const struct ckpt *c)
{
	return c->dir;
}

const struct model_desc *ckpt_model(const struct ckpt *c)
{
	return &c->model;
}

size_t ckpt_file_count(const struct ckpt *c)
{
	return c->nfiles;
}

struct st_file *ckpt_file_at(const struct ckpt *c, size_t i)
{
	GW_BUG_ON(i >= c->nfiles);
	return c->files[i];
}

bool ckpt_sharded(const struct ckpt *c)
{
	return c->sharded;
}

size_t ckpt_tensor_count(const struct ckpt *c)
{
	return c->ntensors;
}

uint64_t ckpt_data_bytes(const struct ckpt *c)
{
	return c->bytes;
}

const struct st_tensor *ckpt_find(const struct ckpt *c, const char *name,
				  struct st_file **ret_file)
{
	const struct ent *e = map_get(&c->map, name);

	if (!e)
		return NULL;
	if (ret_file)
		*ret_file = c->files[e->file];
	return e->t;
}

bool ckpt_has(const struct ckpt *c, const char *name)
{
	return views_get(&c->need, name) != NULL;
}

int ckpt_shape(const struct ckpt *c, const char *name, int64_t shape[2], int *ret_ndim)
{
	const struct view *v = views_get(&c->need, name);

	if (!v)
		return -ENOENT;
	shape[0] = v->ndim > 0 ? v->shape[0] : 1;
	shape[1] = v->ndim > 1 ? v->shape[1] : 1;
	*ret_ndim = v->ndim;
	return 0;
}

/* Multiply rows [row0, row0 + nrows) of view v (in out) by its block
 * scales: element (i, j) by scale[i / 128][j / 128]. */
static int apply_scale(const struct ckpt *c, const struct view *v, int64_t row0, int64_t nrows,
		       float *out, struct gw_err *err)
{
	int64_t cols = v->shape[1], scols = v->scale->shape[1];
	float *s = gw_malloc((size_t)v->scale->nelem * sizeof(float));
	int r = st_file_read_f32(c->files[v->sfile], v->scale, s, err);

	if (r < 0)
		goto out;
	for (int64_t i = 0; i < nrows; i++) {
		const float *srow = s + ((row0 + i) / 128) * scols;
		float *o = out + i * cols;

		for (int64_t j = 0; j < cols; j++)
			o[j] *= srow[j / 128];
	}
out:
	free(s);
	return r;
}

static int read_view(const struct ckpt *c, const struct view *v, int64_t row0, int64_t nrows,
		     float *out, struct gw_err *err)
{
	uint64_t row = v->ndim < 2 ? 1 : v->nelem / (uint64_t)v->shape[0];
	int r;

	if (v->ndim >= 2 && v->shape[0] == 0)
		row = 0;
	r = st_file_read_elems_f32(c->files[v->file], v->t, v->e0 + (uint64_t)row0 * row,
				   (uint64_t)nrows * row, out, err);
	if (r < 0 || !v->scale)
		return r;
	return apply_scale(c, v, row0, nrows, out, err);
}

int ckpt_read_f32(const struct ckpt *c, const char *name, float *out, size_t count,
		  struct gw_err *err)
{
	const struct view *v = views_get(&c->need, name);
	struct st_file *f;
	const struct st_tensor *t;

	if (v) {
		if (v->nelem != (uint64_t)count)
			return gw_errf(err, -EINVAL, "\"%s\": tensor \"%s\" has %llu elements, "
				       "not %zu", st_file_path(c->files[v->file]), name,
				       (unsigned long long)v->nelem, count);
		return read_view(c, v, 0, v->ndim == 0 ? 1 : v->shape[0], out, err);
	}
	t = ckpt_find(c, name, &f);
	if (!t)
		return gw_errf(err, -ENOENT, "\"%s\": no tensor \"%s\"", c->dir, name);
	if (t->nelem != (uint64_t)count)
		return gw_errf(err, -EINVAL, "\"%s\": tensor \"%s\" has %llu elements, not %zu",
			       st_file_path(f), name, (unsigned long long)t->nelem, count);
	return st_file_read_f32(f, t, out, err);
}

int ckpt_read_rows_f32(const struct ckpt *c, const char *name, int64_t row0, int64_t nrows,
		       float *out, struct gw_err *err)
{
	const struct view *v = views_get(&c->need, name);

	if (!v)
		return gw_errf(err, -ENOENT, "\"%s\": no tensor \"%s\"", c->dir, name);
	if (v->ndim != 2 || row0 < 0 || nrows < 0 || row0 > v->shape[0] ||
	    nrows > v->shape[0] - row0)
		return gw_errf(err, -EINVAL, "\"%s\": tensor \"%s\": rows [%lld, %lld + %lld) are "
			       "outside it", c->dir, name, (long long)row0, (long long)row0,
			       (long long)nrows);
	return read_view(c, v, row0, nrows, out, err);
}

bool ckpt_bf16(const struct ckpt *c, const char *name)
{
	const struct view *v = views_get(&c->need, name);

	return v && v->ndim == 2 && v->t->dtype == ST_BF16 && !v->scale;
}

int ckpt_read_rows_bf16(const struct ckpt *c, const char *name, int64_t row0, int64_t nrows,
			uint16_t *out, struct gw_err *err)
{
	const struct view *v = views_get(&c->need, name);
	uint64_t row;

	if (!v)
		return gw_errf(err, -ENOENT, "\"%s\": no tensor \"%s\"", c->dir, name);
	if (!ckpt_bf16(c, name))
		return gw_errf(err, -ENOTSUP, "\"%s\": tensor \"%s\" is not plain BF16", c->dir,
			       name);
	if (row0 < 0 || nrows < 0 || row0 > v->shape[0] || nrows > v->shape[0] - row0)
		return gw_errf(err, -EINVAL, "\"%s\": tensor \"%s\": rows [%lld, %lld + %lld) are "
			       "outside it", c->dir, name, (long long)row0, (long long)row0,
			       (long long)nrows);
	row = (uint64_t)v->shape[1];
	return st_file_read_elems_raw(c->files[v->file], v->t, v->e0 + (uint64_t)row0 * row,
				      (uint64_t)nrows * row, out, err);
}

/* ---- completeness ----------------------------------------------------- */

/*
 * The largest end offset in a header, read with cJSON alone (st_header_parse
 * needs the data size, which is what we want to learn).  -1 when the
 * header's shape is not what a safetensors header looks like: the full
 * parse then names the fault.
 */
static int64_t header_data_end(const char *hdr, size_t n)
{
	cJSON *root = cJSON_ParseWithLength(hdr, n);
	int64_t end = 0;

	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return -1;
	}
	for (const cJSON *it = root->child; it; it = it->next) {
		const cJSON *o, *e;
		int64_t v;

		if (it->string && !strcmp(it->string, "__metadata__"))
			continue;
		o = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
		e = cJSON_IsArray(o) && o->child ? o->child->next : NULL;
		if (json_int(e, 0, 9000000000000000LL, &v) != JSON_NUM_OK) {
			end = -1;
			break;
		}
		if (v > end)
			end = v;
	}
	cJSON_Delete(root);
	return end;
}

static int read_at(int fd, void *buf, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t k = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;
		got += (size_t)k;
	}
	return 0;
}

/* 1 complete, 0 not yet, negative malformed; for one safetensors file. */
static int file_complete(const char *path, struct gw_err *err)
{
	unsigned char lenb[8];
	struct stat st;
	struct st_header *h = NULL;
	char *hdr = NULL;
	uint64_t n = 0, size;
	int64_t end;
	int fd, r;

	fd = gw_sys.open(path, O_RDONLY | O_CLOEXEC, 0); /* the seam: EMFILE here is a test */
	if (fd < 0) {
		if (errno == ENOENT) {
			gw_errf(err, -ENOENT, "\"%s\": not there yet", path);
			return 0;
		}
		return gw_errf(err, -errno, "\"%s\": %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0) {
		r = gw_errf(err, -errno, "\"%s\": %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = gw_errf(err, -EBADMSG, "\"%s\": not a regular file", path);
		goto out;
	}
	size = (uint64_t)st.st_size;
	if (size < 8)
		goto short_file;
	if ((r = read_at(fd, lenb, 8, 0)) < 0)
		goto io;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | lenb[i];
	if (n < 2 || n > ST_HEADER_MAX) {
		r = gw_errf(err, -EBADMSG, "\"%s\": header length %llu is outside 2..%u", path,
			    (unsigned long long)n, ST_HEADER_MAX);
		goto out;
	}
	if (size < 8 + n)
		goto short_file;
	hdr = gw_malloc((size_t)n);
	if ((r = read_at(fd, hdr, (size_t)n, 8)) < 0)
		goto io;
	end = header_data_end(hdr, (size_t)n);
	if (end < 0)
		end = (int64_t)(size - 8 - n); /* let the full parse say what is wrong */
	if (size < 8 + n + (uint64_t)end)
		goto short_file;
	if (size > 8 + n + (uint64_t)end) {
		r = gw_errf(err, -EBADMSG, "\"%s\": %llu bytes, longer than the %llu its header "
			    "declares", path, (unsigned long long)size,
			    (unsigned long long)(8 + n + (uint64_t)end));
		goto out;
	}
	if ((r = st_header_parse(path, hdr, (size_t)n, (uint64_t)end, &h, err)) < 0)
		goto out;
	r = 1;
	goto out;
short_file:
	gw_errf(err, -EAGAIN, "\"%s\": %llu bytes so far, not yet complete", path,
		(unsigned long long)size);
	r = 0;
	goto out;
io:
	/* Shrank between fstat and read: being rewritten, so not complete. */
	if (r == -EIO) {
		gw_errf(err, -EAGAIN, "\"%s\": shrank while read", path);
		r = 0;
	} else {
		r = gw_errf(err, r, "\"%s\": %s", path, strerror(-r));
	}
out:
	st_header_free(h);
	free(hdr);
	close(fd);
	return r;
}

int ckpt_check_complete(const char *dir, const char *marker, struct gw_err *err)
{
	enum foreign_kind fk;
	struct index x = { 0 };
	struct stat st;
	bool has_routing = false;
	char *p = NULL;
	int r;

	if (stat(dir, &st) < 0)
		return gw_errf(err, -errno, "\"%s\": %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return gw_errf(err, -ENOTDIR, "\"%s\": not a directory", dir);
	/* A routing file computed by the training job stands in for the
	 * weights; the weights, if config.json says there are some, must be
	 * complete too, for the router matrices the file may lack. */
	p = gw_join(dir, '/', CKPT_ROUTING);
	if (stat(p, &st) == 0) {
		has_routing = true;
		if ((r = file_complete(p, err)) <= 0)
			goto out;
	}
	free(p);
	p = gw_join(dir, '/', CKPT_CONFIG);
	if (stat(p, &st) < 0) {
		if (errno == ENOENT && has_routing)
			goto marker;
		if (errno == ENOENT && (fk = foreign_detect(dir)))
			r = foreign_refuse(dir, fk, err);
		else
			r = errno == ENOENT
				    ? (gw_errf(err, -ENOENT, "\"%s\": no config.json yet", dir), 0)
				    : gw_errf(err, -errno, "\"%s\": %s", p, strerror(errno));
		goto out;
	}
	free(p);
	p = gw_join(dir, '/', CKPT_SINGLE);
	if (stat(p, &st) == 0) {
		if ((r = file_complete(p, err)) <= 0)
			goto out;
	} else {
		free(p);
		p = gw_join(dir, '/', CKPT_INDEX);
		if (stat(p, &st) < 0) {
			if (errno == ENOENT && !has_routing && (fk = foreign_detect(dir)))
				r = foreign_refuse(dir, fk, err);
			else
				r = errno == ENOENT
					    ? (gw_errf(err, -ENOENT, "\"%s\": no %s or %s yet", dir,
						       CKPT_SINGLE, CKPT_INDEX), 0)
					    : gw_errf(err, -errno, "\"%s\": %s", p, strerror(errno));
			goto out;
		}
		if ((r = index_read(p, &x, err)) < 0)
			goto out;
		for (size_t i = 0; i < x.nshard; i++) {
			free(p);
			p = gw_join(dir, '/', x.shard[i]);
			if ((r = file_complete(p, err)) <= 0)
				goto out;
		}
	}
marker:
	if (marker) {
		free(p);
		p = gw_join(dir, '/', marker);
		if (stat(p, &st) < 0) {
			r = errno == ENOENT ? (gw_errf(err, -ENOENT, "\"%s\": no marker yet", p), 0)
					    : gw_errf(err, -errno, "\"%s\": %s", p, strerror(errno));
			goto out;
		}
	}
	r = 1;
out:
	index_release(&x);
	free(p);
	return r;
}

/* ---- the signature of what a computation reads --------------------------------- */

static bool read_by_compute(const char *name)
{
	size_t n = strlen(name);
	static const char st[] = ".safetensors", idx[] = ".safetensors.index.json";

	return !strcmp(name, CKPT_CONFIG) ||
	       (n > sizeof(st) - 1 && !strcmp(name + n - (sizeof(st) - 1), st)) ||
	       (n > sizeof(idx) - 1 && !strcmp(name + n - (sizeof(idx) - 1), idx));
}

int ckpt_signature(const char *dir, uint64_t *ret_sig)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dp = dfd >= 0 ? fdopendir(dfd) : NULL;
	uint64_t h = 0;
	struct dirent *de;

	if (!dp) {
		int e = errno;

		if (dfd >= 0)
			close(dfd);
		return -e;
	}
	while ((de = readdir(dp))) {
		struct stat st;
		uint64_t v[4];

		if (!read_by_compute(de->d_name) || fstatat(dfd, de->d_name, &st, 0) < 0)
			continue;
		v[0] = (uint64_t)st.st_size;
		v[1] = (uint64_t)st.st_mtim.tv_sec;
		v[2] = (uint64_t)st.st_mtim.tv_nsec;
		v[3] = (uint64_t)st.st_ino;
		/* Order-independent: readdir order may change. */
		h += gw_fnv1a(gw_fnv1a(GW_FNV_BASIS, de->d_name, strlen(de->d_name)), v, sizeof(v)) *
		     0x9E3779B97F4A7C15ull;
	}
	closedir(dp);
	*ret_sig = h ? h : 1;
	return 0;
}
