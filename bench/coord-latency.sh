#!/usr/bin/env bash
# bench/coord-latency.sh [N] - how long a request takes to become active.
#
# Starts one `dp-coord serve` on the bench stack (bench/stack.bash), then
# writes N create requests (default 100) one after another, each with
# `dp-coord request ... --wait`, and measures, per request, the time from
# the request record (its Kafka timestamp, set when the requester produced
# it) to the registry record that answers it (its Kafka timestamp, set when
# the coordinator produced it).  Both clocks are this machine's.  Prints
# p50, p99 and max in ms; the goal (issue 11) is p99 <= 1 s.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/stack.bash
export PATH=$PWD/bin:$PATH

n=${1:-100}
bench_stack DP_BROKERS
trap 'kill "$serve" 2>/dev/null; wait "$serve" 2>/dev/null; bench_unstack; rm -rf "$work"' EXIT

run=$$
export DP_REGISTRY=bench.reg.$run DP_REQUESTS=bench.req.$run
src=bench.src.$run
dp-topic create "$src" -o json >/dev/null
dp-coord serve -g "bench-$run" 2>"$work/serve.err" &
serve=$!
for ((i = 0; i < n; i++)); do
	dp-coord request "dyn.bench.$run.$i" --source "$src" --filter ".i == $i" --wait=30s >/dev/null
done
# request_id -> timestamp, from both topics.
kcat -b "$DP_BROKERS" -C -t "$DP_REQUESTS" -e -q -o beginning -f '%T %s\n' >"$work/req"
kcat -b "$DP_BROKERS" -C -t "$DP_REGISTRY" -e -q -o beginning -f '%T %s\n' >"$work/reg"
python3 - "$work/req" "$work/reg" "$n" <<'PY'
import json, sys
def load(path):
    out = {}
    for line in open(path):
        ts, _, value = line.partition(" ")
        try:
            rid = json.loads(value)["request_id"]
        except (ValueError, KeyError):
            continue
        out.setdefault(rid, int(ts))          # the first record of each id
    return out
req, reg = load(sys.argv[1]), load(sys.argv[2])
lat = sorted(reg[r] - req[r] for r in req if r in reg)
assert len(lat) == int(sys.argv[3]), f"{len(lat)} of {sys.argv[3]} answered"
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"requests {len(lat)}: p50 {pick(0.50)} ms, p99 {pick(0.99)} ms, max {lat[-1]} ms")
PY
for ((i = 0; i < n; i++)); do echo "dyn.bench.$run.$i"; done | xargs dp-topic delete -o json >/dev/null
dp-topic delete "$src" "$DP_REGISTRY" "$DP_REQUESTS" -o json >/dev/null
