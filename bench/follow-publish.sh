#!/usr/bin/env bash
# bench/follow-publish.sh [LINES] [REPS] - dp-publish --follow-registry
# against plain dp-publish, same broker, same input, same run.
#
#   bench/follow-publish.sh [LINES] [REPS]     (defaults: 1000000 3)
#
# A coordinator (on the bench stack, bench/stack.bash) makes dynamic
# topics cut from one source topic, with the equality filters applications
# ask for: '.fsym == "S" and .tsym == "T"', S one of the 10 coins of
# bench/gen-prices.py, whose input quotes every coin in USD.  Four
# registries (switched by DP_REGISTRY, one coordinator each):
#   10 copied    the 10 coins in USD: every record goes to one of them
#   100 copied   those 10, and the 10 coins in 9 other currencies
#   10 filtered  the 10 coins in EUR: the filters reject every record
#   100 filtered the 10 coins in 10 other currencies: the same
# "copied" doubles what goes to Kafka (each record and one copy);
# "filtered" is the cost of the filters alone.  Each repetition publishes
# the same input plainly to a 3-partition topic and with --follow-registry
# to the 3-partition source under each registry, in rotating order.
# Prints msgs/s of input (medians) and the ratios to plain dp-publish.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PATH=$PWD/bin:$PATH
lines=${1:-1000000}
reps=${2:-3}

. bench/stack.bash
bench_stack DP_BROKERS
run=$$
src=bench.fsrc.$run
plain=bench.fplain.$run
serves=()
cleanup() {
	bench_cleanup "(bench\.f(src|plain|reg|req)|dyn\.bench\.f)\.$run.*" "${serves[@]}"
}
trap cleanup EXIT

python3 bench/gen-prices.py "$lines" >"$work/in"
dp-topic create "$src" "$plain" -p 3 -o json >/dev/null
syms=(BTC ETH SOL XRP ADA DOGE DOT LTC LINK AVAX)
# registry NAME CURRENCY...: a registry of its own with an active dynamic
# topic out of $src for every coin in every CURRENCY.
registry() {
	local name=$1 t i=0 s
	shift
	export DP_REGISTRY=bench.freg.$run.$name DP_REQUESTS=bench.freq.$run.$name
	dp-coord serve -g "bench-f-$run-$name" 2>"$work/serve$name.err" &
	serves+=($!)
	for t in "$@"; do
		for s in "${syms[@]}"; do
			dp-coord request "dyn.bench.f.$run.$name.$s-$t" --source "$src" -p 3 \
				--filter ".fsym == \"$s\" and .tsym == \"$t\"" --wait=60s >/dev/null
			i=$((i + 1))
		done
	done
	[[ $(dp-coord list -o json | jq -s 'map(select(.state == "active")) | length') == "$i" ]]
}
registry c10 USD
registry c100 USD EUR GBP JPY CHF AUD CAD KRW BRL TRY
registry f10 EUR
registry f100 EUR GBP JPY CHF AUD CAD KRW BRL TRY INR

# measure NAME CMD...: appends "NAME seconds" to $work/results
measure() {
	local name=$1
	shift
	/usr/bin/time -f "$name %e" -o "$work/t" "$@"
	cat "$work/t" >>"$work/results"
	tail -1 "$work/t" >&2
}
plain_run() { measure plain dp-publish -t "$plain" -k .fsym <"$work/in"; }
follow_run() {
	DP_REGISTRY=bench.freg.$run.$1 measure "$1" \
		dp-publish -t "$src" -k .fsym --follow-registry <"$work/in"
}
runs=(plain c10 c100 f10 f100)
# Repetition 0 warms the broker; it is not counted.
for r in $(seq 0 "$reps"); do
	for k in 0 1 2 3 4; do
		x=${runs[(k + r) % 5]}
		if [[ $x == plain ]]; then plain_run; else follow_run "$x"; fi
	done
	((r == 0)) && : >"$work/results"
done
# Every copy is there, and no other: each follow run under c10 and c100
# copied every record once, into the USD topics.
usd=$(dp-topic list -o names | grep -E "^dyn\.bench\.f\.$run\.c1(0|00)\..*-USD$")
copies=$(dp-topic offsets $usd -o json | jq -s 'map(.high) | add')
others=$(dp-topic list -o names | grep -E "^dyn\.bench\.f\.$run\." | grep -v -- '-USD$')
extra=$(dp-topic offsets $others -o json | jq -s 'map(.high) | add')
[[ $copies == $((2 * (reps + 1) * lines)) && $extra == 0 ]] ||
	{ echo "bench: $copies copies and $extra others, expected $((2 * (reps + 1) * lines)) and 0" >&2; exit 1; }

python3 - "$work/results" "$lines" <<'PY'
import statistics, sys
res = {}
for line in open(sys.argv[1]):
    name, secs = line.split()
    res.setdefault(name, []).append(float(secs))
n = int(sys.argv[2])
rate = {k: n / statistics.median(v) for k, v in res.items()}
print(f"| run ({n:,} lines, median of {len(res['plain'])}) | msgs/s of input | vs plain |")
print("|---|---|---|")
for k, label in (("plain", "dp-publish"),
                 ("c10", "--follow-registry, 10 topics, every record copied once"),
                 ("c100", "--follow-registry, 100 topics, every record copied once"),
                 ("f10", "--follow-registry, 10 topics, every record filtered out"),
                 ("f100", "--follow-registry, 100 topics, every record filtered out")):
    print(f"| {label} | {rate[k]:,.0f} | {rate[k] / rate['plain']:.2f}x |")
PY
