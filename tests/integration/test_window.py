"""filter_window end to end: Binance minute bars rolled up and compared with
pandas row for row, hopping windows and sessions against brute force in
plain Python, late records, and the timestamp formats of in_csv."""
import bisect
import datetime
import random
import unittest

from harness import Case, need_data

BINANCE = ("intraday", "binance_LINKUSDT_1m_2023-02.csv")
ECOMMERCE = ("ecommerce", "ecommerce_fraud_transactions_30k.csv")
BARS = ("open=first(open), high=max(high), low=min(low), close=last(close), "
        "volume=sum(volume), trades=count()")


def ms(text):
    """RFC 3339 '...Z' from rtproc to epoch milliseconds."""
    d = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return round(d.timestamp() * 1000)


def pandas_or_skip(test):
    try:
        import pandas
    except ImportError:
        test.skipTest("pandas missing: apt-get install python3-pandas")
    return pandas


class WindowCase(Case):
    def run_window(self, path, window, extra_input="time_key = open_time\ntime_format = epoch_ms"):
        r = self.rtproc(conf=f"""
            [input.csv]
            path = {path}
            exit_on_eof = true
            {extra_input}
            [filter.win]
            plugin = window
            {window}
            [output.stdout]
            match = win
            """)
        self.assertEqual(r.code, 0, r.err)
        return r.lines(), r


class BinanceBars(WindowCase):
    def check_bars(self, minutes):
        pd = pandas_or_skip(self)
        path = need_data(self, *BINANCE)
        bars, _ = self.run_window(path, f"size = {minutes}m\naggregate = {BARS}")
        df = pd.read_csv(path)
        df["t"] = pd.to_datetime(df.open_time, unit="ms")
        want = df.resample(f"{minutes}min", on="t").agg(
            open=("open", "first"), high=("high", "max"), low=("low", "min"),
            close=("close", "last"), volume=("volume", "sum"), trades=("open", "size"))
        want = want[want.trades > 0]  # pandas keeps empty bins; a window exists only with records
        self.assertEqual(len(bars), len(want))
        worst = 0.0
        for got, (start, row) in zip(bars, want.iterrows()):
            self.assertEqual(ms(got["window_start"]), start.value // 10**6)
            self.assertEqual(ms(got["window_end"]) - ms(got["window_start"]), minutes * 60000)
            for name in ("open", "high", "low", "close"):
                self.assertEqual(got[name], row[name], f"{name} at {start}")
            self.assertEqual(got["trades"], row["trades"])
            err = abs(got["volume"] - row["volume"]) / max(abs(row["volume"]), 1e-300)
            self.assertLessEqual(err, 1e-12, f"volume at {start}")
            worst = max(worst, err)
        print(f"\n{minutes}-minute bars: {len(bars)} rows equal to pandas, volume max relative error {worst:.3g}")

    def test_5_minute_bars_equal_pandas_resample(self):
        self.check_bars(5)

    def test_15_minute_bars_equal_pandas_resample(self):
        self.check_bars(15)

    def test_60_minute_bars_equal_pandas_resample(self):
        self.check_bars(60)

    def test_avg_and_stddev_equal_pandas(self):
        pd = pandas_or_skip(self)
        path = need_data(self, *BINANCE)
        bars, _ = self.run_window(path, "size = 1h\naggregate = mean=avg(close), sd=stddev(close), n=count(close)")
        df = pd.read_csv(path)
        df["t"] = pd.to_datetime(df.open_time, unit="ms")
        want = df.resample("60min", on="t")["close"].agg(["mean", "std", "count"])
        want = want[want["count"] > 0]
        self.assertEqual(len(bars), len(want))
        for got, (_, row) in zip(bars, want.iterrows()):
            self.assertAlmostEqual(got["mean"], row["mean"], delta=abs(row["mean"]) * 1e-12)
            self.assertAlmostEqual(got["sd"], row["std"], delta=abs(row["std"]) * 1e-9)
            self.assertEqual(got["n"], row["count"])

    def test_hopping_windows_equal_brute_force(self):
        path = need_data(self, *BINANCE)
        bars, _ = self.run_window(path, "type = hopping\nsize = 10m\nslide = 5m\n"
                                        "aggregate = n=count(), high=max(high), volume=sum(volume), open=first(open)")
        import csv
        with open(path, newline="") as f:
            rows = sorted((int(r["open_time"]), float(r["high"]), float(r["volume"]), float(r["open"]))
                          for r in csv.DictReader(f))
        times = [r[0] for r in rows]
        size, slide = 600000, 300000
        starts = sorted({s for t in times for s in (t - t % slide, t - t % slide - slide) if s <= t < s + size})
        self.assertEqual([ms(b["window_start"]) for b in bars], starts)
        for b, s in zip(bars, starts):
            inside = rows[bisect.bisect_left(times, s):bisect.bisect_left(times, s + size)]
            self.assertEqual(b["n"], len(inside))
            self.assertEqual(b["high"], max(r[1] for r in inside))
            self.assertEqual(b["open"], inside[0][3])
            self.assertLessEqual(abs(b["volume"] - sum(r[2] for r in inside)), 1e-9 * b["volume"])
        print(f"\nhopping 10m/5m: {len(bars)} windows equal to brute force")


def sessions(events, gap):
    """Per key, runs of events less than gap apart: (key, start, end, n, total)."""
    out = []
    for key in sorted({k for k, _, _ in events}):
        ts = sorted((t, v) for k, t, v in events if k == key)
        run = [ts[0]]
        for t, v in ts[1:]:
            if t - run[-1][0] >= gap:
                out.append((key, run[0][0], run[-1][0] + gap, len(run), sum(x for _, x in run)))
                run = []
            run.append((t, v))
        out.append((key, run[0][0], run[-1][0] + gap, len(run), sum(x for _, x in run)))
    return sorted(out)


class Sessions(WindowCase):
    def session_rows(self, bars):
        return sorted((b["k"], ms(b["window_start"]), ms(b["window_end"]), b["n"], b["total"]) for b in bars)

    def test_sessions_by_hand(self):
        # gap 10s: a, a+9.999s join; exactly 10s later starts a new session
        b = 1_000_000  # time 0 means "unknown" to rtproc
        path = self.write("s.csv", "t,k,v\n" + "".join(f"{b + t},{k},{v}\n" for t, k, v in [
            (0, "x", 1), (9999, "x", 2), (19999, "x", 4), (30000, "y", 8), (39999, "x", 16)]))
        bars, _ = self.run_window(path, "type = session\ngap = 10s\nkey = k\n"
                                        "aggregate = n=count(), total=sum(v)",
                                  "time_key = t\ntime_format = epoch_ms")
        self.assertEqual(self.session_rows(bars), [
            ("x", b, b + 9999 + 10000, 2, 3), ("x", b + 19999, b + 29999, 1, 4),
            ("x", b + 39999, b + 49999, 1, 16), ("y", b + 30000, b + 40000, 1, 8)])

    def test_random_interleaved_sessions_equal_brute_force(self):
        rnd = random.Random(7)
        events, t = [], 1_700_000_000_000
        for _ in range(3000):
            t += rnd.choice([1, 500, 4000, 9999, 10000, 25000])
            events.append((rnd.choice("abcde"), t, rnd.randint(1, 100)))
        path = self.write("s.csv", "t,k,v\n" + "".join(f"{t},{k},{v}\n" for k, t, v in events))
        bars, _ = self.run_window(path, "type = session\ngap = 10s\nkey = k\naggregate = n=count(), total=sum(v)",
                                  "time_key = t\ntime_format = epoch_ms")
        self.assertEqual(self.session_rows(bars), sessions(events, 10000))

    def test_shuffled_input_merges_sessions_within_lateness(self):
        # Out of order by up to the whole file: with lateness covering it, sessions merge as they meet.
        rnd = random.Random(11)
        events = [(rnd.choice("pq"), 1_000_000 + rnd.randrange(0, 400) * 1000, rnd.randint(1, 9)) for _ in range(600)]
        path = self.write("s.csv", "t,k,v\n" + "".join(f"{t},{k},{v}\n" for k, t, v in events))
        bars, r = self.run_window(path, "type = session\ngap = 3s\nkey = k\nallowed_lateness = 1d\n"
                                        "aggregate = n=count(), total=sum(v)", "time_key = t\ntime_format = epoch_ms")
        self.assertEqual(self.session_rows(bars), sessions(events, 3000))

    def test_ecommerce_device_sessions_of_30_minutes(self):
        path = need_data(self, *ECOMMERCE)
        bars, r = self.run_window(
            path, "type = session\ngap = 30m\nkey = device_id\nallowed_lateness = 3650d\n"
                  "aggregate = n=count(), total=sum(purchase_value)",
            "time_key = purchase_time\ntime_format = %m/%d/%Y %H:%M")
        import csv
        events = []
        with open(path, newline="", encoding="utf-8-sig") as f:
            for row in csv.DictReader(f):
                try:
                    d = datetime.datetime.strptime(row["purchase_time"], "%m/%d/%Y %H:%M")
                    v = int(row["purchase_value"])
                except (ValueError, TypeError):
                    continue  # the file's one malformed row, which in_csv sends to the error route
                t = round(d.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
                events.append((row["device_id"], t, v))
        got = sorted((b["device_id"], ms(b["window_start"]), ms(b["window_end"]), b["n"], b["total"]) for b in bars)
        self.assertEqual(got, sessions(events, 1800000))
        self.assertGreater(sum(1 for g in got if g[3] > 1), 100, "devices shared by several purchases")
        print(f"\necommerce: {len(got)} device sessions equal to brute force")


class LateAndTimestamps(WindowCase):
    def test_late_records_go_on_unchanged_under_late_tag(self):
        path = self.write("l.csv", "t,k,v\n600000,a,1\n660000,a,2\n720000,a,3\n630000,a,99\n730000,b,5\n")
        r = self.rtproc(conf=f"""
            [input.csv]
            path = {path}
            exit_on_eof = true
            time_key = t
            time_format = epoch_ms
            [filter.win]
            plugin = window
            key = k
            size = 1m
            aggregate = n=count(), total=sum(v)
            [output.stdout]
            match = win, late
            tag_key = tag
            """)
        self.assertEqual(r.code, 0, r.err)
        late = [x for x in r.lines() if x["tag"] == "late"]
        wins = [x for x in r.lines() if x["tag"] == "win"]
        self.assertEqual(late, [{"tag": "late", "t": 630000, "k": "a", "v": 99}])
        self.assertEqual(sorted((w["k"], w["total"]) for w in wins), [("a", 1), ("a", 2), ("a", 3), ("b", 5)])
        self.assertEqual(r.metric("filter:win", "late_records"), 1)

    def test_every_time_format_gives_the_same_windows(self):
        rows = [(1675209600000 + i * 37000, i) for i in range(40)]
        iso = lambda t: datetime.datetime.fromtimestamp(t / 1000, datetime.timezone.utc)
        formats = {
            "epoch_ms": lambda t: str(t),
            "epoch": lambda t: f"{t / 1000:.3f}",
            "iso8601": lambda t: iso(t).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "%Y-%m-%d %H:%M:%S.%f": lambda t: iso(t).strftime("%Y-%m-%d %H:%M:%S.%f"),
        }
        results = []
        for fmt, render in formats.items():
            path = self.write("f.csv", "ts,v\n" + "".join(f"{render(t)},{v}\n" for t, v in rows))
            bars, _ = self.run_window(path, "size = 5m\naggregate = n=count(), first_v=first(v)",
                                      f"time_key = ts\ntime_format = {fmt}\ntypes = ts:string")
            results.append(bars)
        for other in results[1:]:
            self.assertEqual(other, results[0])
        self.assertEqual(results[0][0]["window_start"], "2023-02-01T00:00:00.000Z")
        self.assertEqual(results[0][0]["window_end"], "2023-02-01T00:05:00.000Z")
        self.assertEqual(sum(b["n"] for b in results[0]), 40)

    def test_bad_aggregate_names_key_and_item(self):
        path = self.write("x.csv", "t,v\n1,2\n")
        self.assert_config_error(f"""
            [input.csv]
            path = {path}
            [filter.window]
            size = 1m
            aggregate = n=count(), hi=maxx(v)
            [output.stdout]
            """, "[filter.window] aggregate:", "'hi=maxx(v)': unknown function")


if __name__ == "__main__":
    unittest.main()
