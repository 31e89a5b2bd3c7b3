/*
 * opts.h — the grokwatch tool's option tables: what one option is
 * (struct opt_def), the parser that runs getopt_long over a line with
 * tables built from them, and the pieces of --help generated from them.
 *
 * A table is an array of struct opt_def ending with a NULL name; each
 * row sets one field of a caller's struct (the target), found by offset.
 * The tables and the target are the caller's; this module keeps no state
 * but getopt's own (optind and friends, reset by each opts_parse).  Usage
 * errors are printed to stderr here, as "grokwatch: ..." and a pointer to
 * --help, and come back as 2; help text goes to stdout through out.h.
 * One thread (getopt's state is global).
 */
#ifndef GW_CLI_OPTS_H
#define GW_CLI_OPTS_H

#include <stdbool.h>
#include <stddef.h>

#define OPT_LIST_MAX 64 /* the most values of any repeatable option */

enum opt_kind {
	OPT_FLAG,   /* sets a bool */
	OPT_INT,    /* a long long, min to max */
	OPT_STRING, /* a const char *, its length min to max bytes (max 0: any) */
	OPT_LIST,   /* adds to a struct opt_list, at most nmax times */
	OPT_HELP,   /* asks for help: opts_parse returns 1 */
};

/* The values of a repeatable option, pointers into argv. */
struct opt_list {
	const char *v[OPT_LIST_MAX];
	int n;
};

/* One option, as getopt_long, the parser and --help see it. */
struct opt_def {
	const char *name;  /* the long name, without "--" */
	char letter;       /* the short one, or 0 */
	enum opt_kind kind;
	size_t off;        /* the field of the target it sets */
	long long min, max;
	int nmax;          /* OPT_LIST: how many times it may be given */
	bool required;     /* a usage error without it (opts_check_required) */
	const char *arg;   /* the value's name in --help; NULL takes no value */
	const char *unit;  /* OPT_INT: what the number counts, for its error */
	const char *help;  /* a line (wrapped to the terminal's 80 columns) */
};

#define OPT_END { .name = NULL }

/*
 * Parse argv[1..argc-1] with getopt_long against the options of tables a
 * and b (b may be NULL), setting the target's fields; argv[0] is skipped,
 * and argv may be permuted (non-options moved to the end) unless
 * in_order, which stops at the first argument that is not an option.
 * where names the line's part in messages: a command's name, or NULL
 * before the command.  Values are pointers into argv.  Returns 0 with
 * *ret_next the index of the first argument not an option; 1 for an
 * OPT_HELP option; 2 for a usage error (printed).  More than 32 options
 * in a and b together is a programming error (aborts with file and line).
 */
int opts_parse(int argc, char **argv, const struct opt_def *a, const struct opt_def *b,
	       bool in_order, const char *where, void *target, int *ret_next);

/* Returns 0, or 2 with the message (naming where) when a required option
 * of defs is not set in target. */
int opts_check_required(const struct opt_def *defs, const void *target, const char *where);

/* Print "grokwatch: MESSAGE" and a pointer to --help to stderr; returns 2
 * (the usage exit status). */
__attribute__((format(printf, 1, 2)))
int opts_usage_error(const char *fmt, ...);

/* A decimal integer, all of s, min to max (no sign '+', no leading
 * space).  Returns 0 with *ret set, or -EINVAL. */
int opts_parse_ll(const char *s, long long min, long long max, long long *ret);

/* ---- help --------------------------------------------------------------------- */

#define OPTS_HELP_COLUMNS 80
#define OPTS_HELP_NBSP "\037" /* a space opts_help_wrap does not break at */

/* Print text's words after column col (what is already on the line), the
 * first after a space if space, breaking lines before OPTS_HELP_COLUMNS
 * and starting each new one at column indent; ends the line. */
void opts_help_wrap(const char *text, int col, int indent, bool space);

/* The synopses of a table's options but OPT_HELP ones, as one string,
 * "[--name ARG]..." each (the short name where there is one; the value's
 * name after an OPTS_HELP_NBSP), truncated to size. */
void opts_synopsis(const struct opt_def *defs, char *buf, size_t size);

/* "  -e, --endpoint ENDPOINT  help..." for the options of tables a and b
 * (b may be NULL), their help aligned in one column. */
void opts_help_list(const struct opt_def *a, const struct opt_def *b);

#endif
