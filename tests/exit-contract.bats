#!/usr/bin/env bats
# The exit statuses a script can trust, the same in every command (lib/core/frame.h,
# lib/core/exit.h): exit 0 only when a bounded input was read to its end and
# delivered, 128 + the signal when SIGINT or SIGTERM came before that, 0 for
# a stop of a command without an end; closed standard descriptors; one
# status per cause.  The spool recipes run as README, dp-sink-pg(1) and
# examples/cron-fetch.sh write them: the signal goes to the process group
# (Ctrl-C) or to the one command, and the spool must stay.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/kafka
load helpers/fetch

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-120}
FIX=$BATS_TEST_DIRNAME/fixtures/cryptocompare

setup() {
	fetch_setup
	T=$(new_topic)
	BG_PIDS=()
	GROUPS_RUN=()
	TABLES=()
}

teardown() {
	local g t
	for g in "${GROUPS_RUN[@]}"; do
		kill -KILL -- "-$g" 2>/dev/null || true
	done
	bg_kill
	fetch_teardown
	blackhole_stop
	"$DP_ROOT/scripts/replay" down 2>/dev/null || true
	for t in "${TABLES[@]}"; do
		psql_dp -c "drop table if exists \"$t\"" 2>/dev/null || true
	done
}

# spool FILE N: N lines of JSON, as a spool that earlier runs left
spool() {
	seq 1 "$2" | awk '{ printf "{\"fsym\":\"BTC\",\"n\":%d}\n", $1 }' >"$1"
}

# slow_broker: librdkafka properties (DP_CONFIG, not the command line) that
# send a batch of at most 100 records every 100 ms: a publish that takes
# long enough for a signal to find it in the middle, whatever the machine
slow_broker() {
	printf 'linger.ms=100\nbatch.num.messages=1000\nqueue.buffering.max.messages=100\n' \
		>"$W/slow.properties"
	export DP_CONFIG=$W/slow.properties
}

# recipe NAME SHELL-LINE ARGS...: run the line with bash, as a user's shell
# would, in a session of its own (a terminal's process group), stderr to
# $W/NAME.err, and its status (what `&&` saw) to $W/NAME.rc; sets PGID
recipe() {
	local name=$1 line=$2
	shift 2
	setsid bash -c "$line; echo \$? >'$W/$name.rc'" _ "$@" 2>"$W/$name.err" &
	PGID=$!
	BG_PIDS+=("$PGID")
	GROUPS_RUN+=("$PGID")
}

# child NAME PID: prints the PID of PID's child (or grandchild) called NAME
child() {
	local p c
	for p in $(cat /proc/"$2"/task/*/children 2>/dev/null); do
		if [[ $(cat "/proc/$p/comm" 2>/dev/null) == "$1" ]]; then
			echo "$p"
			return 0
		fi
		for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do
			[[ $(cat "/proc/$c/comm" 2>/dev/null) == "$1" ]] && { echo "$c"; return 0; }
		done
	done
	return 1
}

# done_rc NAME: the recipe wrote its status; prints it
done_rc() { [[ -s $W/$1.rc ]]; }
rc_of() { wait_until 30 done_rc "$1" && cat "$W/$1.rc"; }

# at_least TOPIC N: TOPIC's end offsets add up to N or more (kcat -e would
# wait for a topic written to all the time)
at_least() { [ "$(dp-topic offsets "$1" -o json | jq -s 'map(.high) | add')" -ge "$2" ]; }
rows_at_least() { [ "$(psql_dp -c "select count(*) from \"$1\"" 2>/dev/null || echo 0)" -ge "$2" ]; }

# delivered NAME: the count that "stopped by SIG...: N lines delivered" names
delivered() {
	sed -n 's/.*stopped by SIG[A-Z]* before the end: \([0-9]*\) lines* delivered.*/\1/p' "$W/$1.err"
}

# ---- 1. exit 0 only at the end of a bounded input ---------------------------

@test "dp-publish <spool && rm spool: Ctrl-C (SIGINT to the group) keeps the spool, 130, what it said delivered is in the topic" {
	create_topic "$T"
	spool "$W/btc.spool" 100000
	cp "$W/btc.spool" "$W/want"
	slow_broker
	recipe pub 'dp-publish -t "$1" <"$2" && rm "$2"' "$T" "$W/btc.spool"
	wait_until 30 at_least "$T" 500
	kill -INT -- "-$PGID"
	[ "$(rc_of pub)" -eq 130 ]
	cat "$W/pub.err"
	cmp "$W/want" "$W/btc.spool"            # kept, as it was
	grep -Eq '^dp-publish: stopped by SIGINT before the end: [0-9]+ lines delivered, [0-9]+ not delivered' "$W/pub.err"
	n=$(delivered pub)
	left=$(sed -n 's/.* lines delivered, \([0-9]*\) not delivered.*/\1/p' "$W/pub.err")
	((n > 0 && n < 100000))
	[ $((n + left)) -eq 100000 ]
	[ "$(kcat_count "$T")" -eq "$n" ]
	# They are the first n lines, in order: the next run publishes the spool again.
	kcat_payloads "$T" -m 1000000 | cmp - <(head -n "$n" "$W/want")
}

@test "dp-publish <spool && rm spool: SIGTERM to dp-publish keeps the spool, 143" {
	create_topic "$T"
	spool "$W/btc.spool" 100000
	slow_broker
	recipe pub 'dp-publish -t "$1" <"$2" && rm "$2"' "$T" "$W/btc.spool"
	wait_until 30 at_least "$T" 500
	pid=$(child dp-publish "$PGID")
	kill -TERM "$pid"
	[ "$(rc_of pub)" -eq 143 ]
	[ "$(wc -l <"$W/btc.spool")" -eq 100000 ]
	grep -q "^dp-publish: stopped by SIGTERM before the end: $(kcat_count "$T") lines delivered" "$W/pub.err"
}

@test "dp-publish <spool && rm spool: Ctrl-C while the broker does not answer keeps the spool, 130, nothing delivered" {
	blackhole_start
	spool "$W/btc.spool" 1000
	# Its transitions here, to see it connecting; the run's file gets them after.
	run_trace=${DP_TRACE_STATES:-}
	export DP_TRACE_STATES=$W/trace
	recipe pub 'dp-publish -b "$1" -t "$2" <"$3" && rm "$3"' "127.0.0.1:$BLACKHOLE_PORT" "$T" \
		"$W/btc.spool"
	wait_until 10 grep -q '"to":"connecting"' "$W/trace"
	kill -INT -- "-$PGID"
	[ "$(rc_of pub)" -eq 130 ]
	[[ -z $run_trace ]] || cat "$W/trace" >>"$run_trace"
	[ "$(wc -l <"$W/btc.spool")" -eq 1000 ]
	grep -qx "dp-publish: stopped by SIGINT before the end: 0 lines delivered, 1000 not delivered (not read)" "$W/pub.err"
}

@test "dp-sink-pg --stdin <spool && rm spool: SIGTERM to dp-sink-pg keeps the spool, 143, what it said delivered is in the table" {
	TABLES+=("$T")
	spool "$W/btc.spool" 400000
	# Some work per record (jq) makes the run long enough to be stopped in the middle.
	recipe sink 'dp-sink-pg --stdin --table "$1" --create --batch-rows 1000 \
		--map "reduce range(100) as \$i (.; .)" <"$2" && rm "$2"' "$T" "$W/btc.spool"
	wait_until 60 rows_at_least "$T" 2000
	pid=$(child dp-sink-pg "$PGID")
	kill -TERM "$pid"
	[ "$(rc_of sink)" -eq 143 ]
	cat "$W/sink.err"
	[ "$(wc -l <"$W/btc.spool")" -eq 400000 ]
	grep -Eq '^dp-sink-pg: stopped by SIGTERM before the end: [0-9]+ lines delivered, [0-9]+ not delivered \([0-9]+ of them not read\)$|^dp-sink-pg: stopped by SIGTERM before the end: [0-9]+ lines delivered, [0-9]+ not delivered \(not read\)$' "$W/sink.err"
	n=$(delivered sink)
	((n >= 2000 && n < 400000))
	[ "$(psql_dp -c "select count(*) from \"$T\"")" -eq "$n" ]
	[ "$(psql_dp -c "select max(n) from \"$T\"")" -eq "$n" ]
}

@test "examples/cron-fetch.sh: SIGTERM to its dp-publish keeps the spool for the next run, 143" {
	create_topic "$T"
	export DP_REPLAY_DIR=$W/replay DP_FETCH_DIR=$W/state
	eval "$("$DP_ROOT/scripts/replay" up 2>/dev/null)"
	mkdir -p "$W/state"
	# What failed runs left: published again, with the new candles, by this one.
	spool "$W/state/BTC-USD-hour.spool" 100000
	slow_broker
	recipe cron '"$1" BTC USD hour "$2"' "$DP_ROOT/examples/cron-fetch.sh" "$T"
	wait_until 30 at_least "$T" 500
	pid=$(child dp-publish "$PGID")
	kill -TERM "$pid"
	[ "$(rc_of cron)" -eq 143 ]
	cat "$W/cron.err"
	grep -q "cron-fetch.sh: dp-publish failed (143); $W/state/BTC-USD-hour.spool is kept for the next run" "$W/cron.err"
	# The old lines and the 10 new candles, which are not fetched again.
	[ "$(wc -l <"$W/state/BTC-USD-hour.spool")" -eq 100010 ]
	[ -s "$W/state/BTC-USD-hour.state" ]
	[ "$(kcat_count "$T")" -eq "$(delivered cron)" ]
}

@test "examples/cron-fetch.sh: SIGTERM to its dp-fetch moves no state, 143" {
	start_server ccserver.py '{"routes":{"/data/v2/histohour":[{"histo":"saundersconsult__histohour_v1.json","delay":30}]}}' "$FIX"
	export DP_CRYPTOCOMPARE_URL=http://127.0.0.1:$PORT DP_FETCH_DIR=$W/state
	recipe cron '"$1" BTC USD hour "$2"' "$DP_ROOT/examples/cron-fetch.sh" "$T"
	wait_until 10 test -s "$W/requests"
	pid=$(child dp-fetch "$PGID")
	kill -TERM "$pid"
	[ "$(rc_of cron)" -eq 143 ]
	grep -q "^dp-fetch: stopped by SIGTERM before the end: the fetch was not complete: 1 of 1 series not fetched to their end" "$W/cron.err"
	[ ! -s "$W/state/BTC-USD-hour.state" ]
	[ ! -s "$W/state/BTC-USD-hour.spool" ]
}

# Every command with an end: 130 for SIGINT, 143 for SIGTERM, before that
# end (here: while it waits for a server that never answers).  Without an
# end, a signal is the normal stop: 0.
@test "the same status in every command: 130/143 before the end of a bounded run, 0 for a run without one" {
	blackhole_start
	B=127.0.0.1:$BLACKHOLE_PORT
	bounded=(
		"dp-publish -b $B -t x"
		"dp-tail -b $B -t x -e"
		"dp-tail -b $B -t x -n 5"
		"dp-sink-pg --stdin --table x --db postgresql://127.0.0.1:$BLACKHOLE_PORT/x --timeout 30s"
		"dp-sink-pg -b $B -t x -g g -e --table x --create --timeout 30s"
		"dp-topic list -b $B"
		"dp-coord request dyn.x --source s --filter . -b $B"
		"dp-coord list -b $B"
		"dp-fetch price --fsyms BTC --tsyms USD --base-url http://$B"
	)
	unbounded=(
		"dp-tail -b $B -t x"
		"dp-sink-pg -b $B -t x -g g --table x --create --timeout 30s"
		"dp-coord serve -b $B"
		"dp-coord watch -b $B"
		"dp-fetch price --fsyms BTC --tsyms USD --every 1m --base-url http://$B"
	)
	for c in "${bounded[@]}"; do
		signal_within 2 INT $c --trace-states
		[[ $status -eq 130 ]] || { echo "$c: $status"; echo "$stderr"; false; }
		[[ $stderr == *"stopped by SIGINT before the end"* ]]
		signal_within 2 TERM $c --trace-states
		[[ $status -eq 143 ]] || { echo "$c: $status"; echo "$stderr"; false; }
	done
	for c in "${unbounded[@]}"; do
		signal_within 2 TERM $c --trace-states
		[[ $status -eq 0 ]] || { echo "$c: $status"; echo "$stderr"; false; }
		[[ $stderr != *"stopped by SIG"* ]]
	done
}

@test "a signal after the end of the input changes nothing: exit 0" {
	create_topic "$T"
	gen_prices 1000 | dp-publish -t "$T"
	# dp-tail -e at its end, its last 200 KB waiting for a reader that does
	# not read yet: the signal comes after everything was read.
	mkfifo "$W/fifo"
	dp-tail -t "$T" --from beginning -e --trace-states >"$W/fifo" 2>"$W/tail.err" &
	pid=$!
	exec 5<"$W/fifo"
	wait_until 10 grep -q '"event":"end"' "$W/tail.err"
	kill -TERM "$pid"
	[ "$(wc -l <&5)" -eq 1000 ]
	exec 5<&-
	st=0
	wait "$pid" || st=$?
	[ "$st" -eq 0 ]
	! grep -q "stopped by" "$W/tail.err"
}

# ---- 2. standard descriptors ---------------------------------------------------

# closed_in CMD..., closed_out CMD...: CMD with stdin, or stdout, closed (a
# function, so that bats' run captures around it, not instead of it)
closed_in() { "$@" <&-; }
closed_out() { "$@" >&-; }

@test "closed stdin: dp-publish and dp-sink-pg --stdin say so and exit 66 at once, nothing read from their own sockets" {
	create_topic "$T"
	run --separate-stderr closed_in timeout 20 dp-publish -t "$T"
	[ "$status" -eq 66 ]
	[ "$stderr" = "dp-publish: standard input is closed: nothing to read (give a file, a pipe, or </dev/null for no input)" ]
	run --separate-stderr closed_in timeout 20 dp-sink-pg --stdin --table "$T" --create
	[ "$status" -eq 66 ]
	[ "$stderr" = "dp-sink-pg: standard input is closed: nothing to read (give a file, a pipe, or </dev/null for no input)" ]
	[ "$(kcat_count "$T")" -eq 0 ]
	# dp-tail reads no stdin: it runs as usual.
	gen_prices 3 | dp-publish -t "$T"
	run --separate-stderr closed_in timeout 20 dp-tail -t "$T" --from beginning -e
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 3 ]
	# Nor does dp-sink-pg reading Kafka.
	TABLES+=("$T")
	run closed_in timeout 20 dp-sink-pg -t "$T" -g "$(uniq_name g)" --create -e
	[ "$status" -eq 0 ]
	[ "$(psql_dp -c "select count(*) from \"$T\"")" -eq 3 ]
}

@test "closed stdout: 74 before any side effect where it is needed, and no file takes its place" {
	create_topic "$T"
	gen_prices 3 >"$W/in"
	run --separate-stderr closed_out dp-publish -t "$T" --report <"$W/in"
	[ "$status" -eq 74 ]
	[ "$stderr" = "dp-publish: standard output is closed: nowhere to write (redirect it to a file, or >/dev/null to drop it)" ]
	[ "$(kcat_count "$T")" -eq 0 ]
	# Without --report it has nothing to print: it publishes.
	run closed_out dp-publish -t "$T" <"$W/in"
	[ "$status" -eq 0 ]
	[ "$(kcat_count "$T")" -eq 3 ]
	# dp-sink-pg prints nothing either.
	TABLES+=("$T")
	run closed_out dp-sink-pg --stdin --table "$T" --create <"$W/in"
	[ "$status" -eq 0 ]
	[ "$(psql_dp -c "select count(*) from \"$T\"")" -eq 3 ]
	# dp-tail with a group: nothing read, no offset committed.
	G=$(uniq_name g)
	run --separate-stderr closed_out dp-tail -t "$T" -g "$G" --from beginning -e
	[ "$status" -eq 74 ]
	[[ $stderr == "dp-tail: standard output is closed"* ]]
	run dp-topic offsets "$T" -g "$G" -o json
	[ "$(jq -r .committed <<<"$output")" = null ]
	run dp-tail -t "$T" -g "$G" -e
	[ "${#lines[@]}" -eq 3 ]
}

@test "closed stdout: dp-fetch ohlcv --state exits 74 and does not move its state" {
	start_server ccserver.py '{"routes":{"/data/v2/histohour":[{"histo":"saundersconsult__histohour_v1.json"}]}}' "$FIX"
	export DP_CRYPTOCOMPARE_URL=http://127.0.0.1:$PORT
	run --separate-stderr closed_out dp-fetch ohlcv --fsym BTC --tsym USD --interval hour --state "$W/btc.state"
	[ "$status" -eq 74 ]
	[[ $stderr == "dp-fetch: standard output is closed"* ]]
	[ ! -s "$W/btc.state" ]
	[ ! -s "$W/btc.state.lock" ]
	[ ! -s "$W/requests" ]                  # nothing asked of the API either
	# With stdout open, the same run prints the candles the state then records.
	run --separate-stderr dp-fetch ohlcv --fsym BTC --tsym USD --interval hour --state "$W/btc.state"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 10 ]
	grep -q '^BTC USD 1h ' "$W/btc.state"
}

# ---- 8. one status per cause ------------------------------------------------------

@test "a missing topic is 81 in every command" {
	M=$(new_topic)
	for c in "dp-publish -t $M" "dp-tail -t $M -e" "dp-sink-pg -t $M -g g -e --create" \
		"dp-topic describe $M" "dp-topic offsets $M" "dp-topic delete $M"; do
		run --separate-stderr $c </dev/null
		[[ $status -eq 81 ]] || { echo "$c: $status $stderr"; false; }
		[[ $stderr == *"'$M'"*"does not exist"* || $stderr == *"topic does not exist"* ]]
	done
	# A topic named by a record, and a dead-letter topic.
	create_topic "$T"
	run dp-publish --topic-expr '"'"$M"'"' <<<'{"a":1}'
	[ "$status" -eq 81 ]
	run dp-publish -t "$T" --on-error "dlq=$M" <<<'{"a":1}'
	[ "$status" -eq 81 ]
}

@test "the other causes: one status each, in every command" {
	port=$(free_port)
	for c in "dp-publish -t x" "dp-tail -t x -e" "dp-sink-pg -t x -g g -e --table x --create" \
		"dp-topic list" "dp-coord list"; do
		run $c -b "127.0.0.1:$port" --timeout 1s </dev/null        # nothing listens
		[[ $status -eq 69 ]] || { echo "$c: $status $output"; false; }
		run $c -X no.such.property=1 </dev/null                  # a bad property
		[[ $status -eq 78 ]] || { echo "$c: $status $output"; false; }
		run $c -F "$W/none.properties" </dev/null                # an unreadable -F
		[[ $status -eq 66 ]] || { echo "$c: $status $output"; false; }
	done
	run dp-sink-pg --stdin --table x --db "postgresql://127.0.0.1:$port/x" </dev/null
	[ "$status" -eq 69 ]
	# The database refusing the login is refused credentials, as Kafka's are: 77.
	if [[ $DP_PG =~ ^postgres(ql)?://[^@/]*@(.*)$ ]]; then
		run --separate-stderr dp-sink-pg --stdin --table x \
			--db "postgresql://dp_no_such_role@${BASH_REMATCH[2]}" </dev/null
		[ "$status" -eq 77 ]
		[[ $stderr == *'role "dp_no_such_role" does not exist'* ]]
	fi
	run dp-fetch price --fsyms BTC --tsyms USD --api-key-file "$W/none.key"
	[ "$status" -eq 66 ]
}
