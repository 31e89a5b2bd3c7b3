/*
 * foreign.h — checkpoints other trainers write, recognized so that they are
 * refused by name rather than waited for forever (SPEC §2).
 *
 * grokwatch reads Hugging Face checkpoints (config.json and safetensors).
 * A directory without them may hold one of these instead:
 *   - PyTorch Distributed Checkpoint (DCP): ".metadata" and "*.distcp"
 *     files (torchtitan), also under "model_and_optim/" (OLMo-core);
 *   - Megatron-LM: "mp_rank_*" subdirectories (model_optim_rng.pt), or
 *     its torch_dist format (DCP files beside "common.pt" or
 *     "metadata.json");
 *   - DeepSpeed: "*_model_states.pt" (mp_rank_00_model_states.pt), in the
 *     directory itself or in a "global_step*" subdirectory (as HF Trainer
 *     writes it with DeepSpeed inside checkpoint-N/);
 *   - PyTorch pickles only: "pytorch_model.bin" (or its shards and index),
 *     which grokwatch does not load (unpickling can run code).
 * foreign_detect looks only at names (one directory level, and one below
 * for the nested layouts; at most FOREIGN_SCAN_MAX entries a directory);
 * it reads no file.
 *
 * Pure and thread-safe.
 */
#ifndef GW_ENGINE_FOREIGN_H
#define GW_ENGINE_FOREIGN_H
#include <stddef.h>
#include "engine/error.h"

#define FOREIGN_SCAN_MAX 10000

enum foreign_kind {
	FOREIGN_NONE,
	FOREIGN_DCP,         /* torchtitan and other DCP writers */
	FOREIGN_OLMO_CORE,   /* model_and_optim/ holding DCP */
	FOREIGN_MEGATRON,    /* mp_rank_* */
	FOREIGN_MEGATRON_TD, /* torch_dist */
	FOREIGN_DEEPSPEED,   /* *_model_states.pt here */
	FOREIGN_DEEPSPEED_HF, /* the same under global_step<N> (HF Trainer + DeepSpeed) */
	FOREIGN_PICKLE,      /* pytorch_model.bin only */
};

/* What directory `dir` holds, by the names above; FOREIGN_NONE when none
 * (or when dir cannot be read). */
enum foreign_kind foreign_detect(const char *dir);

/* A few words for the kind ("a PyTorch DCP checkpoint (.metadata and
 * *.distcp)"); static storage. */
const char *foreign_what(enum foreign_kind k);

/*
 * The refusal, into err: "\"DIR\": KIND, not a Hugging Face checkpoint;
 * grokwatch cannot read it: save Hugging Face safetensors
 * (save_pretrained), or write routing files with grokwatch.trace".
 * Returns -ENOTSUP.
 */
int foreign_refuse(const char *dir, enum foreign_kind k, struct gw_err *err);

#endif
