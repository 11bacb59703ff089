#!/usr/bin/env python3
"""CPU seconds used so far by PostgreSQL and by the Kafka broker, from /proc.

    bench/proccpu.py POSTMASTER_PID KAFKA_PID     prints "PG_SECONDS KAFKA_SECONDS"

PostgreSQL is the postmaster and every process under it: each backend
runs in a process of its own that exits with its connection, and the
kernel adds an exited child's time to its parent's cutime/cstime once it
is reaped, so the postmaster's own times, its reaped children's times
and the times of the children still alive (zombies included) together
only ever grow.  The difference between two readings is what the server
spent in between: the backends of the measured connections, and whatever
the server did meanwhile (checkpoints, the WAL writer, autovacuum).
Kafka is one JVM: its utime + stime cover all its threads.  A PID of 0
reads as 0.
"""
import os
import sys

TICK = os.sysconf("SC_CLK_TCK")


def stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    # the command name is in parentheses and may hold spaces
    return s[s.rindex(")") + 2:].split()


def children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def tree(pid):
    """utime + stime + cutime + cstime of pid, plus utime + stime of its live descendants."""
    if not pid:
        return 0
    f = stat(pid)
    # fields after the name: state is [0], utime [11], stime [12], cutime [13], cstime [14]
    total = int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    for c in children(pid):
        try:
            total += tree(c)
        except OSError:      # gone meanwhile: its time is in our cutime now
            pass
    return total


def main():
    pg, kafka = int(sys.argv[1]), int(sys.argv[2])
    k = 0
    if kafka:
        f = stat(kafka)
        k = int(f[11]) + int(f[12])
    print("%.2f %.2f" % (tree(pg) / TICK, k / TICK))


if __name__ == "__main__":
    main()
