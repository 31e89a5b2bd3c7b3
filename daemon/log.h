/*
 * log.h — the daemon's log: one line per event on stderr, with a level.
 *
 * Under systemd (JOURNAL_STREAM set) each line starts with the syslog
 * priority in angle brackets ("<3>"), which journald turns into the entry's
 * priority and strips; journald adds the time stamps.  Otherwise a line
 * reads "grokwatchd: warning: ...".  The level (config log_level, changed
 * on SIGHUP) is the process's only global state (STYLE.md habit 7).
 *
 * Threads: any thread may log; a line is written with one write(2), so
 * lines from two threads do not interleave.
 */
#ifndef GW_DAEMON_LOG_H
#define GW_DAEMON_LOG_H

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_set_level(int level);   /* enum log_level */
int log_get_level(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
