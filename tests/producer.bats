#!/usr/bin/env bats
# lib/producer's send-and-wait call, which dp-sink-pg (dead-letter records)
# and dp-coord (registry writes acknowledged before a commit) build on,
# against the real broker through tests/unit/test_lib.c.

load helpers/common
load helpers/kafka

setup() {
	TEST_LIB=${DP_TEST_LIB:-$DP_ROOT/build/obj/test_lib}
	[ -x "$TEST_LIB" ] || skip "test_lib not built (run make)"
}

teardown() {
	blackhole_stop
}

@test "send_wait: each record is acknowledged with its partition and offset, as written" {
	T=$(new_topic)
	create_topic "$T" 2
	run "$TEST_LIB" producer "$T"
	[ "$status" -eq 0 ]
	# The acknowledgements name where kcat finds each record.
	kcat -b "$DP_BROKERS" -C -t "$T" -e -q -o beginning -f '%p %o %k|%s|%h\n' | sort > "$BATS_TEST_TMPDIR/got"
	p1=$(awk '$1 == "ack" && $2 == 0 {print $3, $4}' <<<"$output")
	p2=$(awk '$1 == "ack" && $2 == 1 {print $3, $4}' <<<"$output")
	p3=$(awk '$1 == "ack" && $2 == 2 {print $3, $4}' <<<"$output")
	[ "$p2" = "0 0" ]
	grep -qx "$p1 k1|v1|reason=bad,none=NULL" "$BATS_TEST_TMPDIR/got"
	grep -qx "$p2 |v2|" "$BATS_TEST_TMPDIR/got"
	grep -qx "$p3 k3||" "$BATS_TEST_TMPDIR/got"
	# The dead letter of --on-error dlq in its durable form, acknowledged before it returned.
	grep -q "^[01] [0-9]* |raw|sqlstate=23505$" "$BATS_TEST_TMPDIR/got"
	[[ $output == *"row 7: duplicate key"* ]]
	[ "$(wc -l < "$BATS_TEST_TMPDIR/got")" -eq 4 ]
	kcat -b "$DP_BROKERS" -C -t "$T" -p 0 -e -q -o beginning -f '%T\n' | grep -qx 1700000000123
	# A record over message.max.bytes is refused at once, with the limit.
	[[ $output == *"too large: status 65: record 1 of 1: record of 2000000 bytes is over the producer's limit, message.max.bytes=1000000"* ]]
	[[ $output == *"produced 4 delivered 4 lost 0 pending 0"* ]]
}

@test "send_wait: no answer ends the wait at its timeout, a signal at once" {
	blackhole_start
	run "$TEST_LIB" producer -b "127.0.0.1:$BLACKHOLE_PORT"
	[ "$status" -eq 0 ]
	[[ $output == *"record 1 of 1 not acknowledged within 1s"* ]]
	ms=$(sed -n 's/^timeout: status 75 after \([0-9]*\) ms.*/\1/p' <<<"$output")
	[ "$ms" -ge 1000 ] && [ "$ms" -lt 2500 ]
	ms=$(sed -n 's/^signal: status -1 after \([0-9]*\) ms$/\1/p' <<<"$output")
	[ "$ms" -ge 250 ] && [ "$ms" -lt 1000 ]
}
