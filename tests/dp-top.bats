#!/usr/bin/env bats
# dp-top and the status topic (lib/status/status.h, lib/status/top.h): what each
# process publishes about itself, read back as a person or a script sees it.
#
# "test_lib status TOPIC INSTANCE INTERVAL" is a process with a toy machine
# (idle -> working -> done) that publishes its status until SIGTERM.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/kafka

setup() {
	TEST_LIB=${DP_TEST_LIB:-$BATS_TEST_DIRNAME/../build/obj/test_lib}
	[ -x "$TEST_LIB" ] || skip "test_lib not built (run make)"
	W=$BATS_TEST_TMPDIR
	BG_PIDS=()
	TMUX_SOCK=
}

teardown() {
	bg_kill
	blackhole_stop
	[[ -z $TMUX_SOCK ]] || tmux -L "$TMUX_SOCK" kill-server 2>/dev/null || true
}

# publisher TOPIC INSTANCE [INTERVAL]: the toy process in the background
# (its pid in BG_PIDS and $PUB), once dp-top sees it working.
publisher() {
	"$TEST_LIB" status "$1" "$2" "${3:-300ms}" > "$W/pub-$2.out" 2> "$W/pub-$2.err" &
	PUB=$!
	BG_PIDS+=("$PUB")
	wait_until 20 grep -q '^working$' "$W/pub-$2.out"
	wait_until 20 has "$1" '.instances[] | select(.instance == "'"$2"'" and
		.status == "running" and .machines[0].state == "working")'
}

# snapshot TOPIC [dp-top args]: one NDJSON snapshot into $W/snap
snapshot() {
	local topic=$1
	shift
	dp-top --once -o json --status-topic "$topic" "$@" > "$W/snap"
}

# has TOPIC JQ [dp-top args]: a snapshot in which JQ holds
has() {
	local topic=$1 filter=$2
	shift 2
	snapshot "$topic" "$@" && jq -e "$filter" "$W/snap" > /dev/null
}

# states MACHINE: the states docs/system.dot draws for MACHINE, one a line
states() {
	grep -oE "^		\"$1:[A-Za-z_]+\" \[" "$DP_ROOT/docs/system.dot" |
		sed -E "s/^\t\t\"$1://; s/\" \[\$//"
}

@test "dp-top --once -o json over a running pipeline: every actor, each with its state; --dot marks them" {
	export DP_STATUS_TOPIC=$(uniq_name status) DP_REGISTRY=$(uniq_name reg) DP_REQUESTS=$(uniq_name req)
	T=$(new_topic)
	DYN=dyn.$T
	create_topic "$T" 2
	python3 "$DP_ROOT/tests/helpers/ccserver.py" --fixtures "$DP_ROOT/tests/fixtures/cryptocompare" \
		--scenario <(echo '{"routes":{"/data/pricemultifull":[{"file":"saundersconsult__pricemultifull.json"}]}}') \
		--port-file "$W/port" --log "$W/requests" 3>&- &
	BG_PIDS+=($!)
	wait_until 10 test -s "$W/port"
	export DP_CRYPTOCOMPARE_URL=http://127.0.0.1:$(cat "$W/port")
	# The seed's actors: the coordinator, the consumer of the fixed topic,
	# the producer (dp-fetch into dp-publish), an application's reader of a
	# dynamic topic.
	dp-coord serve -g "$(uniq_name g)" --instance coord --status-interval 500ms 2> "$W/coord.err" &
	COORD=$!
	BG_PIDS+=($!)
	dp-sink-pg -t "$T" -g "$(uniq_name sink)" --table "$(uniq_name tb)" --create \
		--instance sink --status-interval 500ms 2> "$W/sink.err" &
	SINK=$!
	BG_PIDS+=($!)
	dp-coord request "$DYN" --source "$T" --filter '.fsym == "BTC"' --wait > /dev/null
	dp-tail --follow "$DYN" --instance app --status-interval 500ms > "$W/app" 2> "$W/app.err" &
	APP=$!
	BG_PIDS+=($!)
	mkfifo "$W/prices"
	dp-publish -t "$T" -k .fsym --follow-registry --instance publish --status-interval 500ms \
		< "$W/prices" 2> "$W/pub.err" &
	BG_PIDS+=($!)
	dp-fetch price --fsyms BTC --tsyms USD --every 1s --instance fetch --status-interval 500ms \
		> "$W/prices" 2> "$W/fetch.err" &
	FETCH=$!
	BG_PIDS+=($!)
	wait_until 30 test -s "$W/app"
	running() {
		has "$DP_STATUS_TOPIC" '[.instances[] | select(.status == "running") | .actor + " " + .key] ==
			["producer dp-fetch/fetch", "producer dp-publish/publish",
			 "coordinator dp-coord/coord", "consumer_fixed dp-sink-pg/sink",
			 "consumer_dynamic dp-tail/app"]'
	}
	wait_until 30 running
	# The counts come from each command's metrics (obs/): the sink wrote
	# rows and knows its lag, Kafka acknowledged the publisher's records.
	wait_until 30 has "$DP_STATUS_TOPIC" '[.instances[] | select(.key == "dp-sink-pg/sink" or
		.key == "dp-publish/publish") | .records_out > 0] == [true, true]'
	jq -e '.instances[] | select(.key == "dp-sink-pg/sink") | .lag_records != null' "$W/snap"
	# Each in a state its machine has (docs/system.dot draws them), since a
	# time, ready, on this host.
	for key in dp-fetch/fetch dp-publish/publish dp-coord/coord dp-sink-pg/sink dp-tail/app; do
		run jq -r --arg k "$key" '.instances[] | select(.key == $k) |
			"\(.machines[0].machine) \(.machines[0].state) \(.machines[0].since | length) \(.host) \(.pid > 0)"' "$W/snap"
		read -r machine state since host pid <<<"$output"
		[ "$machine" = "${key%%/*}" ]
		states "$machine" | grep -qx "$state" || { echo "$key: no state '$state' in $machine"; false; }
		[ "$since" -ge 20 ] && [ "$host" = "$(hostname)" ] && [ "$pid" = true ]
	done
	# --dot: each running process's state marked on its machine's node
	run dp-top --dot
	[ "$status" -eq 0 ]
	printf '%s\n' "$output" | dot -Tsvg > /dev/null
	[ "$(grep -c 'fillcolor=palegreen, label=' <<<"$output")" -ge 4 ]
	for name in fetch publish coord sink app; do
		grep -qE "^		\"dp-[a-z-]+:[A-Za-z_]+\" \[.*fillcolor=palegreen, label=\"[A-Za-z_]+\\\\n$name\"\];\$" \
			<<<"$output" || grep -qE 'label="[A-Za-z_]+\\n[0-9]+ processes"' <<<"$output" ||
			{ echo "no node marked for $name"; false; }
	done
	# A clean end is a last status: the producer's input ends, it stops with 0.
	kill -TERM "$FETCH"
	wait_until 30 has "$DP_STATUS_TOPIC" '[.instances[] | select(.status == "stopped") |
		"\(.key) \(.exit) \(.final)"] == ["dp-fetch/fetch 0 true", "dp-publish/publish 0 true"]'
	# A process killed -9 leaves no last status: gone once it is three of its
	# intervals late, while the others still run.
	kill -KILL "$APP"
	wait_until 30 has "$DP_STATUS_TOPIC" '[.instances[] | {(.key): .status}] | add ==
		{"dp-fetch/fetch": "stopped", "dp-publish/publish": "stopped",
		 "dp-coord/coord": "running", "dp-sink-pg/sink": "running", "dp-tail/app": "gone"}'
	jq -e '.running == 2 and .stopped == 2 and .gone == 1' "$W/snap"
	# The daemons stopped by SIGTERM: stopped, exit 0, in their final state.
	kill -TERM "$SINK" "$COORD"
	wait_until 30 has "$DP_STATUS_TOPIC" '[.instances[] | select(.actor == "coordinator" or
		.actor == "consumer_fixed") | "\(.key) \(.status) \(.exit) \(.machines[0].state)"] ==
		["dp-coord/coord stopped 0 done", "dp-sink-pg/sink stopped 0 done"]'
}

@test "dp-top --once -o json: each process's latest status, running, then stopped with its exit status" {
	T=$(uniq_name status)
	publisher "$T" alpha 300ms
	wait_until 20 has "$T" '.instances[] | select(.key == "test-status/alpha" and
		.status == "running" and .machines[0].state == "working" and .in_per_s > 0)'
	run jq -c '.instances[0] | [.actor, .command, .instance, .pid, .interval_ms,
		.machines[0].machine, .records_in > 0, .ready, .final, .exit]' "$W/snap"
	[ "$output" = "[\"other\",\"test-status\",\"alpha\",$PUB,300,\"test-status\",true,true,false,null]" ]
	jq -e '.running == 1 and .stopped == 0 and .gone == 0 and .topic == "'"$T"'"' "$W/snap"
	# A clean end leaves a last status: stopped, its final state, exit 0.
	kill -TERM "$PUB"
	wait "$PUB"
	run has "$T" '.instances[0] | .status == "stopped" and .final and .exit == 0 and
		.machines[0].state == "done" and .ready == false'
	[ "$status" -eq 0 ]
	jq -e '.running == 0 and .stopped == 1' "$W/snap"
	# The topic was made for it, compacted: one record per process stays.
	run dp-topic describe "$T" -o json
	[[ $output == *'"cleanup.policy":"compact"'* ]]
}

@test "dp-top: a process that stops publishing without a last status is gone after --gone-after" {
	T=$(uniq_name status)
	publisher "$T" beta 200ms
	publisher "$T" gamma 200ms
	kill -KILL "${BG_PIDS[0]}"
	wait_until 20 has "$T" '[.instances[] | {(.instance): .status}] | add ==
		{"beta": "gone", "gamma": "running"}' --gone-after 1s
	jq -e '.running == 1 and .gone == 1' "$W/snap"
	# The gone one is still there to see until --forget-after
	run has "$T" '[.instances[].instance] == ["gamma"]' --gone-after 1s --forget-after 1ms
	[ "$status" -eq 0 ]
}

@test "dp-top --once before anything published: an empty snapshot, exit 0" {
	T=$(uniq_name nostatus)
	run dp-top --once -o json --status-topic "$T"
	[ "$status" -eq 0 ]
	[ "$(jq -c '[.topic, .running, .instances]' <<<"$output")" = "[\"$T\",0,[]]" ]
	run dp-top --once -o table --status-topic "$T"
	[ "$status" -eq 0 ]
	[[ ${lines[0]} == "$T at "*": no status topic '$T' yet"* ]]
	# $DP_STATUS_TOPIC names the topic when --status-topic does not
	DP_STATUS_TOPIC=$T run dp-top --once
	[ "$status" -eq 0 ]
	[[ $output == *"\"topic\":\"$T\""* ]]
}

@test "dp-top -o json: a snapshot every --delay; a topic made later is read; a closed pipe or a signal ends it with 0" {
	T=$(uniq_name status)
	dp-top -o json -d 200ms --status-topic "$T" > "$W/live" 2> "$W/live.err" &
	TOP=$!
	BG_PIDS+=("$TOP")
	wait_until 20 grep -q '"running":0' "$W/live"
	publisher "$T" delta 200ms
	wait_until 20 grep -q '"instance":"delta".*"state":"working"' "$W/live"
	kill -TERM "$TOP"
	st=0
	wait "$TOP" || st=$?
	[ "$st" -eq 0 ]
	(($(wc -l < "$W/live") >= 3))
	jq -e 'has("instances")' "$W/live" > /dev/null
	# The reader leaves: dp-top ends at once, quietly
	run bash -c "dp-top -o json -d 100ms --status-topic '$T' | head -n 2; echo \"\${PIPESTATUS[0]}\""
	[ "${lines[2]}" = 0 ]
	[ "${#lines[@]}" -eq 3 ]
}

@test "dp-top on a terminal: a table refreshing in place, grouped by actor; q quits and gives the screen back" {
	command -v tmux > /dev/null || skip "tmux is not installed (scripts/deps installs it)"
	T=$(uniq_name status)
	publisher "$T" epsilon 200ms
	# A real actor beside the toy: a reader of a dynamic topic, waiting for its registry.
	dp-tail --follow "dyn.$T" --registry "$(uniq_name reg)" --status-topic "$T" --instance reader \
		--status-interval 200ms > /dev/null 2> "$W/reader.err" &
	BG_PIDS+=($!)
	TMUX_SOCK=dp-top-$$-$BATS_TEST_NUMBER
	tmux -L "$TMUX_SOCK" -f /dev/null new-session -d -x 150 -y 20 \
		"env DP_BROKERS='$DP_BROKERS' dp-top --status-topic '$T' -d 200ms; echo \"EXIT=\$?\"; sleep 60"
	screen() { tmux -L "$TMUX_SOCK" capture-pane -p > "$W/screen"; }
	shows() { screen && grep -qE "$1" "$W/screen"; }
	wait_until 20 shows '^Other +test-status +epsilon +running +working +[0-9]+s +[0-9.]+ +[0-9.]+'
	wait_until 20 shows '^Consumer for dynamic topics +dp-tail +reader +running +subscribing +[0-9]+s '
	grep -qE "^$T at .*: 2 running, 0 stopped, 0 gone  \(q quits\)$" "$W/screen"
	grep -qE '^ACTOR +COMMAND +INSTANCE +STATUS +STATE +SINCE +IN/S +OUT/S +LAG +DATA AGE +READY$' "$W/screen"
	# grouped as the seed's actors: the header, the consumer of dynamic topics, then the others
	[ "$(grep -oE '^(ACTOR|Consumer for dynamic topics|Other) ' "$W/screen" | tr -d ' ' | paste -sd,)" = \
		ACTOR,Consumerfordynamictopics,Other ]
	# It refreshes: the process stops, and the same screen says so.
	kill -TERM "$PUB"
	wait "$PUB"
	wait_until 20 shows '^Other +test-status +epsilon +stopped \(exit 0\) +done'
	[ "$(grep -c ACTOR "$W/screen")" -eq 1 ]
	tmux -L "$TMUX_SOCK" send-keys q
	wait_until 10 shows '^EXIT=0$'
	! grep -q ACTOR "$W/screen"
}

@test "dp-top: no broker is 69 with the reason; a signal while it waits for one ends a live view with 0" {
	run dp-top --once -b 127.0.0.1:1 --timeout 1s
	[ "$status" -eq 69 ]
	[[ $output == *"dp-top: no kafka broker answered within 1s"* ]]
	blackhole_start
	signal_within 3 TERM dp-top -o json -b "127.0.0.1:$BLACKHOLE_PORT" --trace-states
	[ "$status" -eq 0 ]
	[[ $stderr == *'"from":"idle","event":"start","to":"subscribing"'* ]]
	[[ $stderr == *'"from":"subscribing","event":"signal","to":"done"'* ]]
}

@test "dp-top: a status topic deleted under a live view is 81; a stdout that fails is 74" {
	T=$(uniq_name status)
	publisher "$T" zeta 200ms
	kill -TERM "$PUB"
	wait "$PUB"
	dp-top -o json -d 200ms --status-topic "$T" > "$W/live" 2> "$W/live.err" &
	TOP=$!
	BG_PIDS+=("$TOP")
	wait_until 20 grep -q '"stopped":1' "$W/live"
	dp-topic delete "$T" -o json > /dev/null
	wait_until 30 proc_gone "$TOP"
	st=0
	wait "$TOP" || st=$?
	[ "$st" -eq 81 ]
	grep -q "dp-top: cannot read status topic '$T': .*topic does not exist" "$W/live.err"
	run bash -c "dp-top --once -o json --status-topic '$T' > /dev/full"
	[ "$status" -eq 74 ]
	[[ $output == *"dp-top: cannot write to stdout"* ]]
}

@test "dp-top: options are checked before anything runs" {
	run dp-top --dot -o json
	[ "$status" -eq 64 ]
	[[ $output == *"--dot draws the system diagram: it takes no --output"* ]]
	run dp-top --delay 10ms
	[ "$status" -eq 64 ]
	[[ $output == *"invalid --delay: at least 100ms"* ]]
	run dp-top --status-topic 'a b'
	[ "$status" -eq 64 ]
	[[ $output == *"invalid --status-topic 'a b'"* ]]
	DP_STATUS_TOPIC='a b' run dp-top
	[ "$status" -eq 64 ]
	[[ $output == *"invalid \$DP_STATUS_TOPIC 'a b'"* ]]
}

@test "dp-top --dot: the system diagram with its own machine, the counts in its label" {
	T=$(uniq_name status)
	publisher "$T" eta 200ms
	run dp-top --dot --status-topic "$T"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = 'digraph "dp-top" {' ]
	printf '%s\n' "$output" | dot -Tsvg > /dev/null
	[[ $output == *"subgraph cluster_self {"* ]]
	[[ $output == *$'\t"showing" [label="showing", style="rounded,filled,bold"'* ]]
	[[ $output == *"$T at "*": 1 running, 0 stopped, 0 gone"* ]]
	# every actor of docs/system.dot is there
	[ "$(grep -c '^	subgraph cluster_[0-9]' <<<"$output")" -eq \
		"$(grep -c '^	subgraph cluster_' "$DP_ROOT/docs/system.dot")" ]
}

@test "dp-coord run and the dp-tail it keeps per dynamic topic: each publishes its own status (\$DP_STATUS_TOPIC is inherited)" {
	export DP_STATUS_TOPIC=$(uniq_name status) DP_REGISTRY=$(uniq_name reg) DP_REQUESTS=$(uniq_name req)
	T=$(new_topic)
	create_topic "$T" 1
	dp-coord serve -g "$(uniq_name g)" --instance coord 2> "$W/coord.err" &
	BG_PIDS+=($!)
	dp-coord request "dyn.$T" --source "$T" --filter . --wait > /dev/null
	dp-coord run --instance runner --status-interval 500ms -- \
		dp-tail --follow {} --status-interval 500ms > /dev/null 2> "$W/run.err" &
	RUN=$!
	BG_PIDS+=($!)
	children() {
		has "$DP_STATUS_TOPIC" '[.instances[] | select(.command == "dp-tail" and .status == "running" and
			.machines[0].state == "consuming" and .pid != '"$RUN"')] | length == 1' &&
		has "$DP_STATUS_TOPIC" '.instances[] | select(.key == "dp-coord/runner" and
			.actor == "coordinator" and .status == "running" and .pid == '"$RUN"')'
	}
	wait_until 30 children
	child=$(jq -r '.instances[] | select(.command == "dp-tail") | "\(.actor) \(.instance) \(.pid)"' "$W/snap")
	read -r actor instance pid <<<"$child"
	[ "$actor" = consumer_dynamic ] && [ "$instance" = "$(hostname):$pid" ]
	# Retired: the child reads its topic to its end and ends by itself, 0.
	dp-coord retire "dyn.$T" --wait > /dev/null
	wait_until 30 has "$DP_STATUS_TOPIC" '.instances[] | select(.command == "dp-tail" and
		.pid == '"$pid"' and .status == "stopped" and .exit == 0)'
	kill -TERM "$RUN"
	wait_until 30 has "$DP_STATUS_TOPIC" '.instances[] | select(.key == "dp-coord/runner" and
		.status == "stopped" and .exit == 0)'
}

@test "dp-top: records from elsewhere in the status topic: not objects are skipped and said, a clock ahead is as far off as one behind, control characters never reach the terminal" {
	T=$(uniq_name status)
	create_topic "$T"
	now=$(date -u +%FT%T.000Z)
	{
		printf 'a/1\t[1,2,3]\n'
		printf 'a/2\t5\n'
		printf 'a/3\tnull\n'
		printf 'a/4\t"text"\n'
		printf 'x/ahead\t{"command":"dp-tail","instance":"ahead","time":"%s","interval_ms":5000}\n' \
			"$(date -u -d '+5 sec' +%FT%T.000Z)"
		printf 'x/far\t{"command":"dp-tail","instance":"far","time":"%s","interval_ms":5000}\n' \
			"$(date -u -d '+2 hour' +%FT%T.000Z)"
		printf 'x/esc\t{"command":"\\u001b[2Jevil","instance":"esc\\u0007","time":"%s","interval_ms":60000}\n' "$now"
	} | kcat -P -b "$DP_BROKERS" -t "$T" -K $'\t'
	run --separate-stderr dp-top --once -o json --status-topic "$T" --forget-after 0
	[ "$status" -eq 0 ]
	[ "$(grep -c 'skipped: not a status' <<<"$stderr")" -eq 4 ]
	jq -e '[.instances[] | {(.instance): .status}] | add ==
		{"ahead": "running", "far": "gone", "esc\u0007": "running"}' <<<"$output"
	jq -e '.instances[] | select(.instance == "ahead") | .age_ms == 0' <<<"$output"
	run --separate-stderr dp-top --once -o table --status-topic "$T"
	[ "$status" -eq 0 ]
	! LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' <<<"$output"
	[[ $output == *"?[2Jevil"* && $output == *"esc?"* ]]
}

@test "--status-topic that is a topic of the data is a usage error (64), in every command that has both" {
	for cmd in "dp-publish -t same" "dp-tail -t other -t same -e" "dp-sink-pg -t same -g g --table t -e"; do
		run --separate-stderr $cmd --status-topic same < /dev/null
		[ "$status" -eq 64 ] || { echo "$cmd: $status"; false; }
		[[ $stderr == *"--status-topic 'same' is a topic of the data"* ]]
	done
	run --separate-stderr dp-coord serve --requests reqs --status-topic reqs
	[ "$status" -eq 64 ]
}
