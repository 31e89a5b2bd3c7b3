/*
 * test_config_doc.c — man/grokwatchd.json.5 against the config table.
 *
 * The page documents every key of config_keys[] (and every field of an
 * object-array key, as "path[].field") as a ".TP" entry in its KEYS
 * section: a ".B path" line, then one summary line stating the type, the
 * default, the bounds and whether SIGHUP applies it, then prose.  This test
 * builds the summary each row of the table calls for and compares it with
 * the page's line, so a changed default, bound or reload flag, a new key or
 * a removed one fails here with the line the page should have.  The prose
 * is free.  Roff escapes in the summary are limited to \- (a minus or
 * hyphen that never breaks), undone before comparing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "config.h"

#define PAGE_MAX (1 << 20)
#define LINES_MAX 8192
#define SUMMARY_MAX 1024

struct page {
	char *text;
	char *line[LINES_MAX];
	int n;
	int keys_begin, keys_end; /* line range of the KEYS section */
};

static void page_load(struct page *p)
{
	char path[1024];
	const char *src = getenv("GW_SRC");
	FILE *f;
	size_t len;
	char *s, *o;

	snprintf(path, sizeof(path), "%s/man/grokwatchd.json.5", src && *src ? src : ".");
	f = fopen(path, "rb");
	if (!f)
		tap_fail(__FILE__, __LINE__, "cannot open \"%s\"", path);
	p->text = malloc(PAGE_MAX + 1);
	CHECK(p->text);
	len = fread(p->text, 1, PAGE_MAX, f);
	fclose(f);
	CHECK(len < PAGE_MAX);
	p->text[len] = 0;
	/* Undo \- in place. */
	for (s = o = p->text; *s; s++) {
		if (s[0] == '\\' && s[1] == '-')
			s++;
		*o++ = *s;
	}
	*o = 0;
	p->n = 0;
	p->keys_begin = p->keys_end = -1;
	for (s = p->text; *s && p->n < LINES_MAX;) {
		char *nl = strchr(s, '\n');

		p->line[p->n++] = s;
		if (!nl)
			break;
		*nl = 0;
		s = nl + 1;
	}
	for (int i = 0; i < p->n; i++) {
		if (!strncmp(p->line[i], ".SH ", 4) && p->keys_begin >= 0 && p->keys_end < 0)
			p->keys_end = i;
		if (!strcmp(p->line[i], ".SH KEYS"))
			p->keys_begin = i;
	}
	if (p->keys_begin < 0)
		tap_fail(__FILE__, __LINE__, "no \".SH KEYS\" section in the page");
	if (p->keys_end < 0)
		p->keys_end = p->n;
}

static void page_free(struct page *p)
{
	free(p->text);
}

/* Whole numbers in full (1000000000, not 1e+09), others as %g (0.05, 1e-06). */
static void num(char *b, size_t n, double v)
{
	if (v == floor(v) && fabs(v) < 1e18)
		snprintf(b, n, "%.0f", v);
	else
		snprintf(b, n, "%g", v);
}

/* The summary line the page must carry for row k; field = an object-array
 * element's field (required, no default, no reload clause of its own). */
static void summary(char *b, size_t n, const struct config_key *k, bool field)
{
	char lo[64], hi[64], def[512] = "";
	size_t used = 0;

	switch (k->type) {
	case CONFIG_STRING: {
		size_t max = k->max > 0 ? (size_t)k->max : CONFIG_STRING_MAX;

		if (!field)
			snprintf(def, sizeof(def), "default \"%s\"", k->def_str ? k->def_str : "");
		if (k->min > 0)
			used = (size_t)snprintf(b, n, "string, %s, %.0f to %zu bytes",
						field ? "required" : def, k->min, max);
		else
			used = (size_t)snprintf(b, n, "string, %s, at most %zu bytes",
						field ? "required" : def, max);
		break;
	}
	case CONFIG_INT:
	case CONFIG_DOUBLE:
		num(lo, sizeof(lo), k->min);
		num(hi, sizeof(hi), k->max);
		num(def, sizeof(def), k->def_num);
		used = (size_t)snprintf(b, n, "%s%s%s%s, %s%s, %s to %s",
					k->type == CONFIG_INT ? "integer" : "number",
					k->word ? " or \"" : "", k->word ? k->word : "",
					k->word ? "\"" : "",
					field ? "required" : "default ", field ? "" : def, lo, hi);
		break;
	case CONFIG_BOOL:
		used = (size_t)snprintf(b, n, "boolean, %s%s", field ? "required" : "default ",
					field ? "" : k->def_num ? "true" : "false");
		break;
	case CONFIG_ENUM:
		used = (size_t)snprintf(b, n, "one of");
		for (int i = 0; k->enums[i]; i++)
			used += (size_t)snprintf(b + used, n - used, "%s \"%s\"", i ? "," : "",
						 k->enums[i]);
		if (field)
			used += (size_t)snprintf(b + used, n - used, ", required");
		else
			used += (size_t)snprintf(b + used, n - used, ", default \"%s\"", k->def_str);
		break;
	case CONFIG_STRING_ARRAY: {
		char list[400] = "[";
		size_t d = 1;

		for (int i = 0; k->def_strv && k->def_strv[i] && d < sizeof(list); i++)
			d += (size_t)snprintf(list + d, sizeof(list) - d, "%s\"%s\"", i ? ", " : "",
					      k->def_strv[i]);
		if (d < sizeof(list))
			snprintf(list + d, sizeof(list) - d, "]");
		if (field)
			snprintf(def, sizeof(def), "required");
		else
			snprintf(def, sizeof(def), "default %s", list);
		if (k->min > 0)
			used = (size_t)snprintf(b, n, "array of %.0f to %.0f strings, %s", k->min, k->max,
						def);
		else
			used = (size_t)snprintf(b, n, "array of at most %.0f strings, %s", k->max, def);
		break;
	}
	case CONFIG_OBJECT_ARRAY:
		used = (size_t)snprintf(b, n, "array of at most %.0f objects, default []", k->max);
		break;
	}
	if (!field && used < n)
		snprintf(b + used, n - used, "; %s", k->reload ? "applied on reload" : "needs a restart");
}

/* The line after ".B path" in the KEYS section, or NULL. */
static const char *entry(const struct page *p, const char *path)
{
	char want[256];

	snprintf(want, sizeof(want), ".B %s", path);
	for (int i = p->keys_begin; i < p->keys_end - 1; i++)
		if (!strcmp(p->line[i], want))
			return p->line[i + 1];
	return NULL;
}

static int check_row(const struct page *p, const char *path, const struct config_key *k,
		     bool field)
{
	char want[SUMMARY_MAX];
	const char *got = entry(p, path);

	summary(want, sizeof(want), k, field);
	if (!got) {
		tap_note("no entry \".B %s\" in the KEYS section; it needs:", path);
		tap_note("  .TP");
		tap_note("  .B %s", path);
		tap_note("  %s", want);
		return 1;
	}
	if (strcmp(got, want)) {
		tap_note("%s: the summary line is", path);
		tap_note("  %s", got);
		tap_note("and should be");
		tap_note("  %s", want);
		return 1;
	}
	return 0;
}

static void test_every_key_documented(void)
{
	struct page p;
	int bad = 0, rows = 0;

	page_load(&p);
	for (const struct config_key *k = config_keys; k->path; k++) {
		rows++;
		bad += check_row(&p, k->path, k, false);
		if (k->type != CONFIG_OBJECT_ARRAY)
			continue;
		for (const struct config_key *f = k->fields; f->path; f++) {
			char path[256];

			snprintf(path, sizeof(path), "%s[].%s", k->path, f->path);
			bad += check_row(&p, path, f, true);
		}
	}
	page_free(&p);
	CHECK(rows > 30);
	CHECK_INT_EQ(bad, 0);
}

static bool is_documented_path(const char *path)
{
	for (const struct config_key *k = config_keys; k->path; k++) {
		size_t n = strlen(k->path);

		if (!strcmp(path, k->path))
			return true;
		if (k->type == CONFIG_OBJECT_ARRAY && !strncmp(path, k->path, n) &&
		    !strncmp(path + n, "[].", 3))
			for (const struct config_key *f = k->fields; f->path; f++)
				if (!strcmp(path + n + 3, f->path))
					return true;
	}
	return false;
}

/* Every ".TP" entry of the KEYS section names a key the table has. */
static void test_no_stale_entry(void)
{
	struct page p;
	int bad = 0, entries = 0;

	page_load(&p);
	for (int i = p.keys_begin; i < p.keys_end - 1; i++) {
		if (strcmp(p.line[i], ".TP") || strncmp(p.line[i + 1], ".B ", 3))
			continue;
		entries++;
		if (!is_documented_path(p.line[i + 1] + 3)) {
			tap_note("the page documents \"%s\", which is not in config_keys[]",
				 p.line[i + 1] + 3);
			bad++;
		}
	}
	page_free(&p);
	CHECK(entries > 30);
	CHECK_INT_EQ(bad, 0);
}

/* The checker itself: a summary it builds for known rows. */
static void test_summary_format(void)
{
	char b[SUMMARY_MAX];
	static const char *const e[] = { "a", "b", NULL };
	static const char *const sv[] = { "x-{step}", NULL };
	struct config_key k = { .path = "t", .type = CONFIG_INT, .def_num = 5000, .min = 0,
				.max = 86400000, .reload = true };

	summary(b, sizeof(b), &k, false);
	CHECK_STR_EQ(b, "integer, default 5000, 0 to 86400000; applied on reload");
	k = (struct config_key){ .path = "t", .type = CONFIG_DOUBLE, .def_num = 0.7, .min = 1e-6,
				 .max = 1 };
	summary(b, sizeof(b), &k, false);
	CHECK_STR_EQ(b, "number, default 0.7, 1e-06 to 1; needs a restart");
	k = (struct config_key){ .path = "t", .type = CONFIG_STRING, .min = 1, .max = 127 };
	summary(b, sizeof(b), &k, true);
	CHECK_STR_EQ(b, "string, required, 1 to 127 bytes");
	k = (struct config_key){ .path = "t", .type = CONFIG_STRING };
	summary(b, sizeof(b), &k, false);
	CHECK_STR_EQ(b, "string, default \"\", at most 4096 bytes; needs a restart");
	k = (struct config_key){ .path = "t", .type = CONFIG_ENUM, .enums = e, .def_str = "b" };
	summary(b, sizeof(b), &k, false);
	CHECK_STR_EQ(b, "one of \"a\", \"b\", default \"b\"; needs a restart");
	k = (struct config_key){ .path = "t", .type = CONFIG_STRING_ARRAY, .def_strv = sv, .min = 1,
				 .max = 32 };
	summary(b, sizeof(b), &k, false);
	CHECK_STR_EQ(b, "array of 1 to 32 strings, default [\"x-{step}\"]; needs a restart");
	k = (struct config_key){ .path = "t", .type = CONFIG_BOOL, .def_num = 1 };
	summary(b, sizeof(b), &k, false);
	CHECK_STR_EQ(b, "boolean, default true; needs a restart");
	k = (struct config_key){ .path = "t", .type = CONFIG_DOUBLE, .def_num = 3, .max = 1e9 };
	summary(b, sizeof(b), &k, false);
	CHECK_STR_EQ(b, "number, default 3, 0 to 1000000000; needs a restart");
	k = (struct config_key){ .path = "t", .type = CONFIG_ENUM, .enums = e, .def_str = "a" };
	summary(b, sizeof(b), &k, true);
	CHECK_STR_EQ(b, "one of \"a\", \"b\", required");
	k = (struct config_key){ .path = "t", .type = CONFIG_STRING_ARRAY, .min = 1, .max = 256 };
	summary(b, sizeof(b), &k, true);
	CHECK_STR_EQ(b, "array of 1 to 256 strings, required");
}

/* The EXAMPLES section's configuration is one the daemon accepts, for the
 * instance it says (state_dir = the template's StateDirectory). */
static void test_example_parses(void)
{
	struct page p;
	struct config *c = NULL;
	struct gw_err err = { 0 };
	char *json = NULL;
	size_t len = 0, cap = 0;
	int i, ex = -1;

	page_load(&p);
	for (i = 0; i < p.n; i++)
		if (!strcmp(p.line[i], ".SH EXAMPLES"))
			ex = i;
	CHECK(ex >= 0);
	for (i = ex; i < p.n && strcmp(p.line[i], ".EX"); i++)
		;
	CHECK(i < p.n);
	for (i++; i < p.n && strcmp(p.line[i], ".EE"); i++) {
		size_t n = strlen(p.line[i]);

		CHECK(p.line[i][0] != '.');
		if (len + n + 2 > cap) {
			cap = (len + n + 2) * 2;
			json = realloc(json, cap);
			CHECK(json);
		}
		memcpy(json + len, p.line[i], n);
		len += n;
		json[len++] = '\n';
	}
	CHECK(i < p.n);
	CHECK(len > 0);
	if (config_parse("EXAMPLES", json, len, &c, &err) < 0)
		tap_fail(__FILE__, __LINE__, "the example is refused: %s", err.msg);
	CHECK_STR_EQ(c->run, "myrun");
	CHECK_STR_EQ(c->state_dir, "/var/lib/grokwatch/myrun");
	CHECK(c->watch.root[0] == '/');
	CHECK(c->probe.path[0] == '/');
	config_free(c);
	free(json);
	page_free(&p);
}

static const struct tap_test tests[] = {
	{ "summary_format", test_summary_format },
	{ "every_key_documented", test_every_key_documented },
	{ "no_stale_entry", test_no_stale_entry },
	{ "example_parses", test_example_parses },
	{ NULL, NULL },
};

TAP_MAIN_DAEMON(tests)
