#!/usr/bin/env python3
"""Benchmark: Kafka -> null against kcat consuming the same topic.

Starts tests/kafka/kafka_mock (librdkafka's mock cluster: the real protocol
over loopback TCP), produces N JSON ticks (default 1M, 50 symbols) once
with kcat, then in the same run times, each in its own consumer group so
each reads every message from the beginning:

  kcat -G   balanced consumer (joins a group, like rtproc) to /dev/null
  kcat      plain consumer (assigns the partitions, no group join)
  rtproc    in_kafka (format json: every message parsed into a record,
            exit_on_eof) -> out_null

Both group consumers pay the group join (about 3 s on the mock cluster,
its initial rebalance delay), so each line also shows the rate measured from
the first message on: kcat's from its output, rtproc's from its own log
("assigned ... partitions" to exit). Prints msgs/s, MB/s, CPU seconds and
peak RSS, and the ratio rtproc/kcat -G (the bar is 90%).

usage: bench_kafka.py [--build build] [--messages 1000000] [--repeat 3]
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../.."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests/integration"))
from measure import run  # noqa: E402
import servers  # noqa: E402
# The mock cluster keeps only about 5 MB per partition (older messages are
# deleted, the low watermark moves), so the ticks are keyed by sequence
# number, which spreads them evenly over enough partitions to keep all of
# them; check_retention verifies it.
PARTITIONS = 32


def start_mock(build):
    """The mock cluster with the benchmark's topic; .brokers, .close()."""
    return servers.KafkaMock(os.path.join(build, "tests/kafka/kafka_mock"), {"ticks": PARTITIONS})


def produce(brokers, n, tmp):
    """kcat -P from a file: seq:payload lines, one JSON tick each."""
    path = os.path.join(tmp, "ticks.txt")
    size = 0
    with open(path, "w") as f:
        for i in range(n):
            sym = f"SYM{i % 50:02d}"
            payload = json.dumps({"seq": i, "symbol": sym, "price": round(100 + (i % 1000) * 0.01, 2),
                                  "volume": i % 977, "quote": {"bid": 99.5, "ask": 100.5}},
                                 separators=(",", ":"))
            size += len(payload)
            f.write(f"{i}:{payload}\n")
    subprocess.run(["kcat", "-P", "-b", brokers, "-t", "ticks", "-K:", "-l", path,
                    "-X", "linger.ms=50", "-X", "batch.num.messages=10000"], check=True)
    os.remove(path)
    return size


def check_retention(brokers, n):
    """Every message must still be in the topic (low watermarks at 0)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": brokers, "group.id": "bench-watermarks"})
    marks = [c.get_watermark_offsets(TopicPartition("ticks", i), timeout=10) for i in range(PARTITIONS)]
    c.close()
    if any(lo for lo, _ in marks) or sum(hi for _, hi in marks) != n:
        sys.exit(f"the mock cluster dropped messages (watermarks {marks}): use fewer --messages")


def rtproc_conf(tmp, brokers, group, output="[output.null]\n", rdkafka=()):
    """A pipeline reading the topic in its own group; rdkafka: PROP=VALUE."""
    path = os.path.join(tmp, f"{group}.conf")
    props = "".join(f"rdkafka.{p.replace('=', ' = ', 1)}\n" for p in rdkafka)
    with open(path, "w") as f:
        f.write(f"[service]\nlog_level = info\n[input.kafka]\nbrokers = {brokers}\ntopics = ticks\n"
                f"group_id = {group}\nexit_on_eof = true\n{props}{output}")
    return path


def log_time(line):
    stamp = line.split(" ", 1)[0]
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def rtproc_active(err_path, n, end_marker="read to its end"):
    """Seconds from the assignment to the last log line holding end_marker
    ("" for the last line: the metrics summary, after the last delivery),
    from the log; exits unless n messages were consumed."""
    start = end = None
    consumed = 0
    for line in open(err_path):
        if not line[:4].isdigit():
            continue
        if "assigned" in line and start is None:
            start = log_time(line)
        if end_marker in line:
            end = log_time(line)
        m = re.search(r"messages_consumed=(\d+)", line)
        if m:
            consumed = int(m.group(1))
    if consumed != n:
        sys.exit(f"rtproc consumed {consumed} messages, expected {n}")
    return end - start


def report(name, n, size, wall, cpu, rss, active=None):
    act = f"  {n / active / 1e6:5.2f} M msg/s after the join" if active else ""
    print(f"{name:<18} {n / wall / 1e6:5.2f} M msg/s {size / wall / 1e6:6.1f} MB/s {cpu:6.2f} CPU s "
          f"{rss / 1024:6.1f} MB peak RSS  wall {wall:5.2f} s{act}")


def kcat_cmd(brokers, group):
    base = ["kcat", "-b", brokers, "-e", "-q", "-o", "beginning", "-X", "enable.partition.eof=true"]
    if group:
        return base + ["-G", group, "ticks"]
    return base + ["-C", "-t", "ticks"]


def one_round(args, brokers, n, size, tmp, r):
    res = {}
    for name in ("kcat -G", "kcat", "rtproc"):
        err = os.path.join(tmp, f"{r}-{name.replace(' ', '')}.err")
        if name == "rtproc":
            cmd = [os.path.join(args.build, "rtproc"), "-c", rtproc_conf(tmp, brokers, f"rtproc-{r}")]
        else:
            cmd = kcat_cmd(brokers, f"kcat-{r}" if name == "kcat -G" else None)
        t0, wall, cpu, rss = run(cmd, stderr_path=err)
        active = rtproc_active(err, n) if name == "rtproc" else None
        report(name, n, size, wall, cpu, rss, active)
        res[name] = (wall, cpu, active)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, {os.uname().machine}, {os.uname().release}")
    mock = start_mock(args.build)
    brokers = mock.brokers
    try:
        with tempfile.TemporaryDirectory(prefix="rtproc-bench-") as tmp:
            t0 = time.perf_counter()
            size = produce(brokers, args.messages, tmp)
            check_retention(brokers, args.messages)
            print(f"produced {args.messages:,} messages ({size / 1e6:.1f} MB of JSON) "
                  f"in {time.perf_counter() - t0:.1f} s")
            best = {}
            for r in range(args.repeat):
                print(f"\nround {r + 1}")
                for name, v in one_round(args, brokers, args.messages, size, tmp, r).items():
                    if name not in best or v[0] < best[name][0]:
                        best[name] = v
            ratio = best["kcat -G"][0] / best["rtproc"][0]
            print(f"\nbest of {args.repeat}: rtproc/kcat -G rate ratio {ratio * 100:.0f}% "
                  f"(bar: 90%); CPU s rtproc {best['rtproc'][1]:.2f} vs kcat -G {best['kcat -G'][1]:.2f}")
    finally:
        mock.close()


if __name__ == "__main__":
    main()
