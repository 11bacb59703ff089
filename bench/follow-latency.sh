#!/usr/bin/env bash
# bench/follow-latency.sh [N] - from a request to the first matching record
# at a reader that follows the registry.
#
# On the bench stack (bench/stack.bash): one `dp-coord serve`, and a
# producer, `dp-publish --follow-registry`, fed a steady 200 price lines
# a second.  Then N times (default 30): a reader, `dp-tail --follow NAME
# -n 1`, is started and waits; the clock starts; an application asks
# with `dp-coord request NAME ... --wait`; the clock stops when the
# reader prints its first record.  So each sample is what an application
# sees: the request, the coordinator making the topic, the producer taking
# the new route (up to 100 ms) and its next matching record (5 ms apart),
# the reader subscribing.  Prints p50, p99 and max in ms; the goal
# (issue 12) is p99 <= 2 s.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/stack.bash
export PATH=$PWD/bin:$PATH

n=${1:-30}
bench_stack DP_BROKERS
run=$$
export DP_REGISTRY=bench.lreg.$run DP_REQUESTS=bench.lreq.$run
src=bench.lsrc.$run
pids=()
cleanup() {
	touch "$work/stop"
	bench_cleanup "(bench\.l(src|reg|req)|dyn\.bench\.l)\.$run.*" "${pids[@]}"
}
trap cleanup EXIT

dp-topic create "$src" -p 3 -o json >/dev/null
dp-coord serve -g "bench-l-$run" 2>"$work/serve.err" &
pids+=($!)
# 200 lines a second, each with its own sequence number, until stop.
python3 -c '
import os, sys, time
i = 0
while not os.path.exists(sys.argv[1]):
    sys.stdout.write("{\"seq\":%d,\"fsym\":\"BTC\",\"tsym\":\"EUR\",\"price\":%d.5}\n" % (i, 100 + i))
    sys.stdout.flush()
    i += 1
    time.sleep(0.005)
' "$work/stop" | dp-publish -t "$src" -k .fsym --follow-registry 2>"$work/pub.err" &
pids+=($!)

now_ms() { echo $(($(date +%s%N) / 1000000)); }
: >"$work/lat"
for ((i = 0; i < n; i++)); do
	name=dyn.bench.l.$run.$i
	dp-tail --follow "$name" -n 1 >"$work/first" 2>>"$work/tail.err" &
	reader=$!
	t0=$(now_ms)
	dp-coord request "$name" --source "$src" --filter '.fsym == "BTC" and .tsym == "EUR"' \
		--wait=30s >/dev/null
	wait "$reader"
	t1=$(now_ms)
	[[ -s $work/first ]] || { echo "bench: no record in $name" >&2; exit 1; }
	echo $((t1 - t0)) >>"$work/lat"
	dp-coord retire "$name" >/dev/null
done
python3 - "$work/lat" <<'PY'
import sys
lat = sorted(int(x) for x in open(sys.argv[1]))
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"requests {len(lat)}: p50 {pick(0.50)} ms, p99 {pick(0.99)} ms, max {lat[-1]} ms")
PY
