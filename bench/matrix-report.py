#!/usr/bin/env python3
"""Markdown tables from bench/matrix.sh's measurements.

    bench/matrix-report.py RESULTS "LOAD AT START" "LOAD AT END" SIZE=N...

SIZE=N: a cell of records of SIZE bytes has N records.

RESULTS has one run a line:
    size parts rep name seconds rss_kb client_cpu pg_cpu kafka_cpu load1
Rates and CPU are medians over repetitions (CPU in seconds per 1M
records); RSS is the largest; a ratio is the median over the (cell,
repetition) pairs of reference seconds / dp seconds.
"""
import collections
import statistics
import sys

runs = collections.defaultdict(dict)      # (size, parts, rep) -> name -> row
loads = []
for line in open(sys.argv[1]):
    f = line.split()
    size, parts, rep, name = int(f[0]), int(f[1]), f[2], f[3]
    secs, rss, cli, pg, kafka, load = float(f[4]), int(f[5]), float(f[6]), float(f[7]), \
        float(f[8]), float(f[9])
    runs[(size, parts, rep)][name] = dict(secs=secs, rss=rss, cli=cli, pg=pg, kafka=kafka)
    loads.append(load)

sizes = sorted({k[0] for k in runs})
parts_all = sorted({k[1] for k in runs})


def rows(name, size, parts=None):
    return [(k, v[name]) for k, v in sorted(runs.items())
            if k[0] == size and (parts is None or k[1] == parts) and name in v]


def ratio(ours, ref, size, parts=None):
    r = [v[ref]["secs"] / v[ours]["secs"] for k, v in sorted(runs.items())
         if k[0] == size and (parts is None or k[1] == parts) and ours in v and ref in v]
    return statistics.median(r) if r else None


def fmt_ratio(x):
    return "-" if x is None else "%.2f" % x


def line(size, parts, label, name, n, refs, kafka=True, pg=True):
    rs = [v for _, v in rows(name, size, parts)]
    if not rs:
        return None
    secs = statistics.median(v["secs"] for v in rs)
    per = 1e6 / n
    cli = statistics.median(v["cli"] for v in rs) * per
    pgc = statistics.median(v["pg"] for v in rs) * per
    kc = statistics.median(v["kafka"] for v in rs) * per
    cells = ["%d B" % size, "-" if parts is None else str(parts), label,
             "{:,.0f}".format(n / secs)]
    cells += [fmt_ratio(ratio(name, ref, size, parts)) if ref != name else "1.00"
              for ref in refs]
    cells += ["%.1f" % (max(v["rss"] for v in rs) / 1024), "%.2f" % cli]
    if pg:
        cells.append("%.2f" % pgc)
    if kafka:
        cells.append("%.2f" % kc)
    cells.append("%.2f" % (cli + (pgc if pg else 0) + (kc if kafka else 0)))
    return "| " + " | ".join(cells) + " |"


def main():
    counts = {int(k): int(v) for k, v in (a.split("=") for a in sys.argv[4:])}
    load_start, load_end = sys.argv[2], sys.argv[3]
    print("Load average (1, 5, 15 min) at start %s, at end %s; 1-min load during "
          "the runs %.1f to %.1f (median %.1f).  CPU is seconds per 1M records: "
          "the client (user+sys), PostgreSQL (the whole server), the Kafka broker, "
          "and their sum." % (load_start, load_end, min(loads), max(loads),
                              statistics.median(loads)))
    print()
    print("Into PostgreSQL (exactly once for dp; ratios are the reference's time / "
          "dp's, median of pairs):")
    print()
    print("| record | partitions | loader | rows/s | vs psql | vs tpc | peak RSS MB | "
          "client CPU | PostgreSQL CPU | Kafka CPU | total CPU |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        n = counts[size]
        for label, name in (("psql \\copy", "psql"), ("timescaledb-parallel-copy -w 2", "tpc"),
                            ("dp-sink-pg --stdin", "dp-sink-pg-stdin")):
            out = line(size, None, label, name, n, ("psql", "tpc"), kafka=False)
            if out:
                print(out)
        for parts in parts_all:
            out = line(size, parts, "dp-sink-pg -t", "dp-sink-pg-t", n, ("psql", "tpc"))
            if out:
                print(out)
    print()
    print("Kafka clients (ratios: the reference's time / dp's, median of pairs):")
    print()
    print("| record | partitions | command | records/s | vs reference | peak RSS MB | "
          "client CPU | Kafka CPU | total CPU |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        n = counts[size]
        for parts in parts_all:
            for label, name, ref in (("kcat -P (idempotent, keys)", "kcat-P", "kcat-P"),
                                     ("dp-publish", "dp-publish", "kcat-P"),
                                     ("kcat -C (no end wait)", "kcat-C", "kcat-C"),
                                     ("dp-tail", "dp-tail", "kcat-C")):
                out = line(size, parts, label, name, n, (ref,), pg=False)
                if out:
                    print(out)
    print()
    print("Over the whole matrix (each ratio's smallest, median and largest over the "
          "cells; the largest peak RSS):")
    print()
    print("| dp | against | smallest | median | largest | peak RSS MB |")
    print("|---|---|---:|---:|---:|---:|")
    for ours, ref, label in (("dp-sink-pg-t", "psql", "dp-sink-pg -t"),
                             ("dp-sink-pg-t", "tpc", "dp-sink-pg -t"),
                             ("dp-sink-pg-stdin", "psql", "dp-sink-pg --stdin"),
                             ("dp-tail", "kcat-C", "dp-tail"),
                             ("dp-publish", "kcat-P", "dp-publish")):
        cells = [ratio(ours, ref, s, p) for s in sizes for p in parts_all]
        cells = [c for c in cells if c is not None]
        if not cells:
            continue
        rss = max(v[ours]["rss"] for v in runs.values() if ours in v) / 1024
        print("| %s | %s | %.2f | %.2f | %.2f | %.1f |" % (
            label, {"psql": "psql \\copy", "tpc": "timescaledb-parallel-copy",
                    "kcat-C": "kcat -C", "kcat-P": "kcat -P"}[ref],
            min(cells), statistics.median(cells), max(cells), rss))


main()
