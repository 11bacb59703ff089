#!/usr/bin/env python3
"""ccserver.py - a stand-in for the CryptoCompare min-api, for dp-fetch's tests.

Standard library only.  Binds 127.0.0.1 on a free port and writes the port
to --port-file (atomically, so a test can poll for the file).  Serves recorded
responses from --fixtures according to a scenario (a JSON file):

    {"routes": {"/data/pricemultifull": [ENTRY, ENTRY, ...],
                "/data/v2/histominute": [ENTRY, ...]},
     "expect_key": "KEY"}                    (optional, also $CC_EXPECT_KEY)

Each route's entries answer its requests in order; an entry with "times": N
answers N requests; the last entry answers all the rest.  An ENTRY is an
object with any of:

    "file": NAME        body = fixture file NAME, byte for byte
    "body": TEXT        body = TEXT
    "json": VALUE       body = VALUE as JSON
    "histo": NAME       a histo endpoint over the candles of fixture NAME (v1
                        or v2 layout): honors limit and toTs like the API
                        (the limit+1 candles at or before toTs, oldest
                        first, in the v2 envelope), and aggregate (see
                        below)
    "zero_fill": true   with histo: slots before the first candle are
                        all-zero candles, as the API gives before a coin existed
    "clock": T          with histo: the API's clock, epoch seconds: candles
                        opening after T do not exist yet (an API whose clock
                        is behind the client's)
    "status": N         HTTP status (default 200)
    "delay": SECONDS    wait before answering
    "truncate": N       send only the first N bytes of the body (with a
                        matching Content-Length: a complete but cut body)
    "gzip": true        gzip the body (when the client accepts it)
    "headers": {..}     extra response headers
    "drop": true        close the connection without answering
    "times": N          answer N requests with this entry (default 1)

Aggregated candles.  With aggregate=N (N > 1) a histo route answers with
candles of N times the endpoint's interval, derived from the fixture's
candles as the API documents them: each opens on a whole multiple of its
size since the epoch (aggregatePredictableTimePeriods, the default), and
holds the fixture candles whose endpoint-interval candle opens at or before
toTs (so a toTs inside an aggregated candle gives it cut short, the way the
API may); open is the first one's open, close the last one's close, high
the highest, low the lowest, volumes the sums, in time order.  A fixture
finer than the endpoint (minutes on histohour) is grouped the same way.
limit counts aggregated candles, and "if limit * aggregate > 2000 we reduce
the limit param on our side" (the API documentation) is done too.

A path without a route gets the API's "Path does not exist" error (Type 0).

Every request is logged to --log as one JSON line: n, t (epoch seconds),
path, query (dict), auth (whether an Authorization header came),
auth_scheme (its first word), auth_ok (whether it was "Apikey <expect_key>";
null without expect_key), ua, accept_encoding.  The key itself is never
logged.
"""
import gzip
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import serverlib

STEPS = {"histominute": 60, "histohour": 3600, "histoday": 86400}
NO_PATH = {"Response": "Error", "Message": "Path does not exist", "Type": 0, "Data": {}}


class Scenario:
    def __init__(self, spec, fixtures):
        self.routes = spec.get("routes", {})
        self.expect_key = spec.get("expect_key") or os.environ.get("CC_EXPECT_KEY")
        self.fixtures = fixtures
        self.lock = threading.Lock()
        self.pos = {}      # path -> (entry index, uses of that entry)
        self.seq = 0
        self.cache = {}

    def next_entry(self, path):
        entries = self.routes.get(path)
        if not entries:
            return None
        with self.lock:
            i, used = self.pos.get(path, (0, 0))
            entry = entries[i]
            used += 1
            if used >= entry.get("times", 1) and i + 1 < len(entries):
                i, used = i + 1, 0
            self.pos[path] = (i, used)
            return entry

    def candles(self, name):
        with self.lock:
            if name not in self.cache:
                with open(os.path.join(self.fixtures, name), "rb") as f:
                    doc = json.load(f)
                data = doc["Data"]
                if isinstance(data, dict):
                    data = data["Data"]
                self.cache[name] = sorted(data, key=lambda c: c["time"])
            return self.cache[name]


def aggregate(candles, step, size, to):
    """The aggregated candles of size seconds over candles, up to toTs."""
    groups = {}
    for c in candles:
        if c["time"] - c["time"] % step <= to:
            groups.setdefault(c["time"] - c["time"] % size, []).append(c)
    out = []
    for t in sorted(groups):
        g = groups[t]
        out.append({"time": t, "high": max(c["high"] for c in g),
                    "low": min(c["low"] for c in g), "open": g[0]["open"],
                    "volumefrom": sum(c["volumefrom"] for c in g),
                    "volumeto": sum(c["volumeto"] for c in g), "close": g[-1]["close"],
                    "conversionType": g[0].get("conversionType", "direct"),
                    "conversionSymbol": g[0].get("conversionSymbol", "")})
    return out


def histo_body(scn, entry, path, query):
    candles = scn.candles(entry["histo"])
    if "clock" in entry:
        candles = [c for c in candles if c["time"] <= int(entry["clock"])]
    step = STEPS.get(path.rsplit("/", 1)[-1], 60)
    limit = int(query.get("limit", "1440"))
    agg = int(query.get("aggregate", "1"))
    last = candles[-1]["time"] if candles else 0
    to = int(query["toTs"]) if "toTs" in query else last
    if agg > 1:
        if limit * agg > 2000:
            limit = 2000 // agg
        step *= agg
        candles = aggregate(candles, step // agg, step, to)
    if entry.get("zero_fill"):
        by_time = {c["time"]: c for c in candles}
        first = candles[0]["time"] if candles else to + step
        top = to - to % step
        sel = []
        for t in range(top - limit * step, top + step, step):
            if t in by_time:
                sel.append(by_time[t])
            elif t < first:
                sel.append({"time": t, "high": 0, "low": 0, "open": 0, "volumefrom": 0,
                            "volumeto": 0, "close": 0, "conversionType": "direct",
                            "conversionSymbol": ""})
    else:
        sel = [c for c in candles if c["time"] <= to][-(limit + 1):]
    doc = {"Response": "Success", "Message": "", "HasWarning": False, "Type": 100,
           "RateLimit": {},
           "Data": {"Aggregated": agg > 1, "TimeFrom": sel[0]["time"] if sel else to,
                    "TimeTo": to, "Data": sel}}
    return json.dumps(doc, separators=(",", ":")).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ccserver/1"

    def log_message(self, fmt, *args):   # quiet: the request log is enough
        pass

    def do_GET(self):
        scn = self.server.scenario
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        auth = self.headers.get("Authorization")
        with scn.lock:
            scn.seq += 1
            rec = {"n": scn.seq, "t": time.time(), "path": url.path, "query": query,
                   "auth": auth is not None,
                   "auth_scheme": auth.split(" ", 1)[0] if auth else None,
                   "auth_ok": (auth == "Apikey " + scn.expect_key) if scn.expect_key else None,
                   "ua": self.headers.get("User-Agent"),
                   "accept_encoding": self.headers.get("Accept-Encoding")}
            with open(self.server.log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")

        entry = scn.next_entry(url.path)
        if entry is None:
            entry = {"json": NO_PATH}
        if entry.get("delay"):
            time.sleep(float(entry["delay"]))
        if entry.get("drop"):
            self.close_connection = True
            return
        if "file" in entry:
            with open(os.path.join(scn.fixtures, entry["file"]), "rb") as f:
                body = f.read()
        elif "body" in entry:
            body = entry["body"].encode()
        elif "json" in entry:
            body = json.dumps(entry["json"]).encode()
        elif "histo" in entry:
            body = histo_body(scn, entry, url.path, query)
        else:
            body = b""
        if "truncate" in entry:
            body = body[:int(entry["truncate"])]
        headers = {"Content-Type": "application/json; charset=UTF-8"}
        if entry.get("gzip") and "gzip" in (self.headers.get("Accept-Encoding") or ""):
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        headers.update(entry.get("headers", {}))
        try:
            self.send_response(int(entry.get("status", 200)))
            for k, v in headers.items():
                self.send_header(k, str(v))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class Server(serverlib.Quiet, ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    a = serverlib.command_line(__doc__)
    spec = serverlib.scenario(a)
    srv = Server(("127.0.0.1", 0), Handler)
    srv.scenario = Scenario(spec, a.fixtures)
    srv.log_path = a.log
    serverlib.announce(a, srv.server_address[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()
