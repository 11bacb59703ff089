# bench/stack.bash - sourced by the bench scripts, from the repository root.
#
#   bench_stack VAR   when $VAR (DP_BROKERS, DP_PG) is set, use that service;
#                     otherwise start the test stack, with its data on
#                     /dev/shm when there is one (disk writeback from earlier
#                     repetitions was the largest source of noise)
#   bench_unstack     stop the stack again if bench_stack started it
#
# Also makes $work, a scratch directory the script removes at exit.

bench_started=0

bench_stack() {
	if [[ -z ${!1:-} ]]; then
		if [[ -z ${DP_STACK_DIR:-} && -d /dev/shm && -w /dev/shm ]]; then
			export DP_STACK_DIR=/dev/shm/dp-bench-$UID
		fi
		eval "$(scripts/stack up)"
		bench_started=1
	fi
	work=$(mktemp -d "${TMPDIR:-/tmp}/dp-bench.XXXXXX")
}

bench_unstack() {
	((bench_started)) && scripts/stack down >&2
	return 0
}
