#!/usr/bin/env bats
# Every row of every command's state table is exercised by the suite.
#
# scripts/check runs this file after all the others, with DP_TRACE_STATES
# naming the file where every command of the run appended its transitions.
# A row no test takes is either a behaviour nobody checks or a row that
# cannot happen: add the test, or drop the row.

load ../helpers/common

@test "the suite exercises every row of every state table" {
	[[ -n ${DP_FSM_COVERAGE:-} && -s ${DP_TRACE_STATES:-} ]] ||
		skip "runs only after the whole suite (scripts/check with no arguments)"
	run python3 "$DP_ROOT/tests/helpers/fsm_coverage.py" "$DP_TRACE_STATES" "$DP_BIN"/dp-*
	echo "$output"
	[ "$status" -eq 0 ]
}
