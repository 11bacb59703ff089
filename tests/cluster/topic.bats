#!/usr/bin/env bats
# dp-topic on a three-broker cluster: create and describe show the
# replication factor, each partition's replicas and its in-sync replicas
# (fewer while a broker is down, and describe answers then too), and
# create --if-not-exists compares the replication factor as it compares
# the partitions.

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
	cluster_heal
}

teardown() {
	cluster_heal
}

# the replicas and ISR of every partition: "p:r1,r2,r3:i1,i2,i3 ...", sorted
shape() {
	dp-topic describe "$T" -o json --timeout 20s |
		jq -r '.partition_info | map("\(.partition):\(.replicas | sort | join(",")):\(.isr | sort | join(","))") | join(" ")'
}

@test "create and describe show the replication factor, replicas and ISR; a broker down shrinks the ISR, and describe still answers" {
	run --separate-stderr dp-topic create "$T" -p 3 -r 3 -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.action, .partitions, .replication_factor] | @tsv' <<<"$output")" = "created	3	3" ]
	[ "$(shape)" = "0:1,2,3:1,2,3 1:1,2,3:1,2,3 2:1,2,3:1,2,3" ]
	# The table has the same columns.
	run --separate-stderr dp-topic describe "$T" -o table
	[ "$status" -eq 0 ]
	[[ $output == *"REPLICATION"* && $output == *"REPLICAS  ISR"* ]]
	[ "$(awk '$1 == "'"$T"'" { print $3 }' <<<"$output")" = 3 ]
	# The leader of partition 0 dies: every partition keeps its three
	# replicas, and the dead broker leaves each ISR once it is fenced.
	victim=$(leader_of "$T" 0)
	broker_kill "$victim"
	rest=$(other_than "$victim"),$(other_than "$victim" "$(other_than "$victim")")
	rest=$(tr ',' '\n' <<<"$rest" | sort -n | paste -sd,)
	isr_shrunk() { [ "$(shape)" = "0:1,2,3:$rest 1:1,2,3:$rest 2:1,2,3:$rest" ]; }
	# (each describe answers within its --timeout, the dead leader or not)
	SECONDS=0
	wait_until 60 isr_shrunk
	((SECONDS < 60))
	run --separate-stderr dp-topic describe "$T" -o json --timeout 20s
	[ "$status" -eq 0 ]
	[ "$(jq '.replication_factor' <<<"$output")" -eq 3 ]
	[ "$(jq '[.partition_info[].leader] | all(. != '"$victim"')' <<<"$output")" = true ]
	run --separate-stderr dp-topic offsets "$T" -o json --timeout 20s
	[ "$status" -eq 0 ]
	[ "$(wc -l <<<"$output")" -eq 3 ]
	# Back with its data, it catches up and is in sync again.
	broker_start "$victim"
	isr_whole() { [ "$(shape)" = "0:1,2,3:1,2,3 1:1,2,3:1,2,3 2:1,2,3:1,2,3" ]; }
	wait_until 60 isr_whole
}

@test "create --if-not-exists compares the replication factor as it compares the partitions" {
	dp-topic create "$T" -p 3 -r 3 -o json > /dev/null
	run --separate-stderr dp-topic create "$T" -p 3 -r 3 --if-not-exists -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.action, .partitions, .replication_factor] | @tsv' <<<"$output")" = "exists	3	3" ]
	[ "$stderr" = "" ]
	run --separate-stderr dp-topic create "$T" -p 2 -r 2 --if-not-exists -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.action, .partitions, .replication_factor] | @tsv' <<<"$output")" = "exists	3	3" ]
	[[ $stderr == *"topic '$T' exists with 3 partitions, not 2"* ]]
	[[ $stderr == *"topic '$T' exists with replication factor 3, not 2"* ]]
	# The same from a spec file.
	run --separate-stderr dp-topic create - --if-not-exists -o json <<<"{\"name\":\"$T\",\"replication_factor\":1}"
	[ "$status" -eq 0 ]
	[[ $stderr == *"topic '$T' exists with replication factor 3, not 1"* ]]
	[[ $stderr != *"partitions"* ]]
	# Without --if-not-exists it is an error, as always.
	run --separate-stderr dp-topic create "$T" -r 2 -o json
	[ "$status" -eq 80 ]
	# Asking more replicas than brokers is refused by the cluster.
	run --separate-stderr dp-topic create "$(new_topic)" -r 4 -o json
	[ "$status" -eq 83 ]
	[[ $stderr == *"replication factor of 4 cannot be reached because only 3 broker(s) are registered"* ]]
}
