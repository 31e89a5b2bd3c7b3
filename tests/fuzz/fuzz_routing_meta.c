/*
 * fuzz_routing_meta.c — libFuzzer target for the routing-file checks that
 * see text: the JSON string arrays of "groups" / "ids" (routing_meta_strings)
 * and the header rules (routing_file_check_header) on a safetensors header
 * the input spells out.
 *
 * The input is used twice: as a metadata value parsed as a string array,
 * and as a safetensors header (the JSON between the length and the data),
 * its data size taken as the largest data_offsets end it declares so that
 * headers which tile well reach the routing checks.  Besides "never crash"
 * it checks that every refusal names the input first and that an accepted
 * header's info agrees with its gbar tensor.
 */
#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/routing_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char prefix[] = "\"fuzz\": ";

static void check_msg(const struct gw_err *err)
{
	if (strncmp(err->msg, prefix, sizeof(prefix) - 1) != 0)
		abort();
}

/* Largest "end" among the header's data_offsets (0 if none or unparsable). */
static uint64_t data_size_of(const char *text)
{
	cJSON *root = cJSON_Parse(text), *it;
	double max = 0;

	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return 0;
	}
	cJSON_ArrayForEach(it, root) {
		cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
		cJSON *end = cJSON_IsArray(off) ? cJSON_GetArrayItem(off, 1) : NULL;

		if (cJSON_IsNumber(end) && end->valuedouble > max && end->valuedouble < 1e15)
			max = end->valuedouble;
	}
	cJSON_Delete(root);
	return (uint64_t)max;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, **v = NULL;
	struct st_header *h = NULL;
	struct routing_file_info *info = NULL;
	struct gw_err err;
	int n = 0;

	if (size > 1 << 20)
		return 0;
	text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = 0;

	if (routing_meta_strings("fuzz", "groups", text, -1, 1, ROUTING_GROUP_MAX, &n, &v,
				 &err) == 0) {
		for (int i = 0; i < n; i++) {
			size_t len = strlen(v[i]);

			if (len < 1 || len > ROUTING_GROUP_MAX)
				abort();
			free(v[i]);
		}
		free(v);
	} else {
		check_msg(&err);
	}

	if (st_header_parse("fuzz", text, size, data_size_of(text), &h, &err) == 0) {
		if (routing_file_check_header("fuzz", h, &info, &err) == 0) {
			const struct st_tensor *g = st_header_find(h, "gbar");

			if (!g || g->shape[0] != info->n_samples || g->shape[1] != info->n_layers ||
			    g->shape[2] != info->n_experts)
				abort();
			for (int i = 0; i < info->n_samples; i++)
				if (!info->groups[i] || !info->ids[i] ||
				    strcmp(info->groups[i], "all") == 0)
					abort();
			if (info->has_tokens && info->top_k < 1)
				abort();
			routing_file_info_free(info);
		} else {
			check_msg(&err);
		}
		st_header_free(h);
	}
	free(text);
	return 0;
}
