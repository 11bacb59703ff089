#!/usr/bin/env bash
# bench/ab.sh - two builds of dp side by side: the same broker, database
# and input, in one run, each going first in every other repetition.
# For a change that must leave speed where it was (a refactoring): the
# ratios say whether it did.
#
#   bench/ab.sh OLD_BIN NEW_BIN [LINES] [REPS]    (defaults: 200000 5)
#
# OLD_BIN and NEW_BIN are directories holding dp-publish, dp-tail,
# dp-sink-pg and dp-topic (a `make` of each commit; `git worktree add`
# makes the old one).  Each repetition runs, for both builds:
#   publish  dp-publish -t T -k .fsym < in          (idempotent, acks=all)
#   tail     dp-tail -t T --from beginning -e > /dev/null
#   sink-t   dp-sink-pg -t T -g G --table bench_ab -e
#   stdin    dp-sink-pg --stdin --table bench_ab --source-id S < in
# and prints per command the median wall time and CPU time (user+sys) of
# each build and the median over repetitions of old/new (above 1: the
# new one is faster).  CPU time is the steadier figure on a busy machine.
#
# Uses $DP_BROKERS and $DP_PG when both are set; otherwise starts the test
# stack and stops it again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
old=$(cd "$1" && pwd)
new=$(cd "$2" && pwd)
lines=${3:-200000}
reps=${4:-5}
for b in "$old" "$new"; do
	for c in dp-publish dp-tail dp-sink-pg dp-topic; do
		[[ -x $b/$c ]] || { echo "bench: no $b/$c" >&2; exit 64; }
	done
done

. bench/stack.bash
bench_stack_both
cleanup() {
	psql "$DP_PG" -Xq -c 'drop table if exists bench_ab' \
		-c "delete from dp_sink_offsets where topic like 'bench_ab_%' or topic like 'stdin:bench_ab_%'" \
		2>/dev/null || true
	"$new/dp-topic" delete --pattern "bench_ab_$$_.*" --yes -o json > /dev/null 2>&1 || true
	rm -rf "$work"
	bench_unstack
}
trap cleanup EXIT

python3 bench/gen-prices.py "$lines" > "$work/in"
echo "input: $lines lines, $(wc -c < "$work/in") bytes" >&2

fresh() {
	psql "$DP_PG" -Xq -v ON_ERROR_STOP=1 -c 'drop table if exists bench_ab' -c '
		create table bench_ab (type text, source text, market text, fsym text,
			tsym text, ts timestamptz, price double precision,
			volume_24h double precision, change_pct_24h double precision,
			mktcap bigint)' 2>/dev/null
}
held() {
	[[ $("$new/dp-topic" offsets "$1" -o json | jq -s 'map(.high) | add') == "$lines" ]] ||
		{ echo "bench: $1 does not hold $lines records" >&2; exit 1; }
}

# measure BUILD NAME CMD...: appends "BUILD NAME wall cpu" to results
measure() {
	local build=$1 name=$2
	shift 2
	/usr/bin/time -f "$build $name %e %U %S" -o "$work/t" "$@"
	awk '{ printf "%s %s %s %.2f\n", $1, $2, $3, $4 + $5 }' "$work/t" >> "$work/results"
	tail -1 "$work/results" >&2
}

one() {
	local build=$1 bin=$2 r=$3 t=bench_ab_$$_$3_$1
	"$new/dp-topic" create "$t" -p 3 -o json > /dev/null
	measure "$build" publish "$bin/dp-publish" -t "$t" -k .fsym < "$work/in"
	held "$t"
	measure "$build" tail sh -c "'$bin/dp-tail' -t '$t' --from beginning -e > /dev/null"
	fresh
	measure "$build" sink-t "$bin/dp-sink-pg" -t "$t" -g "$t" --table bench_ab -e
	bench_rows bench_ab "$lines" "$build sink-t"
	fresh
	measure "$build" stdin sh -c "'$bin/dp-sink-pg' --stdin --table bench_ab --source-id '$t' < '$work/in'"
	bench_rows bench_ab "$lines" "$build stdin"
}

# Repetition 0 warms the broker and the server; it is not counted.
for r in $(seq 0 "$reps"); do
	if ((r % 2)); then one new "$new" "$r"; one old "$old" "$r"
	else one old "$old" "$r"; one new "$new" "$r"; fi
	((r == 0)) && : > "$work/results"
done

python3 - "$work/results" "$lines" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    build, name, wall, cpu = line.split()
    runs.setdefault((build, name), []).append((float(wall), float(cpu)))
med = statistics.median
print("| command | old wall s | new wall s | old CPU s | new CPU s | wall old/new | CPU old/new |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name in ("publish", "tail", "sink-t", "stdin"):
    o, n = runs[("old", name)], runs[("new", name)]
    wr = med(a[0] / b[0] for a, b in zip(o, n))
    cr = med(a[1] / b[1] for a, b in zip(o, n) if b[1] > 0)
    print(f"| {name} | {med(a[0] for a in o):.2f} | {med(b[0] for b in n):.2f} | "
          f"{med(a[1] for a in o):.2f} | {med(b[1] for b in n):.2f} | {wr:.2f} | {cr:.2f} |")
PY
