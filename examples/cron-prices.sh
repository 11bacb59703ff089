#!/bin/sh
# examples/cron-prices.sh - from cron, fetch current prices once and publish
# them to a fixed topic and, through the registry, to every dynamic topic
# the coordinator made from it (dp-publish --follow-registry).
#
#   cron-prices.sh FSYMS TSYMS TOPIC
#
# crontab(5) line, every minute (see examples/pipeline.crontab):
#
#   * * * * *  . $HOME/.config/dp/env && $HOME/dp/examples/cron-prices.sh BTC,ETH USD,EUR prices 2>>$HOME/dp-prices.log
#
# Prices are a snapshot: a run that fails loses nothing the next run does
# not fetch again, so there is no spool here (compare cron-fetch.sh, for
# candles, where every candle must arrive once).  What a run read is in
# Kafka when it exits 0: dp-publish exits 0 only when the broker
# acknowledged every record and every copy into a dynamic topic.  A lock
# keeps a slow run from overlapping the next one.
#
# Environment:
#   DP_FETCH_DIR    the lock file (default ${XDG_STATE_HOME:-$HOME/.local/state}/dp-fetch)
#   DP_FETCH_ARGS   more dp-fetch options, e.g. --api-key-file FILE
#   DP_BROKERS, DP_REGISTRY ...  as dp-publish(1) reads them
set -eu

if [ $# -ne 3 ]; then
	echo "usage: $0 FSYMS TSYMS TOPIC" >&2
	exit 64
fi
fsyms=$1 tsyms=$2 topic=$3
dir=${DP_FETCH_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/dp-fetch}
mkdir -p "$dir"

exec 9>"$dir/prices-$topic.lock"
if ! flock -n 9; then
	echo "$0: $topic: the last run is still busy" >&2
	exit 75
fi

# Both statuses count: sh has no pipefail, so each side writes its own.
st=$(mktemp "$dir/prices-$topic.XXXXXX")
trap 'rm -f "$st"' EXIT
# shellcheck disable=SC2086 # DP_FETCH_ARGS is a list of options
{ dp-fetch price --fsyms "$fsyms" --tsyms "$tsyms" ${DP_FETCH_ARGS:-} || echo "fetch $?" >>"$st"; } |
	{ dp-publish -t "$topic" -k .fsym --follow-registry || echo "publish $?" >>"$st"; }
if [ -s "$st" ]; then
	echo "$0: $(tr '\n' ' ' <"$st")" >&2
	exit "$(awk '{ print $2; exit }' "$st")"
fi
