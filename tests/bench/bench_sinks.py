#!/usr/bin/env python3
"""Benchmark: rtproc's PostgreSQL and Redis outputs against the servers' own
bulk tools, on the same machine, in the same run, from the same CSV file.

  csv -> rtproc -> postgres (plain COPY, then upsert)  vs  psql \\copy
  csv -> rtproc -> redis (mode = hash)                 vs  redis-benchmark HSET -P 64

PostgreSQL and Redis run from tests/integration/servers.py (PostgreSQL with
fsync=off, as in the tests: the client side is what is measured). The psql
and rtproc targets are identical tables with a primary key on (symbol, ts);
the CSV has N unique (symbol, ts) rows over 50 symbols. redis-benchmark
sends the same HSET (4 fields, keys over 50 symbols) with 64 commands in
flight per connection, and one connection, as rtproc has.

Prints rows/s, the ratio to the reference (bar: 80%), and rtproc's CPU
seconds and peak RSS (VmHWM, polled as in bench_pipeline.py).

usage: bench_sinks.py [--rtproc build/rtproc] [--rows 1000000] [--max-inflight N]
"""
import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../.."))
sys.path.insert(0, os.path.join(ROOT, "tests/integration"))
import servers  # noqa: E402
from measure import run  # noqa: E402

COLUMNS = "symbol:text, ts:timestamptz, price:double precision, volume:bigint"
TABLE_SQL = ("CREATE TABLE {} (symbol text, ts timestamptz, price double precision, volume bigint, "
             "PRIMARY KEY (symbol, ts))")

# psql's best case for an upsert: one transaction, the same staging and
# merge statements as out_postgres.
UPSERT_SQL = """BEGIN;
CREATE TEMP TABLE stage ON COMMIT DROP AS SELECT symbol, ts, price, volume FROM via_psql_upsert WITH NO DATA;
\\copy stage FROM '{csv}' WITH (FORMAT csv, HEADER true)
INSERT INTO via_psql_upsert SELECT DISTINCT ON (symbol, ts) * FROM stage ORDER BY symbol, ts, ctid DESC
  ON CONFLICT (symbol, ts) DO UPDATE SET price = EXCLUDED.price, volume = EXCLUDED.volume;
COMMIT;
"""


def make_csv(path, rows):
    t0 = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    with open(path, "w") as f:
        f.write("symbol,ts,price,volume\n")
        chunk = []
        for i in range(rows):
            ts = (t0 + datetime.timedelta(seconds=i // 50)).strftime("%Y-%m-%dT%H:%M:%SZ")
            chunk.append(f"S{i % 50},{ts},{100 + (i % 997) * 0.25},{i}\n")
            if len(chunk) == 100000:
                f.write("".join(chunk))
                chunk = []
        f.write("".join(chunk))


def report(name, rows, wall, cpu=None, rss=None, ref=None):
    line = f"{name:<34} {rows / wall:12,.0f} rows/s {wall:7.2f} s"
    if cpu is not None:
        line += f" {cpu:6.2f} CPU s {rss / 1024:7.1f} MB peak RSS"
    if ref:
        line += f"   {rows / wall / ref:6.1%} of the reference"
    print(line, flush=True)
    return rows / wall


def inflight(args):
    return f"max_inflight = {args.max_inflight}\n" if args.max_inflight else ""


def rtproc_pg(args, tmp, pg, csv, table, upsert):
    conf = os.path.join(tmp, f"{table}.conf")
    with open(conf, "w") as f:
        f.write(f"[service]\nlog_level = warn\n[input.csv]\npath = {csv}\nexit_on_eof = true\n"
                f"types = ts:time, symbol:string\n"
                f"[output.postgres]\nconninfo = {pg.conninfo}\ntable = {table}\ncolumns = {COLUMNS}\n"
                f"{inflight(args)}" + ("upsert_keys = symbol, ts\n" if upsert else ""))
    return run([args.rtproc, "-c", conf], env=pg.env())


def bench_postgres(args, tmp, csv):
    pg = servers.Postgres()
    try:
        tables = ("via_psql", "via_psql_upsert", "via_rtproc", "via_rtproc_upsert")
        for t in tables:
            pg.sql(TABLE_SQL.format(t))
        psql = os.path.join(servers.PG_BIN, "psql")
        _, wall, _, _ = run([psql, "-X", "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                             "-d", pg.dbname, "-c", f"\\copy via_psql (symbol, ts, price, volume) FROM '{csv}' "
                             "WITH (FORMAT csv, HEADER true)"], env=pg.env())
        ref = report("psql \\copy", args.rows, wall)
        pg.sql("CHECKPOINT", autocommit=True)
        script = os.path.join(tmp, "upsert.sql")
        with open(script, "w") as f:
            f.write(UPSERT_SQL.format(csv=csv))
        _, wall, _, _ = run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(pg.port),
                             "-U", "postgres", "-d", pg.dbname, "-f", script], env=pg.env())
        ref_upsert = report("psql \\copy + INSERT ON CONFLICT", args.rows, wall)
        pg.sql("CHECKPOINT", autocommit=True)
        _, wall, cpu, rss = rtproc_pg(args, tmp, pg, csv, "via_rtproc", False)
        report("rtproc csv -> postgres (COPY)", args.rows, wall, cpu, rss, ref)
        pg.sql("CHECKPOINT", autocommit=True)
        _, wall, cpu, rss = rtproc_pg(args, tmp, pg, csv, "via_rtproc_upsert", True)
        report("rtproc csv -> postgres (upsert)", args.rows, wall, cpu, rss, ref)
        print(f"{'':<34} upsert against psql's own staged upsert: {ref_upsert and args.rows / wall / ref_upsert:.1%}")
        for t in tables:
            n = pg.sql(f"SELECT count(*) FROM {t}")[0][0]
            if n != args.rows:
                sys.exit(f"{t} holds {n} rows, not {args.rows}")
    finally:
        pg.cleanup()


def bench_redis(args, tmp, csv):
    redis = servers.Redis()
    try:
        out = subprocess.run(["redis-benchmark", "-p", str(redis.port), "-c", "1", "-P", "64", "-n",
                              str(args.rows), "-r", "50", "-q", "HSET", "ticker:__rand_int__", "symbol", "S1", "ts",
                              "2020-01-01T00:00:00.000Z", "price", "100.25", "volume", "123456"],
                             capture_output=True, text=True, check=True).stdout
        m = re.findall(r"([\d.]+) requests per second", out)
        if not m:
            sys.exit(f"cannot read redis-benchmark's output:\n{out}")
        ref = float(m[-1])
        print(f"{'redis-benchmark HSET -P 64 -c 1':<34} {ref:12,.0f} ops/s", flush=True)
        redis.client().call("FLUSHALL")
        conf = os.path.join(tmp, "redis.conf")
        with open(conf, "w") as f:
            f.write(f"[service]\nlog_level = warn\n[input.csv]\npath = {csv}\nexit_on_eof = true\n"
                    f"types = ts:time, symbol:string\n[output.redis]\nport = {redis.port}\nmode = hash\n"
                    f"key = ticker:{{symbol}}\n{inflight(args)}")
        _, wall, cpu, rss = run([args.rtproc, "-c", conf])
        report("rtproc csv -> redis (hash)", args.rows, wall, cpu, rss, ref)
    finally:
        redis.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rtproc", default=os.path.join(ROOT, "build/rtproc"))
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--max-inflight", type=int, default=0, help="0: the plugin's own default (16 for postgres, 4 for redis)")
    ap.add_argument("--only", choices=("postgres", "redis"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rtproc-bench-") as tmp:
        os.chmod(tmp, 0o755)  # psql and the servers run as other users
        csv = os.path.join(tmp, "ticks.csv")
        make_csv(csv, args.rows)
        print(f"{args.rows:,} rows, {os.path.getsize(csv) / 1e6:.1f} MB CSV, {os.cpu_count()} CPUs, "
              f"max_inflight = {args.max_inflight or 'plugin default'}", flush=True)
        if args.only != "redis":
            bench_postgres(args, tmp, csv)
        if args.only != "postgres":
            bench_redis(args, tmp, csv)


if __name__ == "__main__":
    main()
