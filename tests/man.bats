#!/usr/bin/env bats
# Man pages pass mandoc -Tlint -Wstyle with no note but references to the
# pages of other packages (scripts/lint-man, make lint-man).

load helpers/common

@test "every man page passes make lint-man" {
	n=0
	bad=
	for page in "$DP_ROOT"/man/*.1; do
		n=$((n + 1))
		run "$DP_ROOT/scripts/lint-man" "$page"
		if [ "$status" -ne 0 ]; then
			bad+="$output"$'\n'
		fi
	done
	[ "$n" -ge 4 ]
	echo "$bad"
	[ -z "$bad" ]
}

@test "lint-man lets through only references to other packages' pages" {
	W=$BATS_TEST_TMPDIR
	page() { # NAME BODY: a minimal valid page with BODY in its SEE ALSO
		cat >"$W/$1.1" <<-EOF
		.Dd November 27, 2026
		.Dt ${1^^} 1
		.Os
		.Sh NAME
		.Nm $1
		.Nd test page
		.Sh DESCRIPTION
		Text.
		.Sh SEE ALSO
		$2
		EOF
	}
	# Another package's page (installed or not) and one of ours that exists.
	page good $'.Xr dp-topic 1 ,\n.Xr kcat 1 ,\n.Xr no-such-package-page 1'
	run "$DP_ROOT/scripts/lint-man" "$W/good.1"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	# One of ours that does not exist.
	page dangling '.Xr dp-no-such-command 1'
	run "$DP_ROOT/scripts/lint-man" "$W/dangling.1"
	[ "$status" -eq 1 ]
	[[ $output == *"referenced manual not found: Xr dp-no-such-command 1"* ]]
	# A style note.
	page style $'.Pq Ar key=value No lines, Ql # No comments ;\n.Xr kcat 1'
	run "$DP_ROOT/scripts/lint-man" "$W/style.1"
	[ "$status" -eq 1 ]
	[[ $output == *"STYLE: no blank before trailing delimiter"* ]]
	# A page that is not there.
	run "$DP_ROOT/scripts/lint-man" "$W/missing.1"
	[ "$status" -eq 1 ]
	[[ $output == *"missing.1"* ]]
}
