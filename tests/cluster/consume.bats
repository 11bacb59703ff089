#!/usr/bin/env bats
# The consumers on a three-broker cluster when a broker dies under them:
# dp-sink-pg -t -g (exactly once: each record one row) and dp-tail -g
# (each record printed once, none skipped) when the leader of a partition
# they read is killed with -9, and the sink when the broker that is its
# group's coordinator is.

bats_require_minimum_version 1.5.0
load ../helpers/common
load ../helpers/kafka
load ../helpers/sink
load ../helpers/cluster

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-300}

setup_file() {
	cluster_setup_file
}

setup() {
	T=$(new_topic)
	G=$(uniq_name g)
	W=$BATS_TEST_TMPDIR
	BG_PIDS=()
	cluster_heal
}

teardown() {
	bg_kill
	psql_dp -c "drop table if exists $(ident)" >/dev/null 2>&1 || true
	cluster_heal
}

lines_at_least() { [[ -f $1 ]] && (($(wc -l < "$1") >= $2)); }

# seqs_once: the table's seq column holds 1..N, each once
table_once() {
	local got
	got=$(psql_dp -c "select count(*), count(distinct seq), min(seq), max(seq) from $(ident)")
	echo "rows, distinct seqs, min, max: $got (want $1, $1, 1, $1)"
	[ "$got" = "$1|$1|1|$1" ]
}

# the partition of T whose leader is not broker $1
partition_not_led_by() {
	dp-topic describe "$T" -o json |
		jq -r --argjson b "$1" '[.partition_info[] | select(.leader != $b)][0].partition'
}

# bats test_tags=ci
@test "a partition's leader killed -9 under dp-sink-pg -t -g and dp-tail -g: every record one row, and printed once" {
	create_topic "$T" 3
	n=300000
	keyed_seqs 200000 64 | dp-publish -t "$T" -k .k
	keyed_seqs "$n" 64 | tail -n +200001 > "$W/more"
	dp-sink-pg -t "$T" -g "$G" --create --timeout 1m 2> "$W/sink.err" &
	sink=$!
	BG_PIDS+=("$sink")
	dp-tail -t "$T" -g "$G-tail" --timeout 1m > "$W/tail.out" 2> "$W/tail.err" &
	tail_pid=$!
	BG_PIDS+=("$tail_pid")
	# More records arrive while the leader dies.
	pace "$W/more" 15 | dp-publish -t "$T" -k .k --timeout 1m 2> "$W/pub.err" &
	pub=$!
	BG_PIDS+=("$pub")
	wait_until 60 count_at_least 50000
	wait_until 60 lines_at_least "$W/tail.out" 50000
	# A leader that is not the group coordinator: that is the next test.
	coord=$(coordinator_of "$G")
	p=$(partition_not_led_by "$coord")
	victim=$(leader_of "$T" "$p")
	broker_kill "$victim"
	# Both were still at work when the leader died.
	(($(count) < n))
	(($(wc -l < "$W/tail.out") < n))
	wait "$pub" || { cat "$W/pub.err"; false; }
	wait_until 120 count_at_least "$n"
	wait_until 120 lines_at_least "$W/tail.out" "$n"
	[ "$(leader_of "$T" "$p")" != "$victim" ]
	kill -TERM "$sink" "$tail_pid"
	st=0
	wait "$sink" || st=$?
	cat "$W/sink.err"
	[ "$st" -eq 0 ]
	st=0
	wait "$tail_pid" || st=$?
	cat "$W/tail.err"
	[ "$st" -eq 0 ]
	table_once "$n"
	jq -r '[.k, (.|tojson)] | @tsv' "$W/tail.out" > "$W/tail.kv"
	once_in_order "$W/tail.kv" "$n"
}

# bats test_tags=ci
@test "the group coordinator's broker killed -9 under dp-sink-pg -t -g: every record one row, and the group goes on" {
	create_topic "$T" 3
	n=200000
	keyed_seqs 100000 64 | dp-publish -t "$T" -k .k
	keyed_seqs "$n" 64 | tail -n +100001 > "$W/more"
	dp-sink-pg -t "$T" -g "$G" --create --timeout 1m 2> "$W/sink.err" &
	sink=$!
	BG_PIDS+=("$sink")
	pace "$W/more" 15 | dp-publish -t "$T" -k .k --timeout 1m 2> "$W/pub.err" &
	pub=$!
	BG_PIDS+=("$pub")
	wait_until 60 count_at_least 30000
	victim=$(coordinator_of "$G")
	broker_kill "$victim"
	(($(count) < n))
	wait "$pub" || { cat "$W/pub.err"; false; }
	wait_until 120 count_at_least "$n"
	# The group has another coordinator, and the sink's offsets reach Kafka
	# through it: dp-topic offsets -g sees no lag.
	[ "$(coordinator_of "$G")" != "$victim" ]
	lag0() { dp-topic offsets "$T" -g "$G" -o json | jq -s -e 'all(.[]; .lag == 0)' > /dev/null; }
	wait_until 30 lag0
	kill -TERM "$sink"
	st=0
	wait "$sink" || st=$?
	cat "$W/sink.err"
	[ "$st" -eq 0 ]
	table_once "$n"
}
