#!/usr/bin/env bats
# Watching dp run (issue 19): --metrics (GET /metrics, /healthz, /readyz),
# --stale-after, --metrics-file, systemd's notify protocol, seen from
# outside with the real tools: curl, Debian's promtool and prometheus, a
# datagram socket like systemd's.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/kafka
load helpers/coord
load helpers/obs

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-120}

setup() {
	W=$BATS_TEST_TMPDIR
	BG_PIDS=()
	export DP_REGISTRY=$(uniq_name reg) DP_REQUESTS=$(uniq_name req)
	G=$(uniq_name g)
}

teardown() {
	serve_stop_all
	bg_kill
}

# start NAME CMD...: CMD in the background, stdout in $W/NAME.out, stderr in
# $W/NAME.err, its PID in PIDS[NAME]; stdin from $IN when set (a FIFO: opened
# by CMD, not by the test, which would wait there for a writer)
# (global: bats sources this file in a function, where a plain declare is local)
declare -gA PIDS
start() {
	local name=$1
	shift
	if [[ -n ${IN:-} ]]; then
		"$@" <"$IN" >"$W/$name.out" 2>"$W/$name.err" &
	else
		"$@" >"$W/$name.out" 2>"$W/$name.err" &
	fi
	PIDS[$name]=$!
	BG_PIDS+=($!)
}

# stop NAME: SIGTERM, wait; st is its exit status
stop() {
	kill -TERM "${PIDS[$1]}"
	st=0
	wait "${PIDS[$1]}" || st=$?
}

up() { ready_is "$1" 200; }

@test "dp-sink-pg --metrics: /metrics is clean under promtool and counts the rows committed, each partition's records and lag; /healthz and /readyz answer 200 once connected" {
	t=$(new_topic) tbl=$(uniq_name m) a=127.0.0.1:$(free_port)
	create_topic "$t" 2
	gen_prices 40 | dp-publish -t "$t" -k .fsym
	start sink dp-sink-pg -t "$t" -g "$G" --table "$tbl" --create --metrics "$a"
	wait_until 30 up "$a" || { cat "$W/sink.err"; false; }
	committed() { [ "$(metric "$a" "dp_records_out_total{command=\"dp-sink-pg\",table=\"$tbl\"}")" = 40 ]; }
	wait_until 30 committed
	[ "$(psql_dp -c "select count(*) from \"$tbl\"")" -eq 40 ]
	curl -s "http://$a/metrics" >"$W/m.prom"
	promtool_ok "$W/m.prom"
	# Each partition's records, its lag (none: caught up), its newest timestamp
	[ "$(metric "$a" "dp_records_in_total{command=\"dp-sink-pg\",topic=\"$t\"")" = 40 ]
	[ "$(metric "$a" "dp_consumer_lag_records{command=\"dp-sink-pg\",topic=\"$t\"")" = 0 ]
	grep -q "^dp_consumer_lag_seconds{command=\"dp-sink-pg\",topic=\"$t\",partition=\"0\"} 0$" "$W/m.prom"
	grep -q "^dp_last_record_timestamp_seconds{command=\"dp-sink-pg\",topic=\"$t\",partition=\"[01]\"} 1[0-9]*" "$W/m.prom"
	# The batches, a histogram; the machine's state; what it is
	[ "$(metric "$a" "dp_sink_batch_duration_seconds_count{command=\"dp-sink-pg\",table=\"$tbl\"}")" -ge 1 ]
	grep -q '^# TYPE dp_sink_batch_duration_seconds histogram$' "$W/m.prom"
	grep -q '^dp_state{command="dp-sink-pg",machine="dp-sink-pg",state="failed"} 0$' "$W/m.prom"
	grep -q '^dp_build_info{command="dp-sink-pg",version="[0-9.]*"} 1$' "$W/m.prom"
	[ "$(metric "$a" 'dp_ready{')" = 1 ]
	[ "$(http_get "http://$a/healthz")" = ok ] && [ "$HTTP_STATUS" = 200 ]
	[ "$(http_get "http://$a/readyz")" = ready ]
	# Only GET and HEAD; anything else is not there
	http_get "http://$a/nothing" >/dev/null
	[ "$HTTP_STATUS" = 404 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$a/metrics")" = 405 ]
	stop sink
	[ "$st" -eq 0 ]
	# The endpoint goes with the process
	http_get "http://$a/metrics" >/dev/null
	[ "$HTTP_STATUS" = 000 ]
}

@test "--stale-after: /readyz turns 503 within the stale time after the data stops, names the partition, and 200 again when records come; dp_ready follows" {
	t=$(new_topic) tbl=$(uniq_name m) a=127.0.0.1:$(free_port)
	create_topic "$t" 1
	start sink dp-sink-pg -t "$t" -g "$G" --table "$tbl" --create --metrics "$a" --stale-after 2s
	wait_until 30 up "$a" || { cat "$W/sink.err"; false; }
	# A partition is watched from its first record: no record yet is no stall
	gen_prices 5 | kcat_produce "$t"
	rows() { [ "$(psql_dp -c "select count(*) from \"$tbl\"" 2>/dev/null)" = "$1" ]; }
	wait_until 30 rows 5
	ready_is "$a" 200
	t0=$(_dp_now_us)
	wait_until 10 ready_is "$a" 503
	elapsed=$((($(_dp_now_us) - t0) / 1000))
	((elapsed <= 3500)) || { echo "503 after ${elapsed} ms"; false; }
	body=$(http_get "http://$a/readyz")
	[[ $body == "no record on $t/0 for "*" (--stale-after 2s)" ]]
	[ "$(metric "$a" 'dp_ready{')" = 0 ]
	# Data again: ready again, at once
	gen_prices 1 6 | kcat_produce "$t"
	wait_until 10 ready_is "$a" 200
	[ "$(metric "$a" 'dp_ready{')" = 1 ]
	wait_until 10 rows 6
	stop sink
	[ "$st" -eq 0 ]
}

@test "--stale-after: a run whose data never starts is not ready once the stale time has passed since the start" {
	t=$(new_topic) a=127.0.0.1:$(free_port)
	create_topic "$t" 1
	start tail dp-tail -t "$t" --metrics "$a" --stale-after 1s
	wait_until 30 up "$a" || { cat "$W/tail.err"; false; }
	wait_until 10 ready_is "$a" 503
	[[ $(http_get "http://$a/readyz") == "no record since the start, "*" ago (--stale-after 1s)" ]]
	stop tail
	[ "$st" -eq 0 ]
}

@test "promtool check metrics is clean on what every long-running command serves: dp-publish, dp-tail, dp-coord serve and run, dp-fetch --every and stream" {
	load helpers/fetch
	t=$(new_topic)
	create_topic "$t" 2
	# dp-publish reading a pipe that stays open
	mkfifo "$W/in"
	a=127.0.0.1:$(free_port)
	IN=$W/in start pub dp-publish -t "$t" -k .fsym --metrics "$a" --on-error skip
	exec 7>"$W/in"
	{ gen_prices 10; echo 'not json'; } >&7
	sent() { [ "$(metric "$a" "dp_records_out_total{command=\"dp-publish\",topic=\"$t\"}")" = 10 ]; }
	wait_until 30 sent || { cat "$W/pub.err"; false; }
	[ "$(metric "$a" 'dp_records_in_total{command="dp-publish"}')" = 11 ]
	[ "$(metric "$a" 'dp_records_bad_total{command="dp-publish",reason="invalid_json"}')" = 1 ]
	curl -s "http://$a/metrics" | promtool_ok -
	ready_is "$a" 200
	exec 7>&-
	wait "${PIDS[pub]}"

	# dp-tail
	a=127.0.0.1:$(free_port)
	start tail dp-tail -t "$t" --from beginning --metrics "$a"
	printed() { [ "$(metric "$a" 'dp_records_out_total{command="dp-tail"}')" = 10 ]; }
	wait_until 30 printed || { cat "$W/tail.err"; false; }
	[ "$(metric "$a" "dp_records_in_total{command=\"dp-tail\",topic=\"$t\"")" = 10 ]
	curl -s "http://$a/metrics" | promtool_ok -
	stop tail

	# dp-coord serve, and run
	a=127.0.0.1:$(free_port) b=127.0.0.1:$(free_port)
	serve_start 1 --metrics "$a"
	serve_active 1
	dp-coord request dyn.m$RANDOM --source "$t" --filter '.fsym == "BTC"' --wait
	[ "$(metric "$a" 'dp_records_out_total{command="dp-coord",outcome="granted"}')" = 1 ]
	[ "$(metric "$a" 'dp_state{command="dp-coord",machine="dp-coord",state="active"}')" = 1 ]
	curl -s "http://$a/metrics" | promtool_ok -
	start run dp-coord run --metrics "$b" -- sh -c 'exec sleep 600'
	running() { [ "$(metric "$b" 'dp_records_in_total{command="dp-coord"')" -ge 1 ]; }
	wait_until 30 running || { cat "$W/run.err"; false; }
	curl -s "http://$b/metrics" | promtool_ok -
	stop run
	[ "$st" -eq 0 ]

	# dp-fetch --every against the recorded API
	start_server ccserver.py '{"routes":{"/data/pricemultifull":[{"file":"saundersconsult__pricemultifull.json","times":100}]}}' "$BATS_TEST_DIRNAME/fixtures/cryptocompare"
	a=127.0.0.1:$(free_port)
	DP_CRYPTOCOMPARE_URL=http://127.0.0.1:$PORT start fetch dp-fetch price --fsyms BTC --tsyms USD --every 1s --metrics "$a"
	polled() { [ "$(metric "$a" 'dp_records_out_total{command="dp-fetch"}')" -ge 2 ]; }
	wait_until 30 polled || { cat "$W/fetch.err"; false; }
	ready_is "$a" 200
	curl -s "http://$a/metrics" | promtool_ok -
	stop fetch
	[ "$st" -eq 0 ]
	kill "$SRV_PID"
	wait "$SRV_PID" || true

	# dp-fetch stream against the recorded streamer
	PT=ptracker__wss_response_test.ndjson AGG=jobsboard__cccagg_btc_usd.ndjson
	start_server ccstreamer.py '{"connections":[{"steps":[{"msg":"'$PT':1"},{"await":"SubAdd"},{"ack":{}},{"msg":"'$AGG':1"},{"hold":true}]}]}' "$BATS_TEST_DIRNAME/fixtures/cryptocompare-stream"
	a=127.0.0.1:$(free_port)
	DP_CRYPTOCOMPARE_STREAM_URL=ws://127.0.0.1:$PORT/v2 start stream dp-fetch stream --fsyms BTC --tsyms USD --metrics "$a"
	streamed() { [ "$(metric "$a" 'dp_records_out_total{command="dp-fetch"}')" = 1 ]; }
	wait_until 30 streamed || { cat "$W/stream.err"; false; }
	metric "$a" 'dp_last_record_timestamp_seconds{command="dp-fetch",subscription="5~CCCAGG~BTC~USD"}'
	ready_is "$a" 200
	curl -s "http://$a/metrics" | promtool_ok -
	stop stream
	[ "$st" -eq 0 ]
	kill "$SRV_PID"
	wait "$SRV_PID" || true
}

@test "a real Prometheus scrapes a running pipeline (publish, sink, coordinator, follower); its query API has the rows the sink committed and its lag" {
	t=$(new_topic) tbl=$(uniq_name m) dyn=dyn.p$RANDOM
	create_topic "$t" 2
	ac=127.0.0.1:$(free_port) ap=127.0.0.1:$(free_port)
	as=127.0.0.1:$(free_port) af=127.0.0.1:$(free_port)
	serve_start 1 --metrics "$ac"
	serve_active 1
	dp-coord request "$dyn" --source "$t" --filter '.fsym == "BTC"' --wait
	prom_start "$ac" "$ap" "$as" "$af"
	mkfifo "$W/in"
	IN=$W/in start pub dp-publish -t "$t" -k .fsym --follow-registry --metrics "$ap"
	start sink dp-sink-pg -t "$t" -g "$G" --table "$tbl" --create --metrics "$as"
	start follow dp-tail --follow "$dyn" --metrics "$af"
	# The FIFO's writer, opened after the others started: they do not hold it
	exec 7>"$W/in"
	gen_prices 80 >&7
	rows() { [ "$(psql_dp -c "select count(*) from \"$tbl\"" 2>/dev/null)" = 80 ]; }
	wait_until 60 rows || { cat "$W/sink.err"; false; }
	# What Prometheus scraped, through its query API
	q_rows() { [ "$(prom_query "dp_records_out_total{command=\"dp-sink-pg\",table=\"$tbl\"}")" = 80 ]; }
	wait_until 30 q_rows || { curl -s "http://$PROM/api/v1/targets" | jq -c '.data.activeTargets[] | {scrapeUrl, health, lastError}'; false; }
	q_lag() { [ -n "$(prom_query "sum(dp_consumer_lag_records{command=\"dp-sink-pg\",topic=\"$t\"})")" ]; }
	wait_until 30 q_lag
	[ "$(prom_query "sum(dp_consumer_lag_records{command=\"dp-sink-pg\",topic=\"$t\"})")" = 0 ]
	q_pub() { [ "$(prom_query "dp_records_out_total{command=\"dp-publish\",topic=\"$t\"}")" = 80 ]; }
	wait_until 30 q_pub
	# The copies into the dynamic topic, and the follower that read them: 10 BTC of 80
	q_copies() { [ "$(prom_query "dp_records_out_total{command=\"dp-publish\",topic=\"$dyn\"}")" = 10 ]; }
	wait_until 30 q_copies
	q_follow() { [ "$(prom_query "sum(dp_records_in_total{command=\"dp-tail\",topic=\"$dyn\"})")" = 10 ]; }
	wait_until 30 q_follow
	q_coord() { [ "$(prom_query 'dp_state{command="dp-coord",state="active"}')" = 1 ]; }
	wait_until 30 q_coord
	# Every target up, every one ready
	q_up() { [ "$(prom_query 'count(up == 1)')" = 4 ] && [ "$(prom_query 'count(dp_ready == 1)')" = 4 ]; }
	wait_until 30 q_up
	exec 7>&-
	wait "${PIDS[pub]}"
	stop sink
	[ "$st" -eq 0 ]
	stop follow
	[ "$st" -eq 0 ]
}

@test "--metrics-file: written at the start, every --metrics-interval and at the end with dp_exit_status, atomically (a reader never sees part of it); clean under promtool" {
	t=$(new_topic) tbl=$(uniq_name m) f=$W/dp.prom
	create_topic "$t" 1
	start sink dp-sink-pg -t "$t" -g "$G" --table "$tbl" --create --metrics-file "$f" --metrics-interval 200ms
	wait_until 10 test -s "$f"
	grep -q '^dp_build_info{command="dp-sink-pg"' "$f"
	gen_prices 7 | kcat_produce "$t"
	counted() { grep -q "^dp_records_out_total{command=\"dp-sink-pg\",table=\"$tbl\"} 7$" "$f"; }
	wait_until 30 counted
	promtool_ok "$f"
	# A reader sees whole files only, while they are replaced every 200 ms
	python3 - "$f" <<-'PY'
		import sys, time
		end = time.time() + 2
		n = 0
		while time.time() < end:
		    text = open(sys.argv[1]).read()
		    assert text.startswith("# HELP dp_build_info ") and text.endswith("\n"), repr(text[-80:])
		    n += 1
		print(n, "whole reads")
	PY
	! grep -q dp_exit_status "$f"
	stop sink
	[ "$st" -eq 0 ]
	grep -q '^dp_exit_status{command="dp-sink-pg"} 0$' "$f"
	grep -q "^dp_records_out_total{command=\"dp-sink-pg\",table=\"$tbl\"} 7$" "$f"
	promtool_ok "$f"
	# No temporary file is left next to it
	[ "$(ls "$W" | grep -c '^dp\.prom')" -eq 1 ]
	# From cron: a run with an end writes it once more at its end
	gen_prices 3 | dp-sink-pg --stdin --table "$tbl" --metrics-file "$f"
	grep -q '^dp_exit_status{command="dp-sink-pg"} 0$' "$f"
	grep -q "^dp_records_out_total{command=\"dp-sink-pg\",table=\"$tbl\"} 3$" "$f"
	grep -q '^dp_records_in_total{command="dp-sink-pg"} 3$' "$f"
}

@test "--metrics-file through a symbolic link writes its target and the link stays; a device or a pipe is refused with 74, never replaced" {
	tbl=$(uniq_name m)
	mkdir -p "$W/real"
	ln -s real/target.prom "$W/link.prom"
	gen_prices 2 | dp-sink-pg --stdin --table "$tbl" --create --metrics-file "$W/link.prom"
	[ -L "$W/link.prom" ]
	grep -q '^dp_exit_status{command="dp-sink-pg"} 0$' "$W/real/target.prom"
	[ "$(ls "$W/real")" = target.prom ]
	mkfifo "$W/fifo"
	run --separate-stderr dp-sink-pg --stdin --table "$tbl" --metrics-file "$W/fifo" < /dev/null
	[ "$status" -eq 74 ]
	[[ $stderr == *"cannot write metrics file $W/fifo: not a regular file"* ]]
	[ -p "$W/fifo" ]
	ln -s fifo "$W/to-fifo"
	run --separate-stderr dp-sink-pg --stdin --table "$tbl" --metrics-file "$W/to-fifo" < /dev/null
	[ "$status" -eq 74 ]
	[ -p "$W/fifo" ] && [ -L "$W/to-fifo" ]
}

@test "--metrics: an address another process listens on is 69, one that cannot be used 78, a malformed one 64; DP_METRICS is the default; a file that cannot be written is 74" {
	t=$(new_topic)
	create_topic "$t" 1
	python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True); time.sleep(600)' >"$W/port" &
	BG_PIDS+=($!)
	wait_until 10 test -s "$W/port"
	taken=127.0.0.1:$(cat "$W/port")
	run --separate-stderr dp-tail -t "$t" --metrics "$taken"
	[ "$status" -eq 69 ]
	[ "$stderr" = "dp-tail: cannot listen on $taken for metrics: Address already in use" ]
	DP_METRICS=$taken run --separate-stderr dp-sink-pg -t "$t" -g "$G"
	[ "$status" -eq 69 ]
	[[ $stderr == *"cannot listen on $taken for metrics"* ]]
	run --separate-stderr dp-publish -t "$t" --metrics 192.0.2.1:9464 </dev/null
	[ "$status" -eq 78 ]
	[[ $stderr == *"cannot listen on 192.0.2.1:9464 for metrics: Cannot assign requested address"* ]]
	run --separate-stderr dp-tail -t "$t" --metrics 9464
	[ "$status" -eq 64 ]
	[[ $stderr == *"invalid --metrics '9464': expected HOST:PORT or :PORT"* ]]
	DP_METRICS=::1:80 run --separate-stderr dp-tail -t "$t"
	[ "$status" -eq 64 ]
	[[ $stderr == *"invalid \$DP_METRICS '::1:80': an IPv6 address goes in brackets"* ]]
	run --separate-stderr dp-tail -t "$t" --metrics-interval 1s
	[ "$status" -eq 64 ]
	run --separate-stderr dp-tail -t "$t" --metrics-file "$W/no/such/dir/x.prom"
	[ "$status" -eq 74 ]
	[[ $stderr == *"directory $W/no/such/dir does not exist"* ]]
	run --separate-stderr dp-coord list --metrics :0
	[ "$status" -eq 64 ]
}

@test "systemd: READY=1 once connected, STATUS= the state, WATCHDOG=1 only while ready (not while the data is stale), STOPPING=1 at the end" {
	t=$(new_topic) tbl=$(uniq_name m)
	create_topic "$t" 1
	notify_listen
	gen_prices 3 | kcat_produce "$t"
	WATCHDOG_USEC=400000 start sink dp-sink-pg -t "$t" -g "$G" --table "$tbl" --create --stale-after 2s
	said() { grep -qF -- "$1" "$NOTIFY_LOG"; }
	wait_until 30 said 'READY=1|STATUS=idle; ready' || { cat "$W/sink.err" "$NOTIFY_LOG"; false; }
	[ "$(grep -c 'READY=1' "$NOTIFY_LOG")" -eq 1 ]
	wait_until 5 said 'WATCHDOG=1'
	# The data stops: not ready, said (the reason's age, as it grows), and
	# the watchdog (every 200 ms while ready) is not fed meanwhile
	wait_until 15 said "STATUS=idle; not ready: no record on $t/0 for 3s "
	gen_prices 1 4 | kcat_produce "$t"
	ready_again() { grep -A1000 -F 'not ready: no record on' "$NOTIFY_LOG" | grep -qF 'STATUS=idle; ready'; }
	wait_until 15 ready_again
	run awk '/not ready: no record on/ { stale = 1 } /STATUS=idle; ready/ && stale { exit }
		stale && /WATCHDOG=1/ { print "fed while not ready: " $0 }' "$NOTIFY_LOG"
	[ -z "$output" ]
	m=$(grep -c WATCHDOG=1 "$NOTIFY_LOG")
	more() { [ "$(grep -c WATCHDOG=1 "$NOTIFY_LOG")" -ge $((m + 2)) ]; }
	wait_until 5 more
	stop sink
	[ "$st" -eq 0 ]
	wait_until 5 said 'STOPPING=1|STATUS=done; stopping (exit status 0)'
}

@test "dp-coord run: its children do not inherit systemd's notify socket, the watchdog or DP_METRICS" {
	a=127.0.0.1:$(free_port)
	serve_start 1
	serve_active 1
	t=$(new_topic)
	create_topic "$t" 1
	dp-coord request dyn.c$RANDOM --source "$t" --filter . --wait
	DP_METRICS=$a NOTIFY_SOCKET=$W/none WATCHDOG_USEC=1000000 \
		start run dp-coord run -- sh -c 'echo "[$NOTIFY_SOCKET|$WATCHDOG_USEC|$DP_METRICS]" >"'"$W"'/env.$DP_TOPIC"; exec sleep 600'
	# (the pattern is expanded at each try, not once when wait_until is called)
	wait_until 30 compgen -G "$W/env.*" >/dev/null || { cat "$W/run.err"; false; }
	[ "$(cat "$W"/env.*)" = "[||]" ]
	# The parent has the address
	wait_until 10 up "$a"
	stop run
	[ "$st" -eq 0 ]
}

@test "what went wrong is counted: bad records by the kind of their reason, dead letters per topic, retries by cause, each machine's transitions" {
	t=$(new_topic) tbl=$(uniq_name m) f=$W/sink.prom
	create_topic "$t" 1
	create_topic "$t.dlq" 1
	psql_dp -c "create table \"$tbl\" (seq bigint, price double precision check (price > 0))"
	printf '%s\n' '{"seq":1,"price":1.5}' '{"seq":2,"price":-1}' 'not json {' '{"seq":4,"price":4.5}' |
		kcat_produce "$t"
	run --separate-stderr dp-sink-pg -t "$t" -g "$G" --table "$tbl" -e --on-error "dlq=$t.dlq" --metrics-file "$f"
	[ "$status" -eq 0 ]
	promtool_ok "$f"
	grep -q "^dp_records_out_total{command=\"dp-sink-pg\",table=\"$tbl\"} 2$" "$f"
	# Not JSON: refused by dp; a CHECK: by the server (23514), named by its class
	grep -q '^dp_records_bad_total{command="dp-sink-pg",reason="value"} 1$' "$f"
	grep -q '^dp_records_bad_total{command="dp-sink-pg",reason="integrity_constraint_violation"} 1$' "$f"
	grep -q "^dp_dead_letters_total{command=\"dp-sink-pg\",topic=\"$t.dlq\"} 2$" "$f"
	[ "$(kcat_count "$t.dlq")" -eq 2 ]
	# The run's path through its machine, one series per row taken
	grep -q '^dp_state_transitions_total{command="dp-sink-pg",machine="dp-sink-pg",from="idle",event="[a-z_]*",to="[a-z_]*"} 1$' "$f"
	grep -q '^dp_state{command="dp-sink-pg",machine="dp-sink-pg",state="done"} 1$' "$f"
	grep -q '^dp_exit_status{command="dp-sink-pg"} 0$' "$f"

	# An HTTP 500 from the API, tried again: a retry of cause "request"
	load helpers/fetch
	start_server ccserver.py '{"routes":{"/data/pricemultifull":[{"status":500,"body":"oops"},{"file":"saundersconsult__pricemultifull.json"}]}}' "$BATS_TEST_DIRNAME/fixtures/cryptocompare"
	DP_CRYPTOCOMPARE_URL=http://127.0.0.1:$PORT run --separate-stderr \
		dp-fetch price --fsyms BTC --tsyms USD --retry-base 10ms --metrics-file "$W/fetch.prom"
	kill "$SRV_PID"
	wait "$SRV_PID" || true
	[ "$status" -eq 0 ]
	promtool_ok "$W/fetch.prom"
	grep -q '^dp_retries_total{command="dp-fetch",cause="request"} 1$' "$W/fetch.prom"
	grep -q '^dp_records_out_total{command="dp-fetch"} 1$' "$W/fetch.prom"
}
