"""Measuring a child process for the benchmarks: CPU seconds and peak RSS.

Peak RSS is the child's VmHWM, sampled while it runs: exec resets it, unlike
the ru_maxrss that wait4 reports, which keeps the high-water mark of the
forking Python (wc -l appeared to use 23 MB). VmHWM only grows, so the last
sample is the peak up to then."""
import os
import subprocess
import sys
import time


def peak_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_measuring(proc, every=0.002, on_tick=None):
    """Waits for proc; returns (exit status, CPU seconds, peak RSS kB).
    on_tick, if given, is called between samples (e.g. to drain a pipe)."""
    rss = 0
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return os.waitstatus_to_exitcode(status), ru.ru_utime + ru.ru_stime, rss
        rss = max(rss, peak_rss_kb(proc.pid))
        if on_tick:
            on_tick()
        time.sleep(every)


def run(cmd, env=None, stderr_path=None):
    """Runs cmd to the end; returns (start, wall seconds, CPU seconds, peak RSS
    kB). Its stderr goes to stderr_path (kept for the caller to read) or is
    dropped: never a pipe, which a chatty child could fill and block on while
    it is being measured. A failing command ends the benchmark."""
    t0 = time.perf_counter()
    err = open(stderr_path, "w") if stderr_path else subprocess.DEVNULL
    try:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
                             env=dict(os.environ, **(env or {})))
        status, cpu, rss = wait_measuring(p)
    finally:
        if stderr_path:
            err.close()
    wall = time.perf_counter() - t0
    if status != 0:
        detail = open(stderr_path).read()[-2000:] if stderr_path else ""
        sys.exit(f"{cmd} failed with status {status}\n{detail}")
    return t0, wall, cpu, rss
