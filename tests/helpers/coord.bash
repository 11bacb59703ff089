# tests/helpers/coord.bash - coordinators for bats files that need dynamic
# topics.  Load after helpers/common and helpers/kafka.
#
# Each test should give itself a registry and requests topic of its own:
#   export DP_REGISTRY=$(uniq_name reg) DP_REQUESTS=$(uniq_name req)
# and a consumer group G for its coordinators.  Its teardown stops the
# coordinators it started: serve_stop_all.
#
#   serve_start N [ARGS]   dp-coord serve -v --trace-states in the background,
#                          stderr in $BATS_TEST_TMPDIR/serveN.err, PID in SERVES[N]
#   serve_active N         coordinator N owns the requests topic (waits up to 30 s)
#   serve_stop_all         SIGTERM to every coordinator started, and wait for it
#   registry_has JQ        some registry spec satisfies the jq condition
#   registry_ts TOPIC STATE  the Kafka timestamp (ms) of TOPIC's registry
#                          record in STATE (the first one)

SERVES=()

serve_start() {
	local n=$1
	shift
	dp-coord serve -v -g "$G" --trace-states --timeout 2s "$@" \
		2>"$BATS_TEST_TMPDIR/serve$n.err" &
	SERVES[$n]=$!
}

serve_active() {
	wait_until 30 grep -q '"event":"ASSIGNED","to":"active"' "$BATS_TEST_TMPDIR/serve$1.err"
}

serve_stop_all() {
	local pid
	for pid in "${SERVES[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${SERVES[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	SERVES=()
}

# (jq 1.6's -e succeeds on no input at all, so the specs are slurped first.)
registry_has() {
	dp-coord list -o json 2>/dev/null | jq -s -e "any(.[]; $1)" >/dev/null
}

registry_ts() {
	kcat -b "$DP_BROKERS" -C -t "$DP_REGISTRY" -e -q -o beginning -f '%T %s\n' 2>/dev/null |
		while read -r ts value; do
			if jq -e --arg t "$1" --arg s "$2" '.topic == $t and .state == $s' \
				<<<"$value" >/dev/null 2>&1; then
				echo "$ts"
				break
			fi
		done
}
