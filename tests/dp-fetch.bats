#!/usr/bin/env bats
# dp-fetch against tests/helpers/ccserver.py, a local stand-in for the
# CryptoCompare API that serves recorded responses (tests/fixtures/
# cryptocompare) with injected faults.  Only the last test needs Kafka.

bats_require_minimum_version 1.5.0
load helpers/common
load helpers/fetch

# A dp-fetch that pages forever must fail its test, not hang the suite.
BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-60}

FIX=$BATS_TEST_DIRNAME/fixtures/cryptocompare
# 2001 minute candles, 2024-12-10T02:40:00Z .. 2024-12-11T12:00:00Z
MIN=1912pro_test-coin__histominute_v1.json
# 11 day candles, 2019-12-25 .. 2020-01-04
DAY=davidsilva2841__histoday_v2.json
NOW_MIN=2024-12-11T12:01:00Z       # the 12:00 candle is the API's newest: open
# Clocks past the whole of $MIN and $DAY, with --until before them: every
# candle is closed (the range does not reach the present, so no candle is
# the API's newest) and the requests end where the fixtures end.
MIN_ALL=(--now 2024-12-11T13:00:00Z --until 2024-12-11T12:01:00Z)
DAY_ALL=(--now 2020-01-10T00:00:00Z --until 2020-01-05T00:00:00Z)

setup() { fetch_setup; }
teardown() { fetch_teardown; }

# serve SCENARIO: start the fake API with SCENARIO (JSON, see ccserver.py);
# exports DP_CRYPTOCOMPARE_URL.  Requests are logged to $W/requests.
serve() {
	start_server ccserver.py "$1" "$FIX"
	URL=http://127.0.0.1:$PORT
	export DP_CRYPTOCOMPARE_URL=$URL
}

nreq() { wc -l < "$W/requests"; }

# The records dp-fetch must print for every candle of FIXTURE, by jq.
expect_ohlcv() { # FIXTURE FSYM TSYM INTERVAL [jq filter on candles]
	jq -c --arg f "$2" --arg t "$3" --arg i "$4" \
		'(.Data | if type == "object" then .Data else . end)[] | '"${5:-.}"' |
		{type: "ohlcv", source: "cryptocompare", fsym: $f, tsym: $t, interval: $i,
		 ts: (.time | todate), open, high, low, close,
		 volume_from: .volumefrom, volume_to: .volumeto}' "$FIX/$1"
}

# The records for the candles of FIXTURE aggregated into candles of SIZE
# seconds, opening on multiples of SIZE since the epoch, as the API does
# (and tests/helpers/ccserver.py with aggregate=N), computed here by jq.
expect_agg() { # FIXTURE FSYM TSYM LABEL SIZE [jq filter on candles]
	jq -c --arg f "$2" --arg t "$3" --arg i "$4" --argjson n "$5" \
		'(.Data | if type == "object" then .Data else . end) | group_by(.time - .time % $n) |
		 map({time: (.[0].time - .[0].time % $n), open: .[0].open, high: (map(.high) | max),
		      low: (map(.low) | min), close: .[-1].close, volumefrom: (map(.volumefrom) | add),
		      volumeto: (map(.volumeto) | add)})[] | '"${6:-.}"' |
		{type: "ohlcv", source: "cryptocompare", fsym: $f, tsym: $t, interval: $i,
		 ts: (.time | todate), open, high, low, close,
		 volume_from: .volumefrom, volume_to: .volumeto}' "$FIX/$1"
}

state_last() { awk '!/^#/ { print $5 }' "$1" 2>/dev/null; }
state_at_least() { local v; v=$(state_last "$1"); [[ -n $v ]] && ((v >= $2)); }

PRICE_BTC='{"type":"price","source":"cryptocompare","market":"CCCAGG","fsym":"BTC","tsym":"USD","ts":"2026-01-03T03:34:27Z","price":90176.2230825884,"open_24h":88846.1136412025,"high_24h":90940.5362669072,"low_24h":88400.8971197111,"volume_24h":30885.72287551,"volume_24h_to":2771230723.09418,"change_24h":1330.10944138591,"change_pct_24h":1.497093555220034,"mktcap":1800887889241.2793}'
PRICE_ETH='{"type":"price","source":"cryptocompare","market":"CCCAGG","fsym":"ETH","tsym":"USD","ts":"2026-01-03T03:34:27Z","price":3120.02994706168,"open_24h":3019.37115688818,"high_24h":3148.96201674119,"low_24h":3005.74633061256,"volume_24h":391174.04956232,"volume_24h_to":1207826213.57055,"change_24h":100.65879017350017,"change_pct_24h":3.3337666998594826,"mktcap":376571634175.4037}'
PRICES='{"routes":{"/data/pricemultifull":[{"file":"saundersconsult__pricemultifull.json"}]}}'

# --- command line -----------------------------------------------------------

@test "--help names the commands" {
	run dp-fetch --help
	[ "$status" -eq 0 ]
	[[ $output == *"dp-fetch price --fsyms LIST --tsyms LIST"* ]]
	[[ $output == *"dp-fetch ohlcv --fsym LIST --tsym LIST --interval INTERVAL"* ]]
	[[ $output == *"dp-fetch stream --fsyms LIST --tsyms LIST [--channel LIST]"* ]]
}

@test "--dot prints the state machine with every state and exits 0" {
	run dp-fetch --dot
	[ "$status" -eq 0 ]
	[[ ${lines[0]} == 'digraph "dp-fetch" {' ]]
	for s in idle fetching emitting waiting error backoff 'done' partial failed interrupted; do
		[[ $output == *"\"$s\" [label=\"$s\""* ]]
	done
	[[ $output == *'"error" -> "backoff" [label="retry"]'* ]]
	[[ $output == *'"backoff" -> "fetching" [label="wake"]'* ]]
}

@test "-V prints the version" {
	run dp-fetch -V
	[ "$status" -eq 0 ]
	[[ $output == "dp-fetch $(cat "$DP_ROOT/VERSION")"* ]]
}

@test "bad command lines exit 64 with a message and print nothing" {
	bad() {
		run dp-fetch "$@"
		[ "$status" -eq 64 ] || { echo "status $status for: $*"; return 1; }
		[[ $output == *"dp-fetch: "* ]]
	}
	bad
	bad fetch --fsyms BTC --tsyms USD
	bad price --tsyms USD
	bad price --fsyms BTC, --tsyms USD
	bad price --fsyms BTC --tsyms USD extra
	bad price --fsyms BTC --tsyms USD --interval hour
	bad price --fsyms BTC --tsyms USD --state "$W/s"
	bad ohlcv --fsym BTC --tsym USD
	bad ohlcv --fsym BTC --tsym USD --interval week
	bad ohlcv --fsym BTC --tsym USD --interval day --since 2024-01-02T00:00:00Z --until 2024-01-01T00:00:00Z
	bad ohlcv --fsym BTC --tsym USD --interval day --since yesterday
	bad ohlcv --fsym BTC --tsym USD --interval day --page-size 2001
	bad price --fsyms BTC --tsyms USD --count 2
	bad price --fsyms BTC --tsyms USD --every 1m --now 2024-01-01T00:00:00Z
	bad price --fsyms BTC --tsyms USD --every 10x
	bad price --fsyms BTC --tsyms USD --max-retries -1
	bad price --fsyms BTC --tsyms USD --base-url ftp://example.com
	bad price --fsyms BTC --tsyms USD --settle 5s
	bad ohlcv --fsym BTC --tsym USD --interval day --settle 2h
	bad ohlcv --fsym BTC --tsym USD --interval day --since 2025-02-29T00:00:00Z
	[ ! -e "$W/s" ]
}

@test "an API key on the command line is refused without echoing it" {
	run dp-fetch price --fsyms BTC --tsyms USD --api-key="$KEY"
	[ "$status" -eq 64 ]
	[[ $output == *"unknown or incomplete option '--api-key'"* ]]
	[[ $output != *"$KEY"* ]]
}

# --- prices -------------------------------------------------------------------

@test "price prints one exact record per pair, in the order asked" {
	serve "$PRICES"
	run --separate-stderr dp-fetch price --fsyms BTC,ETH --tsyms USD
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
	[ "${#lines[@]}" -eq 2 ]
	[ "${lines[0]}" = "$PRICE_BTC" ]
	[ "${lines[1]}" = "$PRICE_ETH" ]
	run jq -r '"\(.path) \(.query.fsyms) \(.query.tsyms) \(.query.e) \(.ua)"' "$W/requests"
	[ "$output" = "/data/pricemultifull BTC,ETH USD null dp-fetch/$(cat "$DP_ROOT/VERSION")" ]
}

@test "price keeps nulls as null and follows the order of --fsyms and --tsyms" {
	serve '{"routes":{"/data/pricemultifull":[{"file":"joancaron__Prices_MultiFull.json"}]}}'
	run dp-fetch price --fsyms DASH,ETH --tsyms EUR,BTC,USD
	[ "$status" -eq 0 ]
	[ "$(jq -r '"\(.fsym)/\(.tsym)"' <<<"$output" | paste -sd' ')" = "DASH/EUR DASH/BTC DASH/USD ETH/EUR ETH/BTC ETH/USD" ]
	[ "${lines[3]}" = '{"type":"price","source":"cryptocompare","market":"CCCAGG","fsym":"ETH","tsym":"EUR","ts":"2017-11-09T14:35:28Z","price":282.81,"open_24h":null,"high_24h":283.47,"low_24h":null,"volume_24h":121564.71196154003,"volume_24h_to":32841444.18075618,"change_24h":null,"change_pct_24h":null,"mktcap":27042269813.55227}' ]
}

@test "price --raw prints the RAW objects unchanged" {
	serve "$PRICES"
	run dp-fetch price --fsyms BTC,ETH --tsyms USD --raw
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "$(jq -c .RAW.BTC.USD "$FIX/saundersconsult__pricemultifull.json")" ]
	[ "${lines[1]}" = "$(jq -c .RAW.ETH.USD "$FIX/saundersconsult__pricemultifull.json")" ]
	[ "${#lines[@]}" -eq 2 ]
}

@test "price matches symbols ignoring case, passes --market as e, and reports missing pairs with 1" {
	serve "$PRICES"
	run --separate-stderr dp-fetch price --fsyms btc,XRP --tsyms usd --market CCCAGG
	[ "$status" -eq 1 ]
	[ "$output" = "$PRICE_BTC" ]
	[ "$stderr" = "dp-fetch: no price for XRP/usd in the response" ]
	[ "$(jq -r '"\(.query.fsyms) \(.query.tsyms) \(.query.e)"' "$W/requests")" = "btc,XRP usd CCCAGG" ]
}

@test "gzip-encoded responses are decoded" {
	serve '{"routes":{"/data/pricemultifull":[{"file":"saundersconsult__pricemultifull.json","gzip":true}]}}'
	run dp-fetch price --fsyms BTC --tsyms USD
	[ "$status" -eq 0 ]
	[ "$output" = "$PRICE_BTC" ]
	[[ $(jq -r .accept_encoding "$W/requests") == *gzip* ]]
}

@test "--base-url wins over \$DP_CRYPTOCOMPARE_URL" {
	serve "$PRICES"
	DP_CRYPTOCOMPARE_URL=http://127.0.0.1:$(free_port) run dp-fetch price --fsyms BTC --tsyms USD --base-url "$URL/" --max-retries 0
	[ "$status" -eq 0 ]
	[ "$output" = "$PRICE_BTC" ]
}

# --- the API key ----------------------------------------------------------------

@test "the key from \$CRYPTOCOMPARE_API_KEY is sent as 'Authorization: Apikey KEY'" {
	export CC_EXPECT_KEY=$KEY
	serve "$PRICES"
	CRYPTOCOMPARE_API_KEY=$KEY run dp-fetch price --fsyms BTC --tsyms USD
	[ "$status" -eq 0 ]
	[ "$(jq -c '[.auth, .auth_scheme, .auth_ok]' "$W/requests")" = '[true,"Apikey",true]' ]
}

@test "without a key no Authorization header is sent" {
	serve "$PRICES"
	run dp-fetch price --fsyms BTC --tsyms USD
	[ "$status" -eq 0 ]
	[ "$(jq -c .auth "$W/requests")" = false ]
}

@test "--api-key-file wins over the environment; a missing file exits 66" {
	export CC_EXPECT_KEY=$KEY
	serve "$PRICES"
	printf '%s\n' "$KEY" > "$W/key"
	chmod 600 "$W/key"
	CRYPTOCOMPARE_API_KEY=wrong-key run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD --api-key-file "$W/key"
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
	[ "$(jq -c .auth_ok "$W/requests")" = true ]
	run dp-fetch price --fsyms BTC --tsyms USD --api-key-file "$W/nokey"
	[ "$status" -eq 66 ]
	[[ $output == "dp-fetch: cannot open api key file $W/nokey: No such file or directory"* ]]
	[ "$(nreq)" -eq 1 ]
}

@test "the key never shows in stdout, stderr (even -vv and errors) or /proc/PID/cmdline" {
	serve '{"routes":{"/data/pricemultifull":[{"file":"saundersconsult__pricemultifull.json","delay":1.5},{"file":"saundersconsult__error_auth_required.json"}]}}'
	printf '%s\n' "$KEY" > "$W/key"
	chmod 600 "$W/key"
	dp-fetch price --fsyms BTC --tsyms USD --api-key-file "$W/key" -vv --trace-states \
		> "$W/out" 2> "$W/err" &
	BG_PID=$!
	wait_until 5 test -s "$W/requests"
	tr '\0' ' ' < "/proc/$BG_PID/cmdline" > "$W/cmdline"
	wait "$BG_PID"
	BG_PID=
	[[ $(cat "$W/cmdline") == *"--api-key-file $W/key"* ]]
	run grep -cF "$KEY" "$W/cmdline"
	[ "$output" = 0 ]
	[ "$(cat "$W/out")" = "$PRICE_BTC" ]
	grep -q 'GET .*with api key' "$W/err"
	run cat "$W/out" "$W/err"
	[[ $output != *"$KEY"* ]]
	CRYPTOCOMPARE_API_KEY=$KEY run dp-fetch price --fsyms BTC --tsyms USD -vv
	[ "$status" -eq 77 ]
	[[ $output == *'"You need a valid auth key or api key to access this endpoint"'* ]]
	[[ $output != *"$KEY"* ]]
}

# --- failures -------------------------------------------------------------------

@test "rate limits (Type 99) are retried with backoff until the data comes" {
	serve '{"routes":{"/data/pricemultifull":[{"file":"BittyTax_issue381__error_rate_limit.json","times":2},{"file":"saundersconsult__pricemultifull.json"}]}}'
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD --retry-base 10ms -v
	[ "$status" -eq 0 ]
	[ "$output" = "$PRICE_BTC" ]
	[ "$(nreq)" -eq 3 ]
	[[ $stderr == *'rate limited (Type 99): "You are over your rate limit please upgrade your account!"; limit reached: day 7773 of 7500 calls; retry 1 of 5'* ]]
	[[ $stderr == *"retry 2 of 5"* ]]
}

@test "a lasting rate limit gives up after --max-retries with exit 69" {
	serve '{"routes":{"/data/pricemultifull":[{"file":"CryptoCompareLTD_api-guides__error_rate_limit.json"}]}}'
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD --retry-base 10ms --max-retries 2
	[ "$status" -eq 69 ]
	[ "$output" = "" ]
	[ "$(nreq)" -eq 3 ]
	[[ $stderr == "dp-fetch: $URL/data/pricemultifull?fsyms=BTC&tsyms=USD: rate limited (Type 99): \"You are over your rate limit please upgrade your account!\"; limit reached: second 53 of 50 calls (gave up after 2 retries)" ]]
}

@test "HTTP 500, a dropped connection and a slow response (--timeout) are retried" {
	serve '{"routes":{"/data/pricemultifull":[{"status":500,"body":"oops"},{"drop":true},{"file":"saundersconsult__pricemultifull.json","delay":3},{"file":"saundersconsult__pricemultifull.json"}]}}'
	start=$SECONDS
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD --retry-base 10ms --timeout 300ms -v
	[ "$status" -eq 0 ]
	[ "$output" = "$PRICE_BTC" ]
	[ "$(nreq)" -eq 4 ]
	[ $((SECONDS - start)) -lt 3 ]
	[[ $stderr == *"HTTP 500 from $URL/data/pricemultifull"* ]]
	[[ $stderr == *"Timeout was reached"* || $stderr == *"timed out"* ]]
}

@test "truncated JSON exits 65 at once with a message, printing nothing" {
	serve '{"routes":{"/data/pricemultifull":[{"file":"saundersconsult__pricemultifull.json","truncate":700}]}}'
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD --retry-base 10ms
	[ "$status" -eq 65 ]
	[ "$output" = "" ]
	[ "$(nreq)" -eq 1 ]
	[[ $stderr == "dp-fetch: malformed response from $URL/data/pricemultifull?fsyms=BTC&tsyms=USD: not valid JSON ("* ]]
}

@test "a non-number where a price belongs exits 65" {
	serve '{"routes":{"/data/pricemultifull":[{"json":{"RAW":{"BTC":{"USD":{"PRICE":{"x":1}}}}}}]}}'
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD
	[ "$status" -eq 65 ]
	[ "$output" = "" ]
	[[ $stderr == *"RAW.BTC.USD.PRICE: expected a number, got object"* ]]
}

@test "a bad parameter (Type 2) exits 64 quoting Message and ParamWithError" {
	serve '{"routes":{"/data/pricemultifull":[{"file":"saundersconsult__error_generateAvg_missing_tsym.json"}]}}'
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD --retry-base 10ms
	[ "$status" -eq 64 ]
	[ "$(nreq)" -eq 1 ]
	[[ $stderr == *'the API refused the request (Type 2): "tsym is a required param." (ParamWithError: "tsym")' ]]
}

@test "an unknown path (Type 0) and an HTTP 404 exit 69" {
	serve '{"routes":{}}'
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD
	[ "$status" -eq 69 ]
	[[ $stderr == *'the API refused the request (Type 0): "Path does not exist"' ]]
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD --base-url "$URL/nothing" --max-retries 0
	[ "$status" -eq 69 ]
	[ "$(nreq)" -eq 2 ]
}

@test "an unreachable server is retried, then exits 69" {
	port=$(free_port)
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD --base-url "http://127.0.0.1:$port" --retry-base 10ms --max-retries 2
	[ "$status" -eq 69 ]
	[ "$output" = "" ]
	[[ $stderr == "dp-fetch: request to http://127.0.0.1:$port/data/pricemultifull?fsyms=BTC&tsyms=USD failed: "*"(gave up after 2 retries)" ]]
}

@test "a write error on stdout exits 74; a closed pipe ends quietly with 0" {
	serve '{"routes":{"/data/v2/histominute":[{"histo":"'$MIN'"}]}}'
	run --separate-stderr bash -c "dp-fetch ohlcv --fsym X --tsym USD --interval minute --now $NOW_MIN > /dev/full"
	[ "$status" -eq 74 ]
	[[ $stderr == *"dp-fetch: cannot write to stdout: No space left on device"* ]]
	run --separate-stderr bash -c "dp-fetch ohlcv --fsym X --tsym USD --interval minute --now $NOW_MIN | head -1; echo \"rc=\${PIPESTATUS[0]}\""
	[ "$stderr" = "" ]
	[ "${lines[0]}" = "$(expect_ohlcv "$MIN" X USD 1m | head -1)" ]
	[ "${lines[1]}" = "rc=0" ]
}

@test "an API error of Type 1 that is not about a key exits 69, not 77" {
	serve '{"routes":{"/data/pricemultifull":[{"file":"joancaron__Error.json"}]}}'
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD
	[ "$status" -eq 69 ]
	[ "$stderr" = "dp-fetch: $URL/data/pricemultifull?fsyms=BTC&tsyms=USD: the API refused the request (Type 1): \"Message\"" ]
}

@test "HTTP 401 and 403 exit 77 whatever the body says" {
	serve '{"routes":{"/data/pricemultifull":[{"status":401,"body":"no"},{"status":403,"file":"saundersconsult__error_generateAvg_missing_tsym.json"}]}}'
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD
	[ "$status" -eq 77 ]
	[ "$stderr" = "dp-fetch: HTTP 401 from $URL/data/pricemultifull?fsyms=BTC&tsyms=USD" ]
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD
	[ "$status" -eq 77 ]
	[[ $stderr == "dp-fetch: HTTP 403 from "*': the API refused the request (Type 2): "tsym is a required param." (ParamWithError: "tsym")' ]]
	[ "$(nreq)" -eq 2 ]
}

@test "Retry-After is honored; a huge one is clamped to the 30s cap and SIGTERM ends the wait (143)" {
	serve '{"routes":{"/data/pricemultifull":[{"status":429,"body":"","headers":{"Retry-After":"1"}},{"file":"saundersconsult__pricemultifull.json"}]}}'
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD --retry-base 10ms -v
	[ "$status" -eq 0 ]
	[ "$output" = "$PRICE_BTC" ]
	[[ $stderr == *"HTTP 429 from $URL/data/pricemultifull?fsyms=BTC&tsyms=USD; retry 1 of 5 in 1s"* ]]
	[ "$(jq -s '.[1].t - .[0].t >= 1' "$W/requests")" = true ]
	kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true; rm -f "$W/port" "$W/requests"
	# 2^63-1 seconds: as milliseconds it would overflow.
	serve '{"routes":{"/data/pricemultifull":[{"status":429,"body":"","headers":{"Retry-After":"9223372036854775807"}}]}}'
	signal_in backoff TERM dp-fetch price --fsyms BTC --tsyms USD -v --trace-states
	[ "$status" -eq 143 ]
	[ "$output" = "" ]
	[[ $stderr == *"HTTP 429 from $URL/data/pricemultifull?fsyms=BTC&tsyms=USD; retry 1 of 5 in 30s (the server asks for 1d)"* ]]
	[[ $stderr == *"dp-fetch: stopped by SIGTERM before the end: the fetch was not complete: no prices printed"* ]]
	[ "$(last_move)" = "backoff -interrupt-> interrupted" ]
}

# --- pairs and markets that do not exist --------------------------------------------

@test "price: a market without one of the pairs (Type 1): the others are printed, the missing one named, exit 1" {
	serve '{"routes":{"/data/pricemultifull":[{"file":"ttsteiger_cryptocompy_issue12__error_market_pair_missing.json"},{"file":"joancaron__Prices_MultiFull.json"}]}}'
	run --separate-stderr dp-fetch price --fsyms ETH --tsyms BTC,USD --market Binance --trace-states
	[ "$status" -eq 1 ]
	[ "$(jq -r '"\(.fsym)/\(.tsym) \(.price)"' <<<"$output")" = "ETH/BTC $(jq -r .RAW.ETH.BTC.PRICE "$FIX/joancaron__Prices_MultiFull.json")" ]
	[ "$(grep -v '^{' <<<"$stderr")" = 'dp-fetch: no price for ETH/USD: no such market or pair (Type 1): "Binance market does not exist for this coin pair (ETH-USD)"' ]
	[ "$(jq -r '"\(.query.fsyms) \(.query.tsyms) \(.query.e)"' "$W/requests" | paste -sd,)" = "ETH BTC,USD Binance,ETH BTC Binance" ]
	[ "$(last_move)" = "emitting -finished_partial-> partial" ]
}

@test "price: several fsyms, one pair missing (Type 2): one request per fsym for the rest" {
	serve '{"routes":{"/data/pricemultifull":[{"file":"scroll17_crypto-x-action__error_market_pair_missing.json"},{"file":"saundersconsult__pricemultifull.json"}]}}'
	run --separate-stderr dp-fetch price --fsyms BTC,ETH --tsyms USD,BTCDDD
	[ "$status" -eq 1 ]
	[ "$output" = "$(printf '%s\n%s' "$PRICE_BTC" "$PRICE_ETH")" ]
	[ "$stderr" = 'dp-fetch: no price for ETH/BTCDDD: no such market or pair (Type 2): "cccagg_or_exchange market does not exist for this coin pair (ETH-BTCDDD)"
dp-fetch: no price for BTC/BTCDDD in the response' ]
	[ "$(jq -r '"\(.query.fsyms) \(.query.tsyms)"' "$W/requests" | paste -sd,)" = "BTC,ETH USD,BTCDDD,BTC USD,BTCDDD,ETH USD" ]
}

@test "price: a refusal that names no pair asked for is narrowed down pair by pair" {
	serve '{"routes":{"/data/pricemultifull":[{"file":"ttsteiger_cryptocompy_issue12__error_market_pair_missing.json"},{"file":"saundersconsult__pricemultifull.json"},{"file":"ttsteiger_cryptocompy_issue12__error_market_pair_missing.json"}]}}'
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD,EUR --market Binance
	[ "$status" -eq 1 ]
	[ "$output" = "$PRICE_BTC" ]
	[ "$stderr" = 'dp-fetch: no price for BTC/EUR: no such market or pair (Type 1): "Binance market does not exist for this coin pair (ETH-USD)"' ]
	[ "$(jq -r '"\(.query.fsyms) \(.query.tsyms)"' "$W/requests" | paste -sd,)" = "BTC USD,EUR,BTC USD,BTC EUR" ]
}

@test "ohlcv: a pair that does not exist is skipped, the others printed and recorded, exit 1" {
	serve '{"routes":{"/data/v2/histoday":[{"file":"scroll17_crypto-x-action__error_market_pair_missing.json"},{"histo":"'$DAY'"}]}}'
	S=$W/state
	run --separate-stderr dp-fetch ohlcv --fsym ETH --tsym BTCDDD,USD --interval day "${DAY_ALL[@]}" --state "$S" --trace-states
	[ "$status" -eq 1 ]
	same "$(expect_ohlcv "$DAY" ETH USD 1d)"
	[ "$(grep -v '^{' <<<"$stderr")" = 'dp-fetch: no candles for ETH/BTCDDD 1d: no such market or pair (Type 2): "cccagg_or_exchange market does not exist for this coin pair (ETH-BTCDDD)"' ]
	[ "$(grep -v '^#' "$S")" = "ETH USD 1d - 1578096000 2020-01-04T00:00:00Z" ]
	grep -q '"from":"fetching","event":"missing","to":"emitting"' <<<"$stderr"
}

# --- times that do not exist ----------------------------------------------------------

@test "impossible dates are refused: options (64), the state file (65), the API's candles and prices (65)" {
	run --separate-stderr dp-fetch ohlcv --fsym X --tsym USD --interval minute --since 2025-02-29T00:00:00Z
	[ "$status" -eq 64 ]
	[[ $stderr == "dp-fetch: invalid --since '2025-02-29T00:00:00Z': no such day in that month; expected RFC 3339"* ]]
	run --separate-stderr dp-fetch ohlcv --fsym X --tsym USD --interval minute --until 2024-04-31T00:00:00Z
	[ "$status" -eq 64 ]
	[[ $stderr == "dp-fetch: invalid --until '2024-04-31T00:00:00Z': no such day in that month;"* ]]
	run --separate-stderr dp-fetch price --fsyms X --tsyms USD --now 2016-12-31T23:59:60Z
	[ "$status" -eq 64 ]
	[[ $stderr == *"a leap second (:60) has no epoch time"* ]]
	serve '{"routes":{"/data/v2/histominute":[{"json":{"Response":"Success","Data":{"Data":[{"time":1733916541,"open":1,"high":1,"low":1,"close":1,"volumefrom":1,"volumeto":1}]}}},{"json":{"Response":"Success","Data":{"Data":[{"time":253402300800,"open":1}]}}}],"/data/pricemultifull":[{"json":{"RAW":{"BTC":{"USD":{"PRICE":1,"LASTUPDATE":1e15}}}}}]}}'
	S=$W/state
	printf '# dp-fetch state\nX USD 1m - 1733916540 2025-02-29T11:29:00Z\n' > "$S"
	run --separate-stderr dp-fetch ohlcv --fsym X --tsym USD --interval minute --state "$S"
	[ "$status" -eq 65 ]
	[ "$stderr" = "dp-fetch: $S:2: TIME '2025-02-29T11:29:00Z' is not a time: no such day in that month" ]
	printf 'X USD 1m - 1733916540 2024-12-11T11:30:00Z\n' > "$S"
	run --separate-stderr dp-fetch ohlcv --fsym X --tsym USD --interval minute --state "$S"
	[ "$status" -eq 65 ]
	[ "$stderr" = "dp-fetch: $S:1: TIME 2024-12-11T11:30:00Z does not match LAST 1733916540 (2024-12-11T11:29:00Z)" ]
	printf 'X USD 1m - 1733916541\n' > "$S"
	run --separate-stderr dp-fetch ohlcv --fsym X --tsym USD --interval minute --state "$S"
	[ "$status" -eq 65 ]
	[ "$stderr" = "dp-fetch: $S:1: LAST 1733916541 is not the open time of a 1m candle" ]
	[ "$(nreq)" -eq 0 ]
	run --separate-stderr dp-fetch ohlcv --fsym X --tsym USD --interval minute
	[ "$status" -eq 65 ]
	[[ $stderr == *': candle 0: "time" 1733916541 is not the start of a minute interval' ]]
	run --separate-stderr dp-fetch ohlcv --fsym X --tsym USD --interval minute
	[ "$status" -eq 65 ]
	[[ $stderr == *': candle 0: "time" is not a time in seconds' ]]
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD
	[ "$status" -eq 65 ]
	[[ $stderr == *"RAW.BTC.USD.LASTUPDATE: 1e+15 is not a time in seconds" ]]
	[ "$output" = "" ]
}

# --- signals in every state --------------------------------------------------------------

@test "SIGTERM during a request: a one-shot run exits 143 at once, --every exits 0" {
	serve '{"routes":{"/data/pricemultifull":[{"file":"saundersconsult__pricemultifull.json","delay":10}]}}'
	signal_in fetching TERM dp-fetch price --fsyms BTC --tsyms USD --trace-states
	[ "$status" -eq 143 ]
	[ "$output" = "" ]
	[ "$(last_move)" = "fetching -interrupt-> interrupted" ]
	signal_in fetching TERM dp-fetch price --fsyms BTC --tsyms USD --every 1m --trace-states
	[ "$status" -eq 0 ]
	[ "$(last_move)" = "fetching -stop-> done" ]
}

@test "SIGTERM during a retry's backoff with --every exits 0 at once" {
	serve '{"routes":{"/data/pricemultifull":[{"file":"BittyTax_issue381__error_rate_limit.json"}]}}'
	signal_in backoff INT dp-fetch price --fsyms BTC --tsyms USD --every 1m --retry-base 30s --trace-states
	[ "$status" -eq 0 ]
	[ "$(last_move)" = "backoff -stop-> done" ]
}

# --- candles --------------------------------------------------------------------

@test "ohlcv pages the 2001-point minute history backwards, oldest first, no duplicates or gaps" {
	serve '{"routes":{"/data/v2/histominute":[{"histo":"'$MIN'"}]}}'
	run --separate-stderr dp-fetch ohlcv --fsym X --tsym USD --interval minute "${MIN_ALL[@]}" --page-size 500
	[ "$status" -eq 0 ]
	same "$(expect_ohlcv "$MIN" X USD 1m)"
	[ "${#lines[@]}" -eq 2001 ]
	# 4 full pages (501 points each, one repeated at each boundary) and
	# one that finds nothing older.
	[ "$(jq -r '"\(.query.limit) \(.query.toTs)"' "$W/requests" | paste -sd,)" = \
	  "500 1733918400,500 1733888400,500 1733858400,500 1733828400,500 1733798400" ]
}

@test "ohlcv stops at the zero-filled candles from before the coin existed" {
	serve '{"routes":{"/data/v2/histoday":[{"histo":"'$DAY'","zero_fill":true}]}}'
	run --separate-stderr dp-fetch ohlcv --fsym BTC --tsym USD --interval day "${DAY_ALL[@]}" --page-size 5
	[ "$status" -eq 0 ]
	same "$(expect_ohlcv "$DAY" BTC USD 1d)"
	[ "$(nreq)" -eq 3 ]
	# Forward from a --since before the coin: the zeros are skipped too.
	run dp-fetch ohlcv --fsym BTC --tsym USD --interval 1d --since 2019-11-01T00:00:00Z "${DAY_ALL[@]}" --page-size 30
	[ "$status" -eq 0 ]
	same "$(expect_ohlcv "$DAY" BTC USD 1d)"
}

@test "--since/--until select candles; only closed ones unless --include-open" {
	serve '{"routes":{"/data/v2/histominute":[{"histo":"'$MIN'"}]}}'
	run dp-fetch ohlcv --fsym X --tsym USD --interval minute --since 2024-12-11T11:00:00Z --until 2024-12-11T11:30:00Z --now "$NOW_MIN"
	[ "$status" -eq 0 ]
	same "$(expect_ohlcv "$MIN" X USD 1m 'select(.time >= 1733914800 and .time < 1733916600)')"
	[ "${#lines[@]}" -eq 30 ]
	# At 12:00:30 the 12:00 candle is still open.
	run dp-fetch ohlcv --fsym X --tsym USD --interval minute --since 2024-12-11T11:00:00Z --now 2024-12-11T12:00:30Z
	same "$(expect_ohlcv "$MIN" X USD 1m 'select(.time >= 1733914800 and .time < 1733918400)')"
	run dp-fetch ohlcv --fsym X --tsym USD --interval minute --since 2024-12-11T11:00:00Z --now 2024-12-11T12:00:30Z --include-open
	same "$(expect_ohlcv "$MIN" X USD 1m 'select(.time >= 1733914800)')"
	[ "${#lines[@]}" -eq 61 ]
}

@test "rate limits in the middle of paging are retried and the result is complete" {
	serve '{"routes":{"/data/v2/histominute":[{"histo":"'$MIN'"},{"file":"BittyTax_issue381__error_rate_limit.json","times":2},{"histo":"'$MIN'"}]}}'
	run --separate-stderr dp-fetch ohlcv --fsym X --tsym USD --interval minute "${MIN_ALL[@]}" --page-size 700 --retry-base 10ms
	[ "$status" -eq 0 ]
	same "$(expect_ohlcv "$MIN" X USD 1m)"
	[ "$(nreq)" -eq 6 ]
}

@test "ohlcv --raw prints each Data.Data[] candle unchanged" {
	serve '{"routes":{"/data/v2/histoday":[{"histo":"'$DAY'"}]}}'
	run dp-fetch ohlcv --fsym BTC --tsym USD --interval day "${DAY_ALL[@]}" --raw
	[ "$status" -eq 0 ]
	[ "$output" = "$(jq -c '.Data.Data[]' "$FIX/$DAY")" ]
}

@test "a v1-layout body (Data[] at the top) is read too; a server ignoring toTs ends the paging" {
	serve '{"routes":{"/data/v2/histohour":[{"file":"saundersconsult__histohour_v1.json"}]}}'
	run --separate-stderr dp-fetch ohlcv --fsym BTC --tsym USD --interval hour --now 2026-01-04T00:00:00Z --until 2026-01-03T04:00:00Z
	[ "$status" -eq 0 ]
	same "$(expect_ohlcv saundersconsult__histohour_v1.json BTC USD 1h)"
	[ "${#lines[@]}" -eq 11 ]
	[ "$(nreq)" -eq 2 ]
}

@test "a candle without a time exits 65" {
	serve '{"routes":{"/data/v2/histoday":[{"json":{"Response":"Success","Data":{"Data":[{"open":1}]}}}]}}'
	run --separate-stderr dp-fetch ohlcv --fsym BTC --tsym USD --interval day
	[ "$status" -eq 65 ]
	[ "$output" = "" ]
	[[ $stderr == *'malformed response from '*': candle 0: "time" is not a time in seconds' ]]
}

@test "pairs of --fsym and --tsym lists are fetched one after the other" {
	serve '{"routes":{"/data/v2/histoday":[{"histo":"'$DAY'"}]}}'
	run dp-fetch ohlcv --fsym BTC,ETH --tsym USD --interval day --since 2020-01-03T00:00:00Z "${DAY_ALL[@]}"
	[ "$status" -eq 0 ]
	same "$(expect_ohlcv "$DAY" BTC USD 1d 'select(.time >= 1578009600)'; expect_ohlcv "$DAY" ETH USD 1d 'select(.time >= 1578009600)')"
}

# --- candles of any size ------------------------------------------------------------

@test "15m candles: aggregate=15 on histominute, paged backward, each bucket once and whole" {
	serve '{"routes":{"/data/v2/histominute":[{"histo":"'$MIN'"}]}}'
	run --separate-stderr dp-fetch ohlcv --fsym X --tsym USD --interval 15m "${MIN_ALL[@]}" --page-size 50
	[ "$status" -eq 0 ]
	same "$(expect_agg "$MIN" X USD 15m 900)"
	[ "${#lines[@]}" -eq 135 ]
	[[ ${lines[0]} == '{"type":"ohlcv","source":"cryptocompare","fsym":"X","tsym":"USD","interval":"15m","ts":"2024-12-10T02:30:00Z","open":'* ]]
	# Every request: aggregate 15, predictable periods, toTs the last
	# minute of a 15m candle (the whole candle, never one cut short).
	[ "$(jq -r '"\(.query.aggregate) \(.query.aggregatePredictableTimePeriods) \(.query.limit) \((.query.toTs | tonumber) % 900)"' "$W/requests" | sort -u)" = "15 true 50 840" ]
	# 3 pages of 51 (one repeated at each boundary), and one that finds nothing older.
	[ "$(nreq)" -eq 4 ]
}

@test "15m candles with --state: forward pages, closed by --settle, each candle once across runs" {
	serve '{"routes":{"/data/v2/histominute":[{"histo":"'$MIN'"}]}}'
	S=$W/state
	f() { dp-fetch ohlcv --fsym X --tsym USD --interval 15m --since 2024-12-11T09:00:00Z --state "$S" --page-size 3 "$@"; }
	# 09:45 ended 3 s ago: not settled, not printed, not recorded.
	f --now 2024-12-11T10:00:03Z > "$W/run1"
	[ "$(cat "$W/run1")" = "$(expect_agg "$MIN" X USD 15m 900 'select(.time >= 1733907600 and .time <= 1733909400)')" ]
	[ "$(grep -v '^#' "$S")" = "X USD 15m - 1733909400 2024-12-11T09:30:00Z" ]
	f --now 2024-12-11T12:10:00Z > "$W/run2"
	f --now 2024-12-11T12:10:00Z > "$W/run3"
	[ ! -s "$W/run3" ]
	[ "$(cat "$W/run1" "$W/run2")" = "$(expect_agg "$MIN" X USD 15m 900 'select(.time >= 1733907600 and .time < 1733918400)')" ]
	[ "$(grep -v '^#' "$S")" = "X USD 15m - 1733917500 2024-12-11T11:45:00Z" ]
	# Pages of 3; the page that reaches the present may hold one more.
	[ "$(jq -r .query.limit "$W/requests" | sort -u | paste -sd,)" = "1,3,4" ]
}

@test "4h candles: aggregate=4 on histohour, forward pages of 2 with --state, open at 00, 04, ... UTC" {
	serve '{"routes":{"/data/v2/histohour":[{"histo":"'$MIN'"}]}}'
	S=$W/state
	f() { dp-fetch ohlcv --fsym X --tsym USD --interval 4h --since 2024-12-10T00:00:00Z --state "$S" --page-size 2 "$@"; }
	f --now 2024-12-11T08:00:10Z > "$W/run1"
	[ "$(cat "$W/run1")" = "$(expect_agg "$MIN" X USD 4h 14400 'select(.time <= 1733889600)')" ]
	[ "$(grep -v '^#' "$S")" = "X USD 4h - 1733889600 2024-12-11T04:00:00Z" ]
	[ "$(jq -r '"\(.path) \(.query.aggregate) \(.query.limit) \((.query.toTs | tonumber) % 14400)"' "$W/requests" | sort -u)" = "/data/v2/histohour 4 2 10800" ]
	f --now 2024-12-11T16:00:10Z > "$W/run2"
	f --now 2024-12-11T16:00:10Z > "$W/run3"
	[ ! -s "$W/run3" ]
	# The 12:00 candle is the API's newest (the fixture ends in it): open.
	[ "$(cat "$W/run1" "$W/run2")" = "$(expect_agg "$MIN" X USD 4h 14400 'select(.time < 1733918400)')" ]
	[ "$(wc -l < "$W/run2")" -eq 1 ]
	[ "$(jq -r .ts "$W/run1" "$W/run2" | cut -c12- | sort -u | paste -sd' ')" = "00:00:00Z 04:00:00Z 08:00:00Z 12:00:00Z 16:00:00Z 20:00:00Z" ]
}

@test "4h candles: --settle decides when one is closed; --include-open prints the open one" {
	serve '{"routes":{"/data/v2/histohour":[{"histo":"'$MIN'"}]}}'
	f() { dp-fetch ohlcv --fsym X --tsym USD --interval 4h --since 2024-12-11T00:00:00Z "$@"; }
	# The 04:00 candle ended 3 s ago.
	run f --now 2024-12-11T08:00:03Z
	same "$(expect_agg "$MIN" X USD 4h 14400 'select(.time == 1733875200)')"
	run f --now 2024-12-11T08:00:03Z --settle 2s
	same "$(expect_agg "$MIN" X USD 4h 14400 'select(.time == 1733875200 or .time == 1733889600)')"
	run f --now 2024-12-11T08:00:03Z --settle 2s --include-open
	same "$(expect_agg "$MIN" X USD 4h 14400 'select(.time >= 1733875200 and .time <= 1733904000)')"
}

@test "1w candles open on Thursdays (epoch-aligned); 2000/aggregate caps a page; misaligned candles exit 65" {
	serve '{"routes":{"/data/v2/histoday":[{"histo":"'$DAY'","times":2},{"json":{"Response":"Success","Data":{"Data":[{"time":1577664000,"open":1,"high":1,"low":1,"close":1,"volumefrom":1,"volumeto":1}]}}}]}}'
	WEEKS=(--now 2020-01-20T00:00:00Z --until 2020-01-09T00:00:00Z)
	run --separate-stderr dp-fetch ohlcv --fsym BTC --tsym USD --interval 1w "${WEEKS[@]}"
	[ "$status" -eq 0 ]
	same "$(expect_agg "$DAY" BTC USD 1w 604800)"
	[ "$(jq -r .ts <<<"$output" | paste -sd' ')" = "2019-12-19T00:00:00Z 2019-12-26T00:00:00Z 2020-01-02T00:00:00Z" ]
	[ "$(jq -r '"\(.query.aggregate) \(.query.limit)"' "$W/requests" | sort -u)" = "7 285" ]
	# 2019-12-30 is a Monday: no 1w candle opens then.
	run --separate-stderr dp-fetch ohlcv --fsym BTC --tsym USD --interval 1w "${WEEKS[@]}"
	[ "$status" -eq 65 ]
	[[ $stderr == *': candle 0: "time" 1577664000 is not the start of a 1w interval' ]]
}

# --- state across runs ------------------------------------------------------------

@test "--state makes runs incremental: each candle once across runs" {
	serve '{"routes":{"/data/v2/histominute":[{"histo":"'$MIN'"}]}}'
	S=$W/state
	f() { dp-fetch ohlcv --fsym X --tsym USD --interval minute --since 2024-12-11T11:00:00Z --state "$S" "$@"; }
	f --now 2024-12-11T11:30:30Z > "$W/run1"
	[ "$(wc -l < "$W/run1")" -eq 30 ]
	[ "$(grep -v '^#' "$S")" = "X USD 1m - 1733916540 2024-12-11T11:29:00Z" ]
	f --now "$NOW_MIN" > "$W/run2"
	f --now "$NOW_MIN" > "$W/run3"
	[ ! -s "$W/run3" ]
	# 12:00 is the newest candle the API has: still open for it.
	[ "$(cat "$W/run1" "$W/run2")" = "$(expect_ohlcv "$MIN" X USD 1m 'select(.time >= 1733914800 and .time < 1733918400)')" ]
	[ "$(grep -v '^#' "$S")" = "X USD 1m - 1733918340 2024-12-11T11:59:00Z" ]
	# A run without --since starts from the state, not from the whole history.
	run dp-fetch ohlcv --fsym X --tsym USD --interval minute --state "$S" --now "$NOW_MIN"
	[ "$status" -eq 0 ]
	[ "$output" = "" ]
	# No temporary state files are left behind.
	[ "$(cd "$W" && echo state*)" = "state state.lock" ]
}

@test "--state with --include-open: the open candle is printed again once closed, never recorded while open" {
	serve '{"routes":{"/data/v2/histominute":[{"histo":"'$MIN'"}]}}'
	S=$W/state
	f() { dp-fetch ohlcv --fsym X --tsym USD --interval minute --since 2024-12-11T11:28:00Z --state "$S" --include-open "$@"; }
	run f --now 2024-12-11T11:30:30Z
	same "$(expect_ohlcv "$MIN" X USD 1m 'select(.time >= 1733916480 and .time <= 1733916600)')"
	[ "$(state_last "$S")" -eq 1733916540 ]
	run f --now 2024-12-11T11:30:40Z
	same "$(expect_ohlcv "$MIN" X USD 1m 'select(.time == 1733916600)')"
	[ "$(state_last "$S")" -eq 1733916540 ]
	# 11:30 has closed (and settled): printed once more and recorded; 11:31 is open.
	run f --now 2024-12-11T11:31:10Z
	same "$(expect_ohlcv "$MIN" X USD 1m 'select(.time == 1733916600 or .time == 1733916660)')"
	[ "$(state_last "$S")" -eq 1733916600 ]
	run f --now 2024-12-11T11:31:10Z
	same "$(expect_ohlcv "$MIN" X USD 1m 'select(.time == 1733916660)')"
	[ "$(state_last "$S")" -eq 1733916600 ]
}

@test "--state: a run killed with SIGKILL mid-output is completed by the next, each candle once" {
	serve '{"routes":{"/data/v2/histominute":[{"histo":"'$MIN'","delay":0.2}]}}'
	S=$W/state
	args=(ohlcv --fsym X --tsym USD --interval minute --since 2024-12-10T02:40:00Z "${MIN_ALL[@]}" --page-size 250 --state "$S")
	dp-fetch "${args[@]}" > "$W/run1" &
	BG_PID=$!
	# One page printed and committed: the kill lands while it waits for the next.
	wait_until 10 state_at_least "$S" 1733813400
	kill -KILL "$BG_PID"
	wait "$BG_PID" || true
	BG_PID=
	n1=$(wc -l < "$W/run1")
	[ "$n1" -ge 251 ] && [ "$n1" -lt 2001 ]
	run --separate-stderr dp-fetch "${args[@]}"
	[ "$status" -eq 0 ]
	printf '%s\n' "$output" > "$W/run2"
	[ "$(cat "$W/run1" "$W/run2")" = "$(expect_ohlcv "$MIN" X USD 1m)" ]
	[ "$(cat "$W/run1" "$W/run2" | sort | uniq -d)" = "" ]
}

@test "a state file in use by another dp-fetch exits 75; a corrupt one exits 65" {
	serve '{"routes":{"/data/v2/histominute":[{"histo":"'$MIN'"}]}}'
	S=$W/state
	exec 9> "$S.lock"
	flock -n 9
	run --separate-stderr dp-fetch ohlcv --fsym X --tsym USD --interval minute --state "$S"
	[ "$status" -eq 75 ]
	[ "$stderr" = "dp-fetch: state file $S is in use by another dp-fetch" ]
	exec 9>&-
	printf '# comment\nX USD 1m - notanumber\n' > "$S"
	run --separate-stderr dp-fetch ohlcv --fsym X --tsym USD --interval minute --state "$S"
	[ "$status" -eq 65 ]
	[ "$stderr" = "dp-fetch: $S:2: LAST is not a time in seconds" ]
	[ "$(nreq)" -eq 0 ]
}

@test "a --state file in a missing directory: the error names the directory (74)" {
	serve '{"routes":{"/data/v2/histominute":[{"histo":"'$MIN'"}]}}'
	run --separate-stderr dp-fetch ohlcv --fsym X --tsym USD --interval minute --state "$W/nodir/sub/state"
	[ "$status" -eq 74 ]
	[ "$stderr" = "dp-fetch: cannot open lock file $W/nodir/sub/state.lock: directory $W/nodir/sub does not exist" ]
	[ "$(nreq)" -eq 0 ]
}

# --- closed candles -----------------------------------------------------------------

@test "--settle: a candle is closed only that long after its end (default 5s)" {
	serve '{"routes":{"/data/v2/histominute":[{"histo":"'$MIN'"}]}}'
	f() { dp-fetch ohlcv --fsym X --tsym USD --interval minute --since 2024-12-11T11:27:00Z "$@"; }
	# 11:29 ended 3 s ago.
	run f --now 2024-12-11T11:30:03Z
	same "$(expect_ohlcv "$MIN" X USD 1m 'select(.time >= 1733916420 and .time <= 1733916480)')"
	run f --now 2024-12-11T11:30:03Z --settle 2s
	same "$(expect_ohlcv "$MIN" X USD 1m 'select(.time >= 1733916420 and .time <= 1733916540)')"
	run f --now 2024-12-11T11:30:00Z --settle 0
	same "$(expect_ohlcv "$MIN" X USD 1m 'select(.time >= 1733916420 and .time <= 1733916540)')"
	# The request reaches the present: toTs is the open candle, 11:30.
	[ "$(jq -r .query.toTs "$W/requests" | sort -u)" = 1733916600 ]
}

@test "the API's newest candle is open whatever our clock says; printed with its final values once the API moved on" {
	# The API's clock is behind ours: at our 11:31:30 its newest candle is
	# 11:30, which it is still filling.  Next run it has 11:31.
	serve '{"routes":{"/data/v2/histominute":[{"histo":"'$MIN'","clock":1733916600,"times":1},{"histo":"'$MIN'","clock":1733916660}]}}'
	S=$W/state
	f() { dp-fetch ohlcv --fsym X --tsym USD --interval minute --since 2024-12-11T11:25:00Z --state "$S" "$@"; }
	run f --now 2024-12-11T11:31:30Z
	[ "$status" -eq 0 ]
	same "$(expect_ohlcv "$MIN" X USD 1m 'select(.time >= 1733916300 and .time < 1733916600)')"
	[ "$(state_last "$S")" -eq 1733916540 ]
	run f --now 2024-12-11T11:31:40Z
	[ "$status" -eq 0 ]
	same "$(expect_ohlcv "$MIN" X USD 1m 'select(.time == 1733916600)')"
	[ "$(state_last "$S")" -eq 1733916600 ]
}

# --- repeated polls ---------------------------------------------------------------

@test "--every polls on wall-clock boundaries and --count stops it" {
	serve "$PRICES"
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD --every 1s --count 3
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf '%s\n%s\n%s' "$PRICE_BTC" "$PRICE_BTC" "$PRICE_BTC")" ]
	[ "$(nreq)" -eq 3 ]
	# The 2nd and 3rd polls start just after a whole second.
	run jq -r 'select(.n > 1) | .t - (.t | floor) < 0.5' "$W/requests"
	[ "$output" = "$(printf 'true\ntrue')" ]
}

@test "--every: a failed poll is logged and polling goes on" {
	serve '{"routes":{"/data/pricemultifull":[{"file":"saundersconsult__error_generateAvg_missing_tsym.json"},{"file":"saundersconsult__pricemultifull.json"}]}}'
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD --every 1s --count 2
	[ "$status" -eq 0 ]
	[ "$output" = "$PRICE_BTC" ]
	[[ $stderr == "dp-fetch: poll 1 failed: "*'"tsym is a required param."'* ]]
}

@test "--every: SIGTERM while waiting ends at once with 0; candles continue from memory" {
	serve '{"routes":{"/data/v2/histoday":[{"histo":"'$DAY'"}]}}'
	dp-fetch ohlcv --fsym BTC --tsym USD --interval day --until 2020-01-05T00:00:00Z --every 1h --trace-states > "$W/out" 2> "$W/err" &
	BG_PID=$!
	wait_until 10 grep -q '"to":"waiting"' "$W/err"
	kill -TERM "$BG_PID"
	wait_until 3 bash -c "! kill -0 $BG_PID 2>/dev/null"
	rc=0
	wait "$BG_PID" || rc=$?
	BG_PID=
	[ "$rc" -eq 0 ]
	[ "$(cat "$W/out")" = "$(expect_ohlcv "$DAY" BTC USD 1d)" ]
	[ "$(tail -1 "$W/err")" = "$(tail -1 "$W/err" | jq -c 'select(.from == "waiting" and .event == "stop" and .to == "done")')" ]
}

@test "--every: a poll with nothing new waits for the next; candle polls start --settle after the boundary" {
	serve '{"routes":{"/data/v2/histoday":[{"histo":"'$DAY'"}]}}'
	run --separate-stderr dp-fetch ohlcv --fsym BTC --tsym USD --interval day --until 2020-01-05T00:00:00Z --every 1s --count 3 --settle 300ms --trace-states
	[ "$status" -eq 0 ]
	[ "$output" = "$(expect_ohlcv "$DAY" BTC USD 1d)" ]
	[ "$(nreq)" -eq 2 ]
	[ "$(grep -c '"from":"fetching","event":"poll_done","to":"waiting"' <<<"$stderr")" -eq 1 ]
	[ "$(last_move)" = "fetching -finished-> done" ]
	# Polls 2 and 3 start 300 ms past a whole second.
	[ "$(grep '^{' <<<"$stderr" | jq -r 'select(.event == "tick") | .t' | grep -c '\.3[0-9][0-9]Z$')" -eq 2 ]
}

@test "--trace-states prints each transition as NDJSON" {
	serve "$PRICES"
	run --separate-stderr dp-fetch price --fsyms BTC --tsyms USD --trace-states
	[ "$status" -eq 0 ]
	[ "$(jq -r '"\(.cmd) \(.from)>\(.to) \(.event)"' <<<"$stderr" | paste -sd,)" = \
	  "dp-fetch idle>fetching start,dp-fetch fetching>emitting response,dp-fetch emitting>done finished" ]
}

# --- shipped files ------------------------------------------------------------------

@test "the man page passes mandoc -Tlint -Wstyle, documents both record schemas and warns against piping --state" {
	command -v mandoc >/dev/null || skip "mandoc is not installed"
	run mandoc -Tlint -Wstyle "$DP_ROOT/man/dp-fetch.1"
	# Only the references to pages that are not installed here may be noted.
	[ "$(grep -v 'STYLE: referenced manual not found' <<<"$output")" = "" ]
	text=$(mandoc -Tutf8 "$DP_ROOT/man/dp-fetch.1" | col -b)
	for f in '"type":"price"' volume_24h_to change_pct_24h mktcap '"type":"ohlcv"' volume_from volume_to \
	         STREAMING '"type":"tick"' '"type":"trade"' 'gap 1: no data from' last_trade_id \
	         'Thursdays at 00:00 UTC' aggregatePredictableTimePeriods STANDARDS \
	         'EXIT STATUS' ENVIRONMENT FILES EXAMPLES crontab --settle \
	         'Do not pipe dp-fetch --state straight into dp-publish(1)' 'WRONG: when dp-publish fails' \
	         'examples/cron-fetch.sh' 'spool'; do
		[[ $text == *"$f"* ]] || { echo "man page lacks $f"; return 1; }
	done
}

@test "bash completion offers commands, options and intervals" {
	source "$DP_ROOT/completions/bash/dp-fetch"
	comp() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _dp_fetch; echo "${COMPREPLY[*]}"; }
	[ "$(comp dp-fetch '')" = "price ohlcv stream" ]
	[ "$(comp dp-fetch stream --channel '')" = "aggregate ticker trade ohlc" ]
	[[ " $(comp dp-fetch stream --s) " == *" --subs "* ]]
	[[ " $(comp dp-fetch stream --s) " == *" --stream-url "* ]]
	[ "$(comp dp-fetch ohlcv --interval '')" = "1m 5m 15m 30m 1h 2h 4h 12h 1d 3d 1w minute hour day" ]
	[[ " $(comp dp-fetch ohlcv --in) " == *" --include-open "* ]]
	[[ " $(comp dp-fetch ohlcv --in) " == *" --interval "* ]]
}

@test "examples/cron-fetch.sh spools and publishes each candle once across runs" {
	serve '{"routes":{"/data/v2/histoday":[{"histo":"'$DAY'"}]}}'
	mkdir -p "$W/fakebin"
	# A stand-in for dp-publish that appends what it is given.
	printf '#!/bin/sh\ncat >> %q\n' "$W/published" > "$W/fakebin/dp-publish"
	chmod +x "$W/fakebin/dp-publish"
	export DP_FETCH_DIR=$W/cron DP_FETCH_ARGS="${DAY_ALL[*]}"
	PATH=$W/fakebin:$PATH run "$DP_ROOT/examples/cron-fetch.sh" BTC USD day prices
	[ "$status" -eq 0 ]
	PATH=$W/fakebin:$PATH run "$DP_ROOT/examples/cron-fetch.sh" BTC USD day prices
	[ "$status" -eq 0 ]
	[ "$(cat "$W/published")" = "$(expect_ohlcv "$DAY" BTC USD 1d)" ]
}

@test "examples/cron-fetch.sh keeps the spool when dp-publish fails (69) and publishes it with the next run" {
	serve '{"routes":{"/data/v2/histoday":[{"histo":"'$DAY'"}]}}'
	mkdir -p "$W/fakebin"
	# A dp-publish whose topic does not exist until $W/topic is there.
	printf '#!/bin/sh\n[ -e %q ] || { echo "dp-publish: topic does not exist" >&2; exit 69; }\ncat >> %q\n' \
		"$W/topic" "$W/published" > "$W/fakebin/dp-publish"
	chmod +x "$W/fakebin/dp-publish"
	export DP_FETCH_DIR=$W/cron
	DP_FETCH_ARGS="--now 2020-01-10T00:00:00Z --until 2020-01-01T00:00:00Z" PATH=$W/fakebin:$PATH \
		run --separate-stderr "$DP_ROOT/examples/cron-fetch.sh" BTC USD day candles
	[ "$status" -eq 69 ]
	[ ! -e "$W/published" ]
	[ "$(cat "$W/cron/BTC-USD-day.spool")" = "$(expect_ohlcv "$DAY" BTC USD 1d 'select(.time < 1577836800)')" ]
	touch "$W/topic"
	DP_FETCH_ARGS="${DAY_ALL[*]}" PATH=$W/fakebin:$PATH run "$DP_ROOT/examples/cron-fetch.sh" BTC USD day candles
	[ "$status" -eq 0 ]
	[ "$(cat "$W/published")" = "$(expect_ohlcv "$DAY" BTC USD 1d)" ]
	[ ! -e "$W/cron/BTC-USD-day.spool" ]
}

# --- Kafka ----------------------------------------------------------------------------

@test "dp-fetch | dp-publish, then dp-tail gives back the same records" {
	[[ -x $DP_BIN/dp-publish && -x $DP_BIN/dp-tail ]] ||
		skip "bin/dp-publish or bin/dp-tail is not built yet"
	serve '{"routes":{"/data/v2/histoday":[{"histo":"'$DAY'"}]}}'
	topic=$(uniq_name fetch)
	dp-fetch ohlcv --fsym BTC --tsym USD --interval day "${DAY_ALL[@]}" > "$W/want"
	run bash -c "dp-fetch ohlcv --fsym BTC --tsym USD --interval day ${DAY_ALL[*]} |
		dp-publish -t '$topic' -X allow.auto.create.topics=true"
	[ "$status" -eq 0 ] || skip "dp-publish could not create topic $topic: $output"
	run dp-tail -t "$topic" --from beginning --exit
	[ "$status" -eq 0 ]
	[ "$output" = "$(cat "$W/want")" ]
	[ "${#lines[@]}" -eq 11 ]
}
