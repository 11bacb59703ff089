#!/usr/bin/env bats
# dp-coord on a three-broker cluster: its registry, requests and
# decisions topics are made with replication factor 3 (fewer brokers than
# asked are said), and requests, retirements and the readers that follow
# the registry keep working when the broker leading those topics dies.

bats_require_minimum_version 1.5.0
load ../helpers/common
load ../helpers/kafka
load ../helpers/cluster

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-300}

setup_file() {
	cluster_setup_file
}

setup() {
	W=$BATS_TEST_TMPDIR
	export DP_REGISTRY=$(uniq_name reg) DP_REQUESTS=$(uniq_name req)
	DECISIONS=$DP_REQUESTS.decisions
	G=$(uniq_name g)
	SRC=$(new_topic)
	D=dyn.$(uniq_name d)
	BG_PIDS=()
	cluster_heal
}

teardown() {
	local pid
	for pid in "${BG_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${BG_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	cluster_heal
}

# serve N [ARGS]: a coordinator, stderr in $W/serveN.err
serve() {
	local n=$1
	shift
	dp-coord serve -v -g "$G" --timeout 30s --trace-states "$@" 2> "$W/serve$n.err" &
	BG_PIDS+=($!)
}
serve_active() {
	wait_until 60 grep -q '"event":"ASSIGNED","to":"active"' "$W/serve$1.err"
}
replication() {
	dp-topic describe "$1" -o json | jq -c '[.replication_factor, (.partition_info[0].isr | length)]'
}
# watching TOPIC STATE: dp-coord watch has printed TOPIC in STATE
watching() {
	jq -e -s --arg t "$1" --arg s "$2" 'any(.[]; .topic == $t and .state == $s)' "$W/watch" > /dev/null 2>&1
}

# request_follow NAME: request NAME (a dynamic topic of SRC's records with
# .n == 1), see the follower print it active, copy records into it with
# dp-publish --follow-registry, and read them back
request_follow() {
	run --separate-stderr dp-coord request "$1" --source "$SRC" --filter '.n == 1' --wait=60s --timeout 30s
	echo "$stderr"
	[ "$status" -eq 0 ]
	wait_until 30 watching "$1" active
	printf '{"n":1,"to":"%s"}\n{"n":2}\n' "$1" | dp-publish -t "$SRC" --follow-registry --timeout 30s
	run --separate-stderr dp-tail -t "$1" --from beginning -e --timeout 30s
	[ "$status" -eq 0 ]
	[ "$output" = "{\"n\":1,\"to\":\"$1\"}" ]
}

@test "serve makes its registry, requests and decisions topics with replication factor 3" {
	create_topic "$SRC"
	serve 1
	serve_active 1
	for t in "$DP_REGISTRY" "$DP_REQUESTS" "$DECISIONS"; do
		[ "$(replication "$t")" = "[3,3]" ]
		grep -q "created topic '$t' with replication factor 3" "$W/serve1.err"
	done
	! grep -q "was made with\|not 3" "$W/serve1.err"
}

@test "serve --replication-factor above the brokers up: made on all of them, and said" {
	serve 1 --replication-factor 5
	serve_active 1
	for t in "$DP_REGISTRY" "$DP_REQUESTS" "$DECISIONS"; do
		[ "$(replication "$t")" = "[3,3]" ]
		grep -q "dp-coord: topic '$t' was made with replication factor 3, not 5: the cluster has 3 brokers up; a broker that dies can take it down" "$W/serve1.err"
	done
}

@test "request, retire and follow keep working when the broker leading the registry, then the one leading the requests, dies" {
	create_topic "$SRC"
	serve 1
	serve_active 1
	dp-coord watch --timeout 30s > "$W/watch" 2> "$W/watch.err" &
	BG_PIDS+=($!)
	request_follow "$D.a"
	# The registry's leader dies: the coordinator writes the registry,
	# every follower reads it.
	victim=$(leader_of "$DP_REGISTRY")
	broker_kill "$victim"
	request_follow "$D.b"
	run --separate-stderr dp-coord retire "$D.a" --wait=60s --timeout 30s
	echo "$stderr"
	[ "$status" -eq 0 ]
	wait_until 30 watching "$D.a" retired
	[ "$(leader_of "$DP_REGISTRY")" != "$victim" ]
	cluster_heal
	# Then the requests topic's leader: requesters write there, the
	# coordinator reads it and commits its group's offsets.
	victim=$(leader_of "$DP_REQUESTS")
	broker_kill "$victim"
	request_follow "$D.c"
	run --separate-stderr dp-coord retire "$D.b" --wait=60s --timeout 30s
	[ "$status" -eq 0 ]
	wait_until 30 watching "$D.b" retired
	[ "$(leader_of "$DP_REQUESTS")" != "$victim" ]
	# One coordinator did it all, and it never failed; the retired topics
	# were deleted (--delete-after 0), and the registry says so.
	! grep -q '"to":"failed"' "$W/serve1.err"
	! grep -q "cannot tell\|cannot forget" "$W/serve1.err"
	wait_until 30 watching "$D.b" deleted
	run dp-coord list -o json
	[ "$(jq -r '[.topic, .state] | @tsv' <<<"$output" | grep "^$D")" = "$D.c	active" ]
}
