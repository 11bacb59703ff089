# tests/helpers/sink.bash - shared by the dp-sink-pg bats files.
# Load after helpers/common:  load helpers/common; load helpers/sink
#
#   records N [FROM]       prints N numbered records
#                          {"seq":i,"fsym":"BTC","ts":...,"price":...}
#   (pace, for a stream still flowing while a test acts, is in helpers/common)
#   q SQL                  psql in UTC
#   ident [NAME]           NAME (default $T) as a quoted SQL identifier
#   count [TABLE]          rows of TABLE (default $T); empty when it is missing
#   count_is N [TABLE]     count is N
#   count_at_least N       count of $T is N or more
#   need_restart           skips unless the stack's own PostgreSQL can restart
#   pg_restart_bg DURATION stops PostgreSQL for DURATION in the background
#                          (RESTART_PID; the caller's teardown waits for it)
#   pg_down                PostgreSQL does not answer
#   pg_port                the port of the harness's PostgreSQL
#   stop_background        for teardown: kills BG_PIDS, waits for RESTART_PID
#                          (the next test needs the database), blackhole_stop

records() {
	python3 - "$1" "${2:-1}" <<'PY'
import sys
n, start = int(sys.argv[1]), int(sys.argv[2])
w = sys.stdout.write
for i in range(start, start + n):
    w('{"seq":%d,"fsym":"BTC","ts":"2026-01-01T%02d:%02d:%02dZ","price":%d.5}\n'
      % (i, i // 3600 % 24, i // 60 % 60, i % 60, 1000 + i % 97))
PY
}

q() { psql_dp -c "set timezone = 'UTC'" -c "$1"; }
ident() { local n=${1:-$T}; printf '"%s"' "${n//\"/\"\"}"; }
count() { psql_dp -c "select count(*) from $(ident "$1")" 2>/dev/null; }
count_is() { [[ $(count "${2:-$T}") == "$1" ]]; }
count_at_least() { local n; n=$(count) && [[ -n $n ]] && ((n >= $1)); }

# Restarting the database needs the harness's own PostgreSQL.
need_restart() {
	[[ -z ${DP_TEST_PG:-} && -n ${DP_STACK_DIR:-} ]] ||
		skip "needs the harness's own PostgreSQL to restart (DP_TEST_PG is set, or DP_STACK_DIR is not)"
}
pg_restart_bg() { # DURATION: stop PostgreSQL, keep it down that long, start it
	# not holding the test's FIFO open: its reader would wait for this EOF
	if [[ -n ${FEED:-} ]]; then
		"$DP_ROOT/scripts/stack" restart pg --down-for "$1" > "$W/restart.log" 2>&1 {FEED}>&- &
	else
		"$DP_ROOT/scripts/stack" restart pg --down-for "$1" > "$W/restart.log" 2>&1 &
	fi
	RESTART_PID=$!
}
pg_down() { ! pg_isready -q -d "$DP_PG"; }
pg_port() { [[ $DP_PG =~ @127\.0\.0\.1:([0-9]+)/ ]] && echo "${BASH_REMATCH[1]}"; }

stop_background() {
	bg_kill
	if [[ -n ${RESTART_PID:-} ]]; then
		wait "$RESTART_PID" 2>/dev/null || true
	fi
	blackhole_stop
}
