"""out_postgres against a real PostgreSQL 15: exact rows and values, upsert
replays without duplicates, rows PostgreSQL refuses isolated to the error
route, SQL injection attempts inert, and an outage in the middle of a paced
replay. Results are read back with psycopg2, independently of libpq's use
in rtproc."""
import datetime
import os
import socket
import time
import unittest

import servers
from harness import Case, SANITIZED, metric, rss_kb

UTC = datetime.timezone.utc
T0 = datetime.datetime(2023, 2, 1, tzinfo=UTC)


def make_csv(path, rows, symbols=50, price=lambda i: 100 + i * 0.25):
    with open(path, "w") as f:
        f.write("symbol,ts,price,volume\n")
        for i in range(rows):
            ts = (T0 + datetime.timedelta(minutes=i // symbols)).strftime("%Y-%m-%dT%H:%M:%SZ")
            f.write(f"S{i % symbols},{ts},{price(i)},{i}\n")


def expected(rows, symbols=50, price=lambda i: 100 + i * 0.25):
    return sorted((f"S{i % symbols}", T0 + datetime.timedelta(minutes=i // symbols), price(i), i)
                  for i in range(rows))


TICKS = "symbol:text, ts:timestamptz, price:double precision, volume:bigint"


class Postgres(Case):
    @classmethod
    def setUpClass(cls):
        cls.pg = servers.Postgres()
        cls.addClassCleanup(cls.pg.cleanup)

    def setUp(self):
        super().setUp()
        self.table = self.id().rsplit(".", 1)[-1][:40]

    def run_pg(self, csv, opts, extra_in="types = ts:time, symbol:string", extra_out="", code=0):
        r = self.rtproc(conf=f"""
            [input.csv]
            path = {csv}
            exit_on_eof = true
            {extra_in}
            [output.postgres]
            match = csv
            conninfo = {self.pg.conninfo}
            {opts}
            [output.stdout]
            match = error.*
            {extra_out}
            """, env=self.pg.env())
        self.assertEqual(r.code, code, r.err)
        self.assertNotIn(self.pg.password, r.err)
        return r

    def rows(self, table=None, cols="symbol, ts, price, volume"):
        return self.pg.sql(f'SELECT {cols} FROM "{table or self.table}" ORDER BY 1, 2')

    def test_upsert_writes_exact_rows_and_a_replay_adds_no_duplicates(self):
        csv = os.path.join(self.dir, "in.csv")
        make_csv(csv, 5000)
        opts = f"table = {self.table}\ncreate_table = true\ncolumns = {TICKS}\nupsert_keys = symbol, ts"
        r = self.run_pg(csv, opts)
        self.assertEqual(r.out, "")
        self.assertEqual(self.rows(), expected(5000))
        self.assertEqual(r.metric("output:postgres", "pg_rows_written"), 5000)
        # replay with changed prices: same keys, new values, no new rows
        make_csv(csv, 5000, price=lambda i: 1 + i)
        self.run_pg(csv, opts + "\nbatch_size = 700\nmax_inflight = 4", extra_in="types = ts:time\nbatch_size = 300")
        self.assertEqual(self.rows(), expected(5000, price=lambda i: 1 + i))
        pk = self.pg.sql("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                         "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
                         "ORDER BY a.attnum", (self.table,))
        self.assertEqual(pk, [("symbol",), ("ts",)])

    def test_duplicate_keys_in_one_transaction_keep_the_last_row(self):
        csv = self.write("in.csv", "symbol,ts,price,volume\n" + "".join(
            f"A,2023-02-01T00:00:00Z,{i},{i}\n" for i in range(10)))
        self.run_pg(csv, f"table = {self.table}\ncreate_table = true\ncolumns = {TICKS}\nupsert_keys = symbol, ts")
        self.assertEqual(self.rows(), [("A", T0, 9.0, 9)])

    def test_plain_copy_keeps_types_escapes_and_nulls(self):
        self.pg.sql(f'CREATE TABLE "{self.table}" (id bigint, name text, x double precision, ok boolean, '
                    'at timestamptz, missing text, n numeric(12,4))')
        csv = self.write("in.csv", 'id,label,x,ok,at,n\n'
                         '1,"tab\there",0.1,true,2023-02-01T00:00:00.123456Z,1.5\n'
                         '2,"line\nbreak \\N back\\slash ""q""",-1e-300,false,1970-01-01T00:00:00Z,\n'
                         '3,été ✓,1e300,,1969-12-31T23:59:59.999999Z,-2\n')
        self.run_pg(csv, f"table = {self.table}\ncolumns = id:bigint, label:name:text, x, ok, at, missing, "
                         "n:numeric(12,4)",
                    extra_in="types = ok:bool, at:time, x:double")
        got = self.pg.sql(f'SELECT id, name, x, ok, at, missing, n::text FROM "{self.table}" ORDER BY id')
        self.assertEqual(got, [
            (1, "tab\there", 0.1, True, datetime.datetime(2023, 2, 1, 0, 0, 0, 123456, tzinfo=UTC), None, "1.5000"),
            (2, 'line\nbreak \\N back\\slash "q"', -1e-300, False, datetime.datetime(1970, 1, 1, tzinfo=UTC),
             None, None),
            (3, "été ✓", 1e300, None, datetime.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), None,
             "-2.0000"),
        ])

    def test_without_columns_the_first_record_names_them(self):
        self.pg.sql(f'CREATE TABLE "{self.table}" (id serial, symbol text, ts timestamptz, '
                    'price double precision, volume bigint)')
        csv = os.path.join(self.dir, "in.csv")
        make_csv(csv, 300)
        self.run_pg(csv, f"table = public.{self.table}")
        self.assertEqual(self.rows(), expected(300))
        self.assertEqual(self.pg.sql(f'SELECT max(id) FROM "{self.table}"'), [(300,)])

    def test_rows_postgres_refuses_go_to_the_error_route_and_the_rest_lands(self):
        self.pg.sql(f'CREATE TABLE "{self.table}" (symbol text NOT NULL, price double precision CHECK (price > 0), '
                    'volume bigint)')
        lines, bad = [], {}
        for i in range(2000):
            price, volume = f"{1 + i}", f"{i}"
            if i % 397 == 5:
                price = "-1"
                bad[i] = "violates check constraint"
            elif i % 501 == 7:
                volume = "12abc"
                bad[i] = 'invalid input syntax for type bigint: "12abc"'
            lines.append(f"S{i},{price},{volume}\n")
        csv = self.write("in.csv", "symbol,price,volume\n" + "".join(lines))
        # the last: halves of a split transaction run side by side on three connections
        for keys in ("", "\ncolumns = symbol:text, price:double precision, volume:text\nupsert_keys = symbol",
                     "\nconnections = 3"):
            with self.subTest(opts=keys):
                self.pg.sql(f'TRUNCATE "{self.table}"')
                if "upsert_keys" in keys:
                    self.pg.sql(f'ALTER TABLE "{self.table}" ADD PRIMARY KEY (symbol)')
                r = self.run_pg(csv, f"table = {self.table}{keys}", extra_in="types = volume:string\nbatch_size = 500")
                errors = {int(e["symbol"][1:]): e for e in r.lines()}
                self.assertEqual(sorted(errors), sorted(bad))
                for i, e in errors.items():
                    self.assertIn(bad[i], e["error"])
                    self.assertEqual(e["instance"], "postgres")
                got = self.pg.sql(f'SELECT symbol FROM "{self.table}"')
                self.assertEqual(sorted(int(s[1:]) for (s,) in got), sorted(set(range(2000)) - set(bad)))
                self.assertEqual(r.metric("output:postgres", "pg_rows_rejected"), len(bad))
                # the server found them: failed transactions were split, not rows screened by us
                self.assertGreater(r.metric("output:postgres", "pg_bisections"), 0)

    def test_sql_in_values_and_in_configured_names_is_inert(self):
        self.pg.sql("CREATE TABLE victim (x int)")
        table = 'evil"; DROP TABLE victim; --'
        column = "c'); DROP TABLE victim; --"
        values = ["'); DROP TABLE victim; --", '"; DROP TABLE victim; --', "\\.\n\\.", "a\\", "x\tDROP"]
        csv = self.write("in.csv", "k,v\n" + "".join(f'{i},"{v.replace(chr(34), chr(34) * 2)}"\n'
                                                     for i, v in enumerate(values)))
        self.run_pg(csv, f"table = {table}\ncreate_table = true\ncolumns = k:bigint, v:{column}:text\n"
                         "upsert_keys = k", extra_in="")
        self.assertEqual(self.pg.sql("SELECT count(*) FROM victim"), [(0,)])
        got = self.pg.sql('SELECT "{}" FROM "{}" ORDER BY k'.format(column, table.replace('"', '""')))
        self.assertEqual([v for (v,) in got], values)
        self.assert_config_error(f"[input.csv]\npath = {csv}\n[output.postgres]\nconninfo = host=x\ntable = t\n"
                                 "create_table = true\ncolumns = k:int); DROP TABLE victim; --",
                                 "is not a type name")

    def test_flush_interval_gathers_batches_into_fewer_transactions(self):
        csv = os.path.join(self.dir, "in.csv")
        make_csv(csv, 2000)
        opts = f"table = {self.table}\ncreate_table = true\ncolumns = {TICKS}\nbatch_size = 1000\nmax_inflight = 100\n"
        # 20-row batches every 5 ms for 0.5 s: without a linger each goes
        # (with what waited behind it) as soon as a transaction ends
        paced = "types = ts:time\nbatch_size = 20\nmem_limit = 256M\nrate = 4000"
        counts = {}
        for linger in ("", "flush_interval = 300ms"):
            with self.subTest(linger=linger):
                self.pg.sql(f'DROP TABLE IF EXISTS "{self.table}"')
                r = self.run_pg(csv, opts + linger, extra_in=paced)
                self.assertEqual(self.rows(), expected(2000))
                self.assertEqual(r.metric("output:postgres", "pg_rows_written"), 2000)
                counts[linger] = r.metric("output:postgres", "pg_transactions")
        print(f"\n  transactions without flush_interval {counts['']}, with 300ms {counts['flush_interval = 300ms']}",
              end=" ")
        self.assertGreater(counts[""], 20)
        self.assertLessEqual(counts["flush_interval = 300ms"], 5, "up to 1000 rows or 300 ms per transaction")

    def test_configuration_errors(self):
        base = "[input.csv]\npath = x.csv\n[output.postgres]\n"
        self.assert_config_error(base + "conninfo = host=x\ntable = t\ncreate_table = true\n",
                                 "create_table = true needs columns")
        self.assert_config_error(base + "conninfo = nonsense\ntable = t\n", "[output.postgres] conninfo:")
        self.assert_config_error(base + "conninfo = host=x\ntable = a.b.c\n", "[output.postgres] table:")
        self.assert_config_error(base + "conninfo = host=x\ntable = t\ncolumns = a:text\nupsert_keys = b\n",
                                 "'b' is not one of the columns")
        self.assert_config_error(base + "conninfo = host=x\ntable = t\ncolumns = a:text\nupsert_keys = a\n"
                                 "connections = 2\n", "[output.postgres] connections: must be 1 with upsert_keys")
        self.assert_config_error(base + "conninfo = host=x\ntable = t\nconnections = 0\n",
                                 "[output.postgres] connections: must be between 1 and 64")

    def test_password_in_conninfo_is_never_logged_and_connect_timeout_applies(self):
        silent = socket.socket()  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        self.addCleanup(silent.close)
        csv = os.path.join(self.dir, "in.csv")
        make_csv(csv, 10)
        p = self.start(f"""
            [input.csv]
            path = {csv}
            [output.postgres]
            conninfo = host=127.0.0.1 port={silent.getsockname()[1]} password=hunter2-secret
            table = t
            connect_timeout = 300ms
            reconnect_max_wait = 200ms
            """)
        time.sleep(1.5)
        p.terminate()
        _, err = p.communicate(timeout=30)
        self.assertIn(b"connecting timed out after 300 ms", err)
        self.assertIn(b"conninfo holds a password", err)
        self.assertNotIn(b"hunter2", err)


class PostgresOutage(Case):
    def start_upserts(self, pg, csv, extra_in, extra_out, keys="upsert_keys = symbol, ts", service=""):
        """rtproc in the background: csv -> upserts (or, keys = "", plain
        COPY) into table ticks."""
        p = self.start(f"""
            [service]
            {service}
            [input.csv]
            path = {csv}
            exit_on_eof = true
            types = ts:time
            {extra_in}
            [output.postgres]
            conninfo = {pg.conninfo}
            table = ticks
            create_table = true
            columns = {TICKS}
            {keys}
            {extra_out}
            """, env=dict(os.environ, **pg.env()))
        self.addCleanup(p.kill)
        return p

    def test_postgres_stopped_for_10s_mid_replay_loses_nothing_and_memory_stays_bounded(self):
        pg = servers.Postgres()
        self.addCleanup(pg.cleanup)
        csv = os.path.join(self.dir, "in.csv")
        rows = 30000
        make_csv(csv, rows)
        # 10 s at 2000 rows/s is far more than mem_limit: the input must wait
        p = self.start_upserts(pg, csv, "rate = 2000\nbatch_size = 100\nmem_limit = 1M", "reconnect_max_wait = 1s",
                               service="log_level = debug")
        time.sleep(3)
        pg.stop()
        peak = 0
        for _ in range(20):
            time.sleep(0.5)
            peak = max(peak, rss_kb(p.pid))
        self.assertIsNone(p.poll())
        pg.start()
        _, err = p.communicate(timeout=90)
        err = err.decode()
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("reconnecting", err)
        self.assertRegex(err, r"\[input:csv\] paused: \d+ bytes in flight")
        self.assertIn("[input:csv] resumed", err)
        if not SANITIZED:
            self.assertLess(peak, 40 * 1024, f"RSS {peak} kB while PostgreSQL was down")
        got = pg.sql("SELECT symbol, ts, price, volume FROM ticks ORDER BY 1, 2")
        self.assertEqual(len(got), rows)
        self.assertEqual(got, expected(rows))

    def terminate_backends(self, pg, p, times):
        """Terminates rtproc's backends until `times` were; returns that
        count and the most backends seen at once."""
        kills = most = 0
        deadline = time.monotonic() + 60
        while kills < times and p.poll() is None and time.monotonic() < deadline:
            got = pg.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                         "WHERE application_name = 'rtproc'")
            kills += got[0][0]
            most = max(most, got[0][0])
            time.sleep(0.01)
        return kills, most

    def test_connections_reset_mid_copy_are_retried_without_loss(self):
        """The backend is terminated 20 times while small transactions
        stream in. A backend that exits with our next command unread resets
        the socket, which libuv reports as an error status on a handle it
        has stopped. Each loss must be noticed (logged, reconnected, the
        unit retried); before that was handled, the output could wait for
        ever with a unit in flight."""
        pg = servers.Postgres()
        self.addCleanup(pg.cleanup)
        csv = os.path.join(self.dir, "in.csv")
        rows = 200000 // (5 if SANITIZED else 1)
        make_csv(csv, rows, symbols=500)
        p = self.start_upserts(pg, csv, "", "batch_size = 500\nreconnect_max_wait = 100ms")
        kills, _ = self.terminate_backends(pg, p, 20)
        _, err = p.communicate(timeout=90)
        err = err.decode()
        self.assertEqual(p.returncode, 0, err)
        self.assertGreaterEqual(kills, 1, "no backend was caught mid-transaction")
        self.assertGreaterEqual(metric(err, "output:postgres", "pg_reconnects"), kills, err[-3000:])
        got = pg.sql("SELECT count(*), count(DISTINCT (symbol, ts)), sum(volume) FROM ticks")[0]
        self.assertEqual((got[0], got[1], int(got[2])), (rows, rows, rows * (rows - 1) // 2))

    def test_three_connections_reset_mid_copy_lose_no_row(self):
        """Plain COPY on three connections, backends terminated while they
        stream: every unit of a lost connection is written again, by its
        reconnection or by another connection. A backend killed after its
        COMMIT but before we read the answer makes that unit's rows appear
        twice (plain COPY is at-least-once; upsert_keys makes it exact),
        so this counts distinct rows."""
        pg = servers.Postgres()
        self.addCleanup(pg.cleanup)
        csv = os.path.join(self.dir, "in.csv")
        rows = 200000 // (5 if SANITIZED else 1)
        make_csv(csv, rows, symbols=500)
        # paced to about 4 s, so that the load outlasts the other connections' opening
        p = self.start_upserts(pg, csv, f"rate = {rows // 4}",
                               "batch_size = 500\nreconnect_max_wait = 100ms\nconnections = 3", keys="")
        # seen before the kills: a kill loop at 10 ms can keep all but one down
        most, deadline = 0, time.monotonic() + 30
        while most < 2 and p.poll() is None and time.monotonic() < deadline:
            most = pg.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rtproc'")[0][0]
            time.sleep(0.01)
        kills, _ = self.terminate_backends(pg, p, 20)
        _, err = p.communicate(timeout=90)
        err = err.decode()
        self.assertEqual(p.returncode, 0, err)
        self.assertGreaterEqual(kills, 1, "no backend was caught mid-transaction")
        # not the log: its rate limit may fold one connection's lines into another's
        self.assertGreaterEqual(most, 2, "the connections never ran side by side")
        got = pg.sql("SELECT count(DISTINCT (symbol, ts, price, volume)), count(DISTINCT (symbol, ts)) FROM ticks")
        self.assertEqual(got[0], (rows, rows))
        # each row counted once, by the transaction that was seen to commit
        self.assertEqual(metric(err, "output:postgres", "pg_rows_written"), rows)

    def test_a_missing_table_is_retried_with_backoff_on_each_connection(self):
        """The table is renamed away for 2 s while three connections load
        it: every transaction fails (42P01, not bad rows, not a lost
        connection), waits with backoff and is retried on its own
        connection, so the retries stay paced: before, the unit went back
        to the shared queue, where another free connection took it at once.
        Once the table is back, every row lands exactly once."""
        pg = servers.Postgres()
        self.addCleanup(pg.cleanup)
        csv = os.path.join(self.dir, "in.csv")
        rows, rate = (30000, 5000) if SANITIZED else (120000, 20000)
        make_csv(csv, rows, symbols=500)
        p = self.start_upserts(pg, csv, f"rate = {rate}",
                               "batch_size = 500\nreconnect_max_wait = 400ms\nconnections = 3", keys="")
        deadline = time.monotonic() + 30
        # each past its create_table (which would make a new ticks): at a COPY
        while pg.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rtproc' "
                     "AND query LIKE 'COPY %'")[0][0] < 3:
            self.assertLess(time.monotonic(), deadline, "the three connections never ran a COPY")
            time.sleep(0.01)

        def rollbacks():
            return pg.sql("SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()")[0][0]

        before = rollbacks()
        pg.sql("ALTER TABLE ticks RENAME TO ticks_away")
        time.sleep(2)
        pg.sql("ALTER TABLE ticks_away RENAME TO ticks")
        time.sleep(0.6)  # the statistics collector's report interval is 0.5 s
        failed = rollbacks() - before
        _, err = p.communicate(timeout=90)
        err = err.decode()
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("SQLSTATE 42P01", err)
        # per connection: waits from 100 ms doubling to 400 ms, each 50-100%
        # of its step, so at most about 2.6 s / 0.2 s + 4 tries each
        self.assertGreaterEqual(failed, 1, "no transaction failed while the table was away")
        self.assertLessEqual(failed, 3 * 17, f"{failed} failed transactions in 2 s: retries were not paced")
        got = pg.sql("SELECT count(*), count(DISTINCT (symbol, ts)) FROM ticks")[0]
        self.assertEqual(got, (rows, rows))
        self.assertEqual(metric(err, "output:postgres", "pg_rows_written"), rows)

if __name__ == "__main__":
    unittest.main()
