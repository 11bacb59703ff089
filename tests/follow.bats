#!/usr/bin/env bats
# Producers and consumers that follow the coordinator (issue 12):
# dp-publish --follow-registry copies records into the active dynamic
# topics whose filters they match, --request-topics asks the coordinator
# for the topics it writes to, and dp-tail --follow and --follow-match
# read dynamic topics as they come and go.  Every row of both machines
# that is about dynamic topics is taken here.

load helpers/common
load helpers/kafka
load helpers/coord
bats_require_minimum_version 1.5.0

setup() {
	W=$BATS_TEST_TMPDIR
	export DP_REGISTRY=$(uniq_name reg) DP_REQUESTS=$(uniq_name req)
	G=$(uniq_name g)
	SRC=$(new_topic)
	# Dynamic topic names must match the coordinator's --allow (^dyn\.).
	D=dyn.$(uniq_name d)
	PIDS=()
	DYN=()
}

teardown() {
	local pid
	touch "$W/stop"
	[[ ! -s $W/tail.pid ]] || kill -KILL "$(cat "$W/tail.pid")" 2>/dev/null || true
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	serve_stop_all
	((${#DYN[@]} == 0)) || dp-topic delete "${DYN[@]}" --if-exists -o json >/dev/null 2>&1 || true
}

# transitions FILE: the --trace-states lines of FILE as "from event to"
transitions() {
	grep '^{"cmd"' "$1" | jq -r '[.from, .event, .to] | join(" ")'
}

# took FILE FROM EVENT TO: the machine traced in FILE took that row
took() {
	grep -q "\"from\":\"$2\",\"event\":\"$3\",\"to\":\"$4\"" "$1"
}

# trickle STOPFILE: price-like lines, BTC and ETH in turn, one every 50 ms
# (the pace of a live feed), each with its sequence number, until STOPFILE
# exists.
trickle() {
	local i=0 sym
	while [[ ! -e $1 ]]; do
		sym=BTC
		((i % 2)) && sym=ETH
		printf '{"seq":%d,"fsym":"%s","tsym":"EUR","price":%d.5}\n' "$i" "$sym" "$((100 + i))"
		i=$((i + 1))
		sleep 0.05
	done
}

# count TOPIC: records in TOPIC (0 when it does not exist), from its
# watermarks: kcat -e does not end while a producer keeps writing.
count() {
	dp-topic offsets "$1" -o json 2>/dev/null |
		jq -s '[.[] | select(.high != null) | .high - .low] | add // 0'
}

# at_least N TOPIC
at_least() {
	(($(count "$2") >= $1))
}

# lines_are N FILE: FILE has N lines (evaluated anew at each try of wait_until)
lines_are() {
	[[ -e $2 ]] && (($(wc -l <"$2") == $1))
}

# registry_put TOPIC JSON: a registry record written by hand, as another
# tool (or a person) could write one
registry_put() {
	printf '%s\t%s\n' "$1" "$2" | kcat -b "$DP_BROKERS" -P -t "$DP_REGISTRY" -K $'\t'
}

# registry_topics: the registry and requests topics, as dp-coord serve
# makes them, without a coordinator running
registry_topics() {
	dp-topic create "$DP_REGISTRY" -c cleanup.policy=compact -o json >/dev/null
	dp-topic create "$DP_REQUESTS" -o json >/dev/null
}

@test "follow, live: routes appear within 1 s of a request and stop within 1 s of a retire; nothing before active" {
	create_topic "$SRC" 3
	serve_start 1
	serve_active 1
	trickle "$W/stop" | dp-publish -t "$SRC" -k .fsym --follow-registry -v --trace-states \
		2>"$W/pub.err" &
	PIDS+=($!)
	wait_until 10 at_least 10 "$SRC"
	run dp-coord request "$D" --source "$SRC" --filter '.fsym == "BTC" and .tsym == "EUR"' \
		--wait=20s
	[ "$status" -eq 0 ]
	DYN+=("$D")
	wait_until 10 took "$W/pub.err" publishingFixed PUBLISH_DYNAMIC publishingDynamic
	# Long enough after the request for the window checked below.
	wait_until 20 at_least 30 "$D"
	run dp-coord retire "$D" --delete-after 1h --wait=20s
	[ "$status" -eq 0 ]
	wait_until 10 took "$W/pub.err" publishingDynamic PUBLISH_FIXED publishingFixed
	n=$(count "$SRC")
	wait_until 10 at_least $((n + 40)) "$SRC"
	touch "$W/stop"
	wait_until 10 proc_gone "${PIDS[0]}"
	wait "${PIDS[0]}"
	PIDS=()
	took "$W/pub.err" publishingFixed eof draining
	active=$(registry_ts "$D" active)
	retired=$(registry_ts "$D" retired)
	[[ -n $active && -n $retired ]]
	kcat -b "$DP_BROKERS" -C -t "$SRC" -e -q -o beginning -f '%T %s\n' >"$W/src"
	kcat -b "$DP_BROKERS" -C -t "$D" -e -q -o beginning -f '%T %s\n' >"$W/dyn"
	python3 - "$W/src" "$W/dyn" "$active" "$retired" <<'PY'
import json, sys
def load(path):
    out = {}
    for line in open(path):
        ts, _, v = line.partition(" ")
        r = json.loads(v)
        out[r["seq"]] = (int(ts), r)
    return out
src, dyn, active, retired = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
assert dyn, "no copies"
for seq, (ts, r) in dyn.items():
    assert r["fsym"] == "BTC", f"{seq}: {r} does not match the filter"
    assert ts >= active, f"{seq}: copied at {ts}, before the topic was active at {active}"
    assert ts <= retired + 1000, f"{seq}: copied at {ts}, more than 1 s after the retire at {retired}"
    assert src[seq][1] == r, f"{seq}: the copy differs from the record"
want = [s for s, (ts, r) in src.items() if r["fsym"] == "BTC" and active + 1000 <= ts <= retired]
assert want, "no record in the window"
missing = [s for s in want if s not in dyn]
assert not missing, f"not copied within 1 s of the request: {missing}"
print(f"{len(dyn)} copies, {len(want)} in the window")
PY
}

@test "restart: a dp-publish started later routes from the registry; a bad line ends it in publishingDynamic" {
	create_topic "$SRC" 2
	serve_start 1
	serve_active 1
	dp-coord request "$D" --source "$SRC" --filter '.fsym == "ETH"' --wait=20s >/dev/null
	DYN+=("$D")
	gen_prices 400 >"$W/in"
	run dp-publish -t "$SRC" -k .fsym --follow-registry --trace-states <"$W/in"
	[ "$status" -eq 0 ]
	[[ $output == *'"from":"publishingFixed","event":"PUBLISH_DYNAMIC","to":"publishingDynamic"'* ]]
	[[ $output == *'"from":"publishingDynamic","event":"eof","to":"draining"'* ]]
	[ "$(count "$SRC")" -eq 400 ]
	kcat_payloads "$D" | sorted /dev/stdin >"$W/got"
	grep '"fsym":"ETH"' "$W/in" | sorted /dev/stdin >"$W/want"
	[ "$(wc -l <"$W/want")" -eq 50 ]
	cmp "$W/want" "$W/got"
	# Copies keep their key: the partition a key picks in the dynamic topic.
	[ "$(kcat -b "$DP_BROKERS" -C -t "$D" -e -q -o beginning -f '%k\n' | sort -u)" = ETH ]
	# The same again with a bad line: the lines before it, and their copies.
	{ head -40 "$W/in"; echo '{"fsym": "ETH"'; tail -1 "$W/in"; } >"$W/bad"
	run dp-publish -t "$SRC" -k .fsym --follow-registry --trace-states <"$W/bad"
	[ "$status" -eq 65 ]
	[[ $output == *'"from":"publishingDynamic","event":"bad_line","to":"draining"'* ]]
	[ "$(count "$D")" -eq 55 ]
}

@test "a record counts as delivered only when all its copies are: a copy that cannot be delivered is exit 75" {
	create_topic "$SRC"
	registry_topics
	# A spec written by hand for a topic that was never made.
	registry_put "$D" "{\"topic\":\"$D\",\"state\":\"active\",\"source\":\"$SRC\",\"filter\":\".n > 2\",\"request_id\":\"x\"}"
	printf '{"n":%d}\n' 1 2 3 4 >"$W/in"
	run dp-publish -t "$SRC" --follow-registry -X message.timeout.ms=3000 \
		-X topic.metadata.propagation.max.ms=1000 --trace-states <"$W/in"
	[ "$status" -eq 75 ]
	[[ $output == *"dp-publish: 2 of 4 records not delivered"* ]]
	[[ $output == *'"from":"draining","event":"lost","to":"failed"'* ]]
	# The records themselves went.
	[ "$(count "$SRC")" -eq 4 ]
}

@test "copies into a topic retired and deleted meanwhile are not missed; SIGTERM in publishingDynamic" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request "$D" --source "$SRC" --filter '.fsym == "BTC"' --wait=20s >/dev/null
	trickle "$W/stop" | dp-publish -t "$SRC" --follow-registry -v --trace-states \
		2>"$W/pub.err" &
	PIDS+=($!)
	wait_until 20 at_least 5 "$D"
	# Deleted at once: copies in flight find no topic.
	dp-coord retire "$D" --wait=20s >/dev/null
	wait_until 20 took "$W/pub.err" publishingDynamic PUBLISH_FIXED publishingFixed
	wait_until 20 grep -q "deleted retired topic '$D'" "$W/serve1.err"
	n=$(count "$SRC")
	wait_until 10 at_least $((n + 10)) "$SRC"
	touch "$W/stop"
	wait_until 10 proc_gone "${PIDS[0]}"
	rc=0
	wait "${PIDS[0]}" || rc=$?
	PIDS=()
	[ "$rc" -eq 0 ]
	[[ $(cat "$W/pub.err") != *"not delivered"* || $(cat "$W/pub.err") == *"not missed"* ]]
	# Routes active, then a signal: everything read is delivered, copies too.
	dp-coord request "$D.b" --source "$SRC" --filter '.fsym == "ETH"' --wait=20s >/dev/null
	DYN+=("$D.b")
	rm -f "$W/stop"
	trickle "$W/stop" | dp-publish -t "$SRC" --follow-registry --trace-states 2>"$W/pub2.err" &
	PIDS+=($!)
	wait_until 10 took "$W/pub2.err" publishingFixed PUBLISH_DYNAMIC publishingDynamic
	wait_until 10 at_least 3 "$D.b"
	kill -TERM "${PIDS[0]}"
	wait_until 10 proc_gone "${PIDS[0]}"
	rc=0
	wait "${PIDS[0]}" || rc=$?
	PIDS=()
	# Its input (a pipe) did not end: 143, with everything it read delivered.
	[ "$rc" -eq 143 ]
	grep -q "stopped by SIGTERM before the end: [0-9]* lines delivered, 0 read and not delivered" "$W/pub2.err"
	took "$W/pub2.err" publishingDynamic signal draining
	took "$W/pub2.err" draining drained done
}

@test "--report names each copy's topic; stdout failing in publishingDynamic is fatal (74)" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request "$D" --source "$SRC" --filter '.a == 1' --wait=20s >/dev/null
	DYN+=("$D")
	printf '{"a":1}\n{"a":2}\n' >"$W/in"
	run --separate-stderr dp-publish -t "$SRC" --follow-registry --report <"$W/in"
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.line, .topic] | join(" ")' <<<"$output" | sort)" = "1 $D
1 $SRC
2 $SRC" ]
	# Acknowledgements fill the output buffer while the input is still open
	# (and they are written before it ends): the write fails in publishingDynamic.
	for i in $(seq 1500); do printf '{"a":1}\n{"a":2}\n'; done >"$W/many"
	run bash -c 'dp-publish -t "$1" --follow-registry --report --trace-states \
		< <(exec 2>/dev/null 3>&-; cat "$2"; while [[ ! -e $3 ]]; do sleep 0.1; done) \
		>/dev/full' _ \
		"$SRC" "$W/many" "$W/stop"
	touch "$W/stop"
	[ "$status" -eq 74 ]
	[[ $output == *"cannot write to stdout"* ]]
	[[ $output == *'"from":"publishingDynamic","event":"fatal","to":"draining"'* ]]
}

@test "--request-topics with a coordinator makes the topics and delivers everything, also from publishingDynamic" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	# A route out of SRC makes the producer publish to dynamic topics from the start.
	dp-coord request "$D" --source "$SRC" --filter '.fsym == "BTC"' --wait=20s >/dev/null
	DYN+=("$D" "$D.ETH" "$D.SOL")
	gen_prices 300 | grep -E '"fsym":"(BTC|ETH|SOL)"' >"$W/in"
	run dp-publish --topic-expr "if .fsym == \"BTC\" then \"$SRC\" else \"$D.\" + .fsym end" \
		-k .fsym --request-topics --follow-registry -v --trace-states <"$W/in"
	[ "$status" -eq 0 ]
	[[ $output == *'"from":"publishingDynamic","event":"CREATE_TOPIC","to":"creatingTopic"'* ]]
	[[ $output == *'"from":"creatingTopic","event":"CREATE_TOPIC_SUCCESS","to":"publishingFixed"'* ]]
	[[ $output == *"topic '$D.ETH' does not exist: asked the coordinator for it"* ]]
	for s in ETH SOL; do
		grep "\"fsym\":\"$s\"" "$W/in" | sorted /dev/stdin >"$W/want"
		kcat_payloads "$D.$s" | sorted /dev/stdin >"$W/got"
		cmp "$W/want" "$W/got"
	done
	[ "$(count "$SRC")" -eq "$(grep -c '"BTC"' "$W/in")" ]
	[ "$(count "$D")" -eq "$(grep -c '"BTC"' "$W/in")" ]
	# In the registry as topics fed directly: their own source.
	registry_has ".topic == \"$D.ETH\" and .state == \"active\" and .source == \"$D.ETH\""
}

@test "--request-topics with a rejecting policy: the records follow --on-error (dlq, then fail)" {
	serve_start 1 --allow '^dyn\..*\.ok$'
	serve_active 1
	DLQ=$(new_topic)
	create_topic "$DLQ"
	DYN+=("$D.ok")
	printf '{"k":"ok","i":%d}\n{"k":"no","i":%d}\n' 1 2 3 4 5 6 >"$W/in"
	run dp-publish --topic-expr "\"$D.\" + .k" --request-topics --on-error "dlq=$DLQ" \
		--trace-states <"$W/in"
	[ "$status" -eq 0 ]
	[[ $output == *'"from":"publishingFixed","event":"CREATE_TOPIC","to":"creatingTopic"'* ]]
	[[ $output == *'"from":"creatingTopic","event":"CREATE_TOPIC_FAILURE","to":"error"'* ]]
	[[ $output == *'"from":"error","event":"RESET","to":"publishingFixed"'* ]]
	[[ $output == *"line 2: topic '$D.no' was not created: topic name '$D.no' is not allowed here"* ]]
	[ "$(kcat_payloads "$D.ok" | jq -r .i | xargs)" = "1 3 5" ]
	[ "$(kcat_payloads "$DLQ" | jq -r .i | xargs)" = "2 4 6" ]
	[ "$(kcat -b "$DP_BROKERS" -C -t "$DLQ" -e -q -o beginning -f '%h\n' | head -1)" = \
		"dp-error=topic '$D.no' was not created: topic name '$D.no' is not allowed here (see dp-coord serve --allow),dp-line=2" ]
	# Under fail, the first of them stops it: 65.
	run dp-publish --topic-expr "\"$D.\" + .k + \"x\"" --request-topics --trace-states <"$W/in"
	[ "$status" -eq 65 ]
	[[ $output == *'"from":"error","event":"bad_line","to":"draining"'* ]]
	[[ $output == *"line 1: topic '$D.okx' was not created"* ]]
}

@test "--request-topics without a coordinator: exit 69 after --timeout, nothing lost in silence" {
	registry_topics
	printf '{"i":%d}\n' 1 2 3 >"$W/in"
	t0=$(_dp_now_us)
	run dp-publish --topic-expr "\"$D\"" --request-topics --timeout 3s --trace-states <"$W/in"
	elapsed=$((($(_dp_now_us) - t0) / 1000))
	[ "$status" -eq 69 ]
	[[ $output == *"no answer to the request for topic '$D' within 3s: is a dp-coord serve running"* ]]
	[[ $output == *"3 of 3 records not delivered (held for topics not made)"* ]]
	[[ $output == *'"from":"error","event":"fatal","to":"draining"'* ]]
	[[ $output == *'"from":"draining","event":"aborted","to":"failed"'* ]]
	((elapsed >= 3000 && elapsed < 12000))
	# The request is there for a coordinator that comes later.
	[ "$(kcat_payloads "$DP_REQUESTS" | jq -r '[.action, .topic, .source] | join(" ")')" = \
		"create $D $D" ]
	# No coordinator has ever run: said at once.
	export DP_REQUESTS=$(uniq_name none)
	run dp-publish --topic-expr "\"$D\"" --request-topics <"$W/in"
	[ "$status" -eq 69 ]
	[[ $output == *"requests topic '$DP_REQUESTS' does not exist: no dp-coord serve has run"* ]]
}

@test "--hold-bytes: a full hold stops the reading; SIGTERM while creatingTopic counts the held records" {
	registry_topics
	gen_prices 100000 >"$W/in"
	dp-publish --topic-expr "\"$D\"" --request-topics --hold-bytes 1K --timeout 60s -v \
		--trace-states <"$W/in" 2>"$W/pub.err" &
	PIDS+=($!)
	wait_until 20 took "$W/pub.err" publishingFixed CREATE_TOPIC creatingTopic
	kill -TERM "${PIDS[0]}"
	wait_until 10 proc_gone "${PIDS[0]}"
	rc=0
	wait "${PIDS[0]}" || rc=$?
	PIDS=()
	[ "$rc" -eq 143 ]
	took "$W/pub.err" creatingTopic signal draining
	# Reading waited: far fewer lines were read than there are.
	lines=$(grep -o '[0-9]* lines, ' "$W/pub.err" | cut -d' ' -f1)
	((lines > 0 && lines < 50000))
	grep -q "records not delivered (held for topics not made)" "$W/pub.err"
}

@test "a registry deleted under a waiting producer or follower ends it with 81" {
	registry_topics
	printf '{"i":1}\n' >"$W/in"
	dp-publish --topic-expr "\"$D\"" --request-topics --timeout 60s --trace-states <"$W/in" \
		2>"$W/pub.err" &
	PIDS+=($!)
	dp-tail --follow "$D" --trace-states >"$W/out" 2>"$W/tail.err" &
	PIDS+=($!)
	wait_until 20 took "$W/pub.err" publishingFixed CREATE_TOPIC creatingTopic
	wait_until 20 took "$W/tail.err" connecting SUBSCRIBE_TO_TOPIC subscribing
	dp-topic delete "$DP_REGISTRY" -o json >/dev/null
	for pid in "${PIDS[@]}"; do
		wait_until 30 proc_gone "$pid"
		rc=0
		wait "$pid" || rc=$?
		[ "$rc" -eq 81 ]
	done
	PIDS=()
	took "$W/pub.err" creatingTopic fatal draining
	took "$W/tail.err" subscribing fatal closing
}

@test "dp-tail --follow, started before the coordinator and the request, prints the records; a retire ends it" {
	create_topic "$SRC"
	dp-tail --follow "$D" --trace-states >"$W/out" 2>"$W/tail.err" &
	PIDS+=($!)
	wait_until 20 took "$W/tail.err" connecting SUBSCRIBE_TO_TOPIC subscribing
	# Waiting is not silent: one line says for what.
	grep -qx "dp-tail: registry '$DP_REGISTRY' does not exist yet: waiting for a dp-coord serve to make it" "$W/tail.err"
	serve_start 1
	serve_active 1
	dp-coord request "$D" --source "$SRC" --filter '.fsym == "SOL"' --wait=20s >/dev/null
	gen_prices 80 >"$W/in"
	dp-publish -t "$SRC" --follow-registry <"$W/in"
	grep '"SOL"' "$W/in" >"$W/want"
	wait_until 10 lines_are 10 "$W/out"
	cmp "$W/want" "$W/out"
	took "$W/tail.err" subscribing SUBSCRIBE_SUCCESS consuming
	took "$W/tail.err" consuming MESSAGE_RECEIVED processingMessage
	took "$W/tail.err" processingMessage PROCESS_SUCCESS consuming
	# Retired and deleted at once: read to its end, then the end of dp-tail.
	dp-coord retire "$D" --wait=20s >/dev/null
	wait_until 10 proc_gone "${PIDS[0]}"
	wait "${PIDS[0]}"
	PIDS=()
	# read to its end before the deletion: no warning, however soon it came
	[ "$(grep -c "was deleted before it was read to its end" "$W/tail.err")" -eq 0 ]
	took "$W/tail.err" consuming end closing
	cmp "$W/want" "$W/out"
}

@test "dp-tail --follow -e ends at the topic's end; --follow-match adds topics as they come and drops retired ones" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request "$D.a" --source "$SRC" --filter '.fsym == "BTC"' --wait=20s >/dev/null
	DYN+=("$D.a" "$D.b")
	dp-tail --follow-match ".source == \"$SRC\"" -v --trace-states >"$W/out" 2>"$W/tail.err" &
	PIDS+=($!)
	wait_until 20 took "$W/tail.err" subscribing SUBSCRIBE_SUCCESS consuming
	gen_prices 16 | dp-publish -t "$SRC" --follow-registry
	wait_until 10 lines_are 2 "$W/out"
	# While it reads one, another comes.
	dp-coord request "$D.b" --source "$SRC" --filter '.fsym == "ETH"' --wait=20s >/dev/null
	wait_until 10 took "$W/tail.err" consuming SUBSCRIBE_TO_TOPIC subscribing
	gen_prices 16 | dp-publish -t "$SRC" --follow-registry
	wait_until 10 lines_are 6 "$W/out"
	[ "$(jq -r .fsym "$W/out" | sort | uniq -c | awk '{print $2 $1}' | xargs)" = "BTC4 ETH2" ]
	# -e: what is there, then the end.
	run --separate-stderr dp-tail --follow "$D.a" -e
	[ "$status" -eq 0 ]
	[ "$(jq -r .fsym <<<"$output" | sort | uniq -c | awk '{print $2 $1}')" = "BTC4" ]
	# A retired one is read to its end and dropped; the reader goes on.
	dp-coord retire "$D.a" --delete-after 1h --wait=20s >/dev/null
	wait_until 10 grep -q "dynamic topic '$D.a' read to its end" "$W/tail.err"
	gen_prices 16 | dp-publish -t "$SRC" --follow-registry
	wait_until 10 lines_are 8 "$W/out"
	[ "$(tail -2 "$W/out" | jq -r .fsym | xargs)" = "ETH ETH" ]
	kill -TERM "${PIDS[0]}"
	wait "${PIDS[0]}"
	PIDS=()
}

@test "dp-tail --follow: a topic the registry shows and the cluster does not goes through error and RESET" {
	registry_topics
	registry_put "$D" "{\"topic\":\"$D\",\"state\":\"active\",\"source\":\"x\",\"filter\":\".\",\"request_id\":\"y\"}"
	dp-tail --follow "$D" --timeout 2s -v --trace-states >"$W/out" 2>"$W/tail.err" &
	PIDS+=($!)
	wait_until 20 took "$W/tail.err" subscribing SUBSCRIBE_FAILURE error
	grep -q "cannot read dynamic topic '$D': topic '$D' does not exist" "$W/tail.err"
	create_topic "$D"
	DYN+=("$D")
	printf '{"x":1}\n{"x":2}\n' | dp-publish -t "$D"
	wait_until 30 lines_are 2 "$W/out"
	took "$W/tail.err" error RESET subscribing
	kill -TERM "${PIDS[0]}"
	wait "${PIDS[0]}"
	PIDS=()
	took "$W/tail.err" consuming signal closing
}

@test "dp-tail --follow: SIGTERM while waiting for a topic, and while in error, ends it at once (0)" {
	registry_topics
	dp-tail --follow "$D" --trace-states >"$W/out" 2>"$W/a.err" &
	pid=$!
	wait_until 20 took "$W/a.err" connecting SUBSCRIBE_TO_TOPIC subscribing
	kill -TERM "$pid"
	wait_until 2 proc_gone "$pid"
	wait "$pid"
	took "$W/a.err" subscribing signal closing
	registry_put "$D" "{\"topic\":\"$D\",\"state\":\"active\",\"source\":\"x\",\"filter\":\".\"}"
	dp-tail --follow "$D" --timeout 2s --trace-states >"$W/out" 2>"$W/b.err" &
	pid=$!
	wait_until 20 grep -q '"to":"error"' "$W/b.err"
	kill -TERM "$pid"
	wait_until 2 proc_gone "$pid"
	wait "$pid"
	took "$W/b.err" error signal closing
}

@test "dp-tail --follow: a reader that leaves while it waits for a topic ends it (0)" {
	registry_topics
	# for a topic not there yet, and with no match at all: | true leaves at once
	for how in "--follow $D" "--follow-match .source==\"nope\""; do
		{
			dp-tail $how --trace-states 2>"$W/err" &
			echo $! >"$W/tail.pid"
			wait $!
			echo $? >"$W/rc"
		} 3>&- | true &
		wait_until 10 test -s "$W/rc"
		[ "$(cat "$W/rc")" = 0 ]
		took "$W/err" subscribing pipe_closed closing
		rm -f "$W/rc" "$W/tail.pid"
	done
}

@test "--follow options are checked before anything runs" {
	run dp-tail --follow dyn.x -t other
	[ "$status" -eq 64 ]
	[[ $output == *"-t, -p and -g cannot be used with them"* ]]
	run dp-tail --follow-match '.x' -e
	[ "$status" -eq 64 ]
	[[ $output == *"--follow-match follows for ever"* ]]
	run dp-tail --follow-match '.x =='
	[ "$status" -eq 64 ]
	run dp-tail --follow 'bad name!'
	[ "$status" -eq 64 ]
	run dp-publish -t x --follow-registry --raw
	[ "$status" -eq 64 ]
	run dp-publish -t x --request-topics
	[ "$status" -eq 64 ]
	[[ $output == *"it needs --topic-expr"* ]]
}

@test "dp-tail --follow behind when its topic is deleted: says from which offset it read nothing, exit 1" {
	create_topic "$SRC"
	serve_start 1
	serve_active 1
	dp-coord request "$D" --source "$SRC" --filter . --wait=20s >/dev/null
	python3 -c 'import json
for i in range(20000): print(json.dumps({"i": i, "pad": "x" * 100}))' |
		dp-publish -t "$SRC" --follow-registry
	mkfifo "$W/fifo"
	# little prefetch, and a pipe nobody reads yet: the reader stays behind
	dp-tail --follow "$D" -X queued.min.messages=100 -X queued.max.messages.kbytes=64 \
		--trace-states >"$W/fifo" 2>"$W/tail.err" &
	pid=$!
	PIDS+=("$pid")
	exec 5<"$W/fifo"
	# reading it before the retire (one that saw it retired first would wait for it)
	wait_until 20 took "$W/tail.err" subscribing SUBSCRIBE_SUCCESS consuming
	dp-coord retire "$D" --wait=20s >/dev/null
	gone() { ! dp-topic list -o names | grep -qx "$D"; }
	wait_until 30 gone
	cat <&5 >"$W/out"
	exec 5<&-
	rc=0
	wait "$pid" || rc=$?
	cat "$W/tail.err"
	# what it did read is whole; what it could not, the status says (1)
	[ "$rc" -eq 1 ]
	n=$(wc -l <"$W/out")
	[ "$n" -lt 20000 ]
	grep -q "dp-tail: dynamic topic '$D' was deleted before it was read to its end: partition 0 from offset $n on was not read" "$W/tail.err"
}
