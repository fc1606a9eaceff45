#!/usr/bin/python3
"""chaos: a five-server herd under steady load while faults come and go (`make chaos`).

    /usr/bin/python3 tools/chaos/chaos.py [--duration S] [--seed N] [--rate R] [--wipe P]
                                          [--fsync always|everysec|no] [--threads T] [--hostile]
                                          [--keep]

The herd of config.yaml's topology runs on free loopback ports with a data_dir, every link through
tools/chaos/faultproxy.py. Two build/herd-load generators send IAMATs to all five servers at a
steady rate for the whole run, recording every acknowledged (client, AT line) pair (--ack-file):
one with many clients, each at one server, and one with a few clients that every server updates
at once. Meanwhile a driver keeps up to two faults going at a time, each for a random while:

    kill       SIGKILL a server; restart it later with its data_dir, or (probability --wipe)
               with an empty one, as a server without persistence would come back
    stop       SIGSTOP a server, SIGCONT it later
    cut        drop a link (both directions): connections reset, new ones refused
    blackhole  one direction of a link takes bytes and delivers none, then its connection resets
    delay      50-200 ms more on every chunk of a link
    slow       one direction of a link drains at 20 KB/s

With --hostile, hostile clients attack the live servers all along (tools/chaos/hostile.py:
slowloris, clients that never read, oversized lines, control bytes, over-long IDs, times from the
future, strangers on the peer port, connection churn), each checked for the answer its limit
promises; the herd runs with short timeouts (hostile.LIMITS) so that every one of them fires.
`make chaos` runs this on the AddressSanitizer build (HERD_SERVER=build/asan/herd-server).

After the faults, everything is healed (dead servers restarted, stopped ones continued, links
passed) and the load stops. Then every server is read (pipelined WHATSAT) until all five hold, for
every client, the same record, and one at least as new as the newest the generators were
acknowledged for. Reported: faults by kind, acknowledged updates, the convergence time after the
last fault, and acknowledged records lost. A loss is excused only when the server that
acknowledged it was later killed and came back without its data (or fsync is not `always`); any
other loss, a server that does not converge within --converge seconds, a wrong reply, or a server
that dies by itself fails the run (exit 1).
"""

import argparse
import os
import random
import re
import shutil
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
import hostile  # noqa: E402

LOADGEN = os.environ.get('HERD_LOAD') or os.path.join(ROOT, 'build', 'herd-load')
WRONG_REPLY = ('invalid', 'malformed', 'mismatch', 'wrong_server', 'bad_json', 'bad_results', 'oversize')
AT_TIME = re.compile(rb'^AT (\S+) \S+ (\S+) \S+ (\d+)(?:\.(\d+))?$')


def now_ns():
    return time.time_ns()


def at_key(line):
    """(client time in ns, line bytes): the order in which the herd keeps the newest record."""
    m = AT_TIME.match(line)
    if not m:
        return None
    frac = (m.group(4) or b'')[:9].ljust(9, b'0')
    return int(m.group(3)) * 10**9 + int(frac), line


class Generator(threading.Thread):
    """One herd-load run in the background; its exit status, report and ack file."""

    def __init__(self, herd, name, rate, clients, connections, duration, ack_path):
        super().__init__(daemon=True)
        self.ack_path = ack_path
        self.argv = [LOADGEN, '--config', herd.config_path, '--entry', ','.join(herd.names),
                     '--connections', str(connections), '--rate', str(rate), '--clients', str(clients),
                     '--duration', str(duration), '--timeout', '2', '--ack-file', ack_path,
                     '--show-errors', '20']
        self.name = name
        self.output = b''
        self.rc = None

    def run(self):
        p = subprocess.run(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.rc, self.output = p.returncode, p.stdout

    def wrong_replies(self):
        text = self.output.decode('utf-8', 'replace')
        return [k for k in WRONG_REPLY if re.search(r'\b%s\b\s+[1-9]' % k, text)]


class Chaos:
    def __init__(self, args, workdir):
        self.args = args
        self.rng = random.Random(args.seed)
        extra = 'data_dir: data\nfsync: %s\n' % args.fsync
        self.herd = herdlib.Herd(workdir, threads=args.threads, proxied=True, extra_yaml=extra,
                                 limits=dict(hostile.LIMITS) if args.hostile else None)
        self.hostile = None
        self.timeline = []        # (ns, kind, target, detail)
        self.down = {}            # server -> (restart at, wipe)
        self.stopped = {}         # server -> continue at
        self.link_faults = {}     # route or link -> (undo at, undo commands)
        self.wiped_at = {}        # server -> [ns of each wiped restart]
        self.killed_at = {}       # server -> [ns of each kill]
        self.stops = {}           # server -> times stopped
        self.restarts = {}        # server -> times restarted
        self.counts = {}
        self.problems = []

    def log(self, kind, target, detail=''):
        self.timeline.append((now_ns(), kind, target, detail))
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.args.verbose:
            print('%7.2f %-9s %-16s %s' % (time.monotonic() - self.t0, kind, target, detail), flush=True)

    # -- faults
    def busy_servers(self):
        # Also called by the hostile clients' thread while this one changes the dicts.
        while True:
            try:
                return set(self.down) | set(self.stopped)
            except RuntimeError:
                continue

    def start_fault(self, t):
        herd = self.herd
        kind = self.rng.choice(['kill', 'kill', 'stop', 'cut', 'cut', 'blackhole', 'delay', 'slow'])
        free = [n for n in herd.names if n not in self.busy_servers()]
        if kind in ('kill', 'stop'):
            if len(self.busy_servers()) >= 2 or not free:
                return
            name = self.rng.choice(free)
            if kind == 'kill':
                wipe = self.rng.random() < self.args.wipe
                # Marked busy before the signal: hostile.py must never judge an attack on it.
                self.down[name] = (t + self.rng.uniform(0.5, 3.0), wipe)
                self.killed_at.setdefault(name, []).append(now_ns())
                herd.kill(name)
                self.log('kill', name, 'comes back %s' % ('empty' if wipe else 'with its data'))
            else:
                self.stopped[name] = t + self.rng.uniform(0.5, 3.0)
                self.stops[name] = self.stops.get(name, 0) + 1
                herd.servers[name].proc.send_signal(signal.SIGSTOP)
                self.log('stop', name)
            return
        a, b = self.rng.choice(herd.links)
        if self.rng.random() < 0.5:
            a, b = b, a
        link = '%s-%s' % tuple(sorted((a, b)))
        if any(k.startswith(link) for k in self.link_faults):
            return
        until = t + self.rng.uniform(0.5, 4.0)
        if kind == 'cut':
            for r in ('%s>%s' % (a, b), '%s>%s' % (b, a)):
                herd.proxy('mode %s drop' % r)
            undo = ['mode %s>%s pass' % (a, b), 'mode %s>%s pass' % (b, a)]
        elif kind == 'blackhole':
            herd.proxy('mode %s>%s blackhole' % (a, b))
            undo = ['mode %s>%s pass' % (a, b), 'close %s>%s' % (a, b)]
        elif kind == 'delay':
            ms = self.rng.randint(50, 200)
            for r in ('%s>%s' % (a, b), '%s>%s' % (b, a)):
                herd.proxy('delay %s %d' % (r, ms))
            undo = ['delay %s>%s 0' % (a, b), 'delay %s>%s 0' % (b, a)]
        else:
            herd.proxy('rate %s>%s 20000' % (a, b))
            undo = ['rate %s>%s 0' % (a, b)]
        self.link_faults[link + ':' + kind] = (until, undo)
        self.log(kind, '%s>%s' % (a, b) if kind in ('blackhole', 'slow') else link)

    def end_faults(self, t, everything=False):
        herd = self.herd
        for name, (when, wipe) in list(self.down.items()):
            if everything or t >= when:
                if wipe:
                    herd.wipe(name)
                    self.wiped_at.setdefault(name, []).append(now_ns())
                herd.restart(name)
                self.restarts[name] = self.restarts.get(name, 0) + 1
                del self.down[name]
                self.log('restart', name, 'empty' if wipe else 'with its data')
        for name, when in list(self.stopped.items()):
            if everything or t >= when:
                herd.servers[name].proc.send_signal(signal.SIGCONT)
                del self.stopped[name]
                self.log('continue', name)
        for key, (when, undo) in list(self.link_faults.items()):
            if everything or t >= when:
                for cmd in undo:
                    herd.proxy(cmd)
                del self.link_faults[key]
                self.log('heal', key)

    def check_alive(self):
        for name, s in self.herd.servers.items():
            if name in self.down:
                continue
            if not s.alive():
                self.problems.append('%s died by itself (exit %s): %r' % (name, s.proc.returncode, s.stderr()[-2000:]))
                self.down[name] = (0, False)

    # -- the run
    def run(self):
        args, herd = self.args, self.herd
        os.makedirs(herd.workdir, exist_ok=True)
        herd.start()
        self.t0 = time.monotonic()
        acks = [os.path.join(herd.workdir, 'acks-%d.txt' % i) for i in range(2)]
        load_s = args.duration + 1  # the load stops about when the last fault ends
        gens = [Generator(herd, 'many clients', args.rate, 2000, 10, load_s, acks[0]),
                Generator(herd, 'shared clients', max(50, args.rate // 5), 4, 10, load_s, acks[1])]
        for g in gens:
            g.start()
        if args.hostile:
            self.hostile = hostile.Hostile(
                herd, self.busy_servers,
                lambda n: (len(self.killed_at.get(n, [])), self.stops.get(n, 0), self.restarts.get(n, 0)),
                self.rng.randrange(1 << 30), clock=lambda: time.monotonic() - self.t0)
            self.hostile.start()
        time.sleep(1.0)
        end = time.monotonic() + args.duration
        next_fault = time.monotonic()
        while time.monotonic() < end:
            t = time.monotonic()
            self.end_faults(t)
            self.check_alive()
            if t >= next_fault and len(self.down) + len(self.stopped) + len(self.link_faults) < 2:
                self.start_fault(t)
                next_fault = t + self.rng.uniform(0.3, 1.5)
            time.sleep(0.05)
        if self.hostile:
            self.hostile.stop()
            self.hostile.join(60)
            self.problems += self.hostile.problems
            self.rss_mib = {n: herd.servers[n].vm_rss_kb() / 1024 for n in herd.names
                            if herd.servers[n].alive()}
        self.end_faults(time.monotonic(), everything=True)
        last_fault_ns = now_ns()
        t_last = time.monotonic()
        self.log('healed', '*', 'the last fault is over')
        for g in gens:
            g.join(load_s + 120)
        self.load_end = time.monotonic()
        # Errors of the generators: connection trouble is expected; a wrong reply is not.
        for g in gens:
            wrong = g.wrong_replies()
            if wrong:
                self.problems.append('generator (%s) saw wrong replies %s:\n%s'
                                     % (g.name, wrong, g.output.decode('utf-8', 'replace')[-3000:]))
        return self.converge(acks, last_fault_ns, t_last)

    def converge(self, ack_paths, last_fault_ns, t_last):
        herd = self.herd
        newest = {}     # client -> (key, ack ns, line)
        acked = 0
        for path in ack_paths:
            with open(path, 'rb') as f:
                for raw in f:
                    ns, _, line = raw.rstrip(b'\n').partition(b' ')
                    key = at_key(line)
                    if key is None:
                        self.problems.append('unreadable ack line %r' % raw)
                        continue
                    acked += 1
                    cid = line.split(b' ')[3]
                    if cid not in newest or key > newest[cid][0]:
                        newest[cid] = (key, int(ns), line)
        ids = sorted(newest)
        deadline = t_last + self.args.converge
        state = None
        while True:
            held = {n: herdlib.at_lines(herd.port(n), ids, timeout=30) for n in herd.names}
            behind, disagree = [], []
            for cid in ids:
                lines = {held[n][cid] for n in herd.names}
                if len(lines) != 1:
                    disagree.append(cid)
                line = held[herd.names[0]][cid]
                if line is None or at_key(line) < newest[cid][0]:
                    behind.append(cid)
            state = (behind, disagree)
            if not disagree and (not behind or time.monotonic() > deadline):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        converged_s = time.monotonic() - t_last
        after_load_s = time.monotonic() - self.load_end
        behind, disagree = state
        if disagree:
            self.problems.append('%d clients still differ between servers after %.0f s, e.g. %r' % (
                len(disagree), self.args.converge,
                [(c, {n: held[n][c] for n in herd.names}) for c in disagree[:2]]))
        # Losses: the herd agrees on a record older than one that was acknowledged.
        excused, unexcused = [], []
        for cid in behind:
            key, ack_ns, line = newest[cid]
            server = line.split(b' ')[1].decode()
            wiped_later = any(t > ack_ns for t in self.wiped_at.get(server, []))
            killed_later = any(t > ack_ns for t in self.killed_at.get(server, []))
            if wiped_later or (self.args.fsync != 'always' and killed_later):
                excused.append(cid)
            else:
                unexcused.append((cid, line, held[herd.names[0]][cid]))
        if unexcused:
            self.problems.append('%d acknowledged records lost, e.g. %r' % (len(unexcused), unexcused[:3]))
        return {
            'faults': dict(self.counts), 'acknowledged': acked, 'clients': len(ids),
            'converged': not disagree, 'convergence_s': round(converged_s, 2),
            'after_load_s': round(after_load_s, 2),
            'lost_excused': len(excused), 'lost_unexcused': len(unexcused),
        }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--duration', type=float, default=90, help='seconds of faults (default 90)')
    ap.add_argument('--seed', type=int, default=None, help='random seed (default: random, printed)')
    ap.add_argument('--rate', type=int, default=1000, help='IAMATs/s of the main generator (default 1000)')
    ap.add_argument('--wipe', type=float, default=0.3,
                    help='probability that a killed server comes back without its data (default 0.3)')
    ap.add_argument('--fsync', default='always', choices=('always', 'everysec', 'no'))
    ap.add_argument('--threads', type=int, default=1, help='event loops per server (default 1)')
    ap.add_argument('--converge', type=float, default=60, help='seconds allowed to converge (default 60)')
    ap.add_argument('--hostile', action='store_true',
                    help='hostile clients attack the live servers all along (tools/chaos/hostile.py)')
    ap.add_argument('--keep', action='store_true', help='keep the working directory (logs, data)')
    ap.add_argument('--verbose', '-v', action='store_true', help='print each fault as it happens')
    args = ap.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 30)
    workdir = tempfile.mkdtemp(prefix='herd-chaos-')
    chaos = Chaos(args, os.path.join(workdir, 'herd'))
    print('chaos: %.0f s of faults, seed %d, %d IAMAT/s, fsync %s, wipe %.2f%s, server %s, in %s'
          % (args.duration, args.seed, args.rate, args.fsync, args.wipe,
             ', hostile clients' if args.hostile else '', herdlib.SERVER, workdir), flush=True)
    result = None
    try:
        result = chaos.run()
    finally:
        problems = chaos.herd.stop()
        chaos.problems += problems
        if not args.keep and not chaos.problems:
            shutil.rmtree(workdir, ignore_errors=True)
    print('faults: %s' % ', '.join('%s %d' % kv for kv in sorted(chaos.counts.items())))
    if result:
        print('acknowledged IAMATs: %d for %d clients; converged: %s, %.2f s after the last fault '
              '(%.2f s after the load stopped); acknowledged records lost: %d excused (their server '
              'came back empty), %d not excused'
              % (result['acknowledged'], result['clients'], result['converged'], result['convergence_s'],
                 result['after_load_s'], result['lost_excused'], result['lost_unexcused']))
    if chaos.hostile:
        print('hostile attacks judged: %s; servers\' resident memory at the end: %s'
              % (', '.join('%s %d' % kv for kv in sorted(chaos.hostile.counts.items())) or 'none',
                 ', '.join('%s %.0f MiB' % kv for kv in sorted(getattr(chaos, 'rss_mib', {}).items()))))
        if sum(chaos.hostile.counts.values()) == 0:
            chaos.problems.append('no hostile attack ran to a verdict')
    for p in chaos.problems:
        print('PROBLEM: %s' % p)
    if chaos.problems and not args.keep:
        print('kept %s for inspection' % workdir)
    return 1 if chaos.problems or not result else 0


if __name__ == '__main__':
    sys.exit(main())
