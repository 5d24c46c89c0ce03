"""End to end on real servers: Kafka (librdkafka's mock cluster, 3 brokers,
topic `ticks` of 6 partitions) -> rtproc (in_kafka -> filter_indicators ->
out_postgres with upsert keys + out_redis hash) -> PostgreSQL 15 and Redis,
with ticks produced by an independent client (python3-confluent-kafka) and
results read back with psycopg2 and servers.Resp.

Ticks: 50 symbols, keyed by symbol (so a symbol's ticks stay in order in one
partition), {"symbol", "ts" (epoch ms, strictly increasing per symbol),
"seq" (globally unique), "price", "volume"}.

The mock cluster keeps only about 5 MB per partition and deletes older
messages (docs/kafka.md): a million ticks (about 80 MB) cannot sit in 6
partitions at once. The producer therefore runs beside rtproc and keeps at
most WINDOW messages per partition beyond the group's committed offset
(well under 5 MB); it also checks, each time, that the mock never deleted a
message the group had not committed (that would be a fault of the test, not
of rtproc, and is reported as such). So nothing is lost to retention, and
production is paced by what rtproc commits: a stalled rtproc (killed,
PostgreSQL down) stalls the producer too. Because partitions keep reaching
their end while the producer is pacing, the runs do not use exit_on_eof
until everything is produced; the end is when the group's committed offsets
equal the high watermarks, then SIGTERM (which must exit 0).

Each test gets a fresh mock cluster; PostgreSQL and Redis are shared by the
class (a table and a Redis database per test).

Under the sanitizer build (RTP_SANITIZE=ON) every message count is divided
by 10 (1,000,000 -> 100,000, 300,000 -> 30,000): ASan checks the behaviour
(kills, outage, rebalances, poison), not the volume; RSS bounds are not
asserted there (ASan's shadow memory and quarantine), only printed."""
import functools
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
import unittest

import servers
from harness import KAFKA_MOCK, RTPROC, SANITIZED, SOURCE_DIR, Case, metric, read, rss_kb, wait_for

try:
    from confluent_kafka import Consumer, Producer, TopicPartition
except ImportError:  # the tests skip, saying why
    Producer = None

PARTITIONS = 6
SYMBOLS = [f"S{i:02d}" for i in range(50)]
KEYS = [s.encode() for s in SYMBOLS]
T0_MS = 1_700_000_000_000
SCALE = 10 if SANITIZED else 1
N_FULL = 1_000_000 // SCALE
N_GROUP = 300_000 // SCALE
N_POISON = 200_000 // SCALE
# Messages beyond the committed offset a partition may hold: about 30k
# ticks of ~90 bytes on the wire is under 3 MB, against the mock's ~5 MB.
WINDOW = 20_000
CHUNK = 20_000
# over continuation lines (a line of the file holds at most 198 characters);
# "+" marks a continuation, indented by launch()
COLUMNS = ("seq:bigint, symbol:text, ts:bigint, price:double precision, volume:bigint,\n"
           "+ sma_20:double precision, ema_12:double precision, rsi_14:double precision,\n"
           "+ pct_change:double precision, kafka_partition:integer, kafka_offset:bigint")


def tick(i):
    """(symbol index, fields) of tick i: ts strictly increasing per symbol."""
    s = i % 50
    return s, {"symbol": SYMBOLS[s], "ts": T0_MS + (i // 50) * 1000 + s, "seq": i,
               "price": (10000 + (i * 7919) % 5000) / 100, "volume": 1 + i % 977}


def payload(i):
    s, t = tick(i)
    return (f'{{"symbol":"{t["symbol"]}","ts":{t["ts"]},"seq":{i},"price":{t["price"]!r},'
            f'"volume":{t["volume"]}}}').encode()


_ticks = []


def ticks(n):
    """[(key, value)] of ticks 0..n-1, built once per run."""
    while len(_ticks) < n:
        i = len(_ticks)
        _ticks.append((KEYS[i % 50], payload(i)))
    return _ticks[:n]


def expected_sums(n):
    seq = n * (n - 1) // 2
    vol = sum(1 + i % 977 for i in range(n))
    ts = sum(T0_MS + (i // 50) * 1000 + i % 50 for i in range(n))
    return seq, vol, ts


def assignments(log):
    """Partition sets of the 'assigned' log lines, in order."""
    return [set(int(p) for p in re.findall(r"ticks\[(\d+)\]", m))
            for m in re.findall(r"assigned \d+ partitions?(?: \(incremental\))?: ([^\n]*)", log)]


class GroupView:
    """Committed offsets and watermarks of the topic, read by a consumer that
    never subscribes and so never joins the group."""

    def __init__(self, brokers, group):
        self.c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
        self.parts = [TopicPartition("ticks", p) for p in range(PARTITIONS)]

    def committed(self):
        return [max(tp.offset, 0) for tp in self.c.committed(self.parts, timeout=10)]

    def watermarks(self):
        return [self.c.get_watermark_offsets(tp, timeout=10) for tp in self.parts]

    def close(self):
        self.c.close()


class PacedProducer(threading.Thread):
    """Produces messages [(key, value)] in chunks, never letting a partition
    hold more than `window` messages beyond the group's committed offset
    (see the module docstring). `error` holds what went wrong, if anything."""

    def __init__(self, brokers, group, messages, window=WINDOW, chunk=CHUNK):
        super().__init__(daemon=True)
        self.brokers, self.group, self.messages = brokers, group, messages
        # small runs (ASan) get a small window too, so that rtproc is still
        # in the middle of the stream when the tests act on it
        small = max(500, len(messages) // 40)
        self.window, self.chunk = min(window, small), min(chunk, small)
        self.produced = 0
        self.error = None
        self.stop = False

    def room(self, view):
        last = time.monotonic()
        prev = None
        while not self.stop:
            committed = view.committed()
            marks = view.watermarks()
            for p, ((lo, hi), c) in enumerate(zip(marks, committed)):
                if lo > c:
                    raise RuntimeError(f"the mock deleted uncommitted messages of partition {p} (low watermark "
                                       f"{lo} > committed {c}): the test's pacing is wrong, not rtproc")
            if all(hi - c <= self.window for (_, hi), c in zip(marks, committed)):
                return
            if committed != prev:
                prev, last = committed, time.monotonic()
            elif time.monotonic() - last > 120:
                raise RuntimeError(f"no commit for 120 s (committed {committed}, watermarks {marks})")
            time.sleep(0.05)

    def run(self):
        view = GroupView(self.brokers, self.group)
        p = Producer({"bootstrap.servers": self.brokers, "linger.ms": 5, "enable.idempotence": True,
                      "message.max.bytes": 4_000_000, "queue.buffering.max.messages": 2 * self.chunk})
        try:
            for start in range(0, len(self.messages), self.chunk):
                self.room(view)
                if self.stop:
                    return
                for key, value in self.messages[start:start + self.chunk]:
                    while True:
                        try:
                            p.produce("ticks", value=value, key=key)
                            break
                        except BufferError:
                            p.poll(0.01)
                if p.flush(60):
                    raise RuntimeError("messages left unsent")
                self.produced = min(start + self.chunk, len(self.messages))
        except Exception as e:  # reported by the test thread
            self.error = e
        finally:
            view.close()

    def finish(self, timeout, watch=()):
        """Waits for the end of production; fails early if a process of
        `watch` (rtproc) exits meanwhile."""
        deadline = time.monotonic() + timeout
        while self.is_alive() and time.monotonic() < deadline:
            self.join(0.2)
            for p, err in watch:
                if p.poll() is not None:
                    self.stop = True
                    raise AssertionError(f"rtproc exited with {p.returncode} during production:\n"
                                         f"{read(err)[-3000:]}")
        if self.is_alive():
            self.stop = True
            raise AssertionError(f"production did not finish in {timeout} s ({self.produced} produced)")
        if self.error:
            logs = "".join(f"\n--- {err} (last lines):\n{read(err)[-6000:]}" for _, err in watch)
            raise AssertionError(f"producer: {self.error}{logs}")


@unittest.skipIf(Producer is None, "python3-confluent-kafka is not installed")
class EndToEnd(Case):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(KAFKA_MOCK):
            raise unittest.SkipTest(f"{KAFKA_MOCK} missing (built only with librdkafka-dev)")
        if not os.access(RTPROC, os.X_OK):
            raise unittest.SkipTest(f"{RTPROC} missing")
        cls.pg = servers.Postgres()
        cls.addClassCleanup(cls.pg.cleanup)
        cls.redis = servers.Redis()
        cls.addClassCleanup(cls.redis.cleanup)
        cls.next_db = 1

    def setUp(self):
        super().setUp()
        self.t0 = time.monotonic()
        self.addCleanup(lambda: print(f" [{time.monotonic() - self.t0:.1f} s]", end=" ", flush=True))
        self.mock = servers.KafkaMock(KAFKA_MOCK, {"ticks": PARTITIONS})
        self.addCleanup(self.mock.close)
        self.name = self.id().rsplit(".", 1)[-1]
        self.table = self.name[:40]
        self.group = "g-" + self.name
        self.db = type(self).next_db
        type(self).next_db += 1
        self.procs = []
        self.addCleanup(self.kill_all)

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    # ---- the pipeline ------------------------------------------------------

    def pipeline(self, extra_in="", extra_out="", errors=None):
        errors = errors or """
            [output.errors]
            plugin = stdout
            match = error.*
            """
        return f"""
            [service]
            grace = 10s
            [input.ticks]
            plugin = kafka
            brokers = {self.mock.brokers}
            topics = ticks
            group_id = {self.group}
            time_key = ts
            time_format = epoch_ms
            fields = partition:kafka_partition, offset:kafka_offset
            commit_interval = 200ms
            rdkafka.session.timeout.ms = 3000
            rdkafka.heartbeat.interval.ms = 300
            {extra_in}
            [filter.indicators]
            match = ticks
            key = symbol
            price_field = price
            sma = 20
            ema = 12
            rsi = 14
            pct_change = true
            [output.postgres]
            match = ticks
            conninfo = {self.pg.conninfo}
            table = {self.table}
            create_table = true
            columns = {COLUMNS}
            upsert_keys = symbol, ts
            reconnect_max_wait = 1s
            {extra_out}
            [output.latest]
            plugin = redis
            match = ticks
            port = {self.redis.port}
            db = {self.db}
            mode = hash
            key = tick:{{symbol}}
            {errors}
            """

    def launch(self, conf_text, name):
        """rtproc in the background, stdout and stderr into files of the test."""
        lines = [l.strip() for l in conf_text.splitlines()]
        lines = ["    " + l[1:].strip() if l.startswith("+") else l for l in lines]
        path = self.write(f"{name}.conf", "\n".join(lines) + "\n")
        out = os.path.join(self.dir, f"{name}.out")
        err = os.path.join(self.dir, f"{name}.err")
        with open(out, "ab") as o, open(err, "ab") as e:
            p = subprocess.Popen([RTPROC, "-c", path], stdout=o, stderr=e, stdin=subprocess.DEVNULL,
                                 env=dict(os.environ, **self.pg.env()))
        self.procs.append(p)
        return p, out, err

    def wait_all_committed(self, view, n, timeout):
        def done():
            marks = view.watermarks()
            return sum(hi for _, hi in marks) >= n and view.committed() == [hi for _, hi in marks]
        wait_for(done, timeout, "the group to commit every message")

    def stop(self, p, err, timeout=60):
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=timeout), 0, read(err)[-3000:])
        text = read(err)
        self.assertNotIn(self.pg.password, text)
        return text

    # ---- checks --------------------------------------------------------------

    def check_postgres(self, n):
        """Exactly n rows: seqs 0..n-1 each once (n distinct integers between
        0 and n-1 are all of them), values as produced."""
        got = self.pg.sql(f'SELECT count(*), count(DISTINCT seq), min(seq), max(seq), sum(volume), sum(ts), '
                          f'count(DISTINCT (kafka_partition, kafka_offset)) FROM "{self.table}"')[0]
        seq_sum, vol_sum, ts_sum = expected_sums(n)
        self.assertEqual(got[:4], (n, n, 0, n - 1), "count(*), count(DISTINCT seq), min(seq), max(seq)")
        self.assertEqual((int(got[4]), int(got[5])), (vol_sum, ts_sum), "sum(volume), sum(ts)")
        self.assertEqual(got[6], n, "one row per Kafka message")
        per_symbol = self.pg.sql(f'SELECT count(*) FROM "{self.table}" GROUP BY symbol')
        self.assertEqual(sorted(c for (c,) in per_symbol), [n // 50] * 50)
        bad = self.pg.sql(f'SELECT count(*) FROM "{self.table}" WHERE symbol <> \'S\' || lpad((seq % 50)::text, 2, \'0\')'
                          f' OR ts <> {T0_MS} + (seq / 50) * 1000 + seq % 50 '
                          f' OR price <> (10000 + (seq * 7919) % 5000) / 100.0 OR volume <> 1 + seq % 977')
        self.assertEqual(bad, [(0,)], "every row holds the values of its tick")

    def check_redis(self, n):
        """The hash of every symbol holds its last tick (highest ts), with the
        indicators of the row PostgreSQL has for that tick."""
        db = self.redis.client(db=self.db)
        try:
            keys = db.call("KEYS", "tick:*")
            self.assertEqual(sorted(keys), [f"tick:{s}" for s in SYMBOLS])
            for s in range(50):
                last = n - 50 + s
                _, t = tick(last)
                h = db.hgetall(f"tick:{SYMBOLS[s]}")
                self.assertEqual((h["symbol"], int(h["ts"]), int(h["seq"]), float(h["price"]), int(h["volume"])),
                                 (t["symbol"], t["ts"], last, t["price"], t["volume"]), f"tick:{SYMBOLS[s]}")
                row = self.pg.sql(f'SELECT sma_20, ema_12, rsi_14, pct_change FROM "{self.table}" WHERE seq = %s',
                                  (last,))[0]
                self.assertEqual(tuple(float(h[k]) for k in ("sma_20", "ema_12", "rsi_14", "pct_change")), row)
        finally:
            db.close()

    # ---- tests ---------------------------------------------------------------

    def test_a_every_tick_lands_once_and_redis_holds_the_last(self):
        """N_FULL ticks (1,000,000; 100,000 under ASan) -> exactly that many
        rows; Redis holds each symbol's last tick; indicators are right."""
        n = N_FULL
        producer = PacedProducer(self.mock.brokers, self.group, ticks(n))
        p, out, err = self.launch(self.pipeline(), "a")
        producer.start()
        view = GroupView(self.mock.brokers, self.group)
        self.addCleanup(view.close)
        producer.finish(180, [(p, err)])
        self.wait_all_committed(view, n, 120)
        log = self.stop(p, err)
        elapsed = time.monotonic() - self.t0
        self.assertEqual(read(out), "", "nothing reached the error route")
        self.check_postgres(n)
        self.check_redis(n)
        # the indicators of each symbol's last tick, recomputed here
        for s in (0, 17, 49):
            prices = [tick(i)[1]["price"] for i in range(n - 50 * 20 + s, n, 50)]
            sma = self.pg.sql(f'SELECT sma_20 FROM "{self.table}" WHERE seq = %s', (n - 50 + s,))[0][0]
            self.assertAlmostEqual(sma, sum(prices) / 20, delta=1e-9 * sma)
        r = functools.partial(metric, log)
        self.assertEqual(r("input:ticks", "messages_consumed"), n, "a clean run reads every message once")
        self.assertEqual(r("filter:indicators", "late_records"), 0)
        print(f"\n  {n:,} ticks in {elapsed:.1f} s end to end ({n / elapsed:,.0f}/s with the producer)", end=" ")

    def test_b_three_sigkills_lose_nothing(self):
        """SIGKILL at three random moments (seeded; the seed is printed, set
        RTP_E2E_SEED to replay it): each once a random share (5-80%) of the
        stream is committed, plus a random delay up to 0.5 s; a restart after
        each, then the run to the end: exactly N_FULL distinct rows, every
        seq present."""
        n = N_FULL
        seed = int(os.environ.get("RTP_E2E_SEED", time.time_ns() % 1_000_000))
        rng = random.Random(seed)
        print(f"\n  seed {seed}", end=" ")
        producer = PacedProducer(self.mock.brokers, self.group, ticks(n))
        producer.start()
        view = GroupView(self.mock.brokers, self.group)
        self.addCleanup(view.close)
        # random moments: once a random share of the stream is committed (so
        # that they fall inside it whatever the speed), plus a random delay
        targets = sorted(rng.uniform(0.05, 0.8) for _ in range(3))
        for k in range(3):
            p, _, err = self.launch(self.pipeline(), f"b{k}")
            wait_for(lambda: sum(view.committed()) >= targets[k] * n or p.poll() is not None, 120,
                     f"{targets[k]:.0%} committed")
            delay = rng.uniform(0, 0.5)
            time.sleep(delay)
            self.assertIsNone(p.poll(), read(err)[-3000:])
            p.kill()
            p.wait()
            done = sum(view.committed())
            print(f"\n  kill {k + 1}: {delay:.2f} s after {targets[k]:.0%} was committed; {done:,} of {n:,} "
                  f"committed at the kill", end=" ")
            self.assertLess(done, n, "the kill came too late to test anything")
        p, out, err = self.launch(self.pipeline(), "b-final")
        producer.finish(240, [(p, err)])
        self.wait_all_committed(view, n, 120)
        log = self.stop(p, err)
        self.assertEqual(read(out), "", "nothing reached the error route")
        self.check_postgres(n)
        self.check_redis(n)
        print(f"\n  last run: {metric(log, 'input:ticks', 'messages_consumed'):,} messages", end=" ")

    def test_c_postgres_down_for_10s_loses_nothing_and_memory_stays_bounded(self):
        """PostgreSQL stopped for 10 s once 40% is committed, then started:
        exact counts; rtproc's RSS sampled during the outage stays under
        150 MB: mem_limit 8M of batches + librdkafka's prefetch (16 MB,
        queued.max.messages.kbytes) + its fetch buffers + the filter's state
        (50 series, a few KB) + the binary and libraries (~15 MB); a leak of
        the paused input or of the held batches would break it."""
        n = N_FULL
        producer = PacedProducer(self.mock.brokers, self.group, ticks(n))
        p, out, err = self.launch(self.pipeline(extra_in="mem_limit = 8M"), "c")
        producer.start()
        view = GroupView(self.mock.brokers, self.group)
        self.addCleanup(view.close)
        wait_for(lambda: sum(view.committed()) >= 0.4 * n or p.poll() is not None, 120, "40% committed")
        before = sum(view.committed())
        self.pg.stop()
        try:
            peak = 0
            settled = None  # committed once what was written before the stop is committed (commit_interval 200ms)
            t_stop = time.monotonic()
            while time.monotonic() - t_stop < 10:
                peak = max(peak, rss_kb(p.pid))
                if settled is None and time.monotonic() - t_stop > 3:
                    settled = sum(view.committed())
                time.sleep(0.1)
            self.assertIsNone(p.poll(), read(err)[-3000:])
            during = sum(view.committed())
        finally:
            self.pg.start()
        print(f"\n  PostgreSQL down at {before:,} committed, {during:,} after 10 s; "
              f"peak RSS during the outage {peak / 1024:.1f} MB", end=" ")
        self.assertEqual(during, settled, "no offset is committed while PostgreSQL is down")
        self.assertLess(during, n, "the outage began before the end of the stream")
        if not SANITIZED:
            self.assertLess(peak, 150 * 1024, f"RSS {peak} kB while PostgreSQL was down")
        producer.finish(240, [(p, err)])
        self.wait_all_committed(view, n, 120)
        log = self.stop(p, err)
        self.assertEqual(read(out), "", "nothing reached the error route")
        self.assertIn("reconnecting", log)
        self.assertGreaterEqual(metric(log, "output:postgres", "pg_reconnects"), 1)
        self.check_postgres(n)
        self.check_redis(n)

    def test_d_two_processes_share_the_group_and_one_takes_over_after_a_kill(self):
        """Two rtproc in one group (N_GROUP ticks: 300,000, 30,000 under
        ASan): both are assigned partitions and commit offsets of their own
        (commits follow delivery); SIGKILL of one moves its partitions to the
        other; the totals stay exact."""
        n = N_GROUP
        producer = PacedProducer(self.mock.brokers, self.group, ticks(n), window=WINDOW // 2, chunk=CHUNK // 2)
        view = GroupView(self.mock.brokers, self.group)
        self.addCleanup(view.close)
        conf = self.pipeline()
        a, out_a, err_a = self.launch(conf, "a")
        time.sleep(0.5)
        b, out_b, err_b = self.launch(conf, "b")

        def split():
            la, lb = assignments(read(err_a)), assignments(read(err_b))
            return bool(la and lb and lb[-1] and la[-1] and not la[-1] & lb[-1]
                        and la[-1] | lb[-1] == set(range(PARTITIONS)))
        wait_for(split, 60, "the partitions to be split between the two processes")
        mine_a, mine_b = assignments(read(err_a))[-1], assignments(read(err_b))[-1]
        start = view.committed()
        producer.start()  # now, so that both members have their share from the start
        wait_for(lambda: all(any(view.committed()[q] > start[q] for q in mine) for mine in (mine_a, mine_b)),
                 60, "both processes to deliver and commit in their partitions")
        self.assertIsNone(b.poll(), read(err_b)[-3000:])
        self.assertEqual(assignments(read(err_b))[-1], mine_b, "no rebalance meanwhile")
        at_kill = sum(view.committed())
        b.kill()
        b.wait()
        wait_for(lambda: assignments(read(err_a))[-1] == set(range(PARTITIONS)), 60,
                 "A to take over B's partitions")
        producer.finish(180, [(a, err_a)])
        self.wait_all_committed(view, n, 120)
        log = self.stop(a, err_a)
        print(f"\n  A had {sorted(mine_a)}, B {sorted(mine_b)}; B killed at {at_kill:,} of {n:,} committed; "
              f"A consumed {metric(log, 'input:ticks', 'messages_consumed'):,} messages", end=" ")
        self.assertLess(at_kill, n, "the kill came too late to test anything")
        self.assertEqual(read(out_a) + read(out_b), "", "nothing reached the error route")
        self.check_postgres(n)
        self.check_redis(n)

    def test_e_poison_messages_reach_the_error_output_with_their_bytes(self):
        """Invalid JSON, a 1 MB blob, binary, a non-object, a tick without
        its time, a too-large valid tick, mixed among N_POISON good ticks
        (200,000; 20,000 under ASan) in their symbols' partitions: every good
        tick lands in PostgreSQL, every bad message reaches the error output
        (a Redis stream: binary-safe, so its bytes are compared exactly) once,
        and the group commits past all of them."""
        n = N_POISON
        rng = random.Random(4)
        kinds = [b'{"symbol": "S01", "ts": 1, oops', b"x" * 1_000_000, b"\x00\x01\x02\xff\xfebinary\x80",
                 b"[1, 2, 3]", b'{"symbol":"S02","seq":-1,"price":1.5,"volume":1}',
                 b'{"symbol":"S03","ts":' + str(T0_MS).encode() + b',"pad":"' + b"p" * 1_100_000 + b'"}',
                 b"", b'{"symbol":"S04","ts":"yesterday"}', b'{"symbol":"\xc3\x28","ts":1700000000000}']
        bad = [kinds[k % len(kinds)] for k in range(2 * len(kinds))]
        bad = [v for v in bad if len(v) < 100_000] + [kinds[1], kinds[5]]  # one of each big one
        good = ticks(n)
        positions = sorted(rng.sample(range(1, n), len(bad)))
        messages, prev = [], 0
        for pos, value in zip(positions, bad):
            messages += good[prev:pos]
            messages.append((KEYS[rng.randrange(50)], value))
            prev = pos
        messages += good[prev:]
        producer = PacedProducer(self.mock.brokers, self.group, messages, window=WINDOW // 4, chunk=CHUNK // 4)
        view = GroupView(self.mock.brokers, self.group)
        self.addCleanup(view.close)
        errors = f"""
            [output.errors]
            plugin = redis
            match = error.*
            port = {self.redis.port}
            db = {self.db}
            mode = stream
            key = errors
            max_len = 0
            """
        p, out, err = self.launch(self.pipeline(errors=errors), "e")
        producer.start()
        producer.finish(180, [(p, err)])
        self.wait_all_committed(view, len(messages), 120)
        log = self.stop(p, err)
        self.check_postgres(n)
        self.check_redis(n)
        db = RawResp("127.0.0.1", self.redis.port, db=self.db)
        try:
            entries = db.call("XRANGE", "errors", "-", "+")
        finally:
            db.close()
        got = [dict(zip(e[1][0::2], e[1][1::2])) for e in entries]
        self.assertEqual(sorted(g[b"raw"] for g in got), sorted(bad), "every bad message once, with its bytes")
        self.assertEqual({g[b"instance"] for g in got}, {b"ticks"})
        reasons = {g[b"raw"]: g[b"error"].decode() for g in got}
        self.assertIn("invalid JSON", reasons[kinds[0]])
        self.assertIn("larger than max_message_size", reasons[kinds[5]])
        self.assertIn("time_key", reasons[kinds[4]])
        self.assertEqual(metric(log, "input:ticks", "messages_errored"), len(bad))
        print(f"\n  {len(bad)} bad messages among {n:,} good ones", end=" ")

    def test_f_the_shipped_kafka_to_postgres_pipeline_runs_as_documented(self):
        """conf/kafka_to_postgres.conf, unchanged, with the servers' addresses
        from the environment variables it documents: every tick becomes a
        row with its indicators, each symbol's latest state is a Redis hash
        with a TTL, alerts are published on alerts:<symbol>, and nothing
        reaches the error output."""
        n = 30_000 // SCALE
        sub = servers.Resp("127.0.0.1", self.redis.port)
        sub.sock.settimeout(None)
        self.assertEqual(sub.call("PSUBSCRIBE", "alerts:*")[0], "psubscribe")
        alerts = []

        def listen():
            try:
                while True:
                    kind, _, channel, message = sub.reply()
                    alerts.append((channel, json.loads(message)))
            except (OSError, ValueError):
                pass
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        producer = PacedProducer(self.mock.brokers, self.group, ticks(n))
        producer.start()
        env = dict(os.environ, **self.pg.env(), KAFKA_BROKERS=self.mock.brokers, KAFKA_GROUP=self.group,
                   PGHOST="127.0.0.1", PGPORT=str(self.pg.port), PGDATABASE=self.pg.dbname, PGUSER=self.pg.user,
                   REDIS_HOST="127.0.0.1", REDIS_PORT=str(self.redis.port))
        out, err = os.path.join(self.dir, "f.out"), os.path.join(self.dir, "f.err")
        with open(out, "wb") as o, open(err, "wb") as e:
            p = subprocess.Popen([RTPROC, "-c", os.path.join(SOURCE_DIR, "conf/kafka_to_postgres.conf")],
                                 stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=env)
        self.procs.append(p)
        view = GroupView(self.mock.brokers, self.group)
        self.addCleanup(view.close)
        producer.finish(120, [(p, err)])
        self.wait_all_committed(view, n, 120)
        log = self.stop(p, err)
        published = metric(log, "output:alerts", "records_out")
        # Redis answered every PUBLISH before rtproc acknowledged it; the
        # listener may still be reading them
        wait_for(lambda: len(alerts) >= published, 10, f"{published} alerts at the subscriber")
        sub.close()
        listener.join(10)
        self.assertEqual(read(out), "", "nothing reached the error route")
        got = self.pg.sql("SELECT count(*), count(DISTINCT (symbol, ts)), count(sma_50), count(macd_signal), "
                          "count(vwap) FROM ticks")[0]
        # sma_50 from a symbol's 50th tick, the MACD signal from its 34th
        # (the 9th MACD value, itself from the 26th tick)
        self.assertEqual(got, (n, n, n - 49 * 50, n - 33 * 50, n))
        db = self.redis.client()
        try:
            last = n - 50
            h = db.hgetall("ticker:S00")
            self.assertEqual((int(h["ts"]), float(h["price"])), (tick(last)[1]["ts"], tick(last)[1]["price"]))
            self.assertIn("rsi_14", h)
            self.assertGreater(db.call("TTL", "ticker:S00"), 86000)
        finally:
            db.close()
        self.assertGreater(published, 0, "the synthetic prices move more than 2% often")
        self.assertEqual(len(alerts), published, "every published alert was received")
        for channel, a in alerts:
            self.assertEqual(channel, f"alerts:{a['symbol']}")
            self.assertIn(a["rule"], ("pct_change", "volume_spike", "rsi"))
        print(f"\n  {n:,} ticks, {published} alerts published", end=" ")


class RawResp(servers.Resp):
    """Resp with bulk strings as bytes (error records carry binary)."""

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        self.buf = line + b"\r\n" + self.buf
        return super().reply()


if __name__ == "__main__":
    unittest.main()
