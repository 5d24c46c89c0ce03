"""in_kafka against librdkafka's mock cluster (tests/kafka/kafka_mock: the
real Kafka protocol on loopback, consumer groups included), with data
produced and offsets checked by independent clients: python3-confluent-kafka
and kcat.

The mock keeps about 5 MB per partition, so each test stays well below it;
a consumer group join takes about 3 s on the mock (its initial rebalance
delay), which is most of each test's time. Sessions are 3 s: see
kafka_conf."""
import json
import os
import signal
import shutil
import subprocess
import threading
import time
import unittest

import servers
from harness import KAFKA_MOCK, RTPROC, SANITIZED, Case, read, rss_kb, wait_for

try:
    import confluent_kafka
    from confluent_kafka import Consumer, Producer, TopicPartition
except ImportError:  # the tests skip, saying why
    confluent_kafka = None

TOPICS = {"ticks": 6, "meta": 6, "poison": 6, "stall": 1, "crash": 6, "shared": 6, "pressure": 24,
          "raw": 3, "rx-a": 2, "rx-b": 2, "late": 1}
SYMBOLS = [f"SYM{i:02d}" for i in range(50)]


def tick(i):
    sym = SYMBOLS[i % len(SYMBOLS)]
    return sym, {"seq": i, "symbol": sym, "price": round(100 + (i % 1000) * 0.01, 2),
                 "volume": i % 977, "quote": {"bid": 99.5, "ask": 100.5}, "venues": ["X", "Y"]}


def produce(brokers, topic, messages):
    """messages: iterable of (key, value bytes, headers or None)."""
    p = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "message.max.bytes": 4_000_000})
    for key, value, headers in messages:
        while True:
            try:
                p.produce(topic, value=value, key=key, headers=headers)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(30) == 0, "messages left unsent"


def produce_ticks(brokers, topic, n, start=0):
    produce(brokers, topic, ((tick(i)[0], json.dumps(tick(i)[1]).encode(), None) for i in range(start, n)))


def watermarks(brokers, topic):
    c = Consumer({"bootstrap.servers": brokers, "group.id": "watermarks"})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(TOPICS[topic])]
    finally:
        c.close()


def committed(brokers, group, topic):
    """Committed offsets of a group, read by a consumer that does not
    subscribe and so does not join the group (no rebalance)."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": group})
    try:
        parts = c.committed([TopicPartition(topic, p) for p in range(TOPICS[topic])], timeout=10)
        return [tp.offset for tp in parts]
    finally:
        c.close()


def seqs_of(text):
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut by SIGKILL
        if "seq" in rec:
            out.append(rec["seq"])
    return out


class Kafka(Case):
    def setUp(self):
        super().setUp()
        self.t0 = time.monotonic()
        self.addCleanup(lambda: print(f" [{time.monotonic() - self.t0:.1f} s]", end=" "))

    @classmethod
    def setUpClass(cls):
        if confluent_kafka is None:
            raise unittest.SkipTest("python3-confluent-kafka is not installed")
        if not shutil.which("kcat"):
            raise unittest.SkipTest("kcat is not installed")
        cls.mock = servers.KafkaMock(KAFKA_MOCK, TOPICS)
        cls.addClassCleanup(cls.mock.close)
        cls.brokers = cls.mock.brokers

    def kafka_conf(self, topic, group, extra="", out="[output.stdout]", service=""):
        # The mock cluster lets a member that left go only when its session
        # times out (kcat's members too), so a restart in the same group would
        # wait librdkafka's default 45 s to join: sessions are short here.
        extra += "\nrdkafka.session.timeout.ms = 3000\nrdkafka.heartbeat.interval.ms = 300"
        return f"""
            [service]
            grace = 10s
            {service}
            [input.kafka]
            brokers = {self.brokers}
            topics = {topic}
            group_id = {group}
            {extra}
            {out}
            """

    def test_every_message_once_flattened_with_metadata(self):
        n = 6000
        produce_ticks(self.brokers, "ticks", n)
        conf = self.kafka_conf("ticks", "g-ticks", "exit_on_eof = true\nfields = key, topic, partition, offset, "
                                                   "timestamp, headers")
        r = self.rtproc(conf=conf)
        self.assertEqual(r.code, 0, r.err)
        recs = r.lines()
        self.assertEqual(sorted(x["seq"] for x in recs), list(range(n)), "every message exactly once")
        first = recs[0]
        self.assertEqual(first["quote.bid"], 99.5, "nested objects become dotted names")
        self.assertEqual(json.loads(first["venues"]), ["X", "Y"], "arrays stay JSON text")
        self.assertEqual(first["kafka_key"], first["symbol"])
        self.assertEqual(first["kafka_topic"], "ticks")
        self.assertIn(first["kafka_partition"], range(6))
        self.assertIsInstance(first["kafka_offset"], int)
        self.assertRegex(first["kafka_timestamp"], r"^\d{4}-\d\d-\d\dT")
        self.assertEqual(first["kafka_headers"], "{}")
        per_part = {}
        for x in recs:  # offsets of a partition come in order
            self.assertGreater(x["kafka_offset"], per_part.get(x["kafka_partition"], -1))
            per_part[x["kafka_partition"]] = x["kafka_offset"]
        self.assertEqual(r.metric("input:kafka", "messages_consumed"), n)
        self.assertEqual(committed(self.brokers, "g-ticks", "ticks"), [hi for _, hi in watermarks(self.brokers,
                                                                                                    "ticks")])
        again = self.rtproc(conf=conf)
        self.assertEqual(again.code, 0, again.err)
        self.assertEqual(again.out, "", "a second run of the group finds everything committed")

    def test_kcat_produced_raw_messages_regex_topics_headers_and_time_key(self):
        path = self.write("kcat.txt", "".join(f"k{i}\t{{\"seq\":{i},\"ts\":{1700000000000 + i}}}\n"
                                              for i in range(50)))
        for topic in ("rx-a", "rx-b"):
            subprocess.run(["kcat", "-P", "-b", self.brokers, "-t", topic, "-K", "\t", "-H", "origin=kcat",
                            "-l", path], check=True, timeout=60)
        r = self.rtproc(conf=self.kafka_conf("^rx-.*", "g-rx", "exit_on_eof = true\ntime_key = ts\n"
                                             "time_format = epoch_ms\nfields = key:sym, headers, topic",
                                             out="[output.stdout]\ntime_key = event_time"))
        self.assertEqual(r.code, 0, r.err)
        recs = r.lines()
        self.assertEqual(len(recs), 100)
        self.assertEqual({x["kafka_topic"] for x in recs}, {"rx-a", "rx-b"})
        x = next(x for x in recs if x["seq"] == 7)
        self.assertEqual(x["sym"], "k7")
        self.assertEqual(json.loads(x["kafka_headers"]), {"origin": "kcat"})
        self.assertEqual(x["event_time"], "2023-11-14T22:13:20.007Z", "event time from time_key")
        # raw: the payload as it is, whatever it holds
        produce(self.brokers, "raw", [(None, b"plain text, not JSON", None), (b"k", b"{\"a\":1}", None)])
        r = self.rtproc(conf=self.kafka_conf("raw", "g-raw", "exit_on_eof = true\nformat = raw"))
        self.assertEqual(r.code, 0, r.err)
        self.assertEqual(sorted(x["message"] for x in r.lines()), ["plain text, not JSON", "{\"a\":1}"])

    def test_poison_messages_reach_the_error_route_and_good_ones_all_land(self):
        n = 3000
        good = [(tick(i)[0], json.dumps(tick(i)[1]).encode(), None) for i in range(n)]
        blob = b"x" * 1_000_000
        bad = [(b"bad", b"{\"seq\": 1, oops", None), (b"bad", blob, None),
               (b"bad", b"\x00\x01\x02\xffbinary", None), (b"bad", b"[1, 2]", None)]
        produce(self.brokers, "poison", good[:1000] + bad[:2] + good[1000:2000] + bad[2:] + good[2000:])
        conf = self.kafka_conf("poison", "g-poison", "exit_on_eof = true\nmax_message_size = 512k",
                               out="[output.stdout]\ntag_key = tag")
        r = self.rtproc(conf=conf)
        self.assertEqual(r.code, 0, r.err)
        recs = r.lines()
        goods = [x for x in recs if x["tag"] == "kafka"]
        errors = [x for x in recs if x["tag"] == "error.kafka"]
        self.assertEqual(sorted(x["seq"] for x in goods), list(range(n)))
        self.assertEqual(len(errors), 4, [e["error"] for e in errors])
        raws = {e["raw"]: e["error"] for e in errors}
        self.assertIn("invalid JSON", raws["{\"seq\": 1, oops"])
        self.assertIn("larger than max_message_size", raws["x" * 1_000_000])
        self.assertIn("\x00\x01\x02\ufffdbinary", raws, "binary bytes (the 0xff shown as U+FFFD by stdout)")
        self.assertIn("[1, 2]", raws)
        self.assertEqual(r.metric("input:kafka", "messages_errored"), 4)
        self.assertEqual(committed(self.brokers, "g-poison", "poison"),
                         [hi for _, hi in watermarks(self.brokers, "poison")],
                         "offsets of bad messages are committed once the error output delivered them")

    def test_offsets_are_committed_only_after_delivery(self):
        # one partition: lag counts the partitions read from (docs/kafka.md),
        # and with six, the first batches could take whole partitions and
        # none partly, so the lag during the stall could read 0
        n = 20000
        produce_ticks(self.brokers, "stall", n)
        r_fd, w_fd = os.pipe()  # nobody reads it yet: the sink stalls
        errlog = open(os.path.join(self.dir, "err.log"), "w+")
        self.addCleanup(errlog.close)
        p = subprocess.Popen([RTPROC, "-c", self.conf(self.kafka_conf(
            "stall", "g-stall", "exit_on_eof = true\ncommit_interval = 200ms\nmem_limit = 1M",
            service="log_level = debug"))], stdout=w_fd, stderr=errlog, stdin=subprocess.DEVNULL)
        os.close(w_fd)
        try:
            wait_for(lambda: "assigned 1 partition" in read(errlog.name), 30, "the assignment")
            time.sleep(6)  # past a lag refresh, many commit intervals
            self.assertIsNone(p.poll())
            # delivered = written into the pipe, which holds 64 KiB of lines
            # of more than 100 bytes; a first small batch may fit in it
            stalled = sum(max(o, 0) for o in committed(self.brokers, "g-stall", "stall"))
            self.assertLessEqual(stalled, 65536 // 100, "only what reached the stalled sink is committed")
            self.assertRegex(read(errlog.name), r"consumer_lag [1-9]\d*")
            with os.fdopen(r_fd) as reader:
                seqs = seqs_of(reader.read())
            p.wait(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
        self.assertEqual(p.returncode, 0)
        self.assertEqual(sorted(seqs), list(range(n)))
        self.assertEqual(committed(self.brokers, "g-stall", "stall"),
                         [hi for _, hi in watermarks(self.brokers, "stall")])

    def test_sigkill_then_restart_loses_nothing(self):
        n = 60000
        produce_ticks(self.brokers, "crash", n)
        conf = self.kafka_conf("crash", "g-crash", "commit_interval = 100ms\nbatch_size = 200\nmem_limit = 256k")
        # stdout is a pipe read up to 6000 lines, then not at all: rtproc is
        # held by backpressure there (a pipe and mem_limit of output at
        # most), so the kill falls mid-stream however fast the machine is
        p = subprocess.Popen([RTPROC, "-c", self.conf(conf)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL)
        try:
            head = [p.stdout.readline() for _ in range(6000)]
            time.sleep(0.3)
        finally:
            p.kill()
            p.wait()
        first = seqs_of(b"".join(head + [p.stdout.read()]).decode())
        p.stdout.close()
        self.assertLess(len(first), n, "the kill came too late to test anything")
        done = sum(max(o, 0) for o in committed(self.brokers, "g-crash", "crash"))
        self.assertGreater(done, 0, "offsets were committed while it ran")
        r = self.rtproc(conf=conf.replace("commit_interval", "exit_on_eof = true\ncommit_interval"))
        self.assertEqual(r.code, 0, r.err)
        second = seqs_of(r.out)
        self.assertEqual(set(first) | set(second), set(range(n)), "at-least-once: nothing lost")
        dups = len(first) + len(second) - n
        print(f"\n  SIGKILL after {len(first)} of {n} messages, {done} committed: {dups} delivered again "
              "on restart", end=" ")
        # each partition resumes exactly at its committed offset: what was
        # committed is not read again, and nothing after it is skipped
        self.assertEqual(len(set(second)), n - done, "a restart resumes at the committed offsets")

    def test_two_processes_share_partitions_and_one_takes_over_after_a_kill(self):
        half = 12000
        produce_ticks(self.brokers, "shared", half)
        extra = "rdkafka.partition.assignment.strategy = cooperative-sticky\ncommit_interval = 100ms"
        conf = self.conf(self.kafka_conf("shared", "g-shared", extra))
        procs, outs, errs = [], [], []
        for i in range(2):
            outs.append(os.path.join(self.dir, f"out{i}.jsonl"))
            errs.append(os.path.join(self.dir, f"err{i}.log"))
            with open(outs[i], "w") as o, open(errs[i], "w") as e:
                procs.append(subprocess.Popen([RTPROC, "-c", conf], stdout=o, stderr=e,
                                              stdin=subprocess.DEVNULL))
            time.sleep(0.5)
        try:
            def lines(i):
                return seqs_of(read(outs[i]))
            wait_for(lambda: len(set(lines(0)) | set(lines(1))) == half, 60, "the first half")
            self.assertTrue(lines(0) and lines(1), "both members got partitions")
            procs[1].kill()
            procs[1].wait()
            produce_ticks(self.brokers, "shared", 2 * half, start=half)
            wait_for(lambda: len(set(lines(0)) | set(lines(1))) == 2 * half, 60, "the survivor to read the rest")
            procs[0].send_signal(signal.SIGTERM)
            self.assertEqual(procs[0].wait(timeout=30), 0)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        err0 = read(errs[0])
        self.assertRegex(err0, r"assigned [1-5] partitions? \(incremental\)",
                         "cooperative-sticky: an incremental assignment took B's partitions")
        total = lines(0) + lines(1)
        self.assertEqual(set(total), set(range(2 * half)))
        print(f"\n  two members: {len(lines(0))} + {len(lines(1))} records, "
              f"{len(total) - 2 * half} delivered twice around the kill", end=" ")

    def test_backpressure_pauses_partitions_and_memory_stays_bounded(self):
        n = 150000
        produce(self.brokers, "pressure", ((str(i).encode(), json.dumps(tick(i)[1]).encode(), None)
                                           for i in range(n)))
        p = self.start(self.kafka_conf("pressure", "g-pressure", "exit_on_eof = true\nmem_limit = 2M",
                                       service="log_level = debug"))
        errs = []
        t = threading.Thread(target=lambda: errs.append(p.stderr.read()))
        t.start()
        time.sleep(6)  # the join, then a stalled reader: the input must pause
        self.assertIsNone(p.poll())
        rss = rss_kb(p.pid)
        if not SANITIZED:
            self.assertLess(rss, 80 * 1024, f"RSS {rss} kB while the sink is stalled")
        seqs = [json.loads(line)["seq"] for line in p.stdout]
        p.wait(timeout=120)
        p.stdout.close()
        p.stderr.close()
        t.join()
        self.assertEqual(p.returncode, 0)
        self.assertEqual(sorted(seqs), list(range(n)), "paused and resumed partitions lose and repeat nothing")
        self.assertIn(b"paused", errs[0])
        # held more than a second: the partitions themselves were paused
        self.assertIn(b"pausing the partitions", errs[0])
        self.assertIn(b"resumed", errs[0])

    def test_start_latest_skips_what_is_there(self):
        produce_ticks(self.brokers, "late", 100)
        r = self.rtproc(conf=self.kafka_conf("late", "g-late", "exit_on_eof = true\nstart = latest"))
        self.assertEqual(r.code, 0, r.err)
        self.assertEqual(r.out, "")

    def test_configuration_errors_name_the_key(self):
        base = f"[input.kafka]\nbrokers = {self.brokers}\ntopics = ticks\ngroup_id = g\n"
        self.assert_config_error(base + "rdkafka.no.such.property = 1\n[output.null]\n",
                                 "rdkafka.no.such.property", "No such configuration property")
        self.assert_config_error(base + "rdkafka.fetch.wait.max.ms = soon\n[output.null]\n",
                                 "rdkafka.fetch.wait.max.ms")
        self.assert_config_error(base + "rdkafka.enable.auto.commit = true\n[output.null]\n",
                                 "rdkafka.enable.auto.commit", "commits offsets itself")
        self.assert_config_error(base + "rdkafka.group.id = x\n[output.null]\n", "rdkafka.group.id", "group_id")
        self.assert_config_error(base + "fields = key, nonsense\n[output.null]\n", "fields", "nonsense")
        self.assert_config_error(base + "format = raw\ntime_key = ts\n[output.null]\n", "time_key")
        self.assert_config_error(base.replace("topics = ticks", "topics = ^(unclosed") + "[output.null]\n",
                                 "topics", "regular expression")
        self.assert_config_error(base + "rdkafka.security.protocol = ssl\nrdkafka.ssl.ca.location = /nonexistent\n"
                                 "[output.null]\n", "rdkafka.ssl.ca.location")
        self.assert_config_error(f"[input.kafka]\nbrokers = {self.brokers}\ntopics = ticks\n[output.null]\n",
                                 "group_id")


if __name__ == "__main__":
    unittest.main()
