#!/usr/bin/env python3
"""bench/gen-stream.py N - N streamer messages for bench/stream.sh, one a line.

Made from the recorded messages of tests/fixtures/cryptocompare-stream (see
its README.txt): ticker updates of 2~Coinbase~BTC~GBP in the shape of the
recorded partial one, aggregate updates of 5~CCCAGG~BTC~USD in the shape of
the recorded full one, and trades of 0~Coinbase~BTC~USD in the documented
shape, each trade with an id of its own (a repeated one would be dropped as
a duplicate, not printed).  Prices and volumes move a little from message
to message.  A first full ticker message comes first, so that the partial
ones merge into complete records.  Deterministic: the same N gives the same
lines.
"""
import json
import os
import sys

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "cryptocompare-stream")


def lines(name):
    with open(os.path.join(FIX, name), encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    pt = lines("ptracker__wss_response_test.ndjson")
    full, partial = json.loads(pt[1]), json.loads(pt[5])
    agg = json.loads(lines("jobsboard__cccagg_btc_usd.ndjson")[0])
    trade = json.loads(lines("SYNTHETIC__trades_coinbase_btc_usd.ndjson")[0])
    out = [json.dumps(full, separators=(",", ":"))]
    for i in range(1, n):
        k = i % 10
        if k < 4:
            m = dict(partial)
            m["PRICE"] = round(partial["PRICE"] + (i % 97) * 0.01, 2)
            m["LASTUPDATE"] = partial["LASTUPDATE"] + i // 10
            m["LASTTRADEID"] = str(29522101 + i)
            m["VOLUMEDAY"] = round(partial["VOLUMEDAY"] + i * 1e-4, 8)
        elif k < 7:
            m = {key: agg[key] for key in ("TYPE", "MARKET", "FROMSYMBOL", "TOSYMBOL", "FLAGS")}
            m["PRICE"] = round(agg["PRICE"] + (i % 89) * 0.5, 4)
            m["LASTUPDATE"] = agg["LASTUPDATE"] + i // 10
            m["LASTVOLUME"] = agg["LASTVOLUME"]
            m["LASTVOLUMETO"] = agg["LASTVOLUMETO"]
            m["LASTTRADEID"] = str(217093517 + i)
            m["VOLUME24HOUR"] = round(agg["VOLUME24HOUR"] + i * 1e-3, 8)
        else:
            m = dict(trade)
            m.pop("TSNS", None)
            m["ID"] = str(12345678 + i)
            m["TS"] = m["RTS"] = trade["TS"] + i // 10
            m["P"] = round(trade["P"] + (i % 83) * 0.25, 2)
            m["TOTAL"] = round(m["P"] * m["Q"], 8)
            m["CCSEQ"] = trade["CCSEQ"] + i
            m["F"] = "12"[i % 2]
        out.append(json.dumps(m, separators=(",", ":")))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
