/*
 * sha256.h — SHA-256 (FIPS 180-4, unchanged from FIPS 180-2), for the probe
 * hash and anything else that needs a content digest.
 *
 * Incremental: sha256_init, any number of sha256_update calls with data of
 * any length, then sha256_final.  sha256_buf does all three for one buffer.
 * The context is plain data on the caller's stack; nothing is allocated.
 *
 * Thread safety: a context is used by one thread at a time; distinct
 * contexts are independent (no global state).
 */
#ifndef GW_ENGINE_SHA256_H
#define GW_ENGINE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_HEX_LEN 64 /* hex characters, without the NUL */

struct sha256 {
	uint32_t h[8];     /* chaining state */
	uint64_t nbytes;   /* bytes hashed so far */
	uint8_t buf[64];   /* the partial block */
	size_t nbuf;       /* bytes in buf, < 64 */
};

/* Start a digest. */
void sha256_init(struct sha256 *s);
/* Hash n more bytes (data may be NULL when n is 0).  Messages are limited
 * to 2^61 - 1 bytes by the 64-bit bit count; longer is a programming error
 * (aborts). */
void sha256_update(struct sha256 *s, const void *data, size_t n);
/* Pad, write the 32-byte digest to out.  s must be re-initialised before
 * it is used again. */
void sha256_final(struct sha256 *s, uint8_t out[SHA256_DIGEST_LEN]);
/* One-shot digest of data[0..n). */
void sha256_buf(const void *data, size_t n, uint8_t out[SHA256_DIGEST_LEN]);
/* Lower-case hex of a digest into out (65 bytes with the NUL). */
void sha256_hex(const uint8_t digest[SHA256_DIGEST_LEN], char out[SHA256_HEX_LEN + 1]);

#endif
