/*
 * main.c — grokwatchd's entry point: wiring only.  It picks the subcommand
 * and hands over, after hooking cJSON's allocator to the daemon's; each
 * subcommand lives in its own file (commands.h).
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "engine/json.h"

#ifndef GW_VERSION
#error "GW_VERSION comes from the VERSION file through the Makefile"
#endif

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "run", cmd_run, "the service: watch, compute, keep and publish (foreground)" },
	{ "analyze", cmd_analyze, "compute the routing metrics of checkpoints once, with no daemon" },
	{ "inspect", cmd_inspect, "describe a checkpoint or safetensors file, or say why it is unusable" },
	{ "config", cmd_config, "print the config keys' defaults and documentation (json, markdown, man)" },
	{ "journal", cmd_journal, "check a state directory's journal, or move its damaged lines aside" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: grokwatchd COMMAND [ARGS]\n\n"
		   "Watches MoE pretraining checkpoints and computes routing-pathway metrics.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'grokwatchd COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv)
{
	/* Before anything parses or builds JSON: from here on cJSON aborts on
	 * out-of-memory like every other allocation (engine/json.h). */
	json_init();
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("grokwatchd %s\n", GW_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "grokwatchd: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
