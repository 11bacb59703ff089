#!/usr/bin/env bats
# Every command's state machine: --dot is valid Graphviz drawn from the
# table, and --trace-states prints one JSON object per transition.

load helpers/common
load helpers/kafka

@test "--dot output of every command is accepted by dot" {
	n=0
	for b in "$DP_BIN"/dp-*; do
		run "$b" --dot
		[ "$status" -eq 0 ]
		[[ ${lines[0]} == "digraph \"$(basename "$b")\" {" ]]
		printf '%s\n' "$output" | dot -Tsvg > /dev/null
		n=$((n + 1))
	done
	[ "$n" -ge 2 ]
}

@test "--trace-states prints each transition as NDJSON on stderr" {
	T=$(new_topic)
	create_topic "$T"
	echo '{"a":1}' | dp-publish -t "$T" --trace-states 2> "$BATS_TEST_TMPDIR/trace"
	run jq -c -r '[.cmd, .from, .event, .to] | join(" ")' "$BATS_TEST_TMPDIR/trace"
	[ "$status" -eq 0 ]
	[ "$output" = "dp-publish idle start connecting
dp-publish connecting connected publishingFixed
dp-publish publishingFixed eof draining
dp-publish draining drained done" ]
	jq -e '.t | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T")' "$BATS_TEST_TMPDIR/trace" > /dev/null
	# A consumer: the rebalance events are same-state rows inside consuming.
	dp-tail -t "$T" -g "$(uniq_name g)" --from beginning -e --trace-states \
		2> "$BATS_TEST_TMPDIR/trace" > /dev/null
	run jq -c -r '[.cmd, .from, .event, .to] | join(" ")' "$BATS_TEST_TMPDIR/trace"
	[ "$output" = "dp-tail idle start connecting
dp-tail connecting connected consuming
dp-tail consuming assigned consuming
dp-tail consuming MESSAGE_RECEIVED processingMessage
dp-tail processingMessage PROCESS_SUCCESS consuming
dp-tail consuming end closing
dp-tail closing revoked closing
dp-tail closing closed done" ]
}

@test "-V and --help print to stdout and exit 0 for every command" {
	for b in "$DP_BIN"/dp-*; do
		run "$b" --version
		[ "$status" -eq 0 ]
		[[ $output == "$(basename "$b") "* ]]
		run "$b" --help
		[ "$status" -eq 0 ]
		[[ $output == *"usage: "* ]]
	done
}

@test "a closed stdout is not an error for --help" {
	for b in "$DP_BIN"/dp-*; do
		run bash -c "'$b' --help | head -c1 >/dev/null; echo \${PIPESTATUS[0]}"
		[ "$output" = 0 ]
	done
}
