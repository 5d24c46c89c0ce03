"""in_csv against hand-made edge cases and every CSV file of ../shared/data,
read through to out_stdout and checked with Python's own csv and json
modules."""
import csv
import json
import unittest

from harness import Case, need_data


class CsvEdgeCases(Case):
    def run_csv(self, content, extra="", binary=False):
        path = self.write("in.csv", content, "wb" if binary else "w")
        r = self.rtproc(conf=f"""
            [input.csv]
            path = {path}
            exit_on_eof = true
            {extra}
            [output.data]
            plugin = stdout
            match = csv
            [output.errors]
            plugin = stdout
            match = error.*
            tag_key = tag
            """)
        self.assertEqual(r.code, 0, r.err)
        recs = r.lines()
        return [x for x in recs if "tag" not in x], [x for x in recs if "tag" in x], r

    def test_rfc4180_quoting(self):
        data, errors, _ = self.run_csv(
            'name,quote,n\r\n'
            '"Smith, John","He said ""hi""",1\r\n'
            '"multi\nline","",2\r\n'
            'plain,"a,b",3\r\n')
        self.assertEqual(errors, [])
        self.assertEqual(data, [
            {"name": "Smith, John", "quote": 'He said "hi"', "n": 1},
            {"name": "multi\nline", "quote": "", "n": 2},
            {"name": "plain", "quote": "a,b", "n": 3}])

    def test_types_nulls_and_leading_zeros(self):
        data, _, _ = self.run_csv("zip,price,qty,note,flag\n02134,1.50,007,N/A,\n10001,2,-3,null,x\n")
        self.assertEqual(data[0], {"zip": "02134", "price": 1.5, "qty": "007", "note": None, "flag": None})
        self.assertEqual(data[1], {"zip": 10001, "price": 2, "qty": -3, "note": None, "flag": "x"})

    def test_declared_types_and_configurable_nulls(self):
        data, errors, r = self.run_csv("id,price,ok\n1,2,true\n2,-,no\n3,abc,yes\n",
                                       "types = id:string, price:double, ok:bool\nnull_values = -")
        self.assertEqual(data, [{"id": "1", "price": 2.0, "ok": True}, {"id": "2", "price": None, "ok": False}])
        self.assertEqual(len(errors), 1)
        self.assertEqual(errors[0]["tag"], "error.csv")
        self.assertEqual(errors[0]["raw"], "3,abc,yes\n")
        self.assertIn("column 'price': 'abc' not a number", errors[0]["error"])
        self.assertEqual(r.metric("input:csv", "bad_rows"), 1)

    def test_bad_rows_go_to_the_error_route_and_the_run_goes_on(self):
        data, errors, _ = self.run_csv('a,b\n1,2\n1,2,3\n3,4\n"ab"c,5\n6,7\n"unterminated,8\n')
        self.assertEqual([d["a"] for d in data], [1, 3, 6])
        self.assertEqual(len(errors), 3)
        self.assertIn("expected 2 cells, found 3", errors[0]["error"])
        self.assertEqual(errors[2]["raw"], '"unterminated,8\n')

    def test_bom_crlf_and_missing_final_newline(self):
        data, _, _ = self.run_csv(b"\xef\xbb\xbfIndex,v\r\nA,1\r\nB,2", binary=True)
        self.assertEqual(data, [{"Index": "A", "v": 1}, {"Index": "B", "v": 2}])

    def test_output_is_valid_json_whatever_the_bytes(self):
        data, _, r = self.run_csv(b"s\n\"tab\there\"\n\"\x01ctl\"\nbad\xffutf8\n\"q\"\"uote\\\\\"\n", binary=True)
        self.assertEqual([d["s"] for d in data], ["tab\there", "\x01ctl", "bad\ufffdutf8", 'q"uote\\\\'])

    def test_columns_without_header_and_other_delimiters(self):
        data, _, _ = self.run_csv("1;x\n2;y\n", "header = false\ncolumns = n, s\ndelimiter = semicolon")
        self.assertEqual(data, [{"n": 1, "s": "x"}, {"n": 2, "s": "y"}])
        data, _, _ = self.run_csv("a\tb\n1\t2\n", "delimiter = \\t")
        self.assertEqual(data, [{"a": 1, "b": 2}])
        data, _, _ = self.run_csv("a|b\n1|2\n", "delimiter = |")
        self.assertEqual(data, [{"a": 1, "b": 2}])

    def test_quote_character_can_change_or_be_off(self):
        data, _, _ = self.run_csv("a,b\n'x,y',\"q\"\n", "quote = '")
        self.assertEqual(data, [{"a": "x,y", "b": '"q"'}])
        data, _, _ = self.run_csv('a,b\n"x,y\n', "quote =")
        self.assertEqual(data, [{"a": '"x', "b": 'y'}], "with no quote character quotes are text")

    def test_a_bare_semicolon_is_a_comment_and_the_error_says_so(self):
        path = self.write("in.csv", "a;b\n")
        self.assert_config_error(f"[input.csv]\npath = {path}\ndelimiter = ;\n[output.null]\n",
                                 "[input.csv] delimiter:", "write semicolon")

    def test_event_time_from_time_key(self):
        path = self.write("t.csv", "when,v\n2023-02-01 00:05:00,1\n2023-02-01 00:06:30.250,2\n")
        r = self.rtproc(conf=f"""
            [input.csv]
            path = {path}
            time_key = when
            time_format = iso8601
            exit_on_eof = true
            [output.stdout]
            time_key = ts
            """)
        self.assertEqual(r.code, 0, r.err)
        self.assertEqual([x["ts"] for x in r.lines()], ["2023-02-01T00:05:00.000Z", "2023-02-01T00:06:30.250Z"])

    def test_rows_longer_than_max_row_size_are_skipped_to_the_next_line(self):
        content = "a,b\n1,2\n" + "x" * 20000 + ",3\n4,5\n"
        data, errors, _ = self.run_csv(content, "max_row_size = 4k\nbuffer_size = 4k")
        self.assertEqual([d["a"] for d in data], [1, 4])
        self.assertEqual(len(errors), 1)
        self.assertIn("longer than max_row_size", errors[0]["error"])

    def test_reverse_replays_last_row_first(self):
        rows = [f'{i},"quoted\nline {i}, with ""q"""' for i in range(5000)] + ["oops", "5000,last"]
        content = "i,s\n" + "\n".join(rows) + "\n"
        fwd, fwd_err, _ = self.run_csv(content, "buffer_size = 4k")
        rev, rev_err, _ = self.run_csv(content, "buffer_size = 4k\nreverse = true\nbatch_size = 100")
        self.assertEqual(len(fwd), 5001)
        self.assertEqual(rev, fwd[::-1], "reverse must be forward, reversed, across blocks of 1024 rows")
        self.assertEqual(len(rev_err), 1)
        self.assertEqual(rev_err[0]["raw"], fwd_err[0]["raw"])

    def test_small_buffers_cut_rows_anywhere(self):
        rows = [f'{i},"text, with ""quotes"" and\nnewline {i}",{i * 0.25}' for i in range(3000)]
        data, errors, _ = self.run_csv("i,s,f\n" + "\n".join(rows) + "\n", "buffer_size = 4k\nbatch_size = 7")
        self.assertEqual(errors, [])
        self.assertEqual(len(data), 3000)
        for i, d in enumerate(data):
            self.assertEqual(d, {"i": i, "s": f'text, with "quotes" and\nnewline {i}', "f": i * 0.25})


class SharedData(Case):
    """Every CSV file of ../shared/data, counted and spot-checked against
    Python's csv module."""

    def read_all(self, path, extra=""):
        r = self.rtproc(conf=f"""
            [input.f]
            plugin = csv
            path = {path}
            exit_on_eof = true
            {extra}
            [output.data]
            plugin = stdout
            match = f
            [output.errors]
            plugin = null
            match = error.*
            """, timeout=300)
        self.assertEqual(r.code, 0, r.err[-2000:])
        return r

    def compare(self, rel, extra="", bad=0):
        path = need_data(self, *rel.split("/"))
        r = self.read_all(path, extra)
        got = r.out.splitlines()
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows = [row for row in reader if len(row) == len(header)]
        self.assertEqual(len(got), len(rows), f"{rel}: rows")
        self.assertEqual(r.metric("input:f", "bad_rows"), bad)
        for i in (0, len(rows) // 2, len(rows) - 1):
            rec = json.loads(got[i])
            self.assertEqual(list(rec), header)
            for k, v in zip(header, rows[i]):
                if v in ("", "null", "N/A"):
                    self.assertIsNone(rec[k], f"{rel} row {i} {k}")
                elif isinstance(rec[k], (int, float)):
                    self.assertAlmostEqual(rec[k], float(v), delta=abs(float(v)) * 1e-15, msg=f"{rel} {k}")
                else:
                    self.assertEqual(rec[k], v)
        return r, rows

    def test_sp500_subset(self):
        r, rows = self.compare("stocks/sp500_all_stocks_5yr_subset_100_symbols.csv")
        self.assertEqual(len(rows), 121855)
        bhf = [json.loads(l) for l in r.out.splitlines() if '"2017-07-26"' in l and '"BHF"' in l]
        self.assertEqual(bhf[0]["open"], None)

    def test_us_daily_long_history(self):
        _, rows = self.compare("stocks/us_daily_long_history_20_symbols.csv", "time_key = Date\ntime_format = %Y-%m-%d")
        self.assertEqual(len(rows), 159987)

    def test_hsi_sample(self):
        self.compare("stocks/stock_exchange_indexProcessed_HSI_sample.csv")

    def test_raw_index_file_with_bom_crlf_and_null_strings(self):
        r, rows = self.compare("stocks/stock_exchange_indexData_raw_5_indices_partial.csv")
        # SOURCES.md says 51,248; the file has 51,249 complete rows, the last
        # one without a line end (Python's csv module agrees).
        self.assertEqual(len(rows), 51249)
        # SOURCES.md calls it a BOM, but the file starts with C3 AF C2 BB C2 BF,
        # a BOM encoded to UTF-8 twice ("\u00ef\u00bb\u00bf"): text, kept as
        # data exactly as Python's csv module keeps it.
        first = json.loads(r.out.splitlines()[0])
        self.assertIn("\u00ef\u00bb\u00bfIndex", first)
        nulls = sum(1 for l in r.out.splitlines() if '"Open":null' in l)
        self.assertEqual(nulls, 681)

    def test_ecb_history_with_trailing_comma_and_na(self):
        r, rows = self.compare("fx/eurofxref-hist.csv", "time_key = Date\ntime_format = %Y-%m-%d")
        self.assertEqual(len(rows), 6747)

    def test_binance_minute_bars(self):
        _, rows = self.compare("intraday/binance_LINKUSDT_1m_2023-02.csv", "time_key = open_time\ntime_format = epoch_ms")
        self.assertEqual(len(rows), 40320)

    def test_ecommerce_with_truncated_last_row(self):
        # The "truncated" last row still has all 11 cells, 9 of them empty:
        # a record of nulls, not a bad row.
        r, rows = self.compare("ecommerce/ecommerce_fraud_transactions_30k.csv")
        self.assertEqual(len(rows), 30190)
        last = json.loads(r.out.splitlines()[-1])
        self.assertEqual(last["user_id"], 393385)
        self.assertIsNone(last["purchase_value"])


if __name__ == "__main__":
    unittest.main()
