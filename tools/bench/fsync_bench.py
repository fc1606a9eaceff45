#!/usr/bin/python3
"""What persistence costs: IAMAT throughput of a five-server herd without a data_dir and with each
fsync mode (`make bench-fsync`).

    /usr/bin/python3 tools/bench/fsync_bench.py [--rounds N] [--duration S] [--pipeline D]

For each round and each mode (memory only, fsync no, everysec, always), in turn so that the
machine's other load falls on every mode alike: a fresh herd of config.yaml's topology (one loop per
server), herd-load at Goloman (50 connections, closed loop, 1 s warm-up, then --duration seconds),
and the CPU time the entry server and the whole herd spent per IAMAT (from /proc). Every server of
the herd persists every record, so the herd's CPU figure includes five writers. Reported: the median
over the rounds of each figure, per mode.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'test', 'integration'))
sys.dont_write_bytecode = True

import herdlib  # noqa: E402

LOADGEN = os.path.join(ROOT, 'build', 'herd-load')
MODES = [('memory', ''), ('no', 'data_dir: data\nfsync: no\n'),
         ('everysec', 'data_dir: data\nfsync: everysec\n'), ('always', 'data_dir: data\nfsync: always\n')]


def cpu_s(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def one(workdir, extra, duration, pipeline):
    herd = herdlib.Herd(workdir, threads=1, extra_yaml=extra)
    os.makedirs(workdir, exist_ok=True)
    herd.start()
    try:
        pids = {n: s.pid for n, s in herd.servers.items()}
        before = {n: cpu_s(p) for n, p in pids.items()}
        out = subprocess.run([LOADGEN, '--config', herd.config_path, '--entry', 'Goloman',
                              '--connections', '50', '--pipeline', str(pipeline), '--warmup', '1',
                              '--duration', str(duration), '--clients', '10000', '--json'],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=duration + 120)
        after = {n: cpu_s(p) for n, p in pids.items()}
        j = json.loads(out.stdout)
        answered = j['throughput'] * (duration + 1)  # the warm-up second costs CPU too
        return {'rate': j['throughput'],
                'entry_us': (after['Goloman'] - before['Goloman']) * 1e6 / answered,
                'herd_us': sum(after[n] - before[n] for n in pids) * 1e6 / answered,
                'errors': j.get('errors', {})}
    finally:
        herd.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--duration', type=float, default=4.0)
    ap.add_argument('--pipeline', type=int, default=1)
    ap.add_argument('--json', help='also write the figures to this file')
    args = ap.parse_args()
    results = {m: [] for m, _ in MODES}
    with tempfile.TemporaryDirectory(prefix='herd-fsync-') as tmp:
        for r in range(args.rounds):
            for mode, extra in MODES:
                results[mode].append(one(os.path.join(tmp, '%s-%d' % (mode, r)), extra, args.duration,
                                         args.pipeline))
    summary = {}
    base = None
    print('IAMAT at Goloman, 50 connections, pipeline %d, median of %d rounds:' % (args.pipeline, args.rounds))
    for mode, _ in MODES:
        rs = results[mode]
        s = {k: statistics.median(x[k] for x in rs) for k in ('rate', 'entry_us', 'herd_us')}
        summary[mode] = s
        base = base or s
        print('  %-9s %8.0f/s (%3.0f %%)  entry server %5.1f us/IAMAT  whole herd %5.1f us/IAMAT' % (
            mode, s['rate'], 100 * s['rate'] / base['rate'], s['entry_us'], s['herd_us']))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'summary': summary, 'runs': results}, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
