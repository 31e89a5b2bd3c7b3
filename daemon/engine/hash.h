/*
 * hash.h — the one non-cryptographic hash (FNV-1a, 64 bits), for hash
 * tables, directory signatures and alert fingerprints.  Fingerprints are
 * kept in journals and sent to receivers, so its values must not change.
 * (Content hashes that must resist collisions use sha256.h.)
 *
 * Pure; any thread.
 */
#ifndef GW_ENGINE_HASH_H
#define GW_ENGINE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define GW_FNV_BASIS 14695981039346656037ull /* FNV-1a's 64-bit offset basis */

/* h extended by the n bytes at p: start from GW_FNV_BASIS. */
static inline uint64_t gw_fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 1099511628211ull;
	return h;
}

#endif
