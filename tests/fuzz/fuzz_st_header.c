/*
 * fuzz_st_header.c — libFuzzer target for the safetensors header parser.
 *
 * Input: 8 bytes little-endian data size, then the header JSON.  Every
 * input must be accepted or refused with a message naming the input;
 * an accepted header must satisfy what the readers rely on: tensors in
 * offset order tiling [0, data_size) exactly, each size equal to its
 * element count times its dtype size, names findable, metadata readable;
 * each name mapped by tensor_map.h to a canonical name that maps to itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/safetensors.h"
#include "engine/tensor_map.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct st_header *h = NULL;
	struct gw_err err = { "" };
	uint64_t data_size = 0, pos = 0;
	int r;

	if (size < 8)
		return 0;
	for (int i = 0; i < 8; i++)
		data_size |= (uint64_t)data[i] << (8 * i);
	r = st_header_parse("fuzz", (const char *)data + 8, size - 8, data_size, &h, &err);
	if (r < 0) {
		if (h || strncmp(err.msg, "\"fuzz\"", 6) != 0)
			abort();
		return 0;
	}
	for (size_t i = 0; i < st_header_count(h); i++) {
		const struct st_tensor *t = st_header_tensor(h, i);

		if (t->begin != pos || t->end < t->begin ||
		    (st_dtype_bits(t->dtype) &&
		     (t->end - t->begin) * 8 != t->nelem * st_dtype_bits(t->dtype)) ||
		    st_header_find(h, t->name) != t || t->ndim < 0 || t->ndim > ST_MAX_DIMS)
			abort();
		pos = t->end;
		/* The name map (tensor_map.h) takes every stored name, and a
		 * canonical name is its own canonical name. */
		{
			char c1[ST_NAME_MAX + 16], c2[ST_NAME_MAX + 16];

			if (tmap_canonical(t->name, c1, sizeof(c1)) != 0 ||
			    tmap_canonical(c1, c2, sizeof(c2)) != 0 || strcmp(c1, c2) != 0)
				abort();
		}
	}
	if (pos != data_size)
		abort();
	for (size_t i = 0; i < st_header_meta_count(h); i++) {
		const char *k, *v;

		st_header_meta_at(h, i, &k, &v);
		if (!k || !v || st_header_meta(h, k) == NULL)
			abort();
	}
	st_header_free(h);
	return 0;
}
