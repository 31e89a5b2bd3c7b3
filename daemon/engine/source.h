/*
 * source.h — where a checkpoint's routing records come from (SPEC §5):
 * a routing file given directly, DIR/routing.safetensors written by the
 * training job, or the forward pass of the checkpoint in DIR over the
 * probe set.  `grokwatchd analyze` and the daemon's job both load through
 * here, so they agree on which source wins and on the messages.
 *
 * Order: a path that is a file is a routing file.  A directory holding
 * routing.safetensors uses it, and where the file has no router matrices
 * (needed for consistency) and DIR has a config.json, they are read from
 * the checkpoint's weights.  Any other directory runs the forward pass,
 * which needs a probe.
 *
 * Thread safety: no global state but OpenBLAS's thread count, which the
 * forward pass sets from fo->threads (forward.h).
 */
#ifndef GW_ENGINE_SOURCE_H
#define GW_ENGINE_SOURCE_H

#include "engine/error.h"
#include "engine/forward.h"
#include "engine/probe.h"
#include "engine/routing.h"

enum source_kind { SOURCE_ROUTING_FILE, SOURCE_FORWARD };

/*
 * Load the routing of `path`.  probe may be NULL when every input has a
 * routing file.  fo may be NULL.  On success *ret is a new routing (free
 * with routing_free) with arch, checkpoint (the path's last component,
 * unless the routing file names one) and probe_hash filled where known;
 * its step is what the routing file says, else -1 (callers decide the
 * step from the name).  *ret_kind says which source was used.
 * Errors: -ENOENT (path missing), -EINVAL (a directory with no routing
 * file and no probe, a token beyond the vocabulary), those of ckpt_open,
 * forward_run (-ECANCELED when fo->cancel was set) and routing_file_read,
 * each with a message naming the input.
 */
int source_load(const char *path, const struct probe *probe, const struct forward_opts *fo,
		struct routing **ret, enum source_kind *ret_kind, struct gw_err *err);

const char *source_kind_name(enum source_kind k); /* "routing file", "forward pass" */

#endif
