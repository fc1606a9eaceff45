#!/usr/bin/python3
"""Which accept strategy wins (issue 11)? `accept: exclusive` (one listening socket per port that
every loop watches with EPOLLEXCLUSIVE; the loop that wakes hands client connections round-robin to
the loops) against `accept: reuseport` (one SO_REUSEPORT socket per loop; the kernel's hash picks
the loop, which keeps the connection).

    /usr/bin/python3 tools/bench/accept_bench.py [--rounds 5] [--duration 5] [--perf] [--out FILE]
    make bench-accept

One lone server (no links, offline places, the default log level, `--threads` loops, default 2) on
loopback. Each round starts a fresh server in each mode in turn (the order alternates between
rounds, so the machine's drift falls on both sides) and runs against it:
  - churn: build/herd-churn, threads each repeating connect, one IAMAT, its reply, close;
    connections/s and connect-to-reply percentiles (one scenario per --churn-threads value);
  - steady: build/herd-load, 50 long-lived connections at pipeline 1 and 16; IAMAT/s and latency.
For every scenario it records, from the server's /metrics and /proc, how many connections each loop
took from the kernel and ran, and each loop thread's CPU. The summary gives per mode the median and
the range (min..max) over the rounds, the ratio of the medians (reuseport / exclusive), and the
ratios within each round (both modes ran back to back) with how many rounds each mode led.

With --perf, two extra rounds per mode run each scenario under `perf stat --per-thread` (context
switches, migrations, epoll_wait/accept4/write/read syscalls, per loop thread), normalised per
connection (churn) or per 1,000 replies (steady): the wake-ups and hand-offs each mode costs. These
rounds are kept apart from the timed ones: syscall tracepoints slow every syscall.
"""
import argparse
import json
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import procs  # tools/bench: free ports, /proc readers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(REPO, 'build')
MODES = ('exclusive', 'reuseport')
PERF_EVENTS = ('task-clock,context-switches,cpu-migrations,syscalls:sys_enter_epoll_wait,'
               'syscalls:sys_enter_accept4,syscalls:sys_enter_write,syscalls:sys_enter_read')
START_TIMEOUT = 30
CLK_TCK = os.sysconf('SC_CLK_TCK')


class Server:
    """One herd-server, alone, in its own temporary directory."""

    def __init__(self, mode, threads, log_level):
        self.tmp = tempfile.mkdtemp(prefix='herd-accept-')
        self.port, peer, self.admin = procs.free_ports(3)
        cfg = os.path.join(self.tmp, 'config.yaml')
        with open(cfg, 'w') as f:
            f.write('threads: %d\naccept: %s\nlog_dir: logs\nlog_level: %s\nplaces: { provider: offline }\n'
                    'servers:\n  Bench: { host: 127.0.0.1, port: %d, peer_port: %d, admin_port: %d }\n'
                    'links: []\n' % (threads, mode, log_level, self.port, peer, self.admin))
        env = dict(os.environ, HERD_GAZETTEER=os.path.join(BUILD, 'data/cities.pbf'))
        self.proc = subprocess.Popen([os.path.join(BUILD, 'herd-server'), 'Bench', '--config', cfg],
                                     cwd=self.tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        buf = b''
        while b'ready in' not in buf:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise SystemExit('herd-server (accept: %s) did not start' % mode)
            if select.select([self.proc.stdout], [], [], 0.5)[0]:
                buf += os.read(self.proc.stdout.fileno(), 4096)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def loops(self):
        """{loop index: (client accepts, client sessions)} from /metrics."""
        with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % self.admin, timeout=5) as r:
            text = r.read().decode()
        out = {}
        for name, pos in (('herd_loop_client_accepts_total', 0), ('herd_loop_client_sessions_total', 1)):
            for m in re.finditer(r'^%s\{loop="(\d+)"\} (\d+)$' % name, text, re.M):
                out.setdefault(int(m.group(1)), [0, 0])[pos] = int(m.group(2))
        replies = sum(int(v) for v in re.findall(r'^herd_commands_total\{[^}]*\} (\d+)$', text, re.M))
        return out, replies

    def cpu(self):
        """{thread name: CPU seconds} of the server's threads, and the process total."""
        out = {}
        task_dir = '/proc/%d/task' % self.proc.pid
        for tid in os.listdir(task_dir):
            try:
                with open(os.path.join(task_dir, tid, 'stat')) as f:
                    stat = f.read()
            except OSError:
                continue
            name = stat[stat.index('(') + 1:stat.rindex(')')]
            fields = stat[stat.rindex(')') + 2:].split()
            out[name] = out.get(name, 0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
        out['total'] = sum(v for k, v in out.items())
        return out


def run_churn(port, threads, duration):
    r = subprocess.run([os.path.join(BUILD, 'herd-churn'), '--target', '127.0.0.1:%d' % port, '--threads',
                        str(threads), '--duration', str(duration), '--json'],
                       stdout=subprocess.PIPE, timeout=duration + 60)
    doc = json.loads(r.stdout)
    return {'rate': doc['per_s'], 'p50_ms': doc['p50_ms'], 'p99_ms': doc['p99_ms'], 'p999_ms': doc['p999_ms'],
            'errors': doc['connect_errors'] + doc['reply_errors'] + doc['bad_replies'],
            'gen_cpu_s': doc['cpu_s'], 'units': doc['connections']}


def run_steady(port, pipeline, duration, warmup):
    r = subprocess.run([os.path.join(BUILD, 'herd-load'), '--target', '127.0.0.1:%d' % port, '--connections', '50',
                        '--pipeline', str(pipeline), '--duration', '%gs' % duration, '--warmup', '%gs' % warmup,
                        '--threads', '2', '--json'], stdout=subprocess.PIPE, timeout=duration + warmup + 60)
    doc = json.loads(r.stdout)
    lat = doc['latency_us']
    return {'rate': doc['throughput'], 'p50_ms': lat['p50'] / 1000, 'p99_ms': lat['p99'] / 1000,
            'p999_ms': lat['p99.9'] / 1000, 'errors': doc['errors']['total'], 'gen_cpu_s': doc['cpu_seconds'],
            'units': doc['replies']}


def perf_stat(pid, seconds, out):
    return subprocess.Popen(['perf', 'stat', '-x,', '--per-thread', '-e', PERF_EVENTS, '-p', str(pid), '-o', out,
                             '--', 'sleep', '%g' % seconds], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_perf(path):
    """{event: {thread name: count}} from `perf stat -x, --per-thread` output."""
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.strip().split(',')
            if len(parts) < 4 or not parts[1] or parts[1].startswith('<'):
                continue
            thread = parts[0].rsplit('-', 1)[0]
            out.setdefault(parts[3], {})
            out[parts[3]][thread] = out[parts[3]].get(thread, 0) + float(parts[1])
    return out


def scenario_list(args):
    out = [('churn-%d' % t, 'churn', t) for t in args.churn_threads]
    out += [('steady-p1', 'steady', 1), ('steady-p16', 'steady', 16)]
    return out


def one_run(mode, args, perf_dir=None):
    """Runs every scenario against a fresh server in `mode`; a dict scenario -> figures."""
    server = Server(mode, args.threads, args.log_level)
    results = {}
    try:
        for name, kind, param in scenario_list(args):
            loops0, replies0 = server.loops()
            cpu0 = server.cpu()
            perf = None
            warmup = 0 if perf_dir else args.warmup
            if perf_dir:
                perf_path = os.path.join(perf_dir, '%s-%s.txt' % (mode, name))
                perf = perf_stat(server.proc.pid, args.duration, perf_path)
            if kind == 'churn':
                r = run_churn(server.port, param, args.duration)
            else:
                r = run_steady(server.port, param, args.duration, warmup)
            if perf:
                perf.wait(timeout=args.duration + 30)
            loops1, replies1 = server.loops()
            cpu1 = server.cpu()
            r['accepts'] = {i: loops1[i][0] - loops0.get(i, [0, 0])[0] for i in loops1}
            r['sessions'] = {i: loops1[i][1] - loops0.get(i, [0, 0])[1] for i in loops1}
            r['server_cpu_s'] = cpu1['total'] - cpu0['total']
            r['loop_cpu_s'] = {k: cpu1[k] - cpu0.get(k, 0) for k in cpu1 if k.startswith('loop-')}
            r['server_replies'] = replies1 - replies0
            if perf:
                r['perf'] = read_perf(perf_path)
            results[name] = r
    finally:
        server.stop()
    return results


def spread(d):
    """The busiest loop's share over an even share: 1.00 is perfectly even, 2.00 one loop of two."""
    vals = list(d.values())
    total = sum(vals)
    return max(vals) * len(vals) / total if total else 0.0


def fmt_range(vals, fmt):
    return (fmt + ' (' + fmt + '..' + fmt + ')') % (statistics.median(vals), min(vals), max(vals))


def summarise(runs, args):
    lines = []
    scen = [s[0] for s in scenario_list(args)]
    lines.append('%d rounds per mode, %g s per scenario, %d loops, log_level %s; median (min..max)'
                 % (len(runs['exclusive']), args.duration, args.threads, args.log_level))
    for s in scen:
        lines.append('')
        unit = 'conn/s' if s.startswith('churn') else 'IAMAT/s'
        lines.append('%s:' % s)
        med = {}
        for m in MODES:
            rs = [r[s] for r in runs[m]]
            med[m] = statistics.median(r['rate'] for r in rs)
            lines.append('  %-9s %s %s, p50 %s ms, p99 %s ms, server CPU/unit %s us, sessions spread %s, '
                         'loop CPU spread %s, gen CPU %s s, errors %d'
                         % (m, fmt_range([r['rate'] for r in rs], '%.0f'), unit,
                            fmt_range([r['p50_ms'] for r in rs], '%.3f'),
                            fmt_range([r['p99_ms'] for r in rs], '%.2f'),
                            fmt_range([1e6 * r['server_cpu_s'] / max(1, r['units']) for r in rs], '%.1f'),
                            fmt_range([spread(r['sessions']) for r in rs], '%.2f'),
                            fmt_range([spread(r['loop_cpu_s']) for r in rs], '%.2f'),
                            fmt_range([r['gen_cpu_s'] for r in rs], '%.2f'),
                            sum(r['errors'] for r in rs)))
            lines.append('            accepts per loop: %s; sessions per loop: %s'
                         % ([sorted(r['accepts'].values()) for r in rs],
                            [sorted(r['sessions'].values()) for r in rs]))
        # Each round ran both modes back to back: the per-round ratios cancel most of the drift.
        paired = [b[s]['rate'] / a[s]['rate'] for a, b in zip(runs['exclusive'], runs['reuseport'])]
        lines.append('  reuseport / exclusive: ratio of medians %.3f; per round: median %.3f (%.3f..%.3f), '
                     'reuseport ahead in %d of %d'
                     % (med['reuseport'] / med['exclusive'], statistics.median(paired), min(paired), max(paired),
                        sum(1 for x in paired if x > 1), len(paired)))
    return lines


def summarise_perf(perf_runs, args):
    lines = ['', 'perf stat (per connection for churn, per 1,000 replies for steady; loop threads only;'
             ' median of %d rounds)' % len(perf_runs['exclusive'])]
    for s in [x[0] for x in scenario_list(args)]:
        lines.append('%s:' % s)
        for m in MODES:
            per = {}
            for r in perf_runs[m]:
                rr = r[s]
                div = rr['units'] if s.startswith('churn') else rr['server_replies'] / 1000.0
                for ev, threads in rr.get('perf', {}).items():
                    v = sum(c for t, c in threads.items() if t.startswith('loop-'))
                    if ev == 'task-clock':
                        ev, v = 'loop CPU us', v * 1000  # perf gives msec
                    per.setdefault(ev, []).append(v / max(1e-9, div))
            short = lambda e: e.replace('syscalls:sys_enter_', '').replace('context-switches', 'ctxsw')
            lines.append('  %-9s ' % m + ', '.join('%s %.2f' % (short(e), statistics.median(v))
                                                   for e, v in sorted(per.items())))
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--duration', type=float, default=5, help='seconds per scenario')
    ap.add_argument('--warmup', type=float, default=1, help='herd-load warm-up seconds (steady scenarios)')
    ap.add_argument('--threads', type=int, default=2, help='event loops of the server')
    ap.add_argument('--churn-threads', type=lambda s: [int(x) for x in s.split(',')], default=[4, 16])
    ap.add_argument('--log-level', default='io')
    ap.add_argument('--perf', action='store_true', help='also run two perf stat rounds per mode')
    ap.add_argument('--out', help='write every figure as JSON here')
    args = ap.parse_args()
    for exe in ('herd-server', 'herd-load', 'herd-churn'):
        if not os.path.exists(os.path.join(BUILD, exe)):
            raise SystemExit('build/%s missing: run make' % exe)
    runs = {m: [] for m in MODES}
    for r in range(args.rounds):
        for m in (MODES if r % 2 == 0 else MODES[::-1]):
            res = one_run(m, args)
            runs[m].append(res)
            print('round %d %-9s ' % (r + 1, m) + '  '.join('%s %.0f/s' % (k, v['rate']) for k, v in res.items()),
                  flush=True)
    perf_runs = {m: [] for m in MODES}
    if args.perf:
        with tempfile.TemporaryDirectory(prefix='herd-accept-perf-') as pd:
            for r in range(2):
                for m in (MODES if r % 2 == 0 else MODES[::-1]):
                    perf_runs[m].append(one_run(m, args, perf_dir=pd))
                    print('perf round %d %s done' % (r + 1, m), flush=True)
    lines = summarise(runs, args)
    if args.perf:
        lines += summarise_perf(perf_runs, args)
    print('\n'.join(lines))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump({'args': vars(args), 'runs': runs, 'perf_runs': perf_runs, 'summary': lines}, f, indent=1)
    bad = any(r[s]['errors'] for m in MODES for r in runs[m] for s in r)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
