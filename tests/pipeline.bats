#!/usr/bin/env bats
# The whole pipeline, end to end, as `make demo` runs it (scripts/demo) on
# the suite's Kafka and PostgreSQL with the replay server: dp-fetch |
# dp-publish --follow-registry into demo.prices, dp-sink-pg into the table
# demo_prices, dp-coord serve making dyn.btc-usd for an application that
# reads it with dp-tail --follow.  What is checked is what a user sees: the
# records in the topics, the rows in the table, the application's output.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/kafka

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-180}

setup() {
	W=$BATS_TEST_TMPDIR
	export DP_REPLAY_DIR=$W/replay
}

teardown() {
	"$DP_ROOT/scripts/replay" down 2>/dev/null || true
}

# topic_records TOPIC: "partition offset value" lines, every record of TOPIC
topic_records() {
	if dp-topic describe "$1" > /dev/null 2>&1; then
		kcat -b "$DP_BROKERS" -C -t "$1" -e -q -o beginning -f '%p %o %s\n' | sort -k1,1n -k2,2n
	fi
}

rows() { psql_dp -c "select count(*) from demo_prices" 2>/dev/null || echo 0; }

@test "the demo's pipeline: the app gets exactly the matching records, the table every record once" {
	topic_records demo.prices > "$W/before"
	before_rows=$(rows)
	start=$(date -u +%Y-%m-%dT%H:%M:%S)
	run --separate-stderr env DP_TEST_BROKERS="$DP_BROKERS" DP_TEST_PG="$DP_PG" \
		DP_DEMO_LIVE=0 DP_DEMO_KEEP="$W/demo" "$DP_ROOT/scripts/demo" < /dev/null
	echo "$stderr"
	[ "$status" -eq 0 ]
	topic_records demo.prices > "$W/after"
	# this run's records: what the topic gained
	comm -13 "$W/before" "$W/after" > "$W/new"
	n=$(wc -l < "$W/new")
	[ "$n" -eq 10 ]                 # BTC and ETH in USD, five polls
	cut -d' ' -f3- "$W/new" | jq -c 'select(.fsym == "BTC" and .tsym == "USD")' > "$W/want"
	[ "$(wc -l < "$W/want")" -eq 5 ]
	# The application read exactly those, in their order (one key, .fsym,
	# so one partition): nothing else, nothing missing, nothing twice.
	diff "$W/want" "$W/demo/app.ndjson"
	[[ $output == *"$(head -1 "$W/want")"* ]]
	# Every record of this run is a row, once; the sink's stored offsets are
	# the topic's ends.
	[ "$(($(rows) - before_rows))" -eq "$n" ]
	ends=$(kcat -b "$DP_BROKERS" -Q -t demo.prices:0:-1 -t demo.prices:1:-1 -t demo.prices:2:-1 2>/dev/null |
		awk '{ s += $NF } END { print s }')
	stored=$(psql_dp -c "select sum(next_offset) from dp_sink_offsets
	                     where \"group\" = 'demo-sink' and topic = 'demo.prices'")
	[ "$stored" -eq "$ends" ]
	# The retire ended the reader by itself, and the daemons stopped with 0.
	[[ $stderr == *"dp-tail --follow reads the retired topic to its end"* ]]
	[[ $stderr == *"stopping the coordinator and the sink"* ]]
	# It showed dp-top --once: the daemons running, in their groups ...
	grep -qE '^Coordinator +dp-coord +[^ ]+ +running +[A-Za-z]+ ' <<<"$output"
	grep -qE '^Consumer for fixed topics +dp-sink-pg +[^ ]+ +running +[A-Za-z]+ ' <<<"$output"
	# ... and every actor of this run left its last status: stopped, with 0.
	run dp-top --once -o json --status-topic demo.status
	[ "$status" -eq 0 ]
	[ "$(jq -c --arg t "$start" '[.instances[] | select(.started >= $t) |
		"\(.actor) \(.command) \(.status) \(.exit)"] | sort' <<<"$output")" = \
		'["consumer_dynamic dp-tail stopped 0","consumer_fixed dp-sink-pg stopped 0","coordinator dp-coord stopped 0","producer dp-fetch stopped 0","producer dp-publish stopped 0"]' ]
	# The dynamic topic is retired (gone from the active ones).
	run dp-coord list -o json
	[ "$status" -eq 0 ]
	[ "$(jq -s 'map(select(.topic == "dyn.btc-usd" and .state == "active")) | length' <<< "$output")" -eq 0 ]
}

@test "the demo twice in a row: the second run finds everything in place and works the same" {
	for i in 1 2; do
		rm -rf "$W/demo"
		run --separate-stderr env DP_TEST_BROKERS="$DP_BROKERS" DP_TEST_PG="$DP_PG" \
			DP_DEMO_LIVE=0 DP_DEMO_KEEP="$W/demo" "$DP_ROOT/scripts/demo" < /dev/null
		echo "run $i: $stderr"
		[ "$status" -eq 0 ]
		[ "$(wc -l < "$W/demo/app.ndjson")" -eq 5 ]
	done
}
