/*
 * internal.h — what the client library's files share and do not export:
 * the message struct and its constructors.  Names start with gwc_ so that
 * they cannot meet the daemon's gw_ symbols when both are linked into one
 * program (the unit tests do).
 */
#ifndef GW_CLIENT_INTERNAL_H
#define GW_CLIENT_INTERNAL_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "grokwatch.h"

#define GWC_MSG_MAX ((size_t)256 << 20) /* bytes of one body */

struct gw_msg {
	cJSON *body;        /* a JSON object with a string "type" */
	char *topic;
	char *json;         /* body as text */
	const char *type;   /* borrowed from body */
	const char *run;
	const char *epoch;
	uint64_t seq;
	double time;
	bool replayed;
	size_t daemon;
};

/*
 * A message from a parsed body (ownership moves here, freed on failure
 * too), with topic (copied; NULL = "<type>.<run>") and json (ownership
 * moves here; NULL = serialize body).  Errors: -EINVAL (not an object
 * with a string "type"), -ENOMEM.
 */
int gwc_msg_new(cJSON *body, const char *topic, char *json, struct gw_msg **ret_msg);

/* A history object from a parsed reply (borrowed) and its text (copied).
 * Errors: -EPROTO (not a history reply; why[] says why), -ENOMEM. */
int gwc_history_new(const cJSON *reply, const char *text, struct gw_history **ret_history,
		    char *why, size_t why_size);

/* Integer seq/step fields: 0 and the value, or -EINVAL. */
int gwc_json_uint(const cJSON *v, uint64_t max, uint64_t *ret);

#endif
