#!/usr/bin/env bats
# scripts/stack up keeps data: a stack whose Kafka or PostgreSQL died
# (kill -9, or a reboot: both gone, their pid files stale) is started
# again on its ports with its data; a port taken meanwhile is an error
# that names it, not a move; only down removes anything.
#
# These tests run a stack of their own, in a directory of their own (the
# suite's stack, DP_BROKERS and DP_PG, is never touched), and write into
# it a topic with 100 records and a table with 100 rows to look for after
# each hard stop.

bats_require_minimum_version 1.5.0

load helpers/common

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-300}

# scripts/stack on this file's own stack
stk() {
	DP_STACK_DIR=$STK "$DP_ROOT/scripts/stack" "$@"
}

setup_file() {
	# Our own Kafka and PostgreSQL, whatever the suite was given.
	unset DP_TEST_BROKERS DP_TEST_PG
	# A short path: PostgreSQL's socket lives in it (at most 107 bytes).
	STK=$(mktemp -d "${TMPDIR:-/tmp}/dp-stk.XXXXXX")
	export STK
	# WANT_BROKERS: the name scripts/stack once kept the number of brokers
	# asked in, which a variable of the environment must not set.
	K_ENV=$(WANT_BROKERS=3 stk up) || { stk logs >&2; return 1; }
	K_BROKERS=$(sed -n 's/^export DP_BROKERS=//p' <<<"$K_ENV")
	K_PG=$(sed -n 's/^export DP_PG=//p' <<<"$K_ENV")
	export K_ENV K_BROKERS K_PG
	seq 1 100 | kcat -b "$K_BROKERS" -P -t kept -X topic.request.required.acks=-1
	# synchronous_commit: the stack's default (off, for speed) may leave
	# the last commits in memory, and a killed server loses those.
	psql -X -q -v ON_ERROR_STOP=1 "$K_PG" -c 'set synchronous_commit = on' \
		-c 'create table kept as select generate_series(1, 100) as n'
}

teardown_file() {
	stk down || true
}

teardown() {
	bg_kill
}

# The records and the rows written at the start are all there.
data_kept() {
	local records rows
	records=$(kcat -b "$K_BROKERS" -C -t kept -e -q -o beginning -f '%s\n' | sort -n | uniq | wc -l)
	rows=$(psql -X -At "$K_PG" -c 'select count(distinct n) from kept')
	echo "records: $records, rows: $rows"
	[ "$records" -eq 100 ]
	[ "$rows" -eq 100 ]
}

kafka_pid() { cat "$STK/kafka.pid"; }
postmaster_pid() { head -n 1 "$STK/pg/data/postmaster.pid"; }

# hard_stop PID...: kill -9 each, wait until they are gone
hard_stop() {
	local p
	for p in "$@"; do
		kill -KILL "$p"
	done
	for p in "$@"; do
		wait_until 30 proc_gone "$p"
	done
}

# up_again: up must give the same addresses as the first one did, and
# start no new Kafka storage and no new cluster
up_again() {
	run --separate-stderr stk up "$@"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "$K_ENV" ]
	[[ $stderr != *"formatting Kafka storage"* ]]
	[[ $stderr != *"initdb"* ]]
}

# listen PORT: another program takes PORT; its PID goes into BG_PIDS
listen() {
	local ready=$BATS_TEST_TMPDIR/listening
	python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
open(sys.argv[2], "w").close()
time.sleep(600)' "$1" "$ready" &
	BG_PIDS+=($!)
	wait_until 10 test -e "$ready"
}

@test "stack up: Kafka killed with kill -9 starts again on its port with its records, and not elsewhere" {
	local port=${K_BROKERS##*:}
	hard_stop "$(kafka_pid)"
	run stk status
	[ "$status" -eq 3 ]
	[[ $output == *"kafka: not running; up starts it again with its data on $K_BROKERS"* ]]
	# Meanwhile another program took its port: an error that names it.
	listen "$port"
	run --separate-stderr stk up
	echo "$stderr"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[[ $stderr == *"error: Kafka's port 127.0.0.1:$port is taken by another program"* ]]
	[[ $stderr == *"does not move"* ]]
	[ "$(cat "$STK/kafka.port")" = "$port" ]
	run stk status
	[[ $output == *"kafka: not running; up starts it again with its data on $K_BROKERS"* ]]
	# The port is free again: Kafka is back there, with its records.
	bg_kill
	BG_PIDS=()
	up_again
	[[ $stderr == *"Kafka is not running"*"starting it again with its data in $STK/kafka/data"* ]]
	data_kept
}

@test "stack up: PostgreSQL's postmaster killed with kill -9 starts again on its port with its rows, and not elsewhere" {
	local port
	port=$(cat "$STK/pg.port")
	hard_stop "$(postmaster_pid)"
	run stk status
	[ "$status" -eq 3 ]
	[[ $output == *"postgres: not running; up starts it again with its data on port $port"* ]]
	listen "$port"
	run --separate-stderr stk up
	echo "$stderr"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[[ $stderr == *"error: PostgreSQL's port 127.0.0.1:$port is taken by another program"* ]]
	[ "$(cat "$STK/pg.port")" = "$port" ]
	bg_kill
	BG_PIDS=()
	up_again
	[[ $stderr == *"PostgreSQL is not running: starting it again with its data in $STK/pg/data"* ]]
	data_kept
}

@test "stack up: after a reboot (both gone, their pid files naming other processes) both start again with their data" {
	local foreign
	hard_stop "$(kafka_pid)" "$(postmaster_pid)"
	# After a reboot the PIDs in the pid files may belong to anything.
	sleep 600 &
	foreign=$!
	BG_PIDS+=("$foreign")
	echo "$foreign" >"$STK/kafka.pid"
	sed -i "1s/.*/$foreign/" "$STK/pg/data/postmaster.pid"
	up_again
	[[ $stderr == *"Kafka is not running (pid $foreign of its pid file is not our broker)"* ]]
	[[ $stderr == *"PostgreSQL is not running: starting it again"* ]]
	data_kept
	# the foreign process was left alone
	[ -d "/proc/$foreign" ]
}

@test "stack down --only: a run that only started the stack again stops it and keeps its data" {
	# scripts/check on a kept stack that had died: it stops what it
	# started, and the data it did not make stays.
	local record=$BATS_TEST_TMPDIR/started kafka postmaster
	# (stopped cleanly: how they stopped does not matter here, and a
	# killed broker takes 10 s more to start again)
	kafka=$(kafka_pid) postmaster=$(postmaster_pid)
	kill -TERM "$kafka" "$postmaster"
	wait_until 60 proc_gone "$kafka"
	wait_until 60 proc_gone "$postmaster"
	up_again --record "$record"
	run cat "$record"
	[ "$output" = $'kafka\npg' ]
	run stk down --only "$record"
	[ "$status" -eq 0 ]
	[[ $output == *"the data in $STK was there before this run: kept"* ]]
	[ -f "$STK/kafka/data/meta.properties" ]
	[ -f "$STK/pg/data/PG_VERSION" ]
	up_again
	data_kept
}

@test "stack up: one broker unless --brokers or DP_STACK_BROKERS asks for more, whatever else the environment holds" {
	[ "$(cat "$STK/kafka.brokers")" = 1 ]
	[[ $K_BROKERS != *,* ]]
	run stk status
	[[ $output == "kafka: running pid "* ]]
}

@test "stack down: the one command that removes the data" {
	run stk down
	[ "$status" -eq 0 ]
	[ ! -e "$STK" ]
	run stk status
	[ "$status" -eq 3 ]
	[[ $output == *"kafka: not running"* ]]
	[[ $output != *"up starts it again"* ]]
}
