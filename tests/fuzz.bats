#!/usr/bin/env bats
# The fuzzers of fuzz/ for a short while each (DP_FUZZ_SECONDS, default 30),
# under ASan and UBSan, through scripts/fuzz: a crash, a sanitizer report or
# a property that does not hold fails the test, with the input kept in
# build/fuzz/artifacts.  `make check` builds them (make fuzz-build);
# `make fuzz FUZZ_SECONDS=N` fuzzes for longer and keeps what it finds.

load helpers/common

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-600}

setup() {
	[[ -x $DP_ROOT/build/fuzz/fuzz-json ]] || skip "the fuzzers are not built (make fuzz-build)"
	SECS=${DP_FUZZ_SECONDS:-30}
}

# fuzz TARGET: run it; new inputs go to a scratch corpus, not the build's
fuzz() {
	run "$DP_ROOT/scripts/fuzz" -t "$SECS" -o "$BATS_TEST_TMPDIR/corpus" "$1"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ ${lines[-1]} == "fuzz: 1 targets, "*" s of CPU, no crash" ]]
}

@test "fuzz: the NDJSON line reader against its model, every read boundary" {
	fuzz lines
}

@test "fuzz: the JSON scanner against itself, libjq, and Python's json module" {
	fuzz json
	[[ $output == *"json_reference: "*" 0 disagreements"* ]]
}

@test "fuzz: envelopes, parse -> print -> parse" {
	fuzz envelope
}

@test "fuzz: the jq subset on raw text against libjq" {
	fuzz jqfast
}

@test "fuzz: the CryptoCompare response decoders" {
	fuzz cc
}

@test "fuzz: the CryptoCompare streaming messages" {
	fuzz ccstream
}

@test "fuzz: dp-coord's requests and registry specs, parse -> print -> parse" {
	fuzz dynspec
}

@test "fuzz: durations, times, numbers and sizes" {
	fuzz parsers
}

@test "fuzz: every regression input of the corpus still passes" {
	# What the fuzzers once found stays found: each regress-* input runs once.
	local f t n=0
	for f in "$DP_ROOT"/fuzz/corpus/*/regress-*; do
		t=$(basename "$(dirname "$f")")
		run "$DP_ROOT/build/fuzz/fuzz-$t" "$f"
		[ "$status" -eq 0 ] || { echo "$output"; false; }
		n=$((n + 1))
	done
	((n >= 3))
}
