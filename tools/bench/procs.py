"""A tiny process manager for the benchmark, plus /proc readers (CPU ticks, RSS, machine load).

Every process is started in its own session (so its whole process group can be signalled) with
stdout and stderr going to files in the run's temporary directory. `ProcManager.stop_all()` stops
everything that is still running: SIGTERM to the group, then SIGKILL after a grace period. The
benchmark calls it from a `finally`, so nothing outlives a failed or interrupted run.
"""

import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'test', 'integration'))
from herdlib import free_ports  # noqa: E402,F401  (the benchmark's callers say procs.free_ports)

CLK_TCK = os.sysconf('SC_CLK_TCK')


class StartError(Exception):
    pass


class Proc:
    def __init__(self, name, argv, popen, out_path, err_path):
        self.name = name
        self.argv = argv
        self.popen = popen
        self.pid = popen.pid
        self.out_path = out_path
        self.err_path = err_path

    def alive(self):
        return self.popen.poll() is None

    def stdout_text(self):
        try:
            with open(self.out_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def stderr_tail(self, n=2000):
        try:
            with open(self.err_path, 'rb') as f:
                data = f.read()
            return data[-n:].decode('utf-8', 'replace')
        except OSError:
            return ''


class ProcManager:
    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []
        self.counter = 0

    def start(self, name, argv, cwd=None, env=None):
        self.counter += 1
        base = os.path.join(self.workdir, '%03d-%s' % (self.counter, name))
        out = open(base + '.out', 'wb')
        err = open(base + '.err', 'wb')
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd,
                                 env=env, start_new_session=True, close_fds=True)
        except OSError as e:
            raise StartError('%s: cannot start %s: %s' % (name, argv[0], e))
        finally:
            out.close()
            err.close()
        proc = Proc(name, argv, p, base + '.out', base + '.err')
        self.procs.append(proc)
        return proc

    def wait_ready(self, proc, timeout, text=None, port=None):
        """Wait until `text` appears on proc's stdout (if given) and `port` accepts a TCP
        connection on 127.0.0.1 (if given). Raises StartError on exit or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if not proc.alive():
                raise StartError('%s exited with status %s before it was ready: %s'
                                 % (proc.name, proc.popen.returncode, proc.stderr_tail(600).strip()))
            ok = True
            if text is not None and text not in proc.stdout_text():
                ok = False
            if ok and port is not None and not port_open(port):
                ok = False
            if ok:
                return
            if time.monotonic() > deadline:
                raise StartError('%s not ready after %.0f s: %s'
                                 % (proc.name, timeout, proc.stderr_tail(600).strip()))
            time.sleep(0.05)

    def stop(self, proc, grace=5.0):
        if proc.alive():
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # Anything left of the group (the process or children it started) is killed.
        _signal_group(proc.pid, signal.SIGKILL)
        try:
            proc.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self, grace=5.0):
        procs = list(self.procs)
        for p in procs:
            if p.alive():
                _signal_group(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                p.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in procs:
            self.stop(p, grace=0.0)

    def run(self, name, argv, timeout):
        """Run a tool to completion (bounded by `timeout` seconds). Returns
        (returncode or None when it had to be killed, stdout text, stderr text)."""
        proc = self.start(name, argv)
        try:
            proc.popen.wait(timeout)
            rc = proc.popen.returncode
        except subprocess.TimeoutExpired:
            rc = None
        self.stop(proc, grace=2.0)
        with open(proc.out_path, 'rb') as f:
            out = f.read().decode('utf-8', 'replace')
        with open(proc.err_path, 'rb') as f:
            err = f.read().decode('utf-8', 'replace')
        return rc, out, err


def _signal_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def port_open(port, host='127.0.0.1'):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.2)
    try:
        s.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def cpu_ticks(pid):
    """utime + stime of a process in clock ticks (threads included), or None."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b')') + 2:].split()
    return int(fields[11]) + int(fields[12])


def rss_kb(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def machine_ticks():
    """(busy, total) jiffies over all CPUs from /proc/stat."""
    with open('/proc/stat') as f:
        parts = f.readline().split()[1:]
    vals = [int(v) for v in parts[:8]]
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


class CpuWindow:
    """CPU used by a set of processes and by the whole machine between start() and stop()."""

    def __init__(self, pids):
        self.pids = dict(pids)  # label -> pid

    def start(self):
        self.t0 = time.monotonic()
        self.p0 = {k: cpu_ticks(p) for k, p in self.pids.items()}
        self.m0 = machine_ticks()
        return self

    def stop(self):
        wall = max(1e-6, time.monotonic() - self.t0)
        p1 = {k: cpu_ticks(p) for k, p in self.pids.items()}
        m1 = machine_ticks()
        per = {}
        for k in self.pids:
            if self.p0[k] is not None and p1[k] is not None:
                per[k] = round(100.0 * (p1[k] - self.p0[k]) / CLK_TCK / wall, 1)
        busy = m1[0] - self.m0[0]
        total = max(1, m1[1] - self.m0[1])
        ncpu = os.cpu_count() or 1
        return {'wall_s': round(wall, 3), 'proc_cpu_percent': per,
                'machine_busy_percent': round(100.0 * busy / total * ncpu, 1)}
