#include "core/exit.h"

const char *
dp_exit_describe(int status)
{
	switch (status) {
	case DP_EX_OK:          return "ok";
	case DP_EX_PARTIAL:     return "some items failed";
	case DP_EX_USAGE:       return "usage error";
	case DP_EX_DATAERR:     return "bad input data";
	case DP_EX_NOINPUT:     return "cannot open input";
	case DP_EX_UNAVAILABLE: return "service unavailable";
	case DP_EX_SOFTWARE:    return "internal error";
	case DP_EX_IOERR:       return "i/o error";
	case DP_EX_TEMPFAIL:    return "not delivered or not committed";
	case DP_EX_NOPERM:      return "permission denied";
	case DP_EX_CONFIG:      return "configuration error";
	case DP_EX_EXISTS:      return "already exists";
	case DP_EX_NOTFOUND:    return "does not exist";
	case DP_EX_INVALID:     return "invalid name or spec";
	case DP_EX_CAPACITY:    return "cluster cannot satisfy request";
	case DP_EX_SIGNAL + 2:  return "stopped by SIGINT before the end";
	case DP_EX_SIGNAL + 15: return "stopped by SIGTERM before the end";
	}
	return "unknown status";
}
