/*
 * step.c — checkpoint steps from directory names and trainer_state.json.
 *
 * The matcher is a small backtracking glob over three token kinds
 * (literal byte, "*", "{step}"); names are short, so its worst case does
 * not matter, but recursion depth is bounded by the pattern length, which
 * step_pattern_check bounds.  At the end, the one lower bound over arrays
 * sorted by step.
 */
#include "engine/step.h"
#include "engine/file.h"
#include "engine/json.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATTERN_MAX 256
#define TRAINER_STATE_MAX (64u * 1024u * 1024u)

const char *const step_default_patterns[] = {
	"step{step}", "step{step}-*", "checkpoint-{step}", "iter_{step}", "global_step{step}",
	"step_{step}", "step-{step}", "checkpoint_{step}", NULL,
};

int step_pattern_check(const char *pattern, struct gw_err *err)
{
	const char *p = strstr(pattern, "{step}");

	if (strlen(pattern) > PATTERN_MAX)
		return gw_errf(err, -EINVAL, "pattern \"%.40s...\" is longer than %d bytes", pattern,
			       PATTERN_MAX);
	if (!p)
		return gw_errf(err, -EINVAL, "pattern \"%s\" has no {step}", pattern);
	if (strstr(p + 1, "{step}"))
		return gw_errf(err, -EINVAL, "pattern \"%s\" has more than one {step}", pattern);
	for (const char *c = pattern; *c; c++)
		if ((*c == '{' || *c == '}') && !(c >= p && c < p + 6))
			return gw_errf(err, -EINVAL, "pattern \"%s\" has a brace outside {step}",
				       pattern);
	return 0;
}

/* Match name against pattern from the given positions; on success the
 * digits of {step} are [*ret_begin, *ret_end). */
static int match(const char *pat, const char *name, const char **ret_begin, const char **ret_end)
{
	if (!*pat)
		return !*name;
	if (*pat == '*') {
		for (const char *n = name;; n++) {
			if (match(pat + 1, n, ret_begin, ret_end))
				return 1;
			if (!*n)
				return 0;
		}
	}
	if (!strncmp(pat, "{step}", 6)) {
		const char *n = name;

		while (*n >= '0' && *n <= '9')
			n++;
		/* Longest run first, then shorter ones, so "step{step}*" works. */
		for (const char *end = n; end > name; end--)
			if (match(pat + 6, end, ret_begin, ret_end)) {
				*ret_begin = name;
				*ret_end = end;
				return 1;
			}
		return 0;
	}
	return *pat == *name && match(pat + 1, name + 1, ret_begin, ret_end);
}

int step_from_name(const char *name, const char *const *patterns, int64_t *ret_step)
{
	for (const char *const *p = patterns; *p; p++) {
		const char *b = NULL, *e = NULL;
		int64_t v = 0;

		if (step_pattern_check(*p, NULL) < 0 || !match(*p, name, &b, &e))
			continue;
		if (e - b > 15)
			continue;
		for (const char *c = b; c < e; c++)
			v = v * 10 + (*c - '0');
		*ret_step = v;
		return 0;
	}
	return -ENOENT;
}

/*
 * Python's json module writes the non-finite floats as NaN, Infinity and
 * -Infinity (HF Trainer logs a NaN grad_norm so), which JSON and cJSON do
 * not know: a copy of the text with each such token outside strings read
 * as null.
 */
static char *python_json_to_json(const char *t, size_t len, size_t *ret_len)
{
	static const char *const toks[] = { "-Infinity", "Infinity", "NaN" };
	char *out = gw_malloc(len * 2 + 1);
	size_t o = 0;
	bool str = false;

	for (size_t i = 0; i < len;) {
		size_t k = 0;

		if (str) {
			if (t[i] == '\\' && i + 1 < len)
				out[o++] = t[i++];
			else if (t[i] == '"')
				str = false;
			out[o++] = t[i++];
			continue;
		}
		if (t[i] == '"')
			str = true;
		for (; k < 3; k++)
			if (len - i >= strlen(toks[k]) && !memcmp(t + i, toks[k], strlen(toks[k])))
				break;
		if (k < 3) {
			memcpy(out + o, "null", 4);
			o += 4;
			i += strlen(toks[k]);
			continue;
		}
		out[o++] = t[i++];
	}
	out[o] = 0;
	*ret_len = o;
	return out;
}

/* DIR/trainer_state.json parsed, its path into path: 0, -ENOENT if
 * absent, or -EBADMSG naming it. */
static int trainer_state_read(const char *dir, char *path, size_t size, cJSON **ret,
			      struct gw_err *err)
{
	struct stat st;
	cJSON *root;
	char *buf = NULL;
	size_t len;
	int r;

	if (snprintf(path, size, "%s/trainer_state.json", dir) >= (int)size)
		return gw_errf(err, -ENAMETOOLONG, "\"%s\": path too long", dir);
	if (stat(path, &st) < 0 && errno == ENOENT)
		return -ENOENT;
	r = gw_file_read(path, TRAINER_STATE_MAX, &buf, &len, err);
	if (r < 0)
		return r == -ENOMEM || r == -EACCES || r == -EIO ? r : gw_err_prefix(err, -EBADMSG, "trainer state");
	{
		size_t n;
		char *js = python_json_to_json(buf, len, &n);

		root = cJSON_ParseWithLength(js, n);
		free(js);
	}
	free(buf);
	if (!root || !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return gw_errf(err, -EBADMSG, "\"%s\": not a JSON object", path);
	}
	*ret = root;
	return 0;
}

int step_from_trainer_state(const char *dir, int64_t *ret_step, struct gw_err *err)
{
	char path[4096];
	cJSON *root = NULL;
	int r;

	if ((r = trainer_state_read(dir, path, sizeof(path), &root, err)) < 0)
		return r;
	if (json_step(cJSON_GetObjectItemCaseSensitive(root, "global_step"), ret_step) < 0)
		r = gw_errf(err, -EBADMSG, "\"%s\": global_step is not a non-negative integer", path);
	cJSON_Delete(root);
	return r;
}

/* A finite number at key of o, into *ret; false when absent or not one. */
static bool log_number(const cJSON *o, const char *key, double *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
		return false;
	*ret = v->valuedouble;
	return true;
}

int step_trainer_log(const char *dir, int64_t step, struct trainer_log *ret, struct gw_err *err)
{
	struct trainer_log t = { .loss_step = -1, .lr_step = -1 };
	const cJSON *hist, *e;
	char path[4096];
	cJSON *root = NULL;
	int r;

	if ((r = trainer_state_read(dir, path, sizeof(path), &root, err)) < 0)
		return r;
	hist = cJSON_GetObjectItemCaseSensitive(root, "log_history");
	if (!hist) {
		r = -ENOENT;
		goto out;
	}
	if (!cJSON_IsArray(hist)) {
		r = gw_errf(err, -EBADMSG, "\"%s\": log_history is not an array", path);
		goto out;
	}
	/* Entries are in the order the trainer logged them; the last one at
	 * or before the step wins, so a resumed run's repeated steps take
	 * their latest values. */
	cJSON_ArrayForEach(e, hist) {
		int64_t s;
		double v;

		if (!cJSON_IsObject(e) || json_step(cJSON_GetObjectItemCaseSensitive(e, "step"), &s) < 0 ||
		    s > step)
			continue;
		if (log_number(e, "loss", &v) && s >= t.loss_step) {
			t.loss = v;
			t.loss_step = s;
		}
		if (log_number(e, "learning_rate", &v) && s >= t.lr_step) {
			t.lr = v;
			t.lr_step = s;
		}
	}
	r = t.loss_step < 0 && t.lr_step < 0 ? -ENOENT : 0;
	if (r == 0)
		*ret = t;
out:
	cJSON_Delete(root);
	return r;
}

size_t step_lower_bound(const void *base, size_t n, size_t size, size_t offset, int64_t step)
{
	const char *b = base;
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int64_t s;

		memcpy(&s, b + mid * size + offset, sizeof(s));
		if (s < step)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}
