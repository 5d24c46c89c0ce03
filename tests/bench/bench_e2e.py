#!/usr/bin/env python3
"""Benchmark: Kafka -> rtproc -> PostgreSQL against psql, and Kafka -> null
against kcat, on the same produced ticks, in one run.

Starts tests/kafka/kafka_mock (librdkafka's mock cluster), produces N JSON
ticks once with kcat ({"symbol","ts","seq","price","volume"}, 50 symbols,
ts in epoch ms), and writes the same rows to a CSV file. Then, each
consumer in its own group so that each reads every message:

  (i)  psql \\copy of the CSV into a table                       (reference)
       psql \\copy of the same rows in the order a consumer gets them
       psql \\copy of the same rows in the order rtproc wrote them
       psql \\copy into a staging table + INSERT ... ON CONFLICT  (reference for upserts)
       rtproc kafka -> postgres, plain COPY, connections = 1 and 3
       rtproc kafka -> postgres, upsert_keys = symbol, ts
       into identical tables (primary key (symbol, ts)); every table must
       end with N rows.
  (ii) kcat -G (balanced consumer: joins a group, like rtproc) to /dev/null
       rtproc kafka -> null (every message parsed into a record)

Printed: rows/s, wall and CPU seconds, peak RSS (VmHWM polled, as in
bench_pipeline.py), and the ratios rtproc / reference. A group consumer
pays the group join on the mock (about 3 s, its initial rebalance delay),
which psql does not: the rtproc lines also give the rate from the
assignment to the end, read from rtproc's own log, and the ratio of both.
The bars in issue 4 are 80% of psql \\copy and 90% of kcat. No assertions:
figures vary with the machine and between runs (client and servers share
the CPUs).

The consumed order is what kcat -G printed, read back into a CSV file: rows
from 32 partitions interleaved in fetch-sized runs. It fills the table's
primary key out of order, which costs PostgreSQL more CPU than the produced
order (docs/postgres.md), and it is what any Kafka consumer hands it.
No two consumers get quite the same order (it depends on the timing of
fetches from three brokers), so the rows rtproc wrote with one connection
are also read back in ctid order (the insertion order: one session, no
deletes) and loaded by psql: the same rows in the same order, the same
work for PostgreSQL; only the client differs.

The mock cluster keeps about 5 MB per partition, so the topic has 32
partitions and the ticks are keyed by sequence number (even spread, as
bench_kafka.py does); the watermarks are checked after producing.

With librdkafka 2.0.2 (Debian 12) a full prefetch queue stops fetching for
a second (docs/kafka.md), so the Kafka input's speed depends on
queued.max.messages.kbytes; --rdkafka sets it (or any property) for every
rtproc run, to see the PostgreSQL stage when Kafka is not the limit.

usage: bench_e2e.py [--build build] [--messages 1000000] [--repeat 1] [--rdkafka PROP=VALUE ...]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../.."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests/integration"))
import bench_kafka  # noqa: E402  (kcat_cmd, rtproc_conf, rtproc_active, check_retention, PARTITIONS)
from measure import run  # noqa: E402
import servers  # noqa: E402

T0_MS = 1_700_000_000_000
TABLE_SQL = ("CREATE TABLE {} (symbol text, ts bigint, seq bigint, price double precision, volume bigint, "
             "PRIMARY KEY (symbol, ts))")
COLUMNS = "symbol:text, ts:bigint, seq:bigint, price:double precision, volume:bigint"
UPSERT_SQL = """BEGIN;
CREATE TEMP TABLE stage ON COMMIT DROP AS SELECT symbol, ts, seq, price, volume FROM via_psql_upsert WITH NO DATA;
\\copy stage FROM '{csv}' WITH (FORMAT csv, HEADER true)
INSERT INTO via_psql_upsert SELECT DISTINCT ON (symbol, ts) * FROM stage ORDER BY symbol, ts, ctid DESC
  ON CONFLICT (symbol, ts) DO UPDATE SET seq = EXCLUDED.seq, price = EXCLUDED.price, volume = EXCLUDED.volume;
COMMIT;
"""


def csv_line(sym, ts, seq, price, vol):
    return f"{sym},{ts},{seq},{price!r},{vol}\n"


def produce(brokers, n, tmp):
    """kcat -P of n ticks keyed by seq; the same rows into ticks.csv.
    Returns (bytes of JSON, CSV path)."""
    kpath = os.path.join(tmp, "ticks.txt")
    csv = os.path.join(tmp, "ticks.csv")
    size = 0
    with open(kpath, "w") as k, open(csv, "w") as c:
        c.write("symbol,ts,seq,price,volume\n")
        kbuf, cbuf = [], []
        for i in range(n):
            sym = f"S{i % 50:02d}"
            ts = T0_MS + (i // 50) * 1000 + i % 50
            price = (10000 + (i * 7919) % 5000) / 100
            vol = 1 + i % 977
            payload = f'{{"symbol":"{sym}","ts":{ts},"seq":{i},"price":{price!r},"volume":{vol}}}'
            size += len(payload)
            kbuf.append(f"{i}:{payload}\n")
            cbuf.append(csv_line(sym, ts, i, price, vol))
            if len(kbuf) == 100000:
                k.write("".join(kbuf))
                c.write("".join(cbuf))
                kbuf, cbuf = [], []
        k.write("".join(kbuf))
        c.write("".join(cbuf))
    subprocess.run(["kcat", "-P", "-b", brokers, "-t", "ticks", "-K:", "-l", kpath,
                    "-X", "linger.ms=50", "-X", "batch.num.messages=10000"], check=True)
    os.remove(kpath)
    return size, csv


def consumed_csv(brokers, tmp):
    """The ticks in the order a group consumer (kcat -G) received them."""
    out = subprocess.run(bench_kafka.kcat_cmd(brokers, "order") + ["-f", "%s\\n"], check=True,
                         capture_output=True, text=True).stdout
    path = os.path.join(tmp, "consumed.csv")
    with open(path, "w") as f:
        f.write("symbol,ts,seq,price,volume\n")
        for line in out.splitlines():
            if line:
                t = json.loads(line)
                f.write(csv_line(t["symbol"], t["ts"], t["seq"], t["price"], t["volume"]))
    return path


def run_rtproc(args, tmp, brokers, group, output, env=None):
    err = os.path.join(tmp, f"{group}.err")
    conf = bench_kafka.rtproc_conf(tmp, brokers, group, output, args.rdkafka)
    _, wall, cpu, rss = run([os.path.join(args.build, "rtproc"), "-c", conf], env=env, stderr_path=err)
    return wall, cpu, rss, bench_kafka.rtproc_active(err, args.messages, end_marker="")


def line(name, n, wall, cpu=None, rss=None, active=None, ref=None, ref_active=None):
    s = f"{name:<36} {n / wall:10,.0f} rows/s  wall {wall:6.2f} s"
    if cpu is not None:
        s += f"  {cpu:6.2f} CPU s  {rss / 1024:6.1f} MB peak RSS"
    if active:
        s += f"  | {n / active:10,.0f} rows/s after the join ({active:.2f} s)"
    print(s, flush=True)
    if ref:
        r = f"{'':<36} {n / wall / ref:6.1%} of the reference (wall)"
        if active and ref_active:
            r += f", {n / active / ref_active:6.1%} after the join"
        print(r, flush=True)
    return n / wall


def bench_postgres(args, tmp, brokers, csv, consumed, r):
    n = args.messages
    pg = servers.Postgres()
    try:
        tables = ("via_psql", "via_psql_consumed", "via_psql_upsert", "via_rtproc", "via_psql_rtproc_order",
                  "via_rtproc_3", "via_rtproc_upsert")
        for t in tables:
            pg.sql(TABLE_SQL.format(t))
        psql = [os.path.join(servers.PG_BIN, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                "-p", str(pg.port), "-U", "postgres", "-d", pg.dbname]
        os.environ.update(pg.env())
        _, wall, cpu, rss = run(psql + ["-c", f"\\copy via_psql (symbol, ts, seq, price, volume) "
                                              f"FROM '{csv}' WITH (FORMAT csv, HEADER true)"],
                                stderr_path=os.path.join(tmp, "psql.err"))
        ref = line("psql \\copy", n, wall, cpu, rss)
        pg.sql("CHECKPOINT", autocommit=True)
        _, wall, cpu, rss = run(psql + ["-c", f"\\copy via_psql_consumed (symbol, ts, seq, price, volume) "
                                              f"FROM '{consumed}' WITH (FORMAT csv, HEADER true)"],
                                stderr_path=os.path.join(tmp, "psql-consumed.err"))
        ref_consumed = line("psql \\copy, in consumed order", n, wall, cpu, rss)
        pg.sql("CHECKPOINT", autocommit=True)
        script = os.path.join(tmp, "upsert.sql")
        with open(script, "w") as f:
            f.write(UPSERT_SQL.format(csv=csv))
        _, wall, cpu, rss = run(psql + ["-f", script], stderr_path=os.path.join(tmp, "psql-upsert.err"))
        ref_upsert = line("psql \\copy + INSERT ON CONFLICT", n, wall, cpu, rss)
        pg.sql("CHECKPOINT", autocommit=True)
        out = {}
        runs = (("via_rtproc", "COPY", "connections = 1\n"), ("via_rtproc_3", "COPY x3", "connections = 3\n"),
                ("via_rtproc_upsert", "upsert", "upsert_keys = symbol, ts\n"))
        for table, kind, opts in runs:
            output = f"[output.postgres]\nconninfo = {pg.conninfo}\ntable = {table}\ncolumns = {COLUMNS}\n{opts}"
            wall, cpu, rss, active = run_rtproc(args, tmp, brokers, f"pg-{table}-{r}", output, pg.env())
            line(f"rtproc kafka -> postgres ({kind})", n, wall, cpu, rss, active, ref, ref)
            upsert = kind == "upsert"
            if not upsert:
                print(f"{'':<36} {n / wall / ref_consumed:6.1%} of psql in consumed order (wall)"
                      + (f", {n / active / ref_consumed:6.1%} after the join" if active else ""), flush=True)
            if table == "via_rtproc":
                ref_same = psql_same_order(psql, pg, tmp, n)
                print(f"{'':<36} {n / wall / ref_same:6.1%} of psql in the same order (wall)"
                      + (f", {n / active / ref_same:6.1%} after the join" if active else ""), flush=True)
            if upsert:
                print(f"{'':<36} {n / wall / ref_upsert:6.1%} of psql's own staged upsert (wall)"
                      + (f", {n / active / ref_upsert:6.1%} after the join" if active else ""), flush=True)
            out[table] = (wall, active)
            pg.sql("CHECKPOINT", autocommit=True)
        for t in tables:
            got = pg.sql(f"SELECT count(*) FROM {t}")[0][0]
            if got != n:
                sys.exit(f"{t} holds {got} rows, not {n}")
        return ref, ref_consumed, out
    finally:
        pg.cleanup()


def psql_same_order(psql, pg, tmp, n):
    """psql \\copy of via_rtproc's rows in the order rtproc inserted them."""
    path = os.path.join(tmp, "rtproc-order.csv")
    subprocess.run(psql + ["-c", f"\\copy (SELECT * FROM via_rtproc ORDER BY ctid) TO '{path}' WITH (FORMAT csv)"],
                   check=True)
    pg.sql("CHECKPOINT", autocommit=True)
    _, wall, cpu, rss = run(psql + ["-c", f"\\copy via_psql_rtproc_order (symbol, ts, seq, price, volume) "
                                          f"FROM '{path}' WITH (FORMAT csv)"],
                            stderr_path=os.path.join(tmp, "psql-same.err"))
    return line("psql \\copy, in rtproc's order", n, wall, cpu, rss)


def bench_null(args, tmp, brokers, r):
    n = args.messages
    err = os.path.join(tmp, f"kcat-{r}.err")
    _, wall, cpu, rss = run(bench_kafka.kcat_cmd(brokers, f"kcat-{r}"), stderr_path=err)
    ref = line("kcat -G (balanced consumer)", n, wall, cpu, rss)
    wall, cpu, rss, active = run_rtproc(args, tmp, brokers, f"null-{r}", "[output.null]\n")
    line("rtproc kafka -> null", n, wall, cpu, rss, active, ref)
    return ref, wall, active


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--rdkafka", action="append", default=[], metavar="PROP=VALUE",
                    help="a librdkafka property for rtproc's input, e.g. queued.max.messages.kbytes=65536")
    args = ap.parse_args()
    n = args.messages
    print(f"machine: {os.cpu_count()} CPUs, {os.uname().machine}, {os.uname().release}")
    mock = bench_kafka.start_mock(args.build)
    brokers = mock.brokers
    try:
        with tempfile.TemporaryDirectory(prefix="rtproc-bench-") as tmp:
            os.chmod(tmp, 0o755)  # the servers run as another user
            t0 = time.perf_counter()
            size, csv = produce(brokers, n, tmp)
            bench_kafka.check_retention(brokers, n)
            consumed = consumed_csv(brokers, tmp)
            print(f"produced {n:,} ticks ({size / 1e6:.1f} MB of JSON, {bench_kafka.PARTITIONS} partitions) "
                  f"in {time.perf_counter() - t0:.1f} s; CSV {os.path.getsize(csv) / 1e6:.1f} MB", flush=True)
            for r in range(args.repeat):
                print(f"\nround {r + 1}\n(i) kafka -> postgres", flush=True)
                ref, ref_consumed, out = bench_postgres(args, tmp, brokers, csv, consumed, r)
                print("(ii) kafka -> null", flush=True)
                kref, kwall, kactive = bench_null(args, tmp, brokers, r)
                w, a = out["via_rtproc"]
                w3, a3 = out["via_rtproc_3"]
                wu, au = out["via_rtproc_upsert"]
                print(f"\nsummary: rtproc/psql \\copy: COPY {n / w / ref:.0%} (after the join "
                      f"{(n / a / ref if a else 0):.0%}), COPY x3 {n / w3 / ref:.0%} (after the join "
                      f"{(n / a3 / ref if a3 else 0):.0%}), upsert {n / wu / ref:.0%} (after the join "
                      f"{(n / au / ref if au else 0):.0%}); rtproc/kcat -G {n / kwall / kref:.0%} "
                      f"(bars: 80%, 90%)", flush=True)
                print(f"         against psql in consumed order, after the join: COPY "
                      f"{(n / a / ref_consumed if a else 0):.0%}, COPY x3 "
                      f"{(n / a3 / ref_consumed if a3 else 0):.0%}", flush=True)
                if a and kactive:
                    print(f"         kafka -> postgres runs at {kactive / a:.0%} of rtproc's kafka -> null "
                          f"after the join (the input's own ceiling); upsert at {kactive / au:.0%}", flush=True)
    finally:
        mock.close()


if __name__ == "__main__":
    main()
