"""filter_indicators against pandas, computed independently (rolling, ewm,
pct_change, an explicit Wilder recursion) over the stock and ECB files of
../shared/data, plus the bad-input and configuration behaviour seen from the
command line.

Every value after warm-up must agree to a relative error of 1e-9, and a
field must be present exactly where pandas has a value: not before the
window is full, not where the price is missing. Two quantities are compared
on a scale instead of on themselves, because both sides compute them as the
difference of nearly equal numbers and their own magnitude can be ~0:
macd / macd_signal / macd_hist relative to the price, bb_pctb and rsi_14
relative to 1 (an RSI of 3e-41, from a pegged currency's decaying gains, is
0.0 in the textbook formula 100 - 100/(1+RS)). The maximum errors are printed
(python3 -m unittest -v).
"""
import json
import math
import sys
import unittest

from harness import Case, need_data

try:
    import numpy as np
    import pandas as pd
except ImportError as e:  # Debian: apt-get install python3-pandas
    pd = None
    PANDAS_ERROR = str(e)

TOL = 1e-9
STOCKS = ("stocks", "sp500_all_stocks_5yr_subset_100_symbols.csv")
FX = ("fx", "eurofxref-hist.csv")
ALL = """sma = 20,50
ema = 12,26
rsi = 14
macd = 12,26,9
bollinger = 20,2
volatility = 20
pct_change = true
volume_avg = 20
vwap = true"""


# ---- pandas reference, written from the definitions, not from the C code ----

def ema(s, n, seed_first):
    if seed_first:
        return s.ewm(span=n, adjust=False).mean()
    if len(s) < n:
        return pd.Series(np.nan, index=s.index)
    seeded = s.iloc[n - 1:].copy()
    seeded.iloc[0] = s.iloc[:n].mean()  # TA-Lib: the first EMA is the SMA of the first n
    return seeded.ewm(span=n, adjust=False).mean().reindex(s.index)


def wilder_rsi(s, n):
    d = s.diff().to_numpy()
    out = np.full(len(s), np.nan)
    if len(s) <= n:
        return pd.Series(out, index=s.index)
    gain, loss = np.where(d > 0, d, 0.0), np.where(d < 0, -d, 0.0)
    ag, al = gain[1:n + 1].mean(), loss[1:n + 1].mean()

    def value(g, l):
        if l == 0:
            return 100.0 if g > 0 else 50.0
        return 100.0 - 100.0 / (1.0 + g / l)

    out[n] = value(ag, al)
    for i in range(n + 1, len(s)):
        ag = (ag * (n - 1) + gain[i]) / n
        al = (al * (n - 1) + loss[i]) / n
        out[i] = value(ag, al)
    return pd.Series(out, index=s.index)


def rolling_std(s, n, ddof):
    """Standard deviation of each window of n, two-pass (numpy's std): the
    textbook definition. pandas' rolling().std() is an online algorithm
    whose relative error grows like (mean/sd)^2: on EUR/CHF during the
    1.20 floor (2011-2015, sd/mean ~ 1e-4) it is off by 3e-7, so it cannot
    referee a 1e-9 bound."""
    out = np.full(len(s), np.nan)
    if len(s) >= n:
        w = np.lib.stride_tricks.sliding_window_view(s.to_numpy(dtype=float), n)
        # equal values have a deviation of exactly 0 (numpy's mean of them may be off by an ulp)
        out[n - 1:] = np.where(w.max(axis=1) == w.min(axis=1), 0.0, w.std(axis=1, ddof=ddof))
    return pd.Series(out, index=s.index)


def reference(close, seed_first=False, annualize=0, volume=None, high=None, low=None, day=None):
    ref = {}
    for n in (20, 50):
        ref[f"sma_{n}"] = close.rolling(n).mean()
    e12, e26 = ema(close, 12, seed_first), ema(close, 26, seed_first)
    ref["ema_12"], ref["ema_26"] = e12, e26
    ref["rsi_14"] = wilder_rsi(close, 14)
    macd = e12 - e26
    signal = ema(macd.dropna(), 9, seed_first).reindex(close.index)
    ref["macd"], ref["macd_signal"], ref["macd_hist"] = macd, signal, macd - signal
    mid, sd = close.rolling(20).mean(), rolling_std(close, 20, 0)
    upper, lower = mid + 2 * sd, mid - 2 * sd
    ref["bb_upper"], ref["bb_middle"], ref["bb_lower"] = upper, mid, lower
    ref["bb_pctb"] = ((close - lower) / (upper - lower)).where(upper > lower)
    ref["bb_width"] = (upper - lower) / mid
    returns = close.pct_change()
    ref["volatility_20"] = rolling_std(returns, 20, 1) * 100 * (math.sqrt(annualize) if annualize else 1)
    ref["pct_change"] = returns * 100
    if volume is not None:
        ref["volume_avg_20"] = volume.rolling(20).mean()
        ok = high.notna() & low.notna()
        typical = ((high + low + close) / 3).where(ok, close)
        groups = day if day is not None else pd.Series(0, index=close.index)
        cum_v = volume.groupby(groups).cumsum()
        ref["vwap"] = ((typical * volume).groupby(groups).cumsum() / cum_v).where(cum_v > 0)
    return ref


# compared on a scale: the price for MACD, 1 for quantities bounded by ~1 or 100
SCALED = {"macd", "macd_signal", "macd_hist", "bb_pctb", "rsi_14"}


def compare(test, ours, ref, price, errors, prefix=""):
    """ours: DataFrame of rtproc's fields; ref: name -> Series (same index)."""
    for name, want in ref.items():
        col = prefix + name
        got = ours[col] if col in ours else pd.Series(np.nan, index=want.index)
        present, expected = got.notna(), want.notna()
        bad = present != expected
        test.assertFalse(bad.any(), f"{col}: present where pandas has no value (or the reverse) at "
                                    f"{list(got.index[bad][:5])}: ours {list(got[bad][:5])}, pandas {list(want[bad][:5])}")
        if not expected.any():
            continue
        g, w = got[expected].astype(float).to_numpy(), want[expected].to_numpy()
        if name in SCALED:
            scale = np.maximum(np.abs(w), price[expected].to_numpy() if name.startswith("macd") else 1.0)
        else:
            scale = np.abs(w)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(g == w, 0.0, np.abs(g - w) / scale)
        worst = float(np.max(rel))
        errors[name] = max(errors.get(name, 0.0), worst)
        i = int(np.argmax(rel))
        test.assertLessEqual(worst, TOL, f"{col}: ours {g[i]!r}, pandas {w[i]!r}")


def print_errors(title, errors):
    print(f"\n{title}: max relative error per indicator", file=sys.stderr)
    for name, err in sorted(errors.items()):
        print(f"  {name:<16} {err:.3g}", file=sys.stderr)


def frame(lines):
    return pd.DataFrame.from_records([json.loads(l) for l in lines.splitlines() if l.strip()])


class IndicatorsVsPandas(Case):
    def setUp(self):
        super().setUp()
        if pd is None:
            self.skipTest(f"pandas is not importable ({PANDAS_ERROR}): apt-get install python3-pandas")

    def run_stocks(self, extra):
        path = need_data(self, *STOCKS)
        r = self.rtproc(conf=f"""
            [service]
            log_level = warn
            [input.prices]
            plugin = csv
            path = {path}
            time_key = date
            time_format = %Y-%m-%d
            exit_on_eof = true
            [filter.indicators]
            key = Name
            {ALL}
            {extra}
            [output.out]
            plugin = stdout
            """)
        self.assertEqual(r.code, 0, r.err)
        return frame(r.out)

    def check_stocks(self, title, seed_first, annualize, daily):
        ours = self.run_stocks(f"ema_seed = {'first' if seed_first else 'sma'}\n"
                               f"annualize = {annualize}\nvwap_reset = {'day' if daily else 'never'}")
        src = pd.read_csv(need_data(self, *STOCKS))
        self.assertEqual(len(ours), len(src))
        self.assertTrue((ours["Name"].to_numpy() == src["Name"].to_numpy()).all())
        errors = {}
        for _, g in src.groupby("Name", sort=False):
            day = g["date"] if daily else None
            ref = reference(g["close"], seed_first, annualize, g["volume"].astype(float), g["high"], g["low"], day)
            compare(self, ours.loc[g.index], ref, g["close"], errors)
        print_errors(title, errors)
        return ours

    def test_stocks_ta_lib_seed(self):
        ours = self.check_stocks("stocks, ema_seed = sma, vwap per day", False, 0, True)
        # warm-up lengths, spelled out once for the first symbol
        first = ours[ours["Name"] == ours["Name"].iloc[0]].reset_index(drop=True)
        for name, index in (("sma_20", 19), ("sma_50", 49), ("ema_12", 11), ("ema_26", 25), ("rsi_14", 14),
                            ("macd", 25), ("macd_signal", 33), ("bb_upper", 19), ("volatility_20", 20),
                            ("pct_change", 1), ("volume_avg_20", 19), ("vwap", 0)):
            self.assertEqual(first[name].first_valid_index(), index, name)

    def test_stocks_pandas_seed_cumulative_vwap_annualised(self):
        ours = self.check_stocks("stocks, ema_seed = first, vwap never reset, annualize = 252", True, 252, False)
        first = ours[ours["Name"] == ours["Name"].iloc[0]].reset_index(drop=True)
        for name in ("ema_12", "ema_26", "macd", "macd_signal", "macd_hist"):
            self.assertEqual(first[name].first_valid_index(), 0, name)

    def fx_reference(self):
        src = pd.read_csv(need_data(self, *FX), na_values=["N/A"]).iloc[::-1].reset_index(drop=True)
        currencies = [c for c in src.columns[1:] if src[c].notna().any()]
        return src, currencies

    def run_fx(self, price_field):
        path = need_data(self, *FX)
        r = self.rtproc(conf=f"""
            [service]
            log_level = warn
            [input.ecb]
            plugin = csv
            path = {path}
            reverse = true
            time_key = Date
            time_format = %Y-%m-%d
            exit_on_eof = true
            [filter.indicators]
            price_field = {price_field}
            sma = 20,50
            ema = 12,26
            rsi = 14
            macd = 12,26,9
            bollinger = 20,2
            volatility = 20
            pct_change = true
            [output.out]
            plugin = stdout
            """)
        self.assertEqual(r.code, 0, r.err)
        self.assertNotIn("late", r.err)
        return frame(r.out)

    def check_fx(self, title, ours, src, currencies):
        self.assertEqual(list(ours["Date"]), list(src["Date"]), "oldest row first, every row once")
        errors = {}
        for cur in currencies:
            s = src[cur].dropna()
            ref = {k: v.reindex(src.index) for k, v in reference(s).items()}
            compare(self, ours, ref, src[cur], errors, prefix=f"{cur}_")
        print_errors(title, errors)

    def test_fx_wide_every_column(self):
        src, currencies = self.fx_reference()
        ours = self.run_fx("*")
        self.check_fx("ECB, price_field = * (41 currencies)", ours, src, currencies)
        self.assertNotIn("Date_sma_20", ours.columns)

    def test_fx_listed_columns(self):
        src, _ = self.fx_reference()
        ours = self.run_fx("USD, CHF, ISK")
        self.check_fx("ECB, price_field = USD, CHF, ISK", ours, src, ["USD", "CHF", "ISK"])
        self.assertFalse(any(c.startswith("JPY_") for c in ours.columns))


class IndicatorsBehaviour(Case):
    def run_csv(self, content, options, csv_options=""):
        path = self.write("in.csv", content)
        r = self.rtproc(conf=f"""
            [input.csv]
            path = {path}
            time_key = t
            time_format = epoch
            exit_on_eof = true
            {csv_options}
            [filter.indicators]
            {options}
            [output.out]
            plugin = stdout
            """)
        self.assertEqual(r.code, 0, r.err)
        return r.lines(), r

    def test_bad_values_pass_unchanged_and_do_not_poison_the_series(self):
        rows = "t,s,close,volume\n1,A,1,10\n2,A,abc,10\n3,A,nan,10\n4,A,-2,10\n5,A,0,10\n6,A,,10\n" \
               "7,A,2,-5\n8,A,3,x\n9,A,4,20\n"
        out, r = self.run_csv(rows, "key = s\nsma = 2\nvolume_avg = 2")
        self.assertEqual(len(out), 9)
        for rec in out[1:6]:
            self.assertNotIn("sma_2", rec)
        self.assertEqual(out[6]["sma_2"], 1.5)
        self.assertEqual(out[7]["sma_2"], 2.5)
        self.assertEqual(out[8]["sma_2"], 3.5)
        self.assertNotIn("volume_avg_2", out[7], "only one valid volume so far (10); -5 and x are skipped")
        self.assertEqual(out[8]["volume_avg_2"], 15.0)
        self.assertEqual(r.metric("filter:indicators", "bad_values"), 4 + 2)

    def test_late_records_are_dropped_or_accepted(self):
        rows = "t,s,close\n1,A,1\n2,A,2\n2,A,100\n1,A,100\n3,A,3\n1,B,7\n"
        out, r = self.run_csv(rows, "key = s\nsma = 2")
        self.assertEqual([x["close"] for x in out], [1, 2, 3, 7])
        self.assertEqual(out[2]["sma_2"], 2.5)
        self.assertEqual(r.metric("filter:indicators", "late_records"), 2)
        out, _ = self.run_csv(rows, "key = s\nsma = 2\nlate = accept")
        self.assertEqual([x.get("sma_2") for x in out], [None, 1.5, 51, 100, 51.5, None])

    def test_eviction_restarts_the_warm_up(self):
        rows = "t,s,close\n1,A,1\n2,B,1\n3,A,3\n4,C,1\n5,A,5\n6,B,3\n"
        out, r = self.run_csv(rows, "key = s\nsma = 2\nmax_series = 2")
        self.assertEqual([x.get("sma_2") for x in out], [None, None, 2, None, 4, None])
        self.assertEqual(r.metric("filter:indicators", "series_evicted"), 2)

    def test_star_prefixes_and_skips_key_volume_time_and_excluded(self):
        rows = "t,s,a,b,volume,n,u\n1,X,1,10,5,1,1\n2,X,2,20,5,1,2\n"
        # t is typed time (a time-typed field is never a price); n is excluded; u, an epoch-seconds
        # column left as an int, would be a price: that is what exclude is for
        out, _ = self.run_csv(rows, "key = s\nprice_field = *\nexclude = n\nsma = 2\nvolume_avg = 1",
                              "types = t:time")
        self.assertEqual(out[1]["u_sma_2"], 1.5)
        self.assertEqual(out[1]["a_sma_2"], 1.5)
        self.assertEqual(out[1]["b_sma_2"], 15)
        self.assertEqual(out[1]["a_volume_avg_1"], 5)
        for rec in out:
            self.assertFalse([k for k in rec if k.startswith(("t_", "s_", "volume_", "n_"))], rec)

    def test_configuration_errors_name_the_option(self):
        path = self.write("in.csv", "close\n1\n")
        base = f"[input.csv]\npath = {path}\n[output.null]\n[filter.indicators]\n"
        for opts, frag in (("", "no indicator is enabled"), ("sma = 0", "sma"), ("sma = 20,20", "listed twice"),
                           ("macd = 26,12,9", "macd"), ("bollinger = 20", "bollinger"),
                           ("volatility = 1", "volatility"), ("rsi = -1", "rsi"),
                           ("sma = 2\nprice_field = close, *", "'*' must be the only item"),
                           ("sma = 2\nkey = close", "is a key field"), ("sma = 2\nmax_series = 0", "max_series"),
                           ("ema = 1,2,3,4,5,6,7,8,9", "at most 8")):
            self.assert_config_error(base + opts, "[filter.indicators]", frag)


if __name__ == "__main__":
    unittest.main()
