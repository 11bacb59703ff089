/*
 * core/file.c -- atomic file replacement and lock files (core/file.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"

/* The directory part of path ("." when none) into dir; -1 without memory. */
static int
parent_of(const char *path, struct dp_buf *dir)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return dp_buf_addch(dir, '.');
	if (slash == path)
		return dp_buf_addch(dir, '/');
	return dp_buf_add(dir, path, (size_t)(slash - path));
}

void
dp_file_why(struct dp_buf *err, const char *path, int e)
{
	struct dp_buf dir = DP_BUF_INIT;
	struct stat sb;

	if ((e != ENOENT && e != ENOTDIR) || parent_of(path, &dir) < 0) {
		dp_buf_msgf(err, "%s", strerror(e));
		dp_buf_free(&dir);
		return;
	}
	if (stat(dir.data, &sb) == 0) {
		if (S_ISDIR(sb.st_mode))
			dp_buf_msgf(err, "%s", strerror(e));
		else
			dp_buf_msgf(err, "%s is not a directory", dir.data);
	} else if (errno == ENOENT) {
		dp_buf_msgf(err, "directory %s does not exist", dir.data);
	} else if (errno == ENOTDIR) {
		/* Name the first part of the path that is a file, not a directory. */
		for (char *p = dir.data + 1; (p = strchr(p, '/')) != NULL; p++) {
			*p = '\0';
			int notdir = stat(dir.data, &sb) == 0 && !S_ISDIR(sb.st_mode);
			if (notdir)
				break;
			*p = '/';
		}
		dp_buf_msgf(err, "%s is not a directory", dir.data);
	} else {
		dp_buf_msgf(err, "%s: %s", dir.data, strerror(errno));
	}
	dp_buf_free(&dir);
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* fsync the directory holding path, so that a rename in it is durable. */
static int
fsync_dir(const char *path)
{
	struct dp_buf dir = DP_BUF_INIT;
	int fd, rc;

	if (parent_of(path, &dir) < 0) {
		errno = ENOMEM;
		return -1;
	}
	fd = open(dir.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dp_buf_free(&dir);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	/* Some file systems cannot fsync a directory; the rename still stands. */
	if (rc < 0 && (errno == EINVAL || errno == EROFS))
		rc = 0;
	close(fd);
	return rc;
}

/* dp_file_replace of path, the file itself (no link); shown names it in messages. */
static int
replace(const char *path, const char *shown, const char *what, const void *data, size_t len,
        struct dp_buf *err)
{
	struct dp_buf tmp = DP_BUF_INIT;
	struct stat sb;
	mode_t mode;
	int fd = -1, e;
	const char *step;

	if (dp_buf_addf(&tmp, "%s.XXXXXX", path) < 0) {
		dp_buf_msgf(err, "cannot write %s %s: out of memory", what, shown);
		return -1;
	}
	if (stat(path, &sb) == 0) {
		/* A rename over a device or a pipe would put a file in its place. */
		if (!S_ISREG(sb.st_mode)) {
			dp_buf_msgf(err, "cannot write %s %s: not a regular file", what, shown);
			dp_buf_free(&tmp);
			return -1;
		}
		mode = sb.st_mode & 07777;
	} else {
		mode_t mask = umask(0);
		umask(mask);
		mode = 0666 & ~mask;
	}
	fd = mkstemp(tmp.data);
	if (fd < 0) {
		dp_buf_msgf(err, "cannot create a temporary file next to %s %s: ", what, shown);
		dp_file_why(err, path, errno);
		dp_buf_free(&tmp);
		return -1;
	}
	step = "set the mode of";
	if (fchmod(fd, mode) < 0)
		goto fail;
	step = "write";
	if (write_all(fd, data, len) < 0)
		goto fail;
	step = "fsync";
	if (fsync(fd) < 0)
		goto fail;
	step = "close";
	e = close(fd);
	fd = -1;
	if (e < 0)
		goto fail;
	step = "rename the new";
	if (rename(tmp.data, path) < 0)
		goto fail;
	dp_buf_free(&tmp);
	if (fsync_dir(path) < 0) {
		dp_buf_msgf(err, "cannot fsync the directory of %s %s: %s", what, shown,
		            strerror(errno));
		return -1;
	}
	return 0;
fail:
	e = errno;
	dp_buf_msgf(err, "cannot %s %s %s: %s", step, what, shown, strerror(e));
	if (fd >= 0)
		close(fd);
	unlink(tmp.data);
	dp_buf_free(&tmp);
	return -1;
}

int
dp_file_replace(const char *path, const char *what, const void *data, size_t len,
                struct dp_buf *err)
{
	struct stat lsb;
	char *real;
	int rc;

	/* A symbolic link stays one: its target is what gets replaced. */
	if (lstat(path, &lsb) < 0 || !S_ISLNK(lsb.st_mode))
		return replace(path, path, what, data, len, err);
	if (!(real = realpath(path, NULL)) && errno == ENOENT) {
		/* A link to a file not there yet: the file it names, made. */
		char target[4096];
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		const char *slash = strrchr(path, '/');
		if (n > 0) {
			target[n] = '\0';
			struct dp_buf full = DP_BUF_INIT;
			int e = target[0] == '/' || !slash
			        ? dp_buf_addstr(&full, target)
			        : dp_buf_addf(&full, "%.*s/%s", (int)(slash - path), path, target);
			if (e == 0 && full.data)
				real = dp_buf_detach(&full, NULL);
			dp_buf_free(&full);
		}
		errno = ENOENT;
	}
	if (!real) {
		dp_buf_msgf(err, "cannot write %s %s: ", what, path);
		dp_file_why(err, path, errno);
		return -1;
	}
	rc = replace(real, path, what, data, len, err);
	free(real);
	return rc;
}

int
dp_file_lock(const char *path, struct dp_buf *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);

	if (fd < 0) {
		dp_buf_msgf(err, "cannot open lock file %s: ", path);
		dp_file_why(err, path, errno);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return -2;
		dp_buf_msgf(err, "cannot lock %s: %s", path, strerror(e));
		return -1;
	}
	return fd;
}
