/* test_alert.c — the alert rules and lifecycle on series built by hand.
 *
 * Where a plateau starts is checked against what PyTorch's
 * ReduceLROnPlateau does on the same values: the indices in the comments
 * ("torch reduces at [4, 10]") were printed by torch 1.13 (Debian's
 * python3-torch) for those sequences, not by this code.  Fingerprints were
 * computed with an independent FNV-1a in Python following Prometheus's
 * labelSetToFingerprint. */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "alert.h"
#include "config_opts.h"
#include "journal.h"

#define NOW0 1767225600.25 /* 2026-01-01T00:00:00.250Z */

/* ---- fixtures ------------------------------------------------------------------- */

static cJSON *num_or_null(double v)
{
	return isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v);
}

/* A result whose group `g` (and "all", the same samples) has loss,
 * pathway_distance and pathway_consistency; NaN = null. */
static cJSON *result3(int64_t step, const char *g, double loss, double dist, double cons)
{
	cJSON *r = cJSON_CreateObject(), *groups = cJSON_AddObjectToObject(r, "groups");
	const char *names[2] = { g, "all" };

	cJSON_AddStringToObject(r, "kind", "result");
	cJSON_AddNumberToObject(r, "step", (double)step);
	for (int i = 0; i < 2; i++) {
		cJSON *o = cJSON_AddObjectToObject(groups, names[i]);

		cJSON_AddItemToObject(o, "loss", num_or_null(loss));
		cJSON_AddItemToObject(o, "pathway_distance", num_or_null(dist));
		cJSON_AddItemToObject(o, "pathway_consistency", num_or_null(cons));
	}
	cJSON_AddNullToObject(r, "health");
	return r;
}

static cJSON *result(int64_t step, double loss, double dist)
{
	return result3(step, "math", loss, dist, NAN);
}

/* A config with every alert off but what a test turns on. */
static struct config *cfg(const char *alerts_json)
{
	struct config *c = NULL;
	struct gw_err e = { "" };
	char text[4096];
	int r;

	snprintf(text, sizeof(text),
		 "{\"alerts\": {\"routing_collapse\": {\"dead_experts\": 0, \"max_imbalance\": 0}%s%s}}",
		 *alerts_json ? ", " : "", alerts_json);
	r = config_parse("t.json", text, strlen(text), &c, &e);
	if (r != 0)
		tap_fail(__FILE__, __LINE__, "config_parse: %s", e.msg);
	return c;
}

/* An evaluator with c's alerts, built as the daemon builds it. */
static struct alerts *alerts_from(const struct config *c)
{
	struct alert_opts o;
	struct alerts *a;

	config_opts_alerts(c, &o);
	a = alerts_new(&o);
	config_opts_alerts_release(&o);
	return a;
}

/* Grokking detectors: patience 2, no cooldown, judged from 3 checkpoints. */
#define GROK_CFG \
	"\"loss\": {\"patience\": 2, \"cooldown\": 0, \"min_checkpoints\": 3}, " \
	"\"distance\": {\"patience\": 2, \"cooldown\": 0, \"min_checkpoints\": 3}"

/* One plateau detector on "loss". */
static struct config *plateau_cfg(const char *mode, double thr, const char *thr_mode,
				  int patience, int cooldown, int min)
{
	char buf[512];

	snprintf(buf, sizeof(buf),
		 "\"distance\": {\"min_checkpoints\": 1000000}, \"plateaus\": [{\"metric\": \"loss\", "
		 "\"mode\": \"%s\", \"threshold\": %.17g, \"threshold_mode\": \"%s\", \"patience\": %d, "
		 "\"cooldown\": %d, \"min_checkpoints\": %d}]",
		 mode, thr, thr_mode, patience, cooldown, min);
	return cfg(buf);
}

/* Every evaluation runs twice: on `a`, with the step just put as the
 * changed_from promise (the walks continue where they stopped), and on
 * `full`, with ALERTS_CHANGED_ALL (the whole series walked again); both
 * must give the same events, byte for byte. */
struct fx {
	struct alerts *a, *full;
	struct series *s;
	cJSON *events; /* every event applied, in order */
	char log[8192];
	size_t loglen;
	double now;
};

static void fx_init(struct fx *f, struct config *c)
{
	memset(f, 0, sizeof(*f));
	f->a = alerts_from(c);
	f->full = alerts_from(c);
	f->s = series_new();
	f->events = cJSON_CreateArray();
	f->now = NOW0;
	config_free(c);
}

static void fx_release(struct fx *f)
{
	alerts_free(f->a);
	alerts_free(f->full);
	series_free(f->s);
	cJSON_Delete(f->events);
}

/* Evaluate, apply every transition, and log them as
 * "STEP:+alertname/group/metric " (firing) or "-..." (resolved). */
static void fx_eval_from(struct fx *f, int64_t changed_from)
{
	cJSON *tr = NULL, *tr_full = NULL, *ev;
	struct gw_err e = { "" };
	int r = alerts_evaluate(f->a, f->s, changed_from, "r1", f->now, &tr, &e);
	char *t1, *t2;

	if (r != 0)
		tap_fail(__FILE__, __LINE__, "alerts_evaluate: %d %s", r, e.msg);
	CHECK_INT_EQ(alerts_evaluate(f->full, f->s, ALERTS_CHANGED_ALL, "r1", f->now, &tr_full, &e),
		     0);
	t1 = cJSON_PrintUnformatted(tr);
	t2 = cJSON_PrintUnformatted(tr_full);
	CHECK_STR_EQ(t1, t2);
	free(t1);
	free(t2);
	cJSON_ArrayForEach(ev, tr) {
		struct alert_info in;

		CHECK_INT_EQ(alert_event_info(ev, &in, &e), 0);
		f->loglen += (size_t)snprintf(f->log + f->loglen, sizeof(f->log) - f->loglen,
					      "%lld:%c%s/%s/%s ", (long long)in.step,
					      !strcmp(in.status, "firing") ? '+' : '-', in.alertname,
					      in.group, in.metric);
		CHECK(f->loglen < sizeof(f->log));
		r = alerts_apply(f->a, ev, &e);
		if (r != 0)
			tap_fail(__FILE__, __LINE__, "alerts_apply: %d %s", r, e.msg);
		CHECK_INT_EQ(alerts_apply(f->full, ev, &e), 0);
		cJSON_AddItemToArray(f->events, cJSON_Duplicate(ev, 1));
	}
	cJSON_Delete(tr);
	cJSON_Delete(tr_full);
	f->now += 60;
}

static void fx_eval(struct fx *f)
{
	fx_eval_from(f, ALERTS_CHANGED_ALL);
}

/* Add a result and evaluate, as the daemon does when one lands. */
static void fx_put(struct fx *f, int64_t step, cJSON *res)
{
	series_put(f->s, step, res);
	fx_eval_from(f, step);
}

/* Feed loss values 0.. as steps 100, 200, ... (distance absent). */
static void feed_loss(struct fx *f, const double *v, int n)
{
	for (int i = 0; i < n; i++)
		fx_put(f, 100 * (i + 1), result((i + 1) * 100, v[i], NAN));
}

/* ---- grokking and saturation ------------------------------------------------------- */

/* The loss falls to 1.5 by checkpoint 2 and stays; the distance falls by 1
 * a checkpoint to 13 at checkpoint 7, stays to checkpoint 10, then falls to
 * 11.  torch reduces the loss (patience 2) at [5, 8, 11] and the distance at
 * [10].  So: grokking from checkpoint 5 (loss on a plateau, distance 15
 * below 17 two checkpoints earlier); at 9 the distance (13) is no lower
 * than two checkpoints before (13): no net fall, grokking ends; at 10 the
 * distance plateaus: generalization saturates; at 11 it falls again (11
 * against 13): saturation ends and grokking is back. */
static void test_grokking_then_saturated(void)
{
	static const double loss[12] = { 3, 2, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5 };
	static const double dist[12] = { 20, 19, 18, 17, 16, 15, 14, 13, 13, 13, 13, 11 };
	struct fx f;

	fx_init(&f, cfg(GROK_CFG));
	for (int i = 0; i < 12; i++)
		fx_put(&f, 100 * (i + 1), result(100 * (i + 1), loss[i], dist[i]));
	/* "all" holds the same samples as the one group, so it is not judged. */
	CHECK_STR_EQ(f.log, "600:+grokking/math/pathway_distance "
			    "1000:-grokking/math/pathway_distance "
			    "1100:+generalization_saturated/math/pathway_distance "
			    "1200:-generalization_saturated/math/pathway_distance "
			    "1200:+grokking/math/pathway_distance ");
	CHECK_INT_EQ(alerts_firing_count(f.a), 1);
	fx_release(&f);
}

/* The event as published: every field of the Alertmanager payload. */
static void test_event_shape(void)
{
	static const double loss[11] = { 3, 2, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5 };
	static const double dist[11] = { 20, 19, 18, 17, 16, 15, 14, 13, 13, 13, 13 };
	struct fx f;
	const cJSON *ev, *al, *labels, *ann;
	cJSON *body;

	fx_init(&f, cfg(GROK_CFG));
	for (int i = 0; i < 11; i++) {
		series_put(f.s, 100 * (i + 1), result(100 * (i + 1), loss[i], dist[i]));
		if (i == 5 || i == 10)
			fx_eval(&f);
	}
	CHECK_INT_EQ(cJSON_GetArraySize(f.events), 3);
	/* the firing at step 600 */
	ev = cJSON_GetArrayItem(f.events, 0);
	CHECK_STR_EQ(cJSON_GetObjectItem(ev, "kind")->valuestring, "alert");
	CHECK_INT_EQ(cJSON_GetObjectItem(ev, "step")->valuedouble, 600);
	CHECK_STR_EQ(cJSON_GetObjectItem(ev, "version")->valuestring, "4");
	CHECK_STR_EQ(cJSON_GetObjectItem(ev, "status")->valuestring, "firing");
	CHECK_STR_EQ(cJSON_GetObjectItem(ev, "receiver")->valuestring, "grokwatch");
	CHECK_STR_EQ(cJSON_GetObjectItem(ev, "externalURL")->valuestring, "");
	CHECK(cJSON_IsObject(cJSON_GetObjectItem(ev, "groupLabels")));
	CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(ev, "groupLabels")), 0);
	CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(ev, "alerts")), 1);
	al = cJSON_GetArrayItem(cJSON_GetObjectItem(ev, "alerts"), 0);
	CHECK_STR_EQ(cJSON_GetObjectItem(al, "status")->valuestring, "firing");
	labels = cJSON_GetObjectItem(al, "labels");
	CHECK_INT_EQ(cJSON_GetArraySize(labels), 4);
	CHECK_STR_EQ(cJSON_GetObjectItem(labels, "alertname")->valuestring, "grokking");
	CHECK_STR_EQ(cJSON_GetObjectItem(labels, "run")->valuestring, "r1");
	CHECK_STR_EQ(cJSON_GetObjectItem(labels, "group")->valuestring, "math");
	CHECK_STR_EQ(cJSON_GetObjectItem(labels, "metric")->valuestring, "pathway_distance");
	CHECK(cJSON_Compare(labels, cJSON_GetObjectItem(ev, "commonLabels"), 1));
	ann = cJSON_GetObjectItem(al, "annotations");
	CHECK(cJSON_Compare(ann, cJSON_GetObjectItem(ev, "commonAnnotations"), 1));
	CHECK_STR_EQ(cJSON_GetObjectItem(ann, "summary")->valuestring,
		     "group math is grokking: loss on a plateau while pathway_distance still falls");
	/* the numbers behind it: the loss's best and the distance's fall */
	CHECK_STR_HAS(cJSON_GetObjectItem(ann, "description")->valuestring,
		      "loss 1.5 at step 600, best 1.5 at step 300, 3 checkpoints since");
	CHECK_STR_HAS(cJSON_GetObjectItem(ann, "description")->valuestring,
		      "on a plateau since step 600");
	CHECK_STR_HAS(cJSON_GetObjectItem(ann, "description")->valuestring,
		      "pathway_distance 15 at step 600, best 15 at step 600");
	CHECK_STR_HAS(cJSON_GetObjectItem(ann, "description")->valuestring,
		      "18 at step 300 when the loss last improved");
	CHECK_STR_HAS(cJSON_GetObjectItem(ann, "description")->valuestring,
		      "; net fall over 2 checkpoints: 15 at step 600 against 17 at step 400 "
		      "(a fall beyond 0.01 rel counts)");
	CHECK_STR_EQ(cJSON_GetObjectItem(al, "startsAt")->valuestring, "2026-01-01T00:00:00.250Z");
	CHECK_STR_EQ(cJSON_GetObjectItem(al, "endsAt")->valuestring, "0001-01-01T00:00:00Z");
	CHECK_STR_EQ(cJSON_GetObjectItem(al, "generatorURL")->valuestring, "");
	CHECK_STR_EQ(cJSON_GetObjectItem(al, "fingerprint")->valuestring, "d380ba7f62118c1f");

	/* the resolution at step 1100, one evaluation (60 s) later */
	ev = cJSON_GetArrayItem(f.events, 1);
	al = cJSON_GetArrayItem(cJSON_GetObjectItem(ev, "alerts"), 0);
	CHECK_STR_EQ(cJSON_GetObjectItem(ev, "status")->valuestring, "resolved");
	CHECK_STR_EQ(cJSON_GetObjectItem(al, "status")->valuestring, "resolved");
	CHECK_STR_EQ(cJSON_GetObjectItem(al, "startsAt")->valuestring, "2026-01-01T00:00:00.250Z");
	CHECK_STR_EQ(cJSON_GetObjectItem(al, "endsAt")->valuestring, "2026-01-01T00:01:00.250Z");
	CHECK_STR_EQ(cJSON_GetObjectItem(al, "fingerprint")->valuestring, "d380ba7f62118c1f");
	ann = cJSON_GetObjectItem(al, "annotations");
	CHECK_STR_EQ(cJSON_GetObjectItem(ann, "summary")->valuestring,
		     "group math is grokking: loss on a plateau while pathway_distance still falls");
	CHECK_STR_HAS(cJSON_GetObjectItem(ann, "description")->valuestring,
		      "resolved at step 1100: ");
	CHECK_STR_HAS(cJSON_GetObjectItem(ann, "description")->valuestring,
		      "pathway_distance 13 at step 1100, best 13 at step 800, 3 checkpoints since");

	ev = cJSON_GetArrayItem(f.events, 2);
	al = cJSON_GetArrayItem(cJSON_GetObjectItem(ev, "alerts"), 0);
	CHECK_STR_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(al, "labels"), "alertname")->valuestring,
		     "generalization_saturated");
	CHECK_STR_HAS(cJSON_GetObjectItem(cJSON_GetObjectItem(al, "annotations"),
					  "description")->valuestring,
		      "grokking from step 600 to step 900");

	/* the body: everything but "kind" */
	body = alert_event_body(ev);
	CHECK(!cJSON_GetObjectItem(body, "kind"));
	CHECK_INT_EQ(cJSON_GetArraySize(body), cJSON_GetArraySize(ev) - 1);
	cJSON_Delete(body);
	fx_release(&f);
}

/* Both flat from the start: the distance never improves after its first
 * value, so however the patiences compare, nothing is grokking. */
static void test_flat_distance_is_not_grokking(void)
{
	struct fx f;

	fx_init(&f, cfg("\"loss\": {\"patience\": 1, \"cooldown\": 0, \"min_checkpoints\": 0}, "
			"\"distance\": {\"patience\": 6, \"cooldown\": 0, \"min_checkpoints\": 0}"));
	for (int i = 0; i < 12; i++)
		fx_put(&f, i, result(i, 2.0, 10.0));
	CHECK_STR_EQ(f.log, "");
	fx_release(&f);
}

/* The distance falls to 15 and then jumps up to 30 at the latest
 * checkpoint, while the loss is on a plateau (torch reduces it, patience 2,
 * at [5]).  The distance is not on a plateau (patience 4) and its last
 * improvement (checkpoint 5) came after the loss's (2), so the old rule
 * ("not on a plateau and improved since the loss stood still") fired
 * here; the net fall does not: 30 is above 18, four values earlier.
 * Judged once, at the end, so nothing fired before. */
static void test_jump_up_is_not_grokking(void)
{
	static const double loss[7] = { 3, 2, 1.5, 1.5, 1.5, 1.5, 1.5 };
	static const double dist[7] = { 20, 19, 18, 17, 16, 15, 30 };
	struct fx f;

	fx_init(&f, cfg("\"loss\": {\"patience\": 2, \"cooldown\": 0, \"min_checkpoints\": 3}, "
			"\"distance\": {\"patience\": 4, \"cooldown\": 0, \"min_checkpoints\": 3}"));
	for (int i = 0; i < 7; i++)
		series_put(f.s, 100 * (i + 1), result(100 * (i + 1), loss[i], dist[i]));
	fx_eval(&f);
	CHECK_STR_EQ(f.log, "");
	/* One checkpoint before the jump (15 against 19): grokking. */
	series_put(f.s, 700, result(700, 1.5, 15));
	fx_eval(&f);
	CHECK_STR_EQ(f.log, "700:+grokking/math/pathway_distance ");
	/* The jump replaces it: resolved. */
	series_put(f.s, 700, result(700, 1.5, 30));
	fx_eval(&f);
	CHECK_STR_EQ(f.log, "700:+grokking/math/pathway_distance "
			    "700:-grokking/math/pathway_distance ");
	fx_release(&f);
}

/* A fall within the window that never beats the distance's best (10 at
 * the first checkpoint): 19 at the latest against 20 three values earlier
 * is a net fall (19 < 20 * 0.99), so grokking fires although the distance
 * is on a plateau of its best; the old rule (an improvement of the best
 * since the loss's) never fired on it.  19.9 instead is no fall (not below
 * 19.8). */
static void test_fall_within_window_is_grokking(void)
{
	static const double loss[7] = { 3, 2, 1.5, 1.5, 1.5, 1.5, 1.5 };
	static const double dist[7] = { 10, 20, 20, 20, 20, 20, 19.9 };
	struct fx f;

	fx_init(&f, cfg("\"loss\": {\"patience\": 2, \"cooldown\": 0, \"min_checkpoints\": 3}, "
			"\"distance\": {\"patience\": 3, \"cooldown\": 0, \"min_checkpoints\": 3}"));
	for (int i = 0; i < 7; i++)
		fx_put(&f, 100 * (i + 1), result(100 * (i + 1), loss[i], dist[i]));
	CHECK_STR_EQ(f.log, "");
	fx_put(&f, 800, result(800, 1.5, 19));
	CHECK_STR_EQ(f.log, "800:+grokking/math/pathway_distance ");
	fx_release(&f);
}

/* threshold_mode abs 1 (patience 2): 19.5 against 20 is no net fall, 18.9
 * against 20 is; a checkpoint without a distance is not counted in the
 * window (the value two back from 18.9 is the 20 at step 400, not 19.5). */
static void test_net_fall_abs_threshold(void)
{
	struct fx f;

	fx_init(&f, cfg("\"loss\": {\"patience\": 1, \"cooldown\": 0, \"min_checkpoints\": 0}, "
			"\"distance\": {\"patience\": 2, \"cooldown\": 0, \"min_checkpoints\": 0, "
			"\"threshold\": 1, \"threshold_mode\": \"abs\"}"));
	for (int i = 0; i < 4; i++)
		fx_put(&f, 100 * (i + 1), result(100 * (i + 1), 2.0, 20));
	fx_put(&f, 500, result(500, 2.0, 19.5));
	CHECK_STR_EQ(f.log, "");
	fx_put(&f, 600, result(600, 2.0, NAN));
	CHECK_STR_EQ(f.log, "");
	fx_put(&f, 700, result(700, 2.0, 18.9));
	CHECK_STR_EQ(f.log, "700:+grokking/math/pathway_distance ");
	fx_release(&f);
}

/* ---- the plateau rule ---------------------------------------------------------------- */

/* 100, 99.5, 99, ...: rel 0.01 needs a fall below best * 0.99, so 99.5 and
 * 99 (not strictly below 99) are no improvement: torch reduces at [2].
 * abs 0.4: every step improves; abs 0.5: only every other one (99.5 is not
 * below 100 - 0.5), never two misses in a row: torch reduces at []. */
static void test_rel_versus_abs(void)
{
	double v[8];
	struct fx f;

	for (int i = 0; i < 8; i++)
		v[i] = 100 - 0.5 * i;
	fx_init(&f, plateau_cfg("min", 0.01, "rel", 1, 0, 0));
	feed_loss(&f, v, 8);
	/* torch: rel reduces at [2] only; the fall to 98.5 at 3 beats 99 * 0.99 */
	CHECK_STR_EQ(f.log, "300:+plateau/math/loss 400:-plateau/math/loss ");
	fx_release(&f);

	fx_init(&f, plateau_cfg("min", 0.4, "abs", 1, 0, 0));
	feed_loss(&f, v, 8);
	CHECK_STR_EQ(f.log, "");
	fx_release(&f);

	fx_init(&f, plateau_cfg("min", 0.5, "abs", 1, 0, 0));
	feed_loss(&f, v, 8);
	CHECK_STR_EQ(f.log, "");
	fx_release(&f);

	/* mode max: 0.5, 0.501, ...; abs 0.002: torch reduces at [2, 5]; the
	 * plateau starts at 2 and ends at 3 (0.503 > 0.5 + 0.002), and starts
	 * again at 5.  rel 0.001 (0.5005 to beat first): torch reduces at []. */
	for (int i = 0; i < 8; i++)
		v[i] = 0.5 + 0.001 * i;
	fx_init(&f, plateau_cfg("max", 0.002, "abs", 1, 0, 0));
	feed_loss(&f, v, 8);
	CHECK_STR_EQ(f.log, "300:+plateau/math/loss 400:-plateau/math/loss "
			    "600:+plateau/math/loss 700:-plateau/math/loss ");
	fx_release(&f);
	fx_init(&f, plateau_cfg("max", 0.001, "rel", 1, 0, 0));
	feed_loss(&f, v, 8);
	CHECK_STR_EQ(f.log, "");
	fx_release(&f);
}

/* patience 3 on a flat series: torch reduces at [4], the 4th checkpoint
 * without improvement, not the 3rd. */
static void test_patience_edge(void)
{
	static const double v[5] = { 5, 5, 5, 5, 5 };
	struct fx f;

	fx_init(&f, plateau_cfg("min", 0.01, "rel", 3, 0, 0));
	feed_loss(&f, v, 4);
	CHECK_STR_EQ(f.log, "");
	fx_put(&f, 500, result(500, v[4], NAN));
	CHECK_STR_EQ(f.log, "500:+plateau/math/loss ");
	fx_release(&f);
}

/* Five 5s, then 4s: torch (patience 3) reduces at [4, 9] with cooldown 0,
 * [4, 10] with cooldown 2, [4, 11] with cooldown 3.  The plateau from 4
 * ends at 5 (4 < 5 * 0.99) and starts again where torch reduces next. */
static void test_cooldown_edges(void)
{
	static const double v[13] = { 5, 5, 5, 5, 5, 4, 4, 4, 4, 4, 4, 4, 4 };
	static const struct {
		int cooldown;
		const char *log;
	} cases[] = {
		{ 0, "500:+plateau/math/loss 600:-plateau/math/loss 1000:+plateau/math/loss " },
		{ 2, "500:+plateau/math/loss 600:-plateau/math/loss 1100:+plateau/math/loss " },
		{ 3, "500:+plateau/math/loss 600:-plateau/math/loss 1200:+plateau/math/loss " },
	};

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct fx f;

		fx_init(&f, plateau_cfg("min", 0.01, "rel", 3, cases[k].cooldown, 0));
		feed_loss(&f, v, 13);
		CHECK_STR_EQ(f.log, cases[k].log);
		fx_release(&f);
	}
}

/* Flat, patience 1: torch reduces at [2, 4, 6]; the plateau holds from 2.
 * min_checkpoints 4 and 5 move the judgement to the 4th and 5th value; a
 * null value is skipped (it is not a checkpoint of the metric). */
static void test_min_checkpoints(void)
{
	static const double v[8] = { 5, 5, 5, 5, 5, 5, 5, 5 };
	struct fx f;

	fx_init(&f, plateau_cfg("min", 0.01, "rel", 1, 0, 0));
	feed_loss(&f, v, 8);
	CHECK_STR_EQ(f.log, "300:+plateau/math/loss ");
	fx_release(&f);

	fx_init(&f, plateau_cfg("min", 0.01, "rel", 1, 0, 4));
	feed_loss(&f, v, 8);
	CHECK_STR_EQ(f.log, "400:+plateau/math/loss ");
	fx_release(&f);

	fx_init(&f, plateau_cfg("min", 0.01, "rel", 1, 0, 5));
	feed_loss(&f, v, 4);
	fx_put(&f, 450, result(450, NAN, 1.0)); /* null loss: not counted */
	CHECK_STR_EQ(f.log, "");
	fx_put(&f, 500, result(500, 5, NAN));
	CHECK_STR_EQ(f.log, "500:+plateau/math/loss ");
	fx_release(&f);
}

/* A result with pathway_distance and its standard error (NaN = null). */
static cJSON *result_se(int64_t step, double dist, double se)
{
	cJSON *r = result(step, 1.0, dist);
	cJSON *g = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "groups"), "math");

	cJSON_AddItemToObject(g, "pathway_distance_se", num_or_null(se));
	return r;
}

/*
 * threshold_mode se, threshold 2, patience 1: better when x < best -
 * 2 sqrt(se_x^2 + se_best^2).
 *   10 (se .5): the first value, best 10.
 *   9.5 (.5):  needs < 10 - 2 sqrt(.5) = 8.586: no (1 bad).
 *   9.2 (.3):  needs < 10 - 2 sqrt(.34) = 8.834: no (2 bad > 1): plateau.
 *   8.0 (.3):  < 8.834: better, the plateau ends; best 8 (se .3).
 *   7.9 (null): skipped.
 *   7.0 (.1):  needs < 8 - 2 sqrt(.1) = 7.368: better.
 * abs 1 on the same values counts 7.9 (not < 7) and 7.0 (not < 7): a
 * plateau at 600.
 */
static void test_threshold_se(void)
{
	static const double d[6] = { 10, 9.5, 9.2, 8.0, 7.9, 7.0 }, se[6] = { .5, .5, .3, .3, NAN, .1 };
#define SE_CFG(THR, MODE) \
	"\"distance\": {\"min_checkpoints\": 1000000}, \"plateaus\": [{\"metric\": " \
	"\"pathway_distance\", \"mode\": \"min\", \"threshold\": " THR ", " \
	"\"threshold_mode\": \"" MODE "\", \"patience\": 1, \"cooldown\": 0, " \
	"\"min_checkpoints\": 0}]"
	char buf[512];
	struct fx f;

	fx_init(&f, cfg(SE_CFG("2", "se")));
	for (int i = 0; i < 6; i++)
		fx_put(&f, 100 * (i + 1), result_se(100 * (i + 1), d[i], se[i]));
	CHECK_STR_EQ(f.log, "300:+plateau/math/pathway_distance 400:-plateau/math/pathway_distance ");
	fx_release(&f);

	fx_init(&f, cfg(SE_CFG("1", "abs")));
#undef SE_CFG
	for (int i = 0; i < 6; i++)
		fx_put(&f, 100 * (i + 1), result_se(100 * (i + 1), d[i], se[i]));
	CHECK_STR_EQ(f.log, "300:+plateau/math/pathway_distance 400:-plateau/math/pathway_distance "
			    "600:+plateau/math/pathway_distance ");
	fx_release(&f);

	/* mode max the same way: 1, then 1.5 (se .2, .2): needs > 1 +
	 * 2 sqrt(.08) = 1.566: no; 1.7: yes. */
	snprintf(buf, sizeof(buf),
		 "\"distance\": {\"min_checkpoints\": 1000000}, \"plateaus\": [{\"metric\": "
		 "\"memorized.pathway_distance\", \"mode\": \"max\", \"threshold\": 2, "
		 "\"threshold_mode\": \"se\", \"patience\": 0, \"cooldown\": 0, "
		 "\"min_checkpoints\": 0}]");
	fx_init(&f, cfg(buf));
	{
		static const double v[3] = { 1, 1.5, 1.7 };

		for (int i = 0; i < 3; i++) {
			cJSON *r = result(i + 1, 1.0, 1.0);
			cJSON *m = cJSON_AddObjectToObject(
				cJSON_GetObjectItem(cJSON_GetObjectItem(r, "groups"), "math"), "memorized");

			cJSON_AddNumberToObject(m, "pathway_distance", v[i]);
			cJSON_AddNumberToObject(m, "pathway_distance_se", 0.2);
			fx_put(&f, i + 1, r);
		}
	}
	CHECK_STR_EQ(f.log, "2:+plateau/math/memorized.pathway_distance "
			    "3:-plateau/math/memorized.pathway_distance ");
	fx_release(&f);
}

/* A metric path into the memorized subset, and a plateau of a max metric. */
static void test_metric_paths(void)
{
	struct fx f;

	fx_init(&f, cfg("\"distance\": {\"min_checkpoints\": 1000000}, \"plateaus\": ["
			"{\"metric\": \"memorized.loss\", \"mode\": \"min\", \"threshold\": 0, "
			"\"threshold_mode\": \"abs\", \"patience\": 0, \"cooldown\": 0, "
			"\"min_checkpoints\": 0}]"));
	for (int i = 0; i < 3; i++) {
		cJSON *r = result(i, 1.0, 1.0);
		cJSON *m = cJSON_AddObjectToObject(
			cJSON_GetObjectItem(cJSON_GetObjectItem(r, "groups"), "math"), "memorized");

		cJSON_AddNumberToObject(m, "loss", i == 0 ? 0.5 : 0.6);
		fx_put(&f, i, r);
	}
	/* patience 0: the first checkpoint without improvement starts it */
	CHECK_STR_EQ(f.log, "1:+plateau/math/memorized.loss ");
	fx_release(&f);
}

/* ---- the lifecycle -------------------------------------------------------------------- */

/* Steps 100..800 with grokking firing since 600 (13 at 800 against 15 at
 * 600); a late checkpoint at 750 (13.1) changes nothing: 13 is still a net
 * fall from 14 at 700.  Then a late checkpoint at 780 (12.5): the latest
 * value 13 is now a rise from it, and no fall from 13.1 two values back:
 * grokking ends (the distance, best at 780, is not on a plateau, so
 * nothing saturates). */
static void test_late_older_checkpoint(void)
{
	static const double loss[8] = { 3, 2, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5 };
	static const double dist[8] = { 20, 19, 18, 17, 16, 15, 14, 13 };
	struct fx f;

	fx_init(&f, cfg(GROK_CFG));
	for (int i = 0; i < 8; i++)
		fx_put(&f, 100 * (i + 1), result(100 * (i + 1), loss[i], dist[i]));
	CHECK_STR_EQ(f.log, "600:+grokking/math/pathway_distance ");
	fx_put(&f, 750, result(750, 1.5, 13.1));
	CHECK_STR_EQ(f.log, "600:+grokking/math/pathway_distance ");
	fx_put(&f, 780, result(780, 1.5, 12.5));
	CHECK_STR_EQ(f.log, "600:+grokking/math/pathway_distance "
			    "800:-grokking/math/pathway_distance ");

	/* The latest result replaced (a second result for step 800) with 9,
	 * below 13.1 * 0.99: a net fall again, grokking is back. */
	fx_put(&f, 800, result(800, 1.5, 9));
	CHECK_STR_EQ(f.log, "600:+grokking/math/pathway_distance "
			    "800:-grokking/math/pathway_distance "
			    "800:+grokking/math/pathway_distance ");
	/* An older result replaced, with the honest promise: the loss at 300
	 * now 1.0, which 1.5 never beats: torch reduces at [5] as before, the
	 * loss stays on its plateau (best at 300) and nothing changes. */
	series_put(f.s, 300, result(300, 1.0, 18));
	fx_eval_from(&f, 300);
	/* A late step inserted with a false promise (nothing changed below
	 * INT64_MAX): the walk sees its checkpoints shifted and starts over,
	 * so the events still match the full walk (fx_eval_from checks). */
	series_put(f.s, 50, result(50, 4, 25));
	fx_eval_from(&f, INT64_MAX);
	CHECK_STR_EQ(f.log, "600:+grokking/math/pathway_distance "
			    "800:-grokking/math/pathway_distance "
			    "800:+grokking/math/pathway_distance ");
	fx_release(&f);
}

/* A late step inserted under a false promise: the walk notices that the
 * checkpoints it walked moved and starts over.  5, 5, 5 (patience 1) is on
 * a plateau from 300; with 4 at 250 it is not (one miss since). */
static void test_walk_restarts_on_shifted_steps(void)
{
	static const double v[3] = { 5, 5, 5 };
	struct fx f;

	fx_init(&f, plateau_cfg("min", 0.01, "rel", 1, 0, 0));
	feed_loss(&f, v, 3);
	CHECK_STR_EQ(f.log, "300:+plateau/math/loss ");
	series_put(f.s, 250, result(250, 4, NAN));
	fx_eval_from(&f, INT64_MAX);
	CHECK_STR_EQ(f.log, "300:+plateau/math/loss 300:-plateau/math/loss ");
	fx_release(&f);
}

/* The daemon's flow through a real journal: results and alert events
 * appended, the daemon restarted (journal reopened, alerts restored), the
 * same series judged again (no transition), then a new result that
 * resolves the alert: one resolution, with the startsAt from before. */
static void test_restart_without_duplicates(void)
{
	static const double loss[9] = { 3, 2, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5 };
	static const double dist[9] = { 20, 19, 18, 17, 16, 15, 14, 13, 13 };
	const char *dir = tap_tmpdir();
	struct journal *j = NULL;
	struct alerts *a;
	struct gw_err e = { "" };
	struct config *c;
	cJSON *tr = NULL, *ev;
	int fired = 0;

	CHECK_INT_EQ(journal_open(dir, NULL, &j, &e), 0);
	c = cfg(GROK_CFG);
	a = alerts_from(c);
	for (int i = 0; i < 9; i++) {
		cJSON *r = result(100 * (i + 1), loss[i], dist[i]);

		CHECK_INT_EQ(journal_append(j, r, &e), 0);
		cJSON_Delete(r);
		CHECK_INT_EQ(alerts_evaluate(a, journal_results(j), 100 * (i + 1), "r1", NOW0 + i, &tr, &e), 0);
		cJSON_ArrayForEach(ev, tr) {
			CHECK_INT_EQ(journal_append(j, ev, &e), 0);
			CHECK_INT_EQ(alerts_apply(a, ev, &e), 0);
			fired++;
		}
		cJSON_Delete(tr);
	}
	CHECK_INT_EQ(fired, 1);
	alerts_free(a);
	journal_free(j);

	/* restart */
	j = NULL;
	CHECK_INT_EQ(journal_open(dir, NULL, &j, &e), 0);
	a = alerts_from(c);
	CHECK_INT_EQ(cJSON_GetArraySize(journal_alerts(j)), 1);
	CHECK_INT_EQ(alerts_restore(a, journal_alerts(j), &e), 0);
	CHECK_INT_EQ(alerts_firing_count(a), 1);
	CHECK_INT_EQ(alerts_evaluate(a, journal_results(j), ALERTS_CHANGED_ALL, "r1", NOW0 + 3600, &tr, &e), 0);
	CHECK_INT_EQ(cJSON_GetArraySize(tr), 0);
	cJSON_Delete(tr);
	{
		cJSON *fj = alerts_firing_json(a);
		const cJSON *al = cJSON_GetArrayItem(fj, 0);

		CHECK_INT_EQ(cJSON_GetArraySize(fj), 1);
		CHECK_STR_EQ(cJSON_GetObjectItem(al, "fingerprint")->valuestring, "d380ba7f62118c1f");
		CHECK_STR_EQ(cJSON_GetObjectItem(al, "startsAt")->valuestring,
			     "2026-01-01T00:00:05.250Z");
		cJSON_Delete(fj);
	}

	/* two more flat distances: torch reduces at [10] (checkpoint 11 of 11) */
	for (int i = 9; i < 11; i++) {
		cJSON *r = result(100 * (i + 1), 1.5, 13);

		CHECK_INT_EQ(journal_append(j, r, &e), 0);
		cJSON_Delete(r);
	}
	CHECK_INT_EQ(alerts_evaluate(a, journal_results(j), 1000, "r1", NOW0 + 7200, &tr, &e), 0);
	CHECK_INT_EQ(cJSON_GetArraySize(tr), 2);
	ev = cJSON_GetArrayItem(tr, 0);
	CHECK_STR_EQ(cJSON_GetObjectItem(ev, "status")->valuestring, "resolved");
	{
		const cJSON *al = cJSON_GetArrayItem(cJSON_GetObjectItem(ev, "alerts"), 0);

		CHECK_STR_EQ(cJSON_GetObjectItem(al, "startsAt")->valuestring,
			     "2026-01-01T00:00:05.250Z");
		CHECK_STR_EQ(cJSON_GetObjectItem(al, "endsAt")->valuestring,
			     "2026-01-01T02:00:00.250Z");
	}
	CHECK_STR_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(tr, 1), "status")->valuestring, "firing");
	cJSON_Delete(tr);
	alerts_free(a);
	journal_free(j);
	config_free(c);
}

/* After a restart with another config or run name, alerts fired before
 * are resolved once, saying why; the new run's alert fires under its own
 * fingerprint. */
static void test_config_or_run_changed(void)
{
	static const double v[4] = { 5, 5, 5, 5 };
	struct fx f;
	struct alerts *a2;
	struct gw_err e = { "" };
	cJSON *tr = NULL;
	const cJSON *ann;

	fx_init(&f, plateau_cfg("min", 0.01, "rel", 1, 0, 0));
	feed_loss(&f, v, 4);
	CHECK_STR_EQ(f.log, "300:+plateau/math/loss ");

	/* the plateau detector is gone from the config */
	{
		struct config *c = cfg("\"distance\": {\"min_checkpoints\": 1000000}");

		a2 = alerts_from(c);
		config_free(c);
	}
	CHECK_INT_EQ(alerts_restore(a2, f.events, &e), 0);
	CHECK_INT_EQ(alerts_evaluate(a2, f.s, ALERTS_CHANGED_ALL, "r1", NOW0, &tr, &e), 0);
	CHECK_INT_EQ(cJSON_GetArraySize(tr), 1);
	CHECK_STR_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(tr, 0), "status")->valuestring, "resolved");
	ann = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(tr, 0),
									 "alerts"), 0), "annotations");
	CHECK_STR_EQ(cJSON_GetObjectItem(ann, "description")->valuestring,
		     "resolved at step 400: no longer judged (group or detector absent)");
	CHECK_STR_EQ(cJSON_GetObjectItem(ann, "summary")->valuestring,
		     "loss of group math is on a plateau");
	cJSON_Delete(tr);
	alerts_free(a2);

	/* the same config, the run renamed */
	CHECK_INT_EQ(alerts_evaluate(f.a, f.s, ALERTS_CHANGED_ALL, "r2", NOW0, &tr, &e), 0);
	CHECK_INT_EQ(cJSON_GetArraySize(tr), 2);
	{
		const cJSON *r0 = cJSON_GetArrayItem(tr, 0), *r1 = cJSON_GetArrayItem(tr, 1);
		const cJSON *l0 = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r0, "alerts"),
									 0), "labels");
		const cJSON *l1 = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r1, "alerts"),
									 0), "labels");

		CHECK_STR_EQ(cJSON_GetObjectItem(r0, "status")->valuestring, "resolved");
		CHECK_STR_EQ(cJSON_GetObjectItem(l0, "run")->valuestring, "r1");
		CHECK_STR_HAS(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(
			cJSON_GetObjectItem(r0, "alerts"), 0), "annotations"), "description")->valuestring,
			"resolved at step 400: the run is now \"r2\"");
		CHECK_STR_EQ(cJSON_GetObjectItem(r1, "status")->valuestring, "firing");
		CHECK_STR_EQ(cJSON_GetObjectItem(l1, "run")->valuestring, "r2");
	}
	cJSON_Delete(tr);
	fx_release(&f);
}

static cJSON *health_result(int64_t step, double dead, double max_imb)
{
	cJSON *r = result(step, 1.0, 1.0), *h = cJSON_CreateObject(), *o;

	cJSON_DeleteItemFromObject(r, "health");
	o = cJSON_AddObjectToObject(h, "overall");
	cJSON_AddItemToObject(o, "dead_experts", num_or_null(dead));
	cJSON_AddItemToObject(o, "max_imbalance", num_or_null(max_imb));
	cJSON_AddNumberToObject(o, "imbalance", 1.25);
	cJSON_AddItemToObject(r, "health", h);
	return r;
}

/* dead_experts >= 2 or max_imbalance > 3 (exactly 3 is not past it); a
 * result without health keeps the last judgement. */
static void test_routing_collapse(void)
{
	struct fx f;
	const cJSON *al;

	{
		struct config *c = NULL;
		struct gw_err e = { "" };
		const char *t = "{\"alerts\": {\"distance\": {\"min_checkpoints\": 1000000}, "
				"\"routing_collapse\": {\"dead_experts\": 2, \"max_imbalance\": 3}}}";

		CHECK_INT_EQ(config_parse("t.json", t, strlen(t), &c, &e), 0);
		fx_init(&f, c);
	}
	fx_put(&f, 1, health_result(1, 1, 3.0));
	CHECK_STR_EQ(f.log, "");
	fx_put(&f, 2, health_result(2, 2, 2.0));
	CHECK_STR_EQ(f.log, "2:+routing_collapse/all/dead_experts ");
	fx_put(&f, 3, result(3, 1.0, 1.0)); /* health null */
	CHECK_STR_EQ(f.log, "2:+routing_collapse/all/dead_experts ");
	fx_put(&f, 4, health_result(4, 0, 3.5));
	CHECK_STR_EQ(f.log, "2:+routing_collapse/all/dead_experts "
			    "4:-routing_collapse/all/dead_experts "
			    "4:+routing_collapse/all/max_imbalance ");
	al = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(f.events, 0), "alerts"), 0);
	CHECK_STR_EQ(cJSON_GetObjectItem(al, "fingerprint")->valuestring, "80553ffed3a5ce1e");
	CHECK_STR_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(al, "annotations"), "summary")->valuestring,
		     "routing collapse: 2 dead experts");
	CHECK_STR_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(al, "annotations"),
					 "description")->valuestring,
		     "health.overall at step 2: dead_experts 2 (alert at 2), imbalance 1.25");
	fx_release(&f);
}

/* Which groups are judged: every group and "all" when there are two;
 * alerts.groups when set. */
static void test_groups(void)
{
	struct fx f;

	fx_init(&f, plateau_cfg("min", 0.01, "rel", 0, 0, 0));
	for (int i = 0; i < 2; i++) {
		cJSON *r = result(i, 5, NAN);
		cJSON *code = cJSON_AddObjectToObject(cJSON_GetObjectItem(r, "groups"), "code");

		cJSON_AddNumberToObject(code, "loss", 5 - i);
		fx_put(&f, i, r);
	}
	CHECK_STR_EQ(f.log, "1:+plateau/math/loss 1:+plateau/all/loss ");
	fx_release(&f);

	fx_init(&f, cfg("\"groups\": [\"code\"], \"distance\": {\"min_checkpoints\": 1000000}, "
			"\"plateaus\": [{\"metric\": \"loss\", \"mode\": \"max\", \"threshold\": 0, "
			"\"threshold_mode\": \"abs\", \"patience\": 0, \"cooldown\": 0, "
			"\"min_checkpoints\": 0}]"));
	for (int i = 0; i < 2; i++)
		fx_put(&f, i, result3(i, "code", 5 - i, NAN, NAN));
	CHECK_STR_EQ(f.log, "1:+plateau/code/loss ");
	fx_release(&f);
}

/* Disabled: nothing.  An empty series: nothing.  Results of any shape:
 * no alert, no crash. */
static void test_disabled_empty_and_odd_results(void)
{
	struct fx f;
	static const char *odd[] = {
		"{}", "{\"groups\": []}", "{\"groups\": {\"math\": 3}}",
		"{\"groups\": {\"math\": {\"loss\": \"1\"}}}", "{\"groups\": {\"math\": {\"loss\": null}}}",
		"{\"groups\": {\"\": {\"loss\": 1}}, \"health\": {\"overall\": []}}",
		"{\"health\": {\"overall\": {\"dead_experts\": \"x\"}}}",
	};
	cJSON *tr = NULL;
	struct gw_err e = { "" };

	fx_init(&f, cfg("\"enabled\": false, " GROK_CFG));
	for (int i = 0; i < 12; i++)
		fx_put(&f, i, result(i, 1.5, 20 - i));
	CHECK_STR_EQ(f.log, "");
	fx_release(&f);

	fx_init(&f, plateau_cfg("min", 0.01, "rel", 0, 0, 0));
	fx_eval(&f);
	CHECK_STR_EQ(f.log, "");
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		fx_put(&f, (int64_t)i, cJSON_Parse(odd[i]));
	CHECK_STR_EQ(f.log, "");
	tr = (cJSON *)&e;
	CHECK_INT_EQ(alerts_evaluate(f.a, f.s, ALERTS_CHANGED_ALL, "", NOW0, &tr, &e), -EINVAL);
	CHECK(tr == (cJSON *)&e);
	CHECK_STR_HAS(e.msg, "run name is empty");
	fx_release(&f);
}

/* alerts_apply and alerts_restore refuse malformed events and leave the
 * firing set as it was. */
static void test_bad_events(void)
{
	static const struct {
		const char *json, *msg;
	} bad[] = {
		{ "{\"kind\": \"result\"}", "\"kind\" is not \"alert\"" },
		{ "{\"kind\": \"alert\"}", "is not an array of one object" },
		{ "{\"kind\": \"alert\", \"alerts\": []}", "is not an array of one object" },
		{ "{\"kind\": \"alert\", \"alerts\": [{}, {}]}", "is not an array of one object" },
		{ "{\"kind\": \"alert\", \"alerts\": [{\"status\": \"firing\", \"labels\": "
		  "{\"alertname\": \"grokking\", \"run\": \"r1\", \"group\": \"math\"}}]}",
		  "labels alertname, run, group and metric must be strings" },
		{ "{\"kind\": \"alert\", \"alerts\": [{\"status\": \"pending\", \"labels\": "
		  "{\"alertname\": \"grokking\", \"run\": \"r1\", \"group\": \"math\", \"metric\": "
		  "\"pathway_distance\"}, \"fingerprint\": \"d380ba7f62118c1f\"}]}",
		  "status is not \"firing\" or \"resolved\"" },
		{ "{\"kind\": \"alert\", \"alerts\": [{\"status\": \"firing\", \"labels\": "
		  "{\"alertname\": \"grokking\", \"run\": \"r1\", \"group\": \"math\", \"metric\": "
		  "\"pathway_distance\"}}]}", "\"fingerprint\" is missing" },
		{ "{\"kind\": \"alert\", \"alerts\": [{\"status\": \"firing\", \"labels\": "
		  "{\"alertname\": \"grokking\", \"run\": \"r2\", \"group\": \"math\", \"metric\": "
		  "\"pathway_distance\"}, \"fingerprint\": \"d380ba7f62118c1f\", \"startsAt\": \"x\"}]}",
		  "fingerprint \"d380ba7f62118c1f\" does not match its labels" },
		{ "{\"kind\": \"alert\", \"alerts\": [{\"status\": \"firing\", \"labels\": "
		  "{\"alertname\": \"grokking\", \"run\": \"r1\", \"group\": \"math\", \"metric\": "
		  "\"pathway_distance\"}, \"fingerprint\": \"d380ba7f62118c1f\"}]}",
		  "\"startsAt\" is missing" },
		{ "{\"kind\": \"alert\", \"step\": -1, \"alerts\": [{\"status\": \"firing\", \"labels\": "
		  "{\"alertname\": \"grokking\", \"run\": \"r1\", \"group\": \"math\", \"metric\": "
		  "\"pathway_distance\"}, \"fingerprint\": \"d380ba7f62118c1f\"}]}",
		  "\"step\" is not an integer >= 0" },
	};
	struct alerts *a;
	struct config *c = cfg("");
	struct gw_err e = { "" };
	cJSON *arr;

	a = alerts_from(c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cJSON *ev = cJSON_Parse(bad[i].json);

		CHECK(ev != NULL);
		CHECK_INT_EQ(alerts_apply(a, ev, &e), -EINVAL);
		CHECK_STR_HAS(e.msg, bad[i].msg);
		CHECK_INT_EQ(alerts_firing_count(a), 0);
		cJSON_Delete(ev);
	}
	arr = cJSON_Parse("{}");
	CHECK_INT_EQ(alerts_restore(a, arr, &e), -EINVAL);
	CHECK_STR_HAS(e.msg, "not an array");
	cJSON_Delete(arr);
	arr = cJSON_Parse("[{\"kind\": \"alert\", \"alerts\": [{\"status\": \"resolved\", \"labels\": "
			  "{\"alertname\": \"grokking\", \"run\": \"r1\", \"group\": \"math\", "
			  "\"metric\": \"pathway_distance\"}, \"fingerprint\": \"d380ba7f62118c1f\"}]}, 7]");
	CHECK_INT_EQ(alerts_restore(a, arr, &e), -EINVAL);
	CHECK_STR_HAS(e.msg, "alert event 1: ");
	cJSON_Delete(arr);
	alerts_free(a);
	config_free(c);
}

static void test_fingerprint(void)
{
	char fp[17];

	alert_fingerprint("grokking", "r1", "math", "pathway_distance", fp);
	CHECK_STR_EQ(fp, "d380ba7f62118c1f");
	alert_fingerprint("routing_collapse", "r1", "all", "dead_experts", fp);
	CHECK_STR_EQ(fp, "80553ffed3a5ce1e");
}

static const struct tap_test tests[] = {
	{ "grokking_then_saturated", test_grokking_then_saturated },
	{ "event_shape", test_event_shape },
	{ "flat_distance_is_not_grokking", test_flat_distance_is_not_grokking },
	{ "jump_up_is_not_grokking", test_jump_up_is_not_grokking },
	{ "fall_within_window_is_grokking", test_fall_within_window_is_grokking },
	{ "net_fall_abs_threshold", test_net_fall_abs_threshold },
	{ "rel_versus_abs", test_rel_versus_abs },
	{ "threshold_se", test_threshold_se },
	{ "patience_edge", test_patience_edge },
	{ "cooldown_edges", test_cooldown_edges },
	{ "min_checkpoints", test_min_checkpoints },
	{ "metric_paths", test_metric_paths },
	{ "late_older_checkpoint", test_late_older_checkpoint },
	{ "walk_restarts_on_shifted_steps", test_walk_restarts_on_shifted_steps },
	{ "restart_without_duplicates", test_restart_without_duplicates },
	{ "config_or_run_changed", test_config_or_run_changed },
	{ "routing_collapse", test_routing_collapse },
	{ "groups", test_groups },
	{ "disabled_empty_and_odd_results", test_disabled_empty_and_odd_results },
	{ "bad_events", test_bad_events },
	{ "fingerprint", test_fingerprint },
	{ NULL, NULL },
};
TAP_MAIN_DAEMON(tests)
