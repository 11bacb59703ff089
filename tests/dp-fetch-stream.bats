#!/usr/bin/env bats
# dp-fetch stream against tests/helpers/ccstreamer.py, a WebSocket server on
# Python's standard library that replays recorded streamer messages
# (tests/fixtures/cryptocompare-stream) and injects faults: dropped
# connections, silence, 429, 401, refused subscriptions, malformed JSON,
# partial updates before any full one.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fetch

BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-60}

FIX=$BATS_TEST_DIRNAME/fixtures/cryptocompare-stream
PT=ptracker__wss_response_test.ndjson   # 1 welcome, 2 BTC/GBP, 3 ETH/USD, 4 load complete,
                                        # 5 heartbeat, 6 BTC/GBP partial (type 2, Coinbase)
DOC=docs__websockets_examples.ndjson    # 1 welcome ... 6 heartbeat, 7 401
AGG=jobsboard__cccagg_btc_usd.ndjson    # 1 type 5 BTC/USD
TR=SYNTHETIC__trades_coinbase_btc_usd.ndjson   # 25 trades, ids 12345678..12345702
OH=SYNTHETIC__ohlc_cccagg_btc_usd_m.ndjson     # 1 candle, 2 its update, 3 the next
FAST=(--retry-base 10ms)

setup() { fetch_setup; }
teardown() {
	fetch_teardown
	blackhole_stop
}

# serve_ws SCENARIO [ARGS...]: start the streamer stand-in (see
# ccstreamer.py) and point $DP_CRYPTOCOMPARE_STREAM_URL at it.  Its log is
# $W/requests.
serve_ws() {
	start_server ccstreamer.py "$1" "$FIX" "${@:2}"
	SURL=ws://127.0.0.1:$PORT/v2
	export DP_CRYPTOCOMPARE_STREAM_URL=$SURL
}

conns() { jq -s '[.[] | select(.event == "upgrade")] | length' "$W/requests"; }
subadds() { jq -c 'select(.event == "recv" and .msg.action == "SubAdd") | .msg.subs' "$W/requests"; }
line() { sed -n "${2}p" "$FIX/$1"; }

# The records dp-fetch must print, computed here by jq from the fixtures:
# the messages FILE:N... merged in order (a later field wins), as a record.
RECORDS='
def tick($ch): {type: "tick", source: "cryptocompare", channel: $ch, market: .MARKET,
  fsym: .FROMSYMBOL, tsym: .TOSYMBOL, ts: (if .LASTUPDATE then .LASTUPDATE | todate else null end),
  price: .PRICE, bid: .BID, ask: .ASK, median: .MEDIAN, last_volume: .LASTVOLUME,
  last_volume_to: .LASTVOLUMETO, last_trade_id: .LASTTRADEID, last_market: .LASTMARKET,
  volume_hour: .VOLUMEHOUR, volume_hour_to: .VOLUMEHOURTO, open_hour: .OPENHOUR,
  high_hour: .HIGHHOUR, low_hour: .LOWHOUR, volume_day: .VOLUMEDAY, volume_day_to: .VOLUMEDAYTO,
  open_day: .OPENDAY, high_day: .HIGHDAY, low_day: .LOWDAY, volume_24h: .VOLUME24HOUR,
  volume_24h_to: .VOLUME24HOURTO, open_24h: .OPEN24HOUR, high_24h: .HIGH24HOUR,
  low_24h: .LOW24HOUR, top_tier_volume_24h: .TOPTIERVOLUME24HOUR,
  top_tier_volume_24h_to: .TOPTIERVOLUME24HOURTO, current_supply: .CURRENTSUPPLY,
  circulating_supply: .CIRCULATINGSUPPLY, max_supply: .MAXSUPPLY,
  mktcap_penalty: .MKTCAPPENALTY, current_supply_mktcap: .CURRENTSUPPLYMKTCAP,
  circulating_supply_mktcap: .CIRCULATINGSUPPLYMKTCAP, max_supply_mktcap: .MAXSUPPLYMKTCAP,
  flags: .FLAGS};
def trade: (.F | tonumber) as $f | (.TSNS // 0) as $ns |
  {type: "trade", source: "cryptocompare", market: .M, fsym: .FSYM, tsym: .TSYM,
   ts: (.TS | todate | if $ns > 0 then sub("Z$"; "." + (($ns / 1000000 | floor) + 1000 | tostring | .[1:]) + "Z") else . end),
   id: .ID, side: (if $f % 2 == 1 then "sell" elif ($f / 2 | floor) % 2 == 1 then "buy" else null end),
   price: .P, quantity: .Q, total: .TOTAL, flags: $f, recv_ts: (.RTS | todate), ccseq: .CCSEQ};
def ohlc: {type: "ohlcv", source: "cryptocompare", market: .MARKET, fsym: .FROMSYMBOL,
  tsym: .TOSYMBOL, interval: "1m", ts: (.TS | todate), open: .OPEN, high: .HIGH, low: .LOW,
  close: .CLOSE, volume_from: .VOLUMEFROM, volume_to: .VOLUMETO, trades: .TOTALTRADES};
'
expect() { # FILTER FILE:N... (tick("ticker"), trade, ohlc)
	local filter=$1 x
	shift
	for x in "$@"; do line "${x%%:*}" "${x##*:}"; done |
		jq -cS -s "$RECORDS"' reduce .[] as $m ({}; . + $m) | '"$filter"
}
# The output, keys sorted, numbers as jq prints them: to compare with expect.
norm() { jq -cS . <<<"$output"; }

# The usual first steps of a connection: welcome, SubAdd, its answer.
HELLO='{"msg":"'$PT':1"},{"await":"SubAdd"},{"ack":{}}'

# --- command line ---------------------------------------------------------------

@test "stream: bad command lines exit 64 with a message and print nothing" {
	bad() {
		run --separate-stderr dp-fetch stream "$@"
		[ "$status" -eq 64 ] || { echo "status $status for: $*"; return 1; }
		[[ $stderr == "dp-fetch: "* ]] || { echo "no message for: $*"; return 1; }
		[ "$output" = "" ]
	}
	bad
	bad --fsyms BTC
	bad --fsyms BTC --tsyms USD --channel quotes
	bad --fsyms BTC --tsyms USD --channel trade
	bad --fsyms BTC --tsyms USD --channel ohlc --interval 4h
	bad --fsyms BTC --tsyms USD --interval 1m
	bad --subs 5~CCCAGG~BTC
	bad --subs 8~Coinbase~BTC~USD
	bad --subs 24~CCCAGG~BTC~USD~W
	bad --subs 5~CCCAGG~BTC~USD,5~cccagg~btc~usd
	bad --subs 5~CCCAGG~BTC~USD --channel trade
	bad --fsyms BTC --tsyms USD --stream-url https://streamer.example
	bad --fsyms BTC --tsyms USD --stream-url "ws://host/v2?api_key=$KEY"
	bad --fsyms BTC --tsyms USD --since -1h
	bad --fsyms BTC --tsyms USD --state "$W/s"
	bad --fsyms BTC --tsyms USD --every 1m
	bad --fsyms BTC --tsyms USD --idle-timeout 0
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD --channel trade
	[ "$status" -eq 64 ]
	[ "$stderr" = "dp-fetch: --channel is not for price
Try 'dp-fetch --help' for more information." ]
	run --separate-stderr dp-fetch stream --fsyms BTC --tsyms USD --stream-url "ws://host/v2?api_key=$KEY"
	[[ $stderr != *"$KEY"* ]]
}

@test "stream: --dot has the streaming states; the subscriptions come from the pairs and channels" {
	run dp-fetch --dot
	[ "$status" -eq 0 ]
	for s in connecting subscribing streaming reconnecting; do
		[[ $output == *"\"$s\" [label=\"$s\""* ]]
	done
	[[ $output == *'"reconnecting" -> "connecting" [label="wake"]'* ]]
	serve_ws '{"connections":[{"steps":['"$HELLO"',{"msg":"'$AGG':1"}]}]}'
	run dp-fetch stream --fsyms BTC,ETH --tsyms USD --channel aggregate,ohlc,trade --market Kraken --interval 1h --count 1
	[ "$status" -eq 0 ]
	[ "$(subadds)" = '["5~Kraken~BTC~USD","5~Kraken~ETH~USD","24~Kraken~BTC~USD~H","24~Kraken~ETH~USD~H","0~Kraken~BTC~USD","0~Kraken~ETH~USD"]' ]
	# The default: the aggregate index (CCCAGG).
	run dp-fetch stream --fsyms BTC --tsyms USD,EUR --count 1
	[ "$status" -eq 0 ]
	[ "$(subadds | tail -1)" = '["5~CCCAGG~BTC~USD","5~CCCAGG~BTC~EUR"]' ]
}

@test "stream: its machine is drawn and traced as dp-fetch stream, after the polls' dp-fetch" {
	run --separate-stderr dp-fetch --dot
	[ "$status" -eq 0 ]
	[ "$(grep '^digraph' <<<"$output")" = 'digraph "dp-fetch" {
digraph "dp-fetch stream" {' ]
	# Each machine has its own states: the polls' none of the stream's.
	polls=$(sed '/^digraph "dp-fetch stream"/,$d' <<<"$output")
	[[ $polls == *'"fetching" [label="fetching"'* && $polls != *'"connecting"'* ]]
	serve_ws '{"connections":[{"steps":['"$HELLO"',{"msg":"'$AGG':1"}]}]}'
	run --separate-stderr dp-fetch stream --fsyms BTC --tsyms USD --count 1 --trace-states
	[ "$status" -eq 0 ]
	[ "$(jq -r '"\(.cmd) \(.from)>\(.to) \(.event)"' <<<"$stderr" | paste -sd,)" = \
	  "dp-fetch stream idle>connecting start,dp-fetch stream connecting>subscribing connected,dp-fetch stream subscribing>streaming subscribed,dp-fetch stream streaming>done finished" ]
}

# --- records ---------------------------------------------------------------------

@test "stream: ticker updates are merged into the pair's last full state; numbers as sent" {
	serve_ws '{"connections":[{"steps":['"$HELLO"',{"msg":"'$PT':2"},{"msg":"'$PT':5"},{"msg":"'$PT':6"}]}]}'
	run --separate-stderr dp-fetch stream --fsyms BTC --tsyms GBP --channel ticker --market Coinbase --count 2 --trace-states
	[ "$status" -eq 0 ]
	[ "$(subadds)" = '["2~Coinbase~BTC~GBP"]' ]
	output=$(norm)
	same "$(expect 'tick("ticker")' "$PT:2"; expect 'tick("ticker")' "$PT:2" "$PT:6")"
	# The partial update had no OPENDAY: the full state's value is kept.
	[ "$(jq -r .open_day <<<"$output" | paste -sd,)" = "35953.28,35953.28" ]
	run dp-fetch stream --fsyms BTC --tsyms GBP --channel ticker --market Coinbase --count 1
	[[ $output == '{"type":"tick","source":"cryptocompare","channel":"ticker","market":"Coinbase","fsym":"BTC","tsym":"GBP","ts":"2022-03-29T20:23:07Z","price":36406.1,"bid":null,'* ]]
	[[ $output == *'"last_volume":0.00000691,'* ]]
	[[ $output == *',"flags":2}' ]]
}

@test "stream: a partial update before any full one prints what is known, the rest null, never another pair's values" {
	serve_ws '{"connections":[{"steps":['"$HELLO"',{"msg":"'$PT':3"},{"msg":"'$PT':6"},{"msg":"'$PT':2"}]}]}'
	run --separate-stderr dp-fetch stream --subs 2~Coinbase~ETH~USD,2~Coinbase~BTC~GBP --count 3
	[ "$status" -eq 0 ]
	output=$(norm)
	same "$(expect 'tick("ticker")' "$PT:3"; expect 'tick("ticker")' "$PT:6"; expect 'tick("ticker")' "$PT:6" "$PT:2")"
	# ETH/USD had an OPENDAY; the first BTC/GBP record has none.
	[ "$(jq -c '[.fsym, .open_day, .open_24h, .price]' <<<"$output" | sed -n 2p)" = '["BTC",null,null,36400.58]' ]
}

@test "stream: aggregate index records (type 5) carry the supply and market-cap fields" {
	serve_ws '{"connections":[{"steps":['"$HELLO"',{"msg":"'$AGG':1"}]}]}'
	run --separate-stderr dp-fetch stream --fsyms BTC --tsyms USD --count 1
	[ "$status" -eq 0 ]
	output=$(norm)
	same "$(expect 'tick("aggregate")' "$AGG:1")"
	[ "$(jq -c '[.channel, .ts, .median, .current_supply_mktcap, .last_trade_id]' <<<"$output")" = '["aggregate","2024-02-13T13:53:47Z",49735.6637659428,976108705309.5936,"217093517"]' ]
}

@test "stream: trades repeated after a reconnect are printed once; the gap is reported with its span" {
	# The server sends the last 20 trades again on every subscription.
	steps1='{"msg":"'$PT':1"},{"await":"SubAdd"},{"ack":{}}'
	for i in $(seq 1 20); do steps1+=',{"msg":"'$TR':'$i'"}'; done
	steps2='{"msg":"'$PT':1"},{"await":"SubAdd"},{"ack":{}}'
	for i in $(seq 6 25); do steps2+=',{"msg":"'$TR':'$i'"}'; done
	serve_ws '{"connections":[{"steps":['"$steps1"',{"drop":true}]},{"steps":['"$steps2"']}]}'
	run --separate-stderr dp-fetch stream --fsyms BTC --tsyms USD --channel trade --market Coinbase --count 25 "${FAST[@]}" -v
	[ "$status" -eq 0 ]
	output=$(norm)
	same "$(for i in $(seq 1 25); do expect trade "$TR:$i"; done)"
	[ "$(conns)" -eq 2 ]
	[ "$(subadds | sort -u)" = '["0~Coinbase~BTC~USD"]' ]
	grep -q '^dp-fetch: the connection to '"$SURL"' was lost; connecting again in [0-9]*ms$' <<<"$stderr"
	grep -Eq '^dp-fetch: gap 1: no data from 20[0-9-]{8}T[0-9:.]{8,12}Z to 20[0-9-]{8}T[0-9:.]{8,12}Z \([0-9ms]+\): the connection to '"$SURL"' was lost$' <<<"$stderr"
	[[ $stderr == *"25 records from "*" messages; 15 duplicate trades, 0 skipped messages, 1 gaps, 0 refused subscriptions"* ]]
	# Sides: 1 sell, 2 buy, 4 unknown, 9 sell and reversed.
	[ "$(jq -r '"\(.flags):\(.side)"' <<<"$output" | head -4 | paste -sd' ')" = "1:sell 2:buy 4:null 9:sell" ]
}

@test "stream: OHLC candle updates merge within a candle; a new candle starts afresh" {
	serve_ws '{"connections":[{"steps":['"$HELLO"',{"msgs":"'$OH'"}]}]}'
	run --separate-stderr dp-fetch stream --fsyms BTC --tsyms USD --channel ohlc --count 3
	[ "$status" -eq 0 ]
	[ "$(subadds)" = '["24~CCCAGG~BTC~USD~m"]' ]
	output=$(norm)
	same "$(expect ohlc "$OH:1"; expect ohlc "$OH:1" "$OH:2"; expect ohlc "$OH:3")"
}

@test "stream: --raw prints the server's messages unchanged, control messages too" {
	serve_ws '{"connections":[{"steps":[{"msg":"'$PT':1"},{"await":"SubAdd"},{"msg":"'$PT':2"},{"msg":"'$PT':4"},{"msg":"'$PT':5"},{"msg":"'$PT':6"}]}]}'
	run --separate-stderr dp-fetch stream --subs 2~Coinbase~BTC~GBP --raw --count 5
	[ "$status" -eq 0 ]
	same "$(sed -n '1,2p;4,6p' "$FIX/$PT")"
}

# --- faults ------------------------------------------------------------------------

@test "stream: silence (no heartbeat) for --idle-timeout reconnects; heartbeats keep the connection" {
	serve_ws '{"connections":[{"steps":['"$HELLO"',{"msg":"'$PT':2"},{"hold":true}]},{"steps":['"$HELLO"',{"every":0.1,"msg":"'$PT':5","times":8},{"msg":"'$PT':6"}]}]}'
	run --separate-stderr dp-fetch stream --subs 2~Coinbase~BTC~GBP --idle-timeout 400ms --count 2 "${FAST[@]}"
	[ "$status" -eq 0 ]
	output=$(norm)
	same "$(expect 'tick("ticker")' "$PT:2"; expect 'tick("ticker")' "$PT:2" "$PT:6")"
	[ "$(conns)" -eq 2 ]
	[[ $stderr == *"no message for 400ms (--idle-timeout); connecting again in "* ]]
	[[ $stderr == *"gap 1: no data from "*": no message for 400ms (--idle-timeout)"* ]]
}

@test "stream: 429 (too many sockets) backs off and connects again; a refused upgrade (HTTP 503) too" {
	serve_ws '{"connections":[{"steps":[{"msg":"'$PT':1"},{"msg":"cryptonomicon__too_many_sockets.ndjson:1"},{"hold":true}]},{"http_status":503},{"steps":['"$HELLO"',{"msg":"'$AGG':1"}]}]}'
	run --separate-stderr dp-fetch stream --fsyms BTC --tsyms USD --count 1 "${FAST[@]}" --trace-states
	[ "$status" -eq 0 ]
	output=$(norm)
	same "$(expect 'tick("aggregate")' "$AGG:1")"
	[ "$(conns)" -eq 3 ]
	grep -q '^dp-fetch: 429 TOO_MANY_SOCKETS_MAX_1_PER_CLIENT: You have reached your maximum sockets open for your subscription; connecting again in ' <<<"$stderr"
	grep -q "^dp-fetch: HTTP 503 from $SURL; connecting again in " <<<"$stderr"
	grep -q '"from":"connecting","event":"lost","to":"reconnecting"' <<<"$stderr"
	grep -q '"from":"reconnecting","event":"wake","to":"connecting"' <<<"$stderr"
	# No data was lost before the first record: no gap.
	[[ $stderr != *"gap 1"* ]]
}

@test "stream: 401 from the streamer exits 77 with its message; so does HTTP 401 at the upgrade" {
	serve_ws '{"connections":[{"steps":[{"msg":"'$DOC':1"},{"await":"SubAdd"},{"msg":"'$DOC':7"},{"hold":true}]},{"http_status":401}]}'
	run --separate-stderr dp-fetch stream --fsyms BTC --tsyms USD "${FAST[@]}" --trace-states
	[ "$status" -eq 77 ]
	[ "$output" = "" ]
	[[ $stderr == *'dp-fetch: the streamer refused the key: 401 UNAUTHORIZED: We only support JSON format with a valid api_key. (parameter format)'* ]]
	[ "$(last_move)" = "subscribing -failed-> failed" ]
	run --separate-stderr dp-fetch stream --fsyms BTC --tsyms USD "${FAST[@]}" --trace-states
	[ "$status" -eq 77 ]
	[[ $stderr == *"dp-fetch: HTTP 401 from $SURL: the streamer wants a valid key"* ]]
	[ "$(last_move)" = "connecting -failed-> failed" ]
	# Mid-stream, after records.
	kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true
	serve_ws '{"connections":[{"steps":['"$HELLO"',{"msg":"'$AGG':1"},{"msg":"'$DOC':7"},{"hold":true}]}]}'
	run --separate-stderr dp-fetch stream --fsyms BTC --tsyms USD --trace-states
	[ "$status" -eq 77 ]
	[ "$(jq -r .fsym <<<"$output")" = BTC ]
	[ "$(last_move)" = "streaming -failed-> failed" ]
}

@test "stream: an invalid subscription is reported with the server's message; the others go on; exit 1" {
	serve_ws '{"connections":[{"steps":[{"msg":"'$PT':1"},{"await":"SubAdd"},{"msg":"cryptonomicon__invalid_sub.ndjson:1"},{"send":{"TYPE":"16","MESSAGE":"SUBSCRIBECOMPLETE","SUB":"5~CCCAGG~BTC~USD"}},{"msg":"'$AGG':1"},{"drop":true}]},{"steps":['"$HELLO"',{"msg":"'$AGG':1"}]}]}'
	run --separate-stderr dp-fetch stream --fsyms BTC,FOO --tsyms USD --count 2 "${FAST[@]}"
	[ "$status" -eq 1 ]
	output=$(norm)
	same "$(expect 'tick("aggregate")' "$AGG:1"; expect 'tick("aggregate")' "$AGG:1")"
	grep -qx 'dp-fetch: subscription 5~CCCAGG~FOO~USD refused: INVALID_SUB: We have not integrated any of the exchanges FOO trades on or we have not currently mapped it.' <<<"$stderr"
	# The refused one is not asked for again after the reconnect.
	[ "$(subadds | paste -sd' ')" = '["5~CCCAGG~BTC~USD","5~CCCAGG~FOO~USD"] ["5~CCCAGG~BTC~USD"]' ]
}

@test "stream: every subscription refused ends at once with 1" {
	serve_ws '{"connections":[{"steps":['"$(sed 's/{"ack":{}}/{"ack":{"refuse":{"5~CCCAGG~FOO~USD":"We have not integrated any of the exchanges FOO trades on or we have not currently mapped it."}}}/' <<<"$HELLO")"',{"hold":true}]}]}'
	run --separate-stderr dp-fetch stream --fsyms FOO --tsyms USD --trace-states
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	[[ $stderr == *"dp-fetch: every subscription was refused"* ]]
	[ "$(last_move)" = "subscribing -failed-> failed" ]
}

@test "stream: malformed messages are reported and skipped, the others printed, exit 65 at the end" {
	serve_ws '{"connections":[{"steps":['"$HELLO"',{"raw":"{\"TYPE\":\"2\",\"MARKET\":\"Coinbase\",\"PRICE\":"},{"msg":"'$PT':2"},{"raw":"[1,2]"},{"send":{"TYPE":"2","MARKET":"Coinbase","FROMSYMBOL":"BTC","TOSYMBOL":"GBP","FLAGS":1,"PRICE":{"x":1}}},{"msg":"'$PT':6"}]}]}'
	run --separate-stderr dp-fetch stream --subs 2~Coinbase~BTC~GBP --count 2
	[ "$status" -eq 65 ]
	output=$(norm)
	same "$(expect 'tick("ticker")' "$PT:2"; expect 'tick("ticker")' "$PT:2" "$PT:6")"
	# Messages 1-3 are the welcome and the answers to SubAdd.
	[ "$(grep -c 'skipped message' <<<"$stderr")" -eq 3 ]
	[[ $stderr == *'dp-fetch: skipped message 4 from the server: not valid JSON (unexpected end of input at byte 40): {"TYPE":"2","MARKET":"Coinbase","PRICE":'* ]]
	[[ $stderr == *'dp-fetch: skipped message 6 from the server: not a JSON object: [1,2]'* ]]
	[[ $stderr == *'dp-fetch: skipped message 7 from the server: PRICE is not a number: {"TYPE":"2","MARKET":"Coinbase",'* ]]
}

@test "stream: the key goes in 'Authorization: Apikey KEY' and never shows in output, stderr (-vv) or argv" {
	export CC_EXPECT_KEY=$KEY
	serve_ws '{"connections":[{"steps":['"$HELLO"',{"msg":"'$AGG':1"},{"sleep":1},{"drop":true}]},{"steps":['"$HELLO"',{"msg":"'$AGG':1"}]}]}'
	printf '%s\n' "$KEY" > "$W/key"
	chmod 600 "$W/key"
	dp-fetch stream --fsyms BTC --tsyms USD --api-key-file "$W/key" --count 2 -vv --trace-states "${FAST[@]}" \
		> "$W/out" 2> "$W/err" &
	BG_PID=$!
	wait_until 5 grep -q '"event": "recv"' "$W/requests"
	tr '\0' ' ' < "/proc/$BG_PID/cmdline" > "$W/cmdline"
	wait "$BG_PID"
	BG_PID=
	[[ $(cat "$W/cmdline") == *"--api-key-file $W/key"* ]]
	[ "$(grep -cF "$KEY" "$W/cmdline")" = 0 ]
	[ "$(jq -c 'select(.event == "upgrade") | [.auth, .auth_scheme, .auth_ok, .query]' "$W/requests" | sort -u)" = '[true,"Apikey",true,{}]' ]
	grep -q 'connecting to .* (with api key)' "$W/err"
	[ "$(wc -l < "$W/out")" -eq 2 ]
	run cat "$W/out" "$W/err"
	[[ $output != *"$KEY"* ]]
	# Without a key, no header.
	run dp-fetch stream --fsyms BTC --tsyms USD --count 1
	[ "$(jq -c 'select(.event == "upgrade") | .auth' "$W/requests" | tail -1)" = false ]
}

@test "stream: wss:// checks the server's certificate against the trust store" {
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/key.pem" -out "$W/cert.pem" \
		-days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
	serve_ws '{"connections":[{"steps":['"$HELLO"',{"msg":"'$AGG':1"}]}]}' \
		--tls-cert "$W/cert.pem" --tls-key "$W/key.pem"
	# Not trusted: refused by the client, retried, given up.
	run --separate-stderr dp-fetch stream --fsyms BTC --tsyms USD --stream-url "wss://localhost:$PORT/v2" --max-retries 0
	[ "$status" -eq 69 ]
	[[ $stderr == "dp-fetch: cannot connect to wss://localhost:$PORT/v2: "* ]]
	[ "$(jq -r .event "$W/requests" | sort -u | paste -sd' ')" = "end tls_error" ]
	# Trusted (OpenSSL reads $SSL_CERT_FILE): records.
	SSL_CERT_FILE=$W/cert.pem run --separate-stderr dp-fetch stream --fsyms BTC --tsyms USD --stream-url "wss://localhost:$PORT/v2" --count 1
	[ "$status" -eq 0 ]
	output=$(norm)
	same "$(expect 'tick("aggregate")' "$AGG:1")"
}

@test "stream: an unreachable streamer is retried until --max-retries, then 69" {
	port=$(free_port)
	run --separate-stderr dp-fetch stream --fsyms BTC --tsyms USD --stream-url "ws://127.0.0.1:$port/v2" --max-retries 2 "${FAST[@]}" --trace-states
	[ "$status" -eq 69 ]
	[ "$output" = "" ]
	[ "$(grep -c 'connecting again in' <<<"$stderr")" -eq 2 ]
	[[ $stderr == *"dp-fetch: cannot connect to ws://127.0.0.1:$port/v2: "*"(gave up after 2 reconnects)"* ]]
	[ "$(last_move)" = "reconnecting -give_up-> failed" ]
}

@test "stream: the server ending the connection before the subscriptions are answered reconnects" {
	serve_ws '{"connections":[{"steps":[{"msg":"'$PT':1"},{"await":"SubAdd"},{"close":1011}]},{"steps":['"$HELLO"',{"msg":"'$AGG':1"}]}]}'
	run --separate-stderr dp-fetch stream --fsyms BTC --tsyms USD --count 1 "${FAST[@]}" --trace-states
	[ "$status" -eq 0 ]
	[ "$(conns)" -eq 2 ]
	[[ $stderr == *"$SURL closed the connection (code 1011); connecting again in"* ]]
	grep -q '"from":"subscribing","event":"lost","to":"reconnecting"' <<<"$stderr"
}

@test "stream: FORCE_DISCONNECT from the server reconnects" {
	serve_ws '{"connections":[{"steps":['"$HELLO"',{"msg":"'$AGG':1"},{"send":{"TYPE":"500","MESSAGE":"FORCE_DISCONNECT","INFO":"slow pongs"}},{"hold":true}]},{"steps":['"$HELLO"',{"msg":"'$AGG':1"}]}]}'
	run --separate-stderr dp-fetch stream --fsyms BTC --tsyms USD --count 2 "${FAST[@]}" --trace-states
	[ "$status" -eq 0 ]
	[ "$(conns)" -eq 2 ]
	[[ $stderr == *"500 FORCE_DISCONNECT: slow pongs; connecting again in"* ]]
	grep -q '"from":"streaming","event":"lost","to":"reconnecting"' <<<"$stderr"
}

@test "stream: --count ends it while the subscriptions are answered, and while streaming" {
	serve_ws '{"connections":[{"steps":[{"msg":"'$PT':1"},{"await":"SubAdd"},{"msg":"'$AGG':1"},{"hold":true}]}]}'
	run --separate-stderr dp-fetch stream --fsyms BTC --tsyms USD --count 1 --trace-states
	[ "$status" -eq 0 ]
	[ "$(jq -r .fsym <<<"$output")" = BTC ]
	[ "$(last_move)" = "subscribing -finished-> done" ]
	# The socket was closed cleanly.
	wait_until 5 grep -q '"event": "close", "code": 1000' "$W/requests"
}

@test "stream: --progress counts records, gaps and reconnects" {
	serve_ws '{"connections":[{"steps":['"$HELLO"',{"msg":"'$AGG':1"},{"drop":true}]},{"steps":['"$HELLO"',{"msg":"'$AGG':1"}]}]}'
	run --separate-stderr dp-fetch stream --fsyms BTC --tsyms USD --count 2 --progress "${FAST[@]}"
	[ "$status" -eq 0 ]
	[[ $stderr == *"dp-fetch: progress: 2 records, "*"/s overall, "*" messages, 0 duplicate trades, 1 gaps ("*"), 1 reconnects"* ]]
}

# --- output -------------------------------------------------------------------------

@test "stream: | head ends quietly with 0, in streaming and while subscribing; a full disk exits 74" {
	serve_ws '{"connections":[{"steps":['"$HELLO"',{"every":0.05,"msg":"'$AGG':1"}]},{"steps":[{"msg":"'$PT':1"},{"await":"SubAdd"},{"every":0.05,"msg":"'$AGG':1"}]}]}'
	run --separate-stderr bash -c 'dp-fetch stream --fsyms BTC --tsyms USD --trace-states 2>"$0/err1" | head -2; echo "rc=${PIPESTATUS[0]}"' "$W"
	[ "${lines[2]}" = "rc=0" ]
	[ "$(grep -v '^{' "$W/err1")" = "" ]
	[ "$(tail -1 "$W/err1" | jq -r '"\(.from) -\(.event)-> \(.to)"')" = "streaming -closed-> done" ]
	run --separate-stderr bash -c 'dp-fetch stream --fsyms BTC --tsyms USD --trace-states 2>"$0/err2" | head -2; echo "rc=${PIPESTATUS[0]}"' "$W"
	[ "${lines[2]}" = "rc=0" ]
	[ "$(tail -1 "$W/err2" | jq -r '"\(.from) -\(.event)-> \(.to)"')" = "subscribing -closed-> done" ]
	run --separate-stderr bash -c 'dp-fetch stream --fsyms BTC --tsyms USD --trace-states > /dev/full'
	[ "$status" -eq 74 ]
	[[ $stderr == *"dp-fetch: cannot write to stdout: No space left on device"* ]]
	grep -q '"from":"subscribing","event":"failed","to":"failed"' <<<"$stderr" ||
		grep -q '"from":"streaming","event":"failed","to":"failed"' <<<"$stderr"
}

@test "stream: records reach stdout as they come, the first payload before the subscription is answered too" {
	# The record and the answers come in one burst, which ends with the answer.
	serve_ws '{"connections":[{"steps":[{"msg":"'$PT':1"},{"await":"SubAdd"},{"burst":[{"msg":"'$AGG':1"},{"send":{"TYPE":"16","MESSAGE":"SUBSCRIBECOMPLETE","SUB":"5~CCCAGG~BTC~USD"}}]},{"hold":true}]}]}'
	dp-fetch stream --fsyms BTC --tsyms USD > "$W/out" 2> "$W/err" &
	BG_PID=$!
	# Still running, and nothing more comes: the record must not wait in a buffer.
	wait_until 5 test -s "$W/out"
	[ "$(jq -r .fsym "$W/out")" = BTC ]
	proc_gone "$BG_PID" && { echo "dp-fetch ended"; return 1; }
	kill -TERM "$BG_PID"
	wait "$BG_PID"
	BG_PID=
}

# --- signals in every state ----------------------------------------------------------

@test "stream: SIGTERM ends it within a second in every state, closing the socket, exit 0" {
	blackhole_start
	signal_in connecting TERM dp-fetch stream --fsyms BTC --tsyms USD --stream-url "ws://127.0.0.1:$BLACKHOLE_PORT/v2" --trace-states
	[ "$status" -eq 0 ]
	[ "$(last_move)" = "connecting -stop-> done" ]
	# The record comes before the subscription is answered (as the streamer
	# sends a first payload), so it is there before the machine streams.
	serve_ws '{"connections":[{"steps":[{"msg":"'$PT':1"},{"await":"SubAdd"},{"hold":true}]},{"steps":[{"msg":"'$PT':1"},{"await":"SubAdd"},{"msg":"'$AGG':1"},{"ack":{}},{"hold":true}]},{"http_status":503}]}'
	signal_in subscribing TERM dp-fetch stream --fsyms BTC --tsyms USD --trace-states
	[ "$status" -eq 0 ]
	[ "$(last_move)" = "subscribing -stop-> done" ]
	signal_in streaming INT dp-fetch stream --fsyms BTC --tsyms USD --trace-states
	[ "$status" -eq 0 ]
	[ "$(last_move)" = "streaming -stop-> done" ]
	[ "$(jq -r .fsym "$W/sig.out")" = BTC ]
	wait_until 5 grep -q '"n": 2, "event": "close", "code": 1000' "$W/requests"
	signal_in reconnecting TERM dp-fetch stream --fsyms BTC --tsyms USD --retry-base 30s --trace-states
	[ "$status" -eq 0 ]
	[ "$(last_move)" = "reconnecting -stop-> done" ]
}
