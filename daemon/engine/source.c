/*
 * source.c — a checkpoint's routing records from a routing file or from
 * the forward pass (source.h states the order).  Divided into the router
 * reader (the router matrices a routing file lacks, from the checkpoint
 * beside it) and source_load, which picks the source.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/checkpoint.h"
#include "engine/file.h"
#include "engine/model.h"
#include "engine/routing_file.h"
#include "engine/source.h"

static bool is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0;
}

/* The l-th MoE layer's router of the checkpoint in `dir` for routing
 * layer l. */
static int read_routers(const char *dir, struct routing *r, struct gw_err *err)
{
	const struct model_desc *m;
	struct ckpt *c = NULL;
	int rc, l = 0;

	rc = ckpt_open(dir, &c, err);
	if (rc < 0)
		return rc;
	m = ckpt_model(c);
	if (m->n_moe_layers != r->n_layers || m->n_experts != r->n_experts) {
		rc = gw_errf(err, -EINVAL,
			     "\"%s\": the routing file has %d MoE layers of %d experts, the checkpoint %d of %d",
			     dir, r->n_layers, r->n_experts, m->n_moe_layers, m->n_experts);
		goto out;
	}
	for (int layer = 0; layer < m->n_layers; layer++) {
		char name[256];
		size_t n = (size_t)m->n_experts * (size_t)m->hidden;

		if (!m->layer_moe[layer])
			continue;
		rc = model_tensor_name(m, MT_ROUTER, layer, 0, name, sizeof(name));
		if (rc < 0) {
			rc = gw_errf(err, rc, "\"%s\": no router tensor for layer %d", dir, layer);
			goto out;
		}
		r->router[l] = gw_malloc(n * sizeof(float));
		rc = ckpt_read_f32(c, name, r->router[l], n, err);
		if (rc < 0)
			goto out;
		l++;
	}
	r->hidden = m->hidden;
	rc = 0;
out:
	ckpt_free(c);
	return rc;
}

static int from_routing_file(const char *path, const char *dir, struct routing **ret,
			     struct gw_err *err)
{
	struct routing *r = NULL;
	char cfg[PATH_MAX];
	int rc;

	rc = routing_file_read(path, &r, err);
	if (rc < 0)
		return rc;
	if (dir && !r->router[0] && r->n_layers > 0) {
		if (snprintf(cfg, sizeof(cfg), "%s/%s", dir, CKPT_CONFIG) < (int)sizeof(cfg) &&
		    exists(cfg)) {
			rc = read_routers(dir, r, err);
			if (rc < 0) {
				routing_free(r);
				return gw_err_prefix(err, rc, "router weights for \"%s\"", path);
			}
		}
	}
	*ret = r;
	return 0;
}

static int from_forward(const char *dir, const struct probe *probe, const struct forward_opts *fo,
			struct routing **ret, struct gw_err *err)
{
	struct routing *r = NULL;
	struct ckpt *c = NULL;
	int rc;

	rc = ckpt_open(dir, &c, err);
	if (rc < 0)
		return rc;
	if (!probe) {
		ckpt_free(c);
		return gw_errf(err, -EINVAL,
			       "\"%s\": no routing.safetensors there, and no probe set (--probe, or probe.path in the config) to run the model on",
			       dir);
	}
	rc = probe_check_vocab(probe, ckpt_model(c)->vocab, err);
	if (rc == 0)
		rc = forward_run(c, probe, fo, &r, err);
	if (rc == 0 && !r->arch)
		r->arch = gw_strdup(ckpt_model(c)->arch_name);
	ckpt_free(c);
	if (rc < 0)
		return rc;
	if (!r->probe_hash && probe->hash[0])
		r->probe_hash = gw_strdup(probe->hash);
	*ret = r;
	return 0;
}

int source_load(const char *path, const struct probe *probe, const struct forward_opts *fo,
		struct routing **ret, enum source_kind *ret_kind, struct gw_err *err)
{
	char rpath[PATH_MAX];
	struct routing *r = NULL;
	enum source_kind kind;
	bool dir = is_dir(path);
	int rc;

	if (!dir && !exists(path))
		return gw_errf(err, -ENOENT, "\"%s\": no such file or directory", path);
	if (!dir) {
		kind = SOURCE_ROUTING_FILE;
		rc = from_routing_file(path, NULL, &r, err);
	} else {
		if (snprintf(rpath, sizeof(rpath), "%s/%s", path, CKPT_ROUTING) >= (int)sizeof(rpath))
			return gw_errf(err, -ENAMETOOLONG, "\"%s\": path too long", path);
		if (exists(rpath)) {
			kind = SOURCE_ROUTING_FILE;
			rc = from_routing_file(rpath, path, &r, err);
		} else {
			kind = SOURCE_FORWARD;
			rc = from_forward(path, probe, fo, &r, err);
		}
	}
	if (rc < 0)
		return rc;
	if (!r->checkpoint)
		r->checkpoint = gw_path_base(path);
	*ret = r;
	*ret_kind = kind;
	return 0;
}

const char *source_kind_name(enum source_kind k)
{
	return k == SOURCE_FORWARD ? "forward pass" : "routing file";
}
