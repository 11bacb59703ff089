# tests/helpers/common.bash - shared by every bats file: `load helpers/common`
#
# Needs DP_BROKERS and DP_PG (run the suite with `make check` or
# `scripts/check [bats args]`, which start the stack and set them).
#
# Provides:
#   DP_ROOT                   the repository root
#   DP_BIN                    the dp binaries, first on PATH: $DP_ROOT/bin
#                             unless set (make check-asan sets build/asan/bin)
#   uniq_name PREFIX          prints PREFIX_<test number>_<random hex>: a name
#                             fit for a topic, group, table or database
#   new_topic [PARTITIONS]    prints a fresh topic name (uniq_name t); it does
#                             not create the topic: the test does that
#   wait_until SECS CMD...    runs CMD every 0.1 s until it succeeds; after SECS
#                             (may be fractional) says what it awaited, returns 1
#   kcat_count TOPIC          prints how many records TOPIC holds (0 if none)
#   kcat_produce TOPIC [ARG]  kcat producer on TOPIC, one record per stdin line
#   kcat_payloads TOPIC [ARG] prints every record's value, one per line
#   free_port                 prints a free TCP port on 127.0.0.1
#   psql_dp [ARGS]            psql on $DP_PG: unaligned, tuples only, quiet,
#                             stops at the first error
#   blackhole_start           starts a loopback TCP server that accepts and never
#                             answers; sets BLACKHOLE_PORT (stopped at teardown
#                             by blackhole_stop, which a test's teardown calls)
#   proc_gone PID             the process has ended (a zombie counts)
#   bg_kill                   SIGKILLs and reaps every PID in the array BG_PIDS
#                             (a test's background commands; for teardown)
#   pace [FILE] SECONDS       FILE (or stdin) on stdout, spread evenly over about SECONDS
#                             (a stream still flowing while a test acts on it)
#   signal_within SECS SIG CMD...  runs CMD in the background, sends SIG once its
#                             stderr shows the machine left "idle" (it runs with
#                             --trace-states), and checks that it ends within SECS;
#                             sets status and stderr like bats' run

DP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DP_BIN=${DP_BIN:-$DP_ROOT/bin}
export DP_ROOT DP_BIN
PATH=$DP_BIN:$PATH
export PATH

if [[ -z ${DP_BROKERS:-} || -z ${DP_PG:-} ]]; then
	{
		echo "tests/helpers/common.bash: DP_BROKERS and DP_PG are not set."
		echo "Run the tests with 'make check', or 'scripts/check [bats args]' for one file,"
		echo "or by hand: eval \"\$(scripts/stack up)\"; bats tests/...; scripts/stack down"
	} >&2
	return 1
fi
export DP_BROKERS DP_PG

uniq_name() {
	local hex
	hex=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
	printf '%s_%s_%s\n' "${1:?uniq_name PREFIX}" "${BATS_TEST_NUMBER:-0}" "$hex"
}

new_topic() {
	uniq_name t
}

# seconds (integer or decimal) -> microseconds
_dp_us() {
	local s=$1 i f=0
	i=${s%%.*}
	[[ $s == *.* ]] && f=${s#*.}
	f=${f}000000
	echo $((10#${i:-0} * 1000000 + 10#${f:0:6}))
}

_dp_now_us() {
	local t=${EPOCHREALTIME/[.,]/}
	echo $((10#$t))
}

wait_until() {
	local secs=${1:?wait_until SECONDS CMD...}
	shift
	local deadline=$(($(_dp_now_us) + $(_dp_us "$secs")))
	until "$@"; do
		if (($(_dp_now_us) >= deadline)); then
			echo "wait_until: gave up after ${secs}s waiting for: $*" >&2
			return 1
		fi
		sleep 0.1
	done
}

kcat_count() {
	local out
	out=$(kcat -b "$DP_BROKERS" -C -t "${1:?kcat_count TOPIC}" -e -q -o beginning \
		-m 10 -f 'x\n' 2>/dev/null | wc -l) || true
	echo $((${out:-0} + 0))
}

kcat_produce() {
	local topic=${1:?kcat_produce TOPIC [kcat args]}
	shift
	kcat -b "$DP_BROKERS" -P -t "$topic" "$@"
}

kcat_payloads() {
	local topic=${1:?kcat_payloads TOPIC [kcat args]}
	shift
	kcat -b "$DP_BROKERS" -C -t "$topic" -e -q -o beginning -m 10 -f '%s\n' "$@"
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

psql_dp() {
	psql "$DP_PG" -X -q -At -v ON_ERROR_STOP=1 "$@"
}

# proc_gone PID: the process has ended (a zombie counts: it is only waiting
# for its parent).
proc_gone() {
	[[ ! -d /proc/$1 ]] || [[ $(awk '/^State:/{print $2}' "/proc/$1/status" 2>/dev/null) == Z ]]
}

# term_when_busy PID [SECS]: once PID has spent half a second of CPU (a jq
# program that spins), SIGTERM it and wait up to SECS (6) for it to end.
# Sets st (its exit status) and elapsed (ms from the signal to its end).
term_when_busy() {
	local pid=$1 secs=${2:-6} t0
	_busy() { (($(awk '{print $14}' "/proc/$pid/stat") >= $(getconf CLK_TCK) / 2)); }
	wait_until 20 _busy || return 1
	t0=$(_dp_now_us)
	kill -TERM "$pid"
	wait_until "$secs" proc_gone "$pid" || { kill -9 "$pid"; return 1; }
	st=0
	wait "$pid" || st=$?
	elapsed=$((($(_dp_now_us) - t0) / 1000))
}

bg_kill() {
	local p
	for p in "${BG_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}

pace() {
	local file=/dev/stdin
	if (($# == 2)); then
		file=$1
		shift
	fi
	# -c, not a here-document: stdin may be the input
	python3 -c '
import sys, time
lines = open(sys.argv[1], "rb").readlines()
chunks = 50
per = max(1, len(lines) // chunks)
for i in range(0, len(lines), per):
    try:
        sys.stdout.buffer.write(b"".join(lines[i:i + per]))
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        sys.exit(0)
    time.sleep(float(sys.argv[2]) / chunks)' "$file" "$1"
}

blackhole_start() {
	coproc BLACKHOLE { exec python3 "$DP_ROOT/tests/helpers/blackhole.py"; }
	read -r BLACKHOLE_PORT <&"${BLACKHOLE[0]}"
	export BLACKHOLE_PORT
}

blackhole_stop() {
	if [[ -n ${BLACKHOLE_PID:-} ]]; then
		kill "$BLACKHOLE_PID" 2>/dev/null || true
		wait "$BLACKHOLE_PID" 2>/dev/null || true
	fi
}

# signal_within SECS SIG CMD...: see the header.  The command must be given
# --trace-states so that the signal is sent once it is past "idle".
signal_within() {
	local secs=$1 sig=$2 pid t0 err=$BATS_TEST_TMPDIR/signal_within.err
	shift 2
	# Emptied here, not only by the child's redirection: until the child
	# runs, the file still holds the last call's "from":"idle", and a
	# signal then would hit a process that has no handlers yet.
	: >"$err"
	"$@" >/dev/null 2>"$err" </dev/null &
	pid=$!
	wait_until 10 grep -q '"from":"idle"' "$err" || return 1
	t0=$(_dp_now_us)
	kill -"$sig" "$pid"
	wait_until "$secs" proc_gone "$pid" || { kill -9 "$pid"; return 1; }
	status=0
	wait "$pid" || status=$?
	stderr=$(<"$err")
	SIGNAL_ELAPSED_MS=$((($(_dp_now_us) - t0) / 1000))
}
