#!/usr/bin/env bats
# dp-coord against the real broker: requests answered by one active
# coordinator, rejections with their own exit status, failover, crashes
# between the steps, retiring, the readers (list, watch, run), and every
# row of the three machines.

load helpers/common
load helpers/kafka
load helpers/coord
bats_require_minimum_version 1.5.0

setup() {
	W=$BATS_TEST_TMPDIR
	# Each test has a registry, requests topic and group of its own.
	export DP_REGISTRY=$(uniq_name reg) DP_REQUESTS=$(uniq_name req)
	G=$(uniq_name g)
	SRC=$(new_topic)
	SERVES=()
}

teardown() {
	broker_resume
	blackhole_stop
	local pid
	for pid in "${SERVES[@]}" ${RUN_PID:-} ${WATCH_PID:-} ${REQ_PID:-}; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${SERVES[@]}" ${RUN_PID:-} ${WATCH_PID:-} ${REQ_PID:-}; do
		wait "$pid" 2>/dev/null || true
	done
}

# settled: of coordinators 1 and 2, one owns the requests partition and
# the other does not, after the rebalance that the second one's arrival
# caused (the first gave the partition up then: eager rebalancing revokes
# everything).  Sets ACTIVE and STANDBY to their numbers.  The serves run
# with -v, which says when a coordinator takes or loses the partition.
settled() {
	local l1 l2
	grep -q "no longer owns" "$W/serve1.err" || return 1
	l1=$(grep -E "owns .* now|no longer owns" "$W/serve1.err" | tail -1)
	l2=$(grep -E "owns .* now|no longer owns" "$W/serve2.err" | tail -1)
	if [[ $l1 == *" now" && $l2 != *" now" ]]; then
		ACTIVE=1 STANDBY=2
	elif [[ $l2 == *" now" && $l1 != *" now" ]]; then
		ACTIVE=2 STANDBY=1
	else
		return 1
	fi
}

# traced N FROM EVENT TO: coordinator N took that row.
traced() {
	grep -q "\"from\":\"$2\",\"event\":\"$3\",\"to\":\"$4\"" "$W/serve$1.err"
}

@test "a request with --wait: the topic exists as asked and the registry shows it active" {
	create_topic "$SRC" 3
	serve_start 1
	serve_active 1
	# --wait=2s is the bound: answered later, the command fails.
	run --separate-stderr dp-coord request dyn.btc-eur --source "$SRC" \
		--filter '.fsym == "BTC" and .tsym == "EUR"' -p 2 -c retention.ms=3600000 --wait=2s
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.topic, .state, .source, .partitions] | join(" ")' <<<"$output")" = \
		"dyn.btc-eur active $SRC 2" ]
	[ "$(jq -r .config[\"retention.ms\"] <<<"$output")" = 3600000 ]
	run dp-topic describe dyn.btc-eur -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.partitions, .config["retention.ms"]] | join(" ")' <<<"$output")" = "2 3600000" ]
	run dp-coord list -o json
	[ "$(jq -r 'select(.topic == "dyn.btc-eur") | .state' <<<"$output")" = active ]
	# Asking again for the same is success; for something else under the name is not.
	run --separate-stderr dp-coord request dyn.btc-eur --source "$SRC" \
		--filter '.fsym == "BTC" and .tsym == "EUR"' -p 2 -c retention.ms=3600000 --wait=2s
	[ "$status" -eq 0 ]
	run --separate-stderr dp-coord request dyn.btc-eur --source "$SRC" --filter '.x' --wait=2s
	[ "$status" -eq 80 ]
	[[ $stderr == *"dynamic topic 'dyn.btc-eur' is active with another spec"* ]]
	dp-topic delete dyn.btc-eur -o json >/dev/null
}

@test "a bad filter, a disallowed name and too many partitions are rejected, each with its status" {
	create_topic "$SRC"
	serve_start 1 --max-partitions 4
	serve_active 1
	run --separate-stderr dp-coord request dyn.bad --source "$SRC" --filter '.a ==' --wait=5s
	[ "$status" -eq 65 ]
	[[ $stderr == *"request for 'dyn.bad' rejected: cannot compile jq expression"* ]]
	[ "$(jq -r '[.state, .rejected_for] | join(" ")' <<<"$output")" = "rejected filter" ]
	run --separate-stderr dp-coord request other.name --source "$SRC" --filter . --wait=5s
	[ "$status" -eq 82 ]
	[[ $stderr == *"not allowed here"* ]]
	run --separate-stderr dp-coord request dyn.wide --source "$SRC" --filter . -p 5 --wait=5s
	[ "$status" -eq 83 ]
	[[ $stderr == *"5 partitions asked, at most 4 allowed"* ]]
	run --separate-stderr dp-coord request dyn.nosrc --source "$(new_topic)" --filter . --wait=5s
	[ "$status" -eq 81 ]
	# Nothing was created.
	for t in dyn.bad other.name dyn.wide dyn.nosrc; do
		run dp-topic describe "$t" -o json
		[ "$status" -eq 81 ]
	done
}

@test "two coordinators: one acts; kill it and the other takes over, every request active once" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	serve_start 2
	# The second joins the group: the partition goes to one of them
	# (eager rebalancing), the other stands by.
	wait_until 30 grep -q '"to":"standby"' "$W/serve2.err"
	wait_until 30 settled
	for i in 1 2 3; do
		dp-coord request "dyn.a$i" --source "$SRC" --filter ".n == $i" --wait=15s >/dev/null
	done
	# Only one of them acted.
	active=$ACTIVE other=$STANDBY
	[ "$(grep -c CREATE_TOPIC_SUCCESS "$W/serve$active.err")" -eq 3 ]
	[ "$(grep -c CREATE_TOPIC_SUCCESS "$W/serve$other.err" || true)" -eq 0 ]
	# SIGKILL the active one while requests keep coming.
	for i in 4 5 6; do
		dp-coord request "dyn.a$i" --source "$SRC" --filter ".n == $i" >/dev/null
	done
	kill -KILL "${SERVES[$active]}"
	wait "${SERVES[$active]}" 2>/dev/null || true
	unset "SERVES[$active]"
	for i in 7 8; do
		dp-coord request "dyn.a$i" --source "$SRC" --filter ".n == $i" >/dev/null
	done
	# The other takes over within the session timeout (10 s) and answers all.
	wait_until 40 bash -c '[ "$(dp-coord list -o json | jq -s "map(select(.state == \"active\")) | length")" -eq 8 ]'
	run dp-coord list -o json
	[ "$(jq -s -c 'map(.topic) | sort' <<<"$output")" = \
		'["dyn.a1","dyn.a2","dyn.a3","dyn.a4","dyn.a5","dyn.a6","dyn.a7","dyn.a8"]' ]
	traced "$other" standby ASSIGNED active
	for i in 1 2 3 4 5 6 7 8; do
		dp-topic delete "dyn.a$i" -o json >/dev/null
	done
}

@test "a coordinator killed between creating and notifying finishes the request after a restart" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request dyn.crash --source "$SRC" --filter '.fsym == "X"' >"$W/req.json"
	# Killed the moment it has created the topic, before the registry says so.
	wait_until 20 traced 1 processingCreateTopic CREATE_TOPIC_SUCCESS notifyingActors
	kill -KILL "${SERVES[1]}"
	wait "${SERVES[1]}" 2>/dev/null || true
	unset "SERVES[1]"
	serve_start 2
	id=$(jq -r .request_id "$W/req.json")
	wait_until 40 registry_has ".topic == \"dyn.crash\" and .request_id == \"$id\" and .state == \"active\""
	# One topic, one active record for it.
	run dp-coord list -o json
	[ "$(jq -s 'map(select(.topic == "dyn.crash")) | length' <<<"$output")" -eq 1 ]
	[ "$(dp-topic list -o names | grep -cx dyn.crash)" -eq 1 ]
	dp-topic delete dyn.crash -o json >/dev/null
}

@test "retire: retired at once, then the topic and its registry key are gone after the delay" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request dyn.old --source "$SRC" --filter . --wait=5s >/dev/null
	run --separate-stderr dp-coord retire dyn.old --delete-after 2s --wait=5s
	[ "$status" -eq 0 ]
	[ "$(jq -r .state <<<"$output")" = retired ]
	[ "$(jq -r .delete_at <<<"$output")" != null ]
	run dp-topic describe dyn.old -o json
	[ "$status" -eq 0 ]
	wait_until 20 bash -c '! dp-topic list -o names | grep -qx dyn.old'
	wait_until 20 bash -c '[ -z "$(dp-coord list -o json | jq -r "select(.topic == \"dyn.old\")")" ]'
	traced 1 active DELETE_DUE deletingTopic
	traced 1 deletingTopic DELETE_TOPIC_SUCCESS notifyingActors
	# Nothing left to retire.
	run --separate-stderr dp-coord retire dyn.old
	[ "$status" -eq 81 ]
	[[ $stderr == *"no dynamic topic 'dyn.old' in the registry"* ]]
}

@test "a retired topic asked for again as it was is taken back; with another spec, refused (80)" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request dyn.back --source "$SRC" --filter '.fsym == "BTC"' --wait=5s >/dev/null
	run --separate-stderr dp-coord retire dyn.back --delete-after 1h --wait=5s
	[ "$status" -eq 0 ]
	[ "$(jq -r .state <<<"$output")" = retired ]
	run --separate-stderr dp-coord request dyn.back --source "$SRC" --filter '.fsym == "ETH"' --wait=5s
	[ "$status" -eq 80 ]
	[[ $stderr == *"dynamic topic 'dyn.back' is retired with another spec"* ]]
	run --separate-stderr dp-coord request dyn.back --source "$SRC" --filter '.fsym == "BTC"' --wait=5s
	[ "$status" -eq 0 ]
	[ "$(jq -r '"\(.state) \(.delete_at)"' <<<"$output")" = "active null" ]
	registry_has '.topic == "dyn.back" and .state == "active" and .delete_at == null'
	run dp-topic describe dyn.back -o json
	[ "$status" -eq 0 ]
}

@test "a topic there before the request: refused (80) when it holds records, taken when empty" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	full=dyn.$(uniq_name full) empty=dyn.$(uniq_name empty)
	create_topic "$full"
	create_topic "$empty"
	echo '{"someone":"else"}' | dp-publish -t "$full"
	# Someone else's records: never made dynamic, which a retire would delete.
	run --separate-stderr dp-coord request "$full" --source "$SRC" --filter . --wait=10s
	[ "$status" -eq 80 ]
	[[ $stderr == *"topic '$full' exists already, with records, and is not one this coordinator made"* ]]
	[ "$(kcat_count "$full")" -eq 1 ]
	# Empty, as a coordinator stopped between creating and notifying leaves it.
	run --separate-stderr dp-coord request "$empty" --source "$SRC" --filter . --wait=10s
	[ "$status" -eq 0 ]
	[ "$(jq -r .state <<<"$output")" = active ]
	dp-topic delete "$full" "$empty" >/dev/null
}

@test "registry records that are not specs are skipped with a warning by every reader" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request dyn.ok --source "$SRC" --filter . --wait=5s >/dev/null
	printf 'dyn.junk\tnot json\ndyn.notopic\t{"state":"active"}\ndyn.other\t{"topic":"dyn.elsewhere","state":"active","source":"s","filter":"."}\n' |
		kcat -b "$DP_BROKERS" -P -t "$DP_REGISTRY" -K '\t'
	run --separate-stderr dp-coord list -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r .topic <<<"$output")" = dyn.ok ]
	[[ $stderr == *"(key 'dyn.junk'): skipped: not JSON"* ]]
	[[ $stderr == *"(key 'dyn.notopic'): skipped: no \"topic\""* ]]
	[[ $stderr == *"skipped: key 'dyn.other' is not its topic 'dyn.elsewhere'"* ]]
	# The coordinator goes on.
	run dp-coord request dyn.ok2 --source "$SRC" --filter . --wait=5s
	[ "$status" -eq 0 ]
	grep -q "skipped: not JSON" "$W/serve1.err"
	# Requests that are not requests are skipped too, and one that could
	# only be answered by overwriting another topic's record is ignored.
	printf 'x\tgarbage\ndyn.ok\t{"action":"create","request_id":"r1","topic":"dyn.ok","source":"%s","filter":".other"}\n' "$SRC" |
		kcat -b "$DP_BROKERS" -P -t "$DP_REQUESTS" -K '\t'
	wait_until 10 traced 1 processingCreateTopic CREATE_TOPIC_IGNORED notifyingActors
	grep -q "request at $DP_REQUESTS offset [0-9]* skipped: not JSON" "$W/serve1.err"
	grep -q "request r1 for 'dyn.ok' ignored: topic 'dyn.ok' is active with another spec" "$W/serve1.err"
	printf 'dyn.nothere\t{"action":"retire","request_id":"r2","topic":"dyn.nothere"}\n' |
		kcat -b "$DP_BROKERS" -P -t "$DP_REQUESTS" -K '\t'
	wait_until 10 traced 1 processingRetireTopic RETIRE_TOPIC_IGNORED notifyingActors
	dp-topic delete dyn.ok dyn.ok2 -o json >/dev/null
}

@test "run: a child per topic, for existing and new ones, restarted after a crash, stopped on retire" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request dyn.r1 --source "$SRC" --filter . --wait=5s >/dev/null
	# The child writes its topic and PID, then waits to be stopped.
	cat >"$W/child" <<EOF
#!/bin/sh
echo "\$\$" > "$W/pid.\$DP_TOPIC"
echo "started for \$1" >&2
trap 'echo "stopped \$DP_TOPIC" >> "$W/stopped"; exit 0' TERM
while :; do sleep 0.1; done
EOF
	chmod +x "$W/child"
	dp-coord run -- sh -c "exec '$W/child' {}" 2>"$W/run.err" &
	RUN_PID=$!
	wait_until 10 test -s "$W/pid.dyn.r1"
	dp-coord request dyn.r2 --source "$SRC" --filter . --wait=5s >/dev/null
	wait_until 10 test -s "$W/pid.dyn.r2"
	grep -q "^dp-coord: dyn.r1: started for dyn.r1$" "$W/run.err"
	# A crash: the child comes back.
	old=$(<"$W/pid.dyn.r1")
	kill -KILL "$old"
	wait_until 10 bash -c "[ -s '$W/pid.dyn.r1' ] && [ \"\$(<'$W/pid.dyn.r1')\" != $old ]"
	grep -q "'dyn.r1': child killed by signal 9; starting it again" "$W/run.err"
	# Retired: its child gets SIGTERM, the other goes on.
	dp-coord retire dyn.r1 --wait=5s >/dev/null
	wait_until 10 grep -qx "stopped dyn.r1" "$W/stopped"
	# run stops: every child gets SIGTERM.
	kill -TERM "$RUN_PID"
	wait "$RUN_PID"
	RUN_PID=
	grep -qx "stopped dyn.r2" "$W/stopped"
	dp-topic delete dyn.r1 dyn.r2 --if-exists -o json >/dev/null
}

@test "watch prints the registry, then each change; a closed pipe ends it" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request dyn.w1 --source "$SRC" --filter . --wait=5s >/dev/null
	dp-coord watch > "$W/watch" 2>"$W/watch.err" &
	WATCH_PID=$!
	wait_until 10 grep -q '"topic":"dyn.w1"' "$W/watch"
	dp-coord request dyn.w2 --source "$SRC" --filter . --wait=5s >/dev/null
	dp-coord retire dyn.w2 --wait=5s >/dev/null
	wait_until 10 grep -q '"topic":"dyn.w2","state":"retired"' "$W/watch"
	wait_until 10 grep -q '{"topic":"dyn.w2","state":"deleted"}' "$W/watch"
	[ "$(jq -r '"\(.topic) \(.state)"' "$W/watch")" = "dyn.w1 active
dyn.w2 active
dyn.w2 retired
dyn.w2 deleted" ]
	kill -TERM "$WATCH_PID"
	wait "$WATCH_PID"
	WATCH_PID=
	# A reader that leaves: the next change ends the watch quietly.
	dp-coord watch --trace-states 2>"$W/watch2.err" | head -1 >/dev/null &
	wait_until 10 grep -q '"to":"watching"' "$W/watch2.err"
	dp-coord request dyn.w3 --source "$SRC" --filter . --wait=5s >/dev/null
	dp-coord request dyn.w4 --source "$SRC" --filter . --wait=5s >/dev/null
	wait_until 10 grep -q '"event":"pipe_closed","to":"done"' "$W/watch2.err"
	dp-topic delete dyn.w1 dyn.w3 dyn.w4 -o json >/dev/null
}

@test "list: a table on a terminal, JSON in a pipe; a failed write is exit 74" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request dyn.l1 --source "$SRC" --filter '.fsym == "BTC"' -p 2 --wait=5s >/dev/null
	run dp-coord list -o table
	[ "${lines[0]}" = "$(printf '%s' "${lines[0]}" | grep -E '^TOPIC +STATE +SOURCE +PARTITIONS +FILTER +UPDATED$')" ]
	[[ ${lines[1]} =~ ^dyn\.l1\ +active\ +$SRC\ +2\ +\.fsym\ ==\ \"BTC\" ]]
	run --separate-stderr bash -c 'dp-coord list -o json >/dev/full'
	[ "$status" -eq 74 ]
	[[ $stderr == *"cannot write to stdout"* ]]
	dp-topic delete dyn.l1 -o json >/dev/null
}

@test "without a coordinator: a request times out with 69; without a registry every reader says so" {
	# No registry at all: nothing ever served this cluster.
	for sub in list watch "run -- true"; do
		run --separate-stderr dp-coord $sub
		[ "$status" -eq 69 ]
		[[ $stderr == *"registry '$DP_REGISTRY' does not exist: no dp-coord serve has run"* ]]
	done
	run --separate-stderr dp-coord request dyn.x --source "$SRC" --filter .
	[ "$status" -eq 69 ]
	# A registry, but nobody serving.
	dp-topic create "$DP_REGISTRY" -c cleanup.policy=compact -o json >/dev/null
	dp-topic create "$DP_REQUESTS" -o json >/dev/null
	create_topic "$SRC"
	run --separate-stderr dp-coord request dyn.x --source "$SRC" --filter . --wait=1s
	[ "$status" -eq 69 ]
	[[ $stderr == *"no answer to request"*"within 1s: is a dp-coord serve running"* ]]
	# No --wait: the request is written and printed.
	run --separate-stderr dp-coord request dyn.y --source "$SRC" --filter .
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.action, .topic] | join(" ")' <<<"$output")" = "create dyn.y" ]
	[ "$(kcat_count "$DP_REQUESTS")" -eq 2 ]
	# A requests topic that does not exist, and one that refuses the request.
	Q=$(new_topic)
	run --separate-stderr dp-coord request dyn.z --requests "$Q" --source "$SRC" --filter .
	[ "$status" -eq 69 ]
	[[ $stderr == *"topic '$Q' does not exist"* ]]
	dp-topic create "$Q" -c max.message.bytes=64 -o json >/dev/null
	run --separate-stderr dp-coord request dyn.z --requests "$Q" --source "$SRC" --filter . --trace-states
	[ "$status" -ne 0 ]
	[[ $stderr == *"cannot send the request to '$Q'"* ]]
	[[ $stderr == *'"from":"requesting","event":"send_failed","to":"failed"'* ]]
}

@test "request --wait before any coordinator: waits for the one that starts, and is answered by it" {
	create_topic "$SRC"
	D=dyn.$(uniq_name early)
	# No coordinator has made the registry and requests topics yet.
	dp-coord request "$D" --source "$SRC" --filter . --wait=60s --trace-states \
		>"$W/req.out" 2>"$W/req.err" &
	REQ_PID=$!
	wait_until 20 grep -q '"from":"connecting","event":"not_served","to":"connecting"' "$W/req.err"
	! grep -q '"event":"connected"' "$W/req.err"
	serve_start 1
	wait_until 60 proc_gone "$REQ_PID"
	rc=0
	wait "$REQ_PID" || rc=$?
	REQ_PID=
	[ "$rc" -eq 0 ]
	[ "$(jq -r '[.topic, .state, .source] | join(" ")' "$W/req.out")" = "$D active $SRC" ]
	grep -q '"from":"waiting","event":"granted","to":"done"' "$W/req.err"
	dp-topic delete "$D" -o json >/dev/null
}

@test "a signal ends every subcommand at once, in connecting and in waiting" {
	blackhole_start
	for sub in serve list "request dyn.x --source s --filter ."; do
		signal_within 1.5 INT dp-coord $sub -b "127.0.0.1:$BLACKHOLE_PORT" --timeout 30s --trace-states
		[[ $stderr == *'"from":"connecting","event":'*'"to":"done"'* ]]
	done
	dp-topic create "$DP_REGISTRY" -c cleanup.policy=compact -o json >/dev/null
	dp-topic create "$DP_REQUESTS" -o json >/dev/null
	dp-coord request dyn.x --source s --filter . --wait=30s --trace-states 2>"$W/req.err" &
	pid=$!
	wait_until 10 grep -q '"to":"waiting"' "$W/req.err"
	kill -INT "$pid"
	wait_until 1.5 proc_gone "$pid"
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 130 ]
	grep -q '"from":"waiting","event":"signal","to":"failed"' "$W/req.err"
	grep -q "dp-coord: stopped by SIGINT before the end: request [0-9a-f]* was sent but not answered yet" "$W/req.err"
	# A standby coordinator, and an active one.
	serve_start 1
	serve_active 1
	serve_start 2
	wait_until 30 grep -q '"to":"standby"' "$W/serve2.err"
	wait_until 30 settled
	# Its arrival took the partition from the first, if only for a moment.
	traced 1 active REVOKED standby
	kill -TERM "${SERVES[$STANDBY]}"
	wait "${SERVES[$STANDBY]}"
	traced "$STANDBY" standby SIGNAL stopping
	traced "$STANDBY" stopping STOPPED done
	kill -TERM "${SERVES[$ACTIVE]}"
	wait "${SERVES[$ACTIVE]}"
	# (The other's leaving may have started a rebalance meanwhile.)
	traced "$ACTIVE" active SIGNAL stopping || traced "$ACTIVE" standby SIGNAL stopping
	SERVES=()
}

@test "a broker that stops mid-request: the coordinator backs off, then finishes it" {
	broker_pausable || skip "needs the harness's own broker (scripts/stack) to pause"
	serve_start 1
	serve_active 1
	# The source does not exist yet, so the coordinator looks for it a
	# while; the broker stops meanwhile.
	dp-coord request dyn.slow --source "$SRC" --filter . >/dev/null
	wait_until 10 traced 1 active REQUEST_CREATE_TOPIC processingCreateTopic
	broker_pause
	wait_until 20 traced 1 processingCreateTopic CREATE_TOPIC_FAILURE error
	broker_resume
	create_topic "$SRC"
	wait_until 30 registry_has '.topic == "dyn.slow" and .state == "active"'
	cat "$W/serve1.err" | grep -v kafka
	traced 1 error RESET active
	# A retired topic whose deletion fails while the broker is away.
	dp-coord retire dyn.slow --delete-after 3s --wait=5s >/dev/null
	broker_pause
	wait_until 30 traced 1 deletingTopic DELETE_TOPIC_FAILURE error
	broker_resume
	wait_until 30 bash -c '! dp-topic list -o names | grep -qx dyn.slow'
}

@test "a registry that cannot be written: the notification is retried until it can" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	# A registry that takes no record as large as a spec.
	dp-topic alter "$DP_REGISTRY" --set max.message.bytes=64 -o json >/dev/null
	dp-coord request dyn.n --source "$SRC" --filter . >"$W/req.json"
	wait_until 30 traced 1 notifyingActors NOTIFY_FAILURE error
	wait_until 30 traced 1 error RESET active
	dp-topic alter "$DP_REGISTRY" --delete max.message.bytes -o json >/dev/null
	id=$(jq -r .request_id "$W/req.json")
	wait_until 40 registry_has ".topic == \"dyn.n\" and .request_id == \"$id\""
	dp-topic delete dyn.n -o json >/dev/null
}

@test "a registry deleted under the coordinators and readers ends them with an error" {
	serve_start 1
	serve_active 1
	serve_start 2
	wait_until 30 grep -q '"to":"standby"' "$W/serve2.err"
	wait_until 30 settled
	dp-coord run -- true 2>"$W/run.err" &
	RUN_PID=$!
	dp-coord watch --trace-states >/dev/null 2>"$W/watch.err" &
	WATCH_PID=$!
	wait_until 10 grep -q '"to":"watching"' "$W/watch.err"
	dp-topic delete "$DP_REGISTRY" -o json >/dev/null
	for n in 1 2; do
		wait_until 60 proc_gone "${SERVES[$n]}"
		rc=0
		wait "${SERVES[$n]}" || rc=$?
		[ "$rc" -eq 81 ]
		grep -q '"event":"FATAL","to":"stopping"' "$W/serve$n.err"
		traced "$n" stopping FATAL failed
	done
	# At least one stood by when the registry went (both, if a late
	# rebalance on a loaded machine was in flight): the acting one's row
	# is the next test's, with no second coordinator to move it.
	cat "$W/serve1.err" "$W/serve2.err" > "$W/serve.err"
	grep -q '"from":"standby","event":"FATAL","to":"stopping"' "$W/serve.err"
	grep -q "registry: .*topic does not exist" "$W/serve.err"
	SERVES=()
	for pid in $WATCH_PID $RUN_PID; do
		wait_until 60 proc_gone "$pid"
		rc=0
		wait "$pid" || rc=$?
		[ "$rc" -eq 81 ]
	done
	WATCH_PID= RUN_PID=
	grep -q '"from":"watching","event":"lost","to":"failed"' "$W/watch.err"
}

@test "a registry deleted under the one acting coordinator: active -FATAL-> stopping, exit 81" {
	serve_start 1
	serve_active 1
	dp-topic delete "$DP_REGISTRY" -o json >/dev/null
	wait_until 60 proc_gone "${SERVES[1]}"
	rc=0
	wait "${SERVES[1]}" || rc=$?
	SERVES=()
	[ "$rc" -eq 81 ]
	traced 1 active FATAL stopping
	traced 1 stopping FATAL failed
}

@test "an unreachable cluster: serve and the readers exit 69" {
	port=$(free_port)
	for sub in serve list "request dyn.x --source s --filter ."; do
		run --separate-stderr dp-coord $sub -b "127.0.0.1:$port" --timeout 1s
		[ "$status" -eq 69 ]
		[[ $stderr == *"no kafka broker answered within 1s"* ]]
	done
}

@test "usage errors exit 64" {
	run --separate-stderr dp-coord
	[ "$status" -eq 64 ]
	[[ $stderr == *"no subcommand"* ]]
	run --separate-stderr dp-coord frob
	[ "$status" -eq 64 ]
	run --separate-stderr dp-coord request
	[ "$status" -eq 64 ]
	run --separate-stderr dp-coord request dyn.x --filter .
	[ "$status" -eq 64 ]
	run --separate-stderr dp-coord request 'bad name' --source s --filter .
	[ "$status" -eq 64 ]
	run --separate-stderr dp-coord list --wait
	[ "$status" -eq 64 ]
	run --separate-stderr dp-coord run
	[ "$status" -eq 64 ]
	run --separate-stderr dp-coord run --match '.a ==' -- true
	[ "$status" -eq 64 ]
	run --separate-stderr dp-coord serve --allow '('
	[ "$status" -eq 64 ]
	run --separate-stderr dp-coord request dyn.x --source s --filter . --replication-factor 3
	[ "$status" -eq 64 ]
	[[ $stderr == *"--replication-factor cannot be used with request"* ]]
	run --separate-stderr dp-coord serve --replication-factor 0
	[ "$status" -eq 64 ]
}

@test "serve on a one-broker cluster: its three topics made with replication factor 1, and said" {
	serve_start 1
	serve_active 1
	for t in "$DP_REGISTRY" "$DP_REQUESTS" "$DP_REQUESTS.decisions"; do
		[ "$(dp-topic describe "$t" -o json | jq .replication_factor)" -eq 1 ]
		grep -q "^dp-coord: topic '$t' was made with replication factor 1, not 3: the cluster has 1 broker up; a broker that dies can take it down$" "$W/serve1.err"
	done
	# A second coordinator finds them made: nothing more is said.
	serve_start 2
	wait_until 30 grep -q '"to":"standby"' "$W/serve2.err"
	! grep -q "replication factor" "$W/serve2.err"
}
