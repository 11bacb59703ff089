#!/usr/bin/env bats
# One check over every command: --help, the man page and both completions
# name the same options (each command's option table, core/opt.h, makes
# --help; the man page and completions are written by hand).

load helpers/common

# The options --help lists (its option lines, not its prose), "-t --topic" or "--from".
help_opts() {
	"$1" --help | grep -oE '^ +(-[A-Za-z0-9], )?--[a-z][a-z0-9-]*' |
		sed -E 's/^ +//; s/, / /' | sort -u
}

# The options the man page describes: its ".It Fl" items, in the same shape.
man_opts() {
	grep -E '^\.It Fl' "$1" | sed -E 's/ Ar .*//; s/ Ns .*//' |
		grep -oE '^\.It Fl [A-Za-z0-9] , Fl -[a-z][a-z0-9-]*|^\.It Fl -[a-z][a-z0-9-]*' |
		sed -E 's/^\.It Fl ([A-Za-z0-9]) , Fl -/-\1 --/; s/^\.It Fl -/--/' | sort -u
}

# Long options a bash completion names: every --word, but for those in
# $(...) (another command it runs, such as dp-topic list --timeout 2s).
bash_opts() {
	sed -E 's/\$\([^)]*\)//g' "$1" | grep -oE -- '(^|[^a-z0-9-])--[a-z][a-z0-9-]*' |
		grep -oE -- '--[a-z][a-z0-9-]*'
}

# Long options a zsh completion declares in its _arguments specs.
zsh_opts() {
	grep -oE -- "--[a-z][a-z0-9-]*(=-?|\+)?[][,}']" "$1" | grep -oE -- '--[a-z][a-z0-9-]*'
}

@test "every command: --help, the man page's options and both completions agree" {
	local n=0
	for b in "$DP_BIN"/dp-*; do
		name=${b##*/}
		man=$DP_ROOT/man/$name.1 bash=$DP_ROOT/completions/bash/$name zsh=$DP_ROOT/completions/zsh/_$name
		[ -f "$man" ] || { echo "$name: no man page"; false; }
		[ -f "$bash" ] || { echo "$name: no bash completion"; false; }
		[ -f "$zsh" ] || { echo "$name: no zsh completion"; false; }
		help=$(help_opts "$b")
		[ "$(wc -l <<<"$help")" -ge 8 ] || { echo "$name: --help lists too few options"; false; }
		# The same options, with the same short names, in --help and the man page.
		diff <(echo "$help") <(man_opts "$man") ||
			{ echo "$name: --help (<) and the man page's options (>) differ"; false; }
		# Each option --help lists is offered by both completions, and each
		# they offer is named in --help (an alias such as --fsym may be named
		# in the text of the option it stands for).
		longs=$(grep -oE -- '--[a-z][a-z0-9-]*' <<<"$help" | sort -u)
		named=$("$b" --help | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
		for c in bash zsh; do
			offered=$("${c}_opts" "${!c}" | sort -u)
			missing=$(comm -23 <(echo "$longs") <(echo "$offered"))
			extra=$(comm -13 <(echo "$named") <(echo "$offered"))
			[ -z "$missing$extra" ] || {
				echo "$name: the $c completion lacks: ${missing//$'\n'/ }; offers what --help does not name: ${extra//$'\n'/ }"
				false
			}
		done
		n=$((n + 1))
	done
	[ "$n" -ge 6 ]
}
