/* test_step.c — checkpoint steps from names and trainer_state.json. */
#include <errno.h>
#include <stddef.h>

#include "../tap.h"
#include "engine/step.h"

static int64_t name_step(const char *name)
{
	int64_t s = -1;

	return step_from_name(name, step_default_patterns, &s) == 0 ? s : -1;
}

static void test_default_patterns(void)
{
	CHECK_INT_EQ(name_step("step10000"), 10000);
	CHECK_INT_EQ(name_step("checkpoint-500"), 500);
	CHECK_INT_EQ(name_step("iter_0001000"), 1000);
	CHECK_INT_EQ(name_step("step10000-tokens41B"), 10000);
	CHECK_INT_EQ(name_step("global_step7"), 7);
	CHECK_INT_EQ(name_step("step0"), 0);
}

static void test_non_matching_names(void)
{
	CHECK_INT_EQ(name_step("step"), -1);
	CHECK_INT_EQ(name_step("checkpoint-"), -1);
	CHECK_INT_EQ(name_step("checkpoint-12.tmp"), -1);
	CHECK_INT_EQ(name_step("tmp-checkpoint-12"), -1);
	CHECK_INT_EQ(name_step("Step12"), -1);
	CHECK_INT_EQ(name_step(""), -1);
	/* 16 digits is beyond STEP_MAX: refused rather than overflowed. */
	CHECK_INT_EQ(name_step("step1234567890123456"), -1);
}

static void test_custom_pattern(void)
{
	const char *pats[] = { "run-*-s{step}", NULL };
	int64_t s = -1;

	CHECK_INT_EQ(step_from_name("run-abc-s42", pats, &s), 0);
	CHECK_INT_EQ(s, 42);
	CHECK_INT_EQ(step_from_name("run--s43", pats, &s), 0);
	CHECK_INT_EQ(s, 43);
	CHECK_INT_EQ(step_from_name("run-abc-s", pats, &s), -ENOENT);
	CHECK_INT_EQ(s, 43); /* untouched on failure */
}

static void test_pattern_check(void)
{
	struct gw_err e;

	CHECK_INT_EQ(step_pattern_check("step{step}", &e), 0);
	CHECK_INT_EQ(step_pattern_check("step", &e), -EINVAL);
	CHECK_STR_HAS(e.msg, "has no {step}");
	CHECK_INT_EQ(step_pattern_check("{step}-{step}", &e), -EINVAL);
	CHECK_STR_HAS(e.msg, "more than one");
	CHECK_INT_EQ(step_pattern_check("s{x}{step}", &e), -EINVAL);
	CHECK_STR_HAS(e.msg, "brace");
}

static void test_trainer_state(void)
{
	const char *d = tap_tmpdir();
	struct gw_err e;
	int64_t s = -1;

	CHECK_INT_EQ(step_from_trainer_state(d, &s, &e), -ENOENT);
	tap_write_file("trainer_state.json", "{\"global_step\": 1500, \"epoch\": 0.5}", 36);
	CHECK_INT_EQ(step_from_trainer_state(d, &s, &e), 0);
	CHECK_INT_EQ(s, 1500);
	tap_write_file("trainer_state.json", "{\"global_step\": 1.5}", 20);
	CHECK_INT_EQ(step_from_trainer_state(d, &s, &e), -EBADMSG);
	CHECK_STR_HAS(e.msg, "trainer_state.json\": global_step is not");
	tap_write_file("trainer_state.json", "{\"global_step\": -3}", 19);
	CHECK_INT_EQ(step_from_trainer_state(d, &s, &e), -EBADMSG);
	tap_write_file("trainer_state.json", "{\"global_", 9);
	CHECK_INT_EQ(step_from_trainer_state(d, &s, &e), -EBADMSG);
	CHECK_STR_HAS(e.msg, "not a JSON object");
	tap_write_file("trainer_state.json", "", 0);
	CHECK_INT_EQ(step_from_trainer_state(d, &s, &e), -EBADMSG);
	CHECK_INT_EQ(s, 1500);
}

struct at_step {
	char pad[3];
	int64_t step;
};

static void test_lower_bound(void)
{
	static const struct at_step v[] = { { "", 10 }, { "", 20 }, { "", 20 }, { "", 40 } };
	const size_t n = sizeof(v) / sizeof(v[0]), off = offsetof(struct at_step, step);

	CHECK_INT_EQ(step_lower_bound(v, n, sizeof(v[0]), off, 5), 0);
	CHECK_INT_EQ(step_lower_bound(v, n, sizeof(v[0]), off, 10), 0);
	CHECK_INT_EQ(step_lower_bound(v, n, sizeof(v[0]), off, 11), 1);
	CHECK_INT_EQ(step_lower_bound(v, n, sizeof(v[0]), off, 20), 1);
	CHECK_INT_EQ(step_lower_bound(v, n, sizeof(v[0]), off, 21), 3);
	CHECK_INT_EQ(step_lower_bound(v, n, sizeof(v[0]), off, 40), 3);
	CHECK_INT_EQ(step_lower_bound(v, n, sizeof(v[0]), off, 41), 4);
	CHECK_INT_EQ(step_lower_bound(v, 0, sizeof(v[0]), off, 1), 0);
	CHECK_INT_EQ(step_lower_bound(NULL, 0, sizeof(v[0]), off, 1), 0);
}

static const struct tap_test tests[] = {
	{ "lower_bound", test_lower_bound },
	{ "default_patterns", test_default_patterns },
	{ "non_matching_names", test_non_matching_names },
	{ "custom_pattern", test_custom_pattern },
	{ "pattern_check", test_pattern_check },
	{ "trainer_state", test_trainer_state },
	{ NULL, NULL },
};
TAP_MAIN(tests)
