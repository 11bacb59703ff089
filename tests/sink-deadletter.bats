#!/usr/bin/env bats
# dp-sink-pg --on-error dlq=TOPIC: what a dead letter carries (the record's
# own headers, then dp's), what a dead letter Kafka refuses does (65, as
# dp-sink-pg(1) says), and what the closing summary counts (what was
# really sent).  Against the harness's Kafka and PostgreSQL: the records
# in the dead-letter topic, stderr, exit status.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/kafka
load helpers/sink

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-180}

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

# KEY|VALUE lines from stdin into $T, each record with the headers trace=t-KEY
# and tenant=acme (kcat -H), one record per line, in order.
produce_with_headers() {
	local line
	while IFS= read -r line; do
		printf '%s\n' "$line" |
			kcat -b "$DP_BROKERS" -P -t "$T" -K '|' -H "trace=t-${line%%|*}" -H tenant=acme
	done
}

@test "--on-error dlq: a dead letter keeps the record's own headers, then dp's" {
	create_topic "$T" 1
	create_topic "$T.dlq" 1
	psql_dp -c "create table \"$T\" (seq bigint, price double precision check (price > 0))"
	# offset 1: the server refuses it (23514); offset 2: dp-sink-pg does (not JSON)
	printf '%s\n' '1|{"seq":1,"price":1.5}' '2|{"seq":2,"price":-1}' '3|not json {' \
		'4|{"seq":4,"price":4.5}' | produce_with_headers
	run --separate-stderr dp-sink-pg -t "$T" -g "$G" -e --on-error "dlq=$T.dlq"
	[ "$status" -eq 0 ]
	[ "$(count)" = 2 ]
	summary=$stderr
	run kcat -b "$DP_BROKERS" -C -t "$T.dlq" -e -q -o beginning -f '%k|%h\n'
	[ "${#lines[@]}" -eq 2 ]
	sorted=$(printf '%s\n' "${lines[@]}" | sort)
	[[ $(sed -n 1p <<<"$sorted") == "2|trace=t-2,tenant=acme,dp-error=new row for relation \"$T\" violates check constraint"*",dp-sqlstate=23514,dp-topic=$T,dp-partition=0,dp-offset=1" ]]
	[[ $(sed -n 2p <<<"$sorted") == "3|trace=t-3,tenant=acme,dp-error=not JSON: "*",dp-topic=$T,dp-partition=0,dp-offset=2" ]]
	[[ $summary == *"2 bad records sent to the dead-letter topic '$T.dlq'"* ]]
}

@test "--on-error dlq: a dead letter Kafka refuses (too large) is 65, named, and the summary counts what was sent" {
	create_topic "$T" 1
	dp-topic create "$T.dlq" -p 1 -c max.message.bytes=2000 -o json > /dev/null
	big=$(head -c 5000 /dev/zero | tr '\0' x)
	{
		records 3
		echo "not json"
		echo "$big"
		records 2 10
	} > "$W/in"
	kcat_produce "$T" < "$W/in"
	[ "$(kcat_count "$T")" = 7 ]
	run --separate-stderr timeout 60 dp-sink-pg -t "$T" -g "$G" -e --create --on-error "dlq=$T.dlq"
	[ "$status" -eq 65 ]
	[[ $stderr == *"$T [0] offset 3: not JSON"* ]]
	[[ $stderr == *"$T [0] offset 4: the dead-letter topic '$T.dlq' refuses it: "*"Message size too large"* ]]
	[[ $stderr == *"2 bad records, 1 sent to the dead-letter topic '$T.dlq'"* ]]
	[[ $stderr == *"stopped at a bad record the dead-letter topic '$T.dlq' refuses"* ]]
	[ "$(kcat_count "$T.dlq")" = 1 ]
	# nothing past the refused record is stored: the next run starts before it
	[ "$(psql_dp -c "select coalesce(max(next_offset), 0) <= 4 from dp_sink_offsets where \"group\" = '$G'")" = t ]
}
