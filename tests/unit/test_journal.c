/* test_journal.c — the durable history: append and replay, torn tails,
 * corruption, replacement and late steps, state files, kill -9. */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap.h"
#include "journal.h"

static const char *state_dir(void)
{
	static char d[600];

	snprintf(d, sizeof(d), "%s/state", tap_tmpdir());
	return d;
}

static const char *journal_file(void)
{
	static char p[700];

	snprintf(p, sizeof(p), "%s/state/journal.jsonl", tap_tmpdir());
	return p;
}

static struct journal *open_ok(void)
{
	struct journal *j = NULL;
	struct gw_err e = { "" };
	int r = journal_open(state_dir(), NULL, &j, &e);

	if (r != 0)
		tap_fail(__FILE__, __LINE__, "journal_open: %d %s", r, e.msg);
	return j;
}

static void append_json(struct journal *j, const char *json)
{
	cJSON *ev = cJSON_Parse(json);
	struct gw_err e = { "" };
	int r;

	CHECK(ev != NULL);
	r = journal_append(j, ev, &e);
	if (r != 0)
		tap_fail(__FILE__, __LINE__, "journal_append %s: %d %s", json, r, e.msg);
	cJSON_Delete(ev);
}

static void append_result(struct journal *j, long long step, double loss)
{
	char buf[200];

	snprintf(buf, sizeof(buf), "{\"kind\":\"result\",\"step\":%lld,\"loss\":%g}", step, loss);
	append_json(j, buf);
}

static char *read_all(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *buf = calloc(1, 1 << 20);
	size_t n;

	CHECK(f != NULL);
	n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	if (ret_len)
		*ret_len = n;
	return buf;
}

static void write_raw(const char *path, const char *text, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | flags, 0644);

	CHECK(fd >= 0);
	CHECK_INT_EQ(write(fd, text, strlen(text)), (long long)strlen(text));
	close(fd);
}

static double loss_of(const cJSON *r)
{
	return cJSON_GetObjectItemCaseSensitive(r, "loss")->valuedouble;
}

static void test_append_replay_round_trip(void)
{
	struct journal *j = open_ok();
	const struct series *s;
	const char *reason;
	int attempts;
	char *text;

	append_result(j, 100, 2.5);
	append_result(j, 300, 1.5);
	append_json(j, "{\"kind\":\"failed\",\"step\":200,\"reason\":\"config.json: no such file\","
		       "\"attempts\":4}");
	append_json(j, "{\"kind\":\"alert\",\"what\":\"plateau\",\"group\":\"math\"}");
	CHECK_INT_EQ(journal_size(j), 208);
	journal_free(j);

	/* The bytes on disk are one JSON object a line. */
	text = read_all(journal_file(), NULL);
	CHECK_STR_EQ(text, "{\"kind\":\"result\",\"step\":100,\"loss\":2.5}\n"
			   "{\"kind\":\"result\",\"step\":300,\"loss\":1.5}\n"
			   "{\"kind\":\"failed\",\"step\":200,\"reason\":\"config.json: no such file\",\"attempts\":4}\n"
			   "{\"kind\":\"alert\",\"what\":\"plateau\",\"group\":\"math\"}\n");
	free(text);

	j = open_ok();
	CHECK_INT_EQ(journal_torn_bytes(j), 0);
	s = journal_results(j);
	CHECK_INT_EQ(series_count(s), 2);
	CHECK_INT_EQ(series_step_at(s, 0), 100);
	CHECK_INT_EQ(series_step_at(s, 1), 300);
	CHECK_NEAR(loss_of(journal_result(j, 300)), 1.5, 0);
	CHECK(journal_is_done(j, 100));
	CHECK(!journal_is_done(j, 200));
	CHECK_INT_EQ(journal_failure(j, 200, &reason, &attempts), 0);
	CHECK_STR_EQ(reason, "config.json: no such file");
	CHECK_INT_EQ(attempts, 4);
	CHECK_INT_EQ(journal_failure(j, 100, NULL, NULL), -ENOENT);
	CHECK_INT_EQ(cJSON_GetArraySize(journal_alerts(j)), 1);
	CHECK_STR_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(journal_alerts(j), 0), "what")->valuestring,
		     "plateau");
	/* A later result clears the failure, in memory and after replay. */
	append_result(j, 200, 2.0);
	CHECK_INT_EQ(journal_failure(j, 200, NULL, NULL), -ENOENT);
	journal_free(j);
	j = open_ok();
	CHECK_INT_EQ(series_count(journal_failures(j)), 0);
	CHECK_INT_EQ(series_count(journal_results(j)), 3);
	journal_free(j);
}

/* A second result for a step replaces the first; a late older step takes
 * its place in step order. */
static void test_replace_and_late_step(void)
{
	struct journal *j = open_ok();
	const struct series *s;

	append_result(j, 1000, 3.0);
	append_result(j, 3000, 2.0);
	append_result(j, 1000, 2.75);
	append_result(j, 2000, 2.5);
	s = journal_results(j);
	CHECK_INT_EQ(series_count(s), 3);
	CHECK_INT_EQ(series_step_at(s, 1), 2000);
	CHECK_NEAR(loss_of(journal_result(j, 1000)), 2.75, 0);
	journal_free(j);
	j = open_ok();
	s = journal_results(j);
	CHECK_INT_EQ(series_count(s), 3);
	CHECK_INT_EQ(series_step_at(s, 0), 1000);
	CHECK_INT_EQ(series_step_at(s, 1), 2000);
	CHECK_INT_EQ(series_step_at(s, 2), 3000);
	CHECK_NEAR(loss_of(series_at(s, 0)), 2.75, 0);
	journal_free(j);
}

static void check_torn_repaired(const char *tail, size_t tail_len)
{
	struct journal *j = open_ok();
	char *text;
	size_t len;

	append_result(j, 1, 1.0);
	append_result(j, 2, 2.0);
	journal_free(j);
	write_raw(journal_file(), tail, O_APPEND);

	j = open_ok();
	CHECK_INT_EQ(journal_torn_bytes(j), tail_len);
	CHECK_INT_EQ(series_count(journal_results(j)), 2);
	append_result(j, 3, 3.0);
	journal_free(j);
	text = read_all(journal_file(), &len);
	CHECK_STR_EQ(text, "{\"kind\":\"result\",\"step\":1,\"loss\":1}\n"
			   "{\"kind\":\"result\",\"step\":2,\"loss\":2}\n"
			   "{\"kind\":\"result\",\"step\":3,\"loss\":3}\n");
	free(text);
	j = open_ok();
	CHECK_INT_EQ(series_count(journal_results(j)), 3);
	CHECK_INT_EQ(journal_torn_bytes(j), 0);
	journal_free(j);
}

static void test_torn_last_line_no_newline(void)
{
	check_torn_repaired("{\"kind\":\"result\",\"st", 20);
}

static void test_torn_last_line_invalid_json(void)
{
	/* Newline-terminated garbage on the last line: the zero blocks a
	 * power loss can leave are like this. */
	check_torn_repaired("{\"kind\":\"res\n", 13);
}

static void test_torn_complete_json_without_newline(void)
{
	/* Valid JSON but no newline: the write never finished, so the record
	 * was never acknowledged; it does not count. */
	check_torn_repaired("{\"kind\":\"result\",\"step\":9}", 26);
}

static void test_corrupt_middle_line_refused(void)
{
	struct journal *j = NULL;
	struct gw_err e;
	char want[800];

	mkdir(state_dir(), 0750);
	write_raw(journal_file(),
		  "{\"kind\":\"result\",\"step\":1}\n"
		  "{\"kind\":\"result\",\"step\":2}\n"
		  "{\"kind\":\"result\",\"step\":3,]\n"
		  "{\"kind\":\"result\",\"step\":4}\n",
		  O_TRUNC);
	CHECK_INT_EQ(journal_open(state_dir(), NULL, &j, &e), -EBADMSG);
	CHECK(j == NULL);
	snprintf(want, sizeof(want), "\"%s\" line 3: not valid JSON", journal_file());
	CHECK_STR_EQ(e.msg, want);

	/* A valid JSON line that is not an event is refused the same way. */
	write_raw(journal_file(), "{\"kind\":\"result\",\"step\":1}\n{\"kind\":\"result\",\"step\":-2}\n{}\n",
		  O_TRUNC);
	CHECK_INT_EQ(journal_open(state_dir(), NULL, &j, &e), -EBADMSG);
	snprintf(want, sizeof(want), "\"%s\" line 2: \"step\" -2 is not an integer in [0, 999999999999999]",
		 journal_file());
	CHECK_STR_EQ(e.msg, want);
	write_raw(journal_file(), "\n{\"kind\":\"result\",\"step\":1}\n", O_TRUNC);
	CHECK_INT_EQ(journal_open(state_dir(), NULL, &j, &e), -EBADMSG);
	CHECK_STR_HAS(e.msg, "line 1: not valid JSON");
	write_raw(journal_file(), "{\"kind\":\"snapshot\"}\n{\"kind\":\"alert\"}\n", O_TRUNC);
	CHECK_INT_EQ(journal_open(state_dir(), NULL, &j, &e), -EBADMSG);
	CHECK_STR_HAS(e.msg, "line 1: unknown kind \"snapshot\"");
}

static void test_limits(void)
{
	struct journal_limits lim = { .line_bytes = 64, .file_bytes = 120 };
	struct journal *j = NULL;
	struct gw_err e;
	cJSON *ev;
	char big[200];

	mkdir(state_dir(), 0750);
	/* A newline-terminated middle line over the limit is refused... */
	snprintf(big, sizeof(big), "{\"kind\":\"alert\",\"pad\":\"%070d\"}\n{\"kind\":\"alert\"}\n", 0);
	write_raw(journal_file(), big, O_TRUNC);
	CHECK_INT_EQ(journal_open(state_dir(), &lim, &j, &e), -EFBIG);
	CHECK_STR_HAS(e.msg, "line 1: longer than 64 bytes");
	/* ...but an over-long torn tail (110 bytes in all) is just a torn tail. */
	snprintf(big, sizeof(big), "{\"kind\":\"alert\"}\n{\"kind\":\"alert\",\"pad\":\"%070d", 0);
	write_raw(journal_file(), big, O_TRUNC);
	CHECK_INT_EQ(journal_open(state_dir(), &lim, &j, &e), 0);
	CHECK_INT_EQ(journal_size(j), 17);
	CHECK_INT_EQ(journal_torn_bytes(j), 93);
	/* Appends over the line or file limit are refused and change nothing:
	 * {"kind":"alert","p":""} plus a newline is 24 bytes, plus the pad. */
	snprintf(big, sizeof(big), "{\"kind\":\"alert\",\"p\":\"%050d\"}", 0);
	ev = cJSON_Parse(big);
	CHECK_INT_EQ(journal_append(j, ev, &e), -EFBIG);
	CHECK_STR_HAS(e.msg, "a record of 74 bytes, more than the limit of 64");
	cJSON_Delete(ev);
	snprintf(big, sizeof(big), "{\"kind\":\"alert\",\"p\":\"%036d\"}", 0);
	ev = cJSON_Parse(big);
	CHECK_INT_EQ(journal_append(j, ev, &e), 0);
	CHECK_INT_EQ(journal_size(j), 17 + 60);
	CHECK_INT_EQ(journal_append(j, ev, &e), -EFBIG);
	CHECK_STR_HAS(e.msg, "full (limit 120 bytes)");
	CHECK_INT_EQ(journal_size(j), 77);
	cJSON_Delete(ev);
	journal_free(j);
	/* A file over the file limit is refused at open. */
	lim.file_bytes = 50;
	CHECK_INT_EQ(journal_open(state_dir(), &lim, &j, &e), -EFBIG);
	CHECK_STR_HAS(e.msg, "77 bytes, more than the limit of 50");
}

static void test_bad_events_refused(void)
{
	struct journal *j = open_ok();
	struct gw_err e;
	static const char *const bad[] = {
		"[1]", "{\"step\":1}", "{\"kind\":\"result\"}", "{\"kind\":\"result\",\"step\":1.5}",
		"{\"kind\":\"failed\",\"step\":1}", "{\"kind\":\"failed\",\"step\":1,\"reason\":\"x\",\"attempts\":0}",
		"{\"kind\":7}", NULL,
	};

	for (int i = 0; bad[i]; i++) {
		cJSON *ev = cJSON_Parse(bad[i]);

		CHECK_INT_EQ(journal_append(j, ev, &e), -EINVAL);
		CHECK_STR_HAS(e.msg, "event refused: ");
		cJSON_Delete(ev);
	}
	CHECK_INT_EQ(journal_size(j), 0);
	journal_free(j);
}

static void test_second_open_is_busy(void)
{
	struct journal *j = open_ok(), *k = NULL;
	struct gw_err e;
	pid_t pid;
	int status;

	/* flock is per open file description, so a second open in this
	 * process conflicts too; check from a child as a second daemon would. */
	pid = fork();
	if (pid == 0)
		_exit(journal_open(state_dir(), NULL, &k, &e) == -EBUSY ? 0 : 1);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	journal_free(j);
}

static void test_state_file_atomic_replace(void)
{
	struct journal *j = open_ok();
	struct gw_err e;
	char *text = NULL, path[700];
	size_t len;
	struct stat st;

	CHECK_INT_EQ(journal_read_state(j, "status.json", 1024, &text, &len, &e), -ENOENT);
	CHECK_INT_EQ(journal_write_state(j, "status.json", "{\"a\":1}", 7, &e), 0);
	CHECK_INT_EQ(journal_write_state(j, "status.json", "{\"a\":22}", 8, &e), 0);
	CHECK_INT_EQ(journal_read_state(j, "status.json", 1024, &text, &len, &e), 0);
	CHECK_STR_EQ(text, "{\"a\":22}");
	CHECK_INT_EQ(len, 8);
	free(text);
	CHECK_INT_EQ(journal_read_state(j, "status.json", 4, &text, &len, &e), -EFBIG);
	CHECK_INT_EQ(journal_write_state(j, "../escape", "x", 1, &e), -EINVAL);
	CHECK_INT_EQ(journal_write_state(j, ".hidden", "x", 1, &e), -EINVAL);
	CHECK_INT_EQ(journal_write_state(j, JOURNAL_FILE, "x", 1, &e), -EINVAL);
	journal_free(j);

	/* A crash between writing the temporary file and the rename leaves
	 * it behind: readers ignore it and the next open removes it. */
	snprintf(path, sizeof(path), "%s/.status.json.tmp", state_dir());
	write_raw(path, "{\"a\":333", O_TRUNC);
	j = open_ok();
	CHECK(stat(path, &st) < 0 && errno == ENOENT);
	CHECK_INT_EQ(journal_read_state(j, "status.json", 1024, &text, &len, &e), 0);
	CHECK_STR_EQ(text, "{\"a\":22}");
	free(text);
	journal_free(j);
}

static void test_routing_dir(void)
{
	struct journal *j = open_ok();
	struct gw_err e;
	char *path = NULL, want[700];
	struct stat st;

	CHECK_INT_EQ(journal_routing_dir(j, 10000, &path, &e), 0);
	snprintf(want, sizeof(want), "%s/routing/10000", state_dir());
	CHECK_STR_EQ(path, want);
	CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
	free(path);
	CHECK_INT_EQ(journal_routing_dir(j, 10000, &path, &e), 0); /* again: fine */
	free(path);
	CHECK_INT_EQ(journal_routing_dir(j, -1, &path, &e), -EINVAL);
	journal_free(j);
}

/* A child appends and acknowledges each append on a pipe; the parent
 * kills it with SIGKILL mid-stream, then replays: every acknowledged
 * record is there, at most one more, in order, none twice. */
static void test_kill_9_loses_nothing_acknowledged(void)
{
	int fds[2], acked = 0, status;
	struct journal *j;
	pid_t pid;
	int v;

	mkdir(state_dir(), 0750);
	CHECK(pipe(fds) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct journal *cj = NULL;
		struct gw_err e;

		close(fds[0]);
		if (journal_open(state_dir(), NULL, &cj, &e) < 0)
			_exit(3);
		for (int i = 1;; i++) {
			char buf[128];
			cJSON *ev;

			snprintf(buf, sizeof(buf), "{\"kind\":\"result\",\"step\":%d,\"pad\":\"%040d\"}", i, i);
			ev = cJSON_Parse(buf);
			if (journal_append(cj, ev, &e) < 0)
				_exit(4);
			cJSON_Delete(ev);
			if (write(fds[1], &i, sizeof(i)) != sizeof(i))
				_exit(5);
		}
	}
	close(fds[1]);
	while (acked < 25 && read(fds[0], &v, sizeof(v)) == sizeof(v))
		acked = v;
	CHECK(kill(pid, SIGKILL) == 0);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* Acknowledgements the parent had not read yet still count. */
	while (read(fds[0], &v, sizeof(v)) == sizeof(v))
		acked = v;
	close(fds[0]);

	j = open_ok();
	{
		const struct series *s = journal_results(j);
		size_t n = series_count(s);

		CHECK(n >= (size_t)acked && n <= (size_t)acked + 1);
		for (size_t i = 0; i < n; i++)
			CHECK_INT_EQ(series_step_at(s, i), (long long)i + 1);
		tap_note("acknowledged %d, replayed %zu, torn tail %llu bytes", acked, n,
			 (unsigned long long)journal_torn_bytes(j));
	}
	journal_free(j);
}

/* A child that dies in the middle of writing a record (simulated by
 * writing half a line and _exit without cleanup). */
static void test_exit_mid_write(void)
{
	pid_t pid;
	int status;
	struct journal *j;

	mkdir(state_dir(), 0750);
	pid = fork();
	if (pid == 0) {
		struct journal *cj = NULL;
		struct gw_err e;
		cJSON *ev = cJSON_Parse("{\"kind\":\"result\",\"step\":5}");
		int fd;

		if (journal_open(state_dir(), NULL, &cj, &e) < 0 || journal_append(cj, ev, &e) < 0)
			_exit(3);
		cJSON_Delete(ev);
		fd = open(journal_file(), O_WRONLY | O_APPEND);
		if (fd < 0 || write(fd, "{\"kind\":\"result\",\"step\":6,\"lo", 30) != 30)
			_exit(4);
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK_INT_EQ(WEXITSTATUS(status), 0);
	j = open_ok();
	CHECK_INT_EQ(series_count(journal_results(j)), 1);
	CHECK_INT_EQ(journal_torn_bytes(j), 30);
	CHECK(journal_is_done(j, 5));
	CHECK(!journal_is_done(j, 6));
	journal_free(j);
}

static const struct tap_test tests[] = {
	{ "append_replay_round_trip", test_append_replay_round_trip },
	{ "replace_and_late_step", test_replace_and_late_step },
	{ "torn_last_line_no_newline", test_torn_last_line_no_newline },
	{ "torn_last_line_invalid_json", test_torn_last_line_invalid_json },
	{ "torn_complete_json_without_newline", test_torn_complete_json_without_newline },
	{ "corrupt_middle_line_refused", test_corrupt_middle_line_refused },
	{ "limits", test_limits },
	{ "bad_events_refused", test_bad_events_refused },
	{ "second_open_is_busy", test_second_open_is_busy },
	{ "state_file_atomic_replace", test_state_file_atomic_replace },
	{ "routing_dir", test_routing_dir },
	{ "kill_9_loses_nothing_acknowledged", test_kill_9_loses_nothing_acknowledged },
	{ "exit_mid_write", test_exit_mid_write },
	{ NULL, NULL },
};
TAP_MAIN_DAEMON(tests)
