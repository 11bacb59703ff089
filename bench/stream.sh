#!/usr/bin/env bash
# bench/stream.sh - dp-fetch stream: messages/s through parse, merge and
# print, from a recorded stream that tests/helpers/ccstreamer.py plays as
# fast as the socket takes it, and peak RSS.  Prints a markdown table.
#
#   bench/stream.sh [MESSAGES] [REPS]      (defaults: 1000000 5)
#
# The stream is bench/gen-stream.py's 10,000 messages (ticker and aggregate
# updates merged into complete ticks, trades with ids of their own), sent
# MESSAGES / 10,000 times over one connection after the subscriptions are
# answered; dp-fetch stops with --count MESSAGES, once every message has
# become a record, and writes to /dev/null.  The rates count the whole run
# of dp-fetch: start, connection, subscription and the stream; "per CPU
# second" divides by dp-fetch's own user + system time, what one core
# does for it whatever else the machine runs (the server takes another).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PATH=$PWD/bin:$PATH
messages=${1:-1000000}
reps=${2:-5}
block=10000
((messages % block == 0)) || { echo "MESSAGES must be a multiple of $block" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/dp-bench-stream.XXXXXX")
srv=
cleanup() {
	[[ -n $srv ]] && { kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null; }
	rm -rf "$work"
	return 0
}
trap cleanup EXIT

mkdir "$work/fix"
cp tests/fixtures/cryptocompare-stream/ptracker__wss_response_test.ndjson "$work/fix/"
python3 bench/gen-stream.py "$block" > "$work/fix/block.ndjson"
bytes=$(wc -c < "$work/fix/block.ndjson")
echo "stream: $messages messages, $((bytes * messages / block)) bytes ($((bytes / block)) B/message)" >&2
subs=2~Coinbase~BTC~GBP,5~CCCAGG~BTC~USD,0~Coinbase~BTC~USD
printf '{"connections":[{"steps":[{"msg":"ptracker__wss_response_test.ndjson:1"},{"await":"SubAdd"},{"ack":{}},{"flood":"block.ndjson","times":%d},{"hold":true}]}]}\n' \
	$((messages / block)) > "$work/scenario.json"
python3 tests/helpers/ccstreamer.py --fixtures "$work/fix" --scenario "$work/scenario.json" \
	--port-file "$work/port" --log "$work/log" &
srv=$!
for _ in $(seq 100); do [[ -s $work/port ]] && break; sleep 0.1; done
url=ws://127.0.0.1:$(cat "$work/port")/v2

: > "$work/results"
for ((r = 0; r <= reps; r++)); do
	/usr/bin/time -f "%e %M %U %S" -o "$work/t" \
		dp-fetch stream --subs "$subs" --stream-url "$url" --count "$messages" \
		--max-retries 0 > "$work/out"
	n=$(wc -l < "$work/out")
	((n == messages)) || { echo "repetition $r: $n records, not $messages" >&2; exit 1; }
	echo "repetition $r: $(cat "$work/t") (elapsed s, KB, user s, system s)" >&2
	# Repetition 0 warms the page cache and the server; it is not counted.
	((r > 0)) && cat "$work/t" >> "$work/results"
done

# median COLUMN-EXPR: the median over the repetitions (awk expression on a line)
median() {
	awk "{ print $1 }" "$work/results" | sort -n |
		awk '{ a[NR] = $1 } END { print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
t=$(median '$1')
best=$(awk '{ print $1 }' "$work/results" | sort -n | head -1)
cpu=$(median '$3 + $4')
rss=$(awk '{ print $2 }' "$work/results" | sort -n | tail -1)
echo "| command | messages | msgs/s (median) | best | msgs per CPU second (median) | peak RSS MB |"
echo "|---|---:|---:|---:|---:|---:|"
awk -v m="$messages" -v t="$t" -v b="$best" -v c="$cpu" -v r="$rss" 'BEGIN {
	printf "| dp-fetch stream | %d | %d | %d | %d | %.1f |\n", m, m / t, m / b, m / c, r / 1024 }'
