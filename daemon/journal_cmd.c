/*
 * journal_cmd.c — `grokwatchd journal check|repair STATE_DIR [-c FILE]`:
 * the way out of a journal damaged in the middle, which stops start-up
 * (journal.h).  check lists every damaged line and exits 1 if there is
 * one; repair moves them aside into a dated file in STATE_DIR and keeps
 * every good record (journal_repair).  -c takes the limits the daemon
 * would use (limits.journal_line_bytes, limits.journal_bytes).  Options,
 * then the one action.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "journal.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: grokwatchd journal check|repair STATE_DIR [-c FILE]\n"
		"\n"
		"A journal damaged in the middle (garbage, an over-long line) stops the daemon at\n"
		"start-up.  With the daemon stopped:\n"
		"  check    list each damaged line (file, line, byte offset, fault); exit 1 if any\n"
		"  repair   move the damaged lines into STATE_DIR/journal-damaged-TIME.jsonl and\n"
		"           keep every good record in journal.jsonl (refused while a daemon runs)\n"
		"A torn last record (a crash mid-write) is reported; start-up removes it itself,\n"
		"and repair moves it aside with the rest.\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE   the daemon's config, for limits.journal_line_bytes and\n"
		"                      limits.journal_bytes (default: their defaults)\n"
		"  -h, --help          this text\n");
}

static void on_report(void *ud, bool damaged, const char *msg)
{
	(void)ud;
	printf("%s: %s\n", damaged ? "damaged" : "torn", msg);
}

int cmd_journal(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct journal_limits lim = { 0, 0 };
	struct journal_check_out out;
	struct gw_err err = { "" };
	const char *cfg_path = NULL, *action, *dir;
	struct config *cfg = NULL;
	char *aside = NULL;
	bool repair;
	int c, r;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': cfg_path = optarg; break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "grokwatchd: journal: unknown option or missing value in '%s'\n",
				argv[optind - 1]);
			fprintf(stderr, "Try 'grokwatchd journal --help'.\n");
			return 2;
		}
	}
	if (argc - optind != 2 || (strcmp(argv[optind], "check") && strcmp(argv[optind], "repair"))) {
		usage(stderr);
		return 2;
	}
	action = argv[optind];
	dir = argv[optind + 1];
	repair = !strcmp(action, "repair");
	if (cfg_path) {
		if (config_load(cfg_path, &cfg, &err) < 0) {
			fprintf(stderr, "grokwatchd: %s\n", err.msg);
			return 1;
		}
		lim.line_bytes = (size_t)cfg->limits.journal_line_bytes;
		lim.file_bytes = (uint64_t)cfg->limits.journal_bytes;
		config_free(cfg);
	}
	r = repair ? journal_repair(dir, &lim, on_report, NULL, &out, &aside, &err)
		   : journal_check(dir, &lim, on_report, NULL, &out, &err);
	if (r < 0) {
		fprintf(stderr, "grokwatchd: journal %s: %s\n", action, err.msg);
		return 1;
	}
	if (repair && aside)
		printf("moved %" PRIu64 " line%s to \"%s\"; %" PRIu64 " good records kept\n", out.moved,
		       out.moved == 1 ? "" : "s", aside,
		       out.lines - out.moved);
	else if (repair)
		printf("\"%s/%s\": %" PRIu64 " lines, nothing to repair\n", dir, JOURNAL_FILE,
		       out.lines);
	else
		printf("\"%s/%s\": %" PRIu64 " lines, %" PRIu64 " damaged%s\n", dir, JOURNAL_FILE,
		       out.lines, out.damaged, out.torn ? ", a torn last record" : "");
	free(aside);
	if (fflush(stdout) != 0) {
		perror("grokwatchd: journal: stdout");
		return 1;
	}
	return !repair && out.damaged ? 1 : 0;
}
