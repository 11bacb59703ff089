#!/usr/bin/env bash
# bench/sink-pg.sh - dp-sink-pg against psql \copy, same database, same rows,
# same typed table, same run.  Prints a markdown table of medians and ratios.
#
#   bench/sink-pg.sh [LINES] [REPS]     (defaults: 1000000 5)
#
# The input is bench/gen-prices.py's price records.  Before the clock runs
# they are written to a file, to a CSV with the same values (what psql
# \copy loads), and with dp-publish -k .fsym into a 3-partition topic.
# Each measurement loads into a freshly created table, and the loaders take
# turns going first.  Exactly-once is on for dp-sink-pg both ways: from
# Kafka (-t -g, a fresh group each time, -e; every batch moves its
# partition's row of dp_sink_offsets) and from the file (--stdin
# --source-id).  When timescaledb-parallel-copy is on PATH it is measured
# too (2 workers, the same CSV).  Each loader's peak RSS is reported.
#
# Uses $DP_BROKERS and $DP_PG when both are set; otherwise starts the test
# stack, with its data on /dev/shm when there is one, and stops it again
# (DP_BENCH_BROKERS=3: a cluster of three brokers, as bench/stack.bash says).
# With DP_BENCH_HYPERTABLE=1 the table is a TimescaleDB hypertable on ts
# (the server needs the extension).  DP_BENCH_SINK_ARGS adds options to
# the Kafka run (default: none).
#
# The Kafka run also goes with --metrics (an endpoint on a free port, and
# --stale-after) beside itself without: the cost of counting on the hot
# path, as the ratio of their times (median of pairs; the target is 1.03
# at most).  DP_BENCH_METRICS=0 leaves it out.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PATH=$PWD/bin:$PATH
lines=${1:-1000000}
reps=${2:-5}

. bench/stack.bash
bench_stack_both
topic=bench_sink_$$
cleanup() {
	psql "$DP_PG" -Xq -c 'drop table if exists bench_sink' \
		-c "delete from dp_sink_offsets where topic like 'bench_sink_%'" \
		2>/dev/null || true
	dp-topic delete "$topic" -o json > /dev/null 2>&1 || true
	rm -rf "$work"
	bench_unstack
}
trap cleanup EXIT

python3 bench/gen-prices.py "$lines" > "$work/in"
python3 - "$work/in" > "$work/in.csv" <<'PY'
import csv, json, sys
cols = ["type", "source", "market", "fsym", "tsym", "ts", "price", "volume_24h",
        "change_pct_24h", "mktcap"]
w = csv.writer(sys.stdout, lineterminator="\n")
for line in open(sys.argv[1]):
    r = json.loads(line, parse_float=str, parse_int=str)
    w.writerow([r[c] for c in cols])
PY
bytes=$(wc -c < "$work/in")
echo "input: $lines lines, $bytes bytes ($((bytes / lines)) B/line)" >&2
dp-topic create "$topic" -p 3 -o json > /dev/null
dp-publish -t "$topic" -k .fsym < "$work/in"
[[ $(dp-topic offsets "$topic" -o json | jq -s 'map(.high) | add') == "$lines" ]] ||
	{ echo "bench: $topic does not hold $lines records" >&2; exit 1; }

fresh() {
	psql "$DP_PG" -Xq -v ON_ERROR_STOP=1 -c 'drop table if exists bench_sink' -c '
		create table bench_sink (type text, source text, market text, fsym text,
			tsym text, ts timestamptz, price double precision,
			volume_24h double precision, change_pct_24h double precision,
			mktcap bigint)' 2>/dev/null
	if [[ ${DP_BENCH_HYPERTABLE:-} == 1 ]]; then
		psql "$DP_PG" -Xq -v ON_ERROR_STOP=1 \
			-c "select create_hypertable('bench_sink', 'ts')" > /dev/null
	fi
}

# measure NAME CMD...: appends "NAME seconds maxrss_kb user_s" to $work/results
measure() {
	local name=$1
	shift
	fresh
	/usr/bin/time -f "$name %e %M %U" -o "$work/t" "$@"
	bench_rows bench_sink "$lines" "$name"
	cat "$work/t" >> "$work/results"
	tail -1 "$work/t" >&2
}

tpc=$(command -v timescaledb-parallel-copy || true)
metrics=${DP_BENCH_METRICS:-1}
# Repetition 0 warms the server's caches; it is not counted.
for r in $(seq 0 "$reps"); do
	ps() { measure psql psql "$DP_PG" -Xq -c "\\copy bench_sink from '$work/in.csv' csv"; }
	dk() { measure dp-kafka dp-sink-pg -t "$topic" -g "bench_sink_$$_$r" --table bench_sink -e ${DP_BENCH_SINK_ARGS:-}; }
	dm() { ((metrics)) || return 0; measure dp-kafka+metrics dp-sink-pg -t "$topic" -g "bench_sink_m_$$_$r" --table bench_sink -e --metrics 127.0.0.1:0 --stale-after 1m ${DP_BENCH_SINK_ARGS:-}; }
	ds() { measure dp-stdin sh -c "dp-sink-pg --stdin --table bench_sink --source-id bench_sink_$$_$r < '$work/in'"; }
	tp() { [[ -z $tpc ]] || measure tpc "$tpc" --connection "$DP_PG" --table bench_sink \
		--file "$work/in.csv" --workers 2 --skip-header=false > /dev/null; }
	# Whoever goes first meets the server's checkpoint and autovacuum
	# from the run before least: the order turns each repetition.
	case $((r % 4)) in
	0) ps; dk; dm; ds; tp ;;
	1) dm; dk; ds; tp; ps ;;
	2) ds; tp; ps; dk; dm ;;
	3) tp; ps; dm; dk; ds ;;
	esac
	if ((r == 0)); then
		: > "$work/results"
	fi
done

python3 - "$work/results" "$lines" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, secs, rss, user = line.split()
    rows.setdefault(name, []).append((float(secs), int(rss), float(user)))
n = int(sys.argv[2])
def med(name):
    return (n / statistics.median(s for s, _, _ in rows[name]),
            max(r for _, r, _ in rows[name]) / 1024,
            statistics.median(u for _, _, u in rows[name]))
# The runs of one repetition meet the same server state, so the ratio is
# taken per repetition and then its median.
def paired(ours):
    return statistics.median(b[0] / o[0] for o, b in zip(rows[ours], rows["psql"]))
print("| loader | rows/s (median) | peak RSS MB | client CPU s | ratio vs psql \\copy (median of pairs) |")
print("|---|---:|---:|---:|---:|")
labels = {"psql": "psql \\copy (CSV)", "tpc": "timescaledb-parallel-copy -w 2 (CSV)",
          "dp-kafka": "dp-sink-pg -t (3 partitions, exactly once)",
          "dp-kafka+metrics": "dp-sink-pg -t --metrics (3 partitions, exactly once)",
          "dp-stdin": "dp-sink-pg --stdin --source-id (exactly once)"}
for name in ("psql", "dp-kafka", "dp-kafka+metrics", "dp-stdin", "tpc"):
    if name not in rows:
        continue
    rate, rss, user = med(name)
    ratio = "1.00" if name == "psql" else f"{paired(name):.2f}"
    print(f"| {labels[name]} | {rate:,.0f} | {rss:.1f} | {user:.2f} | {ratio} |")
if "dp-kafka+metrics" in rows:
    with_, without = rows["dp-kafka+metrics"], rows["dp-kafka"]
    print()
    print("| --metrics on the hot path | time with / without (median of pairs) | client CPU with / without |")
    print("|---|---:|---:|")
    print(f"| dp-sink-pg -t | {statistics.median(m[0] / k[0] for m, k in zip(with_, without)):.3f} "
          f"| {statistics.median(m[2] / k[2] for m, k in zip(with_, without) if k[2] > 0):.3f} |")
PY
