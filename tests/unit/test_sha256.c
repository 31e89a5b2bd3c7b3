/*
 * test_sha256.c — SHA-256 against the FIPS 180-2 example vectors (appendix
 * B) and NIST's further examples, and against Python's hashlib (an
 * independent implementation, OpenSSL underneath) on pseudo-random data of
 * lengths around every padding boundary, fed whole and in uneven pieces.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../tap.h"
#include "engine/sha256.h"

#define PYTHON "/usr/bin/python3"

static void hex_of(const void *data, size_t n, char out[SHA256_HEX_LEN + 1])
{
	uint8_t d[SHA256_DIGEST_LEN];

	sha256_buf(data, n, d);
	sha256_hex(d, out);
}

/* FIPS 180-2 appendix B.1: one block. */
static void test_fips_abc(void)
{
	char hex[SHA256_HEX_LEN + 1];

	hex_of("abc", 3, hex);
	CHECK_STR_EQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* FIPS 180-2 appendix B.2: 448 bits, so the padding needs a second block. */
static void test_fips_two_blocks(void)
{
	const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	char hex[SHA256_HEX_LEN + 1];

	hex_of(m, strlen(m), hex);
	CHECK_STR_EQ(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* FIPS 180-2 appendix B.3: one million 'a', fed in pieces of 1000. */
static void test_fips_million_a(void)
{
	char block[1000], hex[SHA256_HEX_LEN + 1];
	uint8_t d[SHA256_DIGEST_LEN];
	struct sha256 s;

	memset(block, 'a', sizeof(block));
	sha256_init(&s);
	for (int i = 0; i < 1000; i++)
		sha256_update(&s, block, sizeof(block));
	sha256_final(&s, d);
	sha256_hex(d, hex);
	CHECK_STR_EQ(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* NIST's SHA-256 examples: the empty message and the 896-bit message. */
static void test_nist_empty_and_896(void)
{
	const char *m = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
			"ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
	char hex[SHA256_HEX_LEN + 1];

	hex_of(NULL, 0, hex);
	CHECK_STR_EQ(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	hex_of(m, strlen(m), hex);
	CHECK_STR_EQ(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Random data of lengths around the 55/56/64-byte padding boundaries and a
 * few larger ones; each digest computed whole and in random pieces, then
 * compared with hashlib run on the same bytes. */
static void test_random_against_hashlib(void)
{
	static const size_t lens[] = { 0, 1, 2, 31, 55, 56, 57, 63, 64, 65, 111, 112, 119, 120,
				       127, 128, 129, 1000, 4095, 4096, 65537, 1000003 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	char mine[N][SHA256_HEX_LEN + 1], cmd[8192], line[256];
	uint64_t seed = 20240611;
	size_t used;
	FILE *f;

	if (access(PYTHON, X_OK) != 0) {
		tap_note("skip: %s is missing", PYTHON);
		return;
	}
	used = (size_t)snprintf(cmd, sizeof(cmd), "%s -c 'import hashlib, sys\n"
				"for f in sys.argv[1:]: print(hashlib.sha256(open(f, \"rb\").read()).hexdigest())'",
				PYTHON);
	for (int i = 0; i < N; i++) {
		uint8_t *data = malloc(lens[i] + 1);
		uint8_t d[SHA256_DIGEST_LEN];
		char name[32], piecewise[SHA256_HEX_LEN + 1];
		const char *path;
		struct sha256 s;
		size_t at = 0;

		CHECK(data != NULL);
		for (size_t j = 0; j < lens[i]; j++)
			data[j] = (uint8_t)(splitmix(&seed) >> 56);
		hex_of(data, lens[i], mine[i]);
		sha256_init(&s);
		while (at < lens[i]) {
			size_t take = (size_t)(splitmix(&seed) % 150);

			if (take > lens[i] - at)
				take = lens[i] - at;
			sha256_update(&s, data + at, take);
			at += take;
		}
		sha256_final(&s, d);
		sha256_hex(d, piecewise);
		CHECK_STR_EQ(piecewise, mine[i]);
		snprintf(name, sizeof(name), "r%02d.bin", i);
		path = tap_write_file(name, data, lens[i]);
		used += (size_t)snprintf(cmd + used, sizeof(cmd) - used, " '%s'", path);
		CHECK(used < sizeof(cmd));
		free(data);
	}
	f = popen(cmd, "r");
	CHECK(f != NULL);
	for (int i = 0; i < N; i++) {
		if (!fgets(line, sizeof(line), f))
			tap_fail(__FILE__, __LINE__, "hashlib gave %d digests, expected %d", i, N);
		line[strcspn(line, "\n")] = 0;
		CHECK_STR_EQ(mine[i], line);
	}
	CHECK_INT_EQ(pclose(f), 0);
}

static const struct tap_test tests[] = {
	{ "fips_abc", test_fips_abc },
	{ "fips_two_blocks", test_fips_two_blocks },
	{ "fips_million_a", test_fips_million_a },
	{ "nist_empty_and_896", test_nist_empty_and_896 },
	{ "random_against_hashlib", test_random_against_hashlib },
	{ NULL, NULL },
};
TAP_MAIN(tests)
