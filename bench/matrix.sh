#!/usr/bin/env bash
# bench/matrix.sh - dp against its references over record sizes and
# partition counts, in one run: dp-sink-pg (-t and --stdin) against psql
# \copy and timescaledb-parallel-copy, dp-tail against kcat -C, dp-publish
# against kcat -P.  Prints markdown tables of medians and paired ratios.
#
#   bench/matrix.sh [LINES] [REPS]       (defaults: 1000000 3)
#   make bench-matrix                    the same, table into docs/BENCHMARKS.md
#
# Every record size of DP_BENCH_SIZES (default "40 80 200 1000 4000", bytes a
# line; bench/gen-records.py) is loaded into every partition count of
# DP_BENCH_PARTS (default "1 6 12").  A cell has min(LINES, DP_BENCH_MB MB /
# size) records (default 200 MB: 1M records up to 200 B, 200,000 of 1 KB,
# 50,000 of 4 KB).  In each repetition, each cell:
#   - publishes the records into two fresh topics, with dp-publish and with
#     kcat -P, the two in turns (measured: the publish pair);
#   - runs, in an order that turns from cell to cell, dp-sink-pg -t on the
#     dp-published topic, dp-sink-pg --stdin, psql \copy and
#     timescaledb-parallel-copy from the CSV of the same values, each into a
#     fresh table, and dp-tail and kcat -C on the dp-published topic;
#   - checks each table's row count and the topics' record counts.
# The references, configured as a fair user would (docs/BENCHMARKS.md):
#   kcat -P  -K '\t' -X enable.idempotence=true  (the same keys, librdkafka's
#            partitioner as dp-publish uses; idempotent and acks=all as
#            dp-publish is)
#   kcat -C  -e -o beginning -q -X fetch.wait.max.ms=10  (without kcat's
#            end-of-run wait of fetch.wait.max.ms=500 for an empty fetch)
#   psql     \copy TABLE from 'CSV' csv
#   tpc      timescaledb-parallel-copy --workers 2 --skip-header=false,
#            from $DP_BENCH_TPC or PATH; left out when it is not there
# dp runs at its defaults (exactly once: -t with a fresh group -g, --stdin
# with --source-id).  The first cell runs once before the counted
# repetitions to warm the server and the broker.
#
# For each run: wall time and peak RSS (GNU time), client CPU (user+sys,
# GNU time), and the CPU that PostgreSQL (the postmaster and every process
# under it) and the Kafka JVM spent meanwhile, from /proc
# (bench/proccpu.py).  The tables show the median rate, the largest RSS,
# the median CPU seconds per 1M records, and ratios as the median over
# repetitions of reference time / dp time, each pair from the same cell
# and repetition.  The load average of the machine is printed with them.
#
# Uses $DP_BROKERS and $DP_PG when both are set (the Kafka JVM's PID comes
# from $DP_BENCH_KAFKA_PID, else from the process listening on the first
# broker's port: it must run on this machine); otherwise starts a stack of
# its own on /dev/shm and stops it at the end.  DP_BENCH_BIN: the dp
# binaries to measure (default ./bin), to compare builds.
# DP_BENCH_HYPERTABLE=1: tables are TimescaleDB hypertables on their first
# timestamptz column (the 40-byte shape has none: left out).
# DP_BENCH_DOC=FILE: also write the tables into FILE between the lines
# "<!-- matrix: begin -->" and "<!-- matrix: end -->".
# DP_BENCH_RAW=FILE: keep the raw measurements there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
bin=${DP_BENCH_BIN:-$root/bin}
PATH=$bin:$root/bin:$PATH
lines=${1:-1000000}
reps=${2:-3}
sizes=${DP_BENCH_SIZES:-40 80 200 1000 4000}
parts_list=${DP_BENCH_PARTS:-1 6 12}
budget=$((${DP_BENCH_MB:-200} * 1000000))

. bench/stack.bash
bench_stack_both
run=$$
cleanup() {
	psql "$DP_PG" -Xq -c "drop table if exists bench_m_$run" \
		-c "delete from dp_sink_offsets where topic like 'bench_m_$run%'" \
		>/dev/null 2>&1 || true
	dp-topic delete --pattern "bench_m_$run.*" --yes -o json >/dev/null 2>&1 || true
	rm -rf "$work"
	bench_unstack
}
trap cleanup EXIT

# The server processes whose CPU is counted.
# The postmaster: the first line of postmaster.pid in the data directory
# (the server must run on this machine, as the broker must).
pg_pid=$(head -1 "$(psql "$DP_PG" -XAtq -c 'show data_directory')/postmaster.pid")
kafka_pid=${DP_BENCH_KAFKA_PID:-}
if [[ -z $kafka_pid && -n ${DP_STACK_DIR:-} && -s $DP_STACK_DIR/kafka.pid && $bench_started == 1 ]]; then
	kafka_pid=$(cat "$DP_STACK_DIR/kafka.pid")
fi
if [[ -z $kafka_pid ]]; then
	port=${DP_BROKERS%%,*}
	port=${port##*:}
	kafka_pid=$(ss -Hltnp "sport = :$port" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)
fi
[[ -n $kafka_pid && -r /proc/$kafka_pid/stat ]] ||
	{ echo "bench: cannot find the Kafka broker's process (set DP_BENCH_KAFKA_PID)" >&2; exit 1; }
tpc=${DP_BENCH_TPC:-$(command -v timescaledb-parallel-copy || true)}
table=bench_m_$run
echo "bench: postgres $pg_pid, kafka $kafka_pid, tpc ${tpc:-none}, dp from $bin" >&2

# fresh SIZE: an empty table of that size's shape
fresh() {
	psql "$DP_PG" -Xq -v ON_ERROR_STOP=1 -c "drop table if exists $table" \
		-c "$(python3 bench/gen-records.py "$1" --ddl "$table")" 2>/dev/null
	if [[ ${DP_BENCH_HYPERTABLE:-} == 1 ]]; then
		local ts
		ts=$(python3 bench/gen-records.py "$1" --ddl "$table" |
			grep -o '[a-z_]* timestamptz' | head -1 | cut -d' ' -f1)
		psql "$DP_PG" -XAtq -v ON_ERROR_STOP=1 \
			-c "select create_hypertable('$table', '$ts')" >/dev/null
	fi
}
records_are() {
	local n
	n=$(dp-topic offsets "$1" -o json | jq -s 'map(.high) | add')
	[[ $n == "$2" ]] || { echo "bench: $1 holds $n records, not $2" >&2; exit 1; }
}

# measure SIZE PARTS NAME CMD... (stdin and stdout as given): one line of
# $work/results: size parts rep name seconds rss_kb client_cpu pg_cpu kafka_cpu load
measure() {
	local size=$1 parts=$2 name=$3 before after
	shift 3
	before=$(python3 bench/proccpu.py "$pg_pid" "$kafka_pid")
	/usr/bin/time -f "%e %M %U %S" -o "$work/t" "$@"
	after=$(python3 bench/proccpu.py "$pg_pid" "$kafka_pid")
	read -r secs rss user sys < "$work/t"
	read -r pg0 k0 <<< "$before"
	read -r pg1 k1 <<< "$after"
	printf '%s %s %s %s %s %s %s %s %s %s\n' "$size" "$parts" "$rep" "$name" "$secs" "$rss" \
		"$(echo "$user + $sys" | bc)" "$(echo "$pg1 - $pg0" | bc)" "$(echo "$k1 - $k0" | bc)" \
		"$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$work/results" >&2
}

# cell SIZE PARTS TURN: one cell of the matrix, its runs in the order TURN picks
cell() {
	local size=$1 parts=$2 turn=$3 n=${count[$1]} td tk key=fsym
	local in=$work/$size.nd csv=$work/$size.csv keyed=$work/$size.keyed
	[[ $size == 40 ]] && key=s
	td=bench_m_$run.dp.$size.$parts.$rep
	tk=bench_m_$run.kcat.$size.$parts.$rep
	dp-topic create "$td" "$tk" -p "$parts" -o json >/dev/null
	pub_dp() { measure "$size" "$parts" dp-publish dp-publish -t "$td" -k ".$key" < "$in"; }
	pub_kcat() {
		measure "$size" "$parts" kcat-P kcat -b "$DP_BROKERS" -P -t "$tk" -K '\t' \
			-X enable.idempotence=true < "$keyed"
	}
	if ((turn % 2)); then pub_kcat; pub_dp; else pub_dp; pub_kcat; fi
	records_are "$td" "$n"
	records_are "$tk" "$n"
	local g=bench_m_${run}_$size.$parts.$rep
	sink_t() {
		fresh "$size"
		measure "$size" "$parts" dp-sink-pg-t dp-sink-pg -t "$td" -g "$g" --table "$table" -e
		bench_rows "$table" "$n" "dp-sink-pg -t"
	}
	sink_stdin() {
		fresh "$size"
		measure "$size" "$parts" dp-sink-pg-stdin dp-sink-pg --stdin --table "$table" \
			--source-id "$g" < "$in"
		bench_rows "$table" "$n" "dp-sink-pg --stdin"
	}
	copy_psql() {
		fresh "$size"
		measure "$size" "$parts" psql psql "$DP_PG" -Xq -c "\\copy $table from '$csv' csv"
		bench_rows "$table" "$n" "psql"
	}
	copy_tpc() {
		[[ -n $tpc ]] || return 0
		fresh "$size"
		measure "$size" "$parts" tpc "$tpc" --connection "$DP_PG" --table "$table" \
			--file "$csv" --workers 2 --skip-header=false > /dev/null
		bench_rows "$table" "$n" "timescaledb-parallel-copy"
	}
	tail_dp() { measure "$size" "$parts" dp-tail dp-tail -t "$td" --from beginning -e > /dev/null; }
	tail_kcat() {
		measure "$size" "$parts" kcat-C kcat -b "$DP_BROKERS" -C -t "$td" -e -o beginning -q \
			-X fetch.wait.max.ms=10 > /dev/null
	}
	local runs=(sink_t copy_psql tail_dp copy_tpc sink_stdin tail_kcat) i
	if [[ ${DP_BENCH_HYPERTABLE:-} == 1 && $size == 40 ]]; then
		runs=(tail_dp tail_kcat)
	fi
	for ((i = 0; i < ${#runs[@]}; i++)); do
		"${runs[(i + turn) % ${#runs[@]}]}"
	done
	dp-topic delete "$td" "$tk" -o json >/dev/null
}

declare -A count
for size in $sizes; do
	n=$((budget / size))
	((n < lines)) || n=$lines
	count[$size]=$n
	python3 bench/gen-records.py "$size" "$n" "$work/$size.nd" "$work/$size.csv" "$work/$size.keyed"
	echo "bench: $size B: $n records, $(wc -c < "$work/$size.nd") bytes" >&2
done

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%MZ)
: > "$work/results"
rep=warm
read -r first_size _ <<< "$sizes"
read -r first_parts _ <<< "$parts_list"
cell "$first_size" "$first_parts" 0
: > "$work/results"
turn=0
for rep in $(seq 1 "$reps"); do
	for size in $sizes; do
		for parts in $parts_list; do
			cell "$size" "$parts" "$turn"
			turn=$((turn + 1))
		done
	done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
[[ -z ${DP_BENCH_RAW:-} ]] || cp "$work/results" "$DP_BENCH_RAW"

{
	echo "bench/matrix.sh $lines $reps, $started, $(nproc) cores, dp $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')$([[ $bin == "$root/bin" ]] || echo " ($bin)"), tpc ${tpc:+$("$tpc" --version 2>&1 | head -1)}${tpc:-not installed}$([[ ${DP_BENCH_HYPERTABLE:-} == 1 ]] && echo ", hypertables")"
	echo
	python3 bench/matrix-report.py "$work/results" "$load_start" "$load_end" \
		$(for s in $sizes; do echo "$s=${count[$s]}"; done)
} > "$work/report"
cat "$work/report"
if [[ -n ${DP_BENCH_DOC:-} ]]; then
	python3 - "$DP_BENCH_DOC" "$work/report" <<'PY'
import sys
doc, report = sys.argv[1], open(sys.argv[2]).read()
text = open(doc).read()
b, e = "<!-- matrix: begin -->\n", "<!-- matrix: end -->"
if b not in text or e not in text:
    sys.exit("bench: %s has no %s...%s section" % (doc, b.strip(), e))
head, rest = text.split(b, 1)
open(doc, "w").write(head + b + report + "\n" + e + rest.split(e, 1)[1])
PY
	echo "bench: tables written into $DP_BENCH_DOC" >&2
fi
