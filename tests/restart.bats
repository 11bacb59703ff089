#!/usr/bin/env bats
# A broker restart (stop, down for a while, start on the same port with
# the same data: scripts/stack restart kafka) under a command at work.  A
# restart drops every connection and moves the group coordinator, which a
# pause (SIGSTOP) does not.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/kafka

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-300}

setup() {
	T=$(new_topic)
	G=$(uniq_name g)
	W=$BATS_TEST_TMPDIR
	BG_PIDS=()
}

teardown() {
	bg_kill
	# The next test needs the broker: a restart in flight must finish.
	kafka_restart_wait || true
}

# seqs N [FROM]: N lines {"seq":i,...}
seqs() {
	python3 - "$1" "${2:-1}" <<'PY'
import sys
n, start = int(sys.argv[1]), int(sys.argv[2])
sys.stdout.write("".join('{"seq":%d,"p":%d.5}\n' % (i, i % 977) for i in range(start, start + n)))
PY
}

# high TOPIC: the sum of its partitions' high watermarks
high() {
	dp-topic offsets "$1" -o json 2>/dev/null | jq -s 'map(.high) | add // 0'
}
high_at_least() { (($(high "$1") >= $2)); }
lines_at_least() { [[ -f $1 ]] && (($(wc -l < "$1") >= $2)); }

# once FILE N: FILE holds the seqs 1..N, each exactly once
once() {
	jq -r .seq "$1" | sort -n | uniq -c | awk -v n="$2" '
		$1 != 1 { printf "seq %s seen %s times\n", $2, $1; bad = 1 }
		{ seen++; if ($2 != seen) { printf "seq %s missing\n", seen; bad = 1; exit } }
		END { if (seen != n) { printf "%d seqs, not %d\n", seen, n; bad = 1 } exit bad }'
}

@test "a broker restart in the middle of a 1M-line dp-publish: every line delivered once, exit 0" {
	need_kafka_restart
	create_topic "$T" 3
	n=1000000
	seqs "$n" > "$W/in"
	# --timeout: how long a command rides out a broker that is away (a
	# restart of a broker with thousands of partitions takes a while).
	pace "$W/in" 20 | dp-publish -t "$T" --timeout 2m > "$W/out" 2> "$W/err" &
	pid=$!
	BG_PIDS+=("$pid")
	wait_until 60 high_at_least "$T" 100000
	kafka_restart_bg 3s
	kafka_restart_wait
	grep -q "kafka down for 3s" "$BATS_TEST_TMPDIR/kafka-restart.log"
	# It was still at work when the broker came back.
	(($(high "$T") < n))
	status=0
	wait "$pid" || status=$?
	cat "$W/err"
	[ "$status" -eq 0 ]
	kcat -b "$DP_BROKERS" -C -t "$T" -e -q -o beginning -f '%s\n' > "$W/topic"
	once "$W/topic" "$n"
}

@test "a broker restart under dp-tail -g: no gap and no repeat across it" {
	need_kafka_restart
	create_topic "$T" 3
	seqs 30000 | dp-publish -t "$T"
	# A session shorter than the outage: the member is out of the group
	# when the broker is back, and gets its partitions again from scratch;
	# and no periodic commit: the last commit is far behind what it printed.
	# (--from stored, the default with -g: a new group starts at the beginning.)
	dp-tail -t "$T" -g "$G" --timeout 2m -X session.timeout.ms=6000 \
		-X auto.commit.interval.ms=600000 \
		> "$W/out" 2> "$W/err" &
	tail_pid=$!
	BG_PIDS+=("$tail_pid")
	wait_until 60 lines_at_least "$W/out" 30000
	# More records while the broker goes away and comes back.
	seqs 30000 30001 > "$W/more"
	pace "$W/more" 15 | dp-publish -t "$T" --timeout 2m 2> "$W/pub.err" &
	pub_pid=$!
	BG_PIDS+=("$pub_pid")
	wait_until 30 lines_at_least "$W/out" 33000
	kafka_restart_bg 8s
	kafka_restart_wait
	wait "$pub_pid" || { cat "$W/pub.err"; false; }
	wait_until 120 lines_at_least "$W/out" 60000
	kill -TERM "$tail_pid"
	status=0
	wait "$tail_pid" || status=$?
	cat "$W/err"
	once "$W/out" 60000
	[ "$status" -eq 0 ]
	# The session ran out while the broker was away, so the commit at the
	# rebalance failed; the partitions came back, and it went on where it
	# was: that commit is made up for, and nothing was read twice.
	grep -q "the partitions were lost to the group first" "$W/err"
	grep -q "the offsets that could not be committed for group '$G' are committed now" "$W/err"
	# Everything printed was committed: the group goes on after it.
	seqs 10 60001 | dp-publish -t "$T"
	run --separate-stderr dp-tail -t "$T" -g "$G" -e
	[ "$status" -eq 0 ]
	[ "$(jq -s -c 'map(.seq) | sort' <<<"$output")" = "[60001,60002,60003,60004,60005,60006,60007,60008,60009,60010]" ]
}
