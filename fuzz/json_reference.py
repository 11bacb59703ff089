#!/usr/bin/env python3
"""json_reference.py -- dp's JSON scanner against Python's json module.

usage: json_reference.py JSON-VERDICT DIR...

Runs build/fuzz/json-verdict over every file in the directories (the
fuzzer's corpus) and compares each verdict with Python's: the bytes must
be UTF-8 and json.loads must take the text, with NaN and Infinity
refused (they are not JSON).  Where both accept, the compacted text dp
prints must load to the same value.  Python gives up on nesting deeper
than its recursion limit; those files are counted, not compared.

Prints one line per disagreement and a summary; exits 1 on any.
"""
import json
import math
import os
import subprocess
import sys


def no_constant(name):
    raise ValueError("not JSON: " + name)


def python_verdict(data):
    """('ok', value), ('bad', reason) or ('deep', None)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return "bad", "utf-8: %s" % e.reason
    try:
        return "ok", json.loads(text, parse_constant=no_constant)
    except RecursionError:
        return "deep", None
    except ValueError as e:
        return "bad", str(e)


def same(a, b):
    """Equal as JSON values (floats as Python reads both texts)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    tool, dirs = sys.argv[1], sys.argv[2:]
    files = sorted(os.path.join(d, f) for d in dirs for f in os.listdir(d)
                   if os.path.isfile(os.path.join(d, f)))
    verdicts = {}
    for i in range(0, len(files), 500):
        out = subprocess.run([tool] + files[i:i + 500], check=True,
                             stdout=subprocess.PIPE).stdout.decode()
        for line in out.splitlines():
            kind, rest = line.split(" ", 1)
            name, detail = rest.split(" ", 1) if " " in rest else (rest, "")
            verdicts[name] = (kind, detail)
    bad = deep = 0
    for name in files:
        data = open(name, "rb").read()
        dp_kind, detail = verdicts[name]
        py_kind, value = python_verdict(data)
        if py_kind == "deep":
            deep += 1
            continue
        if dp_kind != py_kind:
            bad += 1
            print("%s: dp says %s (%s), Python says %s (%s): %r"
                  % (name, dp_kind, detail, py_kind,
                     value if py_kind == "bad" else "accepted", data[:80]))
        elif dp_kind == "ok":
            compact = bytes.fromhex(detail).decode("utf-8")
            if not same(json.loads(compact), value):
                bad += 1
                print("%s: compacted text %r differs from %r" % (name, compact[:80], data[:80]))
    print("json_reference: %d files, %d too deep for Python, %d disagreements"
          % (len(files), deep, bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
