/*
 * status.c — the status object and the STATUS= line of status.h, from a
 * struct status_info: the object field by field in the order status.h
 * lists them, then the one-line text.
 */
#include "status.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>

#define FAILED_SHOWN 5

static void add_job(cJSON *s, const struct status_info *in)
{
	cJSON *j;

	if (!in->job) {
		cJSON_AddNullToObject(s, "job");
		return;
	}
	j = cJSON_AddObjectToObject(s, "job");
	cJSON_AddNumberToObject(j, "step", (double)in->job->step);
	cJSON_AddStringToObject(j, "checkpoint", in->job->label);
	cJSON_AddNumberToObject(j, "attempt", in->job->attempt);
	cJSON_AddNumberToObject(j, "layers_done", atomic_load(&in->job->layers_done));
	cJSON_AddNumberToObject(j, "n_layers", atomic_load(&in->job->n_layers));
	cJSON_AddNumberToObject(j, "running_sec", in->running_sec);
}

struct pending_list {
	cJSON *a;
	size_t n;
};

static void add_pending(void *ud, const char *name, int64_t step, const char *why,
			const char *reason)
{
	struct pending_list *p = ud;
	cJSON *x;

	if (p->n++ >= STATUS_PENDING_SHOWN)
		return;
	x = cJSON_CreateObject();
	cJSON_AddStringToObject(x, "checkpoint", name);
	if (step >= 0)
		cJSON_AddNumberToObject(x, "step", (double)step);
	else
		cJSON_AddNullToObject(x, "step");
	cJSON_AddStringToObject(x, "why", why);
	cJSON_AddStringToObject(x, "reason", reason);
	cJSON_AddItemToArray(p->a, x);
}

cJSON *status_json(const struct status_info *in)
{
	size_t n = series_count(in->results), nf = series_count(in->failures);
	cJSON *s = cJSON_CreateObject(), *f;

	cJSON_AddStringToObject(s, "state", in->stopping ? "stopping" : in->job ? "computing" : "idle");
	cJSON_AddStringToObject(s, "root", in->root);
	cJSON_AddStringToObject(s, "watch_mode", in->watch_mode ? in->watch_mode : "none");
	cJSON_AddNumberToObject(s, "pending", (double)in->pending);
	{
		struct pending_list p = { cJSON_AddArrayToObject(s, "pending_dirs"), 0 };

		if (in->watch)
			watch_pending_foreach(in->watch, add_pending, &p);
		if (p.n > STATUS_PENDING_SHOWN)
			cJSON_AddNumberToObject(s, "pending_dirs_more",
						(double)(p.n - STATUS_PENDING_SHOWN));
	}
	cJSON_AddNumberToObject(s, "queue", (double)in->queued);
	add_job(s, in);
	cJSON_AddNumberToObject(s, "results", (double)n);
	if (n)
		cJSON_AddNumberToObject(s, "last_step", (double)series_step_at(in->results, n - 1));
	else
		cJSON_AddNullToObject(s, "last_step");
	cJSON_AddNumberToObject(s, "failures", (double)nf);
	f = cJSON_AddArrayToObject(s, "failed");
	for (size_t i = nf > FAILED_SHOWN ? nf - FAILED_SHOWN : 0; i < nf; i++) {
		const cJSON *e = series_at(in->failures, i);
		cJSON *x = cJSON_CreateObject();

		cJSON_AddNumberToObject(x, "step", (double)series_step_at(in->failures, i));
		cJSON_AddItemToObject(x, "reason",
				      cJSON_Duplicate(cJSON_GetObjectItem(e, "reason"), 1));
		cJSON_AddItemToArray(f, x);
	}
	if (in->probe_hash)
		cJSON_AddStringToObject(s, "probe_hash", in->probe_hash);
	if (in->alerts)
		cJSON_AddItemToObject(s, "alerts", alerts_firing_json(in->alerts));
	if (in->am)
		cJSON_AddItemToObject(s, "alertmanager", alertmanager_status_json(in->am));
	return s;
}

void status_line(const struct status_info *in, char *buf, size_t size)
{
	if (in->job)
		snprintf(buf, size, "computing step %" PRId64 " (layer %d/%d); %zu queued, %zu results",
			 in->job->step, atomic_load(&in->job->layers_done),
			 atomic_load(&in->job->n_layers), in->queued, series_count(in->results));
	else
		snprintf(buf, size, "watching %s (%s); %zu results, %zu failed", in->root,
			 in->watch_mode ? in->watch_mode : "-", series_count(in->results),
			 series_count(in->failures));
}
