/*
 * core/secret.c -- secrets from a file or the environment (core/secret.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/exit.h"
#include "core/log.h"
#include "core/secret.h"

void
dp_secret_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static int
has_control(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 1;
	return 0;
}

static int
from_env(const char *env, const char *what, char **out, struct dp_buf *err)
{
	const char *v = getenv(env);

	if (!v || !*v)
		return 0;
	if (has_control(v, strlen(v))) {
		dp_buf_msgf(err, "invalid $%s: the %s contains a control character", env, what);
		return DP_EX_CONFIG;
	}
	if (!(*out = strdup(v))) {
		dp_buf_msgf(err, "out of memory");
		return DP_EX_SOFTWARE;
	}
	return 0;
}

/* Read all of fd into buf (size DP_SECRET_MAX + 2), NUL-terminated. */
static int
read_file(int fd, const char *file, const char *what, char *buf, size_t *n,
          struct dp_buf *err)
{
	for (*n = 0;;) {
		ssize_t r = read(fd, buf + *n, DP_SECRET_MAX + 1 - *n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			dp_buf_msgf(err, "cannot read %s file %s: %s", what, file, strerror(errno));
			return DP_EX_NOINPUT;
		}
		if (r == 0)
			break;
		*n += (size_t)r;
		if (*n > DP_SECRET_MAX) {
			dp_buf_msgf(err, "%s file %s is too large for a %s", what, file, what);
			return DP_EX_CONFIG;
		}
	}
	buf[*n] = '\0';
	return 0;
}

int
dp_secret_load(const char *file, const char *env, const char *what, char **out,
               struct dp_buf *err)
{
	char buf[DP_SECRET_MAX + 2];
	size_t n = 0, start = 0;
	struct stat sb;
	int fd, rc;

	*out = NULL;
	if (!file)
		return from_env(env, what, out, err);
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		dp_buf_msgf(err, "cannot open %s file %s: %s", what, file, strerror(errno));
		return DP_EX_NOINPUT;
	}
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 044) && S_ISREG(sb.st_mode))
		dp_warn("%s file %s can be read by other users (chmod 600 it)", what, file);
	rc = read_file(fd, file, what, buf, &n, err);
	close(fd);
	while (rc == 0 && n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
	                            buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	while (rc == 0 && (buf[start] == ' ' || buf[start] == '\t'))
		start++;
	if (rc == 0 && start == n) {
		dp_buf_msgf(err, "%s file %s is empty", what, file);
		rc = DP_EX_CONFIG;
	} else if (rc == 0 && has_control(buf + start, n - start)) {
		dp_buf_msgf(err, "%s file %s holds more than one line or a control character",
		            what, file);
		rc = DP_EX_CONFIG;
	} else if (rc == 0 && !(*out = strdup(buf + start))) {
		dp_buf_msgf(err, "out of memory");
		rc = DP_EX_SOFTWARE;
	}
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

int
dp_secret_check_option(char **argv, int optind_after, const char *opt_name, const char *what,
                       const char *env)
{
	size_t n = strlen(opt_name);
	const char *tok = argv[optind_after - 1];

	/* "--opt=value" is one word; "--opt value" two. */
	if (!(tok[0] == '-' && tok[1] == '-' && strchr(tok, '=')))
		tok = optind_after >= 2 ? argv[optind_after - 2] : "";
	if (strncmp(tok, opt_name, n) == 0 && (tok[n] == '\0' || tok[n] == '='))
		return 0;
	dp_err("unknown or incomplete option '%.*s': the %s is read only from $%s or %s FILE",
	       (int)(strchr(tok, '=') ? strchr(tok, '=') - tok : (long)strlen(tok)), tok, what, env,
	       opt_name);
	return -1;
}
