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
#   fetcher_woken FILE               FILE is stderr of a run with -vv -X
#                                    debug=fetch,protocol: librdkafka stopped
#                                    fetching at the prefetch bound at least once,
#                                    and every time started again while records
#                                    were still queued or when woken, never only
#                                    on its own timer with the reader idle

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

# librdkafka 2.0.2 logs each change of a partition's fetch state (debug=fetch):
#   [thrd:BROKER]: ... Topic T [P] in state active at offset O (Q/MAX msgs,
#   KB/MAXKB kb queued, opv V) is not fetchable: queued.min.messages exceeded
# and each request a broker's thread sends (debug=protocol).  After such a
# stop, the fetcher must start again either while records are still queued
# (Q > 0: the wake-up came in time) or because it was woken: the request
# that wakes it (a ListOffsetsRequest, made when the reader has drained
# half the queue) goes out from that broker's thread between the stop and
# the next FetchRequest.  Never only once its own timer fires, up to a
# second later, with the reader long idle.
fetcher_woken() {
	awk '
	function thread(   t) {
		return match($0, /\[thrd:[^]]*\]/) ? substr($0, RSTART, RLENGTH) : ""
	}
	/Sent ListOffsetsRequest/ {
		for (k in stopped)
			if (stopped[k] == thread())
				woken[k] = 1
		for (k in dry)
			if (dry[k] == thread())
				woken[k] = 1
		next
	}
	/Sent FetchRequest/ {
		for (k in dry)
			if (dry[k] == thread()) {
				if (!woken[k]) {
					print "started again with nothing queued, not woken: " k
					idle++
				}
				delete dry[k]
			}
		next
	}
	match($0, /Topic [^ ]+ \[[0-9]+\]/) {
		key = substr($0, RSTART, RLENGTH)
		if ($0 ~ /is not fetchable: queued\.(min\.messages|max\.messages\.kbytes) exceeded/) {
			stopped[key] = thread()
			woken[key] = 0
			stops++
		} else if ($0 ~ / is fetchable/ && (key in stopped)) {
			match($0, /\([0-9]+\//)
			if (substr($0, RSTART + 1, RLENGTH - 2) == 0)
				dry[key] = stopped[key]
			delete stopped[key]
		}
	}
	END {
		for (k in dry)
			if (!woken[k])
				idle++
		print stops + 0 " stops at the prefetch bound, " idle + 0 " of them until the reader was idle"
		exit !(stops > 0 && idle == 0)
	}' "$1"
}
