/*
 * probe.h — the probe set: pre-tokenized training samples in named groups
 * (SPEC §2).
 *
 * Sources:
 *  - JSON Lines, one sample a line: {"tokens": [int, ...], "group": "math",
 *    "id": "optional"}; "group" defaults to "default".
 *  - raw token memmaps as OLMo/Dolma write them: headerless little-endian
 *    uint16 or uint32 ids, cut into `count` samples of `length` tokens from
 *    token `offset`, all in one group.
 * Several sources may be added to one probe.  The probe hash is SHA-256
 * over the samples' content (group, id, tokens), not over paths, so the
 * same samples give the same hash wherever they live.
 *
 * Every fault names the file, the line (JSON Lines) and the fault:
 *   "probe.jsonl" line 12: token 7 is 70000, at or beyond the vocabulary (50304)
 */
#ifndef GW_ENGINE_PROBE_H
#define GW_ENGINE_PROBE_H

#include <stdint.h>

#include "engine/error.h"

#define PROBE_LINE_MAX (16u * 1024u * 1024u) /* bytes in one JSON line */
#define PROBE_SAMPLE_MAX 32768               /* tokens in one sample */
#define PROBE_SAMPLES_MAX 1000000            /* samples in one probe */
#define PROBE_GROUP_MAX 128                  /* bytes in a group name */
#define PROBE_ID_MAX 256                     /* bytes in an id */

struct probe_sample {
	int32_t *tokens;
	int ntokens;
	int group;  /* index into probe->groups */
	char *id;   /* "" if none */
};

struct probe {
	int n_samples;
	struct probe_sample *samples;
	int n_groups;
	char **groups;
	char hash[65]; /* hex SHA-256, valid after probe_finish */
};

struct probe *probe_new(void);
void probe_free(struct probe *p); /* accepts NULL */
/* Add the samples of a JSON Lines file.  vocab > 0 checks every id. */
int probe_add_jsonl(struct probe *p, const char *path, int vocab, struct gw_err *err);
/* Add `count` samples of `length` tokens from a raw memmap of `width`
 * bytes a token (2 or 4), starting at token `offset`. */
int probe_add_memmap(struct probe *p, const char *path, int width, int length, int count,
		     int64_t offset, const char *group, int vocab, struct gw_err *err);
/* Check every token against a vocabulary (for a probe loaded before the
 * model was known). */
int probe_check_vocab(const struct probe *p, int vocab, struct gw_err *err);
/* Compute the hash; call after the last add. */
void probe_finish(struct probe *p);

#endif
