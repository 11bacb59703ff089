/*
 * fuzz_ccstream -- the decoder of CryptoCompare's streaming messages
 * (lib/cc/stream.h) on any sequence of messages.
 *
 * Input: messages separated by "\n"; an empty line stands for a lost
 * connection (and the next message opens a new one).  The engine has a
 * subscription of every channel it normalizes, on one pair, so that
 * messages that name it are merged and printed.  Whatever comes: every
 * record printed is one compact JSON object on its own line, the engine
 * never reads past a message, and its counters add up (every message is
 * counted; records are never more than the data messages).
 */
#include <sys/mman.h>
#include <unistd.h>

#include "cc/stream.h"
#include "core/buf.h"
#include "core/out.h"
#include "fuzz.h"
#include "json/scan.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const subs[] = { "5~CCCAGG~BTC~USD", "2~Coinbase~BTC~USD",
		"0~Coinbase~BTC~USD", "24~CCCAGG~BTC~USD~m", "24~CCCAGG~ETH~EUR~H" };
	struct dp_buf err = DP_BUF_INIT, msg = DP_BUF_INIT;
	int fd = memfd_create("fuzz_ccstream", 0);

	FUZZ_CHECK(fd >= 0);
	struct dp_out *out = dp_out_new(fd, 4096);
	struct dp_ccs_opts o = { out, false, 0 };
	struct dp_ccs *c = dp_ccs_new(&o);
	FUZZ_CHECK(out && c);
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		FUZZ_CHECK(dp_ccs_subscribe(c, subs[i], &err) == 0);
	FUZZ_CHECK(dp_ccs_connected(c, &msg) == 0);

	const char *p = (const char *)data, *end = p + size;
	int64_t now = 1764460800000;
	size_t nmsg = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		/* Each message alone in memory: reading past it is an error. */
		char *m = malloc(n ? n : 1);
		FUZZ_CHECK(m != NULL);
		memcpy(m, p, n);
		now += 1000;
		if (n == 0) {
			dp_ccs_lost(c, now, "fuzz");
			dp_buf_reset(&msg);
			FUZZ_CHECK(dp_ccs_connected(c, &msg) == 0);
		} else {
			enum dp_ccs_event ev = dp_ccs_message(c, m, n, now);
			FUZZ_CHECK(ev != DP_CCS_NOMEM && ev != DP_CCS_OUTPUT);
			nmsg++;
		}
		free(m);
		p = nl ? nl + 1 : end;
	}
	dp_ccs_finish(c, now);
	const struct dp_ccs_stats *st = dp_ccs_stats(c);
	FUZZ_CHECK(st->messages == nmsg && st->malformed <= nmsg && st->records <= nmsg);
	FUZZ_CHECK(dp_out_flush(out) == 0);

	/* Every record: one compact JSON object on a line. */
	off_t len = lseek(fd, 0, SEEK_CUR);
	FUZZ_CHECK(len >= 0);
	if (len > 0) {
		char *text = malloc((size_t)len);
		FUZZ_CHECK(text && pread(fd, text, (size_t)len, 0) == len);
		FUZZ_CHECK(text[len - 1] == '\n');
		uint64_t lines = 0;
		for (char *q = text, *e = text + len; q < e;) {
			char *l = memchr(q, '\n', (size_t)(e - q));
			const char *why;
			size_t off;
			int compact;
			if (dp_json_check_compact(q, (size_t)(l - q), &why, &off, &compact) !=
			    DP_JSON_OBJECT || !compact) {
				fprintf(stderr, "record is not a JSON object (%s at %zu): %.*s\n", why, off,
				        (int)(l - q), q);
				FUZZ_CHECK(!"every record is a JSON object");
			}
			lines++;
			q = l + 1;
		}
		FUZZ_CHECK(lines == st->records);
		free(text);
	} else {
		FUZZ_CHECK(st->records == 0);
	}
	dp_ccs_free(c);
	dp_out_free(out);
	close(fd);
	dp_buf_free(&err);
	dp_buf_free(&msg);
	return 0;
}
