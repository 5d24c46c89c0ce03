#!/usr/bin/env python3
"""Benchmark: csv -> null and csv -> stdout (to /dev/null) over the stock
files of ../shared/data repeated to at least N rows (default 5M).

Prints records/s, MB/s, CPU seconds (user+sys of the child) and peak RSS
for each run, and for `wc -l` over the same file in the same invocation: the
cost of merely reading every byte, a floor no CSV reader can beat, so the
ratio holds on a noisy machine. A second, twice larger file shows whether
RSS depends on the input size (it must not).

usage: bench_pipeline.py [--rtproc build/rtproc] [--rows 5000000] [--data ../shared/data]
"""
import argparse
import os
import sys
import tempfile

from measure import run

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../.."))


def build_input(data_dir, rows, path):
    src = os.path.join(data_dir, "stocks/sp500_all_stocks_5yr_subset_100_symbols.csv")
    if not os.path.exists(src):
        sys.exit(f"{src} missing: the benchmark needs ../shared/data")
    with open(src, "rb") as f:
        header = f.readline()
        body = f.read()
    per = body.count(b"\n")
    copies = -(-rows // per)
    with open(path, "wb") as out:
        out.write(header)
        for _ in range(copies):
            out.write(body)
    return per * copies, os.path.getsize(path)


def report(name, rows, size, wall, cpu, rss):
    print(f"{name:<28} {rows / wall / 1e6:7.2f} M rec/s {size / wall / 1e6:8.1f} MB/s "
          f"{cpu:6.2f} CPU s {rows / cpu / 1e6:7.2f} M rec/CPU-s {rss / 1024:7.1f} MB peak RSS")


def conf_for(tmp, path, output):
    conf = os.path.join(tmp, f"{output}.conf")
    with open(conf, "w") as f:
        f.write(f"[service]\nlog_level = warn\n[input.csv]\npath = {path}\nexit_on_eof = true\n"
                f"[output.{output}]\n")
    return conf


def bench_file(rtproc, tmp, path, rows, size, label):
    print(f"\n{label}: {rows:,} rows, {size / 1e6:.1f} MB")
    _, wall, cpu, rss = run(["wc", "-l", path])
    report("reference: wc -l", rows, size, wall, cpu, rss)
    floor = wall
    for output in ("null", "stdout"):
        _, wall, cpu, rss = run([rtproc, "-c", conf_for(tmp, path, output)])
        report(f"rtproc csv -> {output}", rows, size, wall, cpu, rss)
        print(f"{'':28} {wall / floor:7.1f} x the time of wc -l")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rtproc", default=os.path.join(ROOT, "build/rtproc"))
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--data", default=os.path.join(ROOT, "../shared/data"))
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, {os.uname().machine}, {os.uname().release}")
    with tempfile.TemporaryDirectory(prefix="rtproc-bench-") as tmp:
        path = os.path.join(tmp, "stocks.csv")
        rows, size = build_input(args.data, args.rows, path)
        bench_file(args.rtproc, tmp, path, rows, size, "stocks x N")
        path2 = os.path.join(tmp, "stocks2.csv")
        rows2, size2 = build_input(args.data, args.rows * 2, path2)
        os.remove(path)
        bench_file(args.rtproc, tmp, path2, rows2, size2, "twice as many rows (RSS must not grow)")


if __name__ == "__main__":
    main()
