/*
 * fuzz_json.c — libFuzzer target for engine/json.h's pre-scan.
 *
 * Besides "never crash" it checks the two properties the callers rely on,
 * against cJSON itself, on every input:
 *  - a text cJSON takes whole (its value, then only white space) gets no
 *    syntax, depth or truncation fault from the scan: the scan's grammar
 *    accepts all that cJSON does, so a text it calls not JSON is one cJSON
 *    refuses too, and its depth limit is cJSON's;
 *  - when the scan also finds no fault, it saw exactly as many values as
 *    cJSON built nodes, in document order, so the n-th line it recorded is
 *    the line of the n-th node (what config messages print), and the lines
 *    never go back.
 * json_parse runs too, and an accepted text's lines must be usable.
 */
#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t count_nodes(const cJSON *node)
{
	size_t n = 1;

	for (const cJSON *c = node->child; c; c = c->next)
		n += count_nodes(c);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* As close to cJSON as the scan goes: raw controls, a byte order mark. */
	static const struct json_limits lim = { .raw_controls = true, .bom = true, .lines = true };
	const char *text = (const char *)data;
	const char *end = NULL;
	struct json_scan sc;
	struct json_doc d;
	struct gw_err err;
	cJSON *root;
	bool whole;
	int r, lines = 1;

	r = json_scan(text, size, &lim, &sc);
	if ((r == 0) != (sc.fault == JSON_FAULT_NONE) || (r == 0 && sc.end > size))
		abort();
	root = cJSON_ParseWithLengthOpts(text, size, &end, 0);
	whole = root != NULL;
	for (const char *p = end; whole && p < text + size; p++)
		whole = *p > 0 && (unsigned char)*p <= 32;
	if (whole && (sc.fault == JSON_FAULT_SYNTAX || sc.fault == JSON_FAULT_UNTERMINATED ||
		      sc.fault == JSON_FAULT_DEPTH || sc.fault == JSON_FAULT_CONTROL ||
		      sc.fault == JSON_FAULT_VALUES))
		abort();
	if (whole && r == 0) {
		if (sc.values != count_nodes(root))
			abort();
		for (size_t i = 0; i < size; i++)
			lines += text[i] == '\n';
		for (size_t i = 0; i < sc.values; i++)
			if (sc.lines[i] < 1 || sc.lines[i] > lines ||
			    (i && sc.lines[i] < sc.lines[i - 1]))
				abort();
	}
	cJSON_Delete(root);
	json_scan_release(&sc);

	if (json_parse("fuzz", text, size, &lim, &d, &err) == 0) {
		if (whole && r == 0 && (!d.lines_ok || json_line(&d, d.root) != d.scan.lines[0]))
			abort();
		json_doc_release(&d);
	} else if (strncmp(err.msg, "\"fuzz\" line ", 12) != 0) {
		abort();
	}
	return 0;
}
