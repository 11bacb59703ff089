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
	# the records not sent yet up instead of waiting librdkafka's 5 minutes
	# (a request in flight is left to its answer: it may yet be written).
	wait_until 30 grep -q "records* given up" "$W/err"
	grep -q "dp-publish: no record delivered for 5s.*: '$T' \[0,1,2\]: 1 in-sync replica of 3, fewer than min.insync.replicas=2 (not_enough_replicas); giving up on the records not sent yet" "$W/err"
	grep -q "dp-publish: line [0-9]*: not delivered to '$T': Broker: Not enough in-sync replicas" "$W/err"
	given=$(grep -o '^dp-publish: [0-9]* records* given up' "$W/err" | head -1 | awk '{ print $2 }')
	((given >= 1 && given <= 1000))
	# One broker back: the partitions take records again.
	broker_start "$a"
	wait_until 60 isr_count_is "$T" 2
	tail -n +1001 "$W/in" >&"$feed"
	exec {feed}>&-
	status=0
	wait "$pid" || status=$?
	cat "$W/err"
	[ "$status" -eq 75 ]
	# The report names each line once: those given up (all of the first
	# 1000, for that reason) and those delivered, every one of 1001..2000.
	lost=$(jq -c 'select(.error) | .line' "$W/report" | sort -n | uniq | wc -l)
	[ "$lost" -eq "$given" ]
	grep -q "dp-publish: $lost of 2000 records not delivered" "$W/err"
	[ "$(jq -r 'select(.error) | .error' "$W/report" | sort -u)" = "Broker: Not enough in-sync replicas" ]
	[ "$(jq 'select(.error) | .line' "$W/report" | sort -n | tail -1)" -le 1000 ]
	[ "$(jq -c .line "$W/report" | sort -n | uniq | wc -l)" -eq 2000 ]
	jq 'select(.error | not) | .line' "$W/report" | sort -n > "$W/delivered"
	[ "$(wc -l < "$W/delivered")" -eq $((2000 - lost)) ]
	[ "$(awk '$1 > 1000' "$W/delivered" | wc -l)" -eq 1000 ]
	# The topic holds the lines delivered, each once, in order per key.
	kcat -b "$DP_BROKERS" -C -t "$T" -e -q -o beginning -f '%k\t%s\n' > "$W/topic"
	cut -f2 "$W/topic" | jq .seq | sort -n > "$W/held"
	diff "$W/delivered" "$W/held"
	python3 - "$W/topic" <<'PY'
import json, sys
last = {}
for line in open(sys.argv[1], encoding="utf-8"):
    key, _, value = line.rstrip("\n").partition("\t")
    seq = json.loads(value)["seq"]
    if seq <= last.get(key, 0):
        sys.exit("key %s: seq %d after %d" % (key, seq, last[key]))
    last[key] = seq
PY
}
