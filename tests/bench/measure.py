"""Measuring a child process for the benchmarks: CPU seconds and peak RSS.

Peak RSS is the child's VmHWM, sampled while it runs: exec resets it, unlike
the ru_maxrss that wait4 reports, which keeps the high-water mark of the
forking Python (wc -l appeared to use 23 MB). VmHWM only grows, so the last
sample is the peak up to then."""
import os
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
