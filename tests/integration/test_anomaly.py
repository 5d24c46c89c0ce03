"""filter_anomaly through the real binary: every rule on hand-made CSVs with
exact alert records, cooldown, annotate, composite keys, bad values, bounded
state, configuration errors, and the ECB history replayed oldest first."""
import math
import statistics
import unittest

from harness import Case, need_data

DAY = "T00:00:00.000Z"


def closes(symbol, prices, start=1):
    """CSV rows date,symbol,close for one symbol on consecutive January days."""
    return "".join(f"2024-01-{start + i:02d},{symbol},{p}\n" for i, p in enumerate(prices))


def returns(prices):
    return [b / a - 1 for a, b in zip(prices, prices[1:])]


class AnomalyCase(Case):
    def run_filter(self, csv_text, options, csv_extra=""):
        """Runs csv -> anomaly -> stdout; returns (alerts, records, result).
        Alerts lose detected_at (wall clock) after a check of its form."""
        path = self.write("in.csv", csv_text)
        options = "\n".join(l.strip() for l in options.strip().splitlines())
        r = self.rtproc(conf=f"""
            [input.px]
            plugin = csv
            path = {path}
            tag = px
            time_key = date
            time_format = %Y-%m-%d
            exit_on_eof = true
            {csv_extra}
            [filter.anomaly]
            match = px
            {options}
            [output.stdout]
            match = px, alerts
            tag_key = tag
            time_key = ts
            """)
        self.assertEqual(r.code, 0, r.err)
        alerts, records = [], []
        for x in r.lines():
            if x.pop("tag") == "alerts":
                self.assertEqual(x["ts"], x["time"], "an alert's event time is its source record's")
                self.assertRegex(x.pop("detected_at"), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
                del x["ts"]
                alerts.append(x)
            else:
                records.append(x)
        return alerts, records, r

    def assertAlert(self, got, want):
        """Equal records, with numbers compared to 1e-9 relative."""
        self.assertEqual(sorted(got), sorted(want), got)
        for k, v in want.items():
            if isinstance(v, float):
                self.assertTrue(math.isclose(got[k], v, rel_tol=1e-9), f"{k}: {got[k]} != {v}")
            else:
                self.assertEqual(got[k], v, k)


class Rules(AnomalyCase):
    def test_pct_change_medium_and_high_per_series(self):
        csv = "date,symbol,close\n" + closes("A", [100, 106, 84.8, 85]) + closes("B", [50, 51, 60])
        alerts, _, r = self.run_filter(csv, "key = symbol\npct_change = 5,10")
        self.assertEqual(len(alerts), 3)
        self.assertAlert(alerts[0], {"symbol": "A", "series": "close", "rule": "pct_change", "value": 6.0,
                                     "threshold": 5.0, "score": 1.2, "severity": "medium",
                                     "time": "2024-01-02" + DAY})
        self.assertAlert(alerts[1], {"symbol": "A", "series": "close", "rule": "pct_change", "value": -20.0,
                                     "threshold": 5.0, "score": 4.0, "severity": "high",
                                     "time": "2024-01-03" + DAY})
        b = 100 * (60 / 51 - 1)
        self.assertAlert(alerts[2], {"symbol": "B", "series": "close", "rule": "pct_change", "value": b,
                                     "threshold": 5.0, "score": b / 5, "severity": "high",
                                     "time": "2024-01-03" + DAY})
        self.assertEqual(r.metric("filter:anomaly", "alerts_pct_change"), 3)

    def test_one_pct_threshold_makes_high_twice_it(self):
        alerts, _, _ = self.run_filter("date,symbol,close\n" + closes("A", [100, 109, 130.8]), "pct_change = 5")
        self.assertEqual([a["severity"] for a in alerts], ["medium", "high"])

    def test_composite_key_separates_series_and_is_copied_to_alerts(self):
        csv = ("date,symbol,venue,close\n"
               "2024-01-01,A,X,100\n2024-01-01,A,Y,200\n"
               "2024-01-02,A,X,100\n2024-01-02,A,Y,100\n"
               "2024-01-03,A,X,120\n2024-01-03,A,Y,100\n")
        alerts, _, _ = self.run_filter(csv, "key = symbol, venue\npct_change = 10,30")
        self.assertEqual([(a["symbol"], a["venue"], round(a["value"], 9), a["severity"]) for a in alerts],
                         [("A", "Y", -50.0, "high"), ("A", "X", 20.0, "medium")])

    def test_volume_spike_against_the_mean_of_previous_volumes(self):
        csv = "date,symbol,close,volume\n" + "".join(
            f"2024-01-{i + 1:02d},A,10,{v}\n" for i, v in enumerate([100, 100, 100, 200, 1000, 100]))
        alerts, _, r = self.run_filter(csv, "key = symbol\nvolume_spike = 200\nwindow = 3")
        # 200 is not above 200% of 100; 1000 vs mean(100, 100, 200) = 750%
        self.assertEqual(len(alerts), 1, alerts)
        self.assertAlert(alerts[0], {"symbol": "A", "series": "volume", "rule": "volume_spike",
                                     "value": 750.0, "threshold": 200.0, "score": 3.75, "severity": "high",
                                     "time": "2024-01-05" + DAY})
        self.assertEqual(r.metric("filter:anomaly", "alerts_volume_spike"), 1)

    def test_zscore_and_robust_zscore_exact(self):
        prices = [100, 101, 100, 101.5, 100, 101, 110]
        rets = returns(prices)
        prev, x = rets[-5:-1], rets[-1]
        z = (x - statistics.mean(prev)) / statistics.stdev(prev)
        med = statistics.median(prev)
        mad = statistics.median(abs(v - med) for v in prev)
        rz = 0.6745 * (x - med) / mad
        alerts, _, r = self.run_filter("date,symbol,close\n" + closes("A", prices),
                                       "zscore = 3\nrobust_zscore = 3.5\nwindow = 4")
        self.assertEqual(len(alerts), 2, alerts)
        self.assertAlert(alerts[0], {"series": "close", "rule": "zscore", "value": z, "threshold": 3.0,
                                     "score": z / 3, "severity": "high" if z >= 4.5 else "medium",
                                     "time": "2024-01-07" + DAY})
        self.assertAlert(alerts[1], {"series": "close", "rule": "robust_zscore", "value": rz,
                                     "threshold": 3.5, "score": rz / 3.5,
                                     "severity": "high" if rz >= 5.25 else "medium",
                                     "time": "2024-01-07" + DAY})

    def test_no_z_alert_before_the_window_is_full(self):
        # the jump is the 4th return: only 3 returns precede it, window 4
        alerts, _, _ = self.run_filter("date,symbol,close\n" + closes("A", [100, 101, 100, 101, 150]),
                                       "zscore = 2\nrobust_zscore = 2\nwindow = 4")
        self.assertEqual(alerts, [])

    def test_min_pct_gates_z_alerts(self):
        # a peg: tiny alternating noise, then a 0.3% step that is many sigmas
        prices = [1.9558, 1.9559, 1.9558, 1.9559, 1.9558, 1.9559, 1.9617]
        csv = "date,symbol,close\n" + closes("BGN", prices)
        alerts, _, _ = self.run_filter(csv, "zscore = 3\nrobust_zscore = 3\nwindow = 4")
        self.assertEqual([a["rule"] for a in alerts], ["zscore", "robust_zscore"])
        alerts, _, _ = self.run_filter(csv, "zscore = 3\nrobust_zscore = 3\nwindow = 4\nmin_pct = 0.5")
        self.assertEqual(alerts, [])

    def test_constant_series_never_alerts(self):
        csv = "date,symbol,close,volume\n" + "".join(f"2024-01-{i:02d},BGN,1.9558,0\n" for i in range(1, 29))
        alerts, records, _ = self.run_filter(
            csv, "pct_change = 0.001\nzscore = 0.1\nrobust_zscore = 0.1\nvolume_spike = 1\nwindow = 5\n"
                 "annotate = true")
        self.assertEqual(alerts, [])
        self.assertTrue(all(r["anomaly"] is False for r in records))

    def test_rsi_reads_the_indicator_field(self):
        csv = ("date,symbol,close,rsi_14\n2024-01-01,A,1,\n2024-01-02,A,1,65\n2024-01-03,A,1,72\n"
               "2024-01-04,A,1,25\n2024-01-05,A,1,95\n2024-01-06,A,1,abc\n2024-01-07,A,1,150\n")
        alerts, _, r = self.run_filter(csv, "key = symbol\nrsi = 70,30")
        want = [(72.0, 70.0, 1.1, "low", "03"), (25.0, 30.0, 1.25, "low", "04"),
                (95.0, 70.0, 2.25, "medium", "05")]
        self.assertEqual(len(alerts), 3, alerts)
        for a, (v, t, s, sev, day) in zip(alerts, want):
            self.assertAlert(a, {"symbol": "A", "series": "rsi_14", "rule": "rsi", "value": v, "threshold": t,
                                 "score": s, "severity": sev, "time": f"2024-01-{day}" + DAY})
        # the empty warm-up cell is not bad; "abc" and 150 are
        self.assertEqual(r.metric("filter:anomaly", "bad_values"), 2)

    def test_rsi_field_list_for_wide_files(self):
        csv = "date,USD_rsi,CHF_rsi\n2024-01-01,50,20\n2024-01-02,75,50\n"
        alerts, _, _ = self.run_filter(csv, "rsi = 70,30\nrsi_field = USD_rsi, CHF_rsi")
        self.assertEqual([(a["series"], a["value"]) for a in alerts], [("CHF_rsi", 20.0), ("USD_rsi", 75.0)])


class Behaviour(AnomalyCase):
    def test_cooldown_per_series_and_rule_on_event_time(self):
        prices = [100, 110, 121, 133.1, 146.41, 161.051]  # +10% every day
        csv = "date,symbol,close\n" + closes("A", prices) + closes("B", prices)
        alerts, _, r = self.run_filter(csv, "key = symbol\npct_change = 5\ncooldown = 2d")
        # day 2 alerts; days 3 is within 2 days; day 4 is 2 days later: alerts again; day 5 waits
        self.assertEqual([(a["symbol"], a["time"][:10]) for a in alerts],
                         [("A", "2024-01-02"), ("A", "2024-01-04"), ("A", "2024-01-06"),
                          ("B", "2024-01-02"), ("B", "2024-01-04"), ("B", "2024-01-06")])
        self.assertEqual(r.metric("filter:anomaly", "alerts_suppressed"), 4)
        # a rule cooling down on a series does not hold back another rule on it
        alerts, _, _ = self.run_filter("date,symbol,close\n" + closes("A", [100, 101, 100, 101, 120]),
                                       "pct_change = 0.5\nzscore = 3\nwindow = 3\ncooldown = 10d")
        self.assertEqual([(a["rule"], a["time"][:10]) for a in alerts],
                         [("pct_change", "2024-01-02"), ("zscore", "2024-01-05")])

    def test_annotate_marks_the_source_records(self):
        csv = "date,symbol,close,volume\n" + "".join(
            f"2024-01-{i + 1:02d},A,{p},{v}\n" for i, (p, v) in enumerate([(100, 10), (101, 10), (120, 50)]))
        alerts, records, _ = self.run_filter(
            csv, "key = symbol\npct_change = 5\nvolume_spike = 200\nwindow = 2\nannotate = true")
        self.assertEqual([a["rule"] for a in alerts], ["pct_change", "volume_spike"])
        self.assertEqual([r["anomaly"] for r in records], [False, False, True])
        self.assertEqual(records[2]["anomaly_rules"], "pct_change,volume_spike")
        self.assertEqual(records[2]["anomaly_series"], "close,volume")
        self.assertNotIn("anomaly_rules", records[0])

    def test_bad_values_are_counted_and_do_not_poison_the_series(self):
        csv = ("date,symbol,close,volume\n2024-01-01,A,100,10\n2024-01-02,A,,10\n2024-01-03,A,abc,10\n"
               "2024-01-04,A,-5,-1\n2024-01-05,A,0,x\n2024-01-06,A,nan,10\n2024-01-07,A,inf,10\n"
               "2024-01-08,A,101,10\n2024-01-09,,500,10\n2024-01-10,A,112.11,10\n")
        alerts, _, r = self.run_filter(csv, "key = symbol\npct_change = 5\nzscore = 1\nwindow = 2",
                                       csv_extra="types = close:double")
        # 101 is measured against 100, 112.11 against 101: the bad rows left no trace
        self.assertEqual(len(alerts), 1, alerts)
        self.assertAlert(alerts[0], {"symbol": "A", "series": "close", "rule": "pct_change", "value": 11.0,
                                     "threshold": 5.0, "score": 2.2, "severity": "high",
                                     "time": "2024-01-10" + DAY})
        # close: empty, -5, 0, nan, inf (abc is refused by in_csv's close:double), plus the row without key
        self.assertEqual(r.metric("filter:anomaly", "bad_values"), 6)
        alerts, _, r = self.run_filter(csv.replace(",abc,", ",1,").replace("-5,-1", "5,-1"),
                                       "key = symbol\nvolume_spike = 200\nwindow = 2",
                                       csv_extra="types = close:double")
        self.assertEqual(r.metric("filter:anomaly", "bad_values"), 3, "volume -1, x and the missing key")

    def test_star_checks_every_numeric_column_but_keys_volume_and_times(self):
        csv = ("date,USD,BGN,CHF,epoch_ms,volume,note,skipme\n"
               "2024-01-01,1.10,1.9558,1.20,1704067200000,5,x,1\n"
               "2024-01-02,1.10,1.9558,N/A,1704153600000,5,y,9\n"
               "2024-01-03,1.20,1.9558,1.00,1704240000000,50,z,90\n")
        alerts, _, r = self.run_filter(csv, "value_field = *\npct_change = 5\nexclude = skipme")
        self.assertEqual(sorted((a["series"], round(a["value"], 6)) for a in alerts),
                         [("CHF", round(100 * (1.0 / 1.2 - 1), 6)), ("USD", round(100 * (1.2 / 1.1 - 1), 6))])
        self.assertEqual(r.metric("filter:anomaly", "bad_values"), 0, "N/A is a gap in a wide file")

    def test_max_series_bounds_state_with_lru(self):
        rows = "".join(f"2024-01-{d:02d},{s},{100 * 1.1 ** d}\n" for d in range(1, 11) for s in "ABC")
        alerts, _, r = self.run_filter("date,symbol,close\n" + rows, "key = symbol\npct_change = 5\nmax_series = 2")
        # round robin over three symbols with room for two: each is forgotten before it comes back
        self.assertEqual(alerts, [])
        self.assertEqual(r.metric("filter:anomaly", "series_evicted"), 28)
        alerts, _, r = self.run_filter("date,symbol,close\n" + rows, "key = symbol\npct_change = 5\nmax_series = 3")
        self.assertEqual(len(alerts), 27)
        self.assertEqual(r.metric("filter:anomaly", "series_evicted"), 0)

    def test_configuration_errors_name_the_key(self):
        path = self.write("x.csv", "a\n1\n")
        for opts, frags in [("", ["pct_change:", "no rule enabled"]),
                            ("zscore = 3\nwindow = 1", ["window:", "between 2 and 1000"]),
                            ("zscore = 3\nwindow = 1001", ["window:"]),
                            ("zscore = -1", ["zscore:"]),
                            ("pct_change = 10,5", ["pct_change:", "below the medium"]),
                            ("pct_change = 1,2,3", ["pct_change:"]),
                            ("pct_change = abc", ["pct_change:", "not a positive number"]),
                            ("rsi = 30,70", ["rsi:", "overbought"]),
                            ("rsi = 70", ["rsi:"]),
                            ("zscore = 3\nvalue_field = *, close", ["value_field:"]),
                            ("zscore = 3\nmin_pct = -1", ["min_pct:"]),
                            ("zscore = 3\nmax_series = 0", ["max_series:"]),
                            ("zscore = 3\nalert_tag =", ["alert_tag:"])]:
            with self.subTest(opts=opts):
                self.assert_config_error(f"[input.csv]\npath = {path}\n[filter.anomaly]\n{opts}\n[output.null]\n",
                                         "[filter.anomaly]", *frags)

    def test_alert_tag_routes_alerts(self):
        path = self.write("in.csv", "date,close\n" + "".join(f"2024-01-0{i},{p}\n" for i, p in [(1, 1), (2, 2)]))
        r = self.rtproc(conf=f"""
            [input.csv]
            path = {path}
            exit_on_eof = true
            [filter.anomaly]
            pct_change = 5
            alert_tag = alerts.price
            [output.stdout]
            match = alerts.*
            """)
        self.assertEqual(r.code, 0, r.err)
        self.assertEqual([a["rule"] for a in r.lines()], ["pct_change"])


class EcbHistory(Case):
    """The ECB reference rates since 1999, newest row first in the file,
    replayed oldest first with in_csv's reverse = true."""
    CURRENCIES = ["CHF", "USD", "JPY", "GBP", "CNY", "BGN", "DKK"]

    def test_abnormal_variations_per_currency(self):
        path = need_data(self, "fx", "eurofxref-hist.csv")
        r = self.rtproc(conf=f"""
            [input.ecb]
            plugin = csv
            path = {path}
            tag = fx
            time_key = Date
            time_format = %Y-%m-%d
            reverse = true
            exit_on_eof = true
            [filter.anomaly]
            match = fx
            value_field = {", ".join(self.CURRENCIES)}
            robust_zscore = 6
            zscore = 5
            window = 60
            min_pct = 1
            [output.stdout]
            match = fx, alerts
            tag_key = tag
            """, timeout=300)
        self.assertEqual(r.code, 0, r.err)
        self.assertNotRegex(r.out, r"(?i)\bnan\b|\binf", "no NaN or infinity anywhere")
        lines = r.lines()
        rates = [x for x in lines if x["tag"] == "fx"]
        self.assertGreater(len(rates), 6000)
        self.assertLess(rates[0]["Date"], rates[-1]["Date"], "replayed oldest first")
        alerts = [x for x in lines if x["tag"] == "alerts"]
        flagged = {c: {} for c in self.CURRENCIES}
        for a in alerts:
            self.assertNotIn(None, a.values())
            for k in ("value", "threshold", "score"):
                self.assertTrue(math.isfinite(a[k]))
            flagged[a["series"]].setdefault(a["time"][:10], []).append(a["rule"])
        print("\nECB dates flagged (robust_zscore >= 6 or zscore >= 5 over 60 returns, |move| >= 1%):")
        for c in self.CURRENCIES:
            print(f"  {c}: {len(flagged[c])} dates")
            for day, rules in sorted(flagged[c].items()):
                print(f"    {day} {'+'.join(rules)}")
        self.assertIn("2015-01-15", flagged["CHF"], "the SNB removed the franc's floor that day")
        self.assertEqual(flagged["BGN"], {}, "the lev is pegged to the euro")
        self.assertEqual(flagged["DKK"], {}, "the krone is held within a narrow band")


if __name__ == "__main__":
    unittest.main()
