#!/usr/bin/env bats
# docs/system.dot and docs/system.svg are what `make diagrams` makes from
# the commands' own --dot and docs/system.links: a change to a state table
# or to the links that is not drawn again fails here.

bats_require_minimum_version 1.5.0
load helpers/common

setup() {
	W=$BATS_TEST_TMPDIR
}

@test "the committed system diagram is the one the code draws (make diagrams)" {
	run --separate-stderr "$DP_ROOT/scripts/diagrams" "$DP_ROOT/docs/system.links"
	[ "$status" -eq 0 ]
	printf '%s\n' "$output" > "$W/system.dot"
	diff -u "$DP_ROOT/docs/system.dot" "$W/system.dot"
	# every actor's cluster and every link made it in
	[ "$(grep -c '^	subgraph cluster_' "$W/system.dot")" -eq \
	  "$(grep -c '^actor ' "$DP_ROOT/docs/system.links")" ]
	[ "$(grep -c 'penwidth=1.5' "$W/system.dot")" -eq \
	  "$(grep -c '^link ' "$DP_ROOT/docs/system.links")" ]
	if ! command -v dot > /dev/null; then
		skip "graphviz (dot) is not installed: the SVG is not compared"
	fi
	dot -Tsvg "$W/system.dot" > "$W/system.svg"
	diff -q "$DP_ROOT/docs/system.svg" "$W/system.svg"
}

@test "a link to a state the code does not have is an error naming the line and the states" {
	cp "$DP_ROOT/docs/system.links" "$W/links"
	echo 'link dp-tail:nosuchstate Applications black "x"' >> "$W/links"
	n=$(wc -l < "$W/links")
	run --separate-stderr "$DP_ROOT/scripts/diagrams" "$W/links"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[[ $stderr == "diagrams: $W/links:$n: machine \"dp-tail\" has no state \"nosuchstate\" (it has: idle, "* ]]
	echo 'actor dp-tail-x "nothing"' > "$W/links"
	run --separate-stderr "$DP_ROOT/scripts/diagrams" "$W/links"
	[ "$status" -eq 1 ]
	[[ $stderr == *"cannot run dp-tail-x --dot"* ]]
	echo 'actor dp-coord "x"' > "$W/links"
	echo 'link dp-coord nowhere black "y"' >> "$W/links"
	run --separate-stderr "$DP_ROOT/scripts/diagrams" "$W/links"
	[ "$status" -eq 1 ]
	[[ $stderr == *":2: \"nowhere\" is neither an actor nor an external system" ]]
}
