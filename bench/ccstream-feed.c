/*
 * ccstream-feed -- time the streamer engine alone (cc/stream.h): parse,
 * merge and print, without the connection, over a file of messages.
 *
 *   build/obj/ccstream-feed FILE [TIMES]
 *
 * Reads FILE (one message a line, as bench/gen-stream.py writes), holds it
 * in memory, subscribes to what bench/stream.sh subscribes to, and feeds
 * every line TIMES times (default 100) through dp_ccs_message() into a
 * stdout writer on /dev/null.  Prints seconds, messages and messages/s.
 * bench/stream.sh measures the whole dp-fetch stream, WebSocket included.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cc/stream.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/out.h"

int
main(int argc, char **argv)
{
	struct dp_buf text = DP_BUF_INIT, err = DP_BUF_INIT;
	struct timespec a, b;
	char chunk[65536];
	ssize_t got;
	long times = argc > 2 ? strtol(argv[2], NULL, 10) : 100;
	unsigned long msgs = 0;
	int fd, null;

	dp_log_init("ccstream-feed");
	if (argc < 2 || (fd = open(argv[1], O_RDONLY)) < 0 || times < 1) {
		fprintf(stderr, "usage: ccstream-feed FILE [TIMES]\n");
		return 64;
	}
	while ((got = read(fd, chunk, sizeof(chunk))) > 0)
		if (dp_buf_add(&text, chunk, (size_t)got) < 0)
			return 70;
	close(fd);
	if (!text.len || (null = open("/dev/null", O_WRONLY)) < 0)
		return 66;
	struct dp_out *out = dp_out_new(null, (size_t)1 << 20);
	struct dp_ccs *c = dp_ccs_new(&(struct dp_ccs_opts){ .out = out });
	if (!out || !c || dp_ccs_subscribe_list(c, "2~Coinbase~BTC~GBP,5~CCCAGG~BTC~USD,"
	                                        "0~Coinbase~BTC~USD", &err) < 0)
		return 70;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long t = 0; t < times; t++) {
		for (const char *p = text.data, *end = text.data + text.len; p < end; ) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
			if (n && dp_ccs_message(c, p, n, 0) != DP_CCS_NOTHING)
				return 70;
			msgs += n > 0;
			p += n + 1;
		}
	}
	if (dp_out_flush(out) < 0)
		return 74;
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("%.3f s, %lu messages, %.0f messages/s, %llu records\n", s, msgs, msgs / s,
	       (unsigned long long)dp_ccs_stats(c)->records);
	dp_ccs_free(c);
	dp_out_free(out);
	close(null);
	dp_buf_free(&text);
	dp_buf_free(&err);
	return 0;
}
