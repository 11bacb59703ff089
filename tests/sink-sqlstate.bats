#!/usr/bin/env bats
# dp-sink-pg and what the server answers (lib/pg/sqlstate.c's table, one test
# per kind of row), and a server that does not answer at all: against the
# harness's PostgreSQL 15.  What a user sees: rows, stderr, exit status.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/sink

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-180}

setup() {
	W=$BATS_TEST_TMPDIR
	T=$(uniq_name sink)
	BG_PIDS=()
	RESTART_PID=
	FEED=
	MOUNTED=
	DB=
	FROZEN=()
}

teardown() {
	thaw
	stop_background
	psql_dp -c "drop table if exists $(ident)" > /dev/null 2>&1 || true
	if [[ -n $MOUNTED ]]; then
		psql_dp -c "drop tablespace if exists $(ident "ts_$T")" > /dev/null 2>&1 || true
		umount "$MOUNTED" || true
		rmdir "$MOUNTED" || true
	fi
	if [[ -n $DB ]]; then
		psql_dp -c "drop database if exists $(ident "$DB") with (force)" > /dev/null 2>&1 || true
	fi
}

# --- helpers -------------------------------------------------------------------

stored() { psql_dp -c "select next_offset from dp_sink_offsets where \"group\" = '' and topic = '$1' and partition = -1"; }
mktable() { psql_dp -c "create table $(ident) (seq bigint, fsym text, ts timestamptz, price double precision) $*"; }

open_feed() {
	rm -f "$W/feed"
	mkfifo "$W/feed"
	dp-sink-pg --stdin "$@" < "$W/feed" > "$W/out" 2> "$W/err" &
	SINK_PID=$!
	BG_PIDS+=("$SINK_PID")
	exec {FEED}> "$W/feed"
}
feed() { printf '%s\n' "$@" >&"$FEED"; }
feed_records() { records "$@" >&"$FEED"; }
close_feed() { exec {FEED}>&-; }
wait_sink() {
	status=0
	wait "$SINK_PID" || status=$?
	stderr=$(< "$W/err")
	echo "$stderr"
}

# $DP_PG with libpq's "options" (server settings for the session): db_with -c x=y ...
db_with() {
	local o sep='?'
	o=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(" ".join(sys.argv[1:])))' "$@")
	[[ $DP_PG == *\?* ]] && sep='&'
	echo "$DP_PG${sep}options=$o"
}

# The stack's own PostgreSQL: the postmaster's PID and its children's.
need_own_pg() {
	[[ -z ${DP_TEST_PG:-} && -n ${DP_STACK_DIR:-} && -r $DP_STACK_DIR/pg/data/postmaster.pid ]] ||
		skip "needs the harness's own PostgreSQL (DP_TEST_PG is set, or DP_STACK_DIR is not)"
}
pg_pids() {
	local pm
	pm=$(head -1 "$DP_STACK_DIR/pg/data/postmaster.pid")
	echo "$pm"
	awk -v pm="$pm" '$4 == pm { print $1 }' /proc/[0-9]*/stat 2>/dev/null
}
# freeze: SIGSTOP the stack's postmaster and every backend: a server that
# accepts TCP (the kernel does) and never answers.  thaw undoes it.
freeze() {
	mapfile -t FROZEN < <(pg_pids)
	kill -STOP "${FROZEN[@]}"
}
# Data the server has not read: a socket on its port with a receive queue.
server_has_unread() {
	local port
	port=$(printf '%04X' "$(pg_port)")
	awk -v p=":$port" 'NR > 1 && substr($2, length($2) - 4) == p && $4 == "01" {
		split($5, q, ":"); if (q[2] != "00000000") found = 1 } END { exit !found }' /proc/net/tcp
}
thaw() {
	((${#FROZEN[@]})) || return 0
	kill -CONT "${FROZEN[@]}" 2>/dev/null || true
	FROZEN=()
}

# --- retried in place --------------------------------------------------------------

@test "a deadlock (40P01) is retried in place, in its own words, counted in --progress; every row once" {
	mktable
	open_feed --table "$T" --source-id "$T" --progress
	feed_records 10
	wait_until 10 count_is 10
	# another session holds the source's offsets row, then wants the table
	# the sink's writer has locked while it waits for that row: a deadlock,
	# found by the writer's backend (its deadlock_timeout runs out first)
	PGAPPNAME=dp-test-locker psql "$DP_PG" -X -q -v ON_ERROR_STOP=1 > "$W/locker.log" 2>&1 <<EOF &
set deadlock_timeout = '20s';
begin;
select 1 from dp_sink_offsets where topic = '$T' and partition = -1 for update;
\! touch "$W/row-locked"
do \$\$ begin
  for i in 1..1200 loop
    perform pg_stat_clear_snapshot();
    if exists (select 1 from pg_stat_activity where application_name = 'dp-sink-pg'
               and wait_event_type = 'Lock') then return; end if;
    perform pg_sleep(0.05);
  end loop;
  raise exception 'no dp-sink-pg waited for the row';
end \$\$;
lock table $(ident) in access exclusive mode;
commit;
EOF
	LOCKER=$!
	BG_PIDS+=("$LOCKER")
	wait_until 10 test -e "$W/row-locked"
	feed_records 10 11
	wait "$LOCKER" || { cat "$W/locker.log"; false; }
	wait_until 20 count_is 20
	close_feed
	wait_sink
	[ "$status" -eq 0 ]
	[[ $stderr == *"source '$T': a deadlock with another session: deadlock detected"*"(SQLSTATE 40P01 deadlock_detected); trying the batch again in "*" (retry 1 of 10)"* ]]
	[[ $stderr != *"lost the database"* ]]
	[[ $stderr == *"progress: 20 rows"*", 1 retry"* ]]
	run q "select count(*), count(distinct seq) from $(ident)"
	[ "$output" = "20|20" ]
	[ "$(stored "$T")" = 20 ]
}

@test "a lock not granted within lock_timeout (55P03) is retried; --max-retries bounds it: exit 75 naming it" {
	mktable
	db=$(db_with -c lock_timeout=200ms)
	PGAPPNAME=dp-test-locker psql_dp -c "begin" -c "lock table $(ident)" -c "select pg_sleep(60)" &
	LOCKER=$!
	BG_PIDS+=("$LOCKER")
	locked() {
		[[ $(psql_dp -c "select count(*) from pg_locks l join pg_stat_activity a using (pid)
		                 where a.application_name = 'dp-test-locker' and l.granted
		                 and l.mode = 'AccessExclusiveLock'") == 1 ]]
	}
	wait_until 10 locked
	records 5 > "$W/in"
	run --separate-stderr dp-sink-pg --stdin --table "$T" --source-id "$T" --db "$db" --max-retries 2 < "$W/in"
	echo "$stderr"
	[ "$status" -eq 75 ]
	[[ $stderr == *"(retry 2 of 2)"* ]]
	[[ $stderr == *"cannot write to $T: gave up on the batch after 2 retries: a lock was not granted in time (lock_timeout): canceling statement due to lock timeout (SQLSTATE 55P03 lock_not_available)"* ]]
	[ "$(count)" = 0 ]
	# held for a moment only: a retry gets it
	psql_dp -c "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'dp-test-locker'" > /dev/null
	PGAPPNAME=dp-test-locker psql_dp -c "begin" -c "lock table $(ident)" -c "select pg_sleep(1)" &
	BG_PIDS+=($!)
	wait_until 10 locked
	run --separate-stderr dp-sink-pg --stdin --table "$T" --source-id "$T" --db "$db" < "$W/in"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[[ $stderr == *"(SQLSTATE 55P03 lock_not_available); trying the batch again"* ]]
	[ "$(count)" = 5 ]
	[ "$(stored "$T")" = 5 ]
}

@test "a full disk (53100) is retried in place with its words; --max-retries bounds it; room again and the batch lands" {
	need_own_pg
	[[ $(id -u) == 0 ]] || skip "mounting a small tmpfs for a tablespace needs root"
	MOUNTED=$(mktemp -d /tmp/dp-ts.XXXXXX)
	chmod 755 "$MOUNTED"
	owner=$(stat -c %u "$DP_STACK_DIR/pg/data")
	if ! mount -t tmpfs -o "size=256k,uid=$owner,mode=0700" tmpfs "$MOUNTED"; then
		rmdir "$MOUNTED"
		MOUNTED=
		skip "cannot mount a tmpfs here"
	fi
	psql_dp -c "create tablespace $(ident "ts_$T") location '$MOUNTED'"
	mktable "tablespace $(ident "ts_$T")"
	records 20000 > "$W/in"
	run --separate-stderr timeout 60 dp-sink-pg --stdin --table "$T" --source-id "$T" \
		--batch-rows 2000 --max-retries 1 < "$W/in"
	echo "$stderr"
	[ "$status" -eq 75 ]
	[[ $stderr == *"the database's disk is full: could not extend file"*"(SQLSTATE 53100 disk_full); trying the batch again in"*"(retry 1 of 1)"* ]]
	[[ $stderr == *"cannot write to $T: gave up on the batch after 1 retries: the database's disk is full"* ]]
	[[ $stderr != *"lost the database"* ]]
	got=$(count)
	[ "$got" -lt 20000 ]
	[ "$(stored "$T")" = "$got" ]
	# the same, while someone makes room
	open_feed --table "$T" --source-id "$T" --batch-rows 2000
	cat "$W/in" >&"$FEED" &      # blocks while the sink waits: in the background
	BG_PIDS+=($!)
	close_feed
	wait_until 60 grep -q "SQLSTATE 53100 disk_full); trying the batch again" "$W/err"
	mount -o remount,size=64m "$MOUNTED"
	wait_sink
	[ "$status" -eq 0 ]
	run q "select count(*), count(distinct seq) from $(ident)"
	[ "$output" = "20000|20000" ]
	[ "$(stored "$T")" = 20000 ]
}

# --- outages -------------------------------------------------------------------------

@test "a read-only database (25006, a standby after a failover) is an outage in its own words: waited out, bounded by --max-retries" {
	DB=$(uniq_name ro)
	url=${DP_PG%%\?*}
	url=${url%/*}/$DB
	psql_dp -c "create database $(ident "$DB")"
	psql "$url" -X -q -v ON_ERROR_STOP=1 -c "create table t (a bigint)"
	psql_dp -c "alter database $(ident "$DB") set default_transaction_read_only = on"
	run --separate-stderr timeout 60 dp-sink-pg --stdin --table t --db "$url" --max-retries 2 <<< '{"a":1}'
	echo "$stderr"
	[ "$status" -eq 69 ]
	[[ $stderr == *"the database is read-only (a standby, or a primary demoted by a failover): "*"read-only transaction (SQLSTATE 25006 read_only_sql_transaction); reconnecting"* ]]
	[[ $stderr == *"gave up on the database after 2 retries"* ]]
	[[ $stderr != *"lost the database"* ]]
	# the failover ends: a new session is read-write, and the row lands
	open_feed --table t --db "$url"
	feed '{"a":2}'
	wait_until 20 grep -q "SQLSTATE 25006" "$W/err"
	psql_dp -c "alter database $(ident "$DB") set default_transaction_read_only = off"
	landed() { [[ $(psql "$url" -XAtc 'select count(*) from t') == 1 ]]; }
	wait_until 30 landed
	close_feed
	wait_sink
	[ "$status" -eq 0 ]
	[[ $stderr == *"reconnected to the database after"* ]]
	[ "$(psql "$url" -XAtc 'select a from t')" = 2 ]
}

# --- stop the run ---------------------------------------------------------------------

@test "a limit of the server's configuration (53400) stops the run with 78, naming it, without retrying" {
	psql_dp -c "create table $(ident) (seq bigint primary key, fsym text, ts timestamptz, price double precision)"
	records 20000 > "$W/in"
	run --separate-stderr timeout 60 dp-sink-pg --stdin --table "$T" --upsert seq --batch-rows 20000 \
		--db "$(db_with -c work_mem=64kB -c temp_file_limit=64kB)" < "$W/in"
	echo "$stderr"
	[ "$status" -eq 78 ]
	[[ $stderr == *"cannot write to $T: a limit of the server's configuration was reached (raise it, or make the batches smaller): temporary file size exceeds temp_file_limit (64kB) (SQLSTATE 53400 configuration_limit_exceeded)"* ]]
	[[ $stderr != *"trying the batch again"* && $stderr != *"reconnecting"* ]]
	[ "$(count)" = 0 ]
}

# --- a server that does not answer ---------------------------------------------------

@test "connections probe a silent server after 30 s (keepalives) by default; the user's keepalives settings win" {
	# Each connection's socket in /proc/net/tcp: its timer (2: keepalive)
	# and the seconds until it fires.  The kernel's default is 7200 s.
	timers() {
		python3 - "$1" "$(pg_port)" "$(getconf CLK_TCK)" <<'PY'
import os, sys
pid, port, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
inodes = set()
for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        t = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        continue
    if t.startswith("socket:["):
        inodes.add(t[8:-1])
for line in open("/proc/net/tcp").readlines()[1:]:
    f = line.split()
    if f[9] in inodes and int(f[2].split(":")[1], 16) == port and f[3] == "01":
        tr, when = f[5].split(":")
        print(int(tr, 16), int(when, 16) // hz)
PY
	}
	probes_within() { # MIN MAX: two connections, each with a keepalive timer due in MIN..MAX s
		run timers "$SINK_PID"
		echo "timers: $output"
		[ "${#lines[@]}" -eq 2 ] || return 1
		for l in "${lines[@]}"; do
			read -r tr secs <<< "$l"
			((tr == 2 && secs >= $1 && secs <= $2)) || return 1
		done
	}
	pg_port > /dev/null || skip "DP_PG is not the harness's own PostgreSQL on 127.0.0.1"
	mktable
	open_feed --table "$T"
	feed_records 3
	wait_until 10 count_is 3
	probes_within 0 30      # the control connection and the writer
	close_feed
	wait_sink
	[ "$status" -eq 0 ]
	sep='?'
	[[ $DP_PG == *\?* ]] && sep='&'
	open_feed --table "$T" --db "$DP_PG${sep}keepalives_idle=600"
	feed_records 3 4
	wait_until 10 count_is 6
	probes_within 31 600
	close_feed
	wait_sink
	[ "$status" -eq 0 ]
}

@test "SIGTERM while the server does not answer: cancelled, then the socket closed: ends within the documented deadline, exit 143 (--stdin has an end), nothing half-written" {
	need_own_pg
	mktable
	open_feed --table "$T" --source-id "$T" --trace-states
	feed_records 5
	wait_until 10 count_is 5
	freeze
	feed_records 5 6
	# the writer sent its batch: it waits, unread, in a sleeping backend's socket
	wait_until 10 server_has_unread
	t0=$(date +%s%N)
	kill -TERM "$SINK_PID"
	wait_until 8 proc_gone "$SINK_PID"
	elapsed=$((($(date +%s%N) - t0) / 1000000))
	thaw
	wait_sink
	echo "ended ${elapsed} ms after the signal"
	[ "$status" -eq 143 ]
	((elapsed < 4000))
	[[ $stderr == *"the batch in flight did not commit within 2000 ms of the signal: rolling it back"* ]]
	[[ $stderr == *"the database answered neither the batch nor its cancel within 500 ms: closed the connection; the batch is not committed"* ]]
	wait_until 20 pg_isready -q -d "$DP_PG"
	[ "$(count)" = 5 ]
	[ "$(stored "$T")" = 5 ]
}
