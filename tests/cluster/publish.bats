#!/usr/bin/env bats
# dp-publish on a three-broker cluster (replication factor 3,
# min.insync.replicas=2) when brokers die: a partition's leader killed
# with -9 in the middle of a stream, and two brokers down at once.

bats_require_minimum_version 1.5.0
load ../helpers/common
load ../helpers/kafka
load ../helpers/cluster

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-300}

setup_file() {
	cluster_setup_file
}

setup() {
	T=$(new_topic)
	W=$BATS_TEST_TMPDIR
	BG_PIDS=()
	cluster_heal
}

teardown() {
	bg_kill
	cluster_heal
}

# high TOPIC: the sum of its partitions' high watermarks
high() {
	dp-topic offsets "$1" -o json 2>/dev/null | jq -s 'map(.high) | add // 0'
}
high_at_least() { (($(high "$1") >= $2)); }

# bats test_tags=ci
@test "the leader of a partition killed -9 during a 1M-line keyed dp-publish: every line once, in order per key, exit 0" {
	create_topic "$T" 3
	[ "$(dp-topic describe "$T" -o json | jq .replication_factor)" -eq 3 ]
	n=1000000
	keyed_seqs "$n" 64 > "$W/in"
	# acks=all and the idempotent producer are dp-publish's defaults.
	pace "$W/in" 20 | dp-publish -t "$T" -k .k --timeout 1m > "$W/out" 2> "$W/err" &
	pid=$!
	BG_PIDS+=("$pid")
	wait_until 60 high_at_least "$T" 100000
	victim=$(leader_of "$T" 0)
	broker_kill "$victim"
	# It was still at work when the leader died.
	(($(high "$T") < n))
	status=0
	wait "$pid" || status=$?
	cat "$W/err"
	[ "$status" -eq 0 ]
	# Partition 0 has another leader now.
	leader=$(leader_of "$T" 0)
	[ "$leader" != "$victim" ] && [ "$leader" -ge 1 ]
	kcat -b "$DP_BROKERS" -C -t "$T" -e -q -o beginning -f '%k\t%s\n' > "$W/topic"
	once_in_order "$W/topic" "$n"
}

# every partition of TOPIC has exactly N replicas in sync
isr_count_is() {
	dp-topic describe "$1" -o json 2>/dev/null | jq -e --argjson n "$2" 'all(.partition_info[]; (.isr | length) == $n)' > /dev/null
}

# bats test_tags=ci
@test "two brokers down: dp-publish gives up what it cannot deliver, naming each line (not_enough_replicas), exit 75; what comes when one is back is delivered" {
	create_topic "$T" 3
	keep=$(leader_of "$T" 0)
	a=$(other_than "$keep") 
	b=$(other_than "$keep" "$a")
	broker_kill "$a"
	broker_kill "$b"
	# Fenced: the one broker left leads every partition, alone in sync.
	wait_until 30 isr_count_is "$T" 1
	keyed_seqs 2000 16 > "$W/in"
	mkfifo "$W/fifo"
	dp-publish -t "$T" -k .k --timeout 5s --report < "$W/fifo" > "$W/report" 2> "$W/err" &
	pid=$!
	BG_PIDS+=("$pid")
	exec {feed}> "$W/fifo"
	head -n 1000 "$W/in" >&"$feed"
	# After --timeout without a delivery it asks the cluster why, and gives
	# those records up instead of waiting librdkafka's 5 minutes.
	wait_until 30 grep -q "giving up on the 1000 records waiting" "$W/err"
	grep -q "dp-publish: no record delivered for 5s.*: '$T' \[0,1,2\]: 1 in-sync replica of 3, fewer than min.insync.replicas=2 (not_enough_replicas); giving up on the 1000 records waiting" "$W/err"
	grep -q "dp-publish: line [0-9]*: not delivered to '$T': Broker: Not enough in-sync replicas" "$W/err"
	# One broker back: the partitions take records again.
	broker_start "$a"
	wait_until 60 isr_count_is "$T" 2
	tail -n +1001 "$W/in" >&"$feed"
	exec {feed}>&-
	status=0
	wait "$pid" || status=$?
	cat "$W/err"
	[ "$status" -eq 75 ]
	grep -q "dp-publish: 1000 of 2000 records not delivered" "$W/err"
	# The report names each line: 1..1000 not delivered, for that reason;
	# 1001..2000 delivered, and the topic holds those, each once.
	[ "$(jq -c 'select(.error) | .line' "$W/report" | sort -n | uniq | wc -l)" -eq 1000 ]
	[ "$(jq -r 'select(.error) | .error' "$W/report" | sort -u)" = "Broker: Not enough in-sync replicas" ]
	[ "$(jq 'select(.error) | .line' "$W/report" | sort -n | tail -1)" -eq 1000 ]
	[ "$(jq 'select(.error | not) | .line' "$W/report" | sort -n | head -1)" -eq 1001 ]
	kcat -b "$DP_BROKERS" -C -t "$T" -e -q -o beginning -f '%k\t%s\n' > "$W/topic"
	[ "$(wc -l < "$W/topic")" -eq 1000 ]
	cut -f2 "$W/topic" | jq .seq | sort -n | uniq | awk 'NR == 1 && $1 != 1001 { exit 1 } END { if (NR != 1000 || $1 != 2000) exit 1 }'
}
