/*
 * fuzz_serve_api.c — libFuzzer target for what `grokwatch serve` reads from
 * a request: api_parse (client/cli/api.c) over a path and parameters the
 * input spells out ("PATH\nk=v&k=v..."), and emit_json_str, which writes
 * request values back into replies.
 *
 * Besides "never crash" it checks: the status is 0, 400, 404 or 414; a
 * refusal's reason is one line; an accepted request has from <= to, a
 * metric of [A-Za-z0-9_] words joined by single dots, values within
 * API_VALUE_MAX; and emit_json_str's output, read by cJSON, is the input
 * string again.
 */
#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../client/cli/api.h"
#include "../../client/cli/emit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_roundtrip(const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cJSON *j;

	emit_json_str(f, s);
	fclose(f);
	j = cJSON_Parse(buf);
	if (!cJSON_IsString(j) || strcmp(j->valuestring, s))
		abort();
	cJSON_Delete(j);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *nl, *q, *save = NULL;
	struct api_param p[API_PARAMS_MAX + 2];
	struct api_req req;
	char why[300];
	size_t n = 0;
	int st;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	check_roundtrip(text);
	nl = strchr(text, '\n');
	q = nl ? nl + 1 : NULL;
	if (nl)
		*nl = 0;
	for (char *kv = q ? strtok_r(q, "&", &save) : NULL; kv && n < API_PARAMS_MAX + 2;
	     kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');

		if (eq)
			*eq = 0;
		p[n++] = (struct api_param){ kv, eq ? eq + 1 : NULL };
	}
	memset(&req, 0xAA, sizeof(req));
	st = api_parse(text, p, n, &req, why, sizeof(why));
	if (st != 0 && st != 400 && st != 404 && st != 414)
		abort();
	if (st != 0 && (strchr(why, '\n') || !why[0]))
		abort();
	if (st == 0) {
		if (req.from >= 0 && req.to >= 0 && req.from > req.to)
			abort();
		if (req.route == API_HISTORY) {
			const char *m = req.metric;

			if (!m || !*m || *m == '.' || m[strlen(m) - 1] == '.' || strstr(m, "..") ||
			    strlen(m) > 128 || strspn(m, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
						      "0123456789_.") != strlen(m))
				abort();
		}
		if ((req.run && strlen(req.run) > API_VALUE_MAX) ||
		    (req.group && strlen(req.group) > API_VALUE_MAX))
			abort();
	}
	free(text);
	return 0;
}
