/*
 * probe.h — the probe set: pre-tokenized training samples in named groups
 * (SPEC §2).
 *
 * Sources (several may be added to one probe, in order):
 *
 *  - JSON Lines, one sample a line:
 *        {"tokens": [int, ...], "group": "math", "id": "optional"}
 *    read as a stream, one line at a time, in a buffer that never exceeds
 *    the line limit.  Lines holding only spaces, tabs or a CR are skipped;
 *    a CR before the LF is allowed; a UTF-8 byte-order mark at the very
 *    start is skipped; the last line may lack its newline.  Each line must
 *    be valid UTF-8 without NUL bytes (raw, or escaped as \u0000, which the
 *    JSON parser could not keep) and hold one JSON object with
 *      "tokens"  required, a non-empty array of integers in [0, 2^31 - 1]
 *                (a number is an integer when its value is: 7, 7.0 and 7e0
 *                are the same JSON number), at most the sample limit;
 *      "group"   optional string, 1 .. PROBE_GROUP_MAX - 1 bytes, no control
 *                characters; absent = "default";
 *      "id"      optional string (0 .. PROBE_ID_MAX - 1 bytes, no control
 *                characters; "" = no id) or integer (|n| <= 2^53, kept as
 *                its decimal text).
 *    Other keys are ignored: real data carries "text", "metadata" and the
 *    like.  A known key given twice is refused, as is an id that repeats
 *    within its group (the same sample counted twice would bias the
 *    group's metrics; samples without an id are not compared).
 *    A file with no sample at all is refused.
 *
 *  - raw token memmaps as OLMo/Dolma write them: headerless little-endian
 *    uint16 or uint32 ids, cut into `count` samples of `length` tokens from
 *    token `offset`, all in one group.  Only that range is read (pread, in
 *    chunks of PROBE_READ_CHUNK bytes), so a file of many GB costs only the
 *    samples' bytes.  Sample i gets the id "memmap:<offset + i * length>"
 *    (the index of its first token in the file), so the same window of two
 *    files added to one group is refused as a repeated id.
 *
 * The probe hash (probe_finish) is SHA-256 over this serialization, which
 * holds the samples' content and order, never a path:
 *
 *     "grokwatch-probe-v1" NUL
 *     for each sample, in order:
 *         group name bytes, NUL, id bytes (possibly none), NUL,
 *         ntokens as uint32 little-endian,
 *         each token as uint32 little-endian
 *
 * (group names and ids hold no NUL, and the count fixes the token run, so
 * the serialization is unambiguous.)
 *
 * Every fault gives a negative errno and a message naming the file, the
 * line where there is one, and the fault:
 *   "probe.jsonl" line 12: tokens[7] is 70000, at or beyond the vocabulary (50304)
 *   "tokens.u16": token 81920 is 51000, at or beyond the vocabulary (50304)
 * -EBADMSG for bad content, -EINVAL for bad arguments or a range outside the
 * file, -E2BIG for a limit exceeded, -EIO for a file that changed while
 * being read, and the system's code (-ENOENT, -EACCES, -EISDIR, ...) where
 * a file cannot be opened or read.  A failed add leaves the probe exactly
 * as it was before the call.
 *
 * Thread safety: a probe is built by one thread; once finished it is
 * read-only and may be shared by any number of threads.
 */
#ifndef GW_ENGINE_PROBE_H
#define GW_ENGINE_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

#define PROBE_LINE_MAX (16u * 1024u * 1024u) /* bytes in one JSON line */
#define PROBE_SAMPLE_MAX 32768               /* tokens in one sample */
#define PROBE_SAMPLES_MAX 1000000            /* samples in one probe */
#define PROBE_GROUP_MAX 128                  /* a group name is shorter than this */
#define PROBE_ID_MAX 256                     /* an id is shorter than this */
#define PROBE_GROUPS_MAX 4096                /* groups in one probe */
#define PROBE_TOKENS_MAX (1 << 26)           /* tokens in one probe (256 MB as int32) */
#define PROBE_READ_CHUNK (1u << 20)          /* bytes a memmap pread asks for */

struct probe_sample {
	int32_t *tokens;
	int ntokens;
	int group;     /* index into probe->groups */
	char *id;      /* "" if none */
	int src;       /* index into probe->sources: where the sample came from */
	int64_t where; /* JSON Lines: 1-based line; memmap: index of the first token */
};

struct probe_state; /* private: limits, hooks and lookup tables */

struct probe {
	int n_samples;
	struct probe_sample *samples;
	int n_groups;
	char **groups;
	int n_sources;
	char **sources;   /* file names as given to the add calls */
	char hash[65];    /* hex SHA-256, valid after probe_finish ("" before) */
	struct probe_state *st;
};

/*
 * Limits lower than the compile-time maxima and a fault-injection hook, for
 * tests and fuzzing.  A zero field keeps the default (the maximum); a value
 * above the maximum is a programming error (aborts).
 */
struct probe_opts {
	size_t line_max;   /* <= PROBE_LINE_MAX */
	int sample_max;    /* <= PROBE_SAMPLE_MAX */
	int samples_max;   /* <= PROBE_SAMPLES_MAX */
	/* Called once a file is open and its size known, before the first
	 * read, with the file's path: a test truncates or rewrites the file
	 * here to play a writer racing the reader. */
	void (*after_stat)(const char *path, void *arg);
	void *hook_arg;
};

/* An empty probe.  Aborts on out-of-memory.  Free with probe_free. */
struct probe *probe_new(void);
void probe_free(struct probe *p); /* accepts NULL */

/* Set limits and hooks (copied) for the adds that follow; NULL restores the
 * defaults.  Lowering sample_max or samples_max does not re-check samples
 * already added. */
void probe_set_opts(struct probe *p, const struct probe_opts *o);

/* Add the samples of a JSON Lines file, streaming it line by line.
 * vocab > 0 checks every token id against it.  Errors as above; the file
 * is refused if it shrinks or grows while being read (-EIO). */
int probe_add_jsonl(struct probe *p, const char *path, int vocab, struct gw_err *err);

/* The same for text held in memory, data[0..len) (need not end in a NUL or
 * a newline); `name` stands for the file in messages and in p->sources.
 * The fuzzed entry point. */
int probe_add_jsonl_mem(struct probe *p, const char *name, const char *data, size_t len,
			int vocab, struct gw_err *err);

/* Add `count` samples of `length` tokens from a raw memmap of `width`
 * bytes a token (2 or 4), starting at token `offset`, in group `group`
 * (NULL = "default"; same rules as a JSON group).  vocab > 0 checks every
 * token.  Errors: width not 2 or 4, length or count below 1 or above the
 * limits, offset < 0, the file size not a multiple of the width, the range
 * beyond the tokens the file holds (the message says how many), a token at
 * or beyond vocab (naming its index in the file), the file shrinking while
 * read. */
int probe_add_memmap(struct probe *p, const char *path, int width, int length, int count,
		     int64_t offset, const char *group, int vocab, struct gw_err *err);

/* Check every token against a vocabulary (for a probe loaded before the
 * model was known).  The message names the sample's file and line (or
 * token index) as the add would have.  -EBADMSG; vocab <= 0 is a
 * programming error. */
int probe_check_vocab(const struct probe *p, int vocab, struct gw_err *err);

/* Compute the hash into p->hash; call after the last add (a later add
 * clears it to ""). */
void probe_finish(struct probe *p);

/*
 * The one probe loader: a probe from a file as the config's probe.* keys
 * and analyze's --probe options describe it, finished (hash computed).
 * For memmaps, `length` tokens a sample, `count` samples from token
 * `offset`, all in `group` (NULL = "default"); JSON Lines ignore them.
 * Used by grokwatchd run (and run --check) and analyze.
 */
enum probe_format { PROBE_FORMAT_JSONL, PROBE_FORMAT_U16, PROBE_FORMAT_U32 };

struct probe_load_opts {
	const char *path;
	enum probe_format format;
	int length, count;
	int64_t offset;
	const char *group;
};

/* On success *ret is a new probe (probe_free).  Errors: those of
 * probe_add_jsonl and probe_add_memmap, naming the file. */
int probe_load(const struct probe_load_opts *o, struct probe **ret, struct gw_err *err);

#endif
