#!/usr/bin/env bats
# Restarts and outages are said: a group member waiting for its partitions
# (a killed member's session not yet over) says so once, with the reason;
# the example unit's static membership gives a killed dp-sink-pg its
# partitions back at once; every consumer (lib/kafka/consumer.c: dp-sink-pg,
# dp-tail -g, dp-coord) says a broker outage once on stderr, and its end
# with its length.  Against the harness's Kafka (restarted for the outage)
# and PostgreSQL: stderr and the state traces.

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
	kafka_restart_wait || true
	psql_dp -c "drop table if exists \"$T\"" >/dev/null 2>&1 || true
}

assigned_in() { grep -q '"event":"assigned"' "$1"; }
said_in() { grep -q "$2" "$1"; }

# unit_cmd UNIT INSTANCE: the unit's ExecStart as argv, NUL-separated, as
# tests/helpers/unit.py gives it (the binaries of this tree, paths in $W;
# the stack's addresses come from the test's environment, not dp.env)
unit_cmd() {
	mkdir -p "$W/var" "$W/etc"
	: >> "$W/etc/dp.env"
	python3 "$DP_ROOT/tests/helpers/unit.py" "$1" "$2" "$DP_BIN" "$DP_ROOT/examples" "$W" |
		python3 -c 'import sys; f = sys.stdin.read().split("\0"); sys.stdout.write("\0".join(f[f.index("argv") + 1:]))'
}

@test "a member waiting for partitions behind a killed one says so once, with the reason" {
	create_topic "$T" 2
	records 20 | dp-publish -t "$T" -k .seq
	# the shortest session Kafka allows, so the wait is short
	dp-sink-pg -t "$T" -g "$G" --create -X session.timeout.ms=6000 --trace-states 2> "$W/a.err" &
	a=$!
	BG_PIDS+=("$a")
	wait_until 30 assigned_in "$W/a.err"
	kill -KILL "$a"
	dp-sink-pg -t "$T" -g "$G" --create -X session.timeout.ms=6000 --trace-states 2> "$W/b.err" &
	BG_PIDS+=($!)
	wait_until 30 assigned_in "$W/b.err"
	grep -v '^{' "$W/b.err" || true
	[ "$(grep -c "no partitions yet" "$W/b.err")" = 1 ]
	grep -q "dp-sink-pg: no partitions yet after [0-9]*s: group '$G' waits for 1 member to rejoin (dp-sink-pg on /127.0.0.1); a member that stopped without leaving the group (kill -9, a crash, a lost network) holds its partitions until its session times out (session.timeout.ms=6000); with -X group.instance.id=NAME a restarted member takes its own back at once" "$W/b.err"
	grep -q "dp-sink-pg: group '$G' gave this member its partitions after " "$W/b.err"
}

@test "examples/systemd/dp-sink-pg@.service: a member killed and started again has its partitions at once" {
	create_topic "$T" 2
	create_topic "$T.dlq"
	mapfile -d '' argv < <(unit_cmd "$DP_ROOT/examples/systemd/dp-sink-pg@.service" "$T")
	"${argv[@]}" --trace-states 2> "$W/a.err" &
	a=$!
	BG_PIDS+=("$a")
	wait_until 30 assigned_in "$W/a.err"
	kill -KILL "$a"
	"${argv[@]}" --trace-states 2> "$W/b.err" &
	BG_PIDS+=($!)
	# without static membership this waits for the killed one's session (45 s)
	wait_until 10 assigned_in "$W/b.err"
	! grep -q "no partitions yet" "$W/b.err"
	# one name per host and topic
	[[ " ${argv[*]} " == *" group.instance.id=$(hostname)-$T "* ]]
}

@test "a broker outage is said once by each consumer, and its end with its length" {
	need_kafka_restart
	create_topic "$T" 2
	records 20 | dp-publish -t "$T" -k .seq
	dp-sink-pg -t "$T" -g "$G" --create --timeout 2m --trace-states 2> "$W/sink.err" &
	BG_PIDS+=($!)
	dp-tail -t "$T" -g "$G.tail" --timeout 2m --trace-states > /dev/null 2> "$W/tail.err" &
	BG_PIDS+=($!)
	wait_until 30 assigned_in "$W/sink.err"
	wait_until 30 assigned_in "$W/tail.err"
	kafka_restart_bg 3s
	kafka_restart_wait
	for f in sink tail; do
		wait_until 60 said_in "$W/$f.err" "kafka answers again" || { grep -v "^{" "$W/$f.err"; tail -3 "$W/$f.err"; false; }
		grep -v '^{' "$W/$f.err"
		[ "$(grep -c "lost every kafka broker" "$W/$f.err")" = 1 ]
		grep -q ": lost every kafka broker ([0-9]/[0-9] brokers are down); waiting for them to come back$" "$W/$f.err"
		[ "$(grep -c "kafka answers again" "$W/$f.err")" = 1 ]
		grep -q ": kafka answers again, after an outage of [0-9]*s" "$W/$f.err"
		# librdkafka's lines about each broker and retry stay at -v
		! grep -q "Connect to\|Disconnected\|brokers are down)$" "$W/$f.err"
	done
}
