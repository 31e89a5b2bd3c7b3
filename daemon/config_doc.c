/*
 * config_doc.c — the configuration's documentation, generated from the one
 * table (config.h's config_dump): the shipped config file, the README's key
 * table and the KEYS section of grokwatchd.json(5).  tools/config_docs.py
 * writes them in place (make docs) and checks them (make check).
 *
 * In order: value formatting shared by the three (defaults as JSON); the
 * JSON file, nesting objects along the dotted paths; the markdown table; the
 * man page's summary lines and entries; the entry point.
 */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- values ------------------------------------------------------------------ */

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* The shortest text that reads back as v, with ".0" on a whole number so
 * that it stays a JSON number of a double key ("1.0", "0.05"). */
static void json_double(FILE *f, double v)
{
	char b[40];

	for (int prec = 1; prec <= 17; prec++) {
		snprintf(b, sizeof(b), "%.*g", prec, v);
		if (strtod(b, NULL) == v)
			break;
	}
	fputs(b, f);
	if (!strpbrk(b, ".eEn"))
		fputs(".0", f);
}

/* The key's default as it is written in the shipped file. */
static void json_default(FILE *f, const struct config_key *k)
{
	switch (k->type) {
	case CONFIG_STRING:
	case CONFIG_ENUM:
		json_string(f, k->def_str ? k->def_str : "");
		break;
	case CONFIG_INT:
		fprintf(f, "%" PRId64, (int64_t)k->def_num);
		break;
	case CONFIG_DOUBLE:
		json_double(f, k->def_num);
		break;
	case CONFIG_BOOL:
		fputs(k->def_num ? "true" : "false", f);
		break;
	case CONFIG_STRING_ARRAY:
		fputc('[', f);
		for (int i = 0; k->def_strv && k->def_strv[i]; i++) {
			if (i)
				fputs(", ", f);
			json_string(f, k->def_strv[i]);
		}
		fputc(']', f);
		break;
	case CONFIG_OBJECT_ARRAY:
		fputs("[]", f);
		break;
	}
}

/* ---- the shipped file ---------------------------------------------------------- */

#define DEPTH_MAX 8

/* Every key at its default, objects opened and closed along the paths;
 * two-space indentation, arrays on one line. */
static void dump_json(FILE *f)
{
	const char *open[DEPTH_MAX]; /* components of the open objects */
	size_t open_len[DEPTH_MAX];
	bool any[DEPTH_MAX + 1] = { false };
	int depth = 0;

	fputc('{', f);
	for (const struct config_key *k = config_keys; k->path; k++) {
		const char *comp[DEPTH_MAX + 1];
		size_t len[DEPTH_MAX + 1];
		int n = 0, keep = 0;

		for (const char *p = k->path;; n++) {
			const char *dot = strchr(p, '.');

			GW_BUG_ON(n > DEPTH_MAX);
			comp[n] = p;
			len[n] = dot ? (size_t)(dot - p) : strlen(p);
			if (!dot) {
				n++;
				break;
			}
			p = dot + 1;
		}
		/* n - 1 object components, then the member's name. */
		while (keep < depth && keep < n - 1 && open_len[keep] == len[keep] &&
		       !memcmp(open[keep], comp[keep], len[keep]))
			keep++;
		while (depth > keep) {
			fprintf(f, "\n%*s}", 2 * depth, "");
			depth--;
		}
		while (depth < n - 1) {
			fprintf(f, "%s\n%*s\"%.*s\": {", any[depth] ? "," : "", 2 * depth + 2, "",
				(int)len[depth], comp[depth]);
			any[depth] = true;
			open[depth] = comp[depth];
			open_len[depth] = len[depth];
			depth++;
			any[depth] = false;
		}
		fprintf(f, "%s\n%*s\"%.*s\": ", any[depth] ? "," : "", 2 * depth + 2, "",
			(int)len[n - 1], comp[n - 1]);
		any[depth] = true;
		json_default(f, k);
	}
	while (depth > 0) {
		fprintf(f, "\n%*s}", 2 * depth, "");
		depth--;
	}
	fputs("\n}\n", f);
}

/* ---- the README's table ----------------------------------------------------------- */

/* Text for a table cell: | escaped, < and > as entities (GitHub would take
 * "<group>" for a tag). */
static void md_cell(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			fputs("\\|", f);
		else if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else
			fputc(*s, f);
	}
}

static void dump_markdown(FILE *f)
{
	fputs("<!-- generated from daemon/config.c by `grokwatchd config --dump markdown` "
	      "(make docs) -->\n", f);
	fputs("| key | default | SIGHUP | meaning |\n| --- | --- | --- | --- |\n", f);
	for (const struct config_key *k = config_keys; k->path; k++) {
		char *def = NULL;
		size_t n = 0;
		FILE *m = open_memstream(&def, &n);

		GW_BUG_ON(!m);
		json_default(m, k);
		fclose(m);
		fprintf(f, "| `%s` | `", k->path);
		md_cell(f, def);
		fprintf(f, "` | %s | ", k->reload ? "yes" : "");
		md_cell(f, k->help);
		fputs(" |\n", f);
		free(def);
	}
	fputs("<!-- end of the generated table -->\n", f);
}

/* ---- the man page's KEYS section ----------------------------------------------------- */

/* Text on a roff text line: \ as \e, every - as \- (a hyphen that does
 * not break; the page's summaries are compared with it undone), and \& in
 * front of a leading . or '. */
static void roff_text(FILE *f, const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", f);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", f);
		else if (*s == '-')
			fputs("\\-", f);
		else
			fputc(*s, f);
	}
}

/* Whole numbers in full (1000000000, not 1e+09), others as %g (0.05, 1e-06). */
static void num(char *b, size_t n, double v)
{
	if (v == floor(v) && fabs(v) < 1e18)
		snprintf(b, n, "%.0f", v);
	else
		snprintf(b, n, "%g", v);
}

/* The summary line of row k: type, default, bounds and, for a key (not an
 * object-array element's field, which is required), whether SIGHUP applies
 * it.  tests/unit/test_config_doc.c builds the same line on its own. */
static void summary(FILE *f, const struct config_key *k, bool field)
{
	char lo[64], hi[64], def[64];

	switch (k->type) {
	case CONFIG_STRING: {
		size_t max = k->max > 0 ? (size_t)k->max : CONFIG_STRING_MAX;

		fputs("string, ", f);
		if (field)
			fputs("required", f);
		else
			fprintf(f, "default \"%s\"", k->def_str ? k->def_str : "");
		if (k->min > 0)
			fprintf(f, ", %.0f to %zu bytes", k->min, max);
		else
			fprintf(f, ", at most %zu bytes", max);
		break;
	}
	case CONFIG_INT:
	case CONFIG_DOUBLE:
		num(lo, sizeof(lo), k->min);
		num(hi, sizeof(hi), k->max);
		num(def, sizeof(def), k->def_num);
		fprintf(f, "%s", k->type == CONFIG_INT ? "integer" : "number");
		if (k->word)
			fprintf(f, " or \"%s\"", k->word);
		fprintf(f, ", %s%s, %s to %s", field ? "required" : "default ", field ? "" : def, lo,
			hi);
		break;
	case CONFIG_BOOL:
		fprintf(f, "boolean, %s%s", field ? "required" : "default ",
			field ? "" : k->def_num ? "true" : "false");
		break;
	case CONFIG_ENUM:
		fputs("one of", f);
		for (int i = 0; k->enums[i]; i++)
			fprintf(f, "%s \"%s\"", i ? "," : "", k->enums[i]);
		if (field)
			fputs(", required", f);
		else
			fprintf(f, ", default \"%s\"", k->def_str);
		break;
	case CONFIG_STRING_ARRAY:
		if (k->min > 0)
			fprintf(f, "array of %.0f to %.0f strings, ", k->min, k->max);
		else
			fprintf(f, "array of at most %.0f strings, ", k->max);
		if (field) {
			fputs("required", f);
		} else {
			fputs("default ", f);
			json_default(f, k);
		}
		break;
	case CONFIG_OBJECT_ARRAY:
		fprintf(f, "array of at most %.0f objects, default []", k->max);
		break;
	}
	if (!field)
		fprintf(f, "; %s", k->reload ? "applied on reload" : "needs a restart");
}

static void man_entry(FILE *f, const char *path, const struct config_key *k, bool field)
{
	char *line = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&line, &n);

	GW_BUG_ON(!m);
	summary(m, k, field);
	fclose(m);
	fputs(".TP\n.B ", f);
	roff_text(f, path);
	fputc('\n', f);
	roff_text(f, line);
	fputs("\n.br\n", f);
	free(line);
	if (k->doc) {
		fprintf(f, "%s\n", k->doc);
	} else {
		/* The help line as a sentence. */
		char *h = gw_strdup(k->help);

		if (*h >= 'a' && *h <= 'z')
			*h = (char)(*h - 'a' + 'A');
		roff_text(f, h);
		fputs(h[0] && h[strlen(h) - 1] == '.' ? "\n" : ".\n", f);
		free(h);
	}
}

static void dump_man(FILE *f)
{
	int section = -1;

	fputs(".\\\" The KEYS section is generated from daemon/config.c's config_keys[]\n"
	      ".\\\" by `grokwatchd config --dump man` (make docs): edit the table.\n"
	      ".SH KEYS\n", f);
	for (const struct config_key *k = config_keys; k->path; k++) {
		int s = (int)config_key_section(k);

		if (s != section) {
			const struct config_section_info *si = &config_sections[s];

			section = s;
			if (!*si->name)
				fputs(".SS Top level\n", f);
			else if (si->title)
				fprintf(f, ".SS %s \\(em %s\n", si->name, si->title);
			else
				fprintf(f, ".SS %s\n", si->name);
			if (si->doc)
				fprintf(f, "%s\n", si->doc);
		}
		man_entry(f, k->path, k, false);
		if (k->type != CONFIG_OBJECT_ARRAY)
			continue;
		for (const struct config_key *fk = k->fields; fk->path; fk++) {
			char path[256];

			snprintf(path, sizeof(path), "%s[].%s", k->path, fk->path);
			man_entry(f, path, fk, true);
		}
	}
	fputs(".\\\" end of the generated KEYS section\n", f);
}

/* ---- entry point -------------------------------------------------------------------- */

const char *const config_dump_formats[] = { "json", "markdown", "man", NULL };

char *config_dump(enum config_dump_format format)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	GW_BUG_ON(!f);
	switch (format) {
	case CONFIG_DUMP_JSON: dump_json(f); break;
	case CONFIG_DUMP_MARKDOWN: dump_markdown(f); break;
	case CONFIG_DUMP_MAN: dump_man(f); break;
	}
	GW_BUG_ON(fclose(f) != 0);
	return text;
}
