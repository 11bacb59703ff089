#!/usr/bin/env bats
# dp-publish against the real broker: round trips, routing, bad lines,
# delivery guarantees, and interop with kcat.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/kafka

setup() {
	T=$(new_topic)
	W=$BATS_TEST_TMPDIR
}

teardown() {
	blackhole_stop
}

# states FILE: the transitions traced in FILE, one "from event to" a line.
states() {
	grep "^{" "$1" | jq -r 'select(.cmd == "dp-publish") | "\(.from) \(.event) \(.to)"'
}

# term_mid_publish N [ARGS...]: dp-publish ARGS --report reads N price lines
# from a pipe; once all are acknowledged, 100 more go in and SIGTERM
# follows at once.  The pipe stays open until dp-publish has exited, so the
# signal, not the end of input, is what ends it.  Sets st (its exit status)
# and acked (acknowledgements with an offset); stderr is in $W/err.
term_mid_publish() {
	local n=$1 pid
	shift
	mkfifo "$W/fifo"
	dp-publish "$@" --report < "$W/fifo" > "$W/acks" 2> "$W/err" &
	pid=$!
	exec 5> "$W/fifo"
	gen_prices "$n" >&5
	acks_at_least() { [ "$(wc -l < "$W/acks")" -ge "$1" ]; }
	wait_until 20 acks_at_least "$n"
	gen_prices 100 $((n + 1)) >&5
	kill -TERM "$pid"
	st=0
	wait "$pid" || st=$?
	exec 5>&-
	acked=$(jq -s 'map(select(.offset != null)) | length' "$W/acks")
}

@test "100,000 lines through dp-publish and dp-tail come back as the same multiset" {
	create_topic "$T" 3
	gen_prices 100000 > "$W/in"
	run dp-publish -t "$T" -k .fsym < "$W/in"
	[ "$status" -eq 0 ]
	dp-tail -t "$T" --from beginning --exit > "$W/out"
	[ "$(wc -l < "$W/out")" -eq 100000 ]
	cmp <(sorted "$W/in") <(sorted "$W/out")
}

@test "dp-publish records are read back by kcat with keys from --key" {
	create_topic "$T"
	gen_prices 50 > "$W/in"
	dp-publish -t "$T" --key .fsym < "$W/in"
	kcat -b "$DP_BROKERS" -C -t "$T" -e -q -o beginning -f '%k\t%s\n' > "$W/out"
	[ "$(wc -l < "$W/out")" -eq 50 ]
	cut -f2 "$W/out" | cmp - "$W/in"
	# Every key is the record's own fsym, sent as raw bytes (no quotes).
	while IFS=$'\t' read -r k v; do
		[ "$k" = "$(jq -r .fsym <<<"$v")" ]
	done < "$W/out"
}

@test "kcat -P records are printed by dp-tail" {
	create_topic "$T"
	gen_prices 20 > "$W/in"
	kcat_produce "$T" < "$W/in"
	run dp-tail -t "$T" --from beginning -e
	[ "$status" -eq 0 ]
	[ "$output" = "$(cat "$W/in")" ]
}

@test "an unreachable broker gives exit 69 and a clear message within --timeout" {
	port=$(free_port)
	start=$SECONDS
	run dp-publish -b "127.0.0.1:$port" -t x --timeout 2s <<<'{"a":1}'
	[ "$status" -eq 69 ]
	[ $((SECONDS - start)) -le 10 ]
	[[ $output == *"dp-publish: no kafka broker answered within 2s"* ]]
}

@test "an unknown topic fails fast with 81 and nothing is produced" {
	run dp-publish -t "$T" --timeout 5s <<<'{"a":1}'
	[ "$status" -eq 81 ]
	[[ $output == *"topic '$T' does not exist"* ]]
}

@test "--topic-expr routes records to several topics" {
	for s in BTC ETH SOL; do create_topic "$T.$s"; done
	gen_prices 30 | jq -c 'select(.fsym == "BTC" or .fsym == "ETH" or .fsym == "SOL")' > "$W/in"
	run dp-publish --topic-expr "\"$T.\" + .fsym" < "$W/in"
	[ "$status" -eq 0 ]
	for s in BTC ETH SOL; do
		dp-tail -t "$T.$s" --from beginning -e > "$W/$s"
		[ -s "$W/$s" ]
		jq -c "select(.fsym == \"$s\")" "$W/in" | cmp - "$W/$s"
	done
	# what is no topic name is named for what it is
	printf '{"t":""}\n{"t":7}\n{}\n' > "$W/bad"
	run dp-publish --topic-expr .t --on-error skip < "$W/bad"
	[ "$status" -eq 0 ]
	[[ $output == *"line 1: --topic-expr gave an empty string, not a topic name"* ]]
	[[ $output == *"line 2: --topic-expr gave 7, not a topic name"* ]]
	[[ $output == *"line 3: --topic-expr gave null, not a topic name"* ]]
}

@test "--partition, --header and --timestamp set the record's fields" {
	create_topic "$T" 3
	printf '%s\n' '{"fsym":"BTC","ts":"2024-01-02T03:04:05Z","src":"cc"}' \
		'{"fsym":"ETH","ts":1704164646,"src":"cc"}' \
		'{"fsym":"SOL","ts":1704164647123,"src":null}' > "$W/in"
	run dp-publish -t "$T" -p 2 -H source=.src -H sym=.fsym -H sym=.fsym \
		--timestamp .ts < "$W/in"
	[ "$status" -eq 0 ]
	kcat -b "$DP_BROKERS" -C -t "$T" -e -q -o beginning -f '%p %T %h\n' > "$W/out"
	cat > "$W/want" <<-'OUT'
	2 1704164645000 source=cc,sym=BTC,sym=BTC
	2 1704164646000 source=cc,sym=ETH,sym=ETH
	2 1704164647123 source=NULL,sym=SOL,sym=SOL
	OUT
	diff "$W/want" "$W/out"
}

@test "--on-error fail: lines before the bad one are delivered, none after, exit 65" {
	create_topic "$T"
	gen_prices 10000 > "$W/in"
	sed -i '5000s/.*/{"broken": /' "$W/in"
	run dp-publish -t "$T" --trace-states < "$W/in"
	[ "$status" -eq 65 ]
	[[ $output == *"dp-publish: line 5000: invalid JSON: unexpected end of input at byte 12"* ]]
	dp-tail -t "$T" --from beginning -e > "$W/out"
	head -4999 "$W/in" | cmp - "$W/out"
	# The machine ends in failed, the state whose reason is the exit status.
	grep '^{' <<<"$output" > "$W/trace"
	[ "$(states "$W/trace" | tail -2)" = "publishingFixed bad_line draining
draining aborted failed" ]
}

@test "--on-error skip: bad lines are counted and the rest is delivered" {
	create_topic "$T"
	gen_prices 10000 > "$W/in"
	sed -i -e '5000s/.*/not json/' -e '7000s/$/ x/' "$W/in"
	run dp-publish -t "$T" --on-error skip < "$W/in"
	[ "$status" -eq 0 ]
	[[ $output == *"line 5000: invalid JSON"* ]]
	[[ $output == *"line 7000: invalid JSON: trailing characters"* ]]
	[[ $output == *"2 bad lines skipped"* ]]
	dp-tail -t "$T" --from beginning -e > "$W/out"
	sed -e '5000d' -e '7000d' "$W/in" | cmp - "$W/out"
}

@test "--on-error dlq: the raw bad line goes to the dead-letter topic with its reason" {
	create_topic "$T"
	create_topic "$T.dlq"
	gen_prices 10000 > "$W/in"
	sed -i '5000s/.*/{"price": 1,}/' "$W/in"
	run dp-publish -t "$T" --on-error "dlq=$T.dlq" < "$W/in"
	[ "$status" -eq 0 ]
	[ "$(kcat_count "$T")" -eq 9999 ]
	run kcat -b "$DP_BROKERS" -C -t "$T.dlq" -e -q -o beginning -f '%s|%h\n'
	[ "$output" = "{\"price\": 1,}|dp-error=invalid JSON: expected member name at byte 13,dp-line=5000,dp-topic=$T" ]
}

@test "bad UTF-8 and NUL bytes are named with their line" {
	create_topic "$T"
	printf '{"a":1}\n{"b":"\xff"}\n' > "$W/in"
	run dp-publish -t "$T" < "$W/in"
	[ "$status" -eq 65 ]
	[[ $output == *"line 2: invalid UTF-8 at byte 7"* ]]
	[ "$(kcat_count "$T")" -eq 1 ]
}

@test "--raw sends lines as opaque bytes" {
	create_topic "$T"
	printf 'plain text\n{"not":"checked"\n' > "$W/in"
	run dp-publish -t "$T" --raw < "$W/in"
	[ "$status" -eq 0 ]
	run kcat_payloads "$T"
	[ "$output" = "$(cat "$W/in")" ]
}

@test "--report prints one acknowledgement per record" {
	create_topic "$T" 2
	gen_prices 100 > "$W/in"
	dp-publish -t "$T" -k .fsym --report < "$W/in" > "$W/acks"
	[ "$(wc -l < "$W/acks")" -eq 100 ]
	[ "$(jq -s 'map(.line) | sort | . == [range(1; 101)]' "$W/acks")" = true ]
	[ "$(jq -s "map(select(.topic == \"$T\" and .offset >= 0 and .error == null)) | length" "$W/acks")" -eq 100 ]
}

@test "SIGTERM during a large publish loses nothing that was read, and is 143" {
	create_topic "$T"
	term_mid_publish 20000 -t "$T" --trace-states
	# Stopped before the end of its input: not 0, whatever it delivered.
	[ "$st" -eq 143 ]
	states "$W/err" | grep -qx "publishingFixed signal draining"
	# Every line it took from the pipe is in the topic, in order, once.
	grep -qx "dp-publish: stopped by SIGTERM before the end: $acked lines delivered, 0 read and not delivered, the rest of the input not read" "$W/err"
	[ "$acked" -ge 20000 ]
	dp-tail -t "$T" --from beginning -e > "$W/out"
	{ gen_prices 20000; gen_prices 100 20001; } | head -n "$acked" | cmp - "$W/out"
}

@test "a record on a quiet pipe is sent at once, not after linger.ms" {
	create_topic "$T"
	mkfifo "$W/fifo"
	# A minute of linger: only the flush on a quiet input can send it now.
	dp-publish -t "$T" -X linger.ms=60000 < "$W/fifo" 2> "$W/err" &
	pid=$!
	exec 5> "$W/fifo"
	gen_prices 1 >&5
	has() { [ "$(kcat_count "$T")" -eq "$1" ]; }
	wait_until 10 has 1
	gen_prices 1 2 >&5
	wait_until 10 has 2
	kill -0 "$pid"          # still running: the pipe is open
	exec 5>&-
	wait "$pid"
}

@test "a pause right after a full batch sends it at once too" {
	create_topic "$T"
	mkfifo "$W/fifo"
	# Exactly one batch (1024 lines, 40 KB) waits in the pipe before
	# dp-publish starts, so its first read takes all of it, and the next
	# one waits on a quiet writer.
	exec 5<> "$W/fifo"
	for i in $(seq 1024); do echo "{\"fsym\":\"BTC\",\"seq\":$i}"; done >&5
	dp-publish -t "$T" -k .fsym -X linger.ms=60000 < "$W/fifo" 5>&- 2> "$W/err" &
	pid=$!
	has() { [ "$(kcat_count "$T")" -eq "$1" ]; }
	wait_until 10 has 1024
	kill -0 "$pid"
	exec 5>&-
	wait "$pid"
}

@test "keyed records go over one connection per partition, in order, once" {
	create_topic "$T" 6
	gen_prices 30000 > "$W/in"
	# Some lines without the key: spread over the partitions, still once.
	for i in 1 2 3 4 5 6; do echo "{\"nokey\":$i}"; done >> "$W/in"
	dp-publish -vv -t "$T" -k .fsym < "$W/in" 2> "$W/err"
	grep -q "^dp-publish: 4 producers for '$T'$" "$W/err"
	dp-tail -t "$T" --from beginning -e --envelope > "$W/out"
	[ "$(wc -l < "$W/out")" -eq 30006 ]
	# Nothing lost or doubled, and each partition in input order.
	jq -c '.value' "$W/out" | sorted /dev/stdin > "$W/got"
	sorted "$W/in" | jq -c . | sorted /dev/stdin | diff - "$W/got"
	jq -s -e 'map(select(.value.seq)) | group_by(.partition)
	          | all(map(.value.seq) | . == sort)' "$W/out"
	# A key keeps to one partition; keyless records reach several.
	jq -s -e 'map(select(.key)) | group_by(.key) | all(map(.partition) | unique | length == 1)' "$W/out"
	jq -s -e 'map(select(.key == null) | .partition) | unique | length > 1' "$W/out"
}

@test "keyed, over several connections: SIGTERM loses nothing read, failures are counted" {
	create_topic "$T" 3
	term_mid_publish 30000 -t "$T" -k .fsym
	[ "$st" -eq 143 ]
	grep -q "stopped by SIGTERM before the end: $acked lines delivered, 0 read and not delivered" "$W/err"
	[ "$acked" -ge 30000 ]
	dp-tail -t "$T" --from beginning -e > "$W/out"
	[ "$(wc -l < "$W/out")" -eq "$acked" ]
	{ gen_prices 30000; gen_prices 100 30001; } | head -n "$acked" | sorted /dev/stdin > "$W/want"
	sorted "$W/out" | diff "$W/want" -
	# Refused records come back through every lane and are all counted.
	dp-topic create "$T.small" -p 3 -c max.message.bytes=1000 -o json > /dev/null
	gen_prices 60 > "$W/in"
	run dp-publish -vv -t "$T.small" -k .fsym < "$W/in"
	[ "$status" -eq 75 ]
	[[ $output == *"dp-publish: 3 producers for '$T.small'"* ]]
	[[ $output == *"dp-publish: 60 of 60 records not delivered"* ]]
}

@test "usage errors exit 64 and name the problem" {
	run dp-publish
	[ "$status" -eq 64 ]
	[[ $output == *"no topic"* ]]
	run dp-publish -t a --topic-expr .x
	[ "$status" -eq 64 ]
	run dp-publish -t a --key '.a['
	[ "$status" -eq 64 ]
	[[ $output == *"invalid --key: cannot compile jq expression '.a['"* ]]
	run dp-publish -t a --on-error maybe
	[ "$status" -eq 64 ]
	run dp-publish -t a -p -1
	[ "$status" -eq 64 ]
	run dp-publish -t a --timeout 10parsecs
	[ "$status" -eq 64 ]
}

@test "-X secrets never appear in error messages" {
	run dp-publish -t a -X sasl.password=hunter2 -X ssl.key.password=hunter3 \
		-X bogus.property=1 <<<'{}'
	[ "$status" -eq 78 ]
	[[ $output != *hunter2* && $output != *hunter3* ]]
	[[ $output == *"bogus.property"* ]]
}

@test "--progress prints totals and a rate on stderr, nothing on stdout" {
	create_topic "$T"
	gen_prices 2000 > "$W/in"
	dp-publish -t "$T" --progress < "$W/in" > "$W/out" 2> "$W/err"
	[ ! -s "$W/out" ]
	grep -Eq '^dp-publish: progress: 2000 lines, [0-9]+/s overall$' "$W/err"
}

@test "--key partitions exactly as librdkafka does for kcat -K" {
	create_topic "$T" 5
	create_topic "$T.kcat" 5
	gen_prices 2000 > "$W/in"
	dp-publish -t "$T" -k .fsym < "$W/in"
	jq -r '.fsym + "\t" + (. | tojson)' "$W/in" | kcat_produce "$T.kcat" -K $'\t'
	kcat -b "$DP_BROKERS" -C -t "$T" -e -q -o beginning -f '%k %p\n' | sort -u > "$W/dp"
	kcat -b "$DP_BROKERS" -C -t "$T.kcat" -e -q -o beginning -f '%k %p\n' | sort -u > "$W/kcat"
	[ "$(wc -l < "$W/dp")" -eq 8 ]
	diff "$W/kcat" "$W/dp"
	# Within each partition the records keep their input order.
	for p in 0 1 2 3 4; do
		kcat -b "$DP_BROKERS" -C -t "$T" -p "$p" -e -q -o beginning -f '%s\n' |
			jq -s -e 'map(.seq) | . == sort' > /dev/null
	done
}

@test "jq and big numbers: a key and a header from an integer beyond 2^53 keep its digits" {
	create_topic "$T"
	run --separate-stderr dp-publish -t "$T" -k .id -H 'n=.n|tostring' -H 'both={id,n}' \
		<<< '{"id":288230376151711744,"n":13911860366432393}'
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
	[ "$(kcat_payloads "$T" -f '%k|%h\n')" = '288230376151711744|n=13911860366432393,both={"id":288230376151711744,"n":13911860366432393}' ]
	# A header libjq computes may lose digits: one warning says so.
	run --separate-stderr dp-publish -t "$T" -H 'n=.n + 1' \
		<<< $'{"n":13911860366432393}\n{"n":13911860366432395}'
	[ "$status" -eq 0 ]
	[[ $stderr == *"jq expression '.n + 1' sees the integer 13911860366432393, beyond 2^53"* ]]
	[ "$(grep -c 'beyond 2^53' <<<"$stderr")" -eq 1 ]
}

@test "jq's tostring of an object or array: the same text as jq, big integers kept" {
	create_topic "$T"
	# jq prints numbers, escapes and duplicate keys its own way: 1.10 -> 1.1,
	# 1e2 -> 100, \u00e9 -> the letter, the last "x" only.
	rec='{"a":{"x":1.10,"y":[1e2,"\u00e9",-0],"x":2},"b":{"id":288230376151711744,"s":["x"]}}'
	run --separate-stderr dp-publish -t "$T" -k '.a|tostring' -H 'b=.b|tostring' <<< "$rec"
	[ "$status" -eq 0 ]
	want=$(jq -r '.a|tostring' <<< "$rec")
	[ "$want" = '{"x":2,"y":[100,"é",-0]}' ]
	[ "$(kcat_payloads "$T" -f '%k|%h\n')" = "$want|b={\"id\":288230376151711744,\"s\":[\"x\"]}" ]
}

@test "a record too large for message.max.bytes is a bad line, in keyed runs too" {
	create_topic "$T" 3
	gen_prices 3000 > "$W/in"
	big=$(python3 -c 'print("{\"fsym\":\"BTC\",\"pad\":\"" + "x" * 5000 + "\"}")')
	sed -i "1500s/.*/$big/" "$W/in"
	run dp-publish -t "$T" -k .fsym -X message.max.bytes=4000 --on-error skip < "$W/in"
	[ "$status" -eq 0 ]
	# Said once, with the line and the limit; the check is local, not the broker's.
	[ "$(grep -c 'line 1500' <<<"$output")" -eq 1 ]
	[[ $output == *"line 1500: record of 5026 bytes is over the producer's limit, message.max.bytes=4000"* ]]
	[[ $output != *Broker* ]]
	[[ $output == *"1 bad line skipped"* ]]
	[ "$(kcat_count "$T")" -eq 2999 ]
	T2=$(new_topic)
	create_topic "$T2" 3
	run dp-publish -t "$T2" -k .fsym -X message.max.bytes=4000 < "$W/in"
	[ "$status" -eq 65 ]
	dp-tail -t "$T2" --from beginning -e | jq -s -c 'map(.seq) | sort | . == [range(1; 1500)]' | grep -qx true
}

@test "records that cannot be delivered give exit 75 and their number" {
	# The broker refuses batches larger than the topic allows.
	dp-topic create "$T" -c max.message.bytes=1000 -o json > /dev/null
	gen_prices 50 > "$W/in"
	run dp-publish -t "$T" --report < "$W/in"
	[ "$status" -eq 75 ]
	[[ $output == *"dp-publish: line 1: not delivered to '$T': Broker: Message size too large"* ]]
	[[ $output == *"dp-publish: 50 of 50 records not delivered"* ]]
	[ "$(grep -c '"error":"Broker: Message size too large"' <<<"$output")" -eq 50 ]
}

@test "a jq runtime error names the input line; -F and DP_CONFIG carry properties" {
	create_topic "$T"
	printf '{"a":{"b":1}}\n[1,2]\n' > "$W/in"
	run dp-publish -t "$T" -k '.a.b' < "$W/in"
	[ "$status" -eq 65 ]
	[[ $output == *'dp-publish: line 2: jq error: Cannot index array with string "a"'* ]]
	[ "$(kcat_count "$T")" -eq 1 ]
	# input and inputs would read other records: jq is given one at a time
	for k in input '[inputs] | length | tostring'; do
		run dp-publish -t "$T" -k "$k" <<< '{"n":1}'
		[ "$status" -eq 65 ]
		[[ $output == *'dp-publish: line 1: jq error: input and inputs have nothing to read: each record is given to jq alone'* ]]
	done
	# A properties file names the cluster; -b alone would point nowhere.
	printf '# test cluster\nbootstrap.servers = %s\n' "$DP_BROKERS" > "$W/props"
	echo '{"n":1}' | dp-publish -b 127.0.0.1:1 -F "$W/props" -t "$T"
	echo '{"n":2}' | DP_CONFIG="$W/props" dp-publish -b 127.0.0.1:1 -t "$T"
	[ "$(kcat_count "$T")" -eq 3 ]
	run dp-publish -F "$W/missing" -t "$T" <<<'{}'
	[ "$status" -eq 66 ]
	[[ $output == *"cannot open $W/missing"* ]]
}

@test "SIGTERM while connecting to a broker that never answers ends at once, exit 143" {
	blackhole_start
	signal_within 1.5 TERM dp-publish -b "127.0.0.1:$BLACKHOLE_PORT" -t x --trace-states
	[ "$status" -eq 143 ]
	[ "$SIGNAL_ELAPSED_MS" -lt 1500 ]
	printf '%s\n' "$stderr" | grep '^{' > "$W/trace"
	[ "$(states "$W/trace")" = "idle start connecting
connecting signal done" ]
	[[ $stderr != *"no kafka broker answered"* ]]
}

@test "SIGTERM while a jq program never ends on a line: out in about a second, the lines not sent named, 143" {
	create_topic "$T"
	printf '{"n":1}\n{"n":2}\n{"n":3,"loop":true}\n{"n":4}\n' > "$W/in"
	# The key of line 3 never comes, and libjq cannot be interrupted.
	dp-publish -t "$T" -k 'if .loop then last(range(infinite)) else .n end | tostring' \
		--trace-states < "$W/in" 2> "$W/err" &
	term_when_busy $! 5
	cat "$W/err"
	[ "$st" -eq 143 ]
	((elapsed < 3000))
	grep -q "dp-publish: line 3: jq still works on it 1.*s after the signal: lines 1 to 3 are not sent, nor any read after them" "$W/err"
	grep -qx "dp-publish: stopped by SIGTERM before the end: 0 lines delivered, 3 read and not delivered, the rest of the input not read" "$W/err"
	[ "$(kcat_count "$T")" -eq 0 ]
}

@test "--topic-expr naming a topic that does not exist stops with 81, earlier lines delivered" {
	create_topic "$T"
	printf '{"t":"%s","n":1}\n{"t":"%s.nope","n":2}\n{"t":"%s","n":3}\n' "$T" "$T" "$T" > "$W/in"
	run dp-publish --topic-expr .t --trace-states < "$W/in"
	[ "$status" -eq 81 ]
	[[ $output == *"dp-publish: line 2: topic '$T.nope' does not exist; create it with 'dp-topic create $T.nope'"* ]]
	grep '^{' <<<"$output" > "$W/trace"
	[ "$(states "$W/trace" | tail -2)" = "publishingFixed fatal draining
draining aborted failed" ]
	[ "$(kcat_payloads "$T")" = '{"t":"'"$T"'","n":1}' ]
}

@test "-p beyond the topic's partitions is refused before anything is read" {
	create_topic "$T" 3
	run dp-publish -t "$T" -p 3 <<<'{"a":1}'
	[ "$status" -eq 64 ]
	[[ $output == *"dp-publish: topic '$T' has 3 partitions: no partition 3"* ]]
	[ "$(kcat_count "$T")" -eq 0 ]
}

@test "--max-line-bytes: a longer line is a bad line named with its length and the limit" {
	create_topic "$T"
	create_topic "$T.dlq"
	{ gen_prices 2; python3 -c 'print("{\"pad\":\"" + "x" * 3000 + "\"}")'; gen_prices 2 3; } > "$W/in"
	run dp-publish -t "$T" --max-line-bytes 1K < "$W/in"
	[ "$status" -eq 65 ]
	[[ $output == *"dp-publish: line 3: line of 3010 bytes is longer than --max-line-bytes (1024); it is not kept"* ]]
	[ "$(kcat_count "$T")" -eq 2 ]
	run dp-publish -t "$T" --max-line-bytes 1024 --on-error "dlq=$T.dlq" < "$W/in"
	[ "$status" -eq 0 ]
	[ "$(kcat_count "$T")" -eq 6 ]
	# The rest goes on; the dead letter carries the reason, not the line.
	run kcat -b "$DP_BROKERS" -C -t "$T.dlq" -e -q -o beginning -f '%S|%h\n'
	[ "$output" = "-1|dp-error=line of 3010 bytes is longer than --max-line-bytes (1024); it is not kept,dp-line=3,dp-topic=$T" ]
	run dp-publish -t "$T" --max-line-bytes 1X < "$W/in"
	[ "$status" -eq 64 ]
	[[ $output == *"invalid --max-line-bytes '1X'"* ]]
	# The default takes a line of several MB.
	dp-topic create "$T.big" -c max.message.bytes=4000000 -o json > /dev/null
	python3 -c 'print("{\"pad\":\"" + "x" * 3000000 + "\"}")' |
		dp-publish -t "$T.big" -X message.max.bytes=4000000 -X batch.size=4000000
	[ "$(kcat_count "$T.big")" -eq 1 ]
}

@test "--envelope: timestamps out of range or 0 are bad lines; absent takes the clock" {
	create_topic "$T"
	printf '%s\n' \
		'{"timestamp":1700000000123,"key":"a","value":1}' \
		'{"timestamp":1e300,"key":"b","value":2}' \
		'{"timestamp":0,"key":"c","value":3}' \
		'{"timestamp":-5,"key":"d","value":4}' \
		'{"key":"e","value":5}' > "$W/in"
	run dp-publish -t "$T" --envelope --on-error skip < "$W/in"
	[ "$status" -eq 0 ]
	[[ $output == *"line 2: envelope timestamp 1e300 is not a whole number of milliseconds from 0 to 9223372036854775807"* ]]
	[[ $output == *"line 3: envelope timestamp 0 cannot be produced: librdkafka sends 0 as the current time"* ]]
	[[ $output == *"line 4: envelope timestamp -5 is not"* ]]
	run kcat -b "$DP_BROKERS" -C -t "$T" -e -q -o beginning -f '%k %T\n'
	[ "${lines[0]}" = "a 1700000000123" ]
	[[ ${lines[1]} == "e "* ]]
	[ "${lines[1]#e }" -gt 1700000000123 ]
	[ "${#lines[@]}" -eq 2 ]
	# --timestamp cannot give 0 either: it would become the current time.
	run dp-publish -t "$T" --timestamp .ts <<<'{"ts":"1970-01-01T00:00:00Z"}'
	[ "$status" -eq 65 ]
	[[ $output == *"line 1: --timestamp gave '1970-01-01T00:00:00Z', not RFC 3339 or epoch time after 1970-01-01T00:00:00Z"* ]]
}

@test "a jq program that halts is a bad line for that record; the next records are judged afresh" {
	create_topic "$T"
	# libjq 1.6 freed a halt's message twice when the state was used again
	# (heap corruption, exit 134): every record here reuses the program.
	printf '%s\n' '{"a":3}' '{"a":1}' '{"a":2}' '{"a":3}' '{"a":4}' > "$W/in"
	run --separate-stderr dp-publish -t "$T" --on-error skip \
		-k 'if .a == 3 then halt_error elif .a == 2 then "no\n" | halt_error(1) else .a end' < "$W/in"
	[ "$status" -eq 0 ]
	[[ $stderr == *'line 1: jq program halted: {"a":3}'* ]]
	[[ $stderr == *'line 3: jq program halted: no'* ]]
	[[ $stderr == *'line 4: jq program halted: {"a":3}'* ]]
	[[ $stderr == *"3 bad lines skipped"* ]]
	[ "$(kcat -b "$DP_BROKERS" -C -t "$T" -e -q -o beginning -f '%k\n' | sort | tr '\n' ,)" = "1,4," ]
	run --separate-stderr dp-publish -t "$T" -k 'halt' < "$W/in"
	[ "$status" -eq 65 ]
	[[ $stderr == *"line 1: jq program halted (halt)"* ]]
}
