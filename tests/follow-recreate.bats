#!/usr/bin/env bats
# Followers of dynamic topics tell the topics of one name apart (issue
# 18): a name deleted and made again is a new topic -- what the old one
# still held is said (and the exit status says it), the new one is read
# from its beginning -- while a retired topic taken back is the same one,
# read on where it stopped.  librdkafka 2.0.2 gives no topic ids: the
# registry's created_at is what names the topic.

load helpers/common
load helpers/kafka
load helpers/coord
bats_require_minimum_version 1.5.0

setup() {
	W=$BATS_TEST_TMPDIR
	export DP_REGISTRY=$(uniq_name reg) DP_REQUESTS=$(uniq_name req)
	G=$(uniq_name g)
	SRC=$(new_topic)
	D=dyn.$(uniq_name d)
	PIDS=()
	SERVES=()
}

teardown() {
	local pid
	for pid in "${PIDS[@]}" ${CAT_PIDS:-}; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	exec 5<&- 6<&- 2>/dev/null || true
	serve_stop_all
	dp-topic delete "$D" --if-exists -o json >/dev/null 2>&1 || true
}

exists() {
	dp-topic list -o names | grep -qxF "$1"
}

# lines FILE PATTERN: how many lines of FILE have PATTERN
lines() {
	grep -c -- "$2" "$1" || true
}

@test "a name deleted before it was read to its end and made again: the old tail is said, the new topic read from its beginning" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request "$D" --source "$SRC" --filter . --wait=20s >/dev/null
	python3 -c 'import json
for i in range(20000): print(json.dumps({"i": i, "pad": "x" * 100}))' |
		dp-publish -t "$SRC" --follow-registry
	mkfifo "$W/match.fifo" "$W/named.fifo"
	# little prefetch, and pipes nobody reads yet: both readers stay behind
	dp-tail --follow-match ".source == \"$SRC\"" -v -X queued.min.messages=100 \
		-X queued.max.messages.kbytes=64 --trace-states >"$W/match.fifo" 2>"$W/match.err" &
	PIDS+=($!)
	dp-tail --follow "$D" -v -X queued.min.messages=100 -X queued.max.messages.kbytes=64 \
		--trace-states >"$W/named.fifo" 2>"$W/named.err" &
	PIDS+=($!)
	exec 5<"$W/match.fifo" 6<"$W/named.fifo"
	wait_until 20 grep -q "reading $D \[0\]" "$W/match.err"
	wait_until 20 grep -q "reading $D \[0\]" "$W/named.err"
	# retired, deleted at once, and asked for again: a new topic of that name
	dp-coord retire "$D" --wait=20s >/dev/null
	wait_until 30 eval '! exists "$D"'
	dp-coord request "$D" --source "$SRC" --filter '.new' --wait=20s >/dev/null
	printf '{"i":1,"new":true}\n{"i":2,"new":true}\n' | dp-publish -t "$SRC" --follow-registry
	# now the readers read on
	cat <&5 >"$W/match.out" &
	CAT_PIDS="$!"
	cat <&6 >"$W/named.out" &
	CAT_PIDS+=" $!"
	wait_until 30 eval '[ "$(lines "$W/match.out" "\"new\":true")" -eq 2 ]'
	wait_until 30 eval '[ "$(lines "$W/named.out" "\"new\":true")" -eq 2 ]'
	for r in match named; do
		old=$(lines "$W/$r.out" pad)
		[ "$old" -lt 20000 ]
		# the old topic's records, in order, then the new topic's, from its beginning
		[ "$(head -n "$old" "$W/$r.out" | jq -r .i | awk '$1 != NR - 1' | wc -l)" -eq 0 ]
		[ "$(tail -n 2 "$W/$r.out" | jq -c .)" = "$(printf '{"i":1,"new":true}\n{"i":2,"new":true}')" ]
		[ "$(wc -l <"$W/$r.out")" -eq $((old + 2)) ]
		grep -q "dp-tail: dynamic topic '$D' was deleted before it was read to its end: partition 0 from offset $old on was not read" \
			"$W/$r.err"
		grep -q "dynamic topic '$D' was made again: reading the new one from its beginning" "$W/$r.err"
	done
	# the new topic retired and read to its end ends --follow, with 1:
	# the old one's tail was lost
	dp-coord retire "$D" --wait=20s >/dev/null
	wait_until 20 proc_gone "${PIDS[1]}"
	rc=0
	wait "${PIDS[1]}" || rc=$?
	[ "$rc" -eq 1 ]
	kill -TERM "${PIDS[0]}"
	rc=0
	wait "${PIDS[0]}" || rc=$?
	[ "$rc" -eq 1 ]
	PIDS=()
}

@test "a name deleted before it was read to its end, said, and made again later: the old topic's error is not charged to the new one" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request "$D" --source "$SRC" --filter . --wait=20s >/dev/null
	python3 -c 'import json
for i in range(20000): print(json.dumps({"i": i, "pad": "x" * 100}))' |
		dp-publish -t "$SRC" --follow-registry
	mkfifo "$W/fifo"
	dp-tail --follow-match ".source == \"$SRC\"" -v -X queued.min.messages=100 \
		-X queued.max.messages.kbytes=64 --trace-states >"$W/fifo" 2>"$W/err" &
	PIDS+=($!)
	exec 5<"$W/fifo"
	wait_until 20 grep -q "reading $D \[0\]" "$W/err"
	dp-coord retire "$D" --wait=20s >/dev/null
	wait_until 30 eval '! exists "$D"'
	# the reader reads on, and says what it lost
	cat <&5 >"$W/out" &
	CAT_PIDS="$!"
	wait_until 30 grep -q "dynamic topic '$D' was deleted before it was read to its end" "$W/err"
	# a new topic of that name, later
	dp-coord request "$D" --source "$SRC" --filter '.new' --wait=20s >/dev/null
	wait_until 20 eval '[ "$(grep -c "reading $D \[0\]" "$W/err")" -eq 2 ]'
	printf '{"i":1,"new":true}\n{"i":2,"new":true}\n' | dp-publish -t "$SRC" --follow-registry
	wait_until 30 eval '[ "$(lines "$W/out" "\"new\":true")" -eq 2 ]'
	old=$(lines "$W/out" pad)
	# one loss, the old topic's, said once
	[ "$(grep -c "was not read" "$W/err")" -eq 1 ]
	grep -q "partition 0 from offset $old on was not read" "$W/err"
	kill -TERM "${PIDS[0]}"
	rc=0
	wait "${PIDS[0]}" || rc=$?
	[ "$rc" -eq 1 ]
	PIDS=()
}

@test "a retired topic taken back is the same topic: read on where it stopped, not again" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request "$D" --source "$SRC" --filter '.fsym == "BTC"' --wait=20s >/dev/null
	dp-tail --follow-match ".source == \"$SRC\"" -v --trace-states >"$W/out" 2>"$W/err" &
	PIDS+=($!)
	wait_until 20 grep -q "reading $D \[0\]" "$W/err"
	gen_prices 32 1 | dp-publish -t "$SRC" --follow-registry
	wait_until 20 eval '[ "$(wc -l <"$W/out")" -eq 4 ]'
	dp-coord retire "$D" --delete-after 1h --wait=20s >/dev/null
	wait_until 20 grep -q "dynamic topic '$D' read to its end" "$W/err"
	dp-coord request "$D" --source "$SRC" --filter '.fsym == "BTC"' --wait=20s >/dev/null
	gen_prices 32 101 | dp-publish -t "$SRC" --follow-registry
	# the last record of the second batch is there: nothing of the first came again
	wait_until 20 grep -q '"seq":128}' "$W/out"
	[ "$(jq -r .seq "$W/out" | paste -sd' ')" = "8 16 24 32 104 112 120 128" ]
	kill -TERM "${PIDS[0]}"
	wait "${PIDS[0]}"
	PIDS=()
}
