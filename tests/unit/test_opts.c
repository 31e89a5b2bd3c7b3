/*
 * test_opts.c — the grokwatch tool's option parser (client/cli/opts.c)
 * with a table of its own: values after '=' and as the next argument,
 * the usage errors getopt_long's refusals become (missing value, unknown
 * option, a flag given a value, ambiguous abbreviations, values out of
 * range), in-order parsing up to a command, two tables at once, the
 * required check, and the synopsis the help is made from.  Usage errors
 * go to stderr; each case reads back what was printed there.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

#include "../tap.h"
#include "../../client/cli/opts.h"

struct target {
	bool flag, other;
	long long num;
	const char *name;
	struct opt_list items;
};

#define OFF(f) offsetof(struct target, f)

static const struct opt_def defs[] = {
	{ .name = "flag", .letter = 'f', .kind = OPT_FLAG, .off = OFF(flag), .help = "a flag" },
	{ .name = "num", .kind = OPT_INT, .off = OFF(num), .min = 1, .max = 100, .arg = "N",
	  .unit = "a number", .help = "a number" },
	{ .name = "name", .letter = 'n', .kind = OPT_STRING, .off = OFF(name), .min = 1, .max = 8,
	  .required = true, .arg = "S", .help = "a name" },
	{ .name = "item", .kind = OPT_LIST, .off = OFF(items), .nmax = 2, .arg = "I",
	  .help = "an item" },
	{ .name = "help", .letter = 'h', .kind = OPT_HELP, .help = "this text" },
	OPT_END,
};

static const struct opt_def more_defs[] = {
	{ .name = "other", .kind = OPT_FLAG, .off = OFF(other), .help = "another flag" },
	OPT_END,
};

/* What the last parse printed to stderr. */
static char err[1024];

static FILE *capture;
static int saved_stderr = -1;

/* From capture_begin to capture_end, stderr goes to err. */
static void capture_begin(void)
{
	capture = tmpfile();
	CHECK(capture != NULL);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	CHECK(saved_stderr >= 0 && dup2(fileno(capture), STDERR_FILENO) >= 0);
}

static void capture_end(void)
{
	size_t n;

	fflush(stderr);
	CHECK(dup2(saved_stderr, STDERR_FILENO) >= 0);
	close(saved_stderr);
	rewind(capture);
	n = fread(err, 1, sizeof(err) - 1, capture);
	err[n] = 0;
	fclose(capture);
}

/* opts_parse over the NULL-terminated args (args[0] the program), stderr
 * caught into err; *ret_next is -1 unless the parse succeeded.  The values
 * set in t point into static storage, valid until the next call. */
static int parse_tables(const struct opt_def *b, bool in_order, const char *where,
			struct target *t, int *ret_next, const char *const *args)
{
	static char store[16][64];
	char *argv[17];
	int argc = 0, r;

	for (; args[argc]; argc++) {
		CHECK_INT_LT(argc, 16);
		snprintf(store[argc], sizeof(store[argc]), "%s", args[argc]);
		argv[argc] = store[argc];
	}
	argv[argc] = NULL;
	memset(t, 0, sizeof(*t));
	*ret_next = -1;
	capture_begin();
	r = opts_parse(argc, argv, defs, b, in_order, where, t, ret_next);
	capture_end();
	return r;
}

static int parse(struct target *t, int *ret_next, const char *const *args)
{
	return parse_tables(NULL, false, "cmd", t, ret_next, args);
}

#define ARGS(...) ((const char *const[]){ "prog", __VA_ARGS__, NULL })

static void test_values(void)
{
	struct target t;
	int next;

	/* --opt=value, --opt value, -x value, and a flag. */
	CHECK_INT_EQ(parse(&t, &next, ARGS("--num=7", "--name", "abc", "--item", "x",
					   "--item=y", "-f")), 0);
	CHECK_INT_EQ(t.num, 7);
	CHECK_STR_EQ(t.name, "abc");
	CHECK_INT_EQ(t.items.n, 2);
	CHECK_STR_EQ(t.items.v[0], "x");
	CHECK_STR_EQ(t.items.v[1], "y");
	CHECK(t.flag);
	CHECK_INT_EQ(next, 8);
	CHECK_STR_EQ(err, "");

	CHECK_INT_EQ(parse(&t, &next, ARGS("-n", "short", "--num", "100")), 0);
	CHECK_STR_EQ(t.name, "short");
	CHECK_INT_EQ(t.num, 100);
	CHECK(!t.flag);
	/* A unique abbreviation is the option. */
	CHECK_INT_EQ(parse(&t, &next, ARGS("--nu=3", "--fl")), 0);
	CHECK_INT_EQ(t.num, 3);
	CHECK(t.flag);
}

static void test_arguments(void)
{
	struct target t;
	int next;

	/* Not in order: arguments move to the end, the options around them
	 * are all taken. */
	CHECK_INT_EQ(parse(&t, &next, ARGS("--num=7", "rest", "-f")), 0);
	CHECK_INT_EQ(next, 3);
	CHECK(t.flag);
	/* In order: the first argument ends the options (a command). */
	CHECK_INT_EQ(parse_tables(NULL, true, NULL, &t, &next, ARGS("-f", "tail", "--num", "3")),
		     0);
	CHECK_INT_EQ(next, 2);
	CHECK(t.flag);
	CHECK_INT_EQ(t.num, 0);
	/* "--" ends the options too. */
	CHECK_INT_EQ(parse(&t, &next, ARGS("--", "-f")), 0);
	CHECK_INT_EQ(next, 2);
	CHECK(!t.flag);
}

static void test_missing_value(void)
{
	struct target t;
	int next;

	CHECK_INT_EQ(parse(&t, &next, ARGS("--num")), 2);
	CHECK_STR_EQ(err, "grokwatch: option '--num' needs a value\n(see grokwatch --help)\n");
	CHECK_INT_EQ(next, -1);
	CHECK_INT_EQ(parse(&t, &next, ARGS("-f", "-n")), 2);
	CHECK_STR_EQ(err, "grokwatch: option '-n' needs a value\n(see grokwatch --help)\n");
	/* An abbreviation is named in full. */
	CHECK_INT_EQ(parse(&t, &next, ARGS("--it")), 2);
	CHECK_STR_HAS(err, "option '--item' needs a value");
}

static void test_unknown_option(void)
{
	struct target t;
	int next;

	CHECK_INT_EQ(parse(&t, &next, ARGS("--bogus=1")), 2);
	CHECK_STR_EQ(err, "grokwatch: cmd: unknown option '--bogus'\n(see grokwatch --help)\n");
	CHECK_INT_EQ(parse(&t, &next, ARGS("-z")), 2);
	CHECK_STR_HAS(err, "cmd: unknown option '-z'");
	/* Before the command (where NULL) it may be the command's. */
	CHECK_INT_EQ(parse_tables(NULL, true, NULL, &t, &next, ARGS("--other")), 2);
	CHECK_STR_HAS(err, "grokwatch: option '--other' before the command, or unknown");
	/* The second table's options are known. */
	CHECK_INT_EQ(parse_tables(more_defs, false, "cmd", &t, &next, ARGS("--other", "-f")), 0);
	CHECK(t.other && t.flag);
	/* "--n" is --num or --name. */
	CHECK_INT_EQ(parse(&t, &next, ARGS("--n=3")), 2);
	CHECK_STR_HAS(err, "grokwatch: cmd: option '--n' is ambiguous");
}

static void test_flag_given_value(void)
{
	struct target t;
	int next;

	CHECK_INT_EQ(parse(&t, &next, ARGS("--flag=yes")), 2);
	CHECK_STR_EQ(err, "grokwatch: option '--flag' takes no value\n(see grokwatch --help)\n");
	CHECK(!t.flag);
	/* An abbreviation is named in full here too. */
	CHECK_INT_EQ(parse(&t, &next, ARGS("--fl=1")), 2);
	CHECK_STR_HAS(err, "option '--flag' takes no value");
}

static void test_bad_values(void)
{
	struct target t;
	int next;

	CHECK_INT_EQ(parse(&t, &next, ARGS("--num=0")), 2);
	CHECK_STR_HAS(err, "grokwatch: --num '0': expected a number, 1 to 100\n");
	CHECK_INT_EQ(parse(&t, &next, ARGS("--num", "5x")), 2);
	CHECK_STR_HAS(err, "--num '5x': expected a number");
	CHECK_INT_EQ(parse(&t, &next, ARGS("--num=+5")), 2);
	CHECK_INT_EQ(parse(&t, &next, ARGS("--num=")), 2);
	CHECK_INT_EQ(parse(&t, &next, ARGS("--name=")), 2);
	CHECK_STR_HAS(err, "--name: expected 1 to 8 bytes");
	CHECK_INT_EQ(parse(&t, &next, ARGS("--name=123456789")), 2);
	CHECK_INT_EQ(parse(&t, &next, ARGS("--item=a", "--item=b", "--item=c")), 2);
	CHECK_STR_HAS(err, "grokwatch: more than 2 --item\n");
}

static void test_help(void)
{
	struct target t;
	int next;

	/* --help wins over what follows, even a usage error. */
	CHECK_INT_EQ(parse(&t, &next, ARGS("--num=3", "-h", "--bogus")), 1);
	CHECK_INT_EQ(t.num, 3);
	CHECK_STR_EQ(err, "");
	CHECK_INT_EQ(parse(&t, &next, ARGS("--help")), 1);
}

static void test_required(void)
{
	struct target t = { 0 };
	int r;

	CHECK_INT_EQ(opts_check_required(more_defs, &t, "cmd"), 0);
	t.name = "x";
	CHECK_INT_EQ(opts_check_required(defs, &t, "cmd"), 0);
	t.name = NULL;
	capture_begin();
	r = opts_check_required(defs, &t, "cmd");
	capture_end();
	CHECK_INT_EQ(r, 2);
	CHECK_STR_EQ(err, "grokwatch: cmd: --name is required\n(see grokwatch --help)\n");
}

static void test_synopsis(void)
{
	char buf[256];

	opts_synopsis(defs, buf, sizeof(buf));
	CHECK_STR_EQ(buf, "[-f] [--num" OPTS_HELP_NBSP "N] -n" OPTS_HELP_NBSP "S [--item"
			  OPTS_HELP_NBSP "I]...");
	/* Truncated, never past size. */
	opts_synopsis(defs, buf, 8);
	CHECK_STR_EQ(buf, "[-f] [-");
}

static void test_parse_ll(void)
{
	long long v = 42;

	CHECK_INT_EQ(opts_parse_ll("-5", -10, 10, &v), 0);
	CHECK_INT_EQ(v, -5);
	CHECK_INT_EQ(opts_parse_ll("11", -10, 10, &v), -EINVAL);
	CHECK_INT_EQ(opts_parse_ll(" 1", -10, 10, &v), -EINVAL);
	CHECK_INT_EQ(opts_parse_ll("99999999999999999999", 0, 10, &v), -EINVAL);
	CHECK_INT_EQ(opts_parse_ll(NULL, 0, 10, &v), -EINVAL);
	CHECK_INT_EQ(v, -5);
}

static const struct tap_test tests[] = {
	{ "values", test_values },
	{ "arguments", test_arguments },
	{ "missing_value", test_missing_value },
	{ "unknown_option", test_unknown_option },
	{ "flag_given_value", test_flag_given_value },
	{ "bad_values", test_bad_values },
	{ "help", test_help },
	{ "required", test_required },
	{ "synopsis", test_synopsis },
	{ "parse_ll", test_parse_ll },
	{ NULL, NULL },
};
TAP_MAIN(tests)
