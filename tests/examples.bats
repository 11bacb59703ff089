#!/usr/bin/env bats
# examples/: the pipeline with cron (cron-prices.sh, pipeline.crontab) and
# with systemd units, run for real against the suite's Kafka and PostgreSQL
# and the replay server.  Paths, the topic and the schedule are the only
# things rewritten (/usr/local/bin to the tree's bin/, "prices" to a topic of
# the test's own, --every 1m to 1s, and --tsyms USD,EUR to USD: the replay
# has no EUR prices, and a pair missing from the answer is dp-fetch's exit 1).

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/kafka

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-120}
EX=$DP_ROOT/examples

setup() {
	W=$BATS_TEST_TMPDIR
	T=$(new_topic)
	BG_PIDS=()
	UNIT_GROUPS=()
	export DP_REGISTRY=$(uniq_name reg) DP_REQUESTS=$(uniq_name req)
	export DP_REPLAY_DIR=$W/replay
	eval "$("$DP_ROOT/scripts/replay" up 2>/dev/null)"
	export DP_FETCH_DIR=$W/state
}

teardown() {
	local p
	# A unit's whole process group, as systemd's KillMode=control-group
	for p in "${UNIT_GROUPS[@]}"; do
		kill -KILL -- "-$p" 2>/dev/null || true
	done
	bg_kill
	"$DP_ROOT/scripts/replay" down 2>/dev/null || true
}

# coord: a coordinator for this test's registry, in the background
coord() {
	dp-coord serve -g "$(uniq_name g)" 2>> "$W/coord.err" &
	BG_PIDS+=($!)
}

# The unit's ExecStart as argv, NUL-separated, for instance $2, with the
# test's rewrites.
exec_start() {
	python3 - "$1" "${2:-}" "$DP_BIN" "$EX" "$T" <<'PY'
import shlex, sys
unit, inst, bindir, ex, topic = sys.argv[1:]
text = open(unit).read().replace("\\\n", " ")
line = next(l for l in text.splitlines() if l.startswith("ExecStart="))
cmd = line[len("ExecStart="):].replace("%i", inst)
cmd = cmd.replace("/usr/local/bin/", bindir + "/").replace("/usr/local/share/dp/examples", ex)
cmd = cmd.replace("-t prices", "-t " + topic).replace("--every 1m", "--every 1s")
cmd = cmd.replace("--tsyms USD,EUR", "--tsyms USD")
sys.stdout.write("\0".join(shlex.split(cmd)) + "\0")
PY
}

# unit_bg UNIT [INSTANCE]: run its ExecStart in the background in a
# process group of its own, as systemd's cgroup (its PID, the group's, in
# UNIT_PID), stdout to $W/UNIT.out, stderr to $W/UNIT.err
unit_bg() {
	local argv name=${1##*/}
	mapfile -d '' argv < <(exec_start "$@")
	# no job control here: setsid makes the session without forking
	setsid "${argv[@]}" > "$W/$name.out" 2> "$W/$name.err" &
	UNIT_PID=$!
	BG_PIDS+=("$UNIT_PID")
	UNIT_GROUPS+=("$UNIT_PID")
}

# stop_unit PID: SIGTERM to its whole group, as `systemctl stop`; sets st
# to its exit status
stop_unit() {
	kill -TERM -- "-$1"
	st=0
	wait "$1" || st=$?
}

@test "examples/cron-prices.sh: prices into the topic and the dynamic topics cut from it" {
	create_topic "$T"
	coord
	run dp-coord request "dyn.$T" --source "$T" --filter '.fsym == "BTC"' --wait
	[ "$status" -eq 0 ]
	run --separate-stderr "$EX/cron-prices.sh" BTC,ETH USD "$T"
	[ "$status" -eq 0 ]
	[ "$(kcat_count "$T")" -eq 2 ]
	[ "$(kcat_payloads "dyn.$T" | jq -r .fsym)" = BTC ]
	# crontab's sink line: what arrived since the last run, then exit
	run --separate-stderr dp-sink-pg -t "$T" -g "$(uniq_name g)" --create -e
	[ "$status" -eq 0 ]
	[ "$(psql_dp -c "select string_agg(fsym, ',' order by fsym) from \"$T\"")" = BTC,ETH ]
	psql_dp -c "drop table \"$T\""
}

@test "examples/cron-prices.sh: a failure on either side is its exit status; a busy lock is 75" {
	run --separate-stderr "$EX/cron-prices.sh" BTC USD "$T"       # no such topic
	[ "$status" -eq 69 ]
	[[ $stderr == *"dp-publish: topic '$T' does not exist"* ]]
	[[ $stderr == *"cron-prices.sh: publish 69"* ]]
	create_topic "$T"
	# nothing listens there: dp-fetch fails, and so does the script
	DP_FETCH_ARGS="--max-retries 0 --base-url http://127.0.0.1:$(free_port)" \
		run --separate-stderr "$EX/cron-prices.sh" BTC USD "$T"
	[ "$status" -eq 69 ]
	[[ $stderr == *"cron-prices.sh: fetch $status"* ]]
	mkdir -p "$DP_FETCH_DIR"
	exec 8> "$DP_FETCH_DIR/prices-$T.lock"
	flock 8
	run --separate-stderr "$EX/cron-prices.sh" BTC USD "$T"
	exec 8>&-
	[ "$status" -eq 75 ]
	[[ $stderr == *"$T: the last run is still busy"* ]]
	run "$EX/cron-prices.sh" BTC
	[ "$status" -eq 64 ]
}

@test "examples/systemd: systemd-analyze verify finds nothing to say about the units" {
	command -v systemd-analyze > /dev/null || skip "systemd-analyze is not installed"
	mkdir "$W/units"
	for f in "$EX"/systemd/*; do
		sed -e "s|/usr/local/bin/|$DP_BIN/|g" -e "s|/usr/local/share/dp/examples|$EX|" \
		    -e "s|^User=dp|User=$(id -un)|" -e "s|^EnvironmentFile=/etc/dp/dp.env|EnvironmentFile=$EX/systemd/dp.env|" \
		    "$f" > "$W/units/${f##*/}"
	done
	cp "$W/units/dp-sink-pg@.service" "$W/units/dp-sink-pg@prices.service"
	cp "$W/units/dp-follow@.service" "$W/units/dp-follow@dyn.btc-eur.service"
	cd "$W/units"
	run systemd-analyze verify --man=no ./dp-coord.service ./dp-prices.service \
		./dp-sink-pg@prices.service ./dp-follow@dyn.btc-eur.service \
		./dp-candles.service ./dp-candles.timer
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "examples/systemd: every unit's ExecStart runs the pipeline and stops with 0 on SIGTERM" {
	create_topic "$T" 3
	create_topic "$T.dlq"
	echo "not-a-real-key" > "$W/key"
	chmod 600 "$W/key"
	export CRYPTOCOMPARE_API_KEY_FILE=$W/key
	unit_bg "$EX/systemd/dp-coord.service"; coord_pid=$UNIT_PID
	unit_bg "$EX/systemd/dp-sink-pg@.service" "$T"; sink_pid=$UNIT_PID
	run dp-coord request "dyn.$T" --source "$T" --filter '.fsym == "BTC"' --wait
	[ "$status" -eq 0 ]
	unit_bg "$EX/systemd/dp-follow@.service" "dyn.$T"; follow_pid=$UNIT_PID
	unit_bg "$EX/systemd/dp-prices.service"; prices_pid=$UNIT_PID
	# two polls (the replay answers BTC and ETH in USD, whatever is asked)
	has() { [ "$(kcat_count "$T")" -ge 4 ]; }
	wait_until 30 has
	stop_unit "$prices_pid"
	cat "$W/dp-prices.service.err"
	[ "$st" -eq 0 ]
	rows() { [ "$(psql_dp -c "select count(*) from \"$T\"")" -eq "$(kcat_count "$T")" ]; }
	wait_until 30 rows
	stop_unit "$sink_pid"
	[ "$st" -eq 0 ]
	# the application's file: exactly the BTC records, in order
	kcat_payloads "$T" | jq -c 'select(.fsym == "BTC")' > "$W/want"
	followed() { [ "$(wc -l < "$W/dp-follow@.service.out")" -ge "$(wc -l < "$W/want")" ]; }
	wait_until 30 followed || { cat "$W/dp-follow@.service.err"; wc -l "$W/want" "$W/dp-follow@.service.out"; false; }
	stop_unit "$follow_pid"
	[ "$st" -eq 0 ]
	diff "$W/want" "$W/dp-follow@.service.out"
	stop_unit "$coord_pid"
	[ "$st" -eq 0 ]
	psql_dp -c "drop table \"$T\""
}
