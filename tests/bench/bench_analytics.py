#!/usr/bin/env python3
"""Benchmark: the analytics filters through the real binary.

  csv -> null                                    (reference: the input alone)
  csv -> indicators (all) -> anomaly -> null      (bar: >= 1.5M records/s per core)
  csv -> window (5-minute OHLCV bars) -> null     (bar: >= 2M records/s per core)

Stock data (../shared/data/stocks, 100 symbols) repeated to N rows for the
first two, the Binance minute bars repeated for the window. Per core means
per CPU-second of the rtproc process (user + sys), which holds on a busy
machine; the reference run in the same invocation gives the filters' own
cost. Peak RSS comes from VmHWM (see bench_pipeline.py).

usage: bench_analytics.py [--rtproc build/rtproc] [--rows 5000000] [--data ../shared/data]
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_pipeline import ROOT  # noqa: E402
from measure import run  # noqa: E402

INDICATORS = """
[filter.indicators]
key = Name
price_field = close
sma = 20,50
ema = 12,26
rsi = 14
macd = 12,26,9
bollinger = 20,2
volatility = 20
pct_change = true
volume_avg = 20
[filter.anomaly]
key = Name
value_field = close
pct_change = 5,10
volume_spike = 200
zscore = 3
window = 20
rsi = 70,30
"""

WINDOW = """
[filter.bars]
plugin = window
key = symbol
size = 5m
aggregate = open=first(open), high=max(high), low=min(low), close=last(close), volume=sum(volume), trades=count()
"""


def repeat(src, rows, path, add_symbol=False):
    with open(src, "rb") as f:
        header = f.readline().rstrip(b"\r\n")
        body = f.read()
    per = body.count(b"\n")
    copies = -(-rows // per)
    with open(path, "wb") as out:
        if add_symbol:
            # each copy is its own symbol, so event time never goes backwards in a key
            out.write(header + b",symbol\n")
            lines = body.splitlines()
            for i in range(copies):
                tail = b",S%d\n" % i
                out.write(tail.join(lines) + tail)
        else:
            out.write(header + b"\n")
            for _ in range(copies):
                out.write(body)
    return per * copies, os.path.getsize(path)


def conf(tmp, name, path, filters, time_key, time_format):
    p = os.path.join(tmp, name + ".conf")
    with open(p, "w") as f:
        f.write(f"[service]\nlog_level = warn\n[input.csv]\npath = {path}\nexit_on_eof = true\n"
                f"time_key = {time_key}\ntime_format = {time_format}\n{filters}\n[output.null]\n")
    return p


def measure(rtproc, label, conf_path, rows, size, ref_cpu=None):
    _, wall, cpu, rss = run([rtproc, "-c", conf_path])
    line = (f"{label:<44} {rows / cpu / 1e6:6.2f} M rec/CPU-s {rows / wall / 1e6:6.2f} M rec/s wall "
            f"{size / wall / 1e6:7.1f} MB/s {cpu:6.2f} CPU s {rss / 1024:6.1f} MB RSS")
    if ref_cpu is not None:
        line += f"  filters: {(cpu - ref_cpu) / rows * 1e9:5.0f} ns/rec"
    print(line)
    return cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rtproc", default=os.path.join(ROOT, "build/rtproc"))
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--data", default=os.path.join(ROOT, "../shared/data"))
    args = ap.parse_args()
    stocks = os.path.join(args.data, "stocks/sp500_all_stocks_5yr_subset_100_symbols.csv")
    minutes = os.path.join(args.data, "intraday/binance_LINKUSDT_1m_2023-02.csv")
    for f in (stocks, minutes):
        if not os.path.exists(f):
            sys.exit(f"{f} missing: the benchmark needs ../shared/data")
    print(f"machine: {os.cpu_count()} CPUs, {os.uname().machine}, {os.uname().release}")
    with tempfile.TemporaryDirectory(prefix="rtproc-bench-") as tmp:
        path = os.path.join(tmp, "stocks.csv")
        rows, size = repeat(stocks, args.rows, path)
        print(f"\nstock bars: {rows:,} rows, {size / 1e6:.1f} MB (100 symbols, each replayed "
              f"{rows // 121855} times; late = accept, so the repeated dates still go through every "
              f"indicator)")
        ref = measure(args.rtproc, "csv -> null", conf(tmp, "ref", path, "", "date", "%Y-%m-%d"), rows, size)
        measure(args.rtproc, "csv -> indicators -> anomaly -> null",
                conf(tmp, "ind", path, INDICATORS.replace("[filter.indicators]", "[filter.indicators]\nlate = accept"),
                     "date", "%Y-%m-%d"), rows, size, ref)
        os.remove(path)
        path = os.path.join(tmp, "minutes.csv")
        rows, size = repeat(minutes, args.rows, path, add_symbol=True)
        print(f"\nminute bars: {rows:,} rows, {size / 1e6:.1f} MB")
        ref = measure(args.rtproc, "csv -> null", conf(tmp, "wref", path, "", "open_time", "epoch_ms"), rows, size)
        measure(args.rtproc, "csv -> window(5m OHLCV) -> null",
                conf(tmp, "win", path, WINDOW, "open_time", "epoch_ms"), rows, size, ref)


if __name__ == "__main__":
    main()
