#!/usr/bin/env python3
"""Which rows of each command's state table did a test run exercise?

    fsm_coverage.py TRACE BIN...

TRACE holds the transitions the suite made (DP_TRACE_STATES, one NDJSON
object per line).  Each BIN's --dot output is its tables (one digraph per machine), one
edge per row and state.  Prints every edge no transition in TRACE matches, as
"CMD: FROM -EVENT-> TO", and exits 1 when there is any.
"""
import json
import re
import subprocess
import sys

EDGE = re.compile(r'^\t"([^"]+)" -> "([^"]+)" \[label="([^"]+)"\];$')


def main():
    trace, bins = sys.argv[1], sys.argv[2:]
    seen = set()
    with open(trace, encoding="utf-8") as f:
        for line in f:
            try:
                t = json.loads(line)
            except ValueError:
                continue
            seen.add((t["cmd"], t["from"], t["event"], t["to"]))
    missing = []
    total = 0
    for b in bins:
        dot = subprocess.run([b, "--dot"], capture_output=True, text=True, check=True).stdout
        # A command with subcommands draws one digraph per machine.
        name = None
        for line in dot.splitlines():
            g = re.match(r'^digraph "([^"]+)"', line)
            if g:
                name = g.group(1)
                continue
            m = EDGE.match(line)
            if not m:
                continue
            total += 1
            frm, to, ev = m.groups()
            if (name, frm, ev, to) not in seen:
                missing.append(f"{name}: {frm} -{ev}-> {to}")
    for m in missing:
        print(m)
    print(f"{total - len(missing)} of {total} rows exercised", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
