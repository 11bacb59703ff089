# tests/helpers/kafka.bash - topic helpers for bats files that need Kafka.
# Load after helpers/common:  load helpers/common; load helpers/kafka
#
#   create_topic NAME [PARTITIONS]   create NAME with dp-topic; fails the test
#                                    with dp-topic's message when it cannot
#   gen_prices N [FROM]              prints N price-like NDJSON lines (~200 B)
#   sorted FILE                      prints FILE sorted bytewise
#   broker_pausable                  the broker is the harness's own (a PID to stop)
#   broker_pause, broker_resume      SIGSTOP / SIGCONT the broker: it hangs as a
#                                    broker under a long GC pause or a frozen VM
#                                    does; resume is safe to call when not paused
#   need_kafka_restart               skips the test unless the harness's own
#                                    Kafka can be restarted (not DP_TEST_BROKERS)
#   kafka_restart_bg DURATION        scripts/stack restart kafka --down-for
#                                    DURATION in the background (keeps data);
#                                    sets KAFKA_RESTART_PID, log in
#                                    $BATS_TEST_TMPDIR/kafka-restart.log
#   kafka_restart_wait               waits for it; fails when it failed

create_topic() {
	local name=${1:?create_topic NAME [PARTITIONS]} parts=${2:-1}
	dp-topic create "$name" -p "$parts" -o json >/dev/null
}

gen_prices() {
	python3 - "$1" "${2:-1}" <<'PY'
import sys
n, start = int(sys.argv[1]), int(sys.argv[2])
syms = ["BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "DOT", "LTC"]
w = sys.stdout.write
for i in range(start, start + n):
    s = syms[i % len(syms)]
    w('{"type":"price","source":"cryptocompare","market":"CCCAGG","fsym":"%s",'
      '"tsym":"USD","ts":"2026-11-27T02:%02d:%02dZ","price":%d.%02d,'
      '"volume_24h":%d.5,"change_pct_24h":-1.25,"seq":%d}\n'
      % (s, (i // 60) % 60, i % 60, 30000 + i % 1000, i % 100, i * 7, i))
PY
}

sorted() {
	LC_ALL=C sort "$1"
}

_broker_pid() {
	[[ -z ${DP_TEST_BROKERS:-} && -n ${DP_STACK_DIR:-} && -s $DP_STACK_DIR/kafka.pid ]] || return 1
	cat "$DP_STACK_DIR/kafka.pid"
}

broker_pausable() {
	_broker_pid >/dev/null
}

broker_pause() {
	local pid
	pid=$(_broker_pid) || return 1
	kill -STOP "$pid"
	BROKER_PAUSED=$pid
}

broker_resume() {
	if [[ -n ${BROKER_PAUSED:-} ]]; then
		kill -CONT "$BROKER_PAUSED" 2>/dev/null || true
		BROKER_PAUSED=
	fi
}

need_kafka_restart() {
	[[ -z ${DP_TEST_BROKERS:-} && -n ${DP_STACK_DIR:-} ]] ||
		skip "needs the harness's own Kafka to restart (DP_TEST_BROKERS is set, or DP_STACK_DIR is not)"
}

kafka_restart_bg() {
	"$DP_ROOT/scripts/stack" restart kafka --down-for "${1:?kafka_restart_bg DURATION}" \
		> "$BATS_TEST_TMPDIR/kafka-restart.log" 2>&1 &
	KAFKA_RESTART_PID=$!
}

kafka_restart_wait() {
	local st=0
	[[ -n ${KAFKA_RESTART_PID:-} ]] || return 0
	wait "$KAFKA_RESTART_PID" || st=$?
	KAFKA_RESTART_PID=
	if ((st != 0)); then
		cat "$BATS_TEST_TMPDIR/kafka-restart.log" >&2
		return 1
	fi
}
