#!/usr/bin/env bats
# lib/consumer's hooks as dp-sink-pg (offsets in its database, pause while
# the database is down, explicit commits) and dp-coord's registry reader
# (no group, catch up with the end, then follow) use them, against the
# real broker through tests/unit/test_lib.c.

load helpers/common
load helpers/kafka

setup() {
	TEST_LIB=${DP_TEST_LIB:-$DP_ROOT/build/obj/test_lib}
	[ -x "$TEST_LIB" ] || skip "test_lib not built (run make)"
	T=$(new_topic)
	G=$(uniq_name g)
	W=$BATS_TEST_TMPDIR
}

@test "an assign hook starts partitions at a sink's own offsets; pause, again, resume" {
	create_topic "$T" 2
	gen_prices 20 | dp-publish -t "$T" -p 0
	gen_prices 20 | dp-publish -t "$T" -p 1
	run "$TEST_LIB" consumer_sink "$T" "$G"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"assigned 0, start 5"* ]]
	[[ $output == *"assigned 1, start 12"* ]]
	[[ $output == *"paused 0 at 8"*"resumed 0"* ]]
	[[ $output == *"partition 0: offsets 5-19, each once"* ]]
	[[ $output == *"partition 1: offsets 12-19, each once"* ]]
	# The explicit commits reached the group: lag tools see the sink's offsets.
	[ "$(dp-topic offsets "$T" -g "$G" -o json | jq -s -c 'map(.committed)')" = "[20,20]" ]
}

@test "a reader without a group catches up with the end it saw, then follows" {
	create_topic "$T"
	gen_prices 30 | dp-publish -t "$T"
	"$TEST_LIB" consumer_registry "$T" > "$W/out" 2> "$W/err" &
	pid=$!
	wait_until 20 grep -q "caught up" "$W/out" || { kill "$pid"; false; }
	grep -qx "caught up with 30 records, end 30" "$W/out"
	gen_prices 1 | dp-publish -t "$T"
	wait_until 20 proc_gone "$pid" || { kill "$pid"; false; }
	wait "$pid"
	grep -qx "live record at offset 30" "$W/out"
}
