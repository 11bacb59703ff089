/*
 * core/log.h -- diagnostics on stderr, one line each, prefixed "dp-<cmd>: ".
 *
 * stdout carries data only; everything here goes to stderr.  Messages are
 * lowercase and name what failed first (git style).  Nothing in this
 * module exits.
 */
#ifndef DP_LOG_H
#define DP_LOG_H

#include <stdarg.h>

enum dp_log_level {
	DP_LOG_QUIET = -1,   /* -q: errors only */
	DP_LOG_NORMAL = 0,   /* errors and warnings */
	DP_LOG_VERBOSE = 1,  /* -v: progress notes */
	DP_LOG_DEBUG = 2,    /* -vv: library chatter */
};

/* Set the program name used as prefix (borrowed; must outlive the process). */
void dp_log_init(const char *progname);
const char *dp_log_progname(void);
void dp_log_set_level(int level);
int dp_log_level(void);

void dp_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dp_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dp_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dp_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dp_vlog(int level, const char *fmt, va_list ap);

#endif
