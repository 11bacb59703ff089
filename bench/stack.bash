# bench/stack.bash - sourced by the bench scripts, from the repository root.
#
#   bench_stack VAR   when $VAR (DP_BROKERS, DP_PG) is set, use that service;
#                     otherwise start the test stack, with its data on
#                     /dev/shm when there is one (disk writeback from earlier
#                     repetitions was the largest source of noise): one
#                     broker, or with DP_BENCH_BROKERS=3 a cluster of three
#                     (scripts/stack up --brokers 3: replication factor 3,
#                     min.insync.replicas=2), in a directory of its own
#   bench_stack_both  Kafka and PostgreSQL both from $DP_BROKERS and $DP_PG,
#                     or both from a stack of the script's own (never one of
#                     each: a sink measured across two stacks)
#   bench_unstack     stop the stack again if bench_stack started it
#   bench_rows TABLE N WHO  exit 1 unless TABLE holds N rows, naming WHO
#   bench_cleanup PATTERN PID...  for an EXIT trap: SIGTERM the PIDs (the
#                     script's background commands) and wait for them,
#                     delete the topics whose whole name matches PATTERN,
#                     remove $work, bench_unstack
#
# Also makes $work, a scratch directory the script removes at exit.

bench_started=0

bench_stack() {
	local brokers=${DP_BENCH_BROKERS:-1}
	if [[ -z ${!1:-} ]]; then
		if [[ -z ${DP_STACK_DIR:-} && -d /dev/shm && -w /dev/shm ]]; then
			# one per run: others may run theirs
			export DP_STACK_DIR=/dev/shm/dp-bench$( ((brokers == 1)) || echo "$brokers")-$UID-$$
		fi
		eval "$(scripts/stack up --brokers "$brokers")"
		bench_started=1
	fi
	echo "bench: $(tr -cd , <<<"$DP_BROKERS" | wc -c | awk '{ print $1 + 1 }') broker(s) at $DP_BROKERS" >&2
	work=$(mktemp -d "${TMPDIR:-/tmp}/dp-bench.XXXXXX")
}

bench_stack_both() {
	if [[ -n ${DP_BROKERS:-} && -n ${DP_PG:-} ]]; then
		bench_stack DP_PG
	else
		unset DP_BROKERS DP_PG
		bench_stack DP_PG
	fi
}

bench_rows() {
	local n
	n=$(psql "$DP_PG" -XAtq -c "select count(*) from $1")
	[[ $n == "$2" ]] || { echo "bench: $3 left $n rows in $1, not $2" >&2; exit 1; }
}

bench_unstack() {
	((bench_started)) && scripts/stack down >&2
	return 0
}

bench_cleanup() {
	local pattern=$1 pid
	shift
	for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
	for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
	dp-topic delete --pattern "$pattern" --yes -o json >/dev/null 2>&1 || true
	rm -rf "$work"
	bench_unstack
}
