#!/usr/bin/env bats
# dp-sink-pg --stdin against the harness's PostgreSQL 15: what lands in the
# table, as psql shows it, and what the user reads on stderr.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/sink

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-180}

FIX=$BATS_TEST_DIRNAME/fixtures/cryptocompare
MIN=1912pro_test-coin__histominute_v1.json
NOW_MIN=2024-12-11T12:01:00Z

setup() {
	W=$BATS_TEST_TMPDIR
	T=$(uniq_name sink)
	BG_PIDS=()
	RESTART_PID=
	ROLE=
	FEED=
}

teardown() {
	stop_background
	if [[ -n $ROLE ]]; then
		psql_dp -c "drop table if exists \"$T\"" -c "drop role if exists \"$ROLE\"" || true
	fi
}

# --- helpers -------------------------------------------------------------------

stored() { psql_dp -c "select next_offset from dp_sink_offsets where \"group\" = '' and topic = '$1' and partition = -1"; }
columns() {
	psql_dp -c "select column_name || ' ' || data_type from information_schema.columns
	            where table_name = '${1:-$T}' order by ordinal_position"
}

# A sink reading a FIFO the test writes into: open_feed ARGS..., feed LINE...,
# close_feed, then wait_sink (sets status; stderr in $W/err).
open_feed() {
	mkfifo "$W/feed"
	dp-sink-pg --stdin "$@" < "$W/feed" > "$W/out" 2> "$W/err" &
	SINK_PID=$!
	BG_PIDS+=("$SINK_PID")
	exec {FEED}> "$W/feed"
}
feed() { printf '%s\n' "$@" >&"$FEED"; }
close_feed() { exec {FEED}>&-; }
wait_sink() {
	status=0
	wait "$SINK_PID" || status=$?
	stderr=$(< "$W/err")
}

has_timescaledb() {
	[[ $(psql_dp -c "select count(*) from pg_extension where extname = 'timescaledb'") == 1 ]]
}

# --- command line ---------------------------------------------------------------

@test "usage errors say what is wrong and exit 64" {
	run dp-sink-pg --table x
	[ "$status" -eq 64 ]
	[[ $output == *"no input: give -t TOPIC -g GROUP, or --stdin"* ]]
	run dp-sink-pg --stdin
	[ "$status" -eq 64 ]
	[[ $output == *"--stdin needs --table (or --source-id, which then names the table)"* ]]
	run dp-sink-pg --stdin --table x --on-conflict update
	[ "$status" -eq 64 ]
	[[ $output == *"--on-conflict needs --upsert"* ]]
	run dp-sink-pg --stdin --table x --hypertable maybe
	[ "$status" -eq 64 ]
	[[ $output == *"invalid --hypertable 'maybe': expected auto, on or off"* ]]
	run dp-sink-pg --stdin --table x --upsert a,,b
	[ "$status" -eq 64 ]
	[[ $output == *"invalid --upsert: an empty column name"* ]]
	run dp-sink-pg --stdin --table x --batch-bytes 4X
	[ "$status" -eq 64 ]
	[[ $output == *"invalid --batch-bytes '4X'"* ]]
	run dp-sink-pg --stdin --table x --map '.a['
	[ "$status" -eq 64 ]
	[[ $output == *"invalid --map: cannot compile jq expression '.a['"* ]]
	# a malformed URI: libpq would quote the part, here the password itself
	run dp-sink-pg --stdin --table x --db 'postgresql://u:s3cr%zzet@127.0.0.1/dp'
	[ "$status" -eq 64 ]
	[[ $output == *"invalid --db: the password is not valid there (in a URI, % must begin a %XX escape"* ]]
	[[ $output != *s3cr* ]]
	run dp-sink-pg --stdin --table x --db 'postgresql://u:pw@127.0.0.1/dp?bad%zz=1'
	[ "$status" -eq 64 ]
	[[ $output == *'invalid --db: invalid percent-encoded token: "bad%zz"'* ]]
	# a short password is not searched for in messages: they stay whole
	run dp-sink-pg --stdin --table x --db 'postgresql://u:t@127.0.0.1:1/dp'
	[ "$status" -eq 69 ]
	[[ $output == *"cannot connect to the database (host 127.0.0.1 port 1 dbname dp user u): "* ]]
}

@test "a missing table without --create: exit 81, and --create is named" {
	run dp-sink-pg --stdin --table "$T" < /dev/null
	[ "$status" -eq 81 ]
	[[ $output == *"table $T does not exist (--create makes it from the first records)"* ]]
}

# --- columns --------------------------------------------------------------------

@test "SIGTERM while a --map never ends: ended by it within about two seconds, nothing committed" {
	printf '{"n":1}\n{"n":2,"loop":true}\n' > "$W/in"
	dp-sink-pg --stdin --table "$T" --create --source-id "$T" \
		--map 'if .loop then last(range(infinite)) else . end' < "$W/in" 2> "$W/err" &
	BG_PIDS+=($!)
	term_when_busy $!
	cat "$W/err"
	[ "$st" -eq 143 ]   # 128 + SIGTERM: ended by the signal
	((elapsed < 4000))
	grep -qx "dp-sink-pg: a jq program still runs two seconds after the signal, and libjq cannot be interrupted: ending by the signal, without flushing or committing" "$W/err"
	# the rerun with the same source id starts at line 1: nothing was stored
	if [ "$(psql_dp -c "select to_regclass('dp_sink_offsets') is not null")" = t ]; then
		[ "$(psql_dp -c "select count(*) from dp_sink_offsets where topic = '$T'")" = 0 ]
	fi
}

@test "--create never makes a table of no columns: a first row without one is a bad record" {
	printf '{}\n{"":1}\n' > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --create --on-error skip < "$W/in"
	[ "$status" -eq 0 ]
	[[ $stderr == *"line 1: the row sets no column, and --create makes the table from the columns of the first rows"* ]]
	[[ $stderr == *"line 2: the row sets no column"* ]]
	[ "$(psql_dp -c "select to_regclass('\"$T\"') is null")" = t ]
	# the next records make it, from their own columns
	printf '{}\n{"a":1}\n' | dp-sink-pg --stdin --table "$T" --create --on-error skip 2>/dev/null
	[ "$(columns)" = "a bigint" ]
	[ "$(psql_dp -c "select a from \"$T\"")" = 1 ]
}

@test "--create infers the documented column types and writes the values" {
	cat > "$W/in" <<'EOF'
{"s":"a","t":"2024-01-02T03:04:05.123456789Z","i":1,"f":1.5,"mix":1,"b":true,"o":{"k":[1]},"a":[1,2],"n":null,"sn":"x"}
{"s":"b","t":"2024-01-02T03:04:06+01:00","i":-2,"f":2,"mix":2.5,"b":false,"o":null,"a":[],"n":null,"sn":3}
EOF
	run dp-sink-pg --stdin --table "$T" --create < "$W/in"
	[ "$status" -eq 0 ]
	run columns
	[ "$output" = "s text
t timestamp with time zone
i bigint
f double precision
mix double precision
b boolean
o jsonb
a jsonb
n text
sn jsonb" ]
	run q "select s, t, i, f, mix, b, o, a, n is null, sn from \"$T\" order by s"
	[ "$output" = 'a|2024-01-02 03:04:05.123457+00|1|1.5|1|t|{"k": [1]}|[1, 2]|t|"x"
b|2024-01-02 02:04:06+00|-2|2|2.5|f||[]|t|3' ]
}

@test "--numeric makes numeric columns; --time-column reads epoch numbers as timestamps" {
	printf '%s\n' '{"at":1704164645,"p":1.10,"q":3}' '{"at":1704164645123,"p":-0.000001,"q":4}' |
		dp-sink-pg --stdin --table "$T" --create --numeric --time-column at
	run columns
	[ "$output" = "at timestamp with time zone
p numeric
q bigint" ]
	run q "select at, p, q from \"$T\" order by q"
	[ "$output" = "2024-01-02 03:04:05+00|1.10|3
2024-01-02 03:04:05.123+00|-0.000001|4" ]
}

@test "an existing table's types take JSON values as documented" {
	psql_dp -c "create type \"${T}_e\" as enum ('up', 'down')" -c "create table \"$T\" (
		i2 smallint, i4 integer, r real, n numeric(10,2), v varchar(8), d date, u uuid,
		j json, ts timestamp, e \"${T}_e\", t text, f double precision)"
	printf '%s\n' '{"i2":7,"i4":"42","r":0.5,"n":12345678.91,"v":"short","d":"2024-02-29","u":"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11","j":{"x": 1},"ts":"2024-01-02T03:04:05+02:00","e":"down","t":{"a":[1,true]},"f":"2.5"}' |
		dp-sink-pg --stdin --table "$T"
	run q "select i2, i4, r, n, v, d, u, j, ts, e, t, f from \"$T\""
	[ "$output" = '7|42|0.5|12345678.91|short|2024-02-29|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|{"x":1}|2024-01-02 01:04:05|down|{"a":[1,true]}|2.5' ]
}

@test "values a column would change are refused with the line and the reason" {
	psql_dp -c "create table \"$T\" (i bigint, f double precision, t text, r real, d date)"
	cat > "$W/in" <<'EOF'
{"i":1,"f":1.5,"t":"ok"}
{"i":1.5}
{"i":"12"}
{"f":12345678901234567890}
{"t":"a\u0000b"}
{"f":1e999}
{"i":9223372036854775808}
{"r":16777217}
{"d":"2023-02-29"}
EOF
	run --separate-stderr dp-sink-pg --stdin --table "$T" --on-error skip < "$W/in"
	[ "$status" -eq 0 ]
	[[ $stderr == *'line 2: column "i" (bigint): 1.5 is not an integer'* ]]
	[[ $stderr == *'line 4: column "f" (double precision): 12345678901234567890 is an integer that double precision would round'* ]]
	[[ $stderr == *'line 5: column "t" (text): "a\u0000b" is a string with a NUL character (\u0000), which PostgreSQL text cannot hold'* ]]
	[[ $stderr == *'line 6: column "f" (double precision): 1e999 is out of range for double precision'* ]]
	[[ $stderr == *'line 7: column "i" (bigint): 9223372036854775808 is out of range for bigint'* ]]
	[[ $stderr == *'line 8: column "r" (real): 16777217 is an integer that real would round'* ]]
	[[ $stderr == *'line 9: column "d" (date): "2023-02-29" is not a date (YYYY-MM-DD)'* ]]
	[[ $stderr == *"7 bad records skipped"* ]]
	run q "select i, f, t from \"$T\" order by i"
	[ "$output" = "1|1.5|ok
12||" ]
}

@test "a key without a column is a bad record by default, never dropped" {
	psql_dp -c "create table \"$T\" (a bigint)"
	run --separate-stderr dp-sink-pg --stdin --table "$T" <<< '{"a":1,"zzz":2}'
	[ "$status" -eq 65 ]
	[[ $stderr == *"line 1: key \"zzz\" has no column in table $T (see --unknown-keys)"* ]]
	[ "$(count)" = 0 ]
}

@test "--unknown-keys add: ALTER TABLE adds the column, typed by its first value" {
	psql_dp -c "create table \"$T\" (a bigint)"
	printf '%s\n' '{"a":1}' '{"a":2,"new":"x","n":2.5,"at":"2024-01-01T00:00:00Z"}' '{"a":3,"new":"y"}' |
		dp-sink-pg --stdin --table "$T" --unknown-keys add
	run columns
	[ "$output" = "a bigint
new text
n double precision
at timestamp with time zone" ]
	run q "select a, new, n, at from \"$T\" order by a"
	[ "$output" = "1|||
2|x|2.5|2024-01-01 00:00:00+00
3|y||" ]
}

@test "--unknown-keys extra: keys without a column are kept in the jsonb column extra" {
	psql_dp -c "create table \"$T\" (a bigint)"
	printf '%s\n' '{"a":1,"x":{"y":1},"extra":"e"}' '{"a":2}' |
		dp-sink-pg --stdin --table "$T" --unknown-keys extra
	run q "select a, extra from \"$T\" order by a"
	[ "$output" = '1|{"x": {"y": 1}, "extra": "e"}
2|' ]
}

@test "--map: a jq expression makes each record's rows, none or several" {
	printf '%s\n' '{"sym":"BTC","quotes":[{"ccy":"USD","px":1},{"ccy":"EUR","px":2}]}' \
		'{"sym":"X","quotes":[]}' > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --create -v \
		--map '.sym as $s | .quotes[] | {sym: $s, ccy, px}' < "$W/in"
	[ "$status" -eq 0 ]
	[[ $stderr == *"--map made no row of 1 record"* ]]
	run q "select sym, ccy, px from \"$T\" order by px"
	[ "$output" = "BTC|USD|1
BTC|EUR|2" ]
	run --separate-stderr dp-sink-pg --stdin --table "$T" --on-error skip --map '.sym' <<< '{"sym":"BTC"}'
	[[ $stderr == *'line 1: --map made "BTC", not an object'* ]]
	run --separate-stderr dp-sink-pg --stdin --table "$T" --on-error skip --map '{px: (.px + "a")}' <<< '{"px":1}'
	[[ $stderr == *"line 1: --map: jq error: number (1) and string (\"a\") cannot be added"* ]]
	[ "$(count)" = 2 ]
}

@test "--table in a schema that does not exist: exit 78 (configuration), not a retry" {
	run --separate-stderr dp-sink-pg --stdin --table "nosuch_$T.t" --create <<< '{"a":1}'
	[ "$status" -eq 78 ]
	[[ $stderr == *"cannot create the table: schema \"nosuch_$T\" does not exist (SQLSTATE 3F000 invalid_schema_name)"* ]]
}

@test "--map that halts: a bad record named with the halt's message, not a silent drop" {
	printf '%s\n' '{"a":1}' '{"a":3}' '{"a":2}' > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --create --on-error skip \
		--map 'if .a == 3 then halt_error else . end' < "$W/in"
	[ "$status" -eq 0 ]
	[[ $stderr == *'line 2'*'jq program halted: {"a":3}'* ]]
	[ "$(psql_dp -c "select string_agg(a::text, ',' order by a) from \"$T\"")" = "1,2" ]
}

@test "--map and big numbers: object construction keeps an integer's digits" {
	printf '%s\n' '{"id":288230376151711744,"n":13911860366432393,"x":1}' > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --create --map '{id, n}' < "$W/in"
	[ "$status" -eq 0 ]
	[[ $stderr != *"2^53"* ]]
	run q "select id, n from \"$T\""
	[ "$output" = "288230376151711744|13911860366432393" ]
}

@test "a hostile field or table name becomes exactly that name, never SQL" {
	psql_dp -c "create table \"${T}_canary\" (x int)" -c "insert into \"${T}_canary\" values (1)"
	printf '{"a\\"; drop table \\"%s_canary\\"; --":1,"ok":"v"}\n' "$T" |
		dp-sink-pg --stdin --table "$T" --create
	run psql_dp -c "select column_name from information_schema.columns where table_name = '$T' order by 1"
	[ "$output" = "a\"; drop table \"${T}_canary\"; --
ok" ]
	run dp-sink-pg --stdin --table "$T\"; drop table \"${T}_canary\"; --" --create <<< '{"v":1}'
	[ "$status" -eq 0 ]
	[ "$(count "$T\"; drop table \"${T}_canary\"; --")" = 1 ]
	[ "$(count "${T}_canary")" = 1 ]
}

@test "--upsert: a candle backfill run twice over overlapping ranges gives the same table" {
	printf '%s\n' '{"routes":{"/data/v2/histominute":[{"histo":"'$MIN'"}]}}' > "$W/scenario.json"
	python3 "$BATS_TEST_DIRNAME/helpers/ccserver.py" --fixtures "$FIX" \
		--scenario "$W/scenario.json" --port-file "$W/port" --log "$W/requests" 3>&- &
	BG_PIDS+=($!)
	wait_until 10 test -s "$W/port"
	export DP_CRYPTOCOMPARE_URL=http://127.0.0.1:$(cat "$W/port")
	fetch() { dp-fetch ohlcv --fsym X --tsym USD --interval minute --since "$1" --until "$2" --now "$NOW_MIN"; }
	sink() { dp-sink-pg --stdin --table "$1" --create --upsert fsym,tsym,interval,ts; }
	fetch 2024-12-11T11:00:00Z 2024-12-11T11:40:00Z | sink "$T"
	fetch 2024-12-11T11:20:00Z 2024-12-11T12:00:00Z | sink "$T"
	fetch 2024-12-11T11:00:00Z 2024-12-11T12:00:00Z | sink "${T}_once"
	fetch 2024-12-11T11:00:00Z 2024-12-11T12:00:00Z | sink "${T}_once"
	[ "$(count)" = 60 ]
	a=$(q "select * from \"$T\" order by ts")
	b=$(q "select * from \"${T}_once\" order by ts")
	[ "$a" = "$b" ]
	run q "select min(ts), max(ts), count(distinct ts) from \"$T\""
	[ "$output" = "2024-12-11 11:00:00+00|2024-12-11 11:59:00+00|60" ]
	# a re-fetched candle with new values replaces the old row
	fetch 2024-12-11T11:59:00Z 2024-12-11T12:00:00Z | jq -c '.close = 1' | sink "$T"
	[ "$(q "select close from \"$T\" where ts = '2024-12-11T11:59:00Z'")" = 1 ]
	# --on-conflict nothing keeps it
	fetch 2024-12-11T11:59:00Z 2024-12-11T12:00:00Z | jq -c '.close = 2' |
		dp-sink-pg --stdin --table "$T" --upsert fsym,tsym,interval,ts --on-conflict nothing
	[ "$(q "select close from \"$T\" where ts = '2024-12-11T11:59:00Z'")" = 1 ]
	[ "$(count)" = 60 ]
}

@test "--upsert: the last of two rows with one key in a batch wins; keys need a unique index" {
	printf '%s\n' '{"k":1,"v":"first"}' '{"k":2,"v":"x"}' '{"k":1,"v":"last"}' |
		dp-sink-pg --stdin --table "$T" --create --upsert k
	run q "select k, v from \"$T\" order by k"
	[ "$output" = "1|last
2|x" ]
	psql_dp -c "create table \"${T}_nokey\" (k bigint, v text)"
	run dp-sink-pg --stdin --table "${T}_nokey" --upsert k < /dev/null
	[ "$status" -eq 78 ]
	[[ $output == *"--upsert: table ${T}_nokey has no unique index or primary key on exactly (k), which ON CONFLICT needs"* ]]
}

# --- exactly once -------------------------------------------------------------------

@test "--source-id: SIGKILL at five moments mid-file, reruns resume: every line once" {
	n=100000
	records "$n" > "$W/in"
	for kill_at in 5000 20000 40000 60000 80000; do
		pace "$W/in" 4 | dp-sink-pg --stdin --source-id "$T" --create --batch-rows 1000 2> "$W/err" &
		pid=$!
		BG_PIDS+=("$pid")
		wait_until 60 count_at_least "$kill_at"
		kill -KILL "$pid"
		wait "$pid" || true
		got=$(count)
		[ "$got" -lt "$n" ]
		# what is stored is exactly what is in the table
		[ "$(stored "$T")" = "$got" ]
	done
	run dp-sink-pg --stdin --source-id "$T" -v < "$W/in"
	[ "$status" -eq 0 ]
	[[ $output == *"source '$T': lines up to "*" are written already; resuming after them"* ]]
	run q "select count(*), count(distinct seq), min(seq), max(seq) from \"$T\""
	[ "$output" = "$n|$n|1|$n" ]
	[ "$(stored "$T")" = "$n" ]
	# and once more: nothing new
	dp-sink-pg --stdin --source-id "$T" < "$W/in"
	[ "$(count)" = "$n" ]
}

@test "an input without a single row: no table is needed, and its lines still count" {
	printf '\n\nnot json\n' > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --source-id "$T" --create --on-error skip < "$W/in"
	[ "$status" -eq 0 ]
	[ "$(stored "$T")" = 3 ]
	run count
	[ "$output" = "" ]
}

@test "two runs with one --source-id at once: the stale one writes nothing, exit 75" {
	n=20000
	records "$n" > "$W/in"
	psql_dp -c "create table \"$T\" (seq bigint, fsym text, ts timestamptz, price double precision)"
	pace "$W/in" 3 | dp-sink-pg --stdin --source-id "$T" --batch-rows 500 2> "$W/err1" &
	p1=$!
	pace "$W/in" 3 | dp-sink-pg --stdin --source-id "$T" --batch-rows 500 2> "$W/err2" &
	p2=$!
	BG_PIDS+=("$p1" "$p2")
	s1=0 s2=0
	wait "$p1" || s1=$?
	wait "$p2" || s2=$?
	cat "$W/err1" "$W/err2"
	# both read the stored offset, both wrote its next batch: one lost
	[ $((s1 + s2)) -eq 75 ]
	grep -q "the stored offset is not .* any more: another dp-sink-pg is writing this source" "$W/err1" "$W/err2"
	got=$(count)
	[ "$(q "select count(distinct seq) from \"$T\"")" = "$got" ]
	[ "$(stored "$T")" = "$got" ]
	# the survivor, or a rerun, finishes the file
	dp-sink-pg --stdin --source-id "$T" < "$W/in"
	run q "select count(*), count(distinct seq) from \"$T\""
	[ "$output" = "$n|$n" ]
}

@test "a database restart in the middle of a stream: nothing lost, nothing twice, no manual step" {
	need_restart
	n=20000
	records "$n" > "$W/in"
	pace "$W/in" 6 | dp-sink-pg --stdin --source-id "$T" --create --batch-rows 500 2> "$W/err" &
	pid=$!
	BG_PIDS+=("$pid")
	wait_until 60 count_at_least 1000
	pg_restart_bg 3s
	status=0
	wait "$pid" || status=$?
	wait "$RESTART_PID"
	cat "$W/err"
	[ "$status" -eq 0 ]
	grep -q "lost the database" "$W/err"
	grep -q "reconnected to the database" "$W/err"
	run q "select count(*), count(distinct seq), min(seq), max(seq) from \"$T\""
	[ "$output" = "$n|$n|1|$n" ]
	[ "$(stored "$T")" = "$n" ]
}

@test "an outage when a new column is needed, and one during the final commit" {
	need_restart
	open_feed --table "$T" --create --unknown-keys add --trace-states
	feed '{"a":1}'
	wait_until 10 count_is 1
	pg_restart_bg 2s
	wait_until 20 pg_down
	feed '{"a":2,"b":"new"}'
	close_feed
	wait_sink
	wait "$RESTART_PID"
	[ "$status" -eq 0 ]
	[[ $stderr == *'"from":"processing_message","event":"WRITE_FAILURE","to":"error"'* ]]
	run q "select a, b from \"$T\" order by a"
	[ "$output" = "1|
2|new" ]

	rm -f "$W/feed"
	open_feed --source-id "${T}_2" --create --trace-states
	feed '{"a":1}' '{"a":2}'
	wait_until 10 count_is 2 "${T}_2"
	pg_restart_bg 2s
	wait_until 20 pg_down
	feed '{"a":3}' '{"a":4}'
	close_feed
	wait_sink
	wait "$RESTART_PID"
	[ "$status" -eq 0 ]
	[[ $stderr == *'"from":"committing","event":"WRITE_FAILURE","to":"error"'* ]]
	[ "$(count "${T}_2")" = 4 ]
	[ "$(stored "${T}_2")" = 4 ]
}

@test "SIGTERM during an outage: exit 143, naming where a rerun resumes" {
	need_restart
	open_feed --source-id "$T" --create --trace-states
	feed '{"a":1}' '{"a":2}'
	wait_until 10 count_is 2
	pg_restart_bg 8s
	wait_until 20 pg_down
	feed '{"a":3}'
	wait_until 20 grep -q '"to":"backoff"' "$W/err"
	kill -TERM "$SINK_PID"
	wait_sink
	[ "$status" -eq 143 ]
	[[ $stderr == *"stopped while the database was away: lines after 2 are not written (a rerun with the same --source-id resumes there)"* ]]
	[[ $stderr == *"stopped by SIGTERM before the end: 2 lines delivered, 1 read and not delivered, the rest of the input not read"* ]]
}

@test "--max-retries: give up on a database that stays away, exit 69" {
	need_restart
	open_feed --source-id "$T" --create --max-retries 2
	feed '{"a":1}'
	wait_until 10 count_is 1
	pg_restart_bg 6s
	wait_until 20 pg_down
	feed '{"a":2}'
	close_feed
	wait_sink
	[ "$status" -eq 69 ]
	[[ $stderr == *"gave up on the database after 2 retries"* ]]
}

@test "SIGTERM mid-stream: what was read commits, the stored offset says how far, exit 143" {
	open_feed --source-id "$T" --create --trace-states
	records 100 | while read -r l; do feed "$l"; done
	wait_until 10 count_is 100
	records 50 101 | while read -r l; do feed "$l"; done
	kill -TERM "$SINK_PID"
	t0=$SECONDS
	wait_sink
	[ "$status" -eq 143 ]
	[ $((SECONDS - t0)) -le 2 ]
	got=$(count)
	[[ $stderr == *"stopped by SIGTERM before the end: $got lines delivered, 0 read and not delivered, the rest of the input not read"* ]]
	[ "$got" -ge 100 ]
	[ "$(stored "$T")" = "$got" ]
	[ "$(q "select count(distinct seq) from \"$T\"")" = "$got" ]
}

@test "a quiet input still lands its rows within --linger" {
	open_feed --table "$T" --create --linger 200ms
	feed '{"a":1}' '{"a":2}' '{"a":3}'
	wait_until 2 count_is 3
	feed '{"a":4}'
	wait_until 2 count_is 4
	close_feed
	wait_sink
	[ "$status" -eq 0 ]
}

# --- bad records -----------------------------------------------------------------------

@test "a record the server refuses: --on-error fail stops there with the lines before it written" {
	psql_dp -c "create table \"$T\" (seq bigint primary key, fsym text, ts timestamptz, price double precision check (price > 0))"
	records 1000 | jq -c 'if .seq == 500 then .price = -1 else . end' > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --source-id "$T" < "$W/in"
	[ "$status" -eq 65 ]
	[[ $stderr == *"line 500 of source '$T': new row for relation \"$T\" violates check constraint"*"(SQLSTATE 23514)"* ]]
	[[ $stderr == *"stopped at the bad record; lines up to 499 are in $T (--on-error skip would go on)"* ]]
	run q "select count(*), max(seq) from \"$T\""
	[ "$output" = "499|499" ]
	[ "$(stored "$T")" = 499 ]
	# skip: the rerun starts at the bad line, reports it again and goes on
	run --separate-stderr dp-sink-pg --stdin --source-id "$T" --on-error skip < "$W/in"
	[ "$status" -eq 0 ]
	[[ $stderr == *"line 500 of source '$T': new row for relation"* ]]
	[[ $stderr == *"1 bad record skipped"* ]]
	run q "select count(*), count(distinct seq), max(seq) from \"$T\" where seq <> 500"
	[ "$output" = "999|999|1000" ]
	[ "$(stored "$T")" = 1000 ]
}

@test "--on-error skip: the good rows of a batch with poison records land (server and client side)" {
	psql_dp -c "create table \"$T\" (seq bigint primary key, fsym text, ts timestamptz, price double precision not null)"
	records 3000 | jq -c 'if .seq % 1000 == 7 then del(.price) elif .seq == 2500 then .seq = "x" else . end' > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --on-error skip --batch-rows 1500 < "$W/in"
	[ "$status" -eq 0 ]
	[[ $stderr == *'line 7: null value in column "price" of relation'*'(SQLSTATE 23502)'* ]]
	[[ $stderr == *'line 1007: null value in column "price"'* ]]
	[[ $stderr == *'line 2007: null value in column "price"'* ]]
	[[ $stderr == *'line 2500: column "seq" (bigint): "x" is not an integer'* ]]
	[[ $stderr == *"4 bad records skipped"* ]]
	[ "$(count)" = 2996 ]
}

@test "--on-error fail at a record the client refuses; lines that are not JSON objects" {
	psql_dp -c "create table \"$T\" (seq bigint, fsym text, ts timestamptz, price double precision)"
	records 5 | jq -c 'if .seq == 3 then .price = "cheap" else . end' > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --trace-states < "$W/in"
	[ "$status" -eq 65 ]
	[[ $stderr == *'line 3: column "price" (double precision): "cheap" is not a number'* ]]
	[[ $stderr == *'"from":"error","event":"stop","to":"committing"'* ]]
	[ "$(q "select string_agg(seq::text, ',' order by seq) from \"$T\"")" = "1,2" ]

	printf '%s\n' '{"seq":1}' 'not json' '[1,2]' '' $'{"seq":"\xff"}' '{"seq":4}' > "$W/in2"
	run --separate-stderr dp-sink-pg --stdin --table "${T}" --on-error skip < "$W/in2"
	[ "$status" -eq 0 ]
	[[ $stderr == *"line 2: not JSON: unexpected character at byte 1"* ]]
	[[ $stderr == *"line 3: not a JSON object"* ]]
	[[ $stderr == *"line 5: not JSON: invalid UTF-8 at byte 9"* ]]
	[[ $stderr != *"line 4"* ]]
	[ "$(count)" = 4 ]
}

# --- connecting ------------------------------------------------------------------------

@test "a wrong password: exit 77 at once, the reason, and the password nowhere" {
	port=$(pg_port) || skip "DP_PG is not the harness's own PostgreSQL"
	[[ $(psql_dp -c "select count(*) from pg_roles where rolname = 'dp_pwtest'") == 1 ]] ||
		skip "no role dp_pwtest (scripts/stack makes it)"
	secret='Wr0ng-S3cret'
	for db in "postgresql://dp_pwtest:$secret@127.0.0.1:$port/dp" \
		"host=127.0.0.1 port=$port dbname=dp user=dp_pwtest password='$secret'"; do
		t0=$SECONDS
		run --separate-stderr dp-sink-pg --stdin --table x --db "$db" -vv --trace-states < /dev/null
		[ "$status" -eq 77 ]
		[ $((SECONDS - t0)) -le 5 ]
		[[ $stderr == *"cannot connect to the database (host 127.0.0.1 port $port dbname dp user dp_pwtest): "*"password authentication failed for user \"dp_pwtest\""* ]]
		[[ $stderr$output != *"$secret"* ]]
	done
	DP_PG="postgresql://dp_pwtest:$secret@127.0.0.1:$port/dp" run --separate-stderr dp-sink-pg --stdin --table x < /dev/null
	[ "$status" -eq 77 ]
	[[ $stderr != *"$secret"* ]]
	PGPASSWORD=$secret run --separate-stderr dp-sink-pg --stdin --table x \
		--db "postgresql://dp_pwtest@127.0.0.1:$port/dp" < /dev/null
	[ "$status" -eq 77 ]
	[[ $stderr != *"$secret"* ]]
}

@test "a password in --db: gone from the process list while it runs, and a warning says so" {
	[[ $DP_PG == postgres*://* && $DP_PG != *\?* ]] || skip "DP_PG is not a URI without a query"
	mkfifo "$W/in"
	dp-sink-pg --stdin --table "$T" --create --db "$DP_PG?password=Pw-In-Argv" \
		< "$W/in" 2> "$W/err" &
	pid=$!
	BG_PIDS+=("$pid")
	exec {fd}> "$W/in"
	wait_until 10 grep -q 'holds a password' "$W/err"
	tr '\0' ' ' < "/proc/$pid/cmdline" > "$W/cmdline"
	cat "$W/cmdline"
	grep -q -- "--db $DP_PG?password=\*\*\*\*\*\*\*\*\*\*" "$W/cmdline"
	# only the password's own bytes: a one-letter one leaves the rest alone
	run dp-sink-pg --stdin --table "$T" --db "host=127.0.0.1 port=1 password=1" < /dev/null
	[ "$status" -eq 69 ]
	[[ $output == *"(host 127.0.0.1 port 1 dbname"* ]]
	echo '{"a":1}' >&$fd
	exec {fd}>&-
	wait "$pid"
	# the copy the command kept still carries it: the row is in
	[ "$(psql_dp -c "select a from \"$T\"")" = 1 ]
	[[ $(cat "$W/err") == "dp-sink-pg: --db holds a password, which other users of this machine may see in the process list: prefer ~/.pgpass or \$DP_PG"* ]]
	[[ $(cat "$W/err") != *Pw-In-Argv* ]]
}

@test "a connection option libpq refuses: exit 78 (no retry helps), the password nowhere" {
	run --separate-stderr dp-sink-pg --stdin --table x --db "$DP_PG?sslmode=bogus" < /dev/null
	[ "$status" -eq 78 ]
	[[ $stderr == *'invalid sslmode value: "bogus"'* ]]
	run --separate-stderr dp-sink-pg --stdin --table x \
		--db "host=127.0.0.1 port=99999 dbname=dp user=u password=hunter2" < /dev/null
	[ "$status" -eq 78 ]
	[[ $stderr == *'invalid port number: "99999"'* ]]
	[[ $stderr != *hunter2* ]]
	# a name that does not resolve may resolve later: 69, as for a server away
	run --separate-stderr dp-sink-pg --stdin --table x \
		--db "host=nonexistent.invalid dbname=dp user=u" < /dev/null
	[ "$status" -eq 69 ]
}

@test "an unreachable database: exit 69 quickly, refused or silent" {
	port=$(free_port)
	t0=$SECONDS
	run --separate-stderr dp-sink-pg --stdin --table x --db "postgresql://u@127.0.0.1:$port/dp" < /dev/null
	[ "$status" -eq 69 ]
	[ $((SECONDS - t0)) -le 5 ]
	[[ $stderr == *"cannot connect to the database (host 127.0.0.1 port $port dbname dp user u): "*"Connection refused"* ]]
	blackhole_start
	t0=$SECONDS
	run --separate-stderr dp-sink-pg --stdin --table x --timeout 1s \
		--db "host=127.0.0.1 port=$BLACKHOLE_PORT dbname=dp" < /dev/null
	[ "$status" -eq 69 ]
	[ $((SECONDS - t0)) -le 4 ]
	[[ $stderr == *"no answer within 1s"* ]]
}

@test "SIGTERM while connecting ends the run at once, exit 143" {
	blackhole_start
	signal_within 2 TERM dp-sink-pg --stdin --table x --timeout 60s --trace-states \
		--db "host=127.0.0.1 port=$BLACKHOLE_PORT dbname=dp"
	[ "$status" -eq 143 ]
	[[ $stderr == *'"from":"connecting","event":"signal","to":"done"'* ]]
}

@test "a statement the role may not run: exit 77 with the server's reason" {
	ROLE=${T}_r
	psql_dp -c "create role \"$ROLE\" login" -c "create table \"$T\" (a bigint)" \
		-c "grant select, insert on \"$T\" to \"$ROLE\""
	port=$(pg_port) || skip "DP_PG is not the harness's own PostgreSQL"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --unknown-keys add \
		--db "postgresql://$ROLE@127.0.0.1:$port/dp" <<< '{"a":1,"b":2}'
	[ "$status" -eq 77 ]
	[[ $stderr == *"cannot add a column: must be owner of table $T (SQLSTATE 42501 insufficient_privilege)"* ]]
}

# --- TimescaleDB ----------------------------------------------------------------------

@test "--hypertable auto on plain PostgreSQL: says so once, makes a plain table; on: exit 78" {
	if has_timescaledb; then
		skip "TimescaleDB is installed on this server: the plain-PostgreSQL path cannot be seen"
	fi
	records 3 > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --create --batch-rows 1 < "$W/in"
	[ "$status" -eq 0 ]
	[ "$stderr" = "dp-sink-pg: the timescaledb extension is not installed in this database: making $T a plain table" ]
	[ "$(count)" = 3 ]
	run --separate-stderr dp-sink-pg --stdin --table "${T}_on" --create --hypertable on < "$W/in"
	[ "$status" -eq 78 ]
	[[ $stderr == *"--hypertable on: the timescaledb extension is not installed in this database"* ]]
	run --separate-stderr dp-sink-pg --stdin --table "${T}_off" --create --hypertable off < "$W/in"
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
}

@test "--hypertable with TimescaleDB: the table is a hypertable on the time column" {
	has_timescaledb ||
		skip "TimescaleDB is not installed on this server (point DP_TEST_PG at one with CREATE EXTENSION timescaledb done)"
	records 100 > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --create --chunk-interval 1h < "$W/in"
	[ "$status" -eq 0 ]
	run psql_dp -c "select hypertable_name, num_dimensions from timescaledb_information.hypertables where hypertable_name = '$T'"
	[ "$output" = "$T|1" ]
	run psql_dp -c "select column_name, time_interval from timescaledb_information.dimensions where hypertable_name = '$T'"
	[ "$output" = "ts|01:00:00" ]
	[ "$(count)" = 100 ]
	records 10 > "$W/in2"
	run dp-sink-pg --stdin --table "${T}_up" --create --upsert seq < "$W/in2"
	[ "$status" -eq 0 ]
	[[ $output == *"the --upsert keys do not include the time column"* ]]
}

# --- the run ---------------------------------------------------------------------------

@test "--trace-states: the seed's consumer states drive a run; --progress reports rows" {
	records 25 > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --create --batch-rows 10 \
		--trace-states --progress < "$W/in"
	[ "$status" -eq 0 ]
	trace=$(printf '%s\n' "$stderr" | grep '^{' | jq -r '"\(.from) \(.event) \(.to)"' | uniq | paste -sd,)
	[[ $trace == "idle start connecting,connecting connected idle,idle MESSAGE_RECEIVED processing_message,processing_message PROCESS_SUCCESS writing_to_db,writing_to_db WRITE_SUCCESS idle,"* ]]
	[[ $trace == *",idle eof committing,committing committed closing,closing closed done" ]]
	[[ $stderr == *"progress: 25 rows"*"overall"* ]]
}

@test "memory stays bounded: 300k records in well under 32 MB" {
	[[ $DP_BIN != *asan* ]] || skip "sanitizers change memory use"
	records 300000 > "$W/in"
	/usr/bin/time -f '%M' -o "$W/rss" dp-sink-pg --stdin --table "$T" --create < "$W/in"
	[ "$(count)" = 300000 ]
	rss=$(tail -1 "$W/rss")
	echo "peak RSS ${rss} KB"
	[ "$rss" -lt 32768 ]
	# one 40 MB line: reported, dropped, never held
	python3 -c 'print("{\"seq\":1}"); print("{\"seq\":\"" + "x" * 40000000 + "\"}"); print("{\"seq\":3}")' > "$W/long"
	run --separate-stderr /usr/bin/time -f '%M' -o "$W/rss" \
		dp-sink-pg --stdin --table "${T}_long" --create --batch-bytes 1M --on-error skip < "$W/long"
	[ "$status" -eq 0 ]
	[[ $stderr == *"line 2: a line of 40000010 bytes, longer than --batch-bytes (1048576)"* ]]
	[ "$(q "select string_agg(seq::text, ',' order by seq) from \"${T}_long\"")" = "1,3" ]
	rss=$(tail -1 "$W/rss")
	echo "peak RSS with a 40 MB line ${rss} KB"
	[ "$rss" -lt 32768 ]
}

@test "the bash completion offers --unknown-keys' values and completes --hyp" {
	run bash -c 'source "$DP_ROOT/completions/bash/dp-sink-pg"
		COMP_WORDS=(dp-sink-pg --unknown-keys ""); COMP_CWORD=2; _dp_sink_pg; echo "${COMPREPLY[*]}"
		COMP_WORDS=(dp-sink-pg --hyp); COMP_CWORD=1; _dp_sink_pg; echo "${COMPREPLY[*]}"'
	[ "${lines[0]}" = "bad add extra" ]
	[ "${lines[1]}" = "--hypertable" ]
}
