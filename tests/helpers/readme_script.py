#!/usr/bin/env python3
"""readme_script.py FILE - the runnable examples of a Markdown file, as bash.

A fenced block whose info string is "sh run" (```sh run) is meant to be
run, in the order of the file, in one shell; other blocks are prose.  The
script keeps every line of those blocks at its line number in FILE and
blanks every other line, so that bash's $LINENO is FILE's line: when a
command fails, the ERR trap names it as FILE:LINE.  Line 1 carries the
set-up (-e, pipefail, the trap), so it must not be inside a block.

Exits 1 when FILE has no runnable block, or a block is not closed.
"""
import re
import sys

FENCE = re.compile(r"^(`{3,}|~{3,})\s*(.*)$")


def main():
    path = sys.argv[1]
    with open(path, encoding="utf-8") as f:
        text = f.read().split("\n")
    out = []
    fence = None          # the fence that opened the current block
    run = False           # the current block is runnable
    blocks = 0
    for n, line in enumerate(text, 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence, info = m.group(1), m.group(2).split()
            run = info[:2] == ["sh", "run"]
            blocks += run
            if run and n == 1:
                sys.exit(f"{path}:1: a runnable block cannot start on line 1")
            out.append("")
        elif fence is not None and re.fullmatch(
                re.escape(fence[0]) + "{%d,}" % len(fence), line.strip()):
            fence, run = None, False
            out.append("")
        else:
            out.append(line if run else "")
    if fence is not None:
        sys.exit(f"{path}: a code block is not closed")
    if not blocks:
        sys.exit(f"{path}: no runnable block (```sh run)")
    name = path.rsplit("/", 1)[-1]
    out[0] = ("set -euo pipefail; trap 'rc=$?; echo \"%s:$LINENO: exit status $rc\" >&2' ERR"
              % name)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
