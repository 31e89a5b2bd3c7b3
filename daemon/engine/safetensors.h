/*
 * safetensors.h — reading and writing safetensors files.
 *
 * Format (SPEC §2): 8 bytes little-endian header length N, N bytes of JSON
 * header, then the data.  Each header entry is
 *   "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}
 * relative to the data start; "__metadata__" maps strings to strings.
 *
 * st_file_open validates the whole header before it returns: N in
 * [2, ST_HEADER_MAX] and within the file, a JSON object, required fields of
 * the right types, known dtypes, non-negative integral dimensions whose
 * product times the element size equals end - begin (with overflow checks),
 * offsets that tile the data exactly (sorted, no holes, no overlaps, no
 * trailing bytes), unique names of valid UTF-8 without NUL, at most
 * ST_TENSORS_MAX tensors and ST_NAME_MAX bytes a name, string-only
 * metadata.  Any fault gives -EBADMSG (or -ENOENT/-EACCES/... from the
 * system) and a message that names the file and the fault.
 *
 * Reads use pread(2), never a mapping, so a file that shrinks while open
 * gives an error (-EIO with "truncated while open"), not SIGBUS.
 *
 * Thread safety: an st_file may be read from several threads at once
 * (pread has no shared offset); open and free are not concurrent with
 * anything else on the same object.
 */
#ifndef GW_ENGINE_SAFETENSORS_H
#define GW_ENGINE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

#define ST_HEADER_MAX (100u * 1000u * 1000u) /* 100 MB, SPEC §2 */
#define ST_TENSORS_MAX 100000
#define ST_NAME_MAX 1024
#define ST_MAX_DIMS 8
#define ST_META_MAX 100000 /* __metadata__ entries */

enum st_dtype {
	ST_F32, ST_F16, ST_BF16, ST_F64,
	ST_I8, ST_I16, ST_I32, ST_I64,
	ST_U8, ST_U16, ST_U32, ST_U64,
	ST_BOOL,
	/* 8-bit floats (OCP): E4M3 "fn" (bias 7, no infinity, max 448, NaN
	 * S.1111.111) and E5M2 (bias 15, IEEE-like with infinities).  Both are
	 * read as fp32 exactly. */
	ST_F8_E4M3, ST_F8_E5M2,
	/* Known to the format, not readable here: E8M0 scales, 4- and 6-bit
	 * floats (packed, so sizes are in bits), complex64. */
	ST_F8_E8M0, ST_F4, ST_F6_E2M3, ST_F6_E3M2, ST_C64,
	/* Any other dtype string (a name of [A-Z][A-Z0-9_]*, at most
	 * ST_DTYPE_NAME_MAX bytes): its byte size cannot be checked against its
	 * shape, only its place in the data; st_tensor.dtype_name spells it. */
	ST_OTHER,
	ST_DTYPE_COUNT
};
#define ST_DTYPE_NAME_MAX 32

/* "F32" etc. ("other" for ST_OTHER); the element size in bytes (0 for
 * the sub-byte dtypes and ST_OTHER), and in bits (0 for ST_OTHER). */
const char *st_dtype_name(enum st_dtype d);
size_t st_dtype_size(enum st_dtype d);
unsigned st_dtype_bits(enum st_dtype d);
/* Whether st_file_read_f32 and friends convert this dtype: F32, F16, BF16,
 * F8_E4M3, F8_E5M2. */
int st_dtype_readable(enum st_dtype d);
/* Parse a dtype name of the format (never ST_OTHER); 0 or -EINVAL. */
int st_dtype_parse(const char *name, enum st_dtype *ret);

struct st_tensor {
	const char *name;       /* owned by the file */
	enum st_dtype dtype;
	const char *dtype_name; /* as the header spells it (owned by the file) */
	int ndim;               /* 0 .. ST_MAX_DIMS */
	int64_t shape[ST_MAX_DIMS];
	uint64_t nelem;         /* product of shape (1 for a scalar) */
	uint64_t begin, end;    /* data offsets, relative to the data start */
};

struct st_header; /* a parsed, validated header (opaque) */

/*
 * Parse and validate a header held in memory: `json` is the N header bytes
 * (not NUL-terminated), `data_size` the number of data bytes that follow it
 * in the file.  `what` names the input in messages.  This is the fuzzed
 * entry point; st_file_open uses it.
 */
int st_header_parse(const char *what, const char *json, size_t len, uint64_t data_size,
		    struct st_header **ret, struct gw_err *err);
void st_header_free(struct st_header *h);
size_t st_header_count(const struct st_header *h);
/* Tensors in data-offset order; i < count. */
const struct st_tensor *st_header_tensor(const struct st_header *h, size_t i);
/* By name, or NULL. */
const struct st_tensor *st_header_find(const struct st_header *h, const char *name);
/* Metadata value for key, or NULL; and iteration over all pairs. */
const char *st_header_meta(const struct st_header *h, const char *key);
size_t st_header_meta_count(const struct st_header *h);
void st_header_meta_at(const struct st_header *h, size_t i, const char **ret_key,
		       const char **ret_value);

struct st_file; /* an open, validated file (opaque) */

int st_file_open(const char *path, struct st_file **ret, struct gw_err *err);
void st_file_free(struct st_file *f); /* accepts NULL */
const char *st_file_path(const struct st_file *f);
const struct st_header *st_file_header(const struct st_file *f);
/* Total file size as declared: 8 + N + last end offset. */
uint64_t st_file_size(const struct st_file *f);

/*
 * Read the whole tensor, converted to fp32, into out (t->nelem floats).
 * Float dtypes only (F32, F16, BF16, F8_E4M3, F8_E5M2; subnormals,
 * infinities and NaN exact).  Other dtypes give -EINVAL, naming the dtype.
 */
int st_file_read_f32(struct st_file *f, const struct st_tensor *t, float *out,
		     struct gw_err *err);
/*
 * Rows [row0, row0 + nrows) of a tensor with ndim >= 1 (a row is the
 * product of the trailing dimensions), converted to fp32.
 */
int st_file_read_rows_f32(struct st_file *f, const struct st_tensor *t, int64_t row0,
			  int64_t nrows, float *out, struct gw_err *err);
/* Elements [e0, e0 + n) in storage order (a slice of a stacked tensor),
 * converted to fp32; -EINVAL outside the tensor. */
int st_file_read_elems_f32(struct st_file *f, const struct st_tensor *t, uint64_t e0,
			   uint64_t n, float *out, struct gw_err *err);
/* Elements [e0, e0 + n) in storage order as their stored bytes
 * (n * st_dtype_size of them); -EINVAL outside the tensor. */
int st_file_read_elems_raw(struct st_file *f, const struct st_tensor *t, uint64_t e0,
			   uint64_t n, void *out, struct gw_err *err);
/* The raw bytes of a tensor (t->end - t->begin of them), any dtype. */
int st_file_read_raw(struct st_file *f, const struct st_tensor *t, void *out,
		     struct gw_err *err);

/* Conversions, exposed for tests and for the forward pass's own loads. */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t b);
float st_f8e4m3_to_f32(uint8_t b);
float st_f8e5m2_to_f32(uint8_t b);
void st_convert_f32(enum st_dtype d, const void *src, float *dst, size_t n);

/*
 * Writing.  Tensors are written in the order given, tiled without holes,
 * little-endian; the file is written to "path.tmp.<pid>", fsynced and
 * renamed over path, so a reader never sees half a file.
 */
struct st_write_tensor {
	const char *name;
	enum st_dtype dtype;
	int ndim;
	int64_t shape[ST_MAX_DIMS];
	const void *data; /* nelem * dtype size bytes, native (little-endian) order */
};
struct st_write_meta {
	const char *key, *value;
};
int st_write(const char *path, const struct st_write_tensor *tensors, size_t n,
	     const struct st_write_meta *meta, size_t nmeta, struct gw_err *err);

#endif
