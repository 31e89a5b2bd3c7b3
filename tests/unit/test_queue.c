/* test_queue.c — the daemon's checkpoint queue (queue.h): step order,
 * one entry per step, backoff doubling up to its cap, giving up after
 * max_retries, cancelling by step and by name, the depth limit. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../tap.h"
#include "queue.h"

static struct queue *new_queue(size_t depth)
{
	const struct queue_opts o = {
		.backoff_ms = 100, .backoff_max_ms = 1000, .max_retries = 3, .depth = depth,
	};

	return queue_new(&o);
}

/* Take the next due entry, checking its step; returns its attempts. */
static int take(struct queue *q, uint64_t now, int64_t want_step)
{
	struct queue_entry e;
	int att;

	if (queue_next(q, now, &e, NULL) != 1)
		tap_fail(__FILE__, __LINE__, "no entry due at %llu, expected step %lld",
			 (unsigned long long)now, (long long)want_step);
	CHECK_INT_EQ(e.step, want_step);
	att = e.attempts;
	queue_entry_release(&e);
	return att;
}

static void test_step_order(void)
{
	struct queue *q = new_queue(16);
	struct queue_entry e;
	uint64_t wait = 0;
	static const int64_t in[] = { 3000, 1000, 5000, 2000, 4000 };

	for (size_t i = 0; i < 5; i++) {
		char name[32];

		snprintf(name, sizeof(name), "step%lld", (long long)in[i]);
		CHECK_INT_EQ(queue_put(q, name, "/ck", in[i]), 0);
	}
	CHECK_INT_EQ(queue_count(q), 5);
	CHECK_INT_EQ(queue_at(q, 0)->step, 1000);
	CHECK_STR_EQ(queue_at(q, 0)->name, "step1000");
	CHECK_STR_EQ(queue_at(q, 0)->path, "/ck");
	for (int64_t s = 1000; s <= 5000; s += 1000)
		CHECK_INT_EQ(take(q, 0, s), 0);
	CHECK_INT_EQ(queue_next(q, 0, &e, &wait), 0);
	CHECK(wait == UINT64_MAX);
	queue_free(q);
}

static void test_same_step_once(void)
{
	struct queue *q = new_queue(16);

	CHECK_INT_EQ(queue_put(q, "step10", "/a/step10", 10), 0);
	/* The same step from another directory is refused, its first entry
	 * kept. */
	CHECK_INT_EQ(queue_put(q, "ckpt-10", "/b/ckpt-10", 10), -EEXIST);
	CHECK_INT_EQ(queue_count(q), 1);
	CHECK_STR_EQ(queue_at(q, 0)->path, "/a/step10");
	/* A retry of a step that got queued again meanwhile is refused too. */
	CHECK_INT_EQ(queue_retry(q, "step10", "/a/step10", 10, 1, 0, NULL), -EEXIST);
	CHECK_INT_EQ(queue_count(q), 1);
	queue_free(q);
}

static void test_backoff_doubles_to_cap(void)
{
	struct queue *q = new_queue(16);

	CHECK_INT_EQ(queue_backoff(q, 1), 100);
	CHECK_INT_EQ(queue_backoff(q, 2), 200);
	CHECK_INT_EQ(queue_backoff(q, 3), 400);
	CHECK_INT_EQ(queue_backoff(q, 4), 800);
	CHECK_INT_EQ(queue_backoff(q, 5), 1000);
	CHECK_INT_EQ(queue_backoff(q, 60), 1000); /* no overflow past the cap */
	queue_free(q);
	{
		/* A cap below the first wait caps it too. */
		const struct queue_opts o = { .backoff_ms = 500, .backoff_max_ms = 300,
					      .max_retries = 1, .depth = 4 };

		q = queue_new(&o);
		CHECK_INT_EQ(queue_backoff(q, 1), 300);
		queue_free(q);
	}
}

static void test_retry_waits_then_gives_up(void)
{
	struct queue *q = new_queue(16);
	struct queue_entry e;
	uint64_t b = 0, wait = 0, now = 1000;
	int attempt = 1;

	CHECK_INT_EQ(queue_put(q, "step7", "/ck/step7", 7), 0);
	CHECK_INT_EQ(queue_put(q, "step9", "/ck/step9", 9), 0);
	CHECK_INT_EQ(take(q, now, 7), 0);
	/* Attempts 1..3 fail: retried after 100, 200, 400 ms. */
	for (uint64_t want = 100; want <= 400; want *= 2, attempt++) {
		CHECK_INT_EQ(queue_retry(q, "step7", "/ck/step7", 7, attempt, now, &b), 1);
		CHECK_INT_EQ(b, want);
		/* Not due yet: the later step goes first. */
		if (attempt == 1)
			CHECK_INT_EQ(take(q, now, 9), 0);
		CHECK_INT_EQ(queue_next(q, now + want - 1, &e, &wait), 0);
		CHECK_INT_EQ(wait, 1);
		now += want;
		CHECK_INT_EQ(take(q, now, 7), attempt);
	}
	/* The fourth failure is past max_retries = 3: nothing queued. */
	CHECK_INT_EQ(queue_retry(q, "step7", "/ck/step7", 7, 4, now, &b), 0);
	CHECK_INT_EQ(queue_count(q), 0);
	queue_free(q);
}

static void test_cancel(void)
{
	struct queue *q = new_queue(16);

	CHECK_INT_EQ(queue_put(q, "step1", "/ck/step1", 1), 0);
	CHECK_INT_EQ(queue_put(q, "step2", "/ck/step2", 2), 0);
	CHECK_INT_EQ(queue_put(q, "step3", "/ck/step3", 3), 0);
	CHECK_INT_EQ(queue_find(q, 2), 1);
	CHECK_INT_EQ(queue_find(q, 4), -1);
	CHECK_INT_EQ(queue_find_name(q, "step3"), 2);
	/* By step, only if the name matches: another directory's step 2
	 * going away leaves this one. */
	CHECK_INT_EQ(queue_cancel(q, 2, "other2"), 0);
	CHECK_INT_EQ(queue_cancel(q, 2, "step2"), 1);
	CHECK_INT_EQ(queue_cancel(q, 2, "step2"), 0);
	CHECK_INT_EQ(queue_find(q, 2), -1);
	CHECK_INT_EQ(queue_cancel(q, 1, NULL), 1);
	CHECK_INT_EQ(queue_cancel_name(q, "step3"), 1);
	CHECK_INT_EQ(queue_cancel_name(q, "step3"), 0);
	CHECK_INT_EQ(queue_count(q), 0);
	/* A cancelled entry is not due later either. */
	CHECK_INT_EQ(queue_put(q, "step5", "/ck/step5", 5), 0);
	CHECK_INT_EQ(queue_retry(q, "step6", "/ck/step6", 6, 1, 0, NULL), 1);
	CHECK_INT_EQ(queue_cancel(q, 6, "step6"), 1);
	CHECK_INT_EQ(take(q, 10000, 5), 0);
	CHECK_INT_EQ(queue_count(q), 0);
	queue_free(q);
}

static void test_depth_limit(void)
{
	struct queue *q = new_queue(2);
	const struct queue_opts bigger = { .backoff_ms = 100, .backoff_max_ms = 1000,
					   .max_retries = 3, .depth = 3 };

	CHECK_INT_EQ(queue_put(q, "a", "/a", 1), 0);
	CHECK_INT_EQ(queue_put(q, "b", "/b", 2), 0);
	CHECK_INT_EQ(queue_put(q, "c", "/c", 3), -ENOSPC);
	CHECK_INT_EQ(queue_count(q), 2);
	/* A retry puts back what was taken; it is not refused at the limit. */
	CHECK_INT_EQ(take(q, 0, 1), 0);
	CHECK_INT_EQ(queue_put(q, "c", "/c", 3), 0);
	CHECK_INT_EQ(queue_retry(q, "a", "/a", 1, 1, 0, NULL), 1);
	CHECK_INT_EQ(queue_count(q), 3);
	/* A reload raises the limit. */
	queue_set_opts(q, &bigger);
	CHECK_INT_EQ(queue_put(q, "d", "/d", 4), -ENOSPC);
	CHECK_INT_EQ(take(q, 0, 2), 0);
	CHECK_INT_EQ(queue_put(q, "d", "/d", 4), 0);
	queue_clear(q);
	CHECK_INT_EQ(queue_count(q), 0);
	queue_free(q);
	queue_free(NULL);
}

/* Other directories of a queued or running step wait in reserve. */
static void test_alternates(void)
{
	struct queue *q = new_queue(2);
	char **names = NULL;

	CHECK_INT_EQ(queue_put(q, "step5", "/r/step5", 5), 0);
	CHECK_INT_EQ(queue_put(q, "step5-b", "/r/step5-b", 5), -EEXIST);
	CHECK_INT_EQ(queue_alt_put(q, "step5-b", "/r/step5-b", 5), 0);
	CHECK_INT_EQ(queue_alt_put(q, "step5-b", "/r/step5-b", 5), -EEXIST);
	CHECK_INT_EQ(queue_alt_put(q, "step5-c", "/r/step5-c", 5), 0);
	CHECK_INT_EQ(queue_alt_put(q, "step5-d", "/r/step5-d", 5), -ENOSPC);
	/* Queued still: nothing promoted. */
	CHECK_INT_EQ(queue_alt_promote(q, 5), 0);
	CHECK_INT_EQ(queue_cancel(q, 5, "step5"), 1);
	CHECK_INT_EQ(queue_alt_promote(q, 5), 1);
	CHECK_INT_EQ(queue_count(q), 1);
	CHECK_STR_EQ(queue_at(q, 0)->name, "step5-b");
	CHECK_STR_EQ(queue_at(q, 0)->path, "/r/step5-b");
	CHECK_INT_EQ(queue_alt_count(q), 1);
	/* Taken to compute; its reserve gone too: nothing left to promote. */
	CHECK_INT_EQ(take(q, 0, 5), 0);
	CHECK_INT_EQ(queue_alt_cancel_name(q, "step5-c"), 1);
	CHECK_INT_EQ(queue_alt_cancel_name(q, "step5-c"), 0);
	CHECK_INT_EQ(queue_alt_promote(q, 5), 0);
	/* A result: the reserve of that step is handed back by name. */
	CHECK_INT_EQ(queue_alt_put(q, "step7-x", "/r/step7-x", 7), 0);
	CHECK_INT_EQ(queue_alt_put(q, "step8-x", "/r/step8-x", 8), 0);
	CHECK_INT_EQ(queue_alt_drop(q, 7, &names), 1);
	CHECK(names && names[0] && !names[1]);
	CHECK_STR_EQ(names[0], "step7-x");
	free(names[0]);
	free(names);
	CHECK_INT_EQ(queue_alt_drop(q, 7, &names), 0);
	CHECK(names == NULL);
	CHECK_INT_EQ(queue_alt_count(q), 1);
	queue_free(q); /* frees the alternate left */
}

static const struct tap_test tests[] = {
	{ "step_order", test_step_order },
	{ "same_step_once", test_same_step_once },
	{ "backoff_doubles_to_cap", test_backoff_doubles_to_cap },
	{ "retry_waits_then_gives_up", test_retry_waits_then_gives_up },
	{ "cancel", test_cancel },
	{ "depth_limit", test_depth_limit },
	{ "alternates", test_alternates },
	{ NULL, NULL },
};
TAP_MAIN(tests)
