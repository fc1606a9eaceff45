#!/usr/bin/python3
"""Catch-up figures against the targets of issue 8 (`make bench-catch-up`).

    /usr/bin/python3 tools/bench/catch_up_bench.py [--clients N] [--threads T] [--only full|partition]

1. Full catch-up: a five-server herd (config.yaml's topology, free loopback ports) is seeded with N
   clients (default 1,000,000) at Goloman; once Welsh holds them and the herd is idle again, Welsh is SIGKILLed and restarted
   empty. Its only neighbour, Holiday, sends it the whole table while herd-load keeps sending
   IAMATs to Holiday (50 connections, pipeline 1, in back-to-back 0.5 s runs that each measure
   their rate). Reported: the catch-up time (Welsh's `caught up` line: from its SYNC answer to the
   closing MARK; and from the restart), and Holiday's IAMAT rate during the catch-up against its
   rate in the 3 s before the kill.
   Targets: <= 5 s; >= 80 % of the normal rate.
2. Partition: the same herd with faultproxy between the servers; Welsh's link to Holiday is cut
   for 1 s while herd-load sends IAMATs to Goloman (distinct clients, each moving several times),
   then healed. Reported: the bytes that crossed the link (both directions) from the heal until both
   ends are caught up, against the bytes of the records Welsh actually missed (each client's newest
   record). Target: <= 2x.

Standard library; reuses test/integration/herdlib.py for herds, the proxy and WHATSAT reads.
Prints a plain report; `--json FILE` also writes the figures.
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'test', 'integration'))
sys.dont_write_bytecode = True

import herdlib  # noqa: E402

LOADGEN = os.path.join(ROOT, 'build', 'herd-load')


def load(herd, entry, duration, clients, connections=50, pipeline=1, extra=()):
    """One herd-load run; returns its JSON."""
    argv = [LOADGEN, '--config', herd.config_path, '--entry', entry, '--connections', str(connections),
            '--pipeline', str(pipeline), '--duration', str(duration), '--clients', str(clients),
            '--json'] + list(extra)
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=duration + 600)
    try:
        return json.loads(out.stdout)
    except ValueError:
        return {}


class Slices(threading.Thread):
    """herd-load at one server in back-to-back short runs: [(start, end, IAMATs/s)] (monotonic)."""

    def __init__(self, herd, entry, slice_s=0.5, clients=1000):
        super().__init__(daemon=True)
        self.herd, self.entry, self.slice_s, self.clients = herd, entry, slice_s, clients
        self.samples = []
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            t0 = time.monotonic()
            j = load(self.herd, self.entry, self.slice_s, self.clients)
            t1 = time.monotonic()
            if j.get('throughput') is not None:
                self.samples.append((t0, t1, j['throughput']))

    def mean(self, lo, hi):
        """The mean rate of the slices that overlap [lo, hi] by at least half their length."""
        inside = [r for a, b, r in self.samples if min(b, hi) - max(a, lo) >= (b - a) / 2]
        return (sum(inside) / len(inside), len(inside)) if inside else (None, 0)


def cpu_s(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def settle(herd, limit=120.0, idle=0.05):
    """Waits until the herd's servers together use under `idle` of a core (floods and log writing
    after a big seeding are over), or `limit` seconds. Returns the seconds waited."""
    t0 = time.monotonic()
    pids = [s.pid for s in herd.servers.values()]
    while time.monotonic() - t0 < limit:
        a = sum(cpu_s(p) for p in pids)
        time.sleep(1.0)
        if sum(cpu_s(p) for p in pids) - a < idle:
            break
    return round(time.monotonic() - t0, 1)


def caught_up(herd, name, sender):
    pat = re.compile(rb'/%s \* caught up: (\d+) catch-up records received, (\d+) stored, in (\d+) ms'
                     % sender.encode())
    return [tuple(int(x) for x in m.groups()) for m in pat.finditer(herd.log_bytes(name))]


def sample_ids(n, k):
    return [b'c%d.load' % i for i in random.Random(7).sample(range(n), min(k, n))] + [b'c%d.load' % (n - 1)]


def full_catch_up(workdir, clients, threads, victim='Welsh', sender='Holiday', data=False):
    herd = herdlib.Herd(os.path.join(workdir, 'full'), threads=threads,
                        limits={'max_connections': 100000},
                        extra_yaml='data_dir: data\nfsync: everysec\n' if data else '')
    os.makedirs(herd.workdir, exist_ok=True)
    herd.start()
    try:
        t0 = time.monotonic()
        seed = load(herd, 'Goloman', 1, clients, connections=50, pipeline=16,
                    extra=['--seed', '--requests', '1', '--timeout', '30'])
        ids = sample_ids(clients, 2000)
        want = herdlib.at_lines(herd.port('Goloman'), ids, timeout=30)
        herdlib.wait_for(lambda: herdlib.at_lines(herd.port(victim), ids, timeout=30) == want, 600,
                         'the seeded clients at %s' % victim, interval=1.0)
        seeded_s = time.monotonic() - t0
        settled = settle(herd)
        # IAMATs to Holiday (the sender) all along, in 0.5 s runs of herd-load, each measuring its
        # own rate: the rate during the catch-up is the mean of the runs inside it.
        slices = Slices(herd, sender)
        slices.start()
        time.sleep(4.0)
        t_kill = time.monotonic()
        herd.kill(victim)
        time.sleep(1.0)
        around = herdlib.neighbours(herd, victim)
        before = {n: len(caught_up(herd, victim, n)) for n in around}
        t_restart = time.monotonic()
        herd.restart(victim)
        cpu0 = {n: cpu_s(s.pid) for n, s in herd.servers.items()}
        herdlib.wait_for(lambda: len(caught_up(herd, victim, sender)) > before[sender], 300,
                         'the catch-up of %s by %s' % (victim, sender), interval=0.02)
        t_done = time.monotonic()
        cpu1 = {n: cpu_s(s.pid) for n, s in herd.servers.items()}
        herdlib.wait_for(lambda: all(len(caught_up(herd, victim, n)) > before[n] for n in around), 300,
                         'the catch-up of %s by every neighbour' % victim, interval=0.05)
        t_all = time.monotonic()
        time.sleep(1.0)
        slices.stop_flag.set()
        slices.join(30)
        received, stored, ms = caught_up(herd, victim, sender)[-1]
        check = herdlib.at_lines(herd.port(victim), ids, timeout=30)
        complete = sum(1 for i in ids if check[i] is not None)
        t_start = t_done - ms / 1000.0
        normal, n_normal = slices.mean(t_kill - 3.0, t_kill)
        during, n_during = slices.mean(t_start, t_done)
        return {
            'restarted': victim, 'sender': sender, 'clients': clients, 'seed_s': round(seeded_s, 1), 'seeded': seed.get('seeded'), 'settle_s': settled,
            'catch_up_ms': ms, 'restart_to_caught_up_s': round(t_done - t_restart, 2),
            'restart_to_all_neighbours_s': round(t_all - t_restart, 2),
            'records_received': received, 'records_stored': stored,
            'sample_present': '%d/%d' % (complete, len(ids)),
            'window_s': round(ms / 1000.0, 3),
            'cpu_s_restart_to_done': {n: round(cpu1[n] - cpu0[n], 2) for n in cpu0},
            'sender_rate_normal': round(normal or 0), 'normal_slices': n_normal,
            'sender_rate_during': round(during or 0) if during else None, 'during_slices': n_during,
            'rate_ratio': round(during / normal, 3) if during and normal else None,
        }
    finally:
        herd.stop()


def partition(workdir, threads, clients=2000, duration=1.0):
    herd = herdlib.Herd(os.path.join(workdir, 'partition'), threads=threads, proxied=True)
    os.makedirs(herd.workdir, exist_ok=True)
    herd.start()
    try:
        # Warm-up traffic, then Welsh holds (and has MARKed) everything so far.
        load(herd, 'Goloman', 1.0, clients, connections=10)
        herdlib.flush_links(herd)
        time.sleep(0.3)  # the MARKs after the sentinels (at most 100 ms apart)
        before = {n: len(caught_up(herd, n, m)) for n, m in (('Welsh', 'Holiday'), ('Holiday', 'Welsh'))}
        herd.proxy('mode Holiday>Welsh drop')
        herd.proxy('mode Welsh>Holiday drop')
        run = load(herd, 'Goloman', duration, clients, connections=10)
        ids = [b'c%d.load' % i for i in range(clients)]
        newest = herdlib.at_lines(herd.port('Holiday'), ids, timeout=30)
        at_welsh = herdlib.at_lines(herd.port('Welsh'), ids, timeout=30)
        missed = {i: l for i, l in newest.items() if l is not None and at_welsh[i] != l}
        missed_bytes = sum(len(l) + 1 for l in missed.values())
        for r in ('Holiday>Welsh', 'Welsh>Holiday'):
            herd.proxy('reset ' + r)
        herd.proxy('mode Holiday>Welsh pass')
        herd.proxy('mode Welsh>Holiday pass')
        herdlib.wait_for(lambda: all(len(caught_up(herd, n, m)) > before[n]
                                     for n, m in (('Welsh', 'Holiday'), ('Holiday', 'Welsh'))), 60,
                         'both catch-ups', interval=0.05)
        time.sleep(0.3)  # the closing MARK lines, the last bytes in the proxy
        stats = {r: herd.proxy_stats(r) for r in ('Holiday>Welsh', 'Welsh>Holiday')}
        exchanged = sum(s['up'] + s['down'] for s in stats.values())
        after = herdlib.at_lines(herd.port('Welsh'), ids, timeout=30)
        still = sum(1 for i, l in missed.items() if after[i] != l)
        return {
            'partition_s': duration, 'updates_during': round(run.get('throughput', 0) * duration),
            'clients_missed': len(missed), 'missed_bytes': missed_bytes, 'exchanged_bytes': exchanged,
            'ratio': round(exchanged / missed_bytes, 3) if missed_bytes else None,
            'still_missing_after': still, 'routes': stats,
        }
    finally:
        herd.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--clients', type=int, default=1_000_000)
    ap.add_argument('--threads', type=int, default=1, help='event loops per server (default 1)')
    ap.add_argument('--only', choices=('full', 'partition'))
    ap.add_argument('--data', action='store_true',
                    help='servers keep a data_dir (fsync everysec): the restarted one reloads it')
    ap.add_argument('--restart', default='Welsh', help='the server restarted empty (default Welsh)')
    ap.add_argument('--sender', default='Holiday',
                    help='its neighbour whose catch-up and IAMAT rate are measured (default Holiday)')
    ap.add_argument('--json', help='also write the figures to this file')
    ap.add_argument('--keep', action='store_true', help='keep the temporary directory')
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix='herd-catch-up-')
    results = {}
    try:
        if args.only in (None, 'full'):
            results['full'] = r = full_catch_up(workdir, args.clients, args.threads, args.restart, args.sender, args.data)
            print('full catch-up of %d clients at a restarted %s: %.2f s (SYNC to MARK; %.2f s from '
                  'the restart; %.2f s until every neighbour finished), %d records received; sample '
                  'present %s' % (
                      r['clients'], args.restart, r['catch_up_ms'] / 1000.0, r['restart_to_caught_up_s'],
                      r['restart_to_all_neighbours_s'],
                      r['records_received'], r['sample_present']))
            print('  ' + args.sender + ' (the sender) IAMAT rate: %s/s in the 3 s before the kill (%d runs), %s/s during '
                  'the %.2f s catch-up (%d runs): %s of normal' % (
                      r['sender_rate_normal'], r['normal_slices'], r['sender_rate_during'], r['window_s'],
                      r['during_slices'], '%.0f %%' % (100 * r['rate_ratio']) if r['rate_ratio'] else 'n/a'))
            print('  CPU seconds from the restart to the end of the catch-up: %s' % ', '.join(
                '%s %.2f' % kv for kv in sorted(r['cpu_s_restart_to_done'].items())))
        if args.only in (None, 'partition'):
            results['partition'] = r = partition(workdir, args.threads)
            print('1 s partition of Holiday-Welsh under load: %d clients missed (%d bytes), %d bytes '
                  'exchanged after the heal: %sx; %d still missing' % (
                      r['clients_missed'], r['missed_bytes'], r['exchanged_bytes'], r['ratio'],
                      r['still_missing_after']))
    finally:
        if not args.keep:
            subprocess.run(['rm', '-rf', workdir])
        else:
            print('kept', workdir)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
