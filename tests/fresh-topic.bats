#!/usr/bin/env bats
# A topic is usable the moment `dp-topic create` returns, by every command
# that reads offsets or metadata (issue 13, item 1): a broker that has not
# caught up yet answers "not leader", "leader not available" or "unknown
# topic", and those are retried, never reported.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/kafka

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-300}

setup() {
	W=$BATS_TEST_TMPDIR
}

# use_at_once DIR: create a 6-partition topic, then at once and all at the
# same time: offsets, describe, offsets with a group, a read from the
# beginning, a read in a new group, a publish.  Each command's exit status,
# stdout and stderr go to DIR/NAME.{rc,out,err}.
use_at_once() {
	local d=$1 t g
	t=$(new_topic) g=$(uniq_name g)
	mkdir -p "$d"
	echo "$t" > "$d/topic"
	dp-topic create "$t" -p 6 > "$d/create.out" 2> "$d/create.err" || return 1
	local pids=()
	run_bg() {
		local name=$1
		shift
		{ "$@" > "$d/$name.out" 2> "$d/$name.err"; echo $? > "$d/$name.rc"; } < /dev/null &
		pids+=($!)
	}
	run_bg offsets dp-topic offsets "$t" -o json
	run_bg describe dp-topic describe "$t" -o json
	run_bg offsets_g dp-topic offsets "$t" -g "$g" -o json
	run_bg tail dp-tail -t "$t" --from beginning -e
	run_bg tail_g dp-tail -t "$t" -g "$g" --from beginning -e
	{ echo '{"n":1}' | dp-publish -t "$t" > "$d/publish.out" 2> "$d/publish.err"
	  echo $? > "$d/publish.rc"; } &
	pids+=($!)
	# Only these: a bare wait would wait for bats' own timer too.
	wait "${pids[@]}"
}

# check_use DIR: every command of use_at_once DIR exited 0, said nothing on
# stderr, and saw the whole topic.
check_use() {
	local d=$1 name
	for name in offsets describe offsets_g tail tail_g publish; do
		if [[ $(< "$d/$name.rc") != 0 || -s $d/$name.err ]]; then
			echo "$(< "$d/topic"): $name exited $(< "$d/$name.rc"): $(< "$d/$name.err")"
			return 1
		fi
	done
	# Six partitions, each with a leader and both watermarks.
	[ "$(jq -s 'map(select(.low != null and .high != null)) | length' "$d/offsets.out")" -eq 6 ] &&
	[ "$(jq -s 'map(select(.high != null)) | length' "$d/offsets_g.out")" -eq 6 ] &&
	[ "$(jq '[.partition_info[] | select(.leader >= 0 and .low != null)] | length' "$d/describe.out")" -eq 6 ] || {
		echo "$(< "$d/topic"): incomplete: $(cat "$d/offsets.out" "$d/offsets_g.out" "$d/describe.out")"
		return 1
	}
	# The reads ran beside the publish: its record or nothing, nothing else.
	for name in tail tail_g; do
		[[ ! -s $d/$name.out || $(< "$d/$name.out") == '{"n":1}' ]] || return 1
	done
}

@test "create, then use at once: 50 times, every command that reads offsets or metadata" {
	# Two lanes of 25 at once: the broker is busier than in one lane,
	# which is when it lags behind a create.
	lane() {
		local i
		for ((i = 0; i < ${LANE_N:-25}; i++)); do
			use_at_once "$W/$1.$i"
		done
	}
	lane a &
	a=$!
	lane b &
	wait "$a" $!
	failed=0
	for d in "$W"/[ab].*; do
		check_use "$d" || failed=$((failed + 1))
	done
	[ "$(ls -d "$W"/[ab].* | wc -l)" -eq 50 ]
	[ "$failed" -eq 0 ]
	# The records published are all there, once each.
	for d in "$W"/a.1 "$W"/b.24; do
		[ "$(kcat_count "$(< "$d/topic")")" -eq 1 ]
	done
}

@test "lib: create and use at once in one process, no probe in between, 30 rounds" {
	# Under dp-topic create there is a probe that waits for the metadata;
	# dp-coord creates with lib/kafka/admin.h directly, so the look-ups that
	# follow (metadata, configs, watermarks, group offsets) retry alone.
	TEST_LIB=${DP_TEST_LIB:-$DP_ROOT/build/obj/test_lib}
	run "$TEST_LIB" fresh 30
	[ "$status" -eq 0 ]
	[[ $output == *"30 rounds, 0 failures"* ]]
}
