#!/usr/bin/env bats
# dp-tail against the real broker: output forms, where to start and stop,
# consumer groups, and the closed-pipe case.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/kafka

setup() {
	T=$(new_topic)
	G=$(uniq_name g)
	W=$BATS_TEST_TMPDIR
}

teardown() {
	blackhole_stop
	local pid
	[[ ! -s $W/tail.pid ]] || kill -KILL "$(cat "$W/tail.pid")" 2>/dev/null || true
	for pid in "${DELETED_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
}

# transitions FILE: the --trace-states lines of FILE as "from event to", one a line
transitions() {
	grep '^{"cmd"' "$1" | jq -r '[.from, .event, .to] | join(" ")'
}

# kcat's view of a topic, every field that a copy must keep.
kcat_dump() {
	kcat -b "$DP_BROKERS" -C -t "$1" -e -q -o beginning -Z \
		-f '%p|%k|%K|%h|%T|%S|%s\n'
}

@test "envelope copy is lossless: binary values, headers, null keys, tombstones" {
	create_topic "$T" 2
	create_topic "$T.copy" 2
	printf '\x00\xff\x01bin\x80\n' > "$W/bin"
	kcat_produce "$T" -p 0 -k key1 -H h1=v1 -H h1=v2 -H nul "$W/bin"
	printf 'hello world\n{"a": 1}\n{"b":2}\nnull\n' | kcat_produce "$T" -p 1
	printf 'tomb:\n' | kcat_produce "$T" -p 1 -Z -K:
	printf '\xff\xfek:{"c":3}\n' | kcat_produce "$T" -p 0 -K: -H 'bin=\xff'
	dp-tail -t "$T" --from beginning -e --envelope > "$W/env"
	[ "$(wc -l < "$W/env")" -eq 7 ]
	dp-publish --envelope -t "$T.copy" < "$W/env"
	cmp <(kcat_dump "$T" | sort) <(kcat_dump "$T.copy" | sort)
	# The forms chosen for bytes that are not JSON:
	grep -q '"value":"AP8BYmlugAo=","value_encoding":"base64"' "$W/env"
	grep -q '"value":"{\\"a\\": 1}","value_encoding":"string"' "$W/env"
	grep -q '"value":"null","value_encoding":"string"' "$W/env"
	grep -q '"key":"tomb","headers":\[\],"value":null}' "$W/env"
	grep -q '"key":"//5r","key_encoding":"base64"' "$W/env"
	grep -q '{"key":"nul","value":null}' "$W/env"
}

@test "envelope copy carries odd but valid JSON byte for byte, as the plain path accepts it" {
	create_topic "$T"
	create_topic "$T.copy"
	# escapes, surrogates (lone ones too), huge numbers, empty and repeated
	# names, raw UTF-8; then 1000 levels deep (the scanner allows 1024)
	cp "$DP_ROOT/tests/fixtures/json/odd.ndjson" "$W/in"
	python3 -c 'print("[" * 1000 + "]" * 1000); print("{\"a\":" * 1000 + "{}" + "}" * 1000)' >> "$W/in"
	n=$(wc -l < "$W/in")
	run dp-publish -t "$T" < "$W/in"
	[ "$status" -eq 0 ]
	[ "$output" = "" ]
	# keys and header names that are not plain text
	printf '\xc3\xa9\x01k\t|{"s":"\\ud800"}\n' |
		kcat_produce "$T" -K'|' -H "$(printf 'h\xc3\xa9=\x01v')" -H "$(printf '\xff=x')"
	run dp-tail -t "$T" --from beginning -e --envelope
	[ "$status" -eq 0 ]
	printf '%s\n' "$output" > "$W/env"
	[ "$(wc -l < "$W/env")" -eq $((n + 1)) ]
	run dp-publish --envelope -t "$T.copy" < "$W/env"
	[ "$status" -eq 0 ]
	[ "$output" = "" ]
	cmp <(kcat_dump "$T") <(kcat_dump "$T.copy")
	cmp "$W/in" <(kcat_payloads "$T.copy" -c "$n")
	grep -qF '{"key":"/w==","key_encoding":"base64","value":"x"}' "$W/env"
}

@test "--from beginning, -N per partition, N, and @TIME" {
	create_topic "$T" 2
	gen_prices 40 | dp-publish -t "$T" -p 0
	gen_prices 40 41 | dp-publish -t "$T" -p 1
	run dp-tail -t "$T" --from -3 -e
	[ "$status" -eq 0 ]
	[ "$(jq -s -c 'map(.seq) | sort' <<<"$output")" = "[38,39,40,78,79,80]" ]
	run dp-tail -t "$T" --from 37 -e
	[ "$(jq -s -c 'map(.seq) | sort' <<<"$output")" = "[38,39,40,78,79,80]" ]
	mid=$(($(date +%s%3N) + 1))
	clock_past() { [ "$(date +%s%3N)" -gt "$1" ]; }
	wait_until 5 clock_past "$mid"
	gen_prices 5 1000 | dp-publish -t "$T" -p 0
	run dp-tail -t "$T" --from "@$mid" -e
	[ "$(jq -s -c 'map(.seq)' <<<"$output")" = "[1000,1001,1002,1003,1004]" ]
	run dp-tail -t "$T" --from "@$(date -u -d "@$((mid / 1000 - 3600))" +%Y-%m-%dT%H:%M:%SZ)" -e
	[ "$(wc -l <<<"$output")" -eq 85 ]
}

@test "--until @TIME stops each partition at that time; -n stops after N lines" {
	create_topic "$T"
	gen_prices 10 | dp-publish -t "$T" --timestamp '1704067200000 + .seq * 1000'
	run dp-tail -t "$T" --from beginning --until @2024-01-01T00:00:05Z
	[ "$status" -eq 0 ]
	[ "$(jq -s -c 'map(.seq)' <<<"$output")" = "[1,2,3,4]" ]
	run dp-tail -t "$T" --from beginning -n 3
	[ "$(jq -s -c 'map(.seq)' <<<"$output")" = "[1,2,3]" ]
}

@test "--from end prints only records produced after start" {
	create_topic "$T"
	gen_prices 5 | dp-publish -t "$T"
	dp-tail -t "$T" -n 2 -v > "$W/out" 2> "$W/err" &
	pid=$!
	# -v says when a partition has reached its end: from there on every
	# new record is printed.
	wait_until 20 grep -q "$T \[0\] at end" "$W/err"
	gen_prices 2 100 | dp-publish -t "$T"
	wait "$pid"
	[ "$(jq -s -c 'map(.seq)' "$W/out")" = "[100,101]" ]
}

@test "-e with a group terminates and commits; a restart resumes without gaps" {
	create_topic "$T" 3
	gen_prices 1000 | dp-publish -t "$T" -k .fsym
	run dp-tail -t "$T" -g "$G" -n 300
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 300 ]
	printf '%s\n' "${lines[@]}" > "$W/first"
	run dp-tail -t "$T" -g "$G" -e
	[ "$status" -eq 0 ]
	printf '%s\n' "${lines[@]}" > "$W/second"
	[ "${#lines[@]}" -eq 700 ]
	cat "$W/first" "$W/second" | jq -s -c 'map(.seq) | sort | . == [range(1; 1001)]' | grep -qx true
	# Nothing left: a third run with -e prints nothing and exits.
	run dp-tail -t "$T" -g "$G" -e
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "group resume after SIGTERM skips no line" {
	create_topic "$T" 2
	gen_prices 20000 | dp-publish -t "$T" -k .fsym
	dp-tail -t "$T" -g "$G" > "$W/first" &
	pid=$!
	wait_until 20 test -s "$W/first"
	kill -TERM "$pid"
	wait "$pid"
	dp-tail -t "$T" -g "$G" -e > "$W/second"
	# At least once: together they hold every record.
	cat "$W/first" "$W/second" | jq -s -c 'map(.seq) | unique | length' | grep -qx 20000
}

@test "head closes the pipe: dp-tail exits 0 at once and commits only what it wrote" {
	create_topic "$T"
	gen_prices 50000 | dp-publish -t "$T"
	start=$SECONDS
	run bash -c "dp-tail -t '$T' -g '$G' | head -1; exit \${PIPESTATUS[0]}"
	[ "$status" -eq 0 ]
	[ "$output" = "$(gen_prices 1)" ]
	[ $((SECONDS - start)) -le 10 ]
	run bash -c "dp-tail -t '$T' -g '$G' | head -n 20000 | wc -l; exit \${PIPESTATUS[0]}"
	[ "$status" -eq 0 ]
	[ "$output" -eq 20000 ]
	# The next run continues where the written lines stopped: its output is
	# an unbroken tail of the topic, and what head read was committed
	# (give or take the last buffer, which never reached the pipe whole).
	dp-tail -t "$T" -g "$G" -e > "$W/rest"
	n=$(wc -l < "$W/rest")
	[ "$n" -ge 1 ]
	[ "$n" -lt 35000 ]
	gen_prices 50000 | tail -n "$n" | cmp - "$W/rest"
}

@test "the reader leaves while dp-tail waits for records: it ends then, not at the next record" {
	create_topic "$T"
	echo '{"n":1}' | dp-publish -t "$T"
	# One record, then nothing more comes: head has its line and leaves, and
	# dp-tail, idle at the end of the topic, notices within its poll.
	{
		dp-tail -t "$T" --from beginning --trace-states 2> "$W/err" &
		echo $! > "$W/tail.pid"
		wait $!
		echo $? > "$W/rc"
	} 3>&- | head -1 > "$W/out" &
	wait_until 10 test -s "$W/rc"
	[ "$(cat "$W/rc")" = 0 ]
	[ "$(cat "$W/out")" = '{"n":1}' ]
	grep -q '"from":"consuming","event":"pipe_closed","to":"closing"' "$W/err"
	# dp-tail's own status, without a pipe around it: stdout a pipe nobody reads
	run bash -c "dp-tail -t '$T' --from beginning | head -1 > /dev/null; exit \${PIPESTATUS[0]}"
	[ "$status" -eq 0 ]
}

@test "SIGTERM while a --filter never ends: ended by it within about two seconds, said why" {
	create_topic "$T"
	printf '{"n":1}\n{"n":2,"loop":true}\n' | dp-publish -t "$T"
	# libjq cannot be interrupted: the watchdog of lib/core/sig.h ends it
	dp-tail -t "$T" --from beginning --filter 'if .loop then last(range(infinite)) else . end' \
		> "$W/out" 2> "$W/err" &
	term_when_busy $!
	cat "$W/err"
	[ "$st" -eq 143 ]   # 128 + SIGTERM: ended by the signal
	((elapsed < 4000))
	[ "$(cat "$W/err")" = "dp-tail: a jq program still runs two seconds after the signal, and libjq cannot be interrupted: ending by the signal, without flushing or committing" ]
}

@test "4 KB records under a byte bound (-X queued.max.messages.kbytes) flow, with and without a group" {
	# librdkafka 2.0.2 stops fetching at either bound, records or bytes, and
	# decides again only when woken; the wake-up used to follow the record
	# count alone, so a byte bound left every partition idle for a second.
	# 256 KB: less than one fetch (1 MB), so the queue passes the bound
	# however fast the reader is.
	create_topic "$T" 2
	python3 -c '
import sys
pad = "x" * 4000
for i in range(3000):
    sys.stdout.write("{\"seq\":%d,\"pad\":\"%s\"}\n" % (i, pad))' > "$W/in"
	dp-publish -t "$T" -k .seq < "$W/in"
	for g in "" "-g $G"; do
		run --separate-stderr dp-tail -t "$T" $g --from beginning -e -vv -X debug=fetch,protocol \
			-X queued.max.messages.kbytes=256
		[ "$status" -eq 0 ]
		[ "${#lines[@]}" -eq 3000 ]
		fetcher_woken <(echo "$stderr")
	done
}

@test "a run to the end (-e, --until end) does not let the broker hold its last, empty fetch; a live reader and -X keep theirs" {
	# A partition's end is learnt from a fetch that finds nothing, which
	# the broker holds for fetch.wait.max.ms (librdkafka: 500 ms): every
	# -e run ended half a second late.  librdkafka's debug=conf shows the
	# client's configuration.
	create_topic "$T" 3
	echo '{"seq":1}' | dp-publish -t "$T"
	for end in -e "--until end"; do
		run --separate-stderr dp-tail -t "$T" --from beginning $end -vv -X debug=conf
		[ "$status" -eq 0 ]
		[ "$output" = '{"seq":1}' ]
		[[ $stderr == *"fetch.wait.max.ms = 10"$'\n'* ]]
	done
	run --separate-stderr dp-tail -t "$T" -g "$G" --from beginning -e -vv -X debug=conf
	[ "$status" -eq 0 ]
	[[ $stderr == *"fetch.wait.max.ms = 10"$'\n'* ]]
	# Without an end: librdkafka's default, fewer fetches while idle.
	run --separate-stderr dp-tail -t "$T" --from beginning -n 1 -vv -X debug=conf
	[ "$status" -eq 0 ]
	[ "$output" = '{"seq":1}' ]
	[[ $stderr == *"Client configuration:"* ]]
	[[ $stderr != *"fetch.wait.max.ms"* ]]
	# -X decides.
	run --separate-stderr dp-tail -t "$T" --from beginning -e -vv -X debug=conf \
		-X fetch.wait.max.ms=200
	[ "$status" -eq 0 ]
	[[ $stderr == *"fetch.wait.max.ms = 200"$'\n'* ]]
	[[ $stderr != *"fetch.wait.max.ms = 10"$'\n'* ]]
}

@test "-X message.max.bytes above a fetch's default raises the fetch with it, in dp-tail and dp-sink-pg" {
	# librdkafka refuses fetch.max.bytes below message.max.bytes; ours is
	# only a default, so a larger record limit must not become exit 78.
	create_topic "$T"
	echo '{"seq":1}' | dp-publish -t "$T"
	run --separate-stderr dp-tail -t "$T" --from beginning -e -X message.max.bytes=2000000
	[ "$status" -eq 0 ]
	[ "$output" = '{"seq":1}' ]
	[ "$stderr" = "" ]
	psql_dp -c "create table \"$T\" (seq bigint)" >/dev/null
	run --separate-stderr dp-sink-pg -t "$T" -g "$G" --table "$T" -e -q -X message.max.bytes=2000000
	[ "$status" -eq 0 ]
	[ "$(psql_dp -Atc "select seq from \"$T\"")" = 1 ]
	psql_dp -c "drop table \"$T\"" >/dev/null
}

@test "--filter transforms and drops values" {
	create_topic "$T"
	gen_prices 16 | dp-publish -t "$T"
	run dp-tail -t "$T" --from beginning -e --filter 'select(.fsym == "ETH") | {s: .seq}'
	[ "$status" -eq 0 ]
	[ "$output" = $'{"s":1}\n{"s":9}' ]
	run dp-tail -t "$T" --from beginning -e --envelope --filter '.offset'
	[ "$(tail -1 <<<"$output")" = 15 ]
}

@test "jq and big numbers: the fast shapes keep an integer's bytes, libjq warns once" {
	create_topic "$T"
	printf '%s\n' '{"id":288230376151711744,"n":13911860366432393}' \
		'{"id":288230376151711745,"n":1}' | dp-publish -t "$T"
	run --separate-stderr dp-tail -t "$T" --from beginning -e --filter '{id,n}'
	[ "$status" -eq 0 ]
	[ "$output" = '{"id":288230376151711744,"n":13911860366432393}
{"id":288230376151711745,"n":1}' ]
	[ "$stderr" = "" ]
	run --separate-stderr dp-tail -t "$T" --from beginning -e --filter '.id'
	[ "$output" = $'288230376151711744\n288230376151711745' ]
	run --separate-stderr dp-tail -t "$T" --from beginning -e \
		--filter 'select(.n > 2 and .id != null) | {n: (.n | tostring), "the id": .id}'
	[ "$output" = '{"n":"13911860366432393","the id":288230376151711744}' ]
	[ "$stderr" = "" ]
	# Arithmetic is libjq's: the digits may change, and it says so, once.
	run --separate-stderr dp-tail -t "$T" --from beginning -e --filter '[.id + 0]'
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	[ "$stderr" = "dp-tail: jq expression '[.id + 0]' sees the integer 288230376151711744, beyond 2^53: libjq holds numbers as doubles and may change its last digits (see \"jq and big numbers\" in the man page)" ]
}

@test "--non-json: error names the record, skip, string and base64 carry it" {
	create_topic "$T"
	printf '{"a":1}\nplain\n\xff\xfe\n' | kcat_produce "$T"
	run dp-tail -t "$T" --from beginning -e
	[ "$status" -eq 65 ]
	[[ $output == *"dp-tail: $T [0] offset 1: value is not JSON (unexpected character at byte 1); see --non-json"* ]]
	run dp-tail -t "$T" --from beginning -e --non-json skip
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = '{"a":1}' ]
	[[ ${lines[1]} == *"2 records skipped"* ]]
	run dp-tail -t "$T" --from beginning -e --non-json string
	[ "${lines[1]}" = '"plain"' ]
	[ "${lines[2]}" = '"//4="' ]
	run dp-tail -t "$T" --from beginning -e --non-json base64
	[ "${lines[1]}" = '"cGxhaW4="' ]
	# An empty value has no byte to point at.
	printf 'k:\n' | kcat_produce "$T" -K:
	run dp-tail -t "$T" --from 3 -e
	[ "$status" -eq 65 ]
	[ "$output" = "dp-tail: $T [0] offset 3: value is not JSON (empty value); see --non-json" ]
}

@test "a ^regex subscription picks up topics created later" {
	create_topic "$T.a"
	echo '{"n":1}' | dp-publish -t "$T.a"
	dp-tail -t "^$T\\..*" --from beginning -n 2 > "$W/out" 2> "$W/err" &
	pid=$!
	wait_until 20 test -s "$W/out"
	create_topic "$T.b"
	echo '{"n":2}' | dp-publish -t "$T.b"
	two_lines() { [ "$(wc -l < "$W/out")" -ge 2 ]; }
	wait_until 30 two_lines || { kill "$pid"; false; }
	wait "$pid"
	[ "$(jq -s -c 'map(.n) | sort' "$W/out")" = "[1,2]" ]
}

@test "an unreachable broker gives exit 69, a missing topic 81" {
	port=$(free_port)
	start=$SECONDS
	run dp-tail -b "127.0.0.1:$port" -t x -e --timeout 2s
	[ "$status" -eq 69 ]
	[ $((SECONDS - start)) -le 10 ]
	[[ $output == *"no kafka broker answered"* ]]
	run dp-tail -t "$T" -e
	[ "$status" -eq 81 ]
	[[ $output == *"topic '$T' does not exist"* ]]
}

@test "usage errors exit 64" {
	run dp-tail
	[ "$status" -eq 64 ]
	run dp-tail -t x --from stored
	[ "$status" -eq 64 ]
	[[ $output == *"needs a consumer group"* ]]
	run dp-tail -t x --from yesterday
	[ "$status" -eq 64 ]
	run dp-tail -t x -n 0
	[ "$status" -eq 64 ]
	run dp-tail -t x --filter '.a['
	[ "$status" -eq 64 ]
}

@test "--progress reports on stderr while stdout stays data only" {
	create_topic "$T"
	gen_prices 3000 | dp-publish -t "$T"
	dp-tail -t "$T" --from beginning -e --progress > "$W/out" 2> "$W/err"
	[ "$(wc -l < "$W/out")" -eq 3000 ]
	grep -Eq '^dp-tail: progress: 3000 records, [0-9]+/s overall$' "$W/err"
}

@test "a live tail hands each record to the reader at once, not when a buffer fills" {
	create_topic "$T"
	dp-tail -t "$T" -v > "$W/out" 2> "$W/err" &
	pid=$!
	wait_until 20 grep -q "$T \\[0\\] at end" "$W/err"
	echo '{"n":1}' | dp-publish -t "$T"
	has_line() { grep -qx '{"n":1}' "$W/out"; }
	wait_until 5 has_line || { kill "$pid"; false; }
	kill -TERM "$pid"
	wait "$pid"
}

@test "--until @TIME ends on an idle topic once the time has passed" {
	create_topic "$T" 2
	echo '{"n":1}' | dp-publish -t "$T" -p 0
	start=$SECONDS
	run dp-tail -t "$T" --from beginning --until @+2s
	[ "$status" -eq 0 ]
	[ "$output" = '{"n":1}' ]
	[ $((SECONDS - start)) -le 10 ]
}

@test "secret -X values vanish from the command line; bad options never echo values" {
	create_topic "$T"
	dp-tail -t "$T" -X sasl.password=hunter2 -v > "$W/out" 2> "$W/err" &
	pid=$!
	wait_until 20 grep -q "at end" "$W/err"
	cmdline=$(tr '\0' ' ' < "/proc/$pid/cmdline")
	kill -TERM "$pid"
	wait "$pid"
	[[ $cmdline == *"sasl.password=*******"* ]]
	[[ $cmdline != *hunter2* ]]
	run dp-tail -t "$T" --sasl-password=hunter2
	[ "$status" -eq 64 ]
	[[ $output == *"unknown option or missing value: '--sasl-password'"* ]]
	[[ $output != *hunter2* ]]
}

@test "SIGINT while connecting ends dp-tail within a second, with status 0" {
	blackhole_start
	for g in "" "-g $G"; do
		# shellcheck disable=SC2086 # $g is one option or none
		signal_within 2 INT dp-tail -b "127.0.0.1:$BLACKHOLE_PORT" -t "$T" $g --trace-states
		[ "$status" -eq 0 ]
		[ "$SIGNAL_ELAPSED_MS" -lt 1500 ]
		[[ $stderr == *'"from":"connecting","event":"signal","to":"done"'* ]]
	done
}

@test "-p reads only the partitions named, as kcat -p does" {
	create_topic "$T" 3
	for p in 0 1 2; do
		gen_prices 5 $((p * 100)) | dp-publish -t "$T" -p "$p"
	done
	run dp-tail -t "$T" -p 1 --from beginning -e --envelope
	[ "$status" -eq 0 ]
	[ "$(jq -s -c 'map([.partition, .value.seq])' <<<"$output")" = \
		"[[1,100],[1,101],[1,102],[1,103],[1,104]]" ]
	run dp-tail -t "$T" -p 2 -p 0 --from -2 -e
	[ "$(jq -s -c 'map(.seq) | sort' <<<"$output")" = "[3,4,203,204]" ]
	# A partition the topic does not have: named, nothing read.
	run dp-tail -t "$T" -p 3 -e
	[ "$status" -eq 81 ]
	[[ $output == *"topic '$T' has no partition 3 (it has 3: 0-2)"* ]]
	run dp-tail -t "$T" -p 1 -g "$G"
	[ "$status" -eq 64 ]
	run dp-tail -t "^$T" -p 1
	[ "$status" -eq 64 ]
	run dp-tail -t "$T" -p -1
	[ "$status" -eq 64 ]
}

@test "-r prints JSON strings as their text, as jq -r does; other values stay JSON" {
	create_topic "$T"
	printf '%s\n' '"plain"' '"tab\there \"quoted\" \u00e9\ud83d\ude00"' '{"a":"b"}' '42' \
		'null' '[1,"x"]' '""' | kcat_produce "$T"
	dp-tail -t "$T" --from beginning -e -r > "$W/out"
	kcat_payloads "$T" | jq -r -c . > "$W/jq"
	cmp "$W/out" "$W/jq"
	[ "$(sed -n 2p "$W/out")" = $'tab\there "quoted" \u00e9\U0001F600' ]
	# With --filter, each result the filter gives.
	run dp-tail -t "$T" --from beginning -e -r --filter 'select(type == "object") | .a, .'
	[ "$output" = $'b\n{"a":"b"}' ]
	# --non-json string: the text itself comes back.
	printf 'not json\n' | kcat_produce "$T"
	run dp-tail -t "$T" --from -1 -e -r --non-json string
	[ "$output" = "not json" ]
}

@test "a member that loses partitions to a rebalance commits them first" {
	create_topic "$T" 2
	gen_prices 1000 | dp-publish -t "$T" -k .fsym
	for strategy in range cooperative-sticky; do
		g=$G.$strategy
		# Periodic commits never come here: only the one at the revoke can
		# tell the second member where to start.
		dp-tail -t "$T" -g "$g" --from beginning -X auto.commit.interval.ms=600000 \
			-X partition.assignment.strategy=$strategy --trace-states \
			> "$W/a.out" 2> "$W/a.err" &
		a=$!
		all_read() { [ "$(wc -l < "$W/a.out")" -eq 1000 ]; }
		wait_until 30 all_read || { kill "$a"; false; }
		run dp-tail -t "$T" -g "$g" -e -X partition.assignment.strategy=$strategy
		[ "$status" -eq 0 ]
		[ -z "$output" ]
		kill -TERM "$a"
		wait "$a"
		transitions "$W/a.err" | grep -qx 'consuming revoked consuming'
		transitions "$W/a.err" | tail -1 | grep -qx 'closing closed done'
	done
}

@test "a commit that fails at a revoke is reported and ends in status 75" {
	create_topic "$T"
	gen_prices 100 | dp-publish -t "$T"
	dp-tail -t "$T" -g "$G" --from beginning -X session.timeout.ms=6000 \
		-X heartbeat.interval.ms=500 -X auto.commit.interval.ms=600000 --trace-states \
		> "$W/a.out" 2> "$W/a.err" &
	a=$!
	all_read() { [ "$(wc -l < "$W/a.out")" -eq 100 ]; }
	wait_until 30 all_read || { kill "$a"; false; }
	# Frozen past its session timeout, the member loses its partition to a
	# second one; when it wakes up, its partition is gone uncommitted.
	kill -STOP "$a"
	dp-tail -t "$T" -g "$G" -v > "$W/b.out" 2> "$W/b.err" &
	b=$!
	wait_until 30 grep -q "reading $T \\[0\\]" "$W/b.err" || { kill -9 "$a" "$b"; false; }
	kill -CONT "$a"
	wait_until 30 grep -q "cannot commit offsets for group '$G' at a rebalance" "$W/a.err" ||
		{ kill "$a" "$b"; false; }
	kill -TERM "$a" "$b"
	status=0
	wait "$a" || status=$?
	[ "$status" -eq 75 ]
	grep -q "the partitions were lost to the group first" "$W/a.err"
	transitions "$W/a.err" | tail -1 | grep -qx 'closing commit_failed failed'
	wait "$b"
	# At least once: the second member read what the first never committed.
	[ "$(wc -l < "$W/b.out")" -eq 100 ]
}

@test "a failed write to stdout ends in failed with status 74" {
	create_topic "$T"
	gen_prices 10 | dp-publish -t "$T"
	# With -e the last records are written once all were read: in closing.
	run bash -c 'dp-tail -t "$1" --from beginning -e --trace-states > /dev/full' _ "$T"
	[ "$status" -eq 74 ]
	[[ $output == *"cannot write to stdout: No space left on device"* ]]
	[[ $output == *'"from":"closing","event":"failed","to":"failed"'* ]]
	# Without an end, at the first sync point while consuming.
	run bash -c 'dp-tail -t "$1" --from beginning --trace-states > /dev/full' _ "$T"
	[ "$status" -eq 74 ]
	[[ $output == *"cannot write to stdout: No space left on device"* ]]
	[[ $output == *'"from":"consuming","event":"fatal","to":"closing"'* ]]
	[[ $output == *'"from":"closing","event":"failed","to":"failed"'* ]]
}

@test "a bad record ends in failed, not done; a bad property in connecting" {
	create_topic "$T"
	printf 'plain\n' | kcat_produce "$T"
	run dp-tail -t "$T" --from beginning -e --trace-states
	[ "$status" -eq 65 ]
	[[ $output == *'"from":"consuming","event":"bad_record","to":"closing"'* ]]
	[[ $output == *'"from":"closing","event":"failed","to":"failed"'* ]]
	run dp-tail -t "$T" -X no.such.property=1 --trace-states
	[ "$status" -eq 78 ]
	[[ $output == *"invalid kafka property 'no.such.property'"* ]]
	[[ $output == *'"from":"connecting","event":"bad_config","to":"failed"'* ]]
}

@test "a topic deleted under a reader ends it with 81, with or without a group" {
	T=$(new_topic)
	create_topic "$T"
	dp-tail -t "$T" --trace-states >/dev/null 2>"$BATS_TEST_TMPDIR/simple.err" &
	DELETED_PIDS=($!)
	dp-tail -t "$T" -g "$(uniq_name g)" -X topic.metadata.refresh.interval.ms=1000 \
		--trace-states >/dev/null 2>"$BATS_TEST_TMPDIR/group.err" &
	DELETED_PIDS+=($!)
	wait_until 10 grep -q '"to":"consuming"' "$BATS_TEST_TMPDIR/simple.err"
	wait_until 10 grep -q '"to":"consuming"' "$BATS_TEST_TMPDIR/group.err"
	dp-topic delete "$T" -o json >/dev/null
	for pid in "${DELETED_PIDS[@]}"; do
		wait_until 30 proc_gone "$pid"
		rc=0
		wait "$pid" || rc=$?
		[ "$rc" -eq 81 ]
	done
	DELETED_PIDS=()
	grep -q "$T \[0\]: topic does not exist" "$BATS_TEST_TMPDIR/simple.err"
	grep -q "Subscribed topic not available" "$BATS_TEST_TMPDIR/group.err"
}
