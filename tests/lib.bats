#!/usr/bin/env bats
# Unit checks of lib/ through tests/unit/test_lib.c (built by make).

setup() {
	TEST_LIB=${DP_TEST_LIB:-$BATS_TEST_DIRNAME/../build/obj/test_lib}
	[ -x "$TEST_LIB" ] || skip "test_lib not built (run make)"
}

@test "line reader: CRLF, empty lines and a last line without newline" {
	run "$TEST_LIB" lines_basic
	[ "$status" -eq 0 ]
	[[ $output == *"4 lines"* ]]
}

@test "line reader: a 16 MiB line comes back whole" {
	run "$TEST_LIB" lines_long
	[ "$status" -eq 0 ]
}

@test "line reader: NUL bytes and invalid UTF-8 name the line and byte" {
	run "$TEST_LIB" lines_bad
	[ "$status" -eq 0 ]
	[[ $output == *"line 2: invalid UTF-8 at byte 7"* ]]
	[[ $output == *"line 3: NUL byte at byte 4"* ]]
}

@test "line reader: a CR at the end of one read and its LF in the next (found by fuzzing)" {
	run "$TEST_LIB" lines_split
	[ "$status" -eq 0 ]
}

@test "line reader: lines handed over by a swap stay intact" {
	run "$TEST_LIB" lines_swap
	[ "$status" -eq 0 ]
	[[ $output == *"reading goes on"* ]]
}

@test "line reader: what a stop leaves of a file is counted, the reading goes on; a pipe's is unknown" {
	run "$TEST_LIB" lines_unread
	[ "$status" -eq 0 ]
	[[ $output == *"a pipe's unknown"* ]]
}

@test "json scanner accepts RFC 8259 and rejects the rest with a reason" {
	run "$TEST_LIB" json
	[ "$status" -eq 0 ]
	[[ $output == *"rejected [1,]"*"unexpected character"* ]]
}

@test "routes of dynamic topics: the index and the fast path agree with libjq" {
	run "$TEST_LIB" route
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"18 indexed"* ]]
	[[ $output == *": 0 disagreements"* ]]
}

@test "dynamic topics: requests are checked completely; the decisions table keeps, replaces and forgets" {
	run "$TEST_LIB" coord
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"requests: 0 wrong"* ]]
	[[ $output == *"skipped: key 'req-10' is not its request_id 'req-1'"* ]]
	[[ $output == *"decisions: 4999 kept"* ]]
}

@test "jq expressions: fast paths agree with jq, errors name the expression" {
	run "$TEST_LIB" expr
	[ "$status" -eq 0 ]
	[[ $output == *"compile error: cannot compile jq expression '.a['"* ]]
	[[ $output == *"Cannot index array"* ]]
}

@test "jq subset on raw text agrees with libjq, keeps big integers" {
	run "$TEST_LIB" jqfast
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"0 disagreements"* ]]
}

@test "strict numbers, durations and timestamps" {
	run "$TEST_LIB" parse
	[ "$status" -eq 0 ]
}

@test "base64 round trips and rejects bad input" {
	run "$TEST_LIB" base64
	[ "$status" -eq 0 ]
}

@test "times: impossible dates are refused with the reason, never rolled over" {
	run "$TEST_LIB" times
	[ "$status" -eq 0 ]
	[[ $output == *"refused 2025-02-29T00:00:00Z: no such day in that month"* ]]
	[[ $output == *"refused 2016-12-31T23:59:60Z: a leap second (:60) has no epoch time"* ]]
}

@test "backoff: doubling to the cap, jitter within bounds, hints, no overflow, sleeps a signal ends" {
	run "$TEST_LIB" backoff
	[ "$status" -eq 0 ]
	[[ $output == *"ok backoff"* ]]
}

@test "files: atomic replace keeps the mode; a missing directory is named; locks exclude" {
	run "$TEST_LIB" file
	[ "$status" -eq 0 ]
	[[ $output == *"cannot create a temporary file next to state file "*"/no/such/state: directory "*"/no/such does not exist"* ]]
}

@test "candle sizes: aggregate, page limit, and toTs at the last base candle" {
	run "$TEST_LIB" intervals
	[ "$status" -eq 0 ]
	[[ $output == *"ok intervals"* ]]
}

@test "json writer: keys quoted once; the top-level members of a checked object" {
	run "$TEST_LIB" jsonw
	[ "$status" -eq 0 ]
	[[ $output == *"ok jsonw"* ]]
}

@test "streamer engine: subscriptions, merging, refusals, gaps, duplicate trades, 401, --count" {
	run "$TEST_LIB" ccstream
	[ "$status" -eq 0 ]
	[[ $output == *"ok ccstream"* ]]
}

@test "WebSocket URLs are checked before connecting" {
	run "$TEST_LIB" wsurl
	[ "$status" -eq 0 ]
	[[ $output == *"invalid URL 'ws://u:p@h/': no user name or password in it"* ]]
	[[ $output == *"ok ws urls"* ]]
}

@test "cryptocompare errors are told apart by Message, not by Type alone" {
	run "$TEST_LIB" ccerrors
	[ "$status" -eq 0 ]
	[[ $output == *'no such market or pair (Type 1): "Binance market does not exist for this coin pair (ETH-USD)"'* ]]
	[[ $output == *'no such market or pair (Type 2): "cccagg_or_exchange market does not exist'* ]]
}

@test "candle series: settled, the API's newest open, pages that reach the present" {
	run "$TEST_LIB" ccseries
	[ "$status" -eq 0 ]
	[[ $output == *"ok candle series"* ]]
}

@test "secrets: first line of a file or the environment; refused without showing them" {
	run "$TEST_LIB" secret
	[ "$status" -eq 0 ]
	[[ $output == *"api key file /tmp/dp-test-secret."*"/key holds more than one line or a control character"* ]]
	[[ $output == *"ok secrets"* ]]
}

@test "line reader: a line over the cap is skipped to its end and named by its length" {
	run "$TEST_LIB" lines_cap
	[ "$status" -eq 0 ]
	[[ $output == *"716800 bytes; 7 lines"* ]]
}

@test "envelopes: odd but valid JSON round trips; refusals name the reason and the byte" {
	run "$TEST_LIB" envelope
	[ "$status" -eq 0 ]
	[[ $output == *'{"topic":"t","key":null,"value":{"s":"\ud800"}} -> ok'* ]]
	[[ $output == *"lone surrogate escape \ud800 at byte 10"* ]]
}

@test "topic specs: the same JSON as every path, integers keep their digits" {
	run "$TEST_LIB" spec
	[ "$status" -eq 0 ]
	[[ $output == *"retention.bytes 9223372036854775807"* ]]
}

@test "envelope timestamps: absent is not 0, out of range is refused, digits are kept" {
	run "$TEST_LIB" envelope_ts
	[ "$status" -eq 0 ]
	[[ $output == *"1e300 -> refused: envelope timestamp 1e300 is not a whole number of milliseconds from 0 to 9223372036854775807"* ]]
	[[ $output == *"9007199254740993 -> ok"* ]]
}

@test "jq: a record longer than libjq's int length is refused, not cut" {
	run "$TEST_LIB" expr_limit
	[ "$status" -eq 0 ]
	[[ $output == *"record of 2147483648 bytes is too large for jq (at most 2147483647)"* ]]
}

@test "timed condition waits run on the monotonic clock, so a clock step cannot stall them" {
	# Every file that waits on a condition with a deadline sets its
	# clock to CLOCK_MONOTONIC and never takes a deadline from the wall clock.
	n=0
	for f in $(grep -l 'pthread_cond_timedwait' "$BATS_TEST_DIRNAME"/../lib/*/*.c "$BATS_TEST_DIRNAME"/../cmd/*.c); do
		grep -q 'pthread_condattr_setclock(&[a-z_]*, CLOCK_MONOTONIC)' "$f"
		! grep -n 'CLOCK_REALTIME' "$f"
		n=$((n + 1))
	done
	[ "$n" -ge 1 ]
}

@test "binary COPY fields: numeric, timestamps, refusals instead of changed values" {
	run "$TEST_LIB" pgbin
	[ "$status" -eq 0 ]
}

@test "PostgreSQL messages lose every password; identifiers are quoted" {
	run "$TEST_LIB" pg_scrub
	[ "$status" -eq 0 ]
}

@test "object members, microsecond timestamps and dates" {
	run "$TEST_LIB" sink_parse
	[ "$status" -eq 0 ]
}

@test "the sink engine: three partitions on two writers, each once; a stale writer refused" {
	[[ -n ${DP_PG:-} ]] || skip "needs a database (DP_PG; scripts/check sets it)"
	run "$TEST_LIB" pgsink_sources
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"rows per partition: 0:1000:1000,1:1000:1000,2:1000:1000"* ]]
}

@test "the sink engine: a source released and acquired again, lost and resynced; bad rows judged by the caller" {
	[[ -n ${DP_PG:-} ]] || skip "needs a database (DP_PG; scripts/check sets it)"
	run "$TEST_LIB" pgsink_release
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"bad row at offset 123 judged on the caller's thread: 23514 k123 {\"p\":0,\"o\":123}"* ]]
	[[ $output == *"rows: 399 399 0-399"* ]]
}

@test "SQLSTATE table: outage, retry, bad record or stop for each class, with the manual's names" {
	run "$TEST_LIB" sqlstate
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"40P01 retry deadlock_detected (Transaction Rollback)"* ]]
	[[ $output == *"25006 outage read_only_sql_transaction (Invalid Transaction State)"* ]]
	[[ $output == *"ok the SQLSTATE table"* ]]
}

@test "options: one table gives getopt's arrays, strict values, subcommand checks and --help" {
	run "$TEST_LIB" opt
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"opt: ok"* ]]
}

@test "jq subset: operands in jq's order, so an error is never \"no value\" (found by fuzzing)" {
	run "$TEST_LIB" jqfast_order
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"expressions on "*" records: 0 disagreements"* ]]
}

@test "jq subset: an expression deeper than its cap is libjq's, not a stack overflow" {
	run "$TEST_LIB" jqfast_deep
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"0 deep expressions misjudged"* ]]
}

@test "json: a member name written with escapes is the name it stands for (found by fuzzing)" {
	run "$TEST_LIB" json_keys
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"escaped member names: 0 disagreements"* ]]
}

@test "json: the scanner's block paths (digit runs, plain string bytes, an array's next element) give the byte-at-a-time verdict at every edge" {
	run "$TEST_LIB" json_runs
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"json block paths: "*" cases, 0 wrong"* ]]
}

@test "metrics: off until started; counters, gauges, histograms and labels in the text exposition; no add lost across threads" {
	run "$TEST_LIB" metrics
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"metrics: ok"* ]]
}

@test "dp-topic's engine: specs from -p/-c, names checked before the broker, a record and a row per topic" {
	run "$TEST_LIB" topics
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"topics: ok"* ]]
}

@test "health: ready needs every link up and every feed fresh from its first record on (or some record within the stale time since the start); a dropped feed no longer counts" {
	run "$TEST_LIB" health
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"health: ok"* ]]
}

@test "status and dp-top's views: options checked; running, stopped, gone and forgotten; grouped by actor; the diagram marked" {
	run "$TEST_LIB" top_view
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"top_view: ok"* ]]
}

@test "obs: the endpoint's pages, readiness from links, the machines' states, a partition's lag, the file every interval and at the end, systemd's notify socket, addresses that cannot be used; promtool takes the file" {
	export DP_OBS_FILE=$BATS_TEST_TMPDIR/dp.prom
	run "$TEST_LIB" obs
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"obs: ok"* ]]
	run promtool check metrics <"$DP_OBS_FILE"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "options: an argument that may be left out (--wait, --wait=5s) is parsed and shown so" {
	run "$TEST_LIB" opt_optional
	[ "$status" -eq 0 ]
	[[ $output == *"opt_optional: ok"* ]]
}
