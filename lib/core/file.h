/*
 * core/file.h -- small files that must survive a crash: atomic replacement and
 * an exclusive lock file.
 *
 * A cursor, an offset or a checkpoint kept in a file must be either the
 * old or the new version after a crash or a power cut, never a mix or an
 * empty file.  dp_file_replace() does what POSIX needs for that: write a
 * temporary file in the same directory (rename(2) is atomic only within
 * one file system), fsync it, rename it over the old one, then fsync the
 * directory so that the rename itself is on disk.
 *
 * Messages name the file and, when a directory on the way is missing or
 * is not a directory, that directory: "directory /var/lib/x does not
 * exist" says what to fix where ENOENT alone does not.  Nothing here
 * exits; errors come back as -1 with a message appended to err.
 */
#ifndef DP_FILE_H
#define DP_FILE_H

#include <stddef.h>

#include "core/buf.h"

/*
 * Replace path with the len bytes at data, atomically (see above).  what
 * names the file in messages ("state file").  The new file keeps the mode
 * of the file it replaces, else gets 0666 minus the umask.  The temporary
 * file is "path.XXXXXX" and is removed when anything fails before the
 * rename.  A symbolic link's target is what is replaced (the link stays);
 * a path that names something else than a regular file (a device, a
 * pipe: /dev/stdout) is refused.  Returns 0, or -1 with a message in err.  A failed fsync of the
 * directory after the rename is reported too (the new contents are in
 * place, their durability is not certain).
 */
int dp_file_replace(const char *path, const char *what, const void *data, size_t len,
                    struct dp_buf *err);

/*
 * Take an exclusive flock(2) on path (created, mode 0666 minus umask,
 * when missing) without waiting.  Returns a descriptor (close-on-exec) to
 * keep open while the lock is needed: closing it, or the process ending,
 * releases the lock.  Returns -2 when another process holds it, or -1
 * with a message in err.  The lock is advisory: it keeps out processes
 * that take it too, nothing else.
 */
int dp_file_lock(const char *path, struct dp_buf *err);

/*
 * Append to err why path cannot be created when open/mkstemp failed with
 * errno e: for ENOENT and ENOTDIR the directory that is missing or not a
 * directory, else strerror(e).  For messages of callers that open files
 * themselves.
 */
void dp_file_why(struct dp_buf *err, const char *path, int e);

#endif
