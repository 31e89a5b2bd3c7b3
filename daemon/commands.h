/*
 * commands.h — grokwatchd's subcommands.  Each takes the arguments after
 * its name (argv[0] is the subcommand) and returns the process exit code:
 * 0 success, 1 the input is unusable or the work failed, 2 usage error.
 * They print results on stdout and one message per error on stderr,
 * prefixed "grokwatchd: ".
 */
#ifndef GW_DAEMON_COMMANDS_H
#define GW_DAEMON_COMMANDS_H

int cmd_inspect(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_journal(int argc, char **argv);

#endif
