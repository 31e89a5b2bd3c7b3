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
#include "engine/hash.h"
#include "engine/json.h"
#include "engine/sys.h"

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
	struct map map;
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
	*e = (struct ent){ name, file, t };
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

static int lookup(void *ud, const char *name, int *ret_ndim, int64_t ret_shape[8])
{
	const struct ent *e = map_get(&((struct ckpt *)ud)->map, name);

	if (!e)
		return -ENOENT;
	*ret_ndim = e->t->ndim;
	for (int i = 0; i < e->t->ndim && i < 8; i++)
		ret_shape[i] = e->t->shape[i];
	return 0;
}

struct dtype_check {
	const struct ckpt *c;
	struct gw_err *err;
};

static int check_dtype(void *ud, enum model_tensor kind, int layer, int expert,
		       const char *name)
{
	struct dtype_check *d = ud;
	const struct ent *e = map_get(&d->c->map, name);

	(void)kind;
	(void)layer;
	(void)expert;
	if (e && e->t->dtype != ST_F32 && e->t->dtype != ST_F16 && e->t->dtype != ST_BF16)
		return gw_errf(d->err, -EBADMSG, "\"%s\": tensor \"%s\" is %s, not F32, F16 or "
			       "BF16", st_file_path(d->c->files[e->file]), name,
			       st_dtype_name(e->t->dtype));
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
		r = gw_errf(err, -ENOENT, "\"%s\": no config.json (not a Hugging Face checkpoint)",
			    dir);
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
	} else {
		r = gw_errf(err, -ENOENT, "\"%s\": no %s or %s", dir, CKPT_SINGLE, CKPT_INDEX);
	}
	if (r < 0)
		goto out;

	if ((r = model_check_tensors(&c->model, dir, lookup, c, err)) < 0)
		goto out;
	{
		struct dtype_check d = { c, err };

		if ((r = model_tensor_foreach(&c->model, check_dtype, &d)) < 0)
			goto out;
	}
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

int ckpt_read_f32(const struct ckpt *c, const char *name, float *out, size_t count,
		  struct gw_err *err)
{
	struct st_file *f;
	const struct st_tensor *t = ckpt_find(c, name, &f);

	if (!t)
		return gw_errf(err, -ENOENT, "\"%s\": no tensor \"%s\"", c->dir, name);
	if (t->nelem != (uint64_t)count)
		return gw_errf(err, -EINVAL, "\"%s\": tensor \"%s\" has %llu elements, not %zu",
			       st_file_path(f), name, (unsigned long long)t->nelem, count);
	return st_file_read_f32(f, t, out, err);
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
		r = errno == ENOENT ? (gw_errf(err, -ENOENT, "\"%s\": no config.json yet", dir), 0)
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
			r = errno == ENOENT ? (gw_errf(err, -ENOENT, "\"%s\": no %s or %s yet", dir,
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
