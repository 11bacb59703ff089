/*
 * json-scan -- time dp's JSON scanner alone over an NDJSON file.
 *
 *   build/obj/json-scan FILE [MEMBER]
 *
 * Reads FILE with the line reader and validates every line, picking out
 * the top-level MEMBER as dp-publish --key .MEMBER does.  Without MEMBER
 * it only reads lines, which is the floor.  Prints seconds and lines.
 */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "core/lines.h"
#include "json/scan.h"

int
main(int argc, char **argv)
{
	struct timespec a, b;
	const char *line, *why, *v;
	size_t n, off, vn;
	unsigned long lines = 0, bad = 0;
	int fd;

	if (argc < 2 || (fd = open(argv[1], O_RDONLY)) < 0) {
		fprintf(stderr, "usage: json-scan FILE [MEMBER]\n");
		return 64;
	}
	struct dp_lines *r = dp_lines_new(fd, 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	while (dp_lines_next(r, &line, &n) == DP_LINES_OK) {
		lines++;
		if (argc > 2 && dp_json_check_member(line, n, argv[2], &v, &vn, &why, &off,
		                                     NULL) == DP_JSON_INVALID)
			bad++;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.3f s, %lu lines, %lu invalid\n",
	       (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9, lines, bad);
	dp_lines_free(r);
	close(fd);
	return 0;
}
