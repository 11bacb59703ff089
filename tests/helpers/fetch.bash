# tests/helpers/fetch.bash - shared by dp-fetch's bats files:
# `load helpers/common` first, then `load helpers/fetch`.
#
# Provides:
#   W                       the test's scratch directory ($BATS_TEST_TMPDIR)
#   KEY                     a fake API key to look for in what dp-fetch shows
#   fetch_setup             setup(): W, no key or server URL from the caller
#   fetch_teardown          teardown(): stops the test server and a command
#                           left running in the background
#   start_server SCRIPT SCENARIO FIXTURES [ARGS...]
#                           starts tests/helpers/SCRIPT (ccserver.py or
#                           ccstreamer.py) with the JSON text SCENARIO and
#                           ARGS; sets SRV_PID and PORT; the server logs to
#                           $W/requests
#   same EXPECTED           $output must be EXPECTED; shows a diff when not
#   signal_in STATE SIG CMD...
#                           runs CMD (given --trace-states) in the background,
#                           sends SIG once the machine entered STATE, checks
#                           that it ends within 1.5 s; sets status, output and
#                           stderr like bats' run
#   last_move               the machine's last transition in $stderr, as
#                           "FROM -EVENT-> TO"

KEY=ccTestKey-8f2b6c1d0e9a7345

fetch_setup() {
	W=$BATS_TEST_TMPDIR
	unset CRYPTOCOMPARE_API_KEY DP_CRYPTOCOMPARE_URL DP_CRYPTOCOMPARE_STREAM_URL CC_EXPECT_KEY
	SRV_PID=
	BG_PID=
}

fetch_teardown() {
	if [[ -n ${SRV_PID:-} ]]; then
		kill "$SRV_PID" 2>/dev/null || true
		wait "$SRV_PID" 2>/dev/null || true
	fi
	if [[ -n ${BG_PID:-} ]]; then
		kill -KILL "$BG_PID" 2>/dev/null || true
		wait "$BG_PID" 2>/dev/null || true
	fi
}

start_server() { # SCRIPT SCENARIO FIXTURES [ARGS...]
	printf '%s\n' "$2" > "$W/scenario.json"
	rm -f "$W/port"
	python3 "$DP_ROOT/tests/helpers/$1" --fixtures "$3" \
		--scenario "$W/scenario.json" --port-file "$W/port" --log "$W/requests" "${@:4}" 3>&- &
	SRV_PID=$!
	wait_until 10 test -s "$W/port"
	PORT=$(cat "$W/port")
}

same() {
	[ "$output" = "$1" ] && return 0
	diff <(printf '%s\n' "$1") <(printf '%s\n' "$output") | head -20
	return 1
}

signal_in() {
	local state=$1 sig=$2 pid
	shift 2
	"$@" > "$W/sig.out" 2> "$W/sig.err" < /dev/null &
	pid=$!
	BG_PID=$pid
	wait_until 10 grep -q "\"to\":\"$state\"" "$W/sig.err" || return 1
	kill -"$sig" "$pid"
	wait_until 1.5 proc_gone "$pid" || return 1
	BG_PID=
	status=0
	wait "$pid" || status=$?
	output=$(< "$W/sig.out")
	stderr=$(< "$W/sig.err")
}

last_move() { grep '^{"cmd"' <<<"$stderr" | tail -1 | jq -r '"\(.from) -\(.event)-> \(.to)"'; }
