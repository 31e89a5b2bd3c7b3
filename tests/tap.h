/*
 * tap.h — the unit test harness.
 *
 * A test file defines `static void test_x(void)` functions, lists them in a
 * table and ends with TAP_MAIN(table).  The harness runs every test in its
 * own forked process with a timeout (GW_TEST_TIMEOUT seconds, default 60),
 * prints TAP ("ok N - name" / "not ok N - name") and exits non-zero if any
 * failed.  `prog NAME` runs one test in-process, for a debugger.
 *
 * Assertions print both values and the place; a failed assertion ends the
 * test's process with status 1.
 */
#ifndef GW_TESTS_TAP_H
#define GW_TESTS_TAP_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct tap_test {
	const char *name;
	void (*fn)(void);
};

int tap_main(const struct tap_test *tests, int argc, char **argv);

#define TAP_MAIN(table) \
	int main(int argc, char **argv) { return tap_main(table, argc, argv); }

/* The same for tests of daemon modules: cJSON's allocator hooked first, as
 * grokwatchd's start-up does (engine/json.h), so that the code under test
 * runs as it does in the daemon. */
void json_init(void);
#define TAP_MAIN_DAEMON(table) \
	int main(int argc, char **argv) { json_init(); return tap_main(table, argc, argv); }

void tap_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));
void tap_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Fixture directory ($GW_FIXTURES) and scratch directory (created per test,
 * removed when the test passes).  Both return static storage. */
const char *tap_fixtures(void);
const char *tap_tmpdir(void);
/* Write len bytes to dir/name under the scratch dir; returns the path
 * (static storage, overwritten by the next call). */
const char *tap_write_file(const char *name, const void *data, size_t len);

#define CHECK(cond) \
	do { if (!(cond)) tap_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond); } while (0)

#define CHECK_INT_EQ(a, b) do { \
	long long _a = (long long)(a), _b = (long long)(b); \
	if (_a != _b) tap_fail(__FILE__, __LINE__, "%s == %s: got %lld, expected %lld", #a, #b, _a, _b); \
} while (0)

#define CHECK_INT_LT(a, b) do { \
	long long _a = (long long)(a), _b = (long long)(b); \
	if (!(_a < _b)) tap_fail(__FILE__, __LINE__, "%s < %s: got %lld and %lld", #a, #b, _a, _b); \
} while (0)

#define CHECK_STR_EQ(a, b) do { \
	const char *_a = (a), *_b = (b); \
	if (!_a || !_b || strcmp(_a, _b) != 0) \
		tap_fail(__FILE__, __LINE__, "%s == %s: got \"%s\", expected \"%s\"", #a, #b, \
			 _a ? _a : "(null)", _b ? _b : "(null)"); \
} while (0)

/* Substring test, for error messages. */
#define CHECK_STR_HAS(hay, needle) do { \
	const char *_h = (hay), *_n = (needle); \
	if (!_h || !strstr(_h, _n)) \
		tap_fail(__FILE__, __LINE__, "%s contains \"%s\": got \"%s\"", #hay, _n, _h ? _h : "(null)"); \
} while (0)

#define CHECK_NEAR(a, b, tol) do { \
	double _a = (double)(a), _b = (double)(b), _t = (double)(tol); \
	if (!(fabs(_a - _b) <= _t)) \
		tap_fail(__FILE__, __LINE__, "%s ~ %s: got %.9g, expected %.9g (tolerance %g)", #a, #b, _a, _b, _t); \
} while (0)

#endif
