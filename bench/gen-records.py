#!/usr/bin/env python3
"""Market-data records of about SIZE bytes each, for the benchmark matrix.

    bench/gen-records.py SIZE N NDJSON CSV KEYED     write the three files
    bench/gen-records.py SIZE --ddl TABLE            print CREATE TABLE

SIZE is one of 40, 80, 200, 1000, 4000 (bytes a line, newline included,
within a few per cent).  The shapes are those a market-data pipeline
carries:
    40    a trade print: symbol, price, sequence number
    80    a price tick: pair, time, price
    200   a price record as dp-fetch writes it (bench/gen-prices.py)
    1000  that record with an order-book snapshot (jsonb, about 21 levels
          a side)
    4000  the same with a deeper book (about 100 levels a side)
NDJSON is what dp reads; CSV holds the same values as the records write
them, in the table's column order (what psql \\copy and
timescaledb-parallel-copy load); KEYED is "SYMBOL<TAB>JSON" a line, for
kcat -P -K '\\t' (the key dp-publish takes with -k .fsym or -k .s).
"""
import csv
import json
import sys

SYMS = ["BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "DOT", "LTC", "LINK", "AVAX"]

SHAPES = {
    40: ("s", [("s", "text"), ("p", "double precision"), ("n", "bigint")]),
    80: ("fsym", [("fsym", "text"), ("tsym", "text"), ("ts", "timestamptz"),
                  ("price", "double precision")]),
    200: ("fsym", [("type", "text"), ("source", "text"), ("market", "text"),
                   ("fsym", "text"), ("tsym", "text"), ("ts", "timestamptz"),
                   ("price", "double precision"), ("volume_24h", "double precision"),
                   ("change_pct_24h", "double precision"), ("mktcap", "bigint")]),
}
SHAPES[1000] = ("fsym", SHAPES[200][1] + [("book", "jsonb")])
SHAPES[4000] = SHAPES[1000]
LEVELS = {1000: 22, 4000: 106}


def ts(i):
    return "2026-11-27T%02d:%02d:%02dZ" % (i // 3600 % 24, i // 60 % 60, i % 60)


def record(size, i):
    s = SYMS[i % len(SYMS)]
    if size == 40:
        return s, '{"s":"%s","p":%d.%02d,"n":%d}' % (s, 1000 + i % 9000, i % 100, 10**9 + i)
    if size == 80:
        return s, ('{"fsym":"%s","tsym":"USD","ts":"%s.%03dZ","price":%d.%06d}'
                   % (s, ts(i)[:-1], i % 1000, 1000 + i % 90000, i * 7 % 1000000))
    base = ('{"type":"price","source":"cryptocompare","market":"CCCAGG",'
            '"fsym":"%s","tsym":"USD","ts":"%s","price":%d.%04d,"volume_24h":%d.25,'
            '"change_pct_24h":%s%d.%02d,"mktcap":%d'
            % (s, ts(i), 1000 + i % 90000, i % 10000, i * 13 % 10000000,
               "-" if i % 3 else "", i % 7, i % 100, 10**9 + i))
    if size == 200:
        return s, base + "}"
    p = 1000 + i % 90000
    side = lambda sign: ",".join('[%d.%02d,%d.%04d]' % (p + sign * (k + 1), (i + k) % 100,
                                                       (i * 7 + k) % 50, (i + 3 * k) % 10000)
                                for k in range(LEVELS[size]))
    return s, base + ',"book":{"bids":[%s],"asks":[%s]}}' % (side(-1), side(1))


def main():
    size = int(sys.argv[1])
    if size not in SHAPES:
        sys.exit("gen-records: SIZE is one of %s" % ", ".join(map(str, sorted(SHAPES))))
    cols = SHAPES[size][1]
    if sys.argv[2] == "--ddl":
        print("create table %s (%s)" % (sys.argv[3], ", ".join("%s %s" % c for c in cols)))
        return
    n = int(sys.argv[2])
    with open(sys.argv[3], "w") as nd, open(sys.argv[4], "w", newline="") as cv, \
            open(sys.argv[5], "w") as kd:
        w = csv.writer(cv, lineterminator="\n")
        for i in range(n):
            key, line = record(size, i)
            nd.write(line + "\n")
            kd.write(key + "\t" + line + "\n")
            r = json.loads(line, parse_float=str, parse_int=str)
            if "book" in r:     # the member's own text, as the record has it
                r["book"] = line[line.index(',"book":') + 8:-1]
            w.writerow([r[c] for c, _ in cols])


if __name__ == "__main__":
    main()
