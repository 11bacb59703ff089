#!/usr/bin/env bats
# examples/: the pipeline from cron (pipeline.crontab, cron-prices.sh,
# cron-fetch.sh) and as systemd units, run for real against the suite's
# Kafka and PostgreSQL and a replay of the API.  The command lines are
# taken from the files as they are shipped, never copied here: only the
# paths (the crontab's DP, /usr/local/bin, /usr/local/share/dp/examples,
# /var/lib/dp, /etc/dp) and the addresses of the stack (the settings file
# each example reads: ~/.config/dp/env or /etc/dp/dp.env) are the test's.
# The topics are the examples' own ("prices", "candles"), the database a
# fresh one, the coordinator's topics the test's.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/kafka

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-180}
EX=$DP_ROOT/examples
FIX=$BATS_TEST_DIRNAME/fixtures/cryptocompare

setup() {
	W=$BATS_TEST_TMPDIR
	T=$(new_topic)
	BG_PIDS=()
	UNIT_GROUPS=()
	DB=
	DYN=
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
	[[ -z $DYN ]] || dp-topic delete "$DYN" --if-exists -o json >/dev/null 2>&1 || true
	[[ -z $DB ]] || psql_dp -c "drop database if exists \"$DB\" with (force)" || true
}

# fresh_db: a database of its own on the stack's server; sets DB and PG
# (DP_PG with that database)
fresh_db() {
	DB=$(uniq_name db)
	psql_dp -c "create database \"$DB\""
	[[ $DP_PG == postgresql://*/* && $DP_PG != *\?* ]] || skip "DP_PG is not a URI with a path"
	PG=${DP_PG%/*}/$DB
}

# replay_eur: the recorded API, where the examples' USD,EUR prices exist:
# the recorded BTC and ETH answers in USD, given a second time as EUR
# (the recordings have no EUR for BTC).  Sets DP_CRYPTOCOMPARE_URL.
replay_eur() {
	mkdir -p "$W/fix"
	jq '.RAW.BTC.EUR = (.RAW.BTC.USD | .TOSYMBOL = "EUR") |
	    .RAW.ETH.EUR = (.RAW.ETH.USD | .TOSYMBOL = "EUR") |
	    .DISPLAY.BTC.EUR = .DISPLAY.BTC.USD | .DISPLAY.ETH.EUR = .DISPLAY.ETH.USD' \
		"$FIX/saundersconsult__pricemultifull.json" >"$W/fix/prices.json"
	cp "$FIX/saundersconsult__histohour_v1.json" "$W/fix/"
	printf '%s\n' '{"routes": {"/data/pricemultifull": [{"file": "prices.json"}],
	  "/data/v2/histohour": [{"histo": "saundersconsult__histohour_v1.json"}]}}' \
		>"$W/fix/scenario.json"
	python3 "$DP_ROOT/tests/helpers/ccserver.py" --fixtures "$W/fix" \
		--scenario "$W/fix/scenario.json" --port-file "$W/fix/port" --log "$W/requests" 3>&- &
	BG_PIDS+=($!)
	wait_until 10 test -s "$W/fix/port"
	export DP_CRYPTOCOMPARE_URL=http://127.0.0.1:$(cat "$W/fix/port")
}

# The pipeline's topics, made once by whoever installs it (README does the same).
pipeline_topics() {
	dp-topic create prices -p 6 --if-not-exists -o json >/dev/null
	dp-topic create candles prices.dlq --if-not-exists -o json >/dev/null
}

rows() { psql "$PG" -X -q -At -c "select count(*) from $1"; }
# the distinct candles in the topic candles: what a table keyed on them holds
candles_in_topic() {
	kcat_payloads candles |
		jq -r '[.fsym, .tsym, .interval, .ts] | join(" ")' | sort -u | wc -l
}

@test "examples/cron-prices.sh: a failure on either side is its exit status; a busy lock is 75" {
	run --separate-stderr "$EX/cron-prices.sh" BTC USD "$T"       # no such topic
	[ "$status" -eq 81 ]
	[[ $stderr == *"dp-publish: topic '$T' does not exist"* ]]
	[[ $stderr == *"cron-prices.sh: publish 81"* ]]
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


# cron_jobs: examples/pipeline.crontab as cron(8) reads it: "VAR NAME=VALUE"
# for each variable, "JOB COMMAND" for each job, in order
cron_jobs() {
	python3 - "$EX/pipeline.crontab" <<'PY'
import re, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", line)
    if m:
        print("VAR %s=%s" % (m.group(1), m.group(2)))
    else:
        print("JOB " + line.split(None, 5)[5])
PY
}

# cron_run COMMAND: run a crontab job as cron does: $SHELL -c COMMAND in
# cron's small environment plus the crontab's variables (and the suite's
# DP_TRACE_STATES, for tests/final/fsm-coverage.bats, as everywhere here)
cron_run() {
	env -i ${DP_TRACE_STATES:+DP_TRACE_STATES="$DP_TRACE_STATES"} HOME="$CRON_HOME" \
		LOGNAME="$(id -un)" PATH=/usr/bin:/bin "${CRON_VARS[@]}" "$CRON_SHELL" -c "$1"
}

@test "examples/pipeline.crontab: every job runs as written, in order, and delivers" {
	fresh_db
	replay_eur
	pipeline_topics
	# The tree the crontab's DP names: its bin/ is this run's binaries.
	mkdir -p "$W/dp" "$W/home/.config/dp"
	ln -s "$DP_BIN" "$W/dp/bin"
	ln -s "$EX" "$W/dp/examples"
	CRON_HOME=$W/home
	echo "not-a-real-key" >"$W/home/.config/dp/cryptocompare.key"
	chmod 600 "$W/home/.config/dp/cryptocompare.key"
	# ~/.config/dp/env as its comment says, with the stack's addresses.
	cat >"$W/home/.config/dp/env" <<-EOF
	export DP_BROKERS=$DP_BROKERS
	export DP_PG=$PG
	export DP_FETCH_ARGS="--api-key-file \$HOME/.config/dp/cryptocompare.key"
	export DP_CRYPTOCOMPARE_URL=$DP_CRYPTOCOMPARE_URL
	export DP_REGISTRY=$DP_REGISTRY DP_REQUESTS=$DP_REQUESTS
	EOF
	CRON_VARS=() JOBS=()
	while read -r kind rest; do
		if [[ $kind == VAR ]]; then
			[[ $rest == DP=* ]] && rest=DP=$W/dp          # the path of the tree
			CRON_VARS+=("$rest")
		else
			JOBS+=("$rest")
		fi
	done < <(cron_jobs)
	CRON_SHELL=/bin/sh
	for v in "${CRON_VARS[@]}"; do [[ $v == SHELL=* ]] && CRON_SHELL=${v#SHELL=}; done
	[ "${#JOBS[@]}" -ge 4 ]
	prices_before=$(kcat_count prices)
	candles_before=$(kcat_count candles)
	n=0
	for job in "${JOBS[@]}"; do
		n=$((n + 1))
		if [[ $job == *"dp-coord serve"* ]]; then
			# A daemon: cron starts it and goes on.
			setsid env -i ${DP_TRACE_STATES:+DP_TRACE_STATES="$DP_TRACE_STATES"} HOME="$CRON_HOME" LOGNAME="$(id -un)" PATH=/usr/bin:/bin \
				"${CRON_VARS[@]}" "$CRON_SHELL" -c "$job" &
			UNIT_GROUPS+=($!)
			BG_PIDS+=($!)
			# An application asks for a stream cut from prices.
			DYN=dyn.$T
			run dp-coord request "$DYN" --source prices --filter '.fsym == "ETH"' --wait=60s
			[ "$status" -eq 0 ]
			# The lock keeps a second start from cron a no-op.
			run cron_run "$job"
			[ "$status" -ne 0 ]
			continue
		fi
		run cron_run "$job"
		[[ $status -eq 0 ]] || { echo "job $n: $job: exit $status"; cat "$W"/home/dp-*.log; false; }
	done
	# prices: BTC and ETH in USD and EUR, and the ETH ones in the dynamic topic
	[ "$(kcat_count prices)" -eq $((prices_before + 4)) ]
	[ "$(kcat_payloads "$DYN" | jq -r '.fsym + "/" + .tsym' | sort | tr '\n' ' ')" = "ETH/EUR ETH/USD " ]
	# candles: the 10 closed ones, the spool gone, the state kept
	[ "$(kcat_count candles)" -eq $((candles_before + 10)) ]
	[ ! -e "$W/home/.local/state/dp-fetch/BTC-USD-hour.spool" ]
	[ -s "$W/home/.local/state/dp-fetch/BTC-USD-hour.state" ]
	# the sinks: each topic is its table, a candle once
	[ "$(rows prices)" -eq "$(kcat_count prices)" ]
	[ "$(rows candles)" -eq "$(candles_in_topic)" ]
	# The next run of every job: only what is new (the replay's last candle,
	# closed since), nothing twice in the tables.
	for job in "${JOBS[@]}"; do
		[[ $job == *"dp-coord serve"* || $job == *cron-prices.sh* ]] && continue
		run cron_run "$job"
		[ "$status" -eq 0 ]
	done
	[ "$(kcat_count candles)" -le $((candles_before + 11)) ]
	[ ! -e "$W/home/.local/state/dp-fetch/BTC-USD-hour.spool" ]
	[ "$(rows prices)" -eq "$(kcat_count prices)" ]
	[ "$(rows candles)" -eq "$(candles_in_topic)" ]
}

# unit FILE [INSTANCE]: the unit as systemd would run it (tests/helpers/unit.py)
unit() {
	python3 "$DP_ROOT/tests/helpers/unit.py" "$1" "${2:-}" "$DP_BIN" "$EX" "$W"
}

# unit_bg UNIT [INSTANCE]: start it in a session of its own, as systemd's
# cgroup (its PID, the group's, in UNIT_PID, the statuses it counts as
# success in UNIT_OK), stdout to its StandardOutput= file or $W/NAME.out,
# stderr to $W/NAME.err
unit_bg() {
	local f name=${1##*/} out envs=() argv=() mode=
	mapfile -d '' f < <(unit "$@")
	out=$W/$name.out
	UNIT_OK=" 0 "
	for ((i = 0; i < ${#f[@]}; i++)); do
		if [[ -n $mode ]]; then
			argv+=("${f[i]}")
			continue
		fi
		case ${f[i]} in
		env) envs+=("${f[++i]}") ;;
		out) out=${f[++i]} ;;
		ok) UNIT_OK+="${f[++i]} " ;;
		argv) mode=argv ;;
		esac
	done
	mkdir -p "$W/var"
	# systemd's environment: its PATH (where /usr/local/bin is this run's
	# binaries), then the unit's files and lines
	env -i ${DP_TRACE_STATES:+DP_TRACE_STATES="$DP_TRACE_STATES"} PATH="$DP_BIN:/usr/sbin:/usr/bin:/sbin:/bin" HOME="$W/home" "${envs[@]}" \
		setsid "${argv[@]}" >"$out" 2>"$W/$name.err" &
	UNIT_PID=$!
	BG_PIDS+=("$UNIT_PID")
	UNIT_GROUPS+=("$UNIT_PID")
	UNIT_OKS[$UNIT_PID]=$UNIT_OK
}

# stop_unit PID: SIGTERM to its whole group, as `systemctl stop`; sets st
# to its exit status, and fails unless the unit counts it as success
stop_unit() {
	kill -TERM -- "-$1"
	st=0
	wait "$1" || st=$?
	[[ ${UNIT_OKS[$1]} == *" $st "* ]] || { echo "unit $1: exit $st, not one of${UNIT_OKS[$1]}"; false; }
}

@test "examples/systemd: every unit's ExecStart runs as written, and a stop is a success the unit counts" {
	declare -A UNIT_OKS
	fresh_db
	replay_eur
	pipeline_topics
	mkdir -p "$W/etc" "$W/home"
	echo "not-a-real-key" >"$W/key"
	chmod 600 "$W/key"
	# /etc/dp/dp.env as examples/systemd/dp.env has it, with the stack's addresses
	sed -e "s|^DP_BROKERS=.*|DP_BROKERS=$DP_BROKERS|" -e "s|^DP_PG=.*|DP_PG=$PG|" \
	    -e "s|^CRYPTOCOMPARE_API_KEY_FILE=.*|CRYPTOCOMPARE_API_KEY_FILE=$W/key|" \
		"$EX/systemd/dp.env" >"$W/etc/dp.env"
	printf '%s\n' "DP_CRYPTOCOMPARE_URL=$DP_CRYPTOCOMPARE_URL" "DP_REGISTRY=$DP_REGISTRY" \
		"DP_REQUESTS=$DP_REQUESTS" >>"$W/etc/dp.env"
	prices_before=$(kcat_count prices)
	candles_before=$(kcat_count candles)
	# The dynamic topic dp-follow@.service's comment asks for, as written there.
	DYN=dyn.btc-eur
	dp-topic delete "$DYN" --if-exists -o json >/dev/null
	mapfile -d '' request < <(python3 - "$EX/systemd/dp-follow@.service" <<-'PY'
		import shlex, sys
		lines = [l[1:].strip() for l in open(sys.argv[1]) if l.startswith("#")]
		i = next(i for i, l in enumerate(lines) if l.startswith("dp-coord request"))
		cmd = lines[i]
		while cmd.endswith("\\"):
		    i += 1
		    cmd = cmd[:-1] + " " + lines[i]
		sys.stdout.write("\0".join(shlex.split(cmd)) + "\0")
		PY
	)
	[ "${request[0]}" = dp-coord ]

	unit_bg "$EX/systemd/dp-coord.service"; coord_pid=$UNIT_PID
	unit_bg "$EX/systemd/dp-sink-pg@.service" prices; sink_pid=$UNIT_PID
	run "${request[@]}"
	[ "$status" -eq 0 ]
	unit_bg "$EX/systemd/dp-follow@.service" "$DYN"; follow_pid=$UNIT_PID
	unit_bg "$EX/systemd/dp-prices.service"; prices_pid=$UNIT_PID
	# The first poll (the next is a minute away): BTC and ETH in USD and EUR.
	has() { [ "$(kcat_count prices)" -ge $((prices_before + 4)) ]; }
	wait_until 30 has
	followed() { [ -s "$W/var/$DYN.ndjson" ]; }
	wait_until 30 followed || { cat "$W/dp-follow@.service.err"; false; }
	# What they show: the coordinator's and the publisher's endpoints, ready
	port() { awk -v p="$1" '$1 == p { print $2 }' "$W/ports"; }
	[ "$(curl -s -m 5 "http://127.0.0.1:$(port 9471)/readyz")" = ready ]
	[ "$(curl -s -m 5 "http://127.0.0.1:$(port 9472)/readyz")" = ready ]
	stop_unit "$prices_pid" || { cat "$W/dp-prices.service.err"; false; }
	[ "$(kcat_count prices)" -eq $((prices_before + 4)) ]
	# The application's file: exactly BTC/EUR
	[ "$(jq -r '.fsym + "/" + .tsym' "$W/var/$DYN.ndjson")" = BTC/EUR ]
	stop_unit "$follow_pid"
	# The sink: the topic is its table
	same_rows() { [ "$(rows prices)" -eq "$(kcat_count prices)" ]; }
	wait_until 30 same_rows
	stop_unit "$sink_pid"
	# and the sink's textfile for node_exporter, written at its end
	grep -q '^dp_exit_status{command="dp-sink-pg"} 0$' "$W/var/dp-sink-pg-prices.prom"
	grep -q "^dp_records_out_total{command=\"dp-sink-pg\",table=\"[a-z.]*prices\"} $(rows prices)$" \
		"$W/var/dp-sink-pg-prices.prom"
	stop_unit "$coord_pid"
	# The candles, a oneshot run from the timer: to its end, 0.
	unit_bg "$EX/systemd/dp-candles.service"
	st=0
	wait "$UNIT_PID" || st=$?
	cat "$W/dp-candles.service.err"
	[ "$st" -eq 0 ]
	[ "$(kcat_count candles)" -eq $((candles_before + 10)) ]
	[ ! -e "$W/var/BTC-USD-hour.spool" ]
	[ -s "$W/var/BTC-USD-hour.state" ]
}
