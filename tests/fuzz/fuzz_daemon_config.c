/*
 * fuzz_daemon_config.c — libFuzzer target for the daemon's config reader.
 *
 * The Makefile builds fuzz targets from the engine sources only, so this
 * file #includes daemon/config.c itself (config.c needs nothing beyond the
 * engine, cJSON and daemon/endpoint.c, included too).  Including it also
 * gives the target the file's static line tokenizer, so besides "never
 * crash" it checks one property: for any text cJSON accepts, the tokenizer
 * sees exactly as many values as cJSON built, which is what makes the line
 * numbers in messages right.
 */
#include "../../daemon/config.c"
#include "../../daemon/endpoint.c"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct config *c = NULL;
	struct gw_err err;
	const char *end = NULL;
	cJSON *root;

	if (config_parse("fuzz.json", text, size, &c, &err) == 0) {
		if (config_diff(c, c, NULL, NULL) != 0)
			abort();
		config_free(c);
	}
	if (size > CONFIG_FILE_MAX || memchr(text, 0, size))
		return 0;
	root = cJSON_ParseWithLengthOpts(text, size, &end, 0);
	if (root) {
		struct lines l = { 0 };

		lines_scan(&l, text, (size_t)(end - text), root);
		if (!l.ok)
			abort();
		free(l.v);
		cJSON_Delete(root);
	}
	return 0;
}
