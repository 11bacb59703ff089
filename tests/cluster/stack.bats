#!/usr/bin/env bats
# scripts/stack's cluster (up --brokers 3): what status says of it, a
# stack that keeps its number of brokers, and a broker stopped with
# restart, killed with kill, or found dead by up, that comes back on its
# port with its data.

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

# the records of T, all there
kept() {
	[ "$(kcat -b "$DP_BROKERS" -C -t "$T" -e -q -o beginning -f '%s\n' | sort -n | uniq | wc -l)" -eq 100 ]
}

@test "stack status names the brokers and the controller; up keeps the number of brokers" {
	run stack status
	[ "$status" -eq 0 ]
	[[ $output == *"kafka: 3 brokers $DP_BROKERS"* ]]
	for n in 1 2 3; do
		[[ $output == *"kafka: broker $n running pid "* ]]
	done
	[[ $output == *"kafka: Kafka's controller running pid "* ]]
	# up without --brokers reuses it as it is; another number is an error.
	run --separate-stderr stack up
	[ "$status" -eq 0 ]
	[[ $output == *"export DP_BROKERS=$DP_BROKERS"* ]]
	run --separate-stderr stack up --brokers 1
	[ "$status" -eq 1 ]
	[[ $stderr == *"the stack in "*" has 3 brokers, not 1: "*"down' it first (removes its data), or use another DP_STACK_DIR"* ]]
	run --separate-stderr stack kill kafka --broker 4
	[ "$status" -eq 1 ]
	[[ $stderr == *"no broker 4 in the stack in "*" (it has 3: --broker 1 .. 3)"* ]]
}

@test "stack restart, kill and start of one broker, and up after a kill: back on its port with its data" {
	create_topic "$T" 3
	seq 1 100 | dp-publish -t "$T"
	run --separate-stderr stack restart kafka --broker 2 --down-for 1s
	echo "$stderr"
	[ "$status" -eq 0 ]
	[[ $stderr == *"broker 2 of kafka down for 1s"* && $stderr == *"broker 2 of kafka is back"* ]]
	broker_up 2
	run --separate-stderr stack kill kafka --broker 3
	[ "$status" -eq 0 ]
	[[ $stderr == *"killed broker 3 of kafka (SIGKILL: pid "* ]]
	run stack status
	[ "$status" -eq 3 ]
	[[ $output == *"kafka: broker 3 not running; up or 'start kafka --broker 3' starts it again with its data on 127.0.0.1:"* ]]
	wait_until 30 broker_down 3
	kept
	# up starts what died again, on its port: the same DP_BROKERS.
	run --separate-stderr stack up
	echo "$stderr"
	[ "$status" -eq 0 ]
	[[ $output == *"export DP_BROKERS=$DP_BROKERS"* ]]
	[[ $stderr == *"broker 3 is not running: starting it again with its data in "* ]]
	[[ $stderr != *"formatting"* ]]
	broker_up 3
	run --separate-stderr stack start kafka --broker 3
	[ "$status" -eq 0 ]
	[[ $stderr == *"broker 3 of kafka is already running"* ]]
	wait_until 60 cluster_whole
	kept
}
