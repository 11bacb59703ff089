# tests/helpers/cluster.bash - a three-broker cluster under the tests of
# tests/cluster/: which broker leads what, killing and starting brokers.
# Load after helpers/common and helpers/kafka.
#
# The cluster is the harness's own (scripts/stack up --brokers 3: brokers
# 1, 2 and 3, node.id = N, replication factor 3, min.insync.replicas=2,
# one __consumer_offsets partition, a broker fenced 4 s after it stops).
#
#   cluster_setup_file        in setup_file: skips the file unless the stack is
#                             a cluster of the harness's own
#   cluster_heal              in setup and teardown: starts every broker that
#                             is down (with its data) and waits until every
#                             partition of the cluster has all its replicas in
#                             sync, so that each test starts from a whole cluster
#   broker_kill N             SIGKILL broker N (scripts/stack kill kafka --broker N)
#   broker_start N            start broker N again with its data, wait until it
#                             serves (scripts/stack start kafka --broker N)
#   broker_up N, broker_down N  whether the cluster's metadata names broker N
#   leader_of TOPIC [PART]    the broker that leads partition PART (0) of TOPIC
#   isr_of TOPIC [PART]       its in-sync replicas, comma-separated, sorted
#   coordinator_of GROUP      the broker that is GROUP's coordinator (the leader
#                             of the one __consumer_offsets partition)
#   other_than N...           a broker that is none of N...
#   keyed_seqs N KEYS         N lines {"k":"kK","seq":i,...}, seq 1..N, key i % KEYS
#   once_in_order FILE N      FILE ("key<TAB>value" lines, a topic read partition by
#                             partition) holds seq 1..N each once, and each key's
#                             seqs in increasing order

stack() {
	"$DP_ROOT/scripts/stack" "$@"
}

cluster_setup_file() {
	if [[ -n ${DP_TEST_BROKERS:-} || -z ${DP_STACK_DIR:-} ||
		$(cat "$DP_STACK_DIR/kafka.brokers" 2>/dev/null) != 3 ]]; then
		skip "needs the harness's own three-broker cluster (make check-cluster, or DP_STACK_BROKERS=3 scripts/check tests/cluster/...)"
	fi
}

# Every partition has a leader and all its replicas in its ISR.
cluster_whole() {
	kcat -b "$DP_BROKERS" -L -m 5 2>/dev/null | python3 -c '
import re, sys
text = sys.stdin.read()
brokers = re.search(r"^ (\d+) brokers:", text, re.M)
if not brokers or int(brokers.group(1)) != 3:
    sys.exit(1)
for m in re.finditer(r"partition \d+, leader (-?\d+), replicas: ([\d,]*), isrs: ([\d,]*)", text):
    if m.group(1) == "-1" or set(m.group(2).split(",")) != set(m.group(3).split(",")):
        sys.exit(1)
' || return 1
}

cluster_heal() {
	stack start kafka >"$BATS_TEST_TMPDIR/heal.log" 2>&1 || { cat "$BATS_TEST_TMPDIR/heal.log" >&2; return 1; }
	wait_until 120 cluster_whole
}

broker_kill() {
	stack kill kafka --broker "$1" 2>&1
}

broker_start() {
	stack start kafka --broker "$1" 2>&1
}

broker_up() {
	kcat -b "$DP_BROKERS" -L -m 5 2>/dev/null | grep -q "^  broker $1 at "
}

broker_down() {
	kcat -b "$DP_BROKERS" -L -m 5 2>/dev/null | grep -q '^ [0-9]* brokers:' &&
		! broker_up "$1"
}

leader_of() {
	dp-topic describe "$1" -o json 2>/dev/null |
		jq -r --argjson p "${2:-0}" '.partition_info[] | select(.partition == $p) | .leader'
}

isr_of() {
	dp-topic describe "$1" -o json 2>/dev/null |
		jq -r --argjson p "${2:-0}" '.partition_info[] | select(.partition == $p) | .isr | sort | map(tostring) | join(",")'
}

coordinator_of() {
	local n
	# With one partition every group's coordinator leads it (Kafka picks
	# the partition by the group id's hash modulo their number).
	n=$(dp-topic describe __consumer_offsets -o json | jq .partitions)
	[[ $n == 1 ]] || { echo "coordinator_of: __consumer_offsets has $n partitions, not 1" >&2; return 1; }
	leader_of __consumer_offsets 0
}

other_than() {
	local b x
	for b in 1 2 3; do
		for x in "$@"; do
			[[ $b != "$x" ]] || continue 2
		done
		echo "$b"
		return 0
	done
	return 1
}

keyed_seqs() {
	python3 - "$1" "$2" <<'PY'
import sys
n, keys = int(sys.argv[1]), int(sys.argv[2])
w = sys.stdout.write
for i in range(1, n + 1):
    w('{"k":"k%d","seq":%d,"price":%d.%02d,"pad":"%s"}\n'
      % (i % keys, i, 30000 + i % 1000, i % 100, "x" * (i % 64)))
PY
}

once_in_order() {
	python3 - "$1" "$2" <<'PY'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
seen = bytearray(n + 1)
last = {}
bad = 0
dups = 0
disorder = 0
for line in open(path, encoding="utf-8"):
    key, _, value = line.rstrip("\n").partition("\t")
    seq = json.loads(value)["seq"]
    if seen[seq]:
        dups += 1
        if dups <= 5:
            print("seq %d seen again (key %s)" % (seq, key))
    seen[seq] = 1
    if seq <= last.get(key, 0):
        disorder += 1
        if disorder <= 5:
            print("key %s: seq %d after %d" % (key, seq, last[key]))
    last[key] = seq
missing = [i for i in range(1, n + 1) if not seen[i]]
if missing:
    print("%d seqs missing, the first %s" % (len(missing), missing[:5]))
if dups:
    print("%d duplicates" % dups)
if disorder:
    print("%d out of order" % disorder)
sys.exit(1 if missing or dups or disorder else 0)
PY
}
