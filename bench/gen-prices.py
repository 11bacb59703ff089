#!/usr/bin/env python3
"""Print N price records like dp-fetch's, about 200 bytes each (bench input)."""
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
syms = ["BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "DOT", "LTC", "LINK", "AVAX"]
out = sys.stdout
for i in range(n):
    s = syms[i % len(syms)]
    out.write('{"type":"price","source":"cryptocompare","market":"CCCAGG",'
              '"fsym":"%s","tsym":"USD","ts":"2026-11-27T%02d:%02d:%02dZ",'
              '"price":%d.%04d,"volume_24h":%d.25,"change_pct_24h":%s%d.%02d,'
              '"mktcap":%d}\n'
              % (s, i // 3600 % 24, i // 60 % 60, i % 60, 1000 + i % 90000,
                 i % 10000, i * 13 % 10000000, "-" if i % 3 else "", i % 7,
                 i % 100, 10**9 + i))
