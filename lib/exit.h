/*
 * exit.h -- the one exit-status table shared by every dp command.
 *
 * The numbers follow sysexits(3) where a meaning exists there.  They are
 * an interface: scripts test them, every man page lists them under EXIT
 * STATUS.  Never renumber; only append.
 */
#ifndef DP_EXIT_H
#define DP_EXIT_H

enum dp_exit {
	DP_EX_OK          = 0,   /* everything done */
	DP_EX_PARTIAL     = 1,   /* several items: at least one failed, see stderr */
	DP_EX_USAGE       = 64,  /* bad command line */
	DP_EX_DATAERR     = 65,  /* bad input data (a line, a response body) */
	DP_EX_NOINPUT     = 66,  /* an input file could not be opened */
	DP_EX_UNAVAILABLE = 69,  /* broker, database or API not reachable */
	DP_EX_SOFTWARE    = 70,  /* internal error (a bug) */
	DP_EX_IOERR       = 74,  /* reading or writing failed */
	DP_EX_TEMPFAIL    = 75,  /* something was not delivered or committed */
	DP_EX_NOPERM      = 77,  /* authentication or authorization refused */
	DP_EX_CONFIG      = 78,  /* bad configuration (-X, -F, unknown config key) */
	DP_EX_EXISTS      = 80,  /* the object already exists */
	DP_EX_NOTFOUND    = 81,  /* the object does not exist */
	DP_EX_INVALID     = 82,  /* invalid name or spec (topic name, partitions) */
	DP_EX_CAPACITY    = 83,  /* the cluster cannot satisfy it (replication factor) */
};

/* Short lowercase description of an exit status; never NULL. */
const char *dp_exit_describe(int status);

#endif
