/*
 * core/secret.h -- a secret (an API key, a password) read from a file or from
 * the environment, never from the command line.
 *
 * Command lines are visible to every user of the machine (ps, /proc), so
 * secrets come from a file named on it or from an environment variable.
 * The file holds the secret on its first line; blanks around it and one
 * line end are dropped; a second line or any control character is an
 * error (it would be sent as part of the secret, or inject a header).
 * A file that other users can read is accepted with a warning on stderr.
 *
 * Messages name the file or the variable, never the secret.  Every copy
 * made here is wiped; the caller wipes the result with dp_secret_free.
 */
#ifndef DP_SECRET_H
#define DP_SECRET_H

#include "core/buf.h"

#define DP_SECRET_MAX 4096      /* longer is no key or password */

/*
 * The secret from file when it is not NULL, else from the environment
 * variable env (unset or empty: none).  what names it in messages ("api
 * key").  Returns 0 with *out (caller frees with dp_secret_free; NULL when
 * there is none), or an exit status with a message in err:
 * DP_EX_NOINPUT (the file cannot be opened or read), DP_EX_CONFIG (empty,
 * too long, several lines, control characters), DP_EX_SOFTWARE (memory).
 */
int dp_secret_load(const char *file, const char *env, const char *what, char **out,
                   struct dp_buf *err);

/*
 * Called by getopt_long's caller right after it returned the option
 * opt_name ("--api-key-file"): 0 when the option was spelled out, -1 after
 * an error message when it was an abbreviation.  getopt_long takes
 * "--api-key=VALUE" for an abbreviation of --api-key-file, so someone
 * passing the secret itself would have it taken for a file name (and
 * printed in "cannot open" messages).  what names the secret ("api key"),
 * env the variable that is the other way to give it.  The value is never
 * echoed.
 */
int dp_secret_check_option(char **argv, int optind_after, const char *opt_name,
                           const char *what, const char *env);

/* Wipe and free a secret; accepts NULL. */
void dp_secret_free(char *s);

#endif
