/*
 * file.c — the file helpers of file.h: gw_file_read (one open, fstat and
 * read loop for the small whole files the engine and the daemon parse, so
 * that the checks — regular file, size limit, file changing under us — are
 * written once), then the writers (gw_write_all, gw_file_write_atomic),
 * then the path strings.
 */
#include "engine/file.h"
#include "engine/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int gw_file_read(const char *path, size_t max, char **ret_text, size_t *ret_len,
		 struct gw_err *err)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0, size;
	int fd, r;

	/* O_NONBLOCK: a FIFO must not hang the open; no effect on files. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return gw_errf(err, -errno, "\"%s\": %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		r = gw_errf(err, -errno, "\"%s\": %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = gw_errf(err, -EINVAL, "\"%s\": not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		r = gw_errf(err, -EFBIG, "\"%s\": %lld bytes, more than the limit of %zu", path,
			    (long long)st.st_size, max);
		goto out;
	}
	size = (size_t)st.st_size;
	/* Read one byte past the size seen, to notice a file that grew. */
	buf = gw_malloc(size + 2);
	for (;;) {
		ssize_t n = read(fd, buf + got, size + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = gw_errf(err, -errno, "\"%s\": %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > size)
			break;
	}
	if (got != size) {
		r = gw_errf(err, -EAGAIN, "\"%s\": changed while being read", path);
		goto out;
	}
	buf[got] = '\0';
	*ret_text = buf;
	*ret_len = got;
	buf = NULL;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

int gw_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t k = gw_sys.write(fd, p, len > (1u << 30) ? (1u << 30) : len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		len -= (size_t)k;
	}
	return 0;
}

int gw_file_write_atomic(const char *dir, const char *name, const void *buf, size_t len,
			 struct gw_err *err)
{
	const struct gw_piece one = { buf, len };

	return gw_file_write_atomicv(dir, name, &one, 1, 0640, err);
}

int gw_file_write_atomicv(const char *dir, const char *name, const struct gw_piece *pieces,
			  size_t n, mode_t mode, struct gw_err *err)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int fd = -1, dfd = -1, r;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= (int)sizeof(tmp))
		return gw_errf(err, -ENAMETOOLONG, "\"%s/%s\": path too long", dir, name);
	fd = gw_sys.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return gw_errf(err, -errno, "\"%s\": %s", tmp, strerror(errno));
	r = 0;
	for (size_t i = 0; i < n && r == 0; i++)
		r = gw_write_all(fd, pieces[i].buf, pieces[i].len);
	if (r < 0 || (gw_sys.fsync(fd) < 0 && (r = -errno))) {
		r = gw_errf(err, r, "\"%s\": %s", tmp, strerror(-r));
		goto fail;
	}
	r = close(fd);
	fd = -1;
	if (r < 0) {
		r = gw_errf(err, -errno, "\"%s\": %s", tmp, strerror(errno));
		goto fail;
	}
	if (gw_sys.rename(tmp, path) < 0) {
		r = gw_errf(err, -errno, "\"%s\": rename: %s", path, strerror(errno));
		goto fail;
	}
	/* The rename is durable only once the directory is. */
	dfd = gw_sys.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dfd < 0 || gw_sys.fsync(dfd) < 0)
		r = gw_errf(err, -errno, "\"%s\": fsync: %s", dir, strerror(errno));
	if (dfd >= 0)
		close(dfd);
	return r;
fail:
	if (fd >= 0)
		close(fd);
	gw_sys.unlink(tmp);
	return r;
}

char *gw_join(const char *a, char sep, const char *b)
{
	size_t n = strlen(a), k = strlen(b);
	char *p = gw_malloc(n + k + 2);

	memcpy(p, a, n);
	p[n] = sep;
	memcpy(p + n + 1, b, k + 1);
	return p;
}

char *gw_path_base(const char *path)
{
	size_t n = strlen(path);
	const char *b;
	char *s;

	while (n > 1 && path[n - 1] == '/')
		n--;
	b = path + n;
	while (b > path && b[-1] != '/')
		b--;
	s = gw_malloc((size_t)(path + n - b) + 1);
	memcpy(s, b, (size_t)(path + n - b));
	s[path + n - b] = 0;
	return s;
}
