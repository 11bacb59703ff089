/*
 * fuzz_lines -- the NDJSON line reader (lib/core/lines.h) against a model.
 *
 * Input: byte 0 chooses the flags (bit 0: DP_LINES_STRICT, bit 1: ask
 * dp_lines_has_line before each line) and bits 2..7 the cap on a line
 * (1..63 bytes, or the default); byte 1 is a seed that cuts the rest into
 * reads of 1 to 64 bytes.  The bytes arrive through a SOCK_SEQPACKET
 * socket, so every read(2) returns exactly one of those pieces: a line
 * end or a CR may fall on any read boundary, and the same input always
 * cuts the same way.
 *
 * The model: split at "\n"; a last piece without "\n" is a line when it
 * is not empty; one "\r" before the "\n" (or at the very end) goes.  A
 * line longer than the cap comes back as DP_LINES_LONG with its length;
 * in strict mode one that dp_utf8_check refuses comes back as
 * DP_LINES_BAD with the same reason and offset.  Then DP_LINES_EOF.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/lines.h"
#include "fuzz.h"

struct feed {
	int fd;
	const uint8_t *p;
	size_t n;
	unsigned seed;
};

static void *
writer(void *arg)
{
	struct feed *f = arg;
	size_t off = 0;
	unsigned x = f->seed * 2654435761u + 1;

	while (off < f->n) {
		x = x * 1103515245u + 12345u;
		size_t len = 1 + (x >> 16) % 64;
		if (len > f->n - off)
			len = f->n - off;
		if (write(f->fd, f->p + off, len) != (ssize_t)len)
			abort();
		off += len;
	}
	close(f->fd);
	return NULL;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

/*
 * libFuzzer's timer (SIGALRM, for -timeout) interrupts a read that waits
 * for the writer: the reader would then take its EINTR path in some
 * runs and not in others, a coverage that depends on the clock, not on
 * the input (make check's fixed pass must not).  Its handler only looks
 * at the clock, so the read may as well go on.  libFuzzer installs the
 * handler after LLVMFuzzerInitialize: this runs at the first input.
 */
static void
restart_reads(void)
{
	static int done;
	struct sigaction sa;

	if (done++ || sigaction(SIGALRM, NULL, &sa) < 0)
		return;
	sa.sa_flags |= SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	pthread_t th;

	restart_reads();
	if (size < 2)
		return 0;
	unsigned flags = data[0] & 1 ? DP_LINES_STRICT : 0;
	int peek = data[0] & 2;
	size_t max = data[0] >> 2 ? data[0] >> 2 : DP_LINES_MAX_DEFAULT;
	struct feed f = { -1, data + 2, size - 2, data[1] };
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
		abort();
	/* Room for every piece at once: the writer never waits for the reader. */
	int big = 4 << 20;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	f.fd = sv[0];
	if (pthread_create(&th, NULL, writer, &f) != 0)
		abort();

	struct dp_lines *r = dp_lines_new(sv[1], flags);
	FUZZ_CHECK(r != NULL);
	if (max != DP_LINES_MAX_DEFAULT)
		dp_lines_set_max(r, max);
	const uint8_t *p = f.p, *end = f.p + f.n;
	unsigned long lineno = 0;
	for (;;) {
		const char *line;
		size_t len;
		if (peek)
			(void)dp_lines_has_line(r);
		int rc;
		/* A signal other than libFuzzer's may still cut a read short. */
		while ((rc = dp_lines_next(r, &line, &len)) == DP_LINES_ERR && errno == EINTR)
			;
		if (p >= end) {
			FUZZ_CHECK(rc == DP_LINES_EOF);
			break;
		}
		/* The model's next line. */
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		const uint8_t *le = nl ? nl : end;
		size_t want = (size_t)(le - p);
		if (want > 0 && p[want - 1] == '\r')
			want--;
		lineno++;
		FUZZ_CHECK(dp_lines_lineno(r) == lineno);
		if (want > max) {
			FUZZ_CHECK(rc == DP_LINES_LONG);
			FUZZ_CHECK(line == NULL && len == want);
		} else {
			const char *why;
			size_t off;
			int bad = flags && dp_utf8_check((const char *)p, want, &why, &off) < 0;
			FUZZ_CHECK(rc == (bad ? DP_LINES_BAD : DP_LINES_OK));
			FUZZ_CHECK(len == want && memcmp(line, p, want) == 0 && line[len] == '\0');
			if (bad)
				FUZZ_CHECK(!strcmp(dp_lines_error(r), why) &&
				           dp_lines_error_offset(r) == off);
		}
		p = nl ? nl + 1 : end;
	}
	dp_lines_free(r);
	pthread_join(th, NULL);
	close(sv[1]);
	return 0;
}
