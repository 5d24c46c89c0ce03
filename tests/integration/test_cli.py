"""The command line: flags, exit codes, the plugin catalogue, and the
configuration mistakes a user makes (exit 2, section and key named)."""
import json
import os
import unittest

from harness import Case, SOURCE_DIR

SAMPLE = os.path.join(SOURCE_DIR, "conf/data/stocks_sample.csv")


class Cli(Case):
    def test_version_and_help(self):
        r = self.rtproc("--version")
        self.assertEqual(r.code, 0)
        self.assertRegex(r.out, r"^rtproc \d+\.\d+\.\d+ \(plugin ABI \d+\.\d+\)")
        r = self.rtproc("--help")
        self.assertEqual(r.code, 0)
        for flag in ("--dry-run", "--list-plugins", "--help-plugin", "--schema", "--plugins-dir", "--log-level"):
            self.assertIn(flag, r.out)

    def test_no_arguments_is_a_usage_error(self):
        r = self.rtproc()
        self.assertEqual(r.code, 2)
        self.assertIn("usage:", r.err)
        self.assertEqual(self.rtproc("--frobnicate").code, 2)

    def test_list_plugins_finds_ours_without_flags(self):
        r = self.rtproc("--list-plugins")
        self.assertEqual(r.code, 0)
        for kind, name in (("input", "csv"), ("output", "stdout"), ("output", "null")):
            self.assertRegex(r.out, rf"(?m)^{kind}\s+{name}\s")

    def test_schema_and_help_plugin_come_from_the_same_tables(self):
        r = self.rtproc("--schema")
        self.assertEqual(r.code, 0)
        schema = json.loads(r.out)
        plugins = {p["name"]: p for p in schema["plugins"]}
        self.assertIn("csv", plugins)
        self.assertIn("mem_limit", [o["name"] for o in schema["common"]["input"]])
        for name, plugin in plugins.items():
            help_text = self.rtproc("--help-plugin", name).out
            for opt in plugin["options"]:
                self.assertIn(opt["name"], help_text, f"{name}: {opt['name']} missing from --help-plugin")
                self.assertTrue(opt["description"], f"{name}: {opt['name']} has no description")
        path = [o for o in plugins["csv"]["options"] if o["name"] == "path"][0]
        self.assertTrue(path["required"])
        self.assertEqual(self.rtproc("--help-plugin", "in_csv").code, 0)
        self.assertEqual(self.rtproc("--help-plugin", "nosuch").code, 2)

    def test_dry_run_validates_and_prints_the_plan_without_running(self):
        r = self.rtproc("--dry-run", conf=f"""
            [input.prices]
            plugin = csv
            path = {SAMPLE}
            tag = stocks
            [output.out]
            plugin = stdout
            match = stocks
            """)
        self.assertEqual(r.code, 0, r.err)
        self.assertIn("is valid", r.out)
        self.assertRegex(r.out, r"input\s+prices\s+plugin csv\s+tag stocks")
        self.assertRegex(r.out, r"route\s+stocks: out")
        self.assertNotIn('"open"', r.out, "a dry run must not emit records")

    def test_stdout_logfmt(self):
        path = self.write("in.csv", 'sym,price,note\nAAPL,1.5,"two words"\nMSFT,2,\n')
        r = self.rtproc(conf=f"[input.q]\nplugin = csv\npath = {path}\nexit_on_eof = true\n"
                             "[output.stdout]\nformat = logfmt\ntag_key = tag\n")
        self.assertEqual(r.code, 0, r.err)
        self.assertEqual(r.out.splitlines(), ['tag=q sym=AAPL price=1.5 note="two words"',
                                              "tag=q sym=MSFT price=2 note=null"])

    def test_plugins_dir_is_searched_first(self):
        import shutil
        plugdir = os.path.join(self.dir, "plugins")
        os.mkdir(plugdir)
        shutil.copy(os.path.join(os.path.dirname(os.environ.get("RTPROC", "")), "plugins", "out_null.so"),
                    os.path.join(plugdir, "out_null.so"))
        r = self.rtproc("-p", plugdir, "--list-plugins")
        self.assertIn(os.path.join(plugdir, "out_null.so"), r.out)
        r = self.rtproc("--list-plugins", conf=f"[service]\nplugins_dir = {plugdir}\n")
        self.assertIn(os.path.join(plugdir, "out_null.so"), r.out)
        r = self.rtproc("--list-plugins", env={"RTPROC_PLUGINS_DIR": plugdir})
        self.assertIn(os.path.join(plugdir, "out_null.so"), r.out)

    def test_log_format_json(self):
        r = self.rtproc(conf=f"""
            [service]
            log_format = json
            [input.prices]
            plugin = csv
            path = {SAMPLE}
            exit_on_eof = true
            [output.null]
            """)
        self.assertEqual(r.code, 0, r.err)
        lines = [json.loads(l) for l in r.err.splitlines()]
        self.assertTrue(lines)
        for l in lines:
            self.assertEqual(set(l), {"time", "level", "instance", "msg"})
        self.assertIn("input:prices", [l["instance"] for l in lines])

    def test_log_level_flag_overrides_the_file(self):
        conf = f"""
            [service]
            log_level = info
            [input.prices]
            plugin = csv
            path = {SAMPLE}
            exit_on_eof = true
            [output.null]
            """
        self.assertIn("[ info]", self.rtproc(conf=conf).err)
        r = self.rtproc("-v", "error", conf=conf)
        self.assertEqual(r.code, 0)
        self.assertEqual(r.err, "")
        self.assertIn("[debug]", self.rtproc("-v", "debug", conf=conf).err)


class ConfigMistakes(Case):
    def pipeline(self, input_extra="", output_extra=""):
        return f"[input.prices]\nplugin = csv\npath = {SAMPLE}\n{input_extra}\n[output.out]\nplugin = null\n{output_extra}\n"

    def test_misspelt_key_suggests_the_right_one(self):
        self.assert_config_error(self.pipeline("exit_on_oef = true"),
                                 "[input.prices] exit_on_oef: unknown option; did you mean 'exit_on_eof'?")

    def test_missing_required_key(self):
        self.assert_config_error("[input.prices]\nplugin = csv\n[output.null]\n",
                                 "[input.prices] path: required option is missing")

    def test_wrong_types(self):
        self.assert_config_error(self.pipeline("rate = fast"), "[input.prices] rate: invalid value 'fast'")
        self.assert_config_error(self.pipeline("mem_limit = lots"), "[input.prices] mem_limit: invalid value 'lots'")
        self.assert_config_error(self.pipeline("exit_on_eof = maybe"), "[input.prices] exit_on_eof: invalid value")
        self.assert_config_error(self.pipeline("", "retry_max_wait = 30"), "[output.out] retry_max_wait: invalid value '30'")

    def test_file_problems_are_configuration_errors(self):
        self.assert_config_error("[input.p]\nplugin = csv\npath = /nonexistent.csv\n[output.null]\n",
                                 "[input.p] path: cannot open /nonexistent.csv")
        self.assert_config_error(f"[input.p]\nplugin = csv\npath = {self.dir}\n[output.null]\n", "is a directory")

    def test_semantic_checks_name_the_key(self):
        self.assert_config_error(self.pipeline("types = close:float"), "[input.prices] types:")
        self.assert_config_error(self.pipeline("types = nosuch:int"), "no column named 'nosuch'")
        self.assert_config_error(self.pipeline("time_key = when"), "[input.prices] time_key: no column named 'when'")
        self.assert_config_error(self.pipeline("speed = 10"), "[input.prices] speed: needs time_key")
        self.assert_config_error(self.pipeline("time_key = date\ntime_format = %Q"), "[input.prices] time_format:")
        self.assert_config_error(self.pipeline("delimiter = ;;"), "[input.prices] delimiter:")
        self.assert_config_error(self.pipeline("buffer_size = 4G"), "[input.prices] buffer_size: is more than 1G")
        self.assert_config_error(self.pipeline("max_row_size = 2G"), "[input.prices] max_row_size: is more than 1G")
        self.assert_config_error(self.pipeline("", "max_inflight = 0"), "[output.out] max_inflight:")

    def test_unknown_plugin_and_section(self):
        self.assert_config_error("[input.prices]\nplugin = parquet\n[output.null]\n",
                                 "no input plugin named 'parquet'", "[input.prices] plugin:")
        self.assert_config_error("[inptu.prices]\n", "unknown section")

    def test_environment_variables(self):
        conf = "[input.prices]\nplugin = csv\npath = ${RTP_IT_SAMPLE}\n[output.null]\n"
        self.assert_config_error(conf, "environment variable 'RTP_IT_SAMPLE' is not set")
        r = self.rtproc("--dry-run", conf=conf, env={"RTP_IT_SAMPLE": SAMPLE})
        self.assertEqual(r.code, 0, r.err)

    def test_service_section_is_validated_too(self):
        self.assert_config_error("[service]\nlog_levle = debug\n" + self.pipeline(),
                                 "[service] log_levle: unknown option; did you mean 'log_level'?")
        self.assert_config_error("[service]\ngrace = soon\n" + self.pipeline(), "[service] grace:")

    def test_pipeline_needs_inputs_and_outputs(self):
        self.assert_config_error("[output.null]\n", "no [input.NAME] section")
        self.assert_config_error(f"[input.p]\nplugin = csv\npath = {SAMPLE}\n", "no [output.NAME] section")


if __name__ == "__main__":
    unittest.main()
