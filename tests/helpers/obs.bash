# tests/helpers/obs.bash - metrics, health and systemd's notify socket, seen
# from outside: `load helpers/obs` (after helpers/common)
#
#   http_get URL              prints the body; HTTP_STATUS is the status (000: no answer)
#   metric ADDR SAMPLE        prints the value of the sample whose name and labels
#                             start with SAMPLE ('dp_ready{' or
#                             'dp_records_out_total{command="dp-sink-pg",table="t"'),
#                             summed over the series that match; fails when none does
#   ready_is ADDR CODE        GET /readyz answers CODE
#   promtool_ok FILE|-        promtool check metrics is clean on it (prints what it says)
#   notify_listen             a datagram socket like systemd's: NOTIFY_SOCKET is exported,
#                             each message it receives is one line of $NOTIFY_LOG, its
#                             fields joined by '|' (READY=1|STATUS=consuming; ready)
#   prom_start TARGET...      a real Prometheus (Debian's) on a free port scraping each
#                             HOST:PORT every second; PROM is its address
#   prom_query EXPR           prints the value of the instant query's first series
#                             (nothing when the result is empty)
#   prom_has EXPR             the instant query has a series with a value > 0
#
# Background processes go into BG_PIDS (bg_kill in teardown stops them).

http_get() {
	local out
	out=$(curl -s -m 5 -w '\n%{http_code}' "$1") || true
	HTTP_STATUS=${out##*$'\n'}
	[[ $out == *$'\n'* ]] && printf '%s' "${out%$'\n'*}"
	return 0
}

metric() {
	local addr=$1 sample=$2
	curl -s -m 5 "http://$addr/metrics" | python3 -c '
import sys
want, total, seen = sys.argv[1], 0.0, False
for line in sys.stdin:
    if line.startswith("#") or not line.startswith(want):
        continue
    total += float(line.rsplit(" ", 1)[1])
    seen = True
if not seen:
    sys.exit(1)
print(int(total) if total == int(total) else total)
' "$sample"
}

ready_is() {
	http_get "http://$1/readyz" >/dev/null
	[[ $HTTP_STATUS == "$2" ]]
}

promtool_ok() {
	local out st=0
	if [[ $1 == - ]]; then
		out=$(promtool check metrics 2>&1) || st=$?
	else
		out=$(promtool check metrics <"$1" 2>&1) || st=$?
	fi
	[[ -z $out ]] || echo "promtool: $out"
	((st == 0)) && [[ -z $out ]]
}

notify_listen() {
	NOTIFY_SOCKET=$BATS_TEST_TMPDIR/notify.sock
	NOTIFY_LOG=$BATS_TEST_TMPDIR/notify.log
	: >"$NOTIFY_LOG"
	python3 -u - "$NOTIFY_SOCKET" "$NOTIFY_LOG" <<'PY' &
import os, socket, sys
path, log = sys.argv[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(log, "a") as f:
    while True:
        msg = s.recv(4096).decode()
        f.write(msg.replace("\n", "|") + "\n")
        f.flush()
PY
	BG_PIDS+=($!)
	wait_until 5 test -S "$NOTIFY_SOCKET"
	export NOTIFY_SOCKET NOTIFY_LOG
}

prom_start() {
	local port dir=$BATS_TEST_TMPDIR/prometheus t targets=
	port=$(free_port)
	mkdir -p "$dir/data"
	for t in "$@"; do
		targets+="${targets:+, }'$t'"
	done
	cat >"$dir/prometheus.yml" <<-EOF
		global:
		  scrape_interval: 1s
		  evaluation_interval: 1s
		scrape_configs:
		  - job_name: dp
		    static_configs:
		      - targets: [$targets]
	EOF
	prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
		--web.listen-address="127.0.0.1:$port" >"$dir/log" 2>&1 &
	BG_PIDS+=($!)
	PROM=127.0.0.1:$port
	_prom_ready() { curl -sf -m 2 "http://$PROM/-/ready" >/dev/null; }
	wait_until 30 _prom_ready || { tail -20 "$dir/log"; return 1; }
}

prom_query() {
	curl -s -m 5 --get "http://$PROM/api/v1/query" --data-urlencode "query=$1" |
		jq -r 'if .status == "success" and (.data.result | length) > 0
		       then .data.result[0].value[1] else empty end'
}

prom_has() {
	local v
	v=$(prom_query "$1")
	[[ -n $v ]] && python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)' "$v"
}
