#!/usr/bin/env bats
# The fuzzers of fuzz/ as make check runs them (scripts/fuzz --fixed),
# under ASan and UBSan: each replays its corpus (fuzz/corpus/TARGET, the
# regress-* inputs too), then makes a fixed pass, a fixed number of
# mutations from a fixed libFuzzer seed, so that the same commit gives the
# same answer here, in CI and on a developer's machine.  A crash, a
# sanitizer report or a property that does not hold fails the test, with
# the input kept in build/fuzz/artifacts.  `make check` builds them (make
# fuzz-build); `make fuzz FUZZ_SECONDS=N` is the long random runs.
# DP_FUZZ_RUNS=N makes every fixed pass N runs (0: the replay only, as
# make check-asan does).

load helpers/common

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-600}

setup() {
	[[ -x $DP_ROOT/build/fuzz/fuzz-json ]] || skip "the fuzzers are not built (make fuzz-build)"
	RUNS=${DP_FUZZ_RUNS:-}
}

# fuzz TARGET: its corpus replay and its fixed pass; new inputs go to a
# scratch directory, not the build's
fuzz() {
	local n
	run "$DP_ROOT/scripts/fuzz" --fixed ${RUNS:+-r "$RUNS"} -o "$BATS_TEST_TMPDIR/fixed" "$1"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ ${lines[-1]} == "fuzz: 1 targets, "*" s of CPU, no crash" ]]
	n=$(find "$DP_ROOT/fuzz/corpus/$1" -type f | wc -l)
	[[ $output == *"fuzz: $1: $n inputs replayed"* ]]
	[[ ${RUNS:-1} == 0 || $output == *"fuzz: $1: $n inputs replayed; fixed pass (seed 1, "*" runs): cov: "* ]]
}

@test "fuzz: the NDJSON line reader against its model, every read boundary: corpus and fixed pass" {
	fuzz lines
}

@test "fuzz: the JSON scanner against itself, libjq, and Python's json module: corpus and fixed pass" {
	fuzz json
	[[ $output == *"json_reference: "*" 0 disagreements"* ]]
}

@test "fuzz: envelopes, parse -> print -> parse: corpus and fixed pass" {
	fuzz envelope
}

@test "fuzz: the jq subset on raw text against libjq: corpus and fixed pass" {
	fuzz jqfast
}

@test "fuzz: the CryptoCompare response decoders: corpus and fixed pass" {
	fuzz cc
}

@test "fuzz: the CryptoCompare streaming messages: corpus and fixed pass" {
	fuzz ccstream
}

@test "fuzz: dp-coord's requests and registry specs, parse -> print -> parse: corpus and fixed pass" {
	fuzz dynspec
}

@test "fuzz: durations, times, numbers and sizes: corpus and fixed pass" {
	fuzz parsers
}

@test "fuzz: the fixed pass is reproducible: the same seed twice finds the same inputs" {
	# Two targets whose harnesses compare many numbers and strings (the
	# operands libFuzzer's mutator takes up) and nest calls (the stack's
	# depth is a feature), each run twice with a short fixed pass.
	local i t out=() found=()
	for i in 1 2; do
		run "$DP_ROOT/scripts/fuzz" --fixed -r 30000 -o "$BATS_TEST_TMPDIR/run$i" parsers jqfast
		echo "$output"
		[ "$status" -eq 0 ]
		# what each pass found, without the CPU time
		out[i]=$(grep 'fixed pass' <<<"$output" | sed 's/, [0-9.]* s of CPU//')
		found[i]=$(cd "$BATS_TEST_TMPDIR/run$i" && find parsers jqfast -type f | LC_ALL=C sort)
	done
	[[ ${out[1]} == *"fuzz: parsers: "*"fuzz: jqfast: "* ]]
	[ "${out[1]}" = "${out[2]}" ]
	[ "${found[1]}" = "${found[2]}" ]
	# Not two empty lists: each pass found new inputs.
	[[ $(grep -c '^parsers/' <<<"${found[1]}") -gt 10 ]]
	[[ $(grep -c '^jqfast/' <<<"${found[1]}") -gt 10 ]]
}
