#!/usr/bin/env bats
# dp-sink-pg -t/-g: Kafka topics into PostgreSQL, exactly once, against the
# harness's Kafka and PostgreSQL.  What a user sees: rows in the table
# compared key by key with what kcat reads from the topic, the offsets table,
# the group's offsets in Kafka, stderr, exit status.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/kafka
load helpers/sink

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-240}

setup() {
	W=$BATS_TEST_TMPDIR
	T=$(new_topic)
	G=$(uniq_name g)
	BG_PIDS=()
	RESTART_PID=
	FEED=
}

teardown() {
	stop_background
	psql_dp -c "drop table if exists \"$T\"" >/dev/null 2>&1 || true
}

# --- helpers -------------------------------------------------------------------

# The table's keys are exactly the topic's keys, each once (dp-publish -k .seq
# makes the key the record's seq).
same_keys() { # TOPIC [TABLE]
	kcat -b "$DP_BROKERS" -C -t "$1" -e -q -o beginning -f '%k\n' | LC_ALL=C sort -n > "$W/kafka.keys"
	psql_dp -c "select seq from $(ident "${2:-$1}") order by seq" > "$W/table.keys"
	echo "kafka: $(wc -l < "$W/kafka.keys") keys, table: $(wc -l < "$W/table.keys") rows"
	[ -s "$W/kafka.keys" ]
	diff "$W/kafka.keys" "$W/table.keys"
}
# The offsets table holds each partition's high watermark, and so does the group in Kafka.
offsets_at_end() { # TOPIC GROUP
	dp-topic offsets "$1" -g "$2" -o json |
		jq -r '"\(.partition) \(.high) \(.committed // .high)"' | sort > "$W/kafka.offsets"
	psql_dp -c "select partition, next_offset from dp_sink_offsets
	            where \"group\" = '$2' and topic = '$1' order by 1" > "$W/db.offsets"
	awk '$2 > 0 { print $1 "|" $2 }' "$W/kafka.offsets" > "$W/want.offsets"
	diff "$W/want.offsets" "$W/db.offsets"
	awk '$2 != $3 { print "partition " $1 ": committed " $3 ", high " $2; bad = 1 } END { exit bad }' \
		"$W/kafka.offsets"
}
publish() { dp-publish -t "$1" -k .seq; }     # records from stdin, keyed by seq
# stream N SECONDS: $T gets N records over about SECONDS, in the background (PUB)
stream() {
	records "$1" > "$W/in"
	pace "$W/in" "$2" | publish "$T" &
	PUB=$!
	BG_PIDS+=("$PUB")
}
sink_bg() { # ERRFILE ARGS...: a dp-sink-pg in the background, its pid in SINK_PID
	local err=$1
	shift
	dp-sink-pg "$@" > /dev/null 2> "$err" &
	SINK_PID=$!
	BG_PIDS+=("$SINK_PID")
}
states() { grep '^{' "$1" | jq -r '"\(.from) \(.event) \(.to)"'; }
assigned_in() { grep -q '"event":"assigned"' "$1"; }
stored_sum() { psql_dp -c "select coalesce(sum(next_offset), 0) from dp_sink_offsets where \"group\" = '$G' and topic = '$T'"; }
stored_is() { [[ $(stored_sum) == "$1" ]]; }
# end_stream N PID: once the table holds N rows and the stored offsets say
# so, SIGTERM ends the sink PID with 0, and the table is the topic, once
end_stream() {
	wait_until 90 count_is "$1"
	wait_until 10 stored_is "$1"
	kill -TERM "$2"
	status=0
	wait "$2" || status=$?
	[ "$status" -eq 0 ]
	same_keys "$T"
	offsets_at_end "$T" "$G"
}

# --- command line ------------------------------------------------------------------

@test "Kafka input: usage errors say what is wrong and exit 64" {
	run dp-sink-pg -t x
	[ "$status" -eq 64 ]
	[[ $output == *"-t needs a consumer group (-g GROUP): its offsets are stored in the database under that name"* ]]
	run dp-sink-pg -t x -g g --stdin
	[ "$status" -eq 64 ]
	[[ $output == *"give --stdin or -t TOPIC, not both"* ]]
	run dp-sink-pg -t x -g g --source-id s
	[ "$status" -eq 64 ]
	[[ $output == *"--source-id is for --stdin; with -t the partitions are the sources"* ]]
	run dp-sink-pg -t a -t b -g g
	[ "$status" -eq 64 ]
	[[ $output == *"several topics need --table: their rows go into one table"* ]]
	run dp-sink-pg -t '^a(' -g g --table x
	[ "$status" -eq 64 ]
	[[ $output == *"invalid topic pattern '^a('"* ]]
	run dp-sink-pg --stdin --table x --on-error dlq=bad
	[ "$status" -eq 64 ]
	[[ $output == *"--on-error dlq needs Kafka input (-t TOPIC -g GROUP)"* ]]
	run dp-sink-pg -t x -g g --on-error dlq=x
	[ "$status" -eq 64 ]
	[[ $output == *"--on-error dlq=x: the dead-letter topic cannot be one that is read"* ]]
	run dp-sink-pg -t x -g g --on-error maybe
	[ "$status" -eq 64 ]
	[[ $output == *"invalid --on-error 'maybe': expected fail, skip or dlq=TOPIC"* ]]
	run dp-sink-pg --stdin --table x -e
	[ "$status" -eq 64 ]
	[[ $output == *"-e is for Kafka input (-t)"* ]]
	run dp-sink-pg -t x -g g --writers 0
	[ "$status" -eq 64 ]
	[[ $output == *"invalid --writers"* ]]
}

@test "an unreachable broker: exit 69 within --timeout, naming the brokers" {
	port=$(free_port)
	t0=$SECONDS
	run --separate-stderr dp-sink-pg -t x -g g -b "127.0.0.1:$port" --timeout 2s --table x --create
	[ "$status" -eq 69 ]
	[ $((SECONDS - t0)) -le 6 ]
	[[ $stderr == *"no kafka broker answered within 2s (brokers 127.0.0.1:$port)"* ]]
	# a topic or a dead-letter topic that is not there
	run --separate-stderr dp-sink-pg -t "$T" -g "$G" --create
	[ "$status" -eq 81 ]
	[[ $stderr == *"topic '$T' does not exist; create it with 'dp-topic create $T'"* ]]
	create_topic "$T"
	run --separate-stderr dp-sink-pg -t "$T" -g "$G" --create --on-error "dlq=$T.dlq"
	[ "$status" -eq 81 ]
	[[ $stderr == *"topic '$T.dlq' does not exist"* ]]
}

# --- the stream --------------------------------------------------------------------

@test "a 3-partition topic into a table: each record once, the offsets in the table and in the group" {
	create_topic "$T" 3
	records 30000 | publish "$T"
	run --separate-stderr dp-sink-pg -t "$T" -g "$G" -e --create -v --trace-states --batch-rows 4000
	[ "$status" -eq 0 ]
	same_keys "$T"
	offsets_at_end "$T" "$G"
	[[ $stderr == *"$T [0]: from offset 0 (nothing stored yet)"* ]]
	[[ $stderr == *"every partition is at its end as it was at start (-e)"* ]]
	[[ $stderr == *"wrote 30000 rows in "*" batches to $T"* ]]
	trace=$(states <(echo "$stderr") | uniq | paste -sd,)
	[[ $trace == "idle start connecting,connecting connected idle,idle assigned idle,"* ]]
	[[ $trace == *",idle eof committing,committing committed closing,closing revoked closing,closing closed done" ]]
	# the next run starts where the table says: nothing again, then only the new records
	run --separate-stderr dp-sink-pg -t "$T" -g "$G" -e -v
	[ "$status" -eq 0 ]
	[[ $stderr == *"from offset "*" (stored)"* ]]
	[ "$(count)" = 30000 ]
	records 5000 30001 | publish "$T"
	run dp-sink-pg -t "$T" -g "$G" -e
	[ "$status" -eq 0 ]
	same_keys "$T"
	offsets_at_end "$T" "$G"
}

@test "small and large records flow: at the prefetch bound the fetcher starts again before the queue runs dry" {
	# librdkafka 2.0.2 stops fetching once its queue holds queued.min.messages
	# records or queued.max.messages.kbytes of payload, and decides again
	# only when something wakes it; it used to wait for its one-second timer
	# with the queue empty (1M 83-byte records took 77 s instead of 2).
	# 70-byte records under a count of 2000, less than one fetch of a
	# partition (256 KB: 3,700 of them), so the queue passes the bound
	# however fast the reader is.
	create_topic "$T" 1
	records 50000 | publish "$T"
	run --separate-stderr dp-sink-pg -t "$T" -g "$G" -e --create -vv -X debug=fetch,protocol \
		-X queued.min.messages=2000
	[ "$status" -eq 0 ]
	same_keys "$T"
	offsets_at_end "$T" "$G"
	fetcher_woken <(echo "$stderr")
	# 4 KB records under a byte bound of 128 KB, less than one fetch of a
	# partition (max.partition.fetch.bytes 256 KB): the queue passes the
	# bound however fast the reader is
	create_topic "${T}_big" 2
	records 2000 | jq -c --arg pad "$(printf '%04000d' 0)" '. + {pad: $pad}' | publish "${T}_big"
	run --separate-stderr dp-sink-pg -t "${T}_big" -g "$G" -e --create -vv -X debug=fetch,protocol \
		-X queued.max.messages.kbytes=128
	[ "$status" -eq 0 ]
	same_keys "${T}_big"
	fetcher_woken <(echo "$stderr")
	psql_dp -c "drop table if exists \"${T}_big\""
}

@test "-t at the defaults holds 1 KB records from 6 partitions in under 32 MB; --batch-bytes counts their JSON" {
	# A batch was due at --batch-bytes of encoded rows alone, while it also
	# kept each row's JSON, and only the batches being filled counted
	# towards the memory bound, not those queued and running: 70-80 MB.
	[[ $DP_BIN != *asan* ]] || skip "sanitizers change memory use"
	create_topic "$T" 6
	python3 -c '
import sys
book = ",".join("[%d.5,%d]" % (k, k) for k in range(100, 200))
for i in range(1, 40001):
    sys.stdout.write("{\"seq\":%d,\"fsym\":\"BTC\",\"book\":[%s]}\n" % (i, book))' > "$W/in"
	[ "$(head -1 "$W/in" | wc -c)" -gt 1000 ]
	publish "$T" < "$W/in"
	psql_dp -c "create table \"$T\" (seq bigint primary key, fsym text, book jsonb)"
	run --separate-stderr /usr/bin/time -f '%M' -o "$W/rss" dp-sink-pg -t "$T" -g "$G" -e -v
	[ "$status" -eq 0 ]
	same_keys "$T"
	rss=$(tail -1 "$W/rss")
	echo "peak RSS ${rss} KB"
	[ "$rss" -lt 32768 ]
	# 40 MB of JSON and about as much encoded: at 1M a batch, 80 batches or more
	psql_dp -c "truncate \"$T\"" -c "delete from dp_sink_offsets where \"group\" = '$G'"
	run --separate-stderr dp-sink-pg -t "$T" -g "$G" -e -v --batch-bytes 1M --batch-rows 100000
	[ "$status" -eq 0 ]
	echo "$stderr" | grep 'wrote 40000 rows in'
	batches=$(echo "$stderr" | sed -n 's/.*wrote 40000 rows in \([0-9]*\) batches.*/\1/p')
	[ "$batches" -ge 80 ]
}

@test "^regex topics into one --table; --progress shows rows/s, lag and batch latency" {
	create_topic "$T.a" 2
	create_topic "$T.b" 1
	records 3000 | publish "$T.a"
	records 2000 3001 | publish "$T.b"
	run --separate-stderr dp-sink-pg -t "^${T//./\\.}\\.[ab]\$" -g "$G" --table "$T" --create -e --progress
	[ "$status" -eq 0 ]
	[ "$(q "select count(*), count(distinct seq), min(seq), max(seq) from \"$T\"")" = "5000|5000|1|5000" ]
	[[ $stderr == *"progress: 5000 rows, "*"/s overall, lag 0, batch latency "*" ms"* ]]
}

@test "a quiet topic lands its rows within --linger, and SIGTERM commits, leaves the group, exits 0" {
	create_topic "$T" 2
	sink_bg "$W/err" -t "$T" -g "$G" --create --linger 200ms --trace-states
	wait_until 20 assigned_in "$W/err"
	records 3 | publish "$T"
	wait_until 5 count_is 3
	records 2 4 | publish "$T"
	wait_until 5 count_is 5
	# a stream in flight when the signal comes
	records 20000 6 | pace 4 | publish "$T" &
	BG_PIDS+=($!)
	wait_until 20 count_at_least 1000
	kill -TERM "$SINK_PID"
	t0=$SECONDS
	status=0
	wait "$SINK_PID" || status=$?
	[ "$status" -eq 0 ]
	[ $((SECONDS - t0)) -le 3 ]
	states "$W/err" | tail -3 | paste -sd, | grep -q "committing committed closing,closing revoked closing,closing closed done"
	# what was read is committed, and the stored offsets say how far
	got=$(count)
	[ "$got" -ge 1000 ]
	[ "$(stored_sum)" = "$got" ]
	[ "$(q "select count(distinct seq) from \"$T\"")" = "$got" ]
	# the group's offsets in Kafka were committed at the end too
	dp-topic offsets "$T" -g "$G" -o json | jq -s 'map(.committed // 0) | add' > "$W/committed"
	[ "$(cat "$W/committed")" = "$got" ]
}

@test "SIGTERM while a lock holds the batches: rolled back within seconds, exit 75, nothing half-written" {
	create_topic "$T" 2
	records 50000 | publish "$T"
	psql_dp -c "create table \"$T\" (seq bigint, fsym text, ts timestamptz, price double precision)"
	# another session holds the table: the writers' COPY waits behind it
	PGAPPNAME=dp-test-locker psql_dp -c "begin" -c "lock table \"$T\"" -c "select pg_sleep(120)" &
	BG_PIDS+=($!)
	locked() {
		[[ $(psql_dp -c "select count(*) from pg_locks l join pg_class c on c.oid = l.relation
		                 where c.relname = '$T' and l.mode = 'AccessExclusiveLock' and l.granted") == 1 ]]
	}
	copy_waits() {
		[[ $(psql_dp -c "select count(*) from pg_stat_activity where application_name = 'dp-sink-pg'
		                 and wait_event_type = 'Lock' and query like '%$T%'") -ge 1 ]]
	}
	wait_until 10 locked
	sink_bg "$W/err" -t "$T" -g "$G" --batch-rows 1000 --trace-states
	wait_until 30 copy_waits
	kill -TERM "$SINK_PID"
	t0=$SECONDS
	status=0
	wait "$SINK_PID" || status=$?
	psql_dp -c "select pg_terminate_backend(pid) from pg_stat_activity
	            where application_name = 'dp-test-locker'" > /dev/null
	grep -v "^{" "$W/err" || true
	echo "status $status"; grep "^{" "$W/err" | jq -r "\"\\(.from) \\(.event) \\(.to)\"" | uniq -c | tail -12
	[ "$status" -eq 75 ]
	[ $((SECONDS - t0)) -le 8 ]
	grep -q "the batch in flight did not commit within 2000 ms of the signal: rolling it back" "$W/err"
	[ "$(count)" = 0 ]
	[ "$(stored_sum)" = 0 ]
	# the next run writes every record once
	run dp-sink-pg -t "$T" -g "$G" -e
	[ "$status" -eq 0 ]
	same_keys "$T"
	offsets_at_end "$T" "$G"
}

# --- exactly once ---------------------------------------------------------------------

@test "exactly once under crashes: SIGKILL 20 times while 200k records stream in" {
	create_topic "$T" 3
	stream 200000 40
	# static membership: a restarted member takes its partitions back at once
	args=(-t "$T" -g "$G" --create --batch-rows 2000 -X group.instance.id=crash
	      -X session.timeout.ms=6000)
	for i in $(seq 20); do
		sink_bg "$W/err.$i" "${args[@]}"
		got=$(count) || got=0
		# a moment somewhere in the next few batches, or in the startup
		wait_until 60 count_at_least $((${got:-0} + RANDOM % 6000 + 1))
		kill -KILL "$SINK_PID"
		wait "$SINK_PID" || true
		got=$(count)
		echo "kill $i at $got rows"
		[ "$(q "select count(distinct seq) from \"$T\"")" = "$got" ]
		[ "$(stored_sum)" = "$got" ]
	done
	wait "$PUB"
	run --separate-stderr dp-sink-pg "${args[@]}" -e
	[ "$status" -eq 0 ]
	same_keys "$T"
	offsets_at_end "$T" "$G"
	[ "$(count)" = 200000 ]
}

@test "two instances in one group, the second started mid-stream, the first killed later: each record once" {
	create_topic "$T" 4
	stream 60000 20
	args=(-t "$T" -g "$G" --create --batch-rows 1000 --trace-states -X session.timeout.ms=6000)
	sink_bg "$W/err.a" "${args[@]}"
	A=$SINK_PID
	wait_until 30 count_at_least 5000
	sink_bg "$W/err.b" "${args[@]}"
	B=$SINK_PID
	# the rebalance: A hands partitions over, B takes some
	wait_until 30 grep -q '"from":"idle","event":"revoked"' "$W/err.a"
	wait_until 30 assigned_in "$W/err.b"
	got=$(count)
	wait_until 30 count_at_least $((got + 5000))
	kill -KILL "$A"
	wait "$A" || true
	wait "$PUB"
	# B takes A's partitions after the session timeout and finishes the stream
	end_stream 60000 "$B"
	# both wrote
	[ "$(grep -c '"event":"assigned"' "$W/err.b")" -ge 2 ]
}

@test "a stale writer: another instance moved the stored offset, this one goes on from there" {
	create_topic "$T" 1
	records 1000 | publish "$T"
	sink_bg "$W/err" -t "$T" -g "$G" --create --linger 50ms
	wait_until 20 count_is 1000
	wait_until 10 stored_is 1000
	# as if another member of the group had written offsets 1000-1099
	records 100 1001 | python3 -c '
import json, sys
for l in sys.stdin:
    r = json.loads(l)
    print("%d\t%s\t%s\t%s" % (r["seq"], r["fsym"], r["ts"], r["price"]))' > "$W/fake"
	psql_dp -c "\\copy \"$T\" (seq, fsym, ts, price) from '$W/fake'" \
		-c "update dp_sink_offsets set next_offset = 1100 where \"group\" = '$G' and topic = '$T'"
	records 500 1001 | publish "$T"
	wait_until 30 count_is 1500
	wait_until 10 stored_is 1500
	kill -TERM "$SINK_PID"
	status=0
	wait "$SINK_PID" || status=$?
	[ "$status" -eq 0 ]
	grep -q "$T \[0\]: another dp-sink-pg of group '$G' wrote it meanwhile; going on from the offset it stored" "$W/err"
	[ "$(q "select count(*), count(distinct seq), min(seq), max(seq) from \"$T\"")" = "1500|1500|1|1500" ]
}

# --- outages ------------------------------------------------------------------------------

@test "PostgreSQL down for 20s mid-stream: partitions paused, nothing lost or twice, still in the group" {
	need_restart
	create_topic "$T" 3
	stream 60000 30
	sink_bg "$W/err" -t "$T" -g "$G" --create --batch-rows 1000 --trace-states
	wait_until 30 count_at_least 5000
	pg_restart_bg 20s
	wait_until 20 pg_down
	wait_until 30 grep -q '"to":"backoff"' "$W/err"
	wait "$RESTART_PID"
	wait "$PUB"
	end_stream 60000 "$SINK_PID"
	grep -q "lost the database" "$W/err"
	grep -q "reconnected to the database" "$W/err"
	states "$W/err" | grep -q "error outage paused"
	states "$W/err" | grep -q "reconnecting unavailable backoff"
	# one assignment at the start, one revoke at the end: it never left the group
	[ "$(grep -c '"event":"assigned"' "$W/err")" = 1 ]
	[ "$(grep -c '"event":"revoked"' "$W/err")" = 1 ]
	states "$W/err" | grep -q "closing revoked closing"
}

@test "a rebalance while PostgreSQL is down: the partitions wait, then start from the stored offsets" {
	need_restart
	create_topic "$T" 4
	stream 20000 10
	args=(-t "$T" -g "$G" --create --batch-rows 500 --trace-states -X session.timeout.ms=6000)
	sink_bg "$W/err.a" "${args[@]}"
	A=$SINK_PID
	wait_until 30 count_at_least 2000
	sink_bg "$W/err.b" "${args[@]}"
	B=$SINK_PID
	wait_until 30 assigned_in "$W/err.b"
	wait_until 30 grep -q '"from":"idle","event":"revoked"' "$W/err.a"
	pg_restart_bg 12s
	wait_until 20 pg_down
	wait_until 30 grep -q '"to":"backoff"' "$W/err.a"
	wait_until 30 grep -q '"to":"backoff"' "$W/err.b"
	# B leaves while the database is away: A is given its partitions in backoff
	kill -TERM "$B"
	status=0
	wait "$B" || status=$?
	[ "$status" -eq 75 ]
	grep -q "stopped while the database was away: records after the stored offsets are not written (the next run of group '$G' resumes there)" "$W/err.b"
	wait_until 30 grep -q '"from":"backoff","event":"revoked"' "$W/err.a"
	wait_until 30 grep -q '"from":"backoff","event":"assigned"' "$W/err.a"
	wait "$RESTART_PID"
	wait "$PUB"
	end_stream 20000 "$A"
}

@test "a broker restart under the sink: no gap and no repeat" {
	[[ -z ${DP_TEST_BROKERS:-} && -n ${DP_STACK_DIR:-} ]] ||
		skip "needs the harness's own Kafka to restart (DP_TEST_BROKERS is set, or DP_STACK_DIR is not)"
	create_topic "$T" 3
	records 40000 | publish "$T"
	sink_bg "$W/err" -t "$T" -g "$G" --create --batch-rows 1000 --trace-states \
		-X session.timeout.ms=6000
	wait_until 30 count_at_least 5000
	"$DP_ROOT/scripts/stack" restart kafka --down-for 2s > "$W/restart.log" 2>&1
	records 20000 40001 | publish "$T"
	end_stream 60000 "$SINK_PID"
}

# --- bad records -------------------------------------------------------------------------

# A topic of 1000 records, offsets 0-999, where offset 499 breaks the table's
# check constraint and offset 699 is not JSON; and a table that checks.
poisoned() {
	create_topic "$T" 1
	records 1000 | jq -c 'if .seq == 500 then .price = -1 else . end' |
		jq -r '"\(.seq)|\(tojson)"' | sed 's/^700|.*/700|not json {/' |
		kcat -b "$DP_BROKERS" -P -t "$T" -K '|'
	psql_dp -c "create table \"$T\" (seq bigint, fsym text, ts timestamptz, price double precision check (price > 0))"
}

@test "a poison record, --on-error fail: stops there, exit 65, everything before it committed" {
	poisoned
	run --separate-stderr dp-sink-pg -t "$T" -g "$G" -e
	[ "$status" -eq 65 ]
	[[ $stderr == *"$T [0] offset 499: new row for relation \"$T\" violates check constraint"*"(SQLSTATE 23514)"* ]]
	[[ $stderr == *"stopped at the bad record; the records before it are in $T (--on-error skip would go on)"* ]]
	[ "$(q "select count(*), max(seq) from \"$T\"")" = "499|499" ]
	[ "$(stored_sum)" = 499 ]
}

@test "a poison record, --on-error skip: reported, and the good rows of its batch land" {
	poisoned
	run --separate-stderr dp-sink-pg -t "$T" -g "$G" -e --on-error skip
	[ "$status" -eq 0 ]
	[[ $stderr == *"$T [0] offset 499: new row for relation \"$T\" violates check constraint"*"(SQLSTATE 23514)"* ]]
	[[ $stderr == *"$T [0] offset 699: not JSON: "* ]]
	[[ $stderr == *"2 bad records skipped"* ]]
	[ "$(q "select count(*), count(distinct seq), min(seq), max(seq) from \"$T\" where seq not in (500, 700)")" = "998|998|1|1000" ]
	[ "$(count)" = 998 ]
	[ "$(stored_sum)" = 1000 ]
}

@test "a poison record, --on-error dlq: the raw record goes to the dead-letter topic with its headers" {
	poisoned
	create_topic "$T.dlq"
	run --separate-stderr dp-sink-pg -t "$T" -g "$G" -e --on-error "dlq=$T.dlq"
	[ "$status" -eq 0 ]
	[[ $stderr == *"2 bad records sent to the dead-letter topic"* ]]
	[ "$(count)" = 998 ]
	# the client's refusal went at once, the server's when its batch was written
	run bash -c "kcat -b '$DP_BROKERS' -C -t '$T.dlq' -e -q -o beginning -f '%k|%s|%h\n' | sort -n"
	[ "${#lines[@]}" -eq 2 ]
	[[ ${lines[0]} == '500|{"seq":500,"fsym":"BTC","ts":"2026-01-01T00:08:20Z","price":-1}|dp-error=new row for relation "'"$T"'" violates check constraint'*',dp-sqlstate=23514,dp-topic='"$T"',dp-partition=0,dp-offset=499' ]]
	[[ ${lines[1]} == "700|not json {|dp-error=not JSON: "*",dp-topic=$T,dp-partition=0,dp-offset=699" ]]
}

@test "every bad record is named on stderr, not only the first ten" {
	create_topic "$T" 1
	{ records 5; for i in $(seq 6 20); do echo "$i|oops $i"; done; } |
		sed -E 's/^(\{"seq":([0-9]+).*)$/\2|\1/' | kcat -b "$DP_BROKERS" -P -t "$T" -K '|'
	run --separate-stderr dp-sink-pg -t "$T" -g "$G" -e --on-error skip --create
	[ "$status" -eq 0 ]
	[ "$(grep -c "^dp-sink-pg: $T \[0\] offset [0-9]*: not JSON" <<< "$stderr")" = 15 ]
	[[ $stderr == *"$T [0] offset 19: not JSON"* ]]
	[ "$(count)" = 5 ]
}
