#!/usr/bin/env bats
# dp-sink-pg when the table changes under it (ALTER TABLE, DROP, RENAME) and
# what may shape a table (--create, --unknown-keys add): against the
# harness's PostgreSQL 15 (and Kafka for the dead-letter case).  What a user
# sees: the rows as psql shows them, stderr, the exit status.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/kafka
load helpers/sink

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-180}

setup() {
	W=$BATS_TEST_TMPDIR
	T=$(uniq_name sink)
	BG_PIDS=()
	RESTART_PID=
	FEED=
	ALTER_PID=
}

teardown() {
	stop_background
	psql_dp -c "drop table if exists $(ident)" -c "drop table if exists $(ident "${T}_old")" \
		>/dev/null 2>&1 || true
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
	rm -f "$W/feed"
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
	echo "$stderr"
}

# locked_alter SQL: a session takes the table's lock, waits until a
# dp-sink-pg writer waits for it too (that batch is encoded for the table as
# it was), runs SQL and commits, all in one transaction: the change lands
# exactly between encoding a batch and writing it.  In the background
# (ALTER_PID); returns once the lock is held.  alter_done waits for it.
locked_alter() {
	local rel
	rel=$(psql_dp -c "select '$(ident)'::regclass::oid")
	PGAPPNAME=dp-test-alter psql "$DP_PG" -X -q -v ON_ERROR_STOP=1 > "$W/alter.log" 2>&1 <<EOF &
begin;
lock table $(ident) in access exclusive mode;
do \$\$ begin
  for i in 1..1200 loop
    perform pg_stat_clear_snapshot();
    if exists (select 1 from pg_stat_activity where application_name = 'dp-sink-pg'
               and wait_event_type = 'Lock') then return; end if;
    perform pg_sleep(0.05);
  end loop;
  raise exception 'no dp-sink-pg waited for the lock';
end \$\$;
$1;
commit;
EOF
	ALTER_PID=$!
	BG_PIDS+=("$ALTER_PID")
	lock_held() {
		[[ $(psql_dp -c "select count(*) from pg_locks l join pg_stat_activity a using (pid)
		                 where a.application_name = 'dp-test-alter' and l.granted
		                 and l.mode = 'AccessExclusiveLock' and l.relation = $rel") == 1 ]]
	}
	wait_until 10 lock_held
}
alter_done() {
	local st=0
	wait "$ALTER_PID" || st=$?
	cat "$W/alter.log"
	return "$st"
}

# --- the table changes ----------------------------------------------------------------

@test "ALTER COLUMN TYPE text, then numeric, under a running sink: the rows hold the JSON's values" {
	psql_dp -c "create table $(ident) (seq bigint, price double precision)"
	open_feed --table "$T" --on-error skip
	feed '{"seq":1,"price":1.5}'
	wait_until 10 count_is 1
	# encoded as double precision, written as text: the JSON's own text
	locked_alter "alter table $(ident) alter column price type text"
	feed '{"seq":2,"price":1.50}' '{"seq":3,"price":2e3}'
	alter_done
	wait_until 10 count_is 3
	[ "$(q "select string_agg(price, ',' order by seq) from $(ident)")" = "1.5,1.50,2e3" ]
	# encoded as text and bigint, written as numeric: every digit
	locked_alter "alter table $(ident) alter column price type numeric using price::numeric,
	              alter column seq type numeric"
	feed '{"seq":9007199254740993,"price":0.1}' '{"seq":5,"price":"12345678901234567890.123"}'
	alter_done
	wait_until 10 count_is 5
	close_feed
	wait_sink
	[ "$status" -eq 0 ]
	[[ $stderr == *"dp-sink-pg: table $T changed under dp-sink-pg: \"price\" text (was double precision); the rows not yet committed are encoded for it again"* ]]
	[[ $stderr == *"\"seq\" numeric (was bigint), \"price\" numeric (was text)"* ]]
	[[ $stderr != *"skipped"* ]]
	run q "select seq, price from $(ident) where seq > 3 order by seq"
	[ "$output" = "5|12345678901234567890.123
9007199254740993|0.1" ]
}

@test "ALTER COLUMN TYPE integer under a running sink: valid records land, none is bad; one that no longer fits stops with 78" {
	psql_dp -c "create table $(ident) (seq bigint, n bigint)"
	open_feed --table "$T" --source-id "$T" --on-error skip
	feed '{"seq":1,"n":1}'
	wait_until 10 count_is 1
	locked_alter "alter table $(ident) alter column n type integer"
	feed '{"seq":2,"n":2}' '{"seq":3,"n":3}'
	alter_done
	wait_until 10 count_is 3
	# read before the change, and the new type cannot hold it: not a bad record
	locked_alter "alter table $(ident) alter column n type smallint"
	feed '{"seq":4,"n":4}' '{"seq":5,"n":70000}'
	alter_done
	close_feed
	wait_sink
	[ "$status" -eq 78 ]
	[[ $stderr == *"table $T changed under dp-sink-pg (column \"n\" is now smallint, was integer): line 5 of source '$T' no longer fits: column \"n\" (smallint): 70000 is out of range for smallint; nothing of its batch was committed"* ]]
	[[ $stderr != *"skipped"* ]]
	run q "select string_agg(seq || ':' || n, ',' order by seq) from $(ident)"
	[ "$output" = "1:1,2:2,3:3" ]
	[ "$(stored "$T")" = 3 ]
}

@test "a column added NOT NULL with a default, a column set NOT NULL: re-read; a record without it stops with 78" {
	psql_dp -c "create table $(ident) (seq bigint, note text, fsym text)"
	open_feed --table "$T" --on-error skip
	feed '{"seq":1,"note":"a","fsym":"BTC"}'
	wait_until 10 count_is 1
	locked_alter "alter table $(ident) add column venue text not null default 'cccagg'"
	feed '{"seq":2,"note":"b","fsym":"ETH"}'
	alter_done
	wait_until 10 count_is 2
	locked_alter "alter table $(ident) alter column fsym set not null"
	feed '{"seq":3,"note":"c"}'
	alter_done
	close_feed
	wait_sink
	[ "$status" -eq 78 ]
	[[ $stderr == *"table $T changed under dp-sink-pg (column \"fsym\" text is NOT NULL now): line 3 no longer fits: column \"fsym\" (text) is NOT NULL, and the record has no value for it; nothing of its batch was committed"* ]]
	[[ $stderr != *"skipped"* ]]
	run q "select seq, venue from $(ident) order by seq"
	[ "$output" = "1|cccagg
2|cccagg" ]
}

@test "a dropped column: 78 naming it; with --unknown-keys add it comes back" {
	psql_dp -c "create table $(ident) (seq bigint, note text)"
	open_feed --table "$T"
	feed '{"seq":1,"note":"a"}'
	wait_until 10 count_is 1
	locked_alter "alter table $(ident) drop column note"
	feed '{"seq":2,"note":"b"}'
	alter_done
	close_feed
	wait_sink
	[ "$status" -eq 78 ]
	[[ $stderr == *"table $T changed under dp-sink-pg: line 2 no longer fits: key \"note\": its column (text) is gone, dropped or renamed; nothing of its batch was committed"* ]]
	[ "$(count)" = 1 ]

	psql_dp -c "alter table $(ident) add column note text"
	open_feed --table "$T" --unknown-keys add
	feed '{"seq":3,"note":"c"}'
	wait_until 10 count_is 2
	locked_alter "alter table $(ident) drop column note"
	feed '{"seq":4,"note":"d"}'
	alter_done
	wait_until 10 count_is 3
	close_feed
	wait_sink
	[ "$status" -eq 0 ]
	run q "select seq, note from $(ident) order by seq"
	[ "$output" = "1|
3|
4|d" ]
	[ "$(columns)" = "seq bigint
note text" ]
}

@test "--upsert: a column dropped and a type changed under the sink: the stage follows the table" {
	psql_dp -c "create table $(ident) (k bigint primary key, v text, note text)"
	open_feed --table "$T" --upsert k --unknown-keys add
	feed '{"k":1,"v":"a","note":"x"}'
	wait_until 10 count_is 1
	locked_alter "alter table $(ident) drop column note, alter column v type integer using 0"
	feed '{"k":1,"v":7,"note":"y"}' '{"k":2,"v":8}'
	alter_done
	wait_until 10 count_is 2
	close_feed
	wait_sink
	[ "$status" -eq 0 ]
	run q "select k, v, note from $(ident) order by k"
	[ "$output" = "1|7|y
2|8|" ]
}

@test "a table dropped and made again under the sink is written as it now is; a renamed one is 78 with its name" {
	psql_dp -c "create table $(ident) (seq bigint, price double precision)"
	open_feed --table "$T" --source-id "$T"
	feed '{"seq":1,"price":1.5}'
	wait_until 10 count_is 1
	locked_alter "drop table $(ident); create table $(ident) (seq text, price text, other int)"
	feed '{"seq":2,"price":2.50}'
	alter_done
	wait_until 10 count_is 1
	[ "$(q "select seq || '|' || price || '|' || coalesce(other, -1) from $(ident)")" = "2|2.50|-1" ]
	locked_alter "alter table $(ident) rename to $(ident "${T}_old")"
	feed '{"seq":3,"price":3}'
	alter_done
	close_feed
	wait_sink
	[ "$status" -eq 78 ]
	[[ $stderr == *"cannot write to $T: table $T is gone: dropped or renamed while dp-sink-pg ran (relation \"$T\" does not exist (SQLSTATE 42P01 undefined_table))"* ]]
	[ "$(count "${T}_old")" = 1 ]
	[ "$(stored "$T")" = 2 ]
}

@test "Kafka: ALTER COLUMN TYPE integer and numeric under the sink, --on-error dlq: every record lands, no dead letter" {
	create_topic "$T" 1
	create_topic "$T.dlq" 1
	records 300 | dp-publish -t "$T" -k .seq
	psql_dp -c "create table $(ident) (seq bigint, fsym text, ts timestamptz, price double precision)"
	locked_alter "alter table $(ident) alter column seq type integer, alter column price type numeric"
	run --separate-stderr dp-sink-pg -t "$T" -g "$(uniq_name g)" -e --on-error "dlq=$T.dlq"
	alter_done
	echo "$stderr"
	[ "$status" -eq 0 ]
	run q "select count(*), count(distinct seq), count(*) filter (where price = 1000 + seq % 97 + 0.5) from $(ident)"
	[ "$output" = "300|300|300" ]
	[ "$(kcat_count "$T.dlq")" = 0 ]
	dp-topic delete "$T" "$T.dlq" -o json > /dev/null 2>&1 || true
}

@test "Kafka: a record read before ALTER COLUMN TYPE smallint that no longer fits stops with 78, never a dead letter" {
	create_topic "$T" 1
	create_topic "$T.dlq" 1
	records 50 | jq -c '.n = (if .seq == 5 then 70000 else .seq end)' | dp-publish -t "$T" -k .seq
	psql_dp -c "create table $(ident) (seq bigint, fsym text, ts timestamptz, price double precision, n integer)"
	G=$(uniq_name g)
	locked_alter "alter table $(ident) alter column n type smallint"
	run --separate-stderr dp-sink-pg -t "$T" -g "$G" -e --on-error "dlq=$T.dlq"
	alter_done
	echo "$stderr"
	[ "$status" -eq 78 ]
	[[ $stderr == *"table $T changed under dp-sink-pg (column \"n\" is now smallint, was integer): $T [0] offset 4 no longer fits: column \"n\" (smallint): 70000 is out of range for smallint; nothing of its batch was committed"* ]]
	[ "$(count)" = 0 ]
	[ "$(kcat_count "$T.dlq")" = 0 ]
	dp-topic delete "$T" "$T.dlq" -o json > /dev/null 2>&1 || true
}

# --- values are never changed; refused values never shape the table --------------

@test "a lone surrogate escape is a bad record, never U+FFFD; a pair is its character" {
	psql_dp -c "create table $(ident) (seq bigint, s text, j jsonb)"
	printf '%s\n' '{"seq":1,"s":"\ud83d\ude00"}' '{"seq":2,"s":"a\ud800"}' \
		'{"seq":3,"j":{"k":"\udc00"}}' '{"seq":4,"a\ud800":1}' '{"seq":5,"s":"ok","j":["\ud83d\ude00"]}' > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --on-error skip < "$W/in"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[[ $stderr == *'line 2: column "s" (text): "a\ud800" is a string with a lone surrogate escape (such as \ud800), which has no UTF-8 form'* ]]
	[[ $stderr == *'line 3: column "j" (jsonb): {"k":"\udc00"} is a string with a lone surrogate escape'* ]]
	[[ $stderr == *'line 4: key "a\ud800" holds a lone surrogate escape, which no column name can hold'* ]]
	[[ $stderr == *"3 bad records skipped"* ]]
	run q "select seq, s, j from $(ident) order by seq"
	[ "$output" = '1|😀|
5|ok|["😀"]' ]
}

@test "--create types a column only from values that fit it; the last of duplicate keys counts" {
	long=$(printf 'l%.0s' {1..64})
	printf '%s\n' '{"big":18446744073709551616,"c":1,"c":"x"}' '{"f":1e400,"g":1}' \
		'{"f":2.5,"g":2,"w":9007199254740993}' '{"w":0.5}' "{\"g\":3,\"$long\":1}" > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --create --on-error skip --hypertable off < "$W/in"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[[ $stderr == *'line 2: key "f" has a value that fits no column type (out of range for double precision), so the row cannot shape the table'* ]]
	[[ $stderr == *"line 5: key \"$long\" cannot be a column name: longer than 63 bytes"* ]]
	[[ $stderr == *"2 bad records skipped"* ]]
	run columns
	[ "$output" = "big numeric
c text
f double precision
g bigint
w numeric" ]
	run q "select big, c, f, g, w from $(ident) order by coalesce(g, 0), coalesce(w, 0)"
	[ "$output" = "18446744073709551616|x|||
||||0.5
||2.5|2|9007199254740993" ]
}

@test "--unknown-keys add: a refused row adds no column, the last duplicate types it, 1600 columns and long names are bad records, the run goes on" {
	psql_dp -c "create table $(ident) (a bigint)"
	{
		echo '{"a":"x","new":1}'
		echo '{"a":2,"c":1,"c":"x"}'
		python3 -c 'import json; print(json.dumps({"a": 3, **{"k%d" % i: i for i in range(1700)}}))'
		echo "{\"a\":4,\"$(printf 'l%.0s' {1..64})\":1}"
		echo '{"a":5,"d":1e400}'
		echo '{"a":6,"n":7}'
	} > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --unknown-keys add --on-error skip < "$W/in"
	echo "$stderr" | cut -c1-300
	[ "$status" -eq 0 ]
	[[ $stderr == *'line 1: column "a" (bigint): "x" is not an integer'* ]]
	[[ $stderr == *"line 3: 1700 keys without a column would take table $T past PostgreSQL's 1600 columns"* ]]
	[[ $stderr == *'line 4: key "llll'*'" cannot be a column name: longer than 63 bytes'* ]]
	[[ $stderr == *'line 5: key "d": 1e400 fits no column type (out of range for double precision), so no column is added for it'* ]]
	[[ $stderr == *"4 bad records skipped"* ]]
	run columns
	[ "$output" = "a bigint
c text
n bigint" ]
	run q "select a, c, n from $(ident) order by a"
	[ "$output" = "2|x|
6||7" ]
}
