/*
 * fuzz_daemon_config.c — libFuzzer target for the daemon's config reader.
 *
 * The Makefile builds fuzz targets from the engine sources only, so this
 * file #includes daemon/config.c itself (config.c needs nothing beyond the
 * engine, cJSON and daemon/endpoint.c, included too).  Besides "never
 * crash" it checks that a config read compares equal to itself.  The line
 * of each value comes from engine/json.h's pre-scan, whose agreement with
 * cJSON fuzz_json.c checks.
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

	if (config_parse("fuzz.json", text, size, &c, &err) == 0) {
		if (config_diff(c, c, NULL, NULL) != 0)
			abort();
		config_free(c);
	}
	return 0;
}
