#!/usr/bin/python3
"""Catch-up figures against the targets of issue 8 (`make bench-catch-up`).

    /usr/bin/python3 tools/bench/catch_up_bench.py [--clients N] [--threads T] [--only full|partition]

1. Full catch-up: a five-server herd (config.yaml's topology, free loopback ports) is seeded with N
   clients (default 1,000,000) at Goloman; once Welsh holds them, Welsh is SIGKILLed and restarted
   empty. Its only neighbour, Holiday, sends it the whole table while herd-load keeps sending
   IAMATs to Holiday (50 connections, pipeline 1). Reported: the catch-up time (Welsh's `caught up`
   line: from its SYNC answer to the closing MARK; and from the restart), and Holiday's IAMAT rate
   during the catch-up against its rate in the 3 s before the kill, both counted from the replies
   in Holiday's log.
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


class Background(threading.Thread):
    """One long herd-load run at a server (closed loop, 50 connections, pipeline 1)."""

    def __init__(self, herd, entry, duration, clients=1000):
        super().__init__(daemon=True)
        self.herd, self.entry, self.duration, self.clients = herd, entry, duration, clients
        self.result = None

    def run(self):
        self.result = load(self.herd, self.entry, self.duration, self.clients)


STAMP = re.compile(rb'^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})Z ')


def stamp(line):
    """A log entry's UTC time in seconds (the day's part is enough for windows of seconds)."""
    m = STAMP.match(line)
    if not m:
        return None
    h, mi, sec, us = (int(m.group(i)) for i in (4, 5, 6, 7))
    return int(m.group(3)) * 86400 + h * 3600 + mi * 60 + sec + us / 1e6


def log_times(herd, name, needle):
    """The times of the log entries containing `needle` (bytes) or matching it (a compiled regex)."""
    hit = needle.search if hasattr(needle, 'search') else (lambda l: needle in l)
    return [t for t in (stamp(l) for l in herd.log_bytes(name).split(b'\n') if hit(l)) if t is not None]


CLIENT_REPLY = re.compile(rb'Z c\d+ > AT ')


def rate_in(times, lo, hi):
    n = sum(1 for t in times if lo <= t < hi)
    return n / (hi - lo) if hi > lo else None


def caught_up(herd, name, sender):
    pat = re.compile(rb'/%s \* caught up: (\d+) catch-up records received, (\d+) stored, in (\d+) ms'
                     % sender.encode())
    return [tuple(int(x) for x in m.groups()) for m in pat.finditer(herd.log_bytes(name))]


def sample_ids(n, k):
    return [b'c%d.load' % i for i in random.Random(7).sample(range(n), min(k, n))] + [b'c%d.load' % (n - 1)]


def full_catch_up(workdir, clients, threads):
    herd = herdlib.Herd(os.path.join(workdir, 'full'), threads=threads,
                        limits={'max_connections': 100000})
    os.makedirs(herd.workdir, exist_ok=True)
    herd.start()
    try:
        t0 = time.monotonic()
        seed = load(herd, 'Goloman', 1, clients, connections=50, pipeline=16,
                    extra=['--seed', '--requests', '1', '--timeout', '30'])
        ids = sample_ids(clients, 2000)
        want = herdlib.at_lines(herd.port('Goloman'), ids, timeout=30)
        herdlib.wait_for(lambda: herdlib.at_lines(herd.port('Welsh'), ids, timeout=30) == want, 600,
                         'the seeded clients at Welsh', interval=1.0)
        seeded_s = time.monotonic() - t0
        # IAMATs to Holiday (the sender) all along; the rates come from Holiday's log (one `>` entry
        # per reply, timestamped), so the window can be exactly the catch-up's.
        bg = Background(herd, 'Holiday', 12.0)
        bg.start()
        time.sleep(4.0)
        herd.kill('Welsh')
        time.sleep(1.0)
        before = len(caught_up(herd, 'Welsh', 'Holiday'))
        t_restart = time.monotonic()
        herd.restart('Welsh')
        herdlib.wait_for(lambda: len(caught_up(herd, 'Welsh', 'Holiday')) > before, 120,
                         'the catch-up of Welsh', interval=0.05)
        t_done = time.monotonic()
        bg.join(60)
        received, stored, ms = caught_up(herd, 'Welsh', 'Holiday')[-1]
        check = herdlib.at_lines(herd.port('Welsh'), ids, timeout=30)
        complete = sum(1 for i in ids if check[i] is not None)
        starts = log_times(herd, 'Holiday', b'Welsh * catch-up: full transfer')
        ends = log_times(herd, 'Holiday', b'Welsh * catch-up sent: ')
        welsh_done = log_times(herd, 'Welsh', b'/Holiday * caught up: ')
        replies = log_times(herd, 'Holiday', CLIENT_REPLY)
        t0, t1 = starts[-1], max(ends[-1], welsh_done[-1])
        kill_t = log_times(herd, 'Holiday', b'Welsh - link down')[-1]
        normal = rate_in(replies, kill_t - 3.0, kill_t)
        during = rate_in(replies, t0, t1)
        return {
            'clients': clients, 'seed_s': round(seeded_s, 1), 'seeded': seed.get('seeded'),
            'catch_up_ms': ms, 'restart_to_caught_up_s': round(t_done - t_restart, 2),
            'records_received': received, 'records_stored': stored,
            'sample_present': '%d/%d' % (complete, len(ids)),
            'sender_send_s': round(ends[-1] - t0, 3), 'window_s': round(t1 - t0, 3),
            'sender_rate_normal': round(normal or 0),
            'sender_rate_during': round(during or 0) if during else None,
            'rate_ratio': round(during / normal, 3) if during and normal else None,
            'load_run': {k: bg.result.get(k) for k in ('throughput', 'errors')} if bg.result else None,
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
    ap.add_argument('--json', help='also write the figures to this file')
    ap.add_argument('--keep', action='store_true', help='keep the temporary directory')
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix='herd-catch-up-')
    results = {}
    try:
        if args.only in (None, 'full'):
            results['full'] = r = full_catch_up(workdir, args.clients, args.threads)
            print('full catch-up of %d clients at a restarted Welsh: %.2f s (SYNC to MARK; %.2f s from '
                  'the restart), %d records received; sample present %s' % (
                      r['clients'], r['catch_up_ms'] / 1000.0, r['restart_to_caught_up_s'],
                      r['records_received'], r['sample_present']))
            print('  Holiday (the sender) IAMAT rate: %s/s in the 3 s before the kill, %s/s during the '
                  '%.2f s catch-up: %s of normal' % (
                      r['sender_rate_normal'], r['sender_rate_during'], r['window_s'],
                      '%.0f %%' % (100 * r['rate_ratio']) if r['rate_ratio'] else 'n/a'))
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
