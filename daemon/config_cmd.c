/*
 * config_cmd.c — `grokwatchd config --dump FORMAT`: print the documentation
 * the config table generates (config.h's config_dump), the source of the
 * shipped config file, the README's key table and grokwatchd.json(5)'s KEYS
 * section.  Options, then the one dump.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: grokwatchd config --dump json|markdown|man\n"
		"\n"
		"Print what the daemon's config table documents:\n"
		"  json       every key at its default (the shipped config/grokwatchd.json)\n"
		"  markdown   the README's table of keys, defaults and what SIGHUP applies\n"
		"  man        the KEYS section of grokwatchd.json(5), in roff\n"
		"`make docs` writes the three in place; `make check` fails when one differs.\n"
		"\n"
		"Options:\n"
		"  --dump FORMAT   json, markdown or man\n"
		"  -h, --help      this text\n");
}

int cmd_config(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dump", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *format = NULL;
	char *text;
	int c, fmt = -1;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': format = optarg; break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "grokwatchd: config: unknown option or missing value in '%s'\n",
				argv[optind - 1]);
			fprintf(stderr, "Try 'grokwatchd config --help'.\n");
			return 2;
		}
	}
	if (!format || optind < argc) {
		usage(stderr);
		return 2;
	}
	for (int i = 0; config_dump_formats[i]; i++)
		if (!strcmp(format, config_dump_formats[i]))
			fmt = i;
	if (fmt < 0) {
		fprintf(stderr, "grokwatchd: config: --dump takes json, markdown or man, not '%s'\n",
			format);
		return 2;
	}
	text = config_dump((enum config_dump_format)fmt);
	fputs(text, stdout);
	free(text);
	if (fflush(stdout) != 0) {
		perror("grokwatchd: config: stdout");
		return 1;
	}
	return 0;
}
