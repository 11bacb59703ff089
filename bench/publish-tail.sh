#!/usr/bin/env bash
# bench/publish-tail.sh - dp-publish and dp-tail against kcat, same broker,
# same input, same run.  Prints a markdown table of medians and ratios.
#
#   bench/publish-tail.sh [LINES] [REPS]     (defaults: 1000000 5)
#
# Uses $DP_BROKERS when set; otherwise starts the test stack, with its
# data on /dev/shm when there is one (disk writeback from earlier runs is
# the largest source of noise), and stops it again; DP_BENCH_BROKERS=3
# makes that a cluster of three brokers (replication factor 3,
# min.insync.replicas=2; bench/stack.bash).  Each repetition
# writes into fresh 3-partition topics, and kcat and dp alternate, each
# going first in every other repetition.  Topics are deleted only at the
# end: a broker deleting logs in the background slows whoever runs next.
#
# Each dp command also runs with --metrics (an endpoint on a free port, and
# --stale-after), beside itself without, in turns: the cost of counting on
# the hot path, as the ratio of their times (median of pairs; the target is
# 1.03 at most).  DP_BENCH_METRICS=0 leaves those runs out.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PATH=$PWD/bin:$PATH
lines=${1:-1000000}
reps=${2:-5}

. bench/stack.bash
bench_stack DP_BROKERS
topics=()
cleanup() {
	((${#topics[@]})) && dp-topic delete "${topics[@]}" -o json > /dev/null
	rm -rf "$work"
	bench_unstack
	return 0
}
trap cleanup EXIT

python3 bench/gen-prices.py "$lines" > "$work/in"
bytes=$(wc -c < "$work/in")
echo "input: $lines lines, $bytes bytes ($((bytes / lines)) B/line)" >&2

# measure NAME CMD...: appends "NAME seconds maxrss_kb user_s" to $work/results
measure() {
	local name=$1
	shift
	/usr/bin/time -f "$name %e %M %U" -o "$work/t" "$@"
	cat "$work/t" >> "$work/results"
	tail -1 "$work/t" >&2
}

metrics=${DP_BENCH_METRICS:-1}
obs=(--metrics 127.0.0.1:0 --stale-after 1m)
# Repetition 0 warms the broker's JIT and page cache; it is not counted.
for r in $(seq 0 "$reps"); do
	tk=bench_kcat_$$_$r td=bench_dp_$$_$r tm=bench_dpm_$$_$r
	dp-topic create "$tk" "$td" "$tm" -p 3 -o json > /dev/null
	topics+=("$tk" "$td" "$tm")
	# Whoever goes second meets a broker still busy with the first one's
	# records, so the order alternates between repetitions.
	kp() { measure kcat-P sh -c "kcat -b '$DP_BROKERS' -P -t '$tk' < '$work/in'"; }
	dp() { measure dp-publish dp-publish -t "$td" -k .fsym < "$work/in"; }
	kc() { measure kcat-C sh -c "kcat -b '$DP_BROKERS' -C -t '$tk' -e -o beginning -q > /dev/null"; }
	dt() { measure dp-tail sh -c "dp-tail -t '$td' --from beginning -e > /dev/null"; }
	dpm() { ((metrics)) || return 0; measure dp-publish+metrics dp-publish -t "$tm" -k .fsym "${obs[@]}" < "$work/in"; }
	dtm() { ((metrics)) || return 0; measure dp-tail+metrics sh -c "dp-tail -t '$td' --from beginning -e ${obs[*]} > /dev/null"; }
	if ((r % 2)); then kp; dp; dpm; kc; dt; dtm; else dpm; dp; kp; dtm; dt; kc; fi
	if ((r == 0)); then
		: > "$work/results"
	fi
	chk=("$td")
	((metrics == 0)) || chk+=("$tm")
	for t in "${chk[@]}"; do
		[[ $(dp-topic offsets "$t" -o json | jq -s 'map(.high) | add') == "$lines" ]] ||
			{ echo "bench: $t does not hold $lines records" >&2; exit 1; }
	done
done

python3 - "$work/results" "$lines" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, secs, rss, user = line.split()
    rows.setdefault(name, []).append((float(secs), int(rss), float(user)))
n = int(sys.argv[2])
def med(name):
    secs = statistics.median(s for s, _, _ in rows[name])
    return n / secs, max(r for _, r, _ in rows[name]) / 1024
# Runs of one repetition share the broker's state, so the ratio is taken
# per repetition and then its median: steadier than a ratio of medians.
def paired(ours, base):
    return statistics.median(b[0] / o[0] for o, b in zip(rows[ours], rows[base]))
print("| command | msgs/s (median) | peak RSS MB | ratio vs kcat (median of pairs) |")
print("|---|---:|---:|---:|")
for ours, base in (("dp-publish", "kcat-P"), ("dp-tail", "kcat-C")):
    b_rate, b_rss = med(base)
    o_rate, o_rss = med(ours)
    print(f"| {base} | {b_rate:,.0f} | {b_rss:.1f} | 1.00 |")
    print(f"| {ours} | {o_rate:,.0f} | {o_rss:.1f} | {paired(ours, base):.2f} |")
    if ours + "+metrics" in rows:
        m_rate, m_rss = med(ours + "+metrics")
        print(f"| {ours} --metrics | {m_rate:,.0f} | {m_rss:.1f} | "
              f"{paired(ours + '+metrics', base):.2f} |")
if "dp-publish+metrics" in rows:
    # time with --metrics / time without, per repetition
    print()
    print("| --metrics on the hot path | time with / without (median of pairs) | CPU with / without |")
    print("|---|---:|---:|")
    for ours in ("dp-publish", "dp-tail"):
        cpu = statistics.median(m[2] / o[2] for m, o in zip(rows[ours + "+metrics"], rows[ours])
                                if o[2] > 0)
        print(f"| {ours} | {paired(ours, ours + '+metrics'):.3f} | {cpu:.3f} |")
PY
