/*
 * checkpoint.h — a Hugging Face checkpoint directory: config.json plus
 * either model.safetensors or the shards that model.safetensors.index.json
 * lists in its weight_map (SPEC §2).
 *
 * ckpt_open reads and validates the config (through model.h), opens every
 * safetensors file, and resolves every tensor to its file: for a sharded
 * checkpoint only through the index's weight_map (every named shard must
 * exist and hold the tensors the index gives it).  It then checks that
 * every tensor the forward pass needs is present with the right shape
 * (model_check_tensors), so no work starts on a checkpoint that cannot
 * finish.
 *
 * Each tensor the model needs is found by its Hugging Face name through
 * one name map (tensor_map.h: with or without "model.", "_orig_mod.",
 * "module."), else, for experts, as a slice of Transformers v5's fused
 * "mlp.experts.gate_up_proj" [E, 2I, H] (gate rows first) or
 * "mlp.experts.down_proj" [E, H, I], and Mixtral's router also under v5's
 * "mlp.gate".  FP8 weights (F8_E4M3, F8_E5M2) are read as fp32, times their
 * 128 x 128 block scales ("<name>_scale_inv", [ceil(rows/128),
 * ceil(cols/128)]) where stored beside them, exactly as DeepSeek-V3's
 * checkpoints need.  Tensors the model does not need are never read and
 * never refuse the checkpoint, whatever their dtype.
 *
 * ckpt_check_complete is the cheap completeness test for the watcher: it
 * stats files and reads only the 8-byte length and header of each file.
 *
 * Thread safety: reads from several threads at once are fine once open.
 */
#ifndef GW_ENGINE_CHECKPOINT_H
#define GW_ENGINE_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/model.h"
#include "engine/safetensors.h"

#define CKPT_SHARDS_MAX 10000
#define CKPT_CONFIG_MAX (16u * 1024u * 1024u)   /* config.json size limit */
#define CKPT_INDEX_MAX (256u * 1024u * 1024u)   /* index size limit */
#define CKPT_TENSORS_MAX 1000000                /* weight_map entries */
#define CKPT_SHARD_NAME_MAX 255                 /* a shard's file name */

/* File names inside a checkpoint directory. */
#define CKPT_CONFIG "config.json"
#define CKPT_SINGLE "model.safetensors"
#define CKPT_INDEX "model.safetensors.index.json"
#define CKPT_ROUTING "routing.safetensors" /* routing records from the training job (SPEC §5) */

struct ckpt;

/*
 * Open and fully validate the checkpoint directory `dir`.  Where both
 * model.safetensors and an index exist, model.safetensors is used, as
 * transformers does.  Errors (the message names the file and the fault):
 * -ENOENT config.json, the weights or a shard the index names is missing;
 * -EBADMSG a malformed config, index (not JSON, weight_map not an object
 * of strings, a shard name that is not a plain file name, a tensor its
 * shard lacks) or safetensors file, a needed tensor missing or of another
 * shape than config.json implies, or of a dtype not read here (named), two
 * stored tensors with one canonical name (both named), a fused tensor or a
 * block scale of the wrong shape; -ENOTSUP a directory of another
 * trainer's format without config.json and safetensors (foreign.h: the
 * message names the format and the two ways forward), an
 * unsupported architecture or feature (model.h); -EFBIG a config or index
 * above its size limit; other -errno from the system.
 */
int ckpt_open(const char *dir, struct ckpt **ret, struct gw_err *err);
void ckpt_free(struct ckpt *c); /* accepts NULL */

const char *ckpt_dir(const struct ckpt *c);
const struct model_desc *ckpt_model(const struct ckpt *c);
size_t ckpt_file_count(const struct ckpt *c);
struct st_file *ckpt_file_at(const struct ckpt *c, size_t i);
/* Whether the weights are shards listed by an index. */
bool ckpt_sharded(const struct ckpt *c);
/* Total tensors and bytes of tensor data over all files. */
size_t ckpt_tensor_count(const struct ckpt *c);
uint64_t ckpt_data_bytes(const struct ckpt *c);

/* A stored tensor by its stored name, with the file holding it; NULL if
 * absent. */
const struct st_tensor *ckpt_find(const struct ckpt *c, const char *name,
				  struct st_file **ret_file);
/* Whether the model's tensor `name` (its Hugging Face name, as
 * model_tensor_name gives it) was found, and its shape (ndim 0..2; the
 * dims past ndim read 1).  ckpt_shape: 0 or -ENOENT. */
bool ckpt_has(const struct ckpt *c, const char *name);
int ckpt_shape(const struct ckpt *c, const char *name, int64_t shape[2], int *ret_ndim);
/* Read a whole tensor as fp32 (dequantized where block-scaled); `count`
 * must equal its element count.  `name` is a tensor the model needs (by
 * its Hugging Face name) or else a stored name.  -ENOENT if absent,
 * -EINVAL if count differs, else as st_file_read_f32. */
int ckpt_read_f32(const struct ckpt *c, const char *name, float *out, size_t count,
		  struct gw_err *err);
/* Rows [row0, row0 + nrows) of a 2-D tensor the model needs, as fp32.
 * -ENOENT if the model has no such tensor, -EINVAL outside its rows. */
int ckpt_read_rows_f32(const struct ckpt *c, const char *name, int64_t row0, int64_t nrows,
		       float *out, struct gw_err *err);
/* Whether the model's 2-D tensor `name` is stored as BF16 without block
 * scales, so that ckpt_read_rows_bf16 reads it. */
bool ckpt_bf16(const struct ckpt *c, const char *name);
/* Rows [row0, row0 + nrows) of such a tensor as its BF16 values (2 bytes
 * each, little-endian); -ENOTSUP if it is stored otherwise, else as
 * ckpt_read_rows_f32. */
int ckpt_read_rows_bf16(const struct ckpt *c, const char *name, int64_t row0, int64_t nrows,
			uint16_t *out, struct gw_err *err);

/*
 * Completeness (SPEC §2): config.json present, every file the index names
 * present, every safetensors file's size equal to 8 + N + last end offset,
 * and `marker` (if not NULL) present.  A directory holding
 * routing.safetensors (SPEC §5) needs that file complete and, only if
 * config.json is there, the weights complete too (for router matrices the
 * file may lack).  Returns 1 if complete, 0 if not yet complete (with the
 * reason in err->msg), negative errno if it can never
 * be (-ENOTSUP: another trainer's format, foreign.h, where config.json or
 * the weights are missing and no routing file stands in; malformed: a
 * safetensors file longer than its header declares or with a bad header,
 * an index that is not valid, `dir` not a directory or gone).  Opens no tensor data; thread-safe.  `marker` is a path relative
 * to dir.
 */
int ckpt_check_complete(const char *dir, const char *marker, struct gw_err *err);

/*
 * A signature of the files a computation reads from checkpoint `dir`:
 * name, size, mtime (ns) and inode of config.json and of every first-level
 * file whose name ends in ".safetensors" or ".safetensors.index.json"
 * (weights, shards, index, routing records), in an order-independent hash.
 * Files a trainer adds beside them (optimizer states, trainer_state.json)
 * do not count.  Two equal signatures mean no file read changed in a way
 * stat can see.  0 and *ret_sig (never 0), or -errno of opening dir.
 * Thread-safe.
 */
int ckpt_signature(const char *dir, uint64_t *ret_sig);

#endif
