#!/usr/bin/env bats
# dp-topic against the real broker: every subcommand, every error status,
# idempotent re-runs, and the terminal/pipe output modes.

load helpers/common
bats_require_minimum_version 1.5.0

teardown() {
	blackhole_stop
}

# Topic names as the broker knows them, one per line (kcat, not dp-topic,
# so that a bug in dp-topic's listing cannot hide one elsewhere).  All
# topics are asked for: asking for one by name could auto-create it.
broker_topics() {
	kcat -b "$DP_BROKERS" -L -J 2>/dev/null | jq -r '.topics[].topic'
}

broker_has() {
	broker_topics | grep -qxF "$1"
}

# A plain "! cmd" does not fail a bats test (errexit ignores it); this does.
broker_lacks() {
	! broker_has "$1"
}

broker_partitions() {
	kcat -b "$DP_BROKERS" -L -J 2>/dev/null |
		jq -r --arg t "$1" '.topics[] | select(.topic == $t) | .partitions | length'
}

# The value of one config of a topic as describe reports it ("null" if default).
config_of() {
	dp-topic describe "$1" -o json | jq -r --arg k "$2" '.config[$k]'
}

@test "create: makes the topic with partitions and config, one record per topic" {
	T=$(new_topic)
	run --separate-stderr dp-topic create "$T" -p 3 -c retention.ms=3600000 -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.name, .action, .partitions, .replication_factor, .config["retention.ms"], .error, .status] | @tsv' <<<"$output")" = \
	  "$T	created	3	1	3600000		0" ]
	[ "$(broker_partitions "$T")" = 3 ]
	[ "$(config_of "$T" retention.ms)" = 3600000 ]
}

@test "create: an existing topic exits 80, or 0 as 'exists' with --if-not-exists" {
	T=$(new_topic)
	dp-topic create "$T" -p 2 -o json >/dev/null
	run --separate-stderr dp-topic create "$T" -p 2 -o json
	[ "$status" -eq 80 ]
	[[ $stderr == *"cannot create '$T': topic already exists"* ]]
	[ "$(jq -r '[.action, .status] | @tsv' <<<"$output")" = "failed	80" ]

	run --separate-stderr dp-topic create "$T" -p 5 --if-not-exists -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.action, .partitions, .status] | @tsv' <<<"$output")" = "exists	2	0" ]
	# The existing topic is left alone, and the drift is pointed out.
	[[ $stderr == *"exists with 2 partitions, not 5"* ]]
	[ "$(broker_partitions "$T")" = 2 ]
}

@test "create: invalid names exit 82 and never reach the broker" {
	long=$(printf 'a%.0s' {1..250})
	for bad in "has space" "slash/y" "." ".." "$long" "t_ü"; do
		run --separate-stderr dp-topic create "$bad" -o json
		[ "$status" -eq 82 ]
		[ "$(jq -r .status <<<"$output")" = 82 ]
		[[ $stderr == *"cannot create"* ]]
	done
	# 249 characters is still legal.
	ok=t_$(printf 'b%.0s' {1..247})
	run dp-topic create "$ok" -o json
	[ "$status" -eq 0 ]
	broker_has "$ok"
	dp-topic delete "$ok" -o json >/dev/null
	[ "$(broker_topics | grep -c 'has space')" -eq 0 ]
}

@test "create: an unknown config key exits 78 and creates nothing" {
	T=$(new_topic)
	run --separate-stderr dp-topic create "$T" -c no.such.config=1 -o json
	[ "$status" -eq 78 ]
	[[ $stderr == *"no.such.config"* ]]
	[ "$(jq -r .action <<<"$output")" = failed ]
	broker_lacks "$T"
}

@test "create: a replication factor above the broker count exits 83" {
	T=$(new_topic)
	run --separate-stderr dp-topic create "$T" -r 3 -o json
	[ "$status" -eq 83 ]
	[[ $stderr == *"replication factor of 3"* ]]
	broker_lacks "$T"
}

@test "create --dry-run: the broker validates, nothing is created" {
	T=$(new_topic)
	run --separate-stderr dp-topic create "$T" -p 2 --dry-run -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r .action <<<"$output")" = would-create ]
	# A bad spec is still caught by the broker.
	run --separate-stderr dp-topic create "$T" -r 9 --dry-run -o json
	[ "$status" -eq 83 ]
	broker_lacks "$T"
}

@test "several topics: each is reported; one shared failure code, else 1" {
	A=$(new_topic) B=$(new_topic) C=$(new_topic)
	dp-topic create "$A" -o json >/dev/null
	# exists (80) + invalid (82) + new: the new one is still created.
	run --separate-stderr dp-topic create "$A" "bad name" "$B" -o json
	[ "$status" -eq 1 ]
	[ "$(jq -r '[.name, .status] | @tsv' <<<"$output")" = "$A	80
bad name	82
$B	0" ]
	broker_has "$B"
	# Two failures of the same kind keep their own code.
	run --separate-stderr dp-topic create "$A" "$B" "$C" -o json
	[ "$status" -eq 80 ]
	[ "$(jq -r .action <<<"$output" | tr '\n' ' ')" = "failed failed created " ]
}

@test "create -: a spec file applied twice gives the same topics, exit 0" {
	A=$(new_topic) B=$(new_topic)
	spec=$BATS_TEST_TMPDIR/topics.ndjson
	cat >"$spec" <<EOF
{"name":"$A","partitions":3,"config":{"retention.ms":7200000,"cleanup.policy":"delete"}}

{"name":"$B","replication_factor":1}
EOF
	run --separate-stderr dp-topic create - --if-not-exists -p 2 -o json <"$spec"
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.name, .action, .partitions] | @tsv' <<<"$output")" = "$A	created	3
$B	created	2" ]
	first=$(broker_partitions "$A"),$(broker_partitions "$B")

	run --separate-stderr dp-topic create - --if-not-exists -p 2 -o json <"$spec"
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.name, .action, .partitions] | @tsv' <<<"$output")" = "$A	exists	3
$B	exists	2" ]
	[ "$stderr" = "" ]
	[ "$(broker_partitions "$A"),$(broker_partitions "$B")" = "$first" ]
	[ "$(config_of "$A" retention.ms)" = 7200000 ]

	# Without --if-not-exists the second run says so.
	run --separate-stderr dp-topic create - -o json <"$spec"
	[ "$status" -eq 80 ]
}

@test "create -: one bad spec line exits 65 and creates nothing" {
	A=$(new_topic) B=$(new_topic)
	run --separate-stderr dp-topic create - -o json <<EOF
{"name":"$A","partitions":1}
{"name":"$B","partition":2}
not json
EOF
	[ "$status" -eq 65 ]
	[ "$output" = "" ]
	[[ $stderr == *'line 2: unknown member "partition"'* ]]
	[[ $stderr == *"line 3: invalid JSON"* ]]
	broker_lacks "$A"
	broker_lacks "$B"
}

@test "create -: a spec line over --max-line-bytes is bad, named with its length; nothing is created" {
	A=$(new_topic) B=$(new_topic)
	{
		echo "{\"name\":\"$A\",\"partitions\":1}"
		python3 -c 'print("{\"name\":\"x\",\"config\":{\"pad\":\"" + "x" * 5000 + "\"}}")'
		echo "{\"name\":\"$B\"}"
	} > "$BATS_TEST_TMPDIR/specs"
	run --separate-stderr dp-topic create - --max-line-bytes 4K -o json < "$BATS_TEST_TMPDIR/specs"
	[ "$status" -eq 65 ]
	[ "$output" = "" ]
	[[ $stderr == *"dp-topic: stdin line 2: line of 5032 bytes is longer than --max-line-bytes (4096)"* ]]
	[[ $stderr != *"line 3"* ]]
	broker_lacks "$A"
	broker_lacks "$B"
	run dp-topic create "$A" --max-line-bytes 4K
	[ "$status" -eq 64 ]
	[[ $output == *"--max-line-bytes is only for create -"* ]]
}

@test "list: one record per topic; --pattern matches whole names; --internal" {
	T=$(new_topic)
	dp-topic create "$T" -p 4 -o json >/dev/null
	dp-topic create "${T}_more" -o json >/dev/null
	run --separate-stderr dp-topic list --pattern "$T" -o json
	[ "$status" -eq 0 ]
	[ "$output" = "{\"name\":\"$T\",\"partitions\":4,\"replication_factor\":1,\"internal\":false}" ]

	run dp-topic list --pattern "${T}.*" -o names
	[ "$output" = "$T
${T}_more" ]

	# The stack's readiness probe committed offsets, so __consumer_offsets exists.
	run dp-topic list -o json
	[ "$status" -eq 0 ]
	[ "$(jq -c 'select(.internal)' <<<"$output" | wc -l)" -eq 0 ]
	run dp-topic list --internal -o json
	jq -se 'any(.[]; .name == "__consumer_offsets" and .internal)' <<<"$output" >/dev/null
}

@test "output: a table on a terminal, NDJSON in a pipe, -o overrides both" {
	T=$(new_topic)
	dp-topic create "$T" -p 2 -o json >/dev/null
	run script -qec "dp-topic list --pattern $T" /dev/null
	[ "$status" -eq 0 ]
	[[ ${lines[0]} == "NAME"*"PARTITIONS"*"REPLICATION"*"INTERNAL"* ]]
	[[ ${lines[1]} =~ ^$T\ +2\ +1\ +no ]]
	[[ $output != *"{"* ]]

	run script -qec "dp-topic list --pattern $T -o json" /dev/null
	[[ ${lines[0]} == "{\"name\":\"$T\""* ]]

	run dp-topic list --pattern "$T"
	[ "$output" = "{\"name\":\"$T\",\"partitions\":2,\"replication_factor\":1,\"internal\":false}" ]
	run dp-topic list --pattern "$T" -o table
	[[ ${lines[0]} == NAME* ]]
}

@test "describe: partitions, watermarks and only non-default configs" {
	T=$(new_topic)
	dp-topic create "$T" -p 2 -c retention.ms=600000 -o json >/dev/null
	printf '{"n":%d}\n' 1 2 3 | kcat_produce "$T" -p 1
	run --separate-stderr dp-topic describe "$T" -o json
	[ "$status" -eq 0 ]
	[ "$(jq -c '[.name, .partitions, .replication_factor, .internal]' <<<"$output")" = "[\"$T\",2,1,false]" ]
	[ "$(jq -c '.config' <<<"$output")" = '{"retention.ms":"600000"}' ]
	[ "$(jq -c '.config_source' <<<"$output")" = '{"retention.ms":"dynamic_topic"}' ]
	[ "$(jq -c '[.partition_info[] | [.partition, .low, .high, (.replicas | length), (.isr | length), (.leader >= 0)]]' <<<"$output")" = \
	  '[[0,0,0,1,1,true],[1,0,3,1,1,true]]' ]

	run dp-topic describe "$T" -o table
	[[ $output == *PARTITION*LEADER*REPLICAS*ISR*LOW*HIGH* ]]
	[[ $output == *retention.ms*600000*dynamic_topic* ]]
}

@test "describe: a missing topic exits 81; the others are still described" {
	T=$(new_topic) M=$(new_topic)
	dp-topic create "$T" -o json >/dev/null
	run --separate-stderr dp-topic describe "$T" "$M" -o json
	[ "$status" -eq 81 ]
	[ "$(jq -r '[.name, .status // 0] | @tsv' <<<"$output")" = "$T	0
$M	81" ]
	[[ $stderr == *"cannot describe '$M': topic does not exist"* ]]
	broker_lacks "$M"
}

@test "alter: --set and --delete change only the named keys" {
	T=$(new_topic)
	dp-topic create "$T" -c retention.ms=600000 -c cleanup.policy=compact -o json >/dev/null
	run --separate-stderr dp-topic alter "$T" --set max.message.bytes=200000 --delete cleanup.policy -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.action, (.method | test("^(full|incremental)$")), .set["max.message.bytes"], .delete[0]] | @tsv' <<<"$output")" = \
	  "altered	true	200000	cleanup.policy" ]
	run dp-topic describe "$T" -o json
	[ "$(jq -cS '.config' <<<"$output")" = '{"max.message.bytes":"200000","retention.ms":"600000"}' ]
}

@test "alter: unknown keys and bad values exit 78 and change nothing" {
	T=$(new_topic)
	dp-topic create "$T" -c retention.ms=600000 -o json >/dev/null
	run --separate-stderr dp-topic alter "$T" --set retention.ms=1 --set no.such.key=1 -o json
	[ "$status" -eq 78 ]
	[[ $stderr == *"unknown config key 'no.such.key'"* ]]
	run --separate-stderr dp-topic alter "$T" --delete no.such.key -o json
	[ "$status" -eq 78 ]
	run --separate-stderr dp-topic alter "$T" --set retention.ms=soon -o json
	[ "$status" -eq 78 ]
	[ "$(config_of "$T" retention.ms)" = 600000 ]
}

@test "alter: --dry-run changes nothing; a missing topic exits 81" {
	T=$(new_topic) M=$(new_topic)
	dp-topic create "$T" -o json >/dev/null
	run --separate-stderr dp-topic alter "$T" --set retention.ms=1000 --dry-run -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r .action <<<"$output")" = would-alter ]
	[ "$(config_of "$T" retention.ms)" = null ]
	run --separate-stderr dp-topic alter "$M" --set retention.ms=1000 -o json
	[ "$status" -eq 81 ]
	broker_lacks "$M"
}

@test "add-partitions: grows, is idempotent, never shrinks" {
	T=$(new_topic) M=$(new_topic)
	dp-topic create "$T" -p 2 -o json >/dev/null
	run --separate-stderr dp-topic add-partitions "$T" -p 5 -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.action, .partitions, .previous] | @tsv' <<<"$output")" = "added	5	2" ]
	[ "$(broker_partitions "$T")" = 5 ]
	run --separate-stderr dp-topic add-partitions "$T" -p 5 -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r .action <<<"$output")" = unchanged ]
	run --separate-stderr dp-topic add-partitions "$T" -p 3 -o json
	[ "$status" -eq 82 ]
	[[ $stderr == *"topic has 5 partitions"* ]]
	run --separate-stderr dp-topic add-partitions "$T" -p 9 --dry-run -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r .action <<<"$output")" = would-add ]
	[ "$(broker_partitions "$T")" = 5 ]
	run --separate-stderr dp-topic add-partitions "$M" -p 3 -o json
	[ "$status" -eq 81 ]
	broker_lacks "$M"
}

@test "delete: removes topics; a missing one exits 81, or 0 with --if-exists" {
	T=$(new_topic) M=$(new_topic)
	dp-topic create "$T" -o json >/dev/null
	run --separate-stderr dp-topic delete "$T" -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r .action <<<"$output")" = deleted ]
	wait_until 10 bash -c "! kcat -b '$DP_BROKERS' -L -J | jq -e --arg t '$T' '.topics[] | select(.topic == \$t)' >/dev/null"
	run --separate-stderr dp-topic delete "$M" -o json
	[ "$status" -eq 81 ]
	[[ $stderr == *"cannot delete '$M': topic does not exist"* ]]
	run --separate-stderr dp-topic delete "$M" --if-exists -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.action, .error] | @tsv' <<<"$output")" = "absent	" ]
}

@test "delete --pattern: needs --yes, previews with --dry-run, matches whole names" {
	P=$(uniq_name pat)
	for s in a b; do dp-topic create "${P}_$s" -o json >/dev/null; done
	dp-topic create "x${P}_c" -o json >/dev/null
	run --separate-stderr dp-topic delete --pattern "${P}_.*" -o json
	[ "$status" -eq 64 ]
	[[ $stderr == *"--yes"* ]]
	run --separate-stderr dp-topic delete --pattern "${P}_.*" --dry-run -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.name, .action] | @tsv' <<<"$output")" = "${P}_a	would-delete
${P}_b	would-delete" ]
	broker_has "${P}_a"
	run --separate-stderr dp-topic delete --pattern "${P}_.*" --yes -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r .action <<<"$output" | sort -u)" = deleted ]
	broker_has "x${P}_c"
	run --separate-stderr dp-topic delete --pattern "${P}_.*" --yes -o json
	[ "$status" -eq 81 ]
	run --separate-stderr dp-topic delete --pattern "${P}_.*" --yes --if-exists -o json
	[ "$status" -eq 0 ]
}

@test "offsets: watermarks, committed offset and lag after a group consumed M of N" {
	T=$(new_topic) G=$(uniq_name g)
	dp-topic create "$T" -p 1 -o json >/dev/null
	printf '{"n":%d}\n' 1 2 3 4 5 6 7 8 9 10 | kcat_produce "$T"
	wait_until 10 test "$(kcat_count "$T")" -eq 10
	run --separate-stderr dp-topic offsets "$T" -g "$G" -o json
	[ "$status" -eq 0 ]
	[ "$output" = "{\"topic\":\"$T\",\"partition\":0,\"low\":0,\"high\":10,\"group\":\"$G\",\"committed\":null,\"lag\":10}" ]

	dp-tail -t "$T" -g "$G" --from beginning -n 4 >/dev/null
	run --separate-stderr dp-topic offsets "$T" -g "$G" -o json
	[ "$status" -eq 0 ]
	[ "$output" = "{\"topic\":\"$T\",\"partition\":0,\"low\":0,\"high\":10,\"group\":\"$G\",\"committed\":4,\"lag\":6}" ]

	run --separate-stderr dp-topic offsets "$T" -o json
	[ "$output" = "{\"topic\":\"$T\",\"partition\":0,\"low\":0,\"high\":10}" ]
	run dp-topic offsets "$T" -g "$G" -o table
	[[ ${lines[1]} =~ ^$T\ +0\ +0\ +10\ +4\ +6$ ]]
	run --separate-stderr dp-topic offsets "$(new_topic)" -o json
	[ "$status" -eq 81 ]
}

@test "an unreachable broker exits 69 within --timeout" {
	port=$(free_port)
	start=$SECONDS
	run --separate-stderr dp-topic -b "127.0.0.1:$port" --timeout 1s list
	[ "$status" -eq 69 ]
	[[ $stderr == *"no kafka broker answered within 1s (brokers 127.0.0.1:$port)"* ]]
	run --separate-stderr dp-topic -b "127.0.0.1:$port" --timeout 1s create "$(new_topic)"
	[ "$status" -eq 69 ]
	[ "$output" = "" ]
	((SECONDS - start < 8))
}

@test "usage errors exit 64 and say what is wrong" {
	run --separate-stderr dp-topic
	[ "$status" -eq 64 ]
	[[ $stderr == *"no subcommand"* ]]
	run --separate-stderr dp-topic frobnicate
	[ "$status" -eq 64 ]
	run --separate-stderr dp-topic create t --if-exists
	[ "$status" -eq 64 ]
	[[ $stderr == *"--if-exists cannot be used with create"* ]]
	run --separate-stderr dp-topic alter t
	[ "$status" -eq 64 ]
	run --separate-stderr dp-topic add-partitions t
	[ "$status" -eq 64 ]
	run --separate-stderr dp-topic create t -p 0
	[ "$status" -eq 64 ]
	run --separate-stderr dp-topic create t -p 3x
	[ "$status" -eq 64 ]
	run --separate-stderr dp-topic list --pattern '('
	[ "$status" -eq 64 ]
	run --separate-stderr dp-topic describe t -o names
	[ "$status" -eq 64 ]
	run --separate-stderr dp-topic create - other
	[ "$status" -eq 64 ]
}

@test "property values never reach the terminal" {
	run --separate-stderr dp-topic -X sasl.password=hunter2secret -X no.such.property=hunter2secret list
	[ "$status" -eq 78 ]
	[[ $stderr != *hunter2secret* ]]
	[[ $output != *hunter2secret* ]]
}

@test "--trace-states follows a create through the machine" {
	T=$(new_topic)
	dp-topic create "$T" --if-not-exists --trace-states -o json 2>"$BATS_TEST_TMPDIR/trace" >/dev/null
	run jq -r '[.from, .event, .to] | join(" ")' "$BATS_TEST_TMPDIR/trace"
	[ "$output" = "idle start checking
checking checked connecting
connecting connected requesting
requesting answered reporting
reporting all_ok done" ]
	run dp-topic --dot
	[ "$status" -eq 0 ]
	[[ $output == *'"requesting" -> "reporting" [label="answered"]'* ]]
}

@test "every subcommand runs the one machine --dot draws, once" {
	run dp-topic --dot
	[ "$status" -eq 0 ]
	[ "$(grep -c '^digraph' <<<"$output")" -eq 1 ]
	T=$(new_topic)
	dp-topic create "$T" -o json >/dev/null
	for sub in "describe $T" "offsets $T" "list --pattern $T" "alter $T --set retention.ms=1000" \
		"add-partitions $T -p 2" "delete $T"; do
		dp-topic $sub --trace-states -o json 2>"$BATS_TEST_TMPDIR/trace" >/dev/null
		run jq -r '[.cmd, .from, .event, .to] | join(" ")' "$BATS_TEST_TMPDIR/trace"
		[ "$output" = "dp-topic idle start checking
dp-topic checking checked connecting
dp-topic connecting connected requesting
dp-topic requesting answered reporting
dp-topic reporting all_ok done" ] || { echo "$sub: $output"; false; }
	done
}

@test "every subcommand is in the bash completion and the man page" {
	for s in create list describe alter add-partitions delete offsets; do
		grep -qF -- "$s" "$DP_ROOT/completions/bash/dp-topic"
		grep -qF -- ".Cm $s" "$DP_ROOT/man/dp-topic.1"
	done
}

@test "bash completion offers subcommands and live topic names" {
	T=$(new_topic)
	dp-topic create "$T" -o json >/dev/null
	run bash -c '
		source "$DP_ROOT/completions/bash/dp-topic"
		COMP_WORDS=(dp-topic de); COMP_CWORD=1; _dp_topic; echo "${COMPREPLY[*]}"
		COMP_WORDS=(dp-topic describe "'"${T:0:-3}"'"); COMP_CWORD=2; _dp_topic; echo "${COMPREPLY[*]}"
		COMP_WORDS=(dp-topic -b 127.0.0.1:1 describe ""); COMP_CWORD=4; _dp_topic; echo "none:${COMPREPLY[*]}"'
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "describe delete" ]
	[ "${lines[1]}" = "$T" ]
	[ "${lines[2]}" = "none:" ]
}

@test "a signal ends dp-topic at once while the broker hangs, and while it will not answer a request" {
	blackhole_start
	signal_within 1.5 INT dp-topic -b "127.0.0.1:$BLACKHOLE_PORT" --timeout 30s list --trace-states
	[ "$status" -eq 130 ]
	[[ $stderr == *"interrupted before the cluster answered"* ]]
	[[ $stderr == *"dp-topic: stopped by SIGINT before the end: the cluster did not answer"* ]]
	[[ $stderr == *'"from":"connecting","event":"signal","to":"failed"'* ]]
	# A broker taken for one that predates the admin API never answers the
	# request itself; the signal ends the wait for it too.
	err=$BATS_TEST_TMPDIR/req.err
	dp-topic -X api.version.request=false -X broker.version.fallback=0.9.0 --timeout 30s \
		create "$(new_topic)" --trace-states >/dev/null 2>"$err" &
	pid=$!
	wait_until 10 grep -q '"to":"requesting"' "$err"
	kill -INT "$pid"
	wait_until 1.5 proc_gone "$pid"
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 130 ]
	grep -q '"from":"requesting","event":"no_answer","to":"reporting"' "$err"
	grep -q "dp-topic: stopped by SIGINT before the end: 1 of 1 topic not done" "$err"
}

@test "a request the cluster does not answer fails its topics with 69 after --timeout" {
	T=$(new_topic)
	run --separate-stderr dp-topic -X api.version.request=false -X broker.version.fallback=0.9.0 \
		--timeout 1s create "$T" -o json
	[ "$status" -eq 69 ]
	[ "$(jq -r .error <<<"$output")" = "no answer from the cluster within 1s" ]
	[[ $stderr == *"cannot create '$T': no answer from the cluster within 1s"* ]]
	run dp-topic describe "$T" -o json
	[ "$status" -eq 81 ]
}

@test "a failed write to stdout is exit 74, named once" {
	T=$(new_topic)
	dp-topic create "$T" -o json >/dev/null
	run --separate-stderr bash -c "dp-topic describe '$T' -o json >/dev/full"
	[ "$status" -eq 74 ]
	[ "$(grep -c 'cannot write to stdout' <<<"$stderr")" -eq 1 ]
}
