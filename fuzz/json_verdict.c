/*
 * json_verdict -- the JSON scanner's verdict on files, one line each, for
 * fuzz/json_reference.py to compare with Python's json module:
 *
 *   ok FILE COMPACT-HEX      valid; the compacted text, in hex
 *   bad FILE OFFSET WHY      invalid, and where
 *
 * usage: json-verdict FILE...  (a directory's files in any order)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "json/scan.h"

int
main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		struct dp_buf in = DP_BUF_INIT, out = DP_BUF_INIT;
		char chunk[65536];
		size_t n;
		const char *why;
		size_t off;

		if (!f) {
			perror(argv[i]);
			return 2;
		}
		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			if (dp_buf_add(&in, chunk, n) < 0)
				return 2;
		fclose(f);
		if (dp_json_check(in.data ? in.data : "", in.len, &why, &off) == DP_JSON_INVALID) {
			printf("bad %s %zu %s\n", argv[i], off, why);
		} else {
			if (dp_json_compact(&out, in.data, in.len) < 0)
				return 2;
			printf("ok %s ", argv[i]);
			for (size_t k = 0; k < out.len; k++)
				printf("%02x", (unsigned char)out.data[k]);
			printf("\n");
		}
		dp_buf_free(&in);
		dp_buf_free(&out);
	}
	return 0;
}
