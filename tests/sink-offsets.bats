#!/usr/bin/env bats
# Stored offsets that no longer fit the topic (a topic deleted and created
# again; an unclean leader election that cut its log): dp-sink-pg stops
# with 78 and says how to go on, --reset-offsets moves a group's stored
# offsets (and its offsets in Kafka) in one logged step, dp-topic offsets
# -g shows what the sink stored, and the other consumers (dp-tail -g,
# --from N) say so instead of seeking for ever.  What a user sees: stderr,
# exit status, rows, the offsets table, the group's offsets in Kafka.

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
	psql_dp -c "drop table if exists \"$T\"" >/dev/null 2>&1 || true
}

publish() { dp-publish -t "$1" -k .seq; }     # records from stdin, keyed by seq
# recreate TOPIC PARTITIONS: delete it and make it again, empty (a deletion
# takes the broker a moment: until then the name is taken)
recreate() {
	dp-topic delete "$1" -o json > /dev/null
	wait_until 30 create_topic "$1" "$2"
}
stored() { # the group's rows: "partition|next_offset" lines
	psql_dp -c "select \"partition\", next_offset from dp_sink_offsets
	            where \"group\" = '$G' and topic = '$T' order by 1"
}
stored_is() { [[ $(stored) == "$1" ]]; }
lines_are() { [[ -f $1 && $(wc -l < "$1") -eq $2 ]]; }
committed() { # the group's committed offsets in Kafka, one per partition ("null": none)
	dp-topic offsets "$T" -g "$G" -o json --db "$DP_PG" | jq -r '.committed'
}
# a written topic of 2 partitions, re-created with 3 new records: the
# stored offsets (18 records in all) lie past its new end
sink_then_recreate() {
	create_topic "$T" 2
	records 18 | publish "$T"
	run --separate-stderr dp-sink-pg -t "$T" -g "$G" -e --create
	[ "$status" -eq 0 ]
	[ "$(count)" = 18 ]
	stored > "$W/before"
	recreate "$T" 2
	records 3 101 | publish "$T"
}

@test "a re-created topic: 78 naming topic, partition, stored offset and range, and how to go on" {
	sink_then_recreate
	run --separate-stderr timeout 60 dp-sink-pg -t "$T" -g "$G" -e
	[ "$status" -eq 78 ]
	while IFS='|' read -r p at; do
		[[ $stderr == *"$T [$p]: the stored offset $at (group '$G') is past the partition's end (low..high watermark 0.."* ]]
	done < "$W/before"
	[[ $stderr == *"the topic was deleted and created again, or an unclean leader election lost records"* ]]
	[[ $stderr == *"dp-sink-pg --reset-offsets earliest -t $T -g $G"* ]]
	[[ $stderr == *'"When the topic is re-created" in dp-sink-pg(1)'* ]]
	[ "$(grep -c 'to write what the topic holds now' <<<"$stderr")" = 1 ]
	# nothing of the new topic written, nothing moved, and the stale
	# offsets did not go to the group in Kafka (lag tools would say 0)
	[ "$(count)" = 18 ]
	diff "$W/before" <(stored)
	[ "$(committed | sort -u)" = null ]
}

@test "--reset-offsets earliest: one logged move of the stored and the Kafka offsets, then the sink writes the new records" {
	sink_then_recreate
	run --separate-stderr dp-sink-pg --reset-offsets earliest -g "$G" --table "$T"
	[ "$status" -eq 0 ]
	[ "$output" = "" ]
	while IFS='|' read -r p at; do
		[[ $stderr == *"$T [$p]: stored offset of group '$G' moved from $at to 0"* ]]
	done < "$W/before"
	[ "$(stored | cut -d'|' -f2 | sort -u)" = 0 ]
	[ "$(committed | sort -u)" = 0 ]
	run --separate-stderr dp-sink-pg -t "$T" -g "$G" -e
	[ "$status" -eq 0 ]
	[ "$(count)" = 21 ]
	[ "$(psql_dp -c "select string_agg(seq::text, ',' order by seq) from \"$T\" where seq > 100")" = 101,102,103 ]
	# the table's offsets and the group's agree with the topic's end again
	dp-topic offsets "$T" -g "$G" -o json --db "$DP_PG" |
		jq -e -s 'map(.high == .stored and .high == .committed and .lag == 0) | all'
}

@test "--reset-offsets latest and TOPIC:PARTITION:OFFSET; what it refuses" {
	create_topic "$T" 2
	records 10 | publish "$T"
	# a new group may start at the end: rows are made, for every partition
	run --separate-stderr dp-sink-pg --reset-offsets latest -g "$G" -t "$T"
	[ "$status" -eq 0 ]
	[[ $stderr == *"$T [0]: stored offset of group '$G' moved from none to "* ]]
	[ "$(stored | awk -F'|' '{ s += $2 } END { print s }')" = 10 ]
	run --separate-stderr dp-sink-pg -t "$T" -g "$G" -e --create
	[ "$status" -eq 0 ]
	[ "$(count)" = "" ]      # nothing to write: no table made
	hi0=$(dp-topic offsets "$T" -o json | jq -r 'select(.partition == 0) | .high')
	run --separate-stderr dp-sink-pg --reset-offsets "$T:0:1" -g "$G"
	[ "$status" -eq 0 ]
	[[ $stderr == *"$T [0]: stored offset of group '$G' moved from $hi0 to 1"* ]]
	[ "$(stored | head -1)" = "0|1" ]
	# an offset outside the partition's records, a partition it lacks
	run --separate-stderr dp-sink-pg --reset-offsets "$T:0:$((hi0 + 1))" -g "$G"
	[ "$status" -eq 82 ]
	[[ $stderr == *"--reset-offsets $T:0:$((hi0 + 1)): the partition's offsets go from 0 to $hi0"* ]]
	run --separate-stderr dp-sink-pg --reset-offsets "$T:7:0" -g "$G"
	[ "$status" -eq 81 ]
	[[ $stderr == *"topic '$T' has no partition 7 (it has 2: 0-1)"* ]]
	[ "$(stored | head -1)" = "0|1" ]
	# a group with nothing stored, and no -t
	run --separate-stderr dp-sink-pg --reset-offsets earliest -g "$G.none"
	[ "$status" -eq 81 ]
	[[ $stderr == *"group '$G.none' has no stored offsets in table dp_sink_offsets"*"name the topics with -t"* ]]
	# a running member: refused, nothing moved
	dp-sink-pg -t "$T" -g "$G" --create --trace-states 2> "$W/member.err" &
	BG_PIDS+=($!)
	wait_until 30 grep -q '"event":"assigned"' "$W/member.err"
	run --separate-stderr dp-sink-pg --reset-offsets earliest -g "$G"
	[ "$status" -eq 75 ]
	[[ $stderr == *"group '$G' has 1 member running (dp-sink-pg on "*"): stop it first"* ]]
	[[ $stderr != *moved* ]]
}

@test "--reset-offsets: usage errors" {
	run dp-sink-pg --reset-offsets sideways -g g
	[ "$status" -eq 64 ]
	[[ $output == *"invalid --reset-offsets 'sideways': expected earliest, latest or TOPIC:PARTITION:OFFSET"* ]]
	run dp-sink-pg --reset-offsets earliest
	[ "$status" -eq 64 ]
	[[ $output == *"--reset-offsets needs the group whose offsets move (-g GROUP)"* ]]
	run dp-sink-pg --reset-offsets earliest --reset-offsets t:0:1 -g g
	[ "$status" -eq 64 ]
	[[ $output == *"give earliest or latest once, and alone"* ]]
	run dp-sink-pg --reset-offsets t:x:1 -g g
	[ "$status" -eq 64 ]
	[[ $output == *"invalid --reset-offsets partition 'x'"* ]]
	run dp-sink-pg --reset-offsets earliest -g g -t '^t.*'
	[ "$status" -eq 64 ]
	[[ $output == *"--reset-offsets needs topic names, not a pattern ('^t.*')"* ]]
	run dp-sink-pg --reset-offsets u:0:1 -g g -t t
	[ "$status" -eq 64 ]
	[[ $output == *"--reset-offsets u:0:1: topic 'u' is not one of -t"* ]]
	run dp-sink-pg --reset-offsets earliest -g g --stdin
	[ "$status" -eq 64 ]
	# an unreachable broker: nothing moved, 69
	port=$(free_port)
	run --separate-stderr dp-sink-pg --reset-offsets earliest -g g -t t -b "127.0.0.1:$port" --timeout 1s
	[ "$status" -eq 69 ]
	[[ $stderr == *"no kafka broker answered within 1s"* ]]
}

@test "dp-topic offsets -g: the sink's stored offsets, and a stored offset past the end is said" {
	sink_then_recreate
	run --separate-stderr dp-topic offsets "$T" -g "$G" -o json --db "$DP_PG"
	[ "$status" -eq 0 ]
	while IFS='|' read -r p at; do
		rec=$(jq -c "select(.partition == $p)" <<<"$output")
		# not "lag 0": none of the new topic's records is in the table
		[ "$(jq -r '"\(.stored) \(.committed) \(.lag == .high - .low)"' <<<"$rec")" = "$at null true" ]
		[[ $stderr == *"$T [$p]: the offset dp-sink-pg stored for group '$G' is $at, past the partition's end (low..high watermark 0.."*"dp-sink-pg --reset-offsets"* ]]
	done < "$W/before"
	# $DP_PG is the default, as for dp-sink-pg; the table view has a column
	run --separate-stderr dp-topic offsets "$T" -g "$G" -o table
	[ "$status" -eq 0 ]
	[[ ${lines[0]} =~ ^TOPIC\ +PARTITION\ +LOW\ +HIGH\ +COMMITTED\ +LAG\ +STORED$ ]]
	# a group dp-sink-pg never wrote shows as before
	run --separate-stderr dp-topic offsets "$T" -g "$G.other" -o json
	[ "$(jq -s -c 'map(has("stored")) | unique' <<<"$output")" = "[false]" ]
	# an unreachable --db is an error; an unreachable $DP_PG only a warning
	port=$(free_port)
	run --separate-stderr dp-topic offsets "$T" -g "$G" -o json --db "postgresql://x@127.0.0.1:$port/x"
	[ "$status" -eq 69 ]
	[[ $stderr == *"cannot read the offsets dp-sink-pg stored: cannot connect to the database"* ]]
	DP_PG="postgresql://x@127.0.0.1:$port/x" run --separate-stderr dp-topic offsets "$T" -g "$G" -o json
	[ "$status" -eq 0 ]
	[[ $stderr == *'not showing the offsets dp-sink-pg stored ($DP_PG)'* ]]
	run dp-topic offsets "$T" --db "$DP_PG"
	[ "$status" -eq 64 ]
	[[ $output == *"--db shows the offsets dp-sink-pg stored for a group: it needs -g GROUP"* ]]
}

@test "dp-tail: a start past the partition's end is said, and reading goes on where auto.offset.reset says" {
	create_topic "$T" 1
	records 5 | publish "$T"
	run --separate-stderr timeout 30 dp-tail -t "$T" --from 100 -e
	[ "$status" -eq 0 ]
	[[ $stderr == *"$T [0]: offset 100 (--from) is past the partition's end (low..high watermark 0..5): the topic was deleted and created again, or its log lost records (an unclean leader election); going on from offset 0 (auto.offset.reset=earliest)"* ]]
	[ "$(jq -s -c 'map(.seq)' <<<"$output")" = "[1,2,3,4,5]" ]
	run --separate-stderr timeout 30 dp-tail -t "$T" --from 100 -e -X auto.offset.reset=latest
	[ "$status" -eq 0 ]
	[[ $stderr == *"going on from offset 5 (auto.offset.reset=latest)"* ]]
	[ "$output" = "" ]
}

@test "a topic re-created under a running sink: 78 there too, nothing of the new topic written" {
	create_topic "$T" 1
	records 20 | publish "$T"
	dp-sink-pg -t "$T" -g "$G" --create > /dev/null 2> "$W/err" &
	SINK_PID=$!
	BG_PIDS+=("$SINK_PID")
	wait_until 60 stored_is "0|20"
	recreate "$T" 1
	records 5 101 | publish "$T"
	wait_until 60 proc_gone "$SINK_PID"
	status=0
	wait "$SINK_PID" || status=$?
	cat "$W/err"
	[ "$status" -eq 78 ]
	grep -q "$T \[0\]: the stored offset 20 (group '$G') is past the partition's end (low..high watermark 0..5)" "$W/err"
	[ "$(count)" = 20 ]
	[ "$(stored)" = "0|20" ]
}

@test "dp-tail -g: a topic re-created under it is said, and reading goes on from the new records" {
	create_topic "$T" 1
	records 20 | publish "$T"
	dp-tail -t "$T" -g "$G" > "$W/out" 2> "$W/err" &
	BG_PIDS+=($!)
	wait_until 60 lines_are "$W/out" 20
	recreate "$T" 1
	records 5 101 | publish "$T"
	wait_until 60 lines_are "$W/out" 25
	cat "$W/err"
	grep -q "$T \[0\]: offset 20 (the position) is past the partition's end (low..high watermark 0..5): the topic was deleted and created again" "$W/err"
	[ "$(tail -5 "$W/out" | jq -s -c 'map(.seq)')" = "[101,102,103,104,105]" ]
}
