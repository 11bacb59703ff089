#include <stdio.h>
#include <string.h>

#include "core/log.h"

static const char *progname = "dp";
static int level = DP_LOG_NORMAL;

void dp_log_init(const char *name)
{
	const char *slash = strrchr(name, '/');

	progname = slash ? slash + 1 : name;
}

const char *dp_log_progname(void) { return progname; }
void dp_log_set_level(int l) { level = l; }
int dp_log_level(void) { return level; }

void
dp_vlog(int lvl, const char *fmt, va_list ap)
{
	char line[4096];
	int n;

	if (lvl > level)
		return;
	/* One write per message so concurrent writers do not interleave. */
	n = snprintf(line, sizeof(line), "%s: ", progname);
	if (n < 0)
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	n = (int)strlen(line);
	line[n++] = '\n';
	fwrite(line, 1, (size_t)n, stderr);
}

#define DEFINE_LOG(fn, lvl)				\
	void fn(const char *fmt, ...)			\
	{						\
		va_list ap;				\
		va_start(ap, fmt);			\
		dp_vlog(lvl, fmt, ap);			\
		va_end(ap);				\
	}

DEFINE_LOG(dp_err, DP_LOG_QUIET)
DEFINE_LOG(dp_warn, DP_LOG_NORMAL)
DEFINE_LOG(dp_info, DP_LOG_VERBOSE)
DEFINE_LOG(dp_debug, DP_LOG_DEBUG)
