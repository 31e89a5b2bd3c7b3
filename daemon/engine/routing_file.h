/*
 * routing_file.h — routing files (SPEC §5): a checkpoint's routing records
 * over a probe set as a safetensors file, written by `analyze
 * --dump-routing` or by a training job.
 *
 * Tensors (no others are accepted):
 *   gbar       F32 [N, L, E]   each row finite, >= 0, summing to 1 within 1e-3
 *   loss       F32 [N]         finite or NaN (unknown)
 *   ntokens    I32 [N]         1 .. ROUTING_MAX_SAMPLE_TOKENS
 *   router.<l> F32|F16|BF16 [E, H], for l = 0 .. L-1: all of them or none,
 *              one H (training jobs often keep router weights in bf16)
 *   topk_ids   U16 [T, L, k]   each < E        \
 *   topk_w     F32 [T, L, k]   finite           | per-token records: all four
 *   entropy    F32 [T, L]      finite           | or none, T = sum(ntokens),
 *   lse        F32 [T, L]      finite          /  tokens in sample order
 * Metadata (strings):
 *   format  = "grokwatch-routing"        required
 *   version = "1"                        required
 *   groups  = JSON array of N strings    required, each 1 .. ROUTING_GROUP_MAX
 *             bytes; "all" is reserved (the metrics' name for every sample)
 *   ids     = JSON array of N strings    required, each 0 .. ROUTING_ID_MAX bytes
 *   step    = decimal integer >= 0       optional (absent: unknown, step -1)
 *   top_k   = decimal integer 1 .. E     required with the per-token records
 *             (and equal to their k), optional without
 *   probe_hash = 64 lowercase hex digits, checkpoint, arch   optional
 * Other metadata keys are ignored (a training job may add its own).
 *
 * Every fault gives -EBADMSG (or the system's error for the file) and a
 * message naming the file and the fault, e.g.
 *   "run/routing.safetensors": gbar row of sample 3, layer 1 sums to 0.98, not 1
 *
 * Thread safety: no shared state; any function may run on any thread.
 */
#ifndef GW_ENGINE_ROUTING_FILE_H
#define GW_ENGINE_ROUTING_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/routing.h"
#include "engine/safetensors.h"

#define ROUTING_FORMAT "grokwatch-routing"
#define ROUTING_VERSION "1"

/* Limits on every size a file controls. */
#define ROUTING_MAX_SAMPLES 1000000           /* N (as PROBE_SAMPLES_MAX) */
#define ROUTING_MAX_LAYERS 1024               /* L */
#define ROUTING_MAX_EXPERTS 65536             /* E (ids are U16) */
#define ROUTING_MAX_HIDDEN 65536              /* H */
#define ROUTING_MAX_TOP_K 256                 /* k */
#define ROUTING_MAX_SAMPLE_TOKENS (1 << 20)   /* ntokens[i] */
#define ROUTING_MAX_TOKENS (16 * 1024 * 1024) /* T (as FORWARD_TOKENS_MAX) */
#define ROUTING_MAX_ELEMS ((uint64_t)1 << 31) /* elements of any one tensor */
#define ROUTING_GROUP_MAX 128                 /* bytes of a group name */
#define ROUTING_ID_MAX 256                    /* bytes of a sample id */
#define ROUTING_TEXT_MAX 4096                 /* bytes of checkpoint / arch */
#define ROUTING_GBAR_TOL 1e-3                 /* |row sum - 1| allowed */

/*
 * What a header says, once routing_file_check_header has accepted it.
 * n_tokens is T from the per-token tensors (0 without them); it is checked
 * against sum(ntokens) only when the data are read.
 */
struct routing_file_info {
	int n_samples, n_layers, n_experts;
	int hidden;           /* H, or 0 without router tensors */
	int top_k;            /* 0 when unknown */
	bool has_router, has_tokens;
	int64_t n_tokens;
	int64_t step;         /* -1 when absent */
	char **groups, **ids; /* [n_samples], owned */
	char *probe_hash, *checkpoint, *arch; /* owned, NULL when absent */
};

/*
 * Check a parsed safetensors header against the rules above (everything
 * but the tensor values).  `what` names the input in messages.  On success
 * *ret is a new info the caller frees with routing_file_info_free.
 * Errors: -EBADMSG.  This is the fuzzed entry point for the metadata.
 */
int routing_file_check_header(const char *what, const struct st_header *h,
			      struct routing_file_info **ret, struct gw_err *err);
void routing_file_info_free(struct routing_file_info *info); /* accepts NULL */

/*
 * Parse metadata value `json` (NUL-terminated) of key `key` as a JSON array
 * of exactly `n` strings (n < 0: any count up to ROUTING_MAX_SAMPLES), each
 * of min_len .. max_len bytes of valid UTF-8 without NUL (cJSON decodes
 * \u escapes; a "\u0000" is refused).  On success *ret_v is a new array of
 * *ret_n new strings (free each, then the array).  Errors: -EBADMSG with a
 * message naming `what`, the key and the fault.
 */
int routing_meta_strings(const char *what, const char *key, const char *json, int n,
			 size_t min_len, size_t max_len, int *ret_n, char ***ret_v,
			 struct gw_err *err);

/*
 * Read and validate a whole routing file.  On success *ret is a new
 * routing (routing_free) with every field the file carries: router[l] set
 * for every l when the file has router tensors (hidden = H), the per-token
 * records when it has them (has_tokens), step, groups, ids, top_k,
 * probe_hash, checkpoint and arch.
 * Errors: those of st_file_open, -EBADMSG for any rule above broken.
 * Memory: the file's tensors once, in fp32.
 */
int routing_file_read(const char *path, struct routing **ret, struct gw_err *err);

/*
 * Write `r` as a routing file at `path` (atomically, through st_write):
 * gbar, loss, ntokens; router.<l> (F32) when every router[l] is set; the
 * per-token records when has_tokens; the metadata, step only when >= 0,
 * top_k when > 0, and the optional strings when set.  `r` must be one
 * routing_file_read would accept (N >= 1, names within limits, no group
 * called "all", ...): that is checked, -EINVAL with a message naming path.
 * Errors: -EINVAL, and those of st_write.
 */
int routing_file_write(const char *path, const struct routing *r, struct gw_err *err);

#endif
