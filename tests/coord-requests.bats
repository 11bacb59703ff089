#!/usr/bin/env bats
# dp-coord serve checks requests completely (issue 18): a field that the
# request's action does not have, or one of the wrong type, is a
# rejection that names it (never a grant with the broker's default), and
# a filter is granted only when producers evaluate it without libjq, so
# that no application can stop the producers that follow the registry.

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
	serve_stop_all
	dp-topic delete "$D.live" "$D.ok" --if-exists -o json >/dev/null 2>&1 || true
}

# request JSON: one request written as another program would write it
request() {
	printf '%s\t%s\n' "$(jq -r .topic <<<"$1")" "$1" |
		kcat -b "$DP_BROKERS" -P -t "$DP_REQUESTS" -K $'\t'
}

# spec TOPIC JQ: TOPIC's registry spec, through JQ
spec() {
	dp-coord list -o json | jq -r --arg t "$1" "select(.topic == \$t) | $2"
}

# decision ID JQ: the decision on request ID, through JQ
decision() {
	kcat -b "$DP_BROKERS" -C -t "$DP_REQUESTS.decisions" -e -q -f '%s\n' |
		jq -r --arg id "$1" "select(.request_id == \$id) | $2" | tail -1
}

# exists TOPIC
exists() {
	dp-topic list -o names | grep -qxF "$1"
}

@test "requests: a field the request does not have, or of the wrong type, is a rejection naming it" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request "$D.live" --source "$SRC" --filter . --wait=20s >/dev/null
	request '{"action":"create","request_id":"typo-1","topic":"'"$D.typo"'","source":"'"$SRC"'","filter":".","partiton":6}'
	request '{"action":"create","request_id":"type-1","topic":"'"$D.type"'","source":"'"$SRC"'","filter":".","partitions":"6"}'
	request '{"action":"create","request_id":"other-1","topic":"'"$D.other"'","source":"'"$SRC"'","filter":".","delete_after_ms":0}'
	# a retire with a misspelt delay: the topic stays as it is
	request '{"action":"retire","request_id":"retire-1","topic":"'"$D.live"'","delete_after":0}'
	request '{"action":"remove","request_id":"act-1","topic":"'"$D.live"'"}'
	wait_until 20 registry_has ".topic == \"$D.other\""
	[ "$(spec "$D.typo" '"\(.state) \(.rejected_for) \(.reason)"')" = \
		'rejected request invalid request: unknown field "partiton"' ]
	[ "$(spec "$D.type" '"\(.state) \(.rejected_for) \(.reason)"')" = \
		'rejected request invalid request: "partitions" is not an integer' ]
	[ "$(spec "$D.other" '.reason')" = 'invalid request: field "delete_after_ms" is for retire, not create' ]
	for t in "$D.typo" "$D.type" "$D.other"; do
		run ! exists "$t"
	done
	wait_until 20 eval '[ -n "$(decision act-1 .outcome)" ]'
	[ "$(spec "$D.live" .state)" = active ]
	exists "$D.live"
	[ "$(decision retire-1 '"\(.outcome) \(.reason)"')" = 'rejected invalid request: unknown field "delete_after"' ]
	[ "$(decision act-1 '"\(.action) \(.outcome) \(.reason)"')" = \
		"null rejected invalid request: unknown \"action\" 'remove' (expected create or retire)" ]
	grep -q "request retire-1 to retire '$D.live' rejected: invalid request: unknown field \"delete_after\"" \
		"$W/serve1.err"
	grep -q '"from":"processingRetireTopic","event":"RETIRE_TOPIC_REJECTED","to":"notifyingActors"' \
		"$W/serve1.err"
	# and one that cannot be answered (no request_id) is skipped, said
	printf 'x\t{"action":"create","topic":"x"}\n' |
		kcat -b "$DP_BROKERS" -P -t "$DP_REQUESTS" -K $'\t'
	wait_until 20 grep -q 'skipped: no "request_id"' "$W/serve1.err"
}

@test "filters: only what producers evaluate without libjq is granted; no producer hangs" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	run --separate-stderr dp-coord request "$D.loop" --source "$SRC" \
		--filter 'last(range(infinite))' --wait=20s
	[ "$status" -eq 65 ]
	[[ $stderr == *"filter 'last(range(infinite))' is outside what a dynamic topic may use"* ]]
	[ "$(jq -r .rejected_for <<<"$output")" = filter ]
	# within the subset, but too long
	long=$(python3 -c 'print(" or ".join(".n == %d" % i for i in range(500)))')
	run --separate-stderr dp-coord request "$D.long" --source "$SRC" --filter "$long" --wait=20s
	[ "$status" -eq 65 ]
	[[ $stderr == *"the filter is ${#long} bytes, at most 4096 allowed"* ]]
	# not jq at all: said as before
	run --separate-stderr dp-coord request "$D.syntax" --source "$SRC" --filter '.a ==' --wait=20s
	[ "$status" -eq 65 ]
	[[ $stderr == *"cannot compile jq expression"* ]]
	# paths, comparisons, and, or, not: granted
	dp-coord request "$D.ok" --source "$SRC" \
		--filter '.fsym == "BTC" or (.price > 30004 and (.fsym == "ETH" | not))' --wait=20s >/dev/null
	gen_prices 16 >"$W/in"
	timeout 30 dp-publish -t "$SRC" --follow-registry <"$W/in"
	jq -r 'select(.fsym == "BTC" or (.price > 30004 and (.fsym == "ETH" | not))) | .seq' \
		"$W/in" >"$W/want"
	kcat -b "$DP_BROKERS" -C -t "$D.ok" -e -q | jq -r .seq >"$W/got"
	[ "$(wc -l <"$W/want")" -ge 3 ]
	cmp "$W/want" "$W/got"
}
