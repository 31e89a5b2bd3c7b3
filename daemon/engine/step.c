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

int step_from_trainer_state(const char *dir, int64_t *ret_step, struct gw_err *err)
{
	char path[4096];
	struct stat st;
	cJSON *root = NULL, *gs;
	char *buf = NULL;
	size_t len;
	int r;

	if (snprintf(path, sizeof(path), "%s/trainer_state.json", dir) >= (int)sizeof(path))
		return gw_errf(err, -ENAMETOOLONG, "\"%s\": path too long", dir);
	if (stat(path, &st) < 0 && errno == ENOENT)
		return -ENOENT;
	r = gw_file_read(path, TRAINER_STATE_MAX, &buf, &len, err);
	if (r < 0)
		return r == -ENOMEM || r == -EACCES || r == -EIO ? r : gw_err_prefix(err, -EBADMSG, "trainer state");
	root = cJSON_ParseWithLength(buf, len);
	if (!root || !cJSON_IsObject(root)) {
		r = gw_errf(err, -EBADMSG, "\"%s\": not a JSON object", path);
		goto out;
	}
	gs = cJSON_GetObjectItemCaseSensitive(root, "global_step");
	if (json_step(gs, ret_step) < 0) {
		r = gw_errf(err, -EBADMSG, "\"%s\": global_step is not a non-negative integer", path);
		goto out;
	}
	r = 0;
out:
	cJSON_Delete(root);
	free(buf);
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
