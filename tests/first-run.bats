#!/usr/bin/env bats
# A new user's first commands: make demo (scripts/demo), the examples of
# README.md in order, scripts/replay, and make check (scripts/check) next
# to a stack the user keeps running.
#
# The demo and the README use the suite's Kafka and PostgreSQL: with
# DP_TEST_BROKERS and DP_TEST_PG set, their `scripts/stack up` starts
# nothing and prints those.  The check tests start stacks of their own.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/kafka

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-180}

setup_file() {
	# One replay server for the file: the README goes on from the demo.
	export DP_REPLAY_DIR=$BATS_FILE_TMPDIR/replay
}

teardown_file() {
	"$DP_ROOT/scripts/replay" down 2>/dev/null || true
}

setup() {
	W=$BATS_TEST_TMPDIR
	OWN_STACK=
}

teardown() {
	if [[ -n $OWN_STACK ]]; then
		DP_STACK_DIR=$OWN_STACK DP_TEST_BROKERS= DP_TEST_PG= "$DP_ROOT/scripts/stack" down || true
	fi
}

# Run CMD as a new user would on the suite's stack.
# DP_DEMO_LIVE=0: the replay even where the live API answers, so that the
# data is the recorded one.
on_test_stack() {
	DP_TEST_BROKERS=$DP_BROKERS DP_TEST_PG=$DP_PG DP_DEMO_LIVE=0 "$@"
}

# ---- make demo -------------------------------------------------------------

@test "make demo: every step works, exit 0, plain text when not on a terminal" {
	run on_test_stack "$DP_ROOT/scripts/demo" </dev/null
	[ "$status" -eq 0 ]
	[[ $output != *$'\033'* ]]
	# Its steps' output, and the hint to go on by hand.
	[[ $output == *"fsym | tsym | rows |"*"ETH  | USD  |"* ]]                  # psql: the table
	[[ $output == *'"type":"price"'*'"fsym":"BTC","tsym":"USD"'* ]]  # the application
	[[ $output != *'"fsym":"ETH"'* ]]
	[[ $output == *"export PATH=\"$DP_BIN:\$PATH\""* ]]
	[[ $output == *"export DP_BROKERS=$DP_BROKERS"* ]]
	[[ $output == *"export DP_CRYPTOCOMPARE_URL=http://127.0.0.1:"* ]]
	[[ $output == *"scripts/stack down"*"scripts/replay down"* ]]
	# The replay server it used is still there for the user.
	run "$DP_ROOT/scripts/replay" status
	[ "$status" -eq 0 ]
	[ "$(kcat_count demo.prices)" -ge 2 ]
}

@test "make demo on a terminal: bold headings" {
	command -v script >/dev/null || skip "script(1) is not installed"
	export DP_TEST_BROKERS=$DP_BROKERS DP_TEST_PG=$DP_PG DP_DEMO_LIVE=0
	run env TERM=xterm script -qec "$DP_ROOT/scripts/demo" /dev/null </dev/null
	[ "$status" -eq 0 ]
	[[ $output == *$'\033[1m== dp-topic create demo.prices'* ]]
	run env TERM=xterm NO_COLOR=1 script -qec "$DP_ROOT/scripts/demo" /dev/null </dev/null
	[ "$status" -eq 0 ]
	[[ $output != *$'\033[1m'* ]]
}

@test "make demo fails with a hint when a step fails" {
	# A broker name that does not resolve: the first Kafka step fails at once.
	run env DP_TEST_BROKERS=no-such-broker.invalid:9092 DP_TEST_PG=$DP_PG DP_DEMO_LIVE=0 \
		"$DP_ROOT/scripts/demo" </dev/null
	[ "$status" -eq 69 ]
	[[ $output == *"demo: failed (exit status 69)"*"scripts/stack down"* ]]
}

# ---- scripts/replay --------------------------------------------------------

@test "scripts/replay: up starts once, dp-fetch reaches it, down stops it" {
	export DP_REPLAY_DIR=$W/replay
	run --separate-stderr "$DP_ROOT/scripts/replay" up
	[ "$status" -eq 0 ]
	[[ $output =~ ^export\ DP_CRYPTOCOMPARE_URL=http://127\.0\.0\.1:[0-9]+$ ]]
	first=$output
	pid=$(cat "$DP_REPLAY_DIR/server.pid")
	run --separate-stderr "$DP_ROOT/scripts/replay" up
	[ "$output" = "$first" ]
	[[ $stderr == *"already running (pid $pid)"* ]]
	eval "$first"
	run dp-fetch price --fsyms BTC,ETH --tsyms USD
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	[[ ${lines[0]} == *'"fsym":"BTC","tsym":"USD"'* ]]
	run dp-fetch ohlcv --fsym BTC --tsym USD --interval hour
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 10 ]   # the newest of the 11 was still open
	run "$DP_ROOT/scripts/replay" down
	[ "$status" -eq 0 ]
	proc_gone "$pid"
	[ ! -e "$DP_REPLAY_DIR" ]
	run "$DP_ROOT/scripts/replay" status
	[ "$status" -eq 3 ]
}

# ---- README.md -------------------------------------------------------------

@test "README.md: the sh run blocks work as written, in order, on the demo's stack, and leave nothing in the checkout" {
	# A copy of the tree as a user has it, with this run's binaries in bin/.
	mkdir "$W/tree"
	for f in "$DP_ROOT"/*; do
		[[ ${f##*/} == bin ]] || ln -s "$f" "$W/tree/${f##*/}"
	done
	ln -s "$DP_BIN" "$W/tree/bin"
	python3 "$DP_ROOT/tests/helpers/readme_script.py" "$DP_ROOT/README.md" >"$W/readme.sh"
	# What a user has on PATH: the system, not dp.
	cd "$W/tree"
	mkdir "$W/tmp"
	run on_test_stack env PATH=/usr/local/bin:/usr/bin:/bin TMPDIR="$W/tmp" bash "$W/readme.sh"
	echo "$output"
	[ "$status" -eq 0 ]
	# Nothing was left in the checkout: it holds what it held.
	[ -z "$(find "$W/tree" -mindepth 1 -maxdepth 1 ! -type l)" ]
	# What the examples promise, in the scratch directory they ran in.
	ex=$(dirname "$(find "$W/tmp" -name btc.state)")
	[[ $output == *90176.2230825884* ]]                  # jq .price
	[ ! -e "$ex/btc.spool" ]                             # published, then removed
	[ -s "$ex/btc.state" ]
	[ "$(kcat_count candles)" -ge 10 ]
	[ "$(kcat_count prices.BTC)" -ge 1 ]
	[ "$(kcat_count prices.ETH)" -ge 1 ]
	run kcat_payloads prices.dlq
	[[ $output == *'{"fsym": "BTC", "price": 9'* ]]
	# Every record of prices is in prices.copy, key and value alike (the
	# suite may run on a stack that has seen these examples before).
	kcat_payloads prices -f '%k %s\n' | sort -u >"$W/prices"
	kcat_payloads prices.copy -f '%k %s\n' | sort -u >"$W/copy"
	[ -s "$W/prices" ]
	[ -z "$(comm -23 "$W/prices" "$W/copy")" ]
}

@test "readme_script.py: only sh run blocks, at their own line numbers" {
	cat >"$W/doc.md" <<-'EOF'
	# title
	```sh
	echo prose
	```
	```sh run
	echo one
	false
	```
	EOF
	run python3 "$DP_ROOT/tests/helpers/readme_script.py" "$W/doc.md"
	[ "$status" -eq 0 ]
	python3 "$DP_ROOT/tests/helpers/readme_script.py" "$W/doc.md" >"$W/doc.sh"
	run bash "$W/doc.sh"
	[ "$status" -eq 1 ]
	[ "$output" = "one
doc.md:7: exit status 1" ]
	printf '# title\n```sh\necho prose\n```\n' >"$W/none.md"
	run python3 "$DP_ROOT/tests/helpers/readme_script.py" "$W/none.md"
	[ "$status" -eq 1 ]
	[[ $output == *"no runnable block"* ]]
}

# ---- make check next to a stack it did not start ---------------------------

# A bats file for scripts/check to run: it passes when the suite runs on
# the brokers in $WANT_BROKERS (empty: any) and Kafka answers.
# (No line of this file may start with the test keyword: bats would take
# it for a test of this file.)
inner_suite() {
	{
		printf 'load %q\n' "$DP_ROOT/tests/helpers/common"
		printf '%s "inner" {\n' @test
		printf '\t[[ -z ${WANT_BROKERS:-} || $DP_BROKERS == "$WANT_BROKERS" ]]\n'
		printf '\t%q status >%q\n' "$DP_ROOT/scripts/stack" "$W/inner.status"
		printf '\tdp-topic list -o json >/dev/null\n}\n'
	} >"$W/inner.bats"
}

@test "make check leaves running a stack it did not start (DP_STACK_DIR exported)" {
	OWN_STACK=${TMPDIR:-/tmp}/dp-firstrun-$BATS_ROOT_PID-$BATS_TEST_NUMBER
	export DP_STACK_DIR=$OWN_STACK
	unset DP_TEST_BROKERS DP_TEST_PG DP_KEEP_STACK
	# The stack `make demo` would leave: Kafka and PostgreSQL of its own.
	env_lines=$("$DP_ROOT/scripts/stack" up)
	kpid=$(cat "$OWN_STACK/kafka.pid")
	ppid=$(cat "$OWN_STACK/pg.pid")
	brokers=$(sed -n 's/^export DP_BROKERS=//p' <<<"$env_lines")
	inner_suite
	run env WANT_BROKERS="$brokers" "$DP_ROOT/scripts/check" "$W/inner.bats"
	[ "$status" -eq 0 ]
	[[ ${lines[-1]} == "1 passed, 0 failed, 0 skipped" ]]
	said=$output
	# Still up: the same processes, and Kafka answers.
	run "$DP_ROOT/scripts/stack" status
	[ "$status" -eq 0 ]
	[[ $output == *"kafka: running pid $kpid "* ]]
	[[ $output == *"postgres: running pid $ppid "* ]]
	dp-topic list -b "$brokers" -o json >/dev/null
	[[ $said == *"stack: leaving running what this run did not start"* ]]
}

@test "make check stops what it started, and only that" {
	OWN_STACK=${TMPDIR:-/tmp}/dp-firstrun-$BATS_ROOT_PID-$BATS_TEST_NUMBER
	export DP_STACK_DIR=$OWN_STACK
	unset DP_TEST_PG DP_KEEP_STACK
	# Kafka is someone else's (the suite's); PostgreSQL is started by check.
	export DP_TEST_BROKERS=$DP_BROKERS
	inner_suite
	run "$DP_ROOT/scripts/check" "$W/inner.bats"
	[ "$status" -eq 0 ]
	[[ ${lines[-1]} == "1 passed, 0 failed, 0 skipped" ]]
	ppid=$(sed -n 's/^postgres: running pid \([0-9]*\) .*/\1/p' "$W/inner.status")
	[[ $ppid =~ ^[0-9]+$ ]]
	proc_gone "$ppid"
	[ ! -e "$OWN_STACK" ]
	# The Kafka it did not start still answers.
	dp-topic list -o json >/dev/null
}
