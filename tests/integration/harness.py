"""Runs the rtproc binary on pipelines written by the tests.

Every helper returns what a user would see: exit status, stdout, stderr,
and the metrics summary rtproc logs when it stops."""
import json
import os
import re
import subprocess
import tempfile
import textwrap
import time
import unittest

RTPROC = os.environ.get("RTPROC", os.path.join(os.path.dirname(__file__), "../../build/rtproc"))
SOURCE_DIR = os.environ.get("RTP_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
DATA_DIR = os.environ.get("RTP_DATA_DIR", os.path.join(SOURCE_DIR, "../shared/data"))
KAFKA_MOCK = os.environ.get("KAFKA_MOCK", os.path.join(os.path.dirname(os.path.abspath(RTPROC)),
                                                       "tests/kafka/kafka_mock"))
SANITIZED = os.environ.get("RTP_SANITIZE", "") in ("ON", "1", "TRUE", "YES")


def need_data(test, *parts):
    """Skips the test, saying why, when ../shared/data is not beside the repo."""
    path = os.path.join(DATA_DIR, *parts)
    if not os.path.exists(path):
        test.skipTest(f"{path} missing: ../shared/data is not beside this clone")
    return path


def metric(log, instance, name):
    """Value of a counter from the summary 'metrics:' line rtproc logs for an
    instance at exit."""
    for line in log.splitlines():
        if f"[{instance}] metrics:" in line:
            m = re.search(rf"\b{re.escape(name)}=(\d+)", line)
            if m:
                return int(m.group(1))
    raise AssertionError(f"no metric {name} for {instance} in:\n{log[-3000:]}")


class Result:
    def __init__(self, proc, out, err):
        self.code = proc.returncode
        self.out = out
        self.err = err

    def lines(self):
        return [json.loads(l) for l in self.out.splitlines() if l.strip()]

    def metric(self, instance, name):
        return metric(self.err, instance, name)


class Case(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="rtproc-it-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text, mode="w"):
        path = os.path.join(self.dir, name)
        with open(path, mode) as f:
            f.write(textwrap.dedent(text) if isinstance(text, str) else text)
        return path

    def conf(self, text):
        # Strip every line: an indented line would be an INI continuation.
        return self.write("pipeline.conf", "\n".join(l.strip() for l in text.splitlines()) + "\n")

    def rtproc(self, *args, conf=None, timeout=120, env=None):
        cmd = [RTPROC] + list(args)
        if conf is not None:
            cmd += ["-c", self.conf(conf)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, **(env or {})), stdin=subprocess.DEVNULL,
                              errors="surrogateescape")
        return Result(proc, proc.stdout, proc.stderr)

    def start(self, conf, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw):
        path = self.conf(conf)
        return subprocess.Popen([RTPROC, "-c", path], stdout=stdout, stderr=stderr,
                                stdin=subprocess.DEVNULL, **kw)

    def assert_config_error(self, conf, *fragments):
        r = self.rtproc(conf=conf)
        self.assertEqual(r.code, 2, f"expected a configuration error, got {r.code}:\n{r.err}")
        for frag in fragments:
            self.assertIn(frag, r.err)
        return r


def read(path):
    """A log or output file as text, undecodable bytes replaced."""
    with open(path, errors="replace") as f:
        return f.read()


def wait_for(pred, timeout, what):
    """Polls pred every 0.1 s; fails the test after timeout seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
