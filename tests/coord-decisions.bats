#!/usr/bin/env bats
# dp-coord serve decides each request once, by its request_id, whatever
# its group's offsets say (issue 18): a coordinator under a new group, or
# under a group whose offsets went back, replays the requests topic and
# changes nothing -- a topic retired and deleted is not made again, and
# no follower sees it, not even for a moment.  The decisions are kept in
# a compacted decisions topic, and forgotten once the requests topic no
# longer holds their request.

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
	SERVES=()
}

teardown() {
	local pid
	for pid in ${WATCH_PID:-} ${TAIL_PID:-}; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	serve_stop_all
	dp-topic delete "$D.gone" "$D.kept" "$D.back" --if-exists -o json >/dev/null 2>&1 || true
}

# exists TOPIC: the cluster has TOPIC
exists() {
	dp-topic list -o names | grep -qxF "$1"
}

# high TOPIC: the high watermark of TOPIC's partition 0
high() {
	dp-topic offsets "$1" -o json | jq -r 'select(.partition == 0) | .high'
}

# caught_up GROUP: GROUP has committed every request
caught_up() {
	[ "$(dp-topic offsets "$DP_REQUESTS" -g "$1" -o json | jq -r .lag)" = 0 ]
}

# history: requests to make, retire and delete a topic, to keep one, to
# be refused one, and to take back a retired one; then the coordinator
# stops.  Sets REG_END (the registry's end) and starts a watch
# (dp-coord watch: every registry change) whose first lines are in
# $W/watch.
history() {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request "$D.gone" --source "$SRC" --filter '.fsym == "BTC"' --wait=20s >/dev/null
	dp-coord request "$D.kept" --source "$SRC" --filter '.fsym == "ETH"' --wait=20s >/dev/null
	dp-coord request "$D.back" --source "$SRC" --filter . --wait=20s >/dev/null
	run dp-coord request "$D.bad" --source "$SRC" --filter '.a ==' --wait=20s
	[ "$status" -eq 65 ]
	dp-coord retire "$D.back" --delete-after 1h --wait=20s >/dev/null
	dp-coord request "$D.back" --source "$SRC" --filter . --wait=20s >/dev/null
	# retired and deleted at once
	dp-coord retire "$D.gone" --wait=20s >/dev/null
	wait_until 30 eval '! exists "$D.gone"'
	wait_until 30 eval '! registry_has ".topic == \"$D.gone\""'
	wait_until 20 caught_up "$G"
	serve_stop_all
	REG_END=$(high "$DP_REGISTRY")
	dp-coord watch >"$W/watch" 2>"$W/watch.err" &
	WATCH_PID=$!
	# dyn.kept active, dyn.bad rejected, dyn.back active
	wait_until 20 eval '[ "$(wc -l <"$W/watch")" -eq 3 ]'
}

# unchanged N: coordinator N replayed every request and nothing changed:
# no topic made again, no registry record written, nothing for a follower
unchanged() {
	# what the watch saw: the three specs it started with, no change
	run ! grep -q "\"$D.gone\"" "$W/watch"
	[ "$(jq -r 'select(.topic == "'"$D.back"'") | .state' "$W/watch")" = active ]
	[ "$(wc -l <"$W/watch")" -eq 3 ]
	run ! exists "$D.gone"
	[ "$(high "$DP_REGISTRY")" -eq "$REG_END" ]
	grep -q "\"from\":\"active\",\"event\":\"REQUEST_DECIDED_BEFORE\",\"to\":\"active\"" \
		"$W/serve$1.err"
}

@test "decisions: a serve under a fresh group replays the requests and changes nothing" {
	history
	G=$(uniq_name fresh)
	serve_start 2
	serve_active 2
	wait_until 30 caught_up "$G"
	unchanged 2
	# each request once, by its id, with what came of it
	[ "$(grep -c "was decided before" "$W/serve2.err")" -eq 7 ]
	# and the decisions say so, one per request
	kcat -b "$DP_BROKERS" -C -t "$DP_REQUESTS.decisions" -e -q -f '%k %s\n' >"$W/dec"
	[ "$(wc -l <"$W/dec")" -eq 7 ]
	[ "$(cut -d' ' -f2- "$W/dec" | jq -r '"\(.action) \(.outcome)"' | sort | uniq -c |
		awk '{print $1, $2, $3}' | paste -sd,)" = "4 create granted,1 create rejected,2 retire retired" ]
}

@test "decisions: a serve whose group's offsets went back replays them and changes nothing" {
	# A first request the reset will not reach back to: dp-tail commits the
	# offset after the record it read.
	dp-topic create "$DP_REQUESTS" -o json >/dev/null
	printf 'x\tnot a request\n' | kcat -b "$DP_BROKERS" -P -t "$DP_REQUESTS" -K $'\t'
	history
	dp-tail -t "$DP_REQUESTS" -g "$G" --from beginning -n 1 --non-json string >/dev/null
	[ "$(dp-topic offsets "$DP_REQUESTS" -g "$G" -o json | jq -r .committed)" -eq 1 ]
	serve_start 2
	serve_active 2
	wait_until 30 caught_up "$G"
	unchanged 2
}

@test "decisions: a request written twice, or again later, is decided once" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request "$D.gone" --source "$SRC" --filter . >"$W/req"
	wait_until 20 registry_has ".topic == \"$D.gone\" and .state == \"active\""
	dp-coord retire "$D.gone" --wait=20s >/dev/null
	wait_until 30 eval '! registry_has ".topic == \"$D.gone\""'
	# the same request, sent again by a client that retried
	printf '%s\t%s\n' "$D.gone" "$(cat "$W/req")" |
		kcat -b "$DP_BROKERS" -P -t "$DP_REQUESTS" -K $'\t'
	wait_until 20 caught_up "$G"
	run ! exists "$D.gone"
	run ! registry_has ".topic == \"$D.gone\""
	grep -q "request $(jq -r .request_id "$W/req") for '$D.gone' was decided before (granted): not again" \
		"$W/serve1.err"
}

@test "decisions: those on requests the requests topic holds no more are forgotten at a takeover" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	first=$(dp-coord request "$D.gone" --source "$SRC" --filter . --wait=20s | jq -r .request_id)
	second=$(dp-coord request "$D.kept" --source "$SRC" --filter . --wait=20s | jq -r .request_id)
	wait_until 20 caught_up "$G"
	serve_stop_all
	# the first request goes, as retention would take it
	python3 "$DP_ROOT/tests/helpers/delete_records.py" "$DP_BROKERS" "$DP_REQUESTS" 0 1
	serve_start 2
	serve_active 2
	grep -q "forgot 1 decision on requests $DP_REQUESTS holds no more" "$W/serve2.err"
	# its decision is a tombstone now; the other's is kept
	kcat -b "$DP_BROKERS" -C -t "$DP_REQUESTS.decisions" -e -q -Z -f '%k %s\n' >"$W/dec"
	[ "$(grep "^$first " "$W/dec" | tail -1)" = "$first NULL" ]
	[ "$(grep "^$second " "$W/dec" | tail -1 | cut -d' ' -f2- | jq -r .outcome)" = granted ]
	# and the request still there is still decided once
	G=$(uniq_name fresh)
	serve_start 3
	serve_active 3
	wait_until 30 caught_up "$G"
	grep -q "request $second for '$D.kept' was decided before (granted): not again" "$W/serve3.err"
}
