/*
 * alert.h — alerts from the series of results (SPEC §4 "Phases and
 * plateaus"): which conditions hold at the latest step, and the firing and
 * resolved transitions against the alerts already sent.
 *
 * Design.  alerts_evaluate judges the WHOLE series of journal results, in
 * step order, and yields the set of conditions active at the latest step;
 * the difference against the firing set gives the transitions.  (It keeps
 * where its walk of the series stopped, so the common case, one new latest
 * result, costs one step of the walk; the outcome is always that of a walk
 * from the first checkpoint.)  So a late checkpoint with an older step simply takes its
 * place and the series is judged again, and the result depends only on the
 * series and the config, never on the order results arrived in.  The firing
 * set is rebuilt from the journal's alert events on start (alerts_restore),
 * so a restart neither forgets an alert nor sends it twice.
 *
 * The daemon, for each result (on the loop thread):
 *   journal_append(result);
 *   alerts_evaluate(a, journal_results(j), result's step, run, now, &tr);
 *   for each event in tr: journal_append(event) (fsynced), then
 *     alerts_apply(a, event), then publish the body (alert_event_body) on
 *     the `alert` topic and hand it to the hooks (alert_event_info for
 *     their environment).
 * An event whose append fails is not applied, so the next evaluation
 * yields it again.
 *
 * ---- The plateau rule (PyTorch's ReduceLROnPlateau, exactly, on steps) ----
 * (torch/optim/lr_scheduler.py as Debian 12's python3-torch 1.13 has it.)
 * A detector has mode (min|max), threshold, threshold_mode (rel|abs|se),
 * patience, cooldown and min_checkpoints.  It walks the checkpoints of the
 * series in step order, taking the metric's value at each; a checkpoint
 * where the value is absent, null or not a number is skipped (it is not a
 * checkpoint of that metric: torch would count a NaN as a bad epoch, but
 * here null means "undefined", e.g. an empty memorized subset).  State:
 * best = +inf (min) or -inf (max), num_bad = 0, cooldown_counter = 0.  For
 * each value x, as torch's ReduceLROnPlateau.step(x) does:
 *   better = mode min, rel:  x < best * (1 - threshold)
 *            mode min, abs:  x < best - threshold
 *            mode min, se:   x < best - threshold * sqrt(se_x^2 + se_best^2)
 *            mode max, rel:  x > best * (1 + threshold)
 *            mode max, abs:  x > best + threshold
 *            mode max, se:   x > best + threshold * sqrt(se_x^2 + se_best^2)
 *   if better: best = x, num_bad = 0  else: num_bad += 1
 *   if cooldown_counter > 0: cooldown_counter -= 1, num_bad = 0
 *   if num_bad > patience: REDUCE; cooldown_counter = cooldown, num_bad = 0
 * (rel mode compares against best scaled by 1 -/+ threshold, which assumes
 * positive values, as torch does; the config refuses a rel threshold >= 1
 * in min mode, where even the first value would not beat +inf.)
 * Threshold mode se is not torch's: the threshold counts standard errors
 * of the difference x - best, se_x being the number "<name>_se" beside the
 * metric in the same object (memorized.pathway_distance ->
 * memorized.pathway_distance_se: the jackknife over the probe samples,
 * metrics.h) and se_best the one stored with the best value.  So a
 * fall smaller than the noise of choosing the probe samples is no
 * improvement.  In mode se a checkpoint whose standard error is absent,
 * null, negative or not a number is skipped like one without a value.
 * (The config allows se only for metrics that have one.)
 * Where torch would reduce the learning rate, a plateau starts: the metric
 * is "on a plateau" from a REDUCE until the next `better` checkpoint.  So
 * with patience p a plateau starts at the (p+1)-th consecutive checkpoint
 * without improvement; during the `cooldown` checkpoints after it starts,
 * checkpoints without improvement are not counted, so after an improvement
 * ends it a new plateau can start no sooner than cooldown + p + 1
 * checkpoints after the last one started.  Nothing is judged (no plateau)
 * while fewer than min_checkpoints values have been seen.  The first value
 * always beats the initial best; it is not an "improvement" below.
 *
 * ---- The alerts (labels alertname, run, group, metric) ----
 * plateau (metric = each alerts.plateaus[i].metric): that detector is on a
 *   plateau at the latest value.
 * grokking (metric = alerts.distance.metric): at checkpoint t, the loss
 *   detector (alerts.loss, mode min) is on a plateau, the distance detector
 *   (alerts.distance, mode min) has seen min_checkpoints values, and the
 *   distance shows a net fall over its window: its latest value x (at or
 *   before t) is `better` (the rule above, with the distance's threshold and
 *   threshold_mode, se included) than the value x_p it had `patience`
 *   values earlier, as if x_p were the best: x < x_p * (1 - threshold) (rel),
 *   x < x_p - threshold (abs), x < x_p - threshold * sqrt(se_x^2 + se_p^2)
 *   (se).  Fewer than patience + 1 values: no fall, no grokking.  So a
 *   distance that jumps up at the latest checkpoint does not fire it, and
 *   one that falls and then stands still for `patience` checkpoints stops
 *   it: the distance kept falling while the loss stood still.
 * generalization_saturated (metric = alerts.distance.metric): at t, the
 *   distance is on a plateau, the group is not grokking at t and was
 *   grokking at some checkpoint before t.
 * Both are judged at the latest checkpoint; "before t" looks back over the
 *   whole series.
 * routing_collapse (group "all"; metric "dead_experts" or "max_imbalance",
 *   one alert each): at the latest result that has health.overall,
 *   dead_experts >= alerts.routing_collapse.dead_experts (0 = off), or
 *   max_imbalance > alerts.routing_collapse.max_imbalance (0 = off).
 * Groups: alerts.groups, or when it is empty every group of the latest
 *   result, "all" included unless the result has exactly one other group
 *   (then "all" holds the same samples and would only repeat its alerts).
 *   Metric values are result.groups[<group>] followed along the dotted
 *   metric path ("memorized.pathway_distance"), as publish.h's history.
 *
 * ---- Events ----
 * Each transition is one JSON object, journaled as it is, and (without
 * "kind") the body published on the `alert` topic and given to hooks on
 * stdin.  It is Alertmanager's webhook payload (version 4) carrying one
 * alert, so it can be forwarded to existing alerting unchanged:
 *   {"kind": "alert", "step": <latest step judged>, "version": "4",
 *    "groupKey": "grokwatch:<fingerprint>", "truncatedAlerts": 0,
 *    "status": "firing" | "resolved", "receiver": "grokwatch",
 *    "groupLabels": {}, "commonLabels": <the alert's labels>,
 *    "commonAnnotations": <the alert's annotations>, "externalURL": "",
 *    "alerts": [{"status", "labels": {"alertname", "run", "group", "metric"},
 *                "annotations": {"summary": readable text,
 *                                "description": the numbers behind it},
 *                "startsAt", "endsAt", "generatorURL": "", "fingerprint"}]}
 * startsAt is the `now` of the evaluation that fired it (kept across
 * restarts); endsAt is "0001-01-01T00:00:00Z" while firing and the `now` of
 * the evaluation that resolved it; both RFC 3339 UTC with milliseconds.
 * fingerprint is Prometheus's label-set fingerprint, so it matches what
 * Alertmanager computes for the same labels: FNV-1a 64 over the label
 * names in byte order, each name and value followed by the byte 0xff,
 * printed as 16 lower-case hex digits.  A resolved alert keeps the summary
 * it fired with; its description gives the numbers at the step that
 * resolved it.
 * Order within one evaluation: resolutions in firing order, then new
 * firings in the order groups, detectors (plateaus in config order,
 * grokking, generalization_saturated) and routing_collapse are listed.
 *
 * Threads: a struct alerts belongs to one thread (the loop thread); the
 * functions touch nothing global.  Allocation failures abort.  Memory: the
 * firing set and one small walk state per judged group (with the
 * distance's last patience + 1 values), nothing per checkpoint.
 */
#ifndef GW_DAEMON_ALERT_H
#define GW_DAEMON_ALERT_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "series.h"

#define ALERT_PLATEAU "plateau"
#define ALERT_GROKKING "grokking"
#define ALERT_SATURATED "generalization_saturated"
#define ALERT_COLLAPSE "routing_collapse"
#define ALERT_ENDS_FIRING "0001-01-01T00:00:00Z"
#define ALERT_FIRING_MAX 100000 /* alerts firing at once; more are refused by alerts_apply */

enum alert_mode { ALERT_MODE_MIN, ALERT_MODE_MAX };             /* improving = falling, rising */
enum alert_threshold_mode { ALERT_THRESHOLD_REL, ALERT_THRESHOLD_ABS, ALERT_THRESHOLD_SE };

/* One plateau detector (the rule above). */
struct alert_detector_opts {
	const char *metric;       /* dotted path under result.groups[<group>] */
	enum alert_mode mode;
	double threshold;
	enum alert_threshold_mode threshold_mode;
	int64_t patience, cooldown, min_checkpoints; /* in checkpoints */
};

/* What an evaluator judges; everything is borrowed by alerts_new, which
 * copies it. */
struct alert_opts {
	bool enabled;
	const char *const *groups;  /* [n_groups]; none = every group of the latest result */
	int n_groups;
	struct alert_detector_opts loss, distance; /* mode must be ALERT_MODE_MIN */
	const struct alert_detector_opts *plateaus; /* [n_plateaus] */
	int n_plateaus;
	int64_t dead_experts;       /* routing_collapse: 0 = off */
	double max_imbalance;       /* routing_collapse: 0 = off */
};

struct alerts;

/* A new evaluator with the detectors of o (copied: o and what it points to
 * may be freed afterwards) and an empty firing set.  Never fails (aborts
 * on OOM). */
struct alerts *alerts_new(const struct alert_opts *o);
void alerts_free(struct alerts *a); /* accepts NULL */

/*
 * Fold one alert event (borrowed) into the firing set: "firing" adds (or
 * replaces) its fingerprint, "resolved" removes it (absent: no change).
 * Errors: -EINVAL for an event that is not shaped as above (kind, status,
 * alerts[0] with string labels alertname/run/group/metric, fingerprint,
 * startsAt; a fingerprint that does not match the labels); -E2BIG past
 * ALERT_FIRING_MAX.  On error the firing set is unchanged.
 */
int alerts_apply(struct alerts *a, const cJSON *event, struct gw_err *err);

/* alerts_apply every element of `events` (journal_alerts(): a cJSON
 * array, borrowed) in order.  Errors: those of alerts_apply, the message
 * prefixed with the element's index; elements before it stay applied. */
int alerts_restore(struct alerts *a, const cJSON *events, struct gw_err *err);

/*
 * Judge `results` (borrowed; results in step order, each a metrics
 * result object, as journal_results gives them) for run `run` at wall-clock
 * time `now` (Unix seconds) and set *ret_transitions to a new cJSON array
 * (caller frees) of the events above, possibly empty.  Does not change the
 * firing set: apply each event once it is journaled.  With alerts disabled
 * (alerts.enabled false) or an empty series, the array is empty.
 * Results without "groups", groups without the metric, or values that are
 * null are skipped as described above, never an error.
 *
 * changed_from: the caller's promise that no result at a step below it
 * changed since the previous call on `a` (pass the step of the result just
 * put; ALERTS_CHANGED_ALL when unsure, e.g. the first call after a
 * restart).  The result is the same either way: `a` keeps each group's
 * walk of the series, and continues it from where it stopped when the
 * promise and the series allow (the steps it walked are still the first
 * ones of the series), so a result with a new latest step costs O(groups x
 * detectors); otherwise the whole series is walked again,
 * O(checkpoints x groups x detectors) cJSON lookups (about 0.25 s for 1e5
 * checkpoints and 4 groups; 0.07 ms for the next one).
 * Errors: -EINVAL for an empty run name.
 */
#define ALERTS_CHANGED_ALL INT64_MIN
int alerts_evaluate(struct alerts *a, const struct series *results, int64_t changed_from,
		    const char *run, double now, cJSON **ret_transitions, struct gw_err *err);

/* Number of alerts firing. */
size_t alerts_firing_count(const struct alerts *a);

/* The firing alerts as a new cJSON array (caller frees) of Alertmanager
 * alert objects ({"status": "firing", "labels", "annotations", "startsAt",
 * "endsAt", "generatorURL", "fingerprint"}), in firing order. */
cJSON *alerts_firing_json(const struct alerts *a);

/* What a hook's environment needs from an event.  Strings are borrowed
 * from the event. */
struct alert_info {
	const char *alertname, *run, *group, *metric, *status, *fingerprint;
	int64_t step; /* -1 if the event has none */
};

/* Fill *ret from an event built by alerts_evaluate (or restored).
 * Errors: -EINVAL when the event is not shaped as above. */
int alert_event_info(const cJSON *event, struct alert_info *ret, struct gw_err *err);

/* The event's body: a new copy without "kind" (caller frees), to publish
 * or to print for a hook's stdin. */
cJSON *alert_event_body(const cJSON *event);

/* Prometheus's fingerprint of the label set {alertname, group, metric,
 * run}, as 16 hex digits and a NUL into out (17 bytes). */
void alert_fingerprint(const char *alertname, const char *run, const char *group,
		       const char *metric, char out[17]);

#endif
