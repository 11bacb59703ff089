#!/usr/bin/env bats
# The house rules of the code (HACKING.md, "Where things go"), checked so
# that they hold after every change: commands are wiring, engines live in
# lib/ and never take the command line, the imports have no cycle.

load helpers/common

@test "every command file is options, validation and its machine's actions: at most 800 lines" {
	local over=()
	for f in "$DP_ROOT"/cmd/*.c; do
		n=$(wc -l <"$f")
		((n <= 800)) || over+=("${f##*/}: $n lines")
	done
	((${#over[@]} == 0)) || { printf '%s (move the engine into lib/)\n' "${over[@]}"; false; }
}

@test "no engine header includes the command-line header; lib/ never exits" {
	run grep -rlE '#include "core/cli\.h"' "$DP_ROOT"/lib --include=*.h
	bad=$(grep -vE '/lib/core/(cli|frame|opt)\.h$' <<<"$output" || true)
	[ -z "$bad" ] || { echo "engine headers that include core/cli.h: $bad"; false; }
	# The one _exit in lib/ is a forked child's whose exec failed.
	run grep -rnE '(^|[^_a-z])(exit|_exit|abort)\s*\(' "$DP_ROOT"/lib --include=*.c
	bad=$(grep -vE 'lib/dyn/supervise\.c:[0-9]+:\s*_exit\(127\);' <<<"$output" || true)
	[ -z "$bad" ] || { echo "lib/ exits: $bad"; false; }
}

@test "the imports of lib/ have no cycle, between folders or between headers" {
	run python3 - "$DP_ROOT/lib" <<'PY'
import glob, os, re, sys
lib = sys.argv[1]
inc = re.compile(r'^#include "(\w+)/([\w-]+)\.h"', re.M)
folders, headers = {}, {}
for f in glob.glob(os.path.join(lib, '*', '*.[ch]')):
    d = os.path.basename(os.path.dirname(f))
    me = d + '/' + os.path.basename(f)
    for m in inc.finditer(open(f).read()):
        if m.group(1) != d:
            folders.setdefault(d, set()).add(m.group(1))
        if f.endswith('.h'):
            headers.setdefault(me, set()).add(m.group(1) + '/' + m.group(2) + '.h')

def cycle(g):
    state = {}
    def visit(n, path):
        state[n] = 1
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return path + [n, m]
            if not state.get(m):
                c = visit(m, path + [n])
                if c:
                    return c
        state[n] = 2
        return None
    for n in sorted(g):
        if not state.get(n):
            c = visit(n, [])
            if c:
                return c
    return None

for name, g in (('folders', folders), ('headers', headers)):
    c = cycle(g)
    if c:
        print(name, 'cycle:', ' -> '.join(c))
        sys.exit(1)
for d in sorted(folders):
    print(d, '->', ' '.join(sorted(folders[d])))
PY
	echo "$output"
	[ "$status" -eq 0 ]
	# core/ is the floor: it includes no other folder.
	! grep -q '^core ->' <<<"$output"
}
