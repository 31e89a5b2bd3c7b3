/*
 * opts.c — the option tables of opts.h put to work.
 *
 * In order: usage errors and numbers; setting one option's field in the
 * target; getopt_long's tables built from one or two option tables, and
 * the messages for what getopt_long refuses; the parser over them; the
 * required-option check; then help: word wrapping, synopses and the
 * aligned list of options.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"
#include "out.h"

int opts_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("grokwatch: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(see grokwatch --help)\n", stderr);
	return 2;
}

int opts_parse_ll(const char *s, long long min, long long max, long long *ret)
{
	char *end;
	long long v;

	if (!s || !*s || *s == ' ' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end || errno || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* Set what option d says from val (NULL for a flag) in target.  Returns
 * 0, or 2 with the message printed. */
static int opt_set(const struct opt_def *d, const char *val, void *target, const char *where)
{
	char *field = (char *)target + d->off;
	long long v;
	size_t len = val ? strlen(val) : 0;

	if ((d->kind == OPT_STRING || d->kind == OPT_LIST) && d->max &&
	    (len < (size_t)d->min || len > (size_t)d->max))
		return opts_usage_error("--%s: expected %lld to %lld bytes", d->name, d->min,
					d->max);
	switch (d->kind) {
	case OPT_FLAG:
		*(bool *)field = true;
		break;
	case OPT_INT:
		if (opts_parse_ll(val, d->min, d->max, &v) < 0)
			return opts_usage_error("--%s '%s': expected %s, %lld to %lld", d->name, val,
						d->unit, d->min, d->max);
		*(long long *)field = v;
		break;
	case OPT_STRING:
		*(const char **)field = val;
		break;
	case OPT_LIST: {
		struct opt_list *l = (struct opt_list *)(void *)field;

		if (l->n == d->nmax && d->nmax == 1)
			return opts_usage_error("%s: one --%s", where ? where : "grokwatch", d->name);
		if (l->n == d->nmax)
			return opts_usage_error("more than %d --%s", d->nmax, d->name);
		l->v[l->n++] = val;
		break;
	}
	case OPT_HELP:
		break;
	}
	return 0;
}

/* ---- getopt_long's tables ----------------------------------------------------------- */

#define LONGOPTS_MAX 32

/* getopt_long's tables for the options of a and b (b may be NULL). */
struct getopt_tables {
	const struct opt_def *defs[LONGOPTS_MAX];
	struct option lo[LONGOPTS_MAX + 1];
	char shorts[2 * LONGOPTS_MAX + 3];
	int n;
};

static void tables_build(struct getopt_tables *t, const char *prefix, const struct opt_def *a,
			 const struct opt_def *b)
{
	size_t ns;

	memset(t, 0, sizeof(*t));
	snprintf(t->shorts, sizeof(t->shorts), "%s", prefix);
	ns = strlen(t->shorts);
	for (const struct opt_def *tab = a; tab; tab = tab == a ? b : NULL)
		for (const struct opt_def *d = tab; d->name; d++) {
			if (t->n == LONGOPTS_MAX) {
				fprintf(stderr, "%s:%d: more than %d options: raise LONGOPTS_MAX\n",
					__FILE__, __LINE__, LONGOPTS_MAX);
				abort();
			}
			t->defs[t->n] = d;
			t->lo[t->n] = (struct option){ d->name,
						       d->arg ? required_argument : no_argument,
						       NULL, d->letter ? d->letter : 256 + t->n };
			t->n++;
			if (d->letter) {
				t->shorts[ns++] = d->letter;
				if (d->arg)
					t->shorts[ns++] = ':';
			}
		}
	t->shorts[ns] = 0;
}

static const struct opt_def *tables_find(const struct getopt_tables *t, int c)
{
	if (c >= 256 && c - 256 < t->n)
		return t->defs[c - 256];
	for (int i = 0; i < t->n; i++)
		if (t->defs[i]->letter && t->defs[i]->letter == c)
			return t->defs[i];
	return NULL;
}

/* The usage error for getopt_long's '?' or ':' on argv[optind - 1]. */
static int getopt_error(const struct getopt_tables *t, int c, char **argv, const char *where)
{
	const char *a = argv[optind - 1];
	const struct opt_def *d = optopt ? tables_find(t, optopt) : NULL;
	char name[128];
	int matches = 0;

	if (c == ':' && d && !strncmp(a, "--", 2))
		return opts_usage_error("option '--%s' needs a value", d->name);
	if (c == ':')
		return opts_usage_error("option '%s' needs a value", a);
	if (optopt && optopt < 256 && !d)
		snprintf(name, sizeof(name), "-%c", optopt);
	else
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(a, "="), a);
	if (d && !strncmp(name, "--", 2))
		return opts_usage_error("option '--%s' takes no value", d->name);
	for (int i = 0; !strncmp(name, "--", 2) && i < t->n; i++)
		matches += !strncmp(t->lo[i].name, name + 2, strlen(name + 2));
	if (matches > 1)
		return opts_usage_error("%s%soption '%s' is ambiguous", where ? where : "",
					where ? ": " : "", name);
	if (!where)
		return opts_usage_error("option '%s' before the command, or unknown", name);
	return opts_usage_error("%s: unknown option '%s'", where, name);
}

/* ---- parsing ------------------------------------------------------------------------ */

int opts_parse(int argc, char **argv, const struct opt_def *a, const struct opt_def *b,
	       bool in_order, const char *where, void *target, int *ret_next)
{
	struct getopt_tables t;
	int c, r;

	/* '+': stop at the first argument not an option; ':': a missing
	 * value is ':', not '?'. */
	tables_build(&t, in_order ? "+:" : ":", a, b);
	opterr = 0;
	optind = 0; /* glibc: start afresh, on a new argv */
	while ((c = getopt_long(argc, argv, t.shorts, t.lo, NULL)) != -1) {
		const struct opt_def *d = c == '?' || c == ':' ? NULL : tables_find(&t, c);

		if (!d)
			return getopt_error(&t, c, argv, where);
		if (d->kind == OPT_HELP)
			return 1;
		if ((r = opt_set(d, d->arg ? optarg : NULL, target, where)) != 0)
			return r;
	}
	*ret_next = optind;
	return 0;
}

int opts_check_required(const struct opt_def *defs, const void *target, const char *where)
{
	for (const struct opt_def *d = defs; d->name; d++) {
		const char *field = (const char *)target + d->off;
		bool given = true; /* flags and numbers have defaults */

		if (d->kind == OPT_LIST)
			given = ((const struct opt_list *)(const void *)field)->n > 0;
		else if (d->kind == OPT_STRING)
			given = *(const char *const *)(const void *)field != NULL;
		if (d->required && !given)
			return opts_usage_error("%s: --%s is required", where, d->name);
	}
	return 0;
}

/* ---- help --------------------------------------------------------------------------- */

void opts_help_wrap(const char *text, int col, int indent, bool space)
{
	for (const char *p = text; *p;) {
		int len = (int)strcspn(p, " ");

		if (col > indent && col + space + len > OPTS_HELP_COLUMNS) {
			out_printf("\n%*s", indent, "");
			col = indent;
		} else if (space) {
			out_char(' ');
			col++;
		}
		for (int i = 0; i < len; i++)
			out_char(p[i] == OPTS_HELP_NBSP[0] ? ' ' : p[i]);
		col += len;
		p += len;
		space = *p == ' ';
		p += strspn(p, " ");
	}
	out_char('\n');
}

/* "[--name ARG]..." for a synopsis (the short name where there is one). */
static void opt_synopsis(const struct opt_def *d, char *buf, size_t size)
{
	char name[64];

	if (d->letter)
		snprintf(name, sizeof(name), "-%c", d->letter);
	else
		snprintf(name, sizeof(name), "--%s", d->name);
	snprintf(buf, size, "%s%s%s%s%s%s", d->required ? "" : "[", name,
		 d->arg ? OPTS_HELP_NBSP : "", d->arg ? d->arg : "",
		 d->required ? "" : "]", d->kind == OPT_LIST && d->nmax > 1 ? "..." : "");
}

void opts_synopsis(const struct opt_def *defs, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = 0;
	for (const struct opt_def *d = defs; d->name && n + 1 < size; d++) {
		if (d->kind == OPT_HELP)
			continue;
		if (n)
			buf[n++] = ' ';
		opt_synopsis(d, buf + n, size - n);
		n += strlen(buf + n);
	}
}

/* "  -e, --endpoint ENDPOINT", the length of the label. */
static int opt_label(const struct opt_def *d, char *buf, size_t size)
{
	char letter[8] = "";

	if (d->letter)
		snprintf(letter, sizeof(letter), "-%c, ", d->letter);
	return snprintf(buf, size, "  %s--%s%s%s", letter, d->name, d->arg ? " " : "",
			d->arg ? d->arg : "");
}

void opts_help_list(const struct opt_def *a, const struct opt_def *b)
{
	char label[128];
	int col = 0;

	for (const struct opt_def *tab = a; tab; tab = tab == a ? b : NULL)
		for (const struct opt_def *d = tab; d->name; d++) {
			int n = opt_label(d, label, sizeof(label));

			if (n + 2 > col)
				col = n + 2;
		}
	for (const struct opt_def *tab = a; tab; tab = tab == a ? b : NULL)
		for (const struct opt_def *d = tab; d->name; d++) {
			int n = opt_label(d, label, sizeof(label));

			out_printf("%s%*s", label, col - n, "");
			opts_help_wrap(d->help, col, col, false);
		}
}
