/*
 * step.h — the training step of a checkpoint (SPEC §2): from its directory
 * name by a pattern, or from trainer_state.json's "global_step".
 *
 * A pattern is literal text with one "{step}" (one or more decimal digits)
 * and any number of "*" (any run of characters, possibly empty), matched
 * against the whole name: "step{step}" matches "step10000";
 * "step{step}-tokens*" matches "step10000-tokens41B".  The default patterns
 * (step_default_patterns) cover the names trainers write: step{step},
 * step{step}-*, checkpoint-{step}, iter_{step}, global_step{step},
 * step_{step}, step-{step}, checkpoint_{step}.
 */
#ifndef GW_ENGINE_STEP_H
#define GW_ENGINE_STEP_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

#define STEP_MAX 999999999999999LL /* 15 digits: far past any real run */

/*
 * The first index in [0, n) whose step is >= step (n if none), in an array
 * of n elements of `size` bytes, sorted by the int64_t step `offset` bytes
 * into each: the one lower bound over steps (series, routing series).
 */
size_t step_lower_bound(const void *base, size_t n, size_t size, size_t offset, int64_t step);

/* NULL-terminated list of the default patterns (static). */
extern const char *const step_default_patterns[];

/* Check a pattern: exactly one "{step}", no other braces; 0 or -EINVAL. */
int step_pattern_check(const char *pattern, struct gw_err *err);

/*
 * Match `name` against the patterns in order; on the first match write the
 * step.  Returns 0, or -ENOENT if no pattern matches (including a step
 * beyond STEP_MAX).
 */
int step_from_name(const char *name, const char *const *patterns, int64_t *ret_step);

/*
 * Read "global_step" (a non-negative integer) from DIR/trainer_state.json.
 * Returns 0, -ENOENT if the file is absent, -EBADMSG (with a message naming
 * the file) if it is present but unusable.
 */
int step_from_trainer_state(const char *dir, int64_t *ret_step, struct gw_err *err);

/*
 * What the trainer logged up to `step`, from DIR/trainer_state.json's
 * "log_history" (Hugging Face Trainer): the last entry with "step" <= step
 * holding a finite "loss" (the training loss; "eval_loss" entries do not
 * count), and the same for "learning_rate".  Entries without a
 * non-negative integer "step" are skipped.  Returns 0 with *ret filled
 * (loss_step or lr_step -1 where none was found), -ENOENT when there is no
 * file, no log_history or nothing in it at or before step, -EBADMSG (the
 * message naming the file) when the file or log_history is malformed.
 */
struct trainer_log {
	double loss, lr;
	int64_t loss_step, lr_step; /* the logged step of each, -1 none */
};
int step_trainer_log(const char *dir, int64_t step, struct trainer_log *ret, struct gw_err *err);

#endif
