#!/bin/sh
# examples/cron-fetch.sh - from cron, fetch the new closed candles of one
# series from CryptoCompare and publish them to Kafka, each candle once.
#
#   cron-fetch.sh FSYM TSYM INTERVAL TOPIC
#
# crontab(5) line: hourly candles, five minutes past every hour (the key
# in a file readable only by the cron user; stderr to a log):
#
#   5 * * * *  DP_BROKERS=kafka1:9092 DP_FETCH_ARGS="--api-key-file $HOME/.config/dp/cryptocompare.key" $HOME/dp/examples/cron-fetch.sh BTC USD hour prices.ohlcv 2>>$HOME/dp-fetch.log
#
# How each candle gets to Kafka once:
#   1. dp-fetch --state remembers the last candle it wrote.  It appends the
#      new candles to a spool file and moves its state on only after they
#      were flushed there, so a killed or failed run loses nothing.
#   2. The spool is published with dp-publish, which exits 0 only when it
#      read the whole spool and the broker acknowledged every record (a
#      signal before that is 130 for SIGINT, 143 for SIGTERM, as for every
#      dp command); only then is the spool removed.
#      If publishing fails, the spool stays, and the next run publishes it
#      together with the newer candles.  (A spool that was published in
#      part is published again in full: at least once, duplicates are
#      possible only after a failed dp-publish.)
#   3. A lock keeps overlapping runs apart.
#
# Environment:
#   DP_FETCH_DIR    state, spool and lock files (default
#                   ${XDG_STATE_HOME:-$HOME/.local/state}/dp-fetch)
#   DP_FETCH_ARGS   more dp-fetch options, e.g. --api-key-file FILE --market Kraken
#   DP_BROKERS ...  as dp-publish(1) reads them
set -eu

if [ $# -ne 4 ]; then
	echo "usage: $0 FSYM TSYM INTERVAL TOPIC" >&2
	exit 64
fi
fsym=$1 tsym=$2 interval=$3 topic=$4
dir=${DP_FETCH_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/dp-fetch}
mkdir -p "$dir"
base=$dir/$fsym-$tsym-$interval
spool=$base.spool

exec 9>"$base.lock"
if ! flock -n 9; then
	echo "$0: $fsym/$tsym $interval: another run is still busy" >&2
	exit 75
fi

rc=0
# shellcheck disable=SC2086 # DP_FETCH_ARGS is a list of options
dp-fetch ohlcv --fsym "$fsym" --tsym "$tsym" --interval "$interval" \
	--state "$base.state" ${DP_FETCH_ARGS:-} >>"$spool" || rc=$?

# Whatever dp-fetch committed is in the spool, even when it failed later.
if [ -s "$spool" ]; then
	if dp-publish -t "$topic" <"$spool"; then
		rm -f "$spool"
	else
		prc=$?
		echo "$0: dp-publish failed ($prc); $spool is kept for the next run" >&2
		[ "$rc" -ne 0 ] || rc=$prc
	fi
fi
exit "$rc"
