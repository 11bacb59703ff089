#!/usr/bin/env bats
# Completions and installation, as a user meets them.

load helpers/common
load helpers/kafka

complete_words() {   # complete_words SCRIPT FUNC WORD... : prints COMPREPLY
	local script=$1 func=$2
	shift 2
	bash -c '
		source "$1"; func=$2; shift 2
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		"$func"; printf "%s\n" "${COMPREPLY[@]}"
	' _ "$script" "$func" "$@"
}

@test "bash completion of dp-publish and dp-tail offers options and live topics" {
	T=$(new_topic)
	create_topic "$T"
	run complete_words "$DP_ROOT/completions/bash/dp-publish" _dp_publish dp-publish --on
	[ "$output" = "--on-error" ]
	run complete_words "$DP_ROOT/completions/bash/dp-publish" _dp_publish dp-publish -t "${T:0:6}"
	[[ $output == *"$T"* ]]
	run complete_words "$DP_ROOT/completions/bash/dp-tail" _dp_tail dp-tail --non-json ""
	[ "$output" = $'error\nskip\nstring\nbase64' ]
	run complete_words "$DP_ROOT/completions/bash/dp-tail" _dp_tail dp-tail -t "${T:0:6}"
	[[ $output == *"$T"* ]]
}

@test "bash completion of dp-coord offers subcommands, their options and live names" {
	run complete_words "$DP_ROOT/completions/bash/dp-coord" _dp_coord dp-coord re
	[ "$output" = $'request\nretire' ]
	run complete_words "$DP_ROOT/completions/bash/dp-coord" _dp_coord dp-coord serve --max
	[ "$output" = $'--max-partitions\n--max-topics' ]
	run complete_words "$DP_ROOT/completions/bash/dp-coord" _dp_coord dp-coord run -- dp-ta
	[ -z "$output" ]
}

@test "topic completion stays silent and quick without a broker" {
	port=$(free_port)
	start=$SECONDS
	DP_BROKERS=127.0.0.1:$port run complete_words "$DP_ROOT/completions/bash/dp-tail" _dp_tail dp-tail -t x
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ $((SECONDS - start)) -le 5 ]
}

@test "make install puts binaries, man pages and completions under DESTDIR; uninstall removes them" {
	dest=$BATS_TEST_TMPDIR/root
	make -C "$DP_ROOT" -s install DESTDIR="$dest" PREFIX=/usr/local > /dev/null
	for c in dp-coord dp-fetch dp-publish dp-sink-pg dp-tail dp-topic; do
		[ -x "$dest/usr/local/bin/$c" ]
		[ -f "$dest/usr/local/share/man/man1/$c.1" ]
		[ -f "$dest/usr/local/share/bash-completion/completions/$c" ]
		[ -f "$dest/usr/local/share/zsh/site-functions/_$c" ]
	done
	"$dest/usr/local/bin/dp-tail" --version | grep -q '^dp-tail '
	make -C "$DP_ROOT" -s uninstall DESTDIR="$dest" PREFIX=/usr/local > /dev/null
	[ -z "$(find "$dest" -type f)" ]
}
