#!/usr/bin/env bats
# TimescaleDB users' habits with dp-sink-pg: --chunk-interval where it can
# do nothing is a usage error or a warning, never silence; --hypertable on
# refusing a plain table says how to make it one (migrate_data => true
# when it has rows); --upsert keys without the time column say that a
# hypertable's unique index must include it.  TimescaleDB is not in
# Debian: the tests that need it skip visibly without it (point DP_PG, or
# DP_TEST_PG before scripts/stack up, at a server that has it).

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/sink

setup() {
	W=$BATS_TEST_TMPDIR
	T=$(uniq_name ts)
}

teardown() {
	psql_dp -c "drop table if exists \"$T\"" >/dev/null 2>&1 || true
}

has_timescaledb() {
	[[ $(psql_dp -c "select count(*) from pg_extension where extname = 'timescaledb'") == 1 ]]
}
need_timescaledb() {
	has_timescaledb ||
		skip "TimescaleDB is not installed on this server (point DP_PG or DP_TEST_PG at one with CREATE EXTENSION timescaledb done)"
}

@test "--chunk-interval where no hypertable is made: a usage error, not silence" {
	run dp-sink-pg --stdin --table "$T" --create --chunk-interval 1d --hypertable off < /dev/null
	[ "$status" -eq 64 ]
	[[ $output == *"--chunk-interval sizes a hypertable's chunks, and --hypertable off makes none"* ]]
	run dp-sink-pg --stdin --table "$T" --chunk-interval 1d < /dev/null
	[ "$status" -eq 64 ]
	[[ $output == *"--chunk-interval sizes the chunks of the hypertable --create makes: give --create (an existing hypertable's: SELECT set_chunk_time_interval(...))"* ]]
	[ "$(count)" = "" ]     # nothing made
}

@test "--chunk-interval with --create on an existing plain table: a warning" {
	psql_dp -c "create table \"$T\" (seq bigint, fsym text, ts timestamptz, price double precision)"
	records 3 > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --create --chunk-interval 1d < "$W/in"
	[ "$status" -eq 0 ]
	[ "$stderr" = "dp-sink-pg: --chunk-interval: table $T exists and is not a hypertable; the option sizes the chunks of a hypertable --create makes" ]
	[ "$(count)" = 3 ]
}

@test "--chunk-interval on an existing hypertable: a warning naming set_chunk_time_interval, unless it is its size" {
	need_timescaledb
	records 3 > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --create --chunk-interval 1h < "$W/in"
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
	# the same size again: nothing to say
	run --separate-stderr dp-sink-pg --stdin --table "$T" --create --chunk-interval 1h < "$W/in"
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
	run --separate-stderr dp-sink-pg --stdin --table "$T" --create --chunk-interval 1d < "$W/in"
	[ "$status" -eq 0 ]
	[ "$stderr" = "dp-sink-pg: --chunk-interval: table $T exists, and its chunks stay as they are (01:00:00); to size the next ones: SELECT set_chunk_time_interval('$T', INTERVAL '1d')" ]
	[ "$(psql_dp -c "select time_interval from timescaledb_information.dimensions where hypertable_name = '$T'")" = "01:00:00" ]
}

@test "--hypertable on and a plain table: the refusal says how to make it one (migrate_data when it has rows)" {
	need_timescaledb
	psql_dp -c "create table \"$T\" (seq bigint, fsym text, ts timestamptz, price double precision)"
	records 3 > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --hypertable on < "$W/in"
	[ "$status" -eq 78 ]
	[[ $stderr == *"--hypertable on: table $T exists and is not a hypertable; make it one: SELECT create_hypertable('$T', 'ts')"* ]]
	psql_dp -c "insert into \"$T\" values (1, 'ETH', now(), 1.5)"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --hypertable on < "$W/in"
	[ "$status" -eq 78 ]
	[[ $stderr == *"--hypertable on: table $T exists and is not a hypertable; make it one, moving its rows into chunks: SELECT create_hypertable('$T', 'ts', migrate_data => true)"* ]]
	# and what it says works
	psql_dp -c "select create_hypertable('$T', 'ts', migrate_data => true)" > /dev/null
	run --separate-stderr dp-sink-pg --stdin --table "$T" --hypertable on < "$W/in"
	[ "$status" -eq 0 ]
	[ "$(count)" = 4 ]
}

@test "--upsert keys without the time column: a hypertable's unique index must include it, said" {
	need_timescaledb
	records 3 > "$W/in"
	# --create under auto: a plain table, and why
	run --separate-stderr dp-sink-pg --stdin --table "$T" --create --upsert seq < "$W/in"
	[ "$status" -eq 0 ]
	[ "$stderr" = "dp-sink-pg: the --upsert keys do not include the time column ts, and a hypertable's unique index must include it (add ts to --upsert): making $T a plain table" ]
	psql_dp -c "drop table \"$T\""
	run --separate-stderr dp-sink-pg --stdin --table "$T" --create --upsert seq --hypertable on < "$W/in"
	[ "$status" -eq 78 ]
	[[ $stderr == *"--hypertable on: the --upsert keys do not include the time column ts, and a hypertable's unique index must include it (add ts to --upsert)"* ]]
	# an existing hypertable keyed on (seq, ts): --upsert seq cannot be its arbiter
	run --separate-stderr dp-sink-pg --stdin --table "$T" --create --upsert seq,ts < "$W/in"
	[ "$status" -eq 0 ]
	run --separate-stderr dp-sink-pg --stdin --table "$T" --upsert seq < "$W/in"
	[ "$status" -eq 78 ]
	[[ $stderr == *"--upsert: table $T has no unique index or primary key on exactly (seq), which ON CONFLICT needs; and a hypertable's unique index must include its time column ts: add ts to --upsert (and to the index)"* ]]
}
