"""out_redis against a real redis-server: every mode with exact contents,
templates, ttl, AUTH and SELECT, unix socket, rejected records, and a
restart of Redis in the middle of a paced replay. Contents are read back
with an independent RESP client (servers.Resp)."""
import json
import os
import re
import threading
import time
import unittest

import servers
from harness import Case, read, wait_for


def make_csv(path, rows, symbols=5):
    with open(path, "w") as f:
        f.write("seq,symbol,price,volume,note\n")
        for i in range(rows):
            f.write(f"{i},S{i % symbols},{100 + i * 0.25},{i * 10},n{i}\n")


def expected(rows, symbols=5):
    return [{"seq": i, "symbol": f"S{i % symbols}", "price": 100 + i * 0.25, "volume": i * 10, "note": f"n{i}"}
            for i in range(rows)]


def as_text(v):
    return repr(v) if isinstance(v, float) else str(v)


class Redis(Case):
    @classmethod
    def setUpClass(cls):
        cls.redis = servers.Redis(password="pw-redis")
        cls.addClassCleanup(cls.redis.cleanup)

    def setUp(self):
        super().setUp()
        self.db = self.redis.client(db=3)
        self.db.call("FLUSHALL")

    def tearDown(self):
        self.db.close()
        super().tearDown()

    def run_redis(self, rows, opts, extra="", symbols=5):
        path = os.path.join(self.dir, "in.csv")
        make_csv(path, rows, symbols)
        r = self.rtproc(conf=f"""
            [input.csv]
            path = {path}
            exit_on_eof = true
            batch_size = 64
            {extra}
            [output.redis]
            match = csv
            port = {self.redis.port}
            password = pw-redis
            db = 3
            {opts}
            [output.stdout]
            match = error.*
            """)
        self.assertEqual(r.code, 0, r.err)
        self.assertNotIn("pw-redis", r.err)
        return r

    def test_hash_keeps_the_latest_fields_per_key_with_ttl(self):
        self.run_redis(1000, "mode = hash\nkey = ticker:{symbol}\nttl = 1m")
        rows = expected(1000)
        self.assertEqual(sorted(self.db.call("KEYS", "*")), [f"ticker:S{i}" for i in range(5)])
        for last in rows[-5:]:
            key = f"ticker:{last['symbol']}"
            self.assertEqual(self.db.hgetall(key), {k: as_text(v) for k, v in last.items()})
            ttl = self.db.call("PTTL", key)
            self.assertTrue(50_000 < ttl <= 60_000, ttl)

    def test_stream_entries_are_exact_and_trimmed_with_max_len(self):
        self.run_redis(600, "mode = stream\nkey = ticks:{symbol}\nmax_len = 0", symbols=2)
        rows = expected(600, symbols=2)
        for sym in ("S0", "S1"):
            entries = self.db.call("XRANGE", f"ticks:{sym}", "-", "+")
            got = [dict(zip(e[1][0::2], e[1][1::2])) for e in entries]
            self.assertEqual(got, [{k: as_text(v) for k, v in r.items()} for r in rows if r["symbol"] == sym])
        self.db.call("FLUSHALL")
        self.run_redis(5000, "mode = stream\nkey = capped\nmax_len = 100")
        n = self.db.call("XLEN", "capped")
        self.assertTrue(100 <= n < 1000, n)  # MAXLEN ~ trims whole nodes: about 100
        last = self.db.call("XREVRANGE", "capped", "+", "-", "COUNT", 1)[0][1]
        self.assertEqual(last[:2], ["seq", "4999"])

    def test_publish_sends_each_record_as_json_on_its_channel(self):
        sub = self.redis.client()
        sub.send("PSUBSCRIBE", "alerts:*")
        self.assertEqual(sub.reply()[0], "psubscribe")
        got = []

        def listen():
            while len(got) < 300:
                msg = sub.reply()
                got.append((msg[2], json.loads(msg[3])))

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        self.run_redis(300, "mode = publish\nkey = alerts:{symbol}")
        t.join(timeout=20)
        sub.close()
        self.assertEqual(got, [(f"alerts:{r['symbol']}", r) for r in expected(300)])

    def test_list_keeps_the_last_max_len_items_newest_first(self):
        self.run_redis(500, "mode = list\nkey = last:{symbol}\nmax_len = 4")
        rows = expected(500)
        for sym in ("S0", "S3"):
            items = [json.loads(x) for x in self.db.call("LRANGE", f"last:{sym}", 0, -1)]
            mine = [r for r in rows if r["symbol"] == sym]
            self.assertEqual(items, list(reversed(mine[-4:])))

    def test_templates_literal_braces_and_unix_socket(self):
        path = os.path.join(self.dir, "in.csv")
        make_csv(path, 20)
        r = self.rtproc(conf=f"""
            [input.csv]
            path = {path}
            exit_on_eof = true
            [output.redis]
            unix_socket = {self.redis.socket}
            password = pw-redis
            db = 3
            key = {{{{x}}}}:{{symbol}}/{{seq}}
            """)
        self.assertEqual(r.code, 0, r.err)
        self.assertEqual(len(self.db.call("KEYS", "{x}:S*")), 20)
        self.assertEqual(self.db.hgetall("{x}:S2/7")["note"], "n7")

    def test_missing_key_field_and_wrong_type_go_to_the_error_route(self):
        self.db.call("SET", "ticker:S1", "a string, not a hash")
        path = self.write("in.csv", "symbol,price\nS0,1\n,2\nS1,3\nS2,4\n")
        r = self.rtproc(conf=f"""
            [input.csv]
            path = {path}
            exit_on_eof = true
            [output.redis]
            match = csv
            port = {self.redis.port}
            password = pw-redis
            db = 3
            key = ticker:{{symbol}}
            [output.stdout]
            match = error.*
            """)
        self.assertEqual(r.code, 0, r.err)
        errors = sorted(r.lines(), key=lambda e: e["price"])
        self.assertEqual([e["price"] for e in errors], [2, 3])
        self.assertIn("field 'symbol' of the key template is missing", errors[0]["error"])
        self.assertIn("WRONGTYPE", errors[1]["error"])
        self.assertEqual(self.db.hgetall("ticker:S0"), {"symbol": "S0", "price": "1"})
        self.assertEqual(self.db.hgetall("ticker:S2"), {"symbol": "S2", "price": "4"})

    def test_wrong_password_keeps_retrying_without_writing(self):
        path = os.path.join(self.dir, "in.csv")
        make_csv(path, 10)
        p = self.start(f"""
            [input.csv]
            path = {path}
            [output.redis]
            port = {self.redis.port}
            password = not-the-password
            key = k:{{seq}}
            reconnect_max_wait = 200ms
            """)
        time.sleep(1.5)
        p.terminate()
        _, err = p.communicate(timeout=30)
        self.assertIn(b"AUTH failed", err)
        self.assertNotIn(b"not-the-password", err)
        self.assertEqual(self.db.call("DBSIZE"), 0)

    def test_a_record_refused_for_memory_gets_its_ttl_and_trim_once_written(self):
        """Redis at maxmemory refuses HSET and LPUSH with OOM but accepts the
        PEXPIRE and LTRIM pipelined behind them (on a key that does not exist
        yet): those must be sent again after the write they follow, or the
        keys end up without expiry and the lists untrimmed."""
        admin = self.redis.client()
        self.addCleanup(admin.close)
        self.addCleanup(admin.call, "CONFIG", "SET", "maxmemory", "0")
        admin.call("SET", "filler", "x" * 2_000_000)
        used = int(re.search(r"used_memory:(\d+)", admin.call("INFO", "memory")).group(1))
        admin.call("CONFIG", "SET", "maxmemory-policy", "noeviction")
        admin.call("CONFIG", "SET", "maxmemory", str(used - 1_000_000))  # over the limit: writes are refused
        path = os.path.join(self.dir, "in.csv")
        make_csv(path, 20, symbols=2)
        err = os.path.join(self.dir, "err.log")
        server = f"plugin = redis\nport = {self.redis.port}\npassword = pw-redis\ndb = 3\nreconnect_max_wait = 200ms"
        with open(err, "w") as e:
            p = self.start(f"""
                [input.csv]
                path = {path}
                exit_on_eof = true
                [output.h]
                {server}
                key = h:{{seq}}
                ttl = 10m
                [output.l]
                {server}
                mode = list
                key = l:{{symbol}}
                max_len = 3
                """, stderr=e)
            self.addCleanup(p.kill)
            wait_for(lambda: "OOM" in read(err), 30, "Redis to refuse for memory")
            time.sleep(0.5)
            admin.call("DEL", "filler")
            admin.call("CONFIG", "SET", "maxmemory", "0")
            p.wait(timeout=60)
        self.assertEqual(p.returncode, 0, read(err)[-2000:])
        ttls = [self.db.call("PTTL", f"h:{i}") for i in range(20)]
        self.assertTrue(all(500_000 < t <= 600_000 for t in ttls), f"PTTL of h:0..19: {ttls}")
        self.assertEqual([self.db.call("LLEN", f"l:S{s}") for s in range(2)], [3, 3])

    def test_bad_template_is_a_configuration_error(self):
        self.assert_config_error("[input.csv]\npath = x.csv\n[output.redis]\nkey = a:{symbol\n",
                                 "[output.redis] key: unclosed '{'")
        self.assert_config_error("[input.csv]\npath = x.csv\n[output.redis]\nkey = a\nmode = list\nttl = 1s\n",
                                 "ttl: applies to mode = hash only")


class RedisOutage(Case):
    def test_a_restart_of_redis_in_the_middle_loses_nothing(self):
        redis = servers.Redis(persist=True)
        self.addCleanup(redis.cleanup)
        path = os.path.join(self.dir, "in.csv")
        rows = 6000
        make_csv(path, rows)
        # Keyed hashes: a command Redis executed but could not answer before
        # it stopped is sent again (at-least-once) and overwrites itself.
        p = self.start(f"""
            [input.csv]
            path = {path}
            exit_on_eof = true
            rate = 1500
            batch_size = 50
            [output.redis]
            port = {redis.port}
            key = row:{{seq}}
            reconnect_max_wait = 500ms
            """)
        self.addCleanup(p.kill)
        time.sleep(1.5)
        redis.stop()
        time.sleep(2.0)
        redis.start()
        _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err.decode())
        self.assertIn(b"reconnecting", err)
        db = redis.client()
        self.assertEqual(db.call("DBSIZE"), rows)
        for i in (0, 1234, rows - 1):
            self.assertEqual(db.hgetall(f"row:{i}")["note"], f"n{i}")
        db.close()


if __name__ == "__main__":
    unittest.main()
