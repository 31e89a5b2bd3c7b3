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

static void put_state(const char *text)
{
	tap_write_file("trainer_state.json", text, strlen(text));
}

/* The trainer's own loss and learning rate at a step (HF Trainer's
 * log_history): the last training entry at or before it; eval entries,
 * later steps, non-numbers and entries without a step do not count. */
static void test_trainer_log(void)
{
	const char *d = tap_tmpdir();
	struct gw_err e = { "" };
	struct trainer_log t = { 0 };
	int64_t s7 = -1;

	CHECK_INT_EQ(step_trainer_log(d, 100, &t, &e), -ENOENT);
	put_state("{\"global_step\": 30, \"log_history\": ["
		  "{\"step\": 10, \"loss\": 3.5, \"learning_rate\": 0.001, \"epoch\": 0.1},"
		  "{\"step\": 20, \"loss\": 3.25, \"learning_rate\": 0.0009, \"grad_norm\": 1.2},"
		  "{\"step\": 20, \"eval_loss\": 3.9, \"eval_runtime\": 1.0},"
		  "{\"step\": 25, \"loss\": \"x\", \"learning_rate\": 0.0008},"
		  "{\"loss\": 1.0},"
		  "{\"step\": 40, \"loss\": 2.0, \"learning_rate\": 0.0005}]}");
	CHECK_INT_EQ(step_trainer_log(d, 30, &t, &e), 0);
	CHECK(t.loss == 3.25);
	CHECK_INT_EQ(t.loss_step, 20);
	CHECK(t.lr == 0.0008);
	CHECK_INT_EQ(t.lr_step, 25);
	CHECK_INT_EQ(step_trainer_log(d, 40, &t, &e), 0);
	CHECK(t.loss == 2.0 && t.lr == 0.0005);
	CHECK_INT_EQ(step_trainer_log(d, 10, &t, &e), 0);
	CHECK(t.loss == 3.5 && t.loss_step == 10);
	CHECK_INT_EQ(step_trainer_log(d, 9, &t, &e), -ENOENT);
	/* A resumed run logs a step again: the later entry wins. */
	put_state("{\"log_history\": [{\"step\": 5, \"loss\": 9.0},"
		  "{\"step\": 5, \"loss\": 8.0}]}");
	CHECK_INT_EQ(step_trainer_log(d, 5, &t, &e), 0);
	CHECK(t.loss == 8.0);
	CHECK_INT_EQ(t.lr_step, -1);
	put_state("{\"global_step\": 5}");
	CHECK_INT_EQ(step_trainer_log(d, 5, &t, &e), -ENOENT);
	put_state("{\"log_history\": {\"step\": 5}}");
	CHECK_INT_EQ(step_trainer_log(d, 5, &t, &e), -EBADMSG);
	CHECK_STR_HAS(e.msg, "trainer_state.json\": log_history is not an array");
	/* Python's json writes NaN and Infinity (a NaN grad_norm is common);
	 * they read as null, in values only, never inside strings. */
	put_state("{\"global_step\": 7, \"log_history\": [{\"step\": 5, \"grad_norm\": NaN, "
		  "\"loss\": Infinity}, {\"step\": 6, \"loss\": -Infinity, \"note\": \"NaN \\\" "
		  "Infinity\"}, {\"step\": 7, \"loss\": 4.5, \"learning_rate\": NaN}]}");
	CHECK_INT_EQ(step_trainer_log(d, 7, &t, &e), 0);
	CHECK(t.loss == 4.5 && t.loss_step == 7 && t.lr_step == -1);
	CHECK_INT_EQ(step_from_trainer_state(d, &s7, &e), 0);
	CHECK_INT_EQ(s7, 7);
	CHECK_INT_EQ(step_trainer_log(d, 6, &t, &e), -ENOENT);
	put_state("{\"log_history\": [NaNx]}");
	CHECK_INT_EQ(step_trainer_log(d, 5, &t, &e), -EBADMSG);
	CHECK_STR_HAS(e.msg, "not a JSON object");
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
	{ "trainer_log", test_trainer_log },
	{ NULL, NULL },
};
TAP_MAIN(tests)
