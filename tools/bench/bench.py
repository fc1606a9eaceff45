#!/usr/bin/python3
"""The herd's side-by-side benchmark: `make bench` (full, about 12 minutes) and `make bench-quick`
(every scenario at tiny scale, about three minutes, the CI smoke test).

    /usr/bin/python3 tools/bench/bench.py [--quick] [--out DIR] [--systems herd,ref,...]

Starts each system on loopback in turn (the C++ herd, the asyncio reference, the reference in
--seed-style, Redis, herd-null), runs the same scenarios against it with build/herd-load, stops it,
and writes DIR/report.md, DIR/results.json and SVG charts. Exit status 1 when a system failed to
start or the generator reported wrong replies (or a run could not complete); 0 otherwise. It says
nothing about speed: the targets are written into the report as MET or MISSED.

Standard library plus python3-yaml. See tools/bench/README.md.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the work tree

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import herdconf  # noqa: E402
import procs  # noqa: E402
import proplog  # noqa: E402
import redis_cities  # noqa: E402
import report  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, 'tools', 'places_sim'))
import simctl  # noqa: E402

PYTHON = '/usr/bin/python3'
SERVER = os.path.join(ROOT, 'build', 'herd-server')
LOADGEN = os.path.join(ROOT, 'build', 'herd-load')
NULLSRV = os.path.join(ROOT, 'build', 'herd-null')
GAZETTEER = os.path.join(ROOT, 'build', 'data', 'cities.pbf')
REFERENCE = os.path.join(ROOT, 'tools', 'reference', 'herd_ref.py')
HOLDER = os.path.join(HERE, 'holder.py')
TOPOLOGY = os.path.join(ROOT, 'config.yaml')
# The memory phase reads each server's RSS this long after the system went quiet.
MEM_AFTER_QUIET_S = 3.0
CERTS = os.path.join(ROOT, 'tools', 'certs.py')
PLACES_KEY_ENV = 'HERD_BENCH_PLACES_KEY'   # the (fake) API key's variable; the simulator takes any

# Scale of every phase. `quick` exercises the same pipeline with tiny numbers.
FULL = dict(
    warmup=1.0, duration=4.0, duration_slow=4.0, connections=[1, 50, 500], pipelines=[1, 16],
    whatsat_duration=4.0, open_warmup=1.0, open_duration=6.0, prop_rounds=1000, prop_rounds_slow=300,
    idle_connections=10000, idle_rate=1000, idle_duration=4.0,
    mem_clients=1_000_000, mem_cap_fast=90.0, mem_cap_slow=75.0, mem_settle=30.0,
    settle_max=5.0, settle_slow=3.0, start_timeout=60.0,
    sim_connections=1000, sim_latency_ms=20, sim_warmup=2.0, sim_duration=5.0,
    tls_rounds=3, whatsat_bounds=[5, 20], rep_replicas=4, rep_sync_timeout=30.0,
    ring_sizes=[1, 2, 5, 10, 20], ring_warmup=1.0, ring_duration=4.0,
)
QUICK = dict(
    # duration_slow: the asyncio herds' closed-loop runs; their replies can take longer than 0.4 s
    # (seed-style at depth 16), and a run with no reply in its window fails the benchmark.
    warmup=0.2, duration=0.4, duration_slow=1.5, connections=[1, 10, 50], pipelines=[1, 16],
    whatsat_duration=0.4, open_warmup=0.3, open_duration=1.2, prop_rounds=20, prop_rounds_slow=20,
    idle_connections=1000, idle_rate=500, idle_duration=1.0,
    mem_clients=20000, mem_cap_fast=20.0, mem_cap_slow=10.0, mem_settle=3.0,
    settle_max=0.5, settle_slow=1.0, start_timeout=60.0,
    sim_connections=50, sim_latency_ms=20, sim_warmup=0.5, sim_duration=1.0,
    tls_rounds=2, whatsat_bounds=[5, 20], rep_replicas=4, rep_sync_timeout=30.0,
    ring_sizes=[1, 2, 5], ring_warmup=0.2, ring_duration=0.4,
)

# Error kinds that mean a reply was wrong (as opposed to a connection-level problem).
WRONG_REPLY_KINDS = ('invalid', 'malformed', 'mismatch', 'wrong_server', 'bad_json', 'bad_results',
                     'redis_error', 'oversize')


class Interrupted(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Systems under test.

class System:
    key = label = ''
    kind = ''               # herd (herd protocol, several servers), redis, null
    phases = ()
    slow = False            # memory phase capped by mem_cap_slow instead of mem_cap_fast

    def __init__(self, bench):
        self.bench = bench
        self.procs = {}     # label -> Proc

    def pids(self):
        return {n: p.pid for n, p in self.procs.items()}

    def stop(self):
        for p in list(self.procs.values()):
            self.bench.pm.stop(p)
        self.procs = {}

    def truncate_logs(self):
        pass

    def quiesce(self):
        """Before a run, after the CPU has settled: anything else the system must finish (Redis
        replicas catching up). Returns a dict for the run's record, or None."""
        return None


class HerdSystem(System):
    kind = 'herd'
    phases = ('throughput', 'whatsat', 'openloop', 'idle', 'memory')

    def __init__(self, bench, key, label, argv_fn, ready_text, slow=False, phases=None, tls=False,
                 topology=None):
        super().__init__(bench)
        self.key, self.label, self.argv_fn, self.ready_text, self.slow = key, label, argv_fn, ready_text, slow
        self.tls = tls          # peer links over TLS (certificates in the run's directory)
        self.places = None      # None: offline places; else the `places:` mapping (the simulator)
        if phases:
            self.phases = phases
        # The servers and links (default: the repository's config.yaml), the server the load goes
        # to and the one propagation is measured from.
        if topology is None:
            self.names, self.links = bench.names, bench.links
            self.load_entry, self.prop_entry = bench.load_entry, bench.prop_entry
        else:
            self.names, self.links = topology
            self.load_entry = self.names[0]
            self.prop_entry = herdconf.choose_entries(self.names, self.links)[1]
        self.entry_label = self.load_entry

    def start(self):
        b = self.bench
        d = os.path.join(b.tmp, self.key)
        os.makedirs(d, exist_ok=True)
        self.log_dir = os.path.join(d, 'logs')
        self.config = os.path.join(d, 'config.yaml')
        self.servers = herdconf.write_config(self.config, self.names, self.links, b.herd_threads,
                                             self.log_dir, GAZETTEER, places=self.places,
                                             peer_tls=b.peer_tls() if self.tls else None)
        env = dict(os.environ)
        env[PLACES_KEY_ENV] = 'bench-key'
        for n in self.names:
            self.procs[n] = b.pm.start('%s-%s' % (self.key, n), self.argv_fn(n, self.config), env=env)
        for n in self.names:
            b.pm.wait_ready(self.procs[n], b.scale['start_timeout'], text=self.ready_text,
                            port=self.servers[n]['port'])
        self.port = self.servers[self.load_entry]['port']
        self.entry_pid = self.procs[self.load_entry].pid
        # Linked? An update sent to one end of the longest path must reach every server.
        deadline = time.monotonic() + 20
        while len(self.names) > 1:
            rc, out, err = b.pm.run('%s-linkcheck' % self.key,
                                    [LOADGEN, '--config', self.config, '--entry', self.prop_entry,
                                     '--propagation', '2', '--timeout', '0.5', '--json'], timeout=20)
            try:
                j = json.loads(out.strip().splitlines()[-1])
                if all(h['missed'] == 0 for h in j['by_hops']) and j.get('entry_errors', 0) == 0:
                    break
            except (ValueError, IndexError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise procs.StartError('%s: the herd did not link up (an update did not reach every '
                                       'server): %s %s' % (self.label, out.strip()[-300:], err.strip()[-300:]))
            time.sleep(0.2)
        self.truncate_logs()

    def target_args(self):
        return ['--config', self.config, '--entry', self.load_entry]

    def truncate_logs(self):
        # Logging stays on; the files are emptied between runs so the disk does not fill up
        # (both servers open their logs with O_APPEND, so writing simply restarts at 0).
        if os.path.isdir(self.log_dir):
            for f in os.listdir(self.log_dir):
                try:
                    os.truncate(os.path.join(self.log_dir, f), 0)
                except OSError:
                    pass

    def count_iamats_logged(self):
        path = os.path.join(self.log_dir, self.load_entry + '.log')
        n = 0
        try:
            with open(path, 'rb') as f:
                while True:
                    chunk = f.read(1 << 24)
                    if not chunk:
                        break
                    n += chunk.count(b' IAMAT c')
        except OSError:
            return None
        return n


class RedisSystem(System):
    key, label, kind = 'redis', 'Redis', 'redis'
    phases = ('throughput', 'whatsat', 'openloop', 'idle', 'memory')
    entry_label = 'redis'

    def start(self):
        b = self.bench
        self.port = procs.free_ports(1)[0]
        d = os.path.join(b.tmp, 'redis')
        os.makedirs(d, exist_ok=True)
        exe = shutil.which('redis-server') or '/usr/bin/redis-server'
        self.procs['redis'] = b.pm.start('redis', [
            exe, '--port', str(self.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
            '--dir', d, '--maxclients', str(b.scale['idle_connections'] + 1000),
            '--protected-mode', 'no'])
        b.pm.wait_ready(self.procs['redis'], b.scale['start_timeout'], port=self.port)
        self.entry_pid = self.procs['redis'].pid
        # The herd's WHATSAT searches the GeoNames cities; so does GEOSEARCH here: the cities go into
        # the key herd-load uses, beside its clients (members geonames:<id>). The herd holds them in
        # memory too, so the memory phase compares like with like.
        t0 = time.monotonic()
        self.cities, self.cities_left_out = redis_cities.load(self.port, GAZETTEER)
        self.cities_load_s = time.monotonic() - t0

    def target_args(self):
        return ['--target', '127.0.0.1:%d' % self.port, '--protocol', 'redis']

    def zcard(self):
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=5) as s:
                s.sendall(b'ZCARD herd\r\n')
                data = s.recv(100)
            return int(data[1:].split(b'\r\n')[0]) - getattr(self, 'cities', 0)  # clients only
        except (OSError, ValueError):
            return None


class RedisRepSystem(RedisSystem):
    """A Redis primary and `rep_replicas` `redis-server --replicaof` processes on loopback: every
    GEOADD the primary takes also reaches four more nodes, the same work as the herd's flood. Runs
    start only when every replica is online and at the primary's replication offset."""
    key, label, kind = 'redis-rep', 'Redis + 4 replicas', 'redis'
    phases = ('throughput50',)
    entry_label = 'primary'

    def start(self):
        b = self.bench
        n = b.scale['rep_replicas']
        ports = procs.free_ports(n + 1)
        self.port = ports[0]
        self.replica_ports = ports[1:]
        exe = shutil.which('redis-server') or '/usr/bin/redis-server'
        common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no',
                  '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0',
                  '--repl-backlog-size', '64mb', '--client-output-buffer-limit', 'replica 0 0 0']
        for i, port in enumerate(ports):
            name = 'primary' if i == 0 else 'replica%d' % i
            d = os.path.join(b.tmp, 'redis-rep', name)
            os.makedirs(d, exist_ok=True)
            argv = [exe, '--port', str(port), '--dir', d] + common
            if i:
                argv += ['--replicaof', '127.0.0.1', str(self.port)]
            self.procs[name] = b.pm.start('redis-rep-%s' % name, argv)
        for i, port in enumerate(ports):
            b.pm.wait_ready(self.procs['primary' if i == 0 else 'replica%d' % i],
                            b.scale['start_timeout'], port=port)
        self.entry_pid = self.procs['primary'].pid
        st = self.wait_in_sync(b.scale['rep_sync_timeout'])
        if not st['in_sync']:
            raise procs.StartError('Redis replicas not in sync after %.0f s: %s'
                                   % (b.scale['rep_sync_timeout'], st))
        self.start_sync = st

    def info_replication(self):
        """The primary's INFO replication as a dict (slaveN values parsed into dicts)."""
        with socket.create_connection(('127.0.0.1', self.port), timeout=5) as s:
            s.sendall(b'INFO replication\r\n')
            data = b''
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if data.startswith(b'$'):
                    head, _, rest = data.partition(b'\r\n')
                    if len(rest) >= int(head[1:]) + 2:
                        break
        info = {}
        for line in data.decode('utf-8', 'replace').splitlines()[1:]:
            if ':' not in line or line.startswith('#'):
                continue
            k, v = line.split(':', 1)
            if k.startswith('slave') and '=' in v:
                info[k] = dict(x.split('=', 1) for x in v.split(',') if '=' in x)
            else:
                info[k] = v
        return info

    def sync_state(self):
        """(in sync, replicas online, lag in bytes of the slowest replica)."""
        try:
            info = self.info_replication()
        except (OSError, ValueError) as e:
            return False, 0, str(e)
        want = self.bench.scale['rep_replicas']
        master = int(info.get('master_repl_offset', '0'))
        slaves = [v for k, v in info.items() if k.startswith('slave') and isinstance(v, dict)]
        online = [s for s in slaves if s.get('state') == 'online']
        lag = max([master - int(s.get('offset', 0)) for s in online] or [master])
        return len(online) == want and lag == 0, len(online), lag

    def wait_in_sync(self, limit):
        t0 = time.monotonic()
        while True:
            ok, online, lag = self.sync_state()
            if ok or time.monotonic() - t0 > limit:
                return {'in_sync': ok, 'replicas_online': online, 'lag_bytes': lag,
                        'waited_s': round(time.monotonic() - t0, 2)}
            time.sleep(0.05)

    def quiesce(self):
        return {'replication_before': self.wait_in_sync(self.bench.scale['rep_sync_timeout'])}

    def after_run(self, rec):
        ok, online, lag = self.sync_state()
        rec['replication_after'] = {'replicas_online': online, 'lag_bytes': lag}


class NullSystem(System):
    key, label, kind = 'null', 'herd-null', 'null'
    phases = ('throughput', 'openloop', 'idle')
    entry_label = 'null'

    def start(self):
        b = self.bench
        self.port = procs.free_ports(1)[0]
        self.procs['null'] = b.pm.start('null', [NULLSRV, '--port', str(self.port),
                                                 '--threads', str(b.herd_threads)])
        b.pm.wait_ready(self.procs['null'], b.scale['start_timeout'], port=self.port)
        self.entry_pid = self.procs['null'].pid

    def target_args(self):
        return ['--target', '127.0.0.1:%d' % self.port, '--protocol', 'null']


# ---------------------------------------------------------------------------------------------
# The benchmark.

class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.scale = dict(QUICK if args.quick else FULL)
        self.herd_threads = args.herd_threads
        self.gen_threads = args.gen_threads
        self.gen_tries = args.gen_tries
        self.failures = []
        self.warnings = []
        self.notes = []
        self.names, self.links = herdconf.read_topology(TOPOLOGY)
        (self.load_entry, self.prop_entry, self.prop_far,
         self.prop_hops) = herdconf.choose_entries(self.names, self.links)
        self.results = {'systems': {}}
        self.sim = None          # the places simulator, started by the first whatsat_sim phase
        self.certs_dir = None

    # --- certificates and the places simulator ----------------------------------------------

    def certs(self):
        """A development CA with a certificate per herd server and one for the simulator, made by
        tools/certs.py in the run's temporary directory (once)."""
        if self.certs_dir is None:
            d = os.path.join(self.tmp, 'certs')
            for extra in ([] + self.names, ['places-sim', '--hosts', 'localhost', '127.0.0.1']):
                rc, out, err = self.pm.run('certs', [PYTHON, CERTS, '--out', d, '--names'] + extra,
                                           timeout=120)
                if rc != 0:
                    raise procs.StartError('tools/certs.py failed (rc %s): %s' % (rc, err.strip()[-300:]))
            self.certs_dir = d
        return self.certs_dir

    def peer_tls(self):
        d = self.certs()
        return {'ca_file': os.path.join(d, 'ca.pem'), 'cert_file': os.path.join(d, '{name}.pem'),
                'key_file': os.path.join(d, '{name}.key')}

    def places_sim(self):
        """The simulator (started on first use, stopped at the end of the run) and the `places:`
        mapping that points a herd at it."""
        if self.sim is None:
            d = self.certs()
            try:
                self.sim = simctl.PlacesSim(cert=os.path.join(d, 'places-sim.pem'),
                                            key=os.path.join(d, 'places-sim.key'),
                                            ca=os.path.join(d, 'ca.pem'), gazetteer=GAZETTEER,
                                            log_path=os.path.join(self.tmp, 'places-sim.log'),
                                            ready_timeout=self.scale['start_timeout'])
            except (RuntimeError, OSError) as e:
                raise procs.StartError('the places simulator did not start: %s' % e)
        places = {'provider': 'google', 'key_env': PLACES_KEY_ENV, 'endpoint': self.sim.url,
                  'ca_file': os.path.join(self.certs_dir, 'ca.pem')}
        return self.sim, places

    # --- helpers ---------------------------------------------------------------------------

    def settle(self, system, limit=None):
        """Wait until the system's processes are nearly idle (floods and logs drained), for at most
        `limit` seconds (default: settle_max, or settle_slow for the asyncio herds). Returns
        (settled, seconds waited)."""
        if limit is None:
            limit = self.scale['settle_slow'] if system.slow else self.scale['settle_max']
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            w = procs.CpuWindow(system.pids()).start()
            time.sleep(0.25)
            used = sum(w.stop()['proc_cpu_percent'].values())
            if used < 15.0:
                return True, round(time.monotonic() - t0, 2)
        return False, round(time.monotonic() - t0, 2)

    def prepare(self, system):
        """Before a run: wait for the system to go quiet. An asyncio herd that is still working
        through the floods of the previous run after settle_slow seconds is restarted instead (a
        --seed-style herd can take minutes to drain), so every run starts on a quiet system.
        Returns (settled, seconds waited, restarted)."""
        settled, waited = self.settle(system)
        if settled or system.kind != 'herd' or not system.slow:
            return settled, waited, False
        t0 = time.monotonic()
        system.stop()
        system.start()
        settled, w2 = self.settle(system)
        return settled, round(waited + (time.monotonic() - t0), 2), True

    def load(self, system, name, extra, bound, may_cap=False, best_of=False):
        """One herd-load run against `system`; returns its record (also kept in the results).
        best_of: the run is one of the target comparisons, made once with each generator thread
        count of --gen-tries; the best run is kept (the thread count in rec['gen_threads'], every
        try in rec['gen_tries']), so that every system is measured with the generator that serves
        it best."""
        counts = self.gen_tries if best_of else [self.gen_threads]
        best, tries = None, []
        for n in counts:
            label = name if len(counts) == 1 else '%s, %d gen thread%s' % (name, n, '' if n == 1 else 's')
            rec = self.load_once(system, label, extra, bound, may_cap, n)
            rec['name'] = name
            rec['gen_threads'] = n
            rate = jget_rate(rec)
            tries.append({'gen_threads': n, 'throughput': rate,
                          'generator_cpu_percent': ((rec.get('json') or {}).get('cpu_percent'))})
            if best is None or (rate or 0) > (jget_rate(best) or 0):
                best = rec
        if len(counts) > 1:
            best['gen_tries'] = tries
        return best

    def load_once(self, system, name, extra, bound, may_cap, gen_threads):
        settled = self.prepare(system)
        before = system.quiesce()
        if before and not all(v.get('in_sync', True) for v in before.values()):
            self.warnings.append('%s / %s: not in sync before the run: %s' % (system.label, name, before))
        argv = ([LOADGEN] + system.target_args() + ['--threads', str(gen_threads), '--json']
                + [str(x) for x in extra])
        win = procs.CpuWindow(system.pids()).start()
        t0 = time.monotonic()
        rc, out, err = self.pm.run('%s-load' % system.key, argv, timeout=bound)
        rec = self._record(system, name, argv, rc, out, err, win.stop(), time.monotonic() - t0, bound,
                           may_cap, settled)
        if before:
            rec.update(before)
        if hasattr(system, 'after_run'):
            system.after_run(rec)
        return rec

    def _record(self, system, name, argv, rc, out, err, cpu, wall, bound, may_cap=False,
                settled=None):
        rec = {'name': name, 'argv': show_argv(argv),
               'rc': rc, 'wall_s': round(wall, 2), 'cpu': cpu}
        if settled is not None:
            rec['settled'], rec['settle_s'], rec['restarted'] = settled
            if rec['restarted']:
                self.notes.append('%s / %s: restarted first (still busy with the floods of the '
                                  'previous run after %.0f s)' % (system.label, name,
                                                                  self.scale['settle_slow']))
            if not settled[0]:
                self.warnings.append('%s / %s: the system was still busy (floods from the previous '
                                     'run) after %.0f s of waiting; the run started anyway'
                                     % (system.label, name, settled[1]))
        j = None
        for line in reversed(out.strip().splitlines()):
            if line.startswith('{'):
                try:
                    j = json.loads(line)
                except ValueError:
                    pass
                break
        rec['json'] = j
        if rc is None:
            rec['problem'] = 'killed after %.0f s (time bound)' % bound
        elif j is None:
            rec['problem'] = 'no JSON from herd-load (rc %s): %s' % (rc, err.strip()[-400:])
        else:
            errs = j.get('errors', {})
            wrong = {k: errs.get(k, 0) for k in WRONG_REPLY_KINDS if errs.get(k, 0)}
            other = {k: v for k, v in errs.items() if k != 'total' and v and k not in WRONG_REPLY_KINDS}
            if wrong:
                rec['problem'] = 'wrong replies: %s; samples: %s' % (
                    wrong, json.dumps(j.get('error_samples', [])[:2])[:600])
                self.failures.append('%s / %s: %s' % (system.label, name, rec['problem']))
            elif j.get('aborted'):
                rec['problem'] = 'aborted: %s' % j['aborted']
            elif j.get('replies', 0) == 0:
                # Nothing measured: not a rate of 0/s but a run that failed.
                rec['problem'] = 'FAILED: 0 replies in the measured window (sent %d, unfinished %d)' % (
                    j.get('sent', 0), j.get('unfinished', 0))
                rec['failed'] = True
                self.failures.append('%s / %s: %s' % (system.label, name, rec['problem']))
            elif 'arrived' in j and j['arrived'] < j.get('replies', 0):
                # Every measured reply arrived in the window, so it is counted in both.
                rec['problem'] = 'wrong replies: herd-load counted %d arrivals but %d measured replies' % (
                    j['arrived'], j['replies'])
                self.failures.append('%s / %s: %s' % (system.label, name, rec['problem']))
            if other:
                rec['conn_errors'] = other
                self.warnings.append('%s / %s: connection-level errors %s' % (system.label, name, other))
        if 'problem' in rec and not rec['problem'].startswith(('wrong replies', 'FAILED')):
            if (rc is None and not may_cap) or (rc is not None and j is None):
                # The run did not complete: the pipeline is broken for this system.
                self.failures.append('%s / %s: %s' % (system.label, name, rec['problem']))
            elif not (rc is None and may_cap):
                self.warnings.append('%s / %s: %s' % (system.label, name, rec['problem']))
        print('  %-34s %s' % (name, summarize(rec)), flush=True)
        system.truncate_logs()
        return rec

    # --- phases ----------------------------------------------------------------------------

    def phase_throughput(self, system, res):
        s = self.scale
        out = res.setdefault('throughput', {})
        duration = s['duration_slow'] if system.slow else s['duration']
        for c in s['connections']:
            for p in s['pipelines']:
                out['%dx%d' % (c, p)] = self.load(
                    system, 'IAMAT c=%d p=%d' % (c, p),
                    ['--connections', c, '--pipeline', p, '--warmup', s['warmup'],
                     '--duration', duration], bound=s['warmup'] + duration + 40, best_of=c == 50)

    def phase_throughput50(self, system, res):
        """IAMAT at 50 connections, pipeline 1 and 16 only: the systems that are measured beside
        the herd at those two points (one server alone, Redis with replicas)."""
        s = self.scale
        out = res.setdefault('throughput', {})
        for p in s['pipelines']:
            out['50x%d' % p] = self.load(
                system, 'IAMAT c=50 p=%d' % p,
                ['--connections', 50, '--pipeline', p, '--warmup', s['warmup'],
                 '--duration', s['duration']], bound=s['warmup'] + s['duration'] + 40, best_of=True)

    def phase_ring(self, system, res):
        """N C++ servers in a ring (N in ring_sizes), each started alone in turn; closed-loop IAMAT,
        50 connections, pipeline 16, into one server. The entry server's rate, and the herd's
        deliveries per second (rate × N: every update is stored by each of the N servers)."""
        s = self.scale
        herd_argv = lambda n, cfg: [SERVER, n, '--config', cfg]  # noqa: E731
        out = res.setdefault('ring', {})
        for n in s['ring_sizes']:
            names = ['R%02d' % (i + 1) for i in range(n)]
            links = ([] if n == 1 else [[names[0], names[1]]] if n == 2 else
                     [[names[i], names[(i + 1) % n]] for i in range(n)])
            ring = HerdSystem(self, 'ring%d' % n, 'ring of %d' % n, herd_argv, 'ready in',
                              topology=(names, links))
            try:
                ring.start()
                rec = self.load(ring, 'ring N=%d IAMAT c=50 p=16' % n,
                                ['--connections', 50, '--pipeline', 16, '--warmup', s['ring_warmup'],
                                 '--duration', s['ring_duration']],
                                bound=s['ring_warmup'] + s['ring_duration'] + 40)
            except procs.StartError as e:
                rec = {'name': 'ring N=%d' % n, 'problem': 'failed to start: %s' % e}
                self.failures.append('%s: ring of %d: %s' % (system.label, n, e))
                print('  ring N=%d FAILED: %s' % (n, e), flush=True)
            finally:
                ring.stop()
            rec['n'] = n
            rec['entry_proc'] = names[0]
            rate = jget_rate(rec)
            rec['deliveries_per_s'] = None if rate is None else rate * n
            out[str(n)] = rec

    def peak_p1(self, res):
        best = 0.0
        for k, r in res.get('throughput', {}).items():
            if k.endswith('x1') and r.get('json'):
                best = max(best, r['json'].get('throughput', 0.0))
        return best

    def phase_whatsat(self, system, res):
        """WHATSAT only (GEOSEARCH for Redis), radius 10 km, at each bound of whatsat_bounds:
        res['whatsat'] for bound 5, res['whatsat_b20'] for bound 20."""
        s = self.scale
        for bound in s['whatsat_bounds']:
            key = 'whatsat' if bound == 5 else 'whatsat_b%d' % bound
            res[key] = self.load(
                system, 'WHATSAT c=50 p=1 bound %d' % bound,
                ['--connections', 50, '--pipeline', 1, '--seed', '--whatsat-ratio', 1,
                 '--bound', bound, '--warmup', s['warmup'], '--duration', s['whatsat_duration']],
                bound=s['warmup'] + s['whatsat_duration'] + 60, best_of=True)
            res[key]['bound'] = bound

    def phase_whatsat_sim(self, system, res):
        """WHATSAT through the places simulator (Google's legacy Nearby Search over HTTPS) with
        injected upstream latency: the herd is restarted with `places.provider: google` pointed at
        the simulator; --seed first, then WHATSAT only, from sim_connections connections. The
        simulator's counters are sampled during the run, so the TLS handshakes it accepted in the
        steady part (after the first upstream request plus the warm-up) are known."""
        s = self.scale
        sim, places = self.places_sim()
        system.stop()
        system.places = places
        try:
            system.start()
        finally:
            system.places = None       # a later restart (prepare) goes back to offline places
        sim.config(latency_ms=s['sim_latency_ms'])
        sim.reset_stats()
        settled = self.settle(system) + (False,)    # just started: nothing to drain
        c = s['sim_connections']
        bound = s['sim_warmup'] + s['sim_duration'] + 90
        argv = ([LOADGEN] + system.target_args() +
                ['--threads', str(self.gen_threads), '--json', '--connections', str(c),
                 '--clients', str(c), '--pipeline', '1', '--seed', '--whatsat-ratio', '1',
                 '--timeout', '15', '--warmup', str(s['sim_warmup']),
                 '--duration', str(s['sim_duration'])])
        win = procs.CpuWindow(system.pids()).start()
        simwin = procs.CpuWindow({'places-sim': sim.proc.pid}).start()
        t0 = time.monotonic()
        bg = self.pm.start('%s-whatsat-sim' % system.key, argv)
        # (seconds since start, tls_handshakes, search requests, tcp_connections, open connections,
        #  most requests in flight at once, simulator CPU ticks, the herd servers' CPU ticks)
        samples = []
        pids = list(system.pids().values())
        rc = None
        try:
            while time.monotonic() - t0 < bound:
                try:
                    a = time.monotonic()
                    st = sim.stats()
                    t = (a + time.monotonic()) / 2 - t0
                    req = st.get('requests') or {}
                    ticks = [procs.cpu_ticks(p) for p in pids]
                    samples.append((round(t, 3), st.get('tls_handshakes', 0),
                                    req.get('legacy', 0) + req.get('new', 0),
                                    st.get('tcp_connections', 0), st.get('open_connections', 0),
                                    st.get('max_inflight', 0), procs.cpu_ticks(sim.proc.pid),
                                    None if None in ticks else sum(ticks)))
                except (OSError, ValueError) as e:
                    samples.append((round(time.monotonic() - t0, 3), None, None, str(e)[:80]))
                if not bg.alive():
                    break
                time.sleep(0.25)
            try:
                bg.popen.wait(max(0.1, bound - (time.monotonic() - t0)))
                rc = bg.popen.returncode
            except Exception:  # noqa: BLE001  (TimeoutExpired)
                rc = None
        finally:
            self.pm.stop(bg, grace=2.0)
        simcpu = simwin.stop()
        cpu = win.stop()
        rec = self._record(system, 'WHATSAT via simulator c=%d' % c, argv, rc, bg.stdout_text(),
                           bg.stderr_tail(2000), cpu, time.monotonic() - t0, bound, settled=settled)
        rec['sim_cpu_percent'] = simcpu['proc_cpu_percent'].get('places-sim')
        rec['latency_ms'] = s['sim_latency_ms']
        rec['sim_samples'] = samples
        rec['steady'] = steady_handshakes(samples, s['sim_warmup'])
        j = rec.get('json') or {}
        st = rec['steady']
        rate = j.get('arrival_rate') or j.get('throughput')
        if rate and st.get('herd_cpu_percent') is not None:
            # The generator's rate is measured over nearly the same window. Its arrival rate
            # (replies arriving in the window), not its throughput (requests sent in the window and
            # answered in it), as latencies here are a sizeable part of the window.
            st['herd_cpu_us_per_whatsat'] = round(st['herd_cpu_percent'] / 100.0 / rate * 1e6, 1)
        bad, good = j.get('whatsat_status_not_ok', 0), j.get('whatsat_ok', 0)
        if j and (good == 0 or bad * 2 > good):
            self.failures.append('%s / WHATSAT via simulator: %d of %d WHATSAT replies carry a failing '
                                 'places status (is the herd reaching the simulator?)'
                                 % (system.label, bad, good))
        elif bad:
            self.warnings.append('%s / WHATSAT via simulator: %d of %d WHATSAT replies carry a failing '
                                 'places status (UNKNOWN_ERROR: upstream timeout or overload)'
                                 % (system.label, bad, good))
        st = rec['steady']
        print('  %-34s arrival rate %s/s; steady %s s: %s TLS handshakes/s, %s upstream requests/s; CPU: simulator %s%%, '
              'herd %s%% (%s us per WHATSAT)'
              % ('', j.get('arrival_rate', '?'), st.get('seconds'), st.get('handshakes_per_s'), st.get('requests_per_s'),
                 st.get('sim_cpu_percent'), st.get('herd_cpu_percent'),
                 st.get('herd_cpu_us_per_whatsat')), flush=True)
        res['whatsat_sim'] = rec

    def phase_tls_pairs(self, system, res):
        """IAMAT over TLS peer links beside plaintext ones: `system` (the herd with peer_tls) and a
        plaintext copy of the same herd run at the same time, idle in turn, and the same closed-loop
        load (50 connections, pipeline 1 and 16) goes to one then the other, tls_rounds times,
        alternating which goes first, so that other work on a shared machine weighs on both alike."""
        s = self.scale
        plain = HerdSystem(self, 'herd-plain', 'C++ herd, plaintext (beside TLS)', system.argv_fn,
                           system.ready_text)
        out = res.setdefault('tls_pairs', {})
        try:
            plain.start()
            for p in (1, 16):
                runs = out['50x%d' % p] = {'plain': [], 'tls': []}
                for i in range(s['tls_rounds']):
                    order = [('plain', plain), ('tls', system)]
                    if i % 2:
                        order.reverse()
                    for which, target in order:
                        runs[which].append(self.load(
                            target, 'IAMAT c=50 p=%d %s #%d' % (p, which, i + 1),
                            ['--connections', 50, '--pipeline', p, '--warmup', s['warmup'],
                             '--duration', s['duration']], bound=s['warmup'] + s['duration'] + 40))
        finally:
            plain.stop()

    def phase_openloop(self, system, res):
        s = self.scale
        peak = self.peak_p1(res)
        if peak <= 0:
            self.warnings.append('%s: no peak throughput measured; open-loop run skipped' % system.label)
            return
        rate = max(50.0, round(peak / 2.0))
        bound = s['open_warmup'] + s['open_duration'] + 40
        settled = self.prepare(system)
        rounds = s['prop_rounds_slow'] if system.slow else s['prop_rounds']
        if system.kind == 'herd':
            # The same probe with no load first: the baseline that shows what the load changes
            # (a loaded server sees records later; the per-hop medians then mix loaded and idle servers).
            pargv = [LOADGEN, '--config', system.config, '--entry', self.prop_entry,
                     '--propagation', str(rounds), '--timeout', '2', '--json']
            rc, out, err = self.pm.run('%s-propagation-idle' % system.key, pargv, timeout=120)
            idle_prop = {'argv': show_argv(pargv), 'rc': rc}
            try:
                idle_prop['json'] = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                idle_prop['json'] = None
                idle_prop['problem'] = 'no JSON (rc %s): %s' % (rc, err.strip()[-300:])
                self.warnings.append('%s / propagation at rest: %s' % (system.label, idle_prop['problem']))
            idle_prop['log'] = self.prop_from_logs(system)
            res['propagation_idle'] = idle_prop
            print('  %-34s %s' % ('propagation at rest', summarize_prop(idle_prop)), flush=True)
            print('  %-34s %s' % ('  same, from the logs', summarize_prop({'json': idle_prop['log']})),
                  flush=True)
            system.truncate_logs()
        argv = ([LOADGEN] + system.target_args() +
                ['--threads', str(self.gen_threads), '--json', '--connections', '50',
                 '--pipeline', '16', '--rate', '%g' % rate, '--warmup', str(s['open_warmup']),
                 '--duration', str(s['open_duration'])])
        win = procs.CpuWindow(system.pids()).start()
        t0 = time.monotonic()
        bg = self.pm.start('%s-openloop' % system.key, argv)
        prop = None
        try:
            if system.kind == 'herd':
                time.sleep(s['open_warmup'] + 0.2)
                pargv = [LOADGEN, '--config', system.config, '--entry', self.prop_entry,
                         '--propagation', str(rounds), '--timeout', '2', '--json']
                p0 = time.monotonic()
                rc, out, err = self.pm.run('%s-propagation' % system.key, pargv,
                                           timeout=s['open_duration'] + 60)
                p1 = time.monotonic()
                prop = {'argv': show_argv(pargv),
                        'rc': rc, 'started_s': round(p0 - t0, 2), 'ended_s': round(p1 - t0, 2),
                        'load_ends_s': round(s['open_warmup'] + s['open_duration'], 2)}
                try:
                    prop['json'] = json.loads(out.strip().splitlines()[-1])
                except (ValueError, IndexError):
                    prop['json'] = None
                    prop['problem'] = 'no JSON (rc %s): %s' % (rc, err.strip()[-300:])
                    self.warnings.append('%s / propagation: %s' % (system.label, prop['problem']))
                if p1 - t0 > prop['load_ends_s']:
                    prop['overran'] = True
                    self.warnings.append('%s / propagation: rounds went on after the open-loop load '
                                         'ended (%.1f s > %.1f s); the later rounds ran unloaded'
                                         % (system.label, p1 - t0, prop['load_ends_s']))
                print('  %-34s %s' % ('propagation from %s' % self.prop_entry, summarize_prop(prop)),
                      flush=True)
            try:
                bg.popen.wait(max(0.1, bound - (time.monotonic() - t0)))
                rc = bg.popen.returncode
            except Exception:  # noqa: BLE001  (TimeoutExpired)
                rc = None
        finally:
            self.pm.stop(bg, grace=2.0)
        cpu = win.stop()
        wall = time.monotonic() - t0
        if prop is not None:
            # The same rounds timed from the servers' logs (no polling), after the load has ended
            # (parsing competes for the cores) and before the logs are emptied.
            prop['log'] = self.prop_from_logs(system)
            print('  %-34s %s' % ('  same, from the logs', summarize_prop({'json': prop['log']})),
                  flush=True)
        with open(bg.out_path, 'rb') as f:
            out = f.read().decode('utf-8', 'replace')
        with open(bg.err_path, 'rb') as f:
            err = f.read().decode('utf-8', 'replace')
        rec = self._record(system, 'open loop %g/s (half of peak)' % rate, argv, rc, out, err,
                           cpu, wall, bound, settled=settled)
        rec['rate'] = rate
        rec['peak'] = peak
        res['openloop'] = rec
        if prop is not None:
            res['propagation'] = prop

    def prop_from_logs(self, system):
        """The propagation probe's rounds timed from the servers' log timestamps (proplog.py)."""
        hops = herdconf.hops_from(system.names, system.links, self.prop_entry)
        deadline = time.monotonic() + 3.0
        while True:
            # The writers flush every few milliseconds (the asyncio herd's less often): wait until
            # the last round's record is in the farthest server's log, for at most 3 s.
            time.sleep(0.1)
            try:
                got = proplog.delays(system.log_dir, self.prop_entry, hops)
            except (OSError, ValueError) as e:
                return {'problem': str(e)}
            # Rounds missing from a log that dropped entries will not come.
            if (got['rounds_logged'] and all(x['missed'] == 0 or x['log_dropped'] for x in got['servers'])) \
                    or time.monotonic() > deadline:
                return got

    def phase_idle(self, system, res):
        s = self.scale
        n = min(s['idle_connections'], self.fd_hard - 300)
        proto = {'herd': 'herd', 'redis': 'redis', 'null': 'null'}[system.kind]
        self.prepare(system)
        holder = self.pm.start('%s-holder' % system.key,
                               [PYTHON, HOLDER, '--port', str(system.port), '--count', str(n),
                                '--protocol', proto, '--timeout', '90'])
        info = {'wanted': n}
        try:
            deadline = time.monotonic() + 100
            while time.monotonic() < deadline and holder.alive():
                txt = holder.stdout_text()
                if txt.strip():
                    info.update(json.loads(txt.splitlines()[0]))
                    break
                time.sleep(0.1)
            if 'held' not in info:
                raise RuntimeError('holder did not report: %s' % holder.stderr_tail(300))
            print('  %-34s held %d of %d (%d failed) in %.1f s' % (
                'idle connections', info['held'], n, info['failed'], info['seconds']), flush=True)
            info['entry_rss_kb'] = procs.rss_kb(system.entry_pid)
            rec = self.load(system, 'light load with %d idle' % info['held'],
                            ['--connections', 50, '--pipeline', 1, '--rate', s['idle_rate'],
                             '--warmup', 0.5, '--duration', s['idle_duration']],
                            bound=s['idle_duration'] + 40)
            os.kill(holder.pid, signal.SIGTERM)
            try:
                holder.popen.wait(15)
            except Exception:  # noqa: BLE001
                pass
            for line in holder.stdout_text().splitlines()[1:]:
                try:
                    info.update(json.loads(line))
                except ValueError:
                    pass
        except (RuntimeError, ValueError) as e:
            rec = None
            info['problem'] = str(e)
            self.warnings.append('%s / idle: %s' % (system.label, e))
        finally:
            self.pm.stop(holder, grace=5.0)
        res['idle'] = {'holder': info, 'load': rec}

    def phase_memory(self, system, res):
        s = self.scale
        m = s['mem_clients']
        cap = s['mem_cap_slow'] if system.slow else s['mem_cap_fast']
        self.prepare(system)
        before = {k: procs.rss_kb(p) for k, p in system.pids().items()}
        t0 = time.monotonic()
        rec = self.load(system, '%d distinct clients' % m,
                        ['--clients', m, '--connections', 50, '--pipeline', 16, '--seed',
                         '--requests', 1, '--timeout', 10], bound=cap, may_cap=True)
        ingest_s = time.monotonic() - t0
        # After a capped run, let the other servers work through the floods already queued.
        settled = self.settle(system, limit=s['mem_settle'])[0]
        at_quiet = {k: procs.rss_kb(p) for k, p in system.pids().items()}
        # The figure: a few seconds after the system went quiet, when a server has had the chance
        # to give a burst's freed heap back (the C++ herd trims one second after a burst).
        time.sleep(MEM_AFTER_QUIET_S)
        after = {k: procs.rss_kb(p) for k, p in system.pids().items()}
        if rec['rc'] is not None and rec.get('json'):
            reached = rec['json'].get('seeded', 0)
            how = 'generator: seeded'
        elif system.kind == 'redis':
            reached, how = system.zcard(), 'ZCARD'
        else:
            reached, how = None, 'log'
        if system.kind == 'herd' and (reached is None or rec['rc'] is None):
            reached = system.count_iamats_logged()
            how = 'IAMAT lines in the entry server log'
        # The ingest rate: records stored per second while seeding (herd-load's own wall time when
        # it finished, the phase's when it was capped).
        j = rec.get('json') or {}
        gen_s = j.get('wall_seconds') if rec['rc'] is not None else None
        rate_s = gen_s or ingest_s
        ingest_rate = (reached / rate_s) if reached and rate_s else None
        res['memory'] = {'run': rec, 'clients_wanted': m, 'clients_reached': reached,
                         'reached_by': how, 'capped': rec['rc'] is None, 'cap_s': cap,
                         'ingest_s': round(ingest_s, 1), 'ingest_rate': ingest_rate,
                         'ingest_rate_over_s': None if rate_s is None else round(rate_s, 2),
                         'settled': settled, 'rss_before_kb': before, 'rss_at_quiet_kb': at_quiet,
                         'rss_after_kb': after, 'rss_after_quiet_s': MEM_AFTER_QUIET_S,
                         'entry': system.entry_label}
        rec['ingest_rate'] = ingest_rate
        print('  %-34s reached %s (%s) at %s records/s, entry RSS %.0f MiB, max %.0f MiB%s' % (
            'memory', reached, how, '?' if ingest_rate is None else '%.0f' % ingest_rate,
            (after.get(system.entry_label) or 0) / 1024.0,
            max([v or 0 for v in after.values()]) / 1024.0,
            ' (capped at %.0f s)' % cap if rec['rc'] is None else ''), flush=True)
        system.truncate_logs()

    # --- driver ----------------------------------------------------------------------------

    def systems(self):
        herd_argv = lambda n, cfg: [SERVER, n, '--config', cfg]  # noqa: E731
        ref_argv = lambda n, cfg: [PYTHON, REFERENCE, n, '--config', cfg, '--gazetteer', GAZETTEER]  # noqa: E731
        seed_argv = lambda n, cfg: ref_argv(n, cfg) + ['--seed-style']  # noqa: E731
        all_systems = [
            HerdSystem(self, 'herd', 'C++ herd', herd_argv, 'ready in',
                       phases=HerdSystem.phases + ('whatsat_sim',)),
            # One server of the herd alone (no peers, logging on): beside Redis and herd-null.
            HerdSystem(self, 'herd-one', 'C++ herd, one server alone', herd_argv, 'ready in',
                       phases=('throughput50',), topology=([self.load_entry], [])),
            # Rings of N servers, one after the other: the entry's rate and the herd's deliveries.
            RingSystem(self),
            # The same herd with TLS peer links: IAMAT throughput only, beside the plaintext one.
            HerdSystem(self, 'herd-tls', 'C++ herd, TLS peer links', herd_argv, 'ready in',
                       phases=('tls_pairs',), tls=True),
            HerdSystem(self, 'ref', 'asyncio reference', ref_argv, 'ready ', slow=True,
                       phases=HerdSystem.phases + ('whatsat_sim',)),
            # Seed-style differs from the reference only in how floods travel, so the client-side
            # scenarios (idle connections, memory) are not repeated for it.
            HerdSystem(self, 'ref-seed', 'asyncio reference --seed-style', seed_argv, 'ready ',
                       slow=True, phases=('throughput', 'whatsat', 'openloop')),
            RedisSystem(self),
            RedisRepSystem(self),
            NullSystem(self),
        ]
        wanted = self.args.systems.split(',') if self.args.systems else None
        return [x for x in all_systems if wanted is None or x.key in wanted]

    def run(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.fd_hard = hard
        if hard < self.scale['idle_connections'] + 300:
            self.warnings.append('RLIMIT_NOFILE hard limit is %d: the idle phase holds only %d '
                                 'connections' % (hard, hard - 300))
        self.tmp = tempfile.mkdtemp(prefix='herd-bench-')
        self.pm = procs.ProcManager(self.tmp)
        try:
            snapshot_binaries(os.path.join(self.tmp, 'bin'))
            systems = self.systems()
        except procs.StartError as e:
            self.failures.append(str(e))
            systems = []
        t_start = time.monotonic()
        meta = self.results['meta'] = {
            'quick': self.quick, 'started': datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec='seconds'),
            'cores': os.cpu_count(), 'cpu_model': cpu_model(), 'kernel': platform.release(),
            'loadavg_start': os.getloadavg(), 'herd_threads': self.herd_threads,
            'gen_threads': self.gen_threads, 'gen_tries': self.gen_tries, 'nofile': [soft, hard],
            'scale': self.scale,
            'load_entry': self.load_entry, 'prop_entry': self.prop_entry,
            'prop_far': self.prop_far, 'prop_hops': self.prop_hops,
            'servers': self.names, 'links': self.links,
            'redis_version': redis_version(),
        }
        try:
            for system in systems:
                res = self.results['systems'][system.key] = {
                    'label': system.label, 'kind': system.kind, 'phases': list(system.phases),
                    'entry_proc': system.entry_label}
                t0 = time.monotonic()
                print('== %s' % system.label, flush=True)
                try:
                    system.start()
                    res['rss_idle_kb'] = {k: procs.rss_kb(p) for k, p in system.pids().items()}
                    if getattr(system, 'cities', None):
                        res['cities'] = system.cities
                        print('  %d GeoNames cities loaded into Redis in %.1f s (%d beyond its '
                              'latitude range left out)' % (system.cities, system.cities_load_s,
                                                            system.cities_left_out), flush=True)
                    for ph in system.phases:
                        getattr(self, 'phase_' + ph)(system, res)
                    res['status'] = 'ok'
                except procs.StartError as e:
                    res['status'] = 'failed to start: %s' % e
                    self.failures.append('%s: %s' % (system.label, res['status']))
                    print('  FAILED: %s' % e, flush=True)
                finally:
                    system.stop()
                res['seconds'] = round(time.monotonic() - t0, 1)
        finally:
            self.pm.stop_all()
            if self.sim is not None:
                self.sim.stop()
            meta['seconds'] = round(time.monotonic() - t_start, 1)
            meta['loadavg_end'] = os.getloadavg()
            self.results['failures'] = self.failures
            self.results['warnings'] = self.warnings
            self.results['notes'] = self.notes
            if not self.args.keep_tmp:
                shutil.rmtree(self.tmp, ignore_errors=True)
        return self.results


# ---------------------------------------------------------------------------------------------

def steady_handshakes(samples, warmup):
    """From the simulator's counters sampled during a run: the steady window starts `warmup`
    seconds after the first upstream request was counted (the generator's own warm-up, after its
    seeding) and ends at the last sample; the handshakes and requests per second in it."""
    ok = [x for x in samples if x[1] is not None]
    first = next((x for x in ok if x[2] > 0), None)
    if first is None:
        return {'problem': 'the simulator counted no request'}
    start = next((x for x in ok if x[0] >= first[0] + warmup), None)
    end = ok[-1]
    if start is None or end[0] - start[0] < 0.2:
        return {'problem': 'no steady window (run too short)'}
    dt = end[0] - start[0]
    def pct(i):
        if start[i] is None or end[i] is None:
            return None
        return round(100.0 * (end[i] - start[i]) / procs.CLK_TCK / dt, 1)
    return {'start_s': start[0], 'end_s': end[0], 'seconds': round(dt, 2),
            'sim_cpu_percent': pct(6), 'herd_cpu_percent': pct(7),
            'handshakes': end[1] - start[1], 'handshakes_per_s': round((end[1] - start[1]) / dt, 2),
            'requests_per_s': round((end[2] - start[2]) / dt, 1),
            'handshakes_total': end[1], 'connections_total': end[3],
            'open_connections_end': end[4], 'max_inflight': end[5]}


def show_argv(argv):
    """A command line for the report: repository paths relative, snapshot binaries as build/NAME,
    temporary files as $TMP/..."""
    out = []
    for a in argv:
        if '/herd-bench-' in a and '/bin/' in a:
            a = 'build/' + os.path.basename(a)
        elif '/herd-bench-' in a:
            a = '$TMP/' + a.split('/herd-bench-', 1)[1].split('/', 1)[-1]
        elif a.startswith(ROOT + '/'):
            a = os.path.relpath(a, ROOT)
        out.append(a)
    return ' '.join(out)


def snapshot_binaries(dest):
    """Copy the binaries into the run's directory so that a rebuild in the work tree during the run
    cannot swap them (or leave a half-written file) under the benchmark. Each copy must answer
    --help before it is used."""
    global SERVER, LOADGEN, NULLSRV
    import subprocess
    os.makedirs(dest, exist_ok=True)
    copies = {}
    for path in (SERVER, LOADGEN, NULLSRV):
        target = os.path.join(dest, os.path.basename(path))
        deadline = time.monotonic() + 60
        while True:
            try:
                shutil.copy2(path, target)
                ok = subprocess.run([target, '--help'], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, timeout=10).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                ok = False
            if ok:
                break
            if time.monotonic() > deadline:
                raise procs.StartError('%s: cannot take a working copy (is it being rebuilt?)' % path)
            time.sleep(1)
        copies[path] = target
    SERVER, LOADGEN, NULLSRV = copies[SERVER], copies[LOADGEN], copies[NULLSRV]


def jget_rate(rec):
    j = (rec or {}).get('json') or {}
    if rec.get('failed') or not j.get('replies'):
        return None
    return j.get('throughput')


class RingSystem(System):
    """Not one system but a series: N-server rings started one after the other (phase_ring)."""
    key, label, kind = 'ring', 'C++ servers in a ring', 'ring'
    phases = ('ring',)
    entry_label = 'R01'

    def start(self):
        pass


def summarize(rec):
    j = rec.get('json')
    if not j:
        return 'FAILED: %s' % rec.get('problem', '?')
    lat = j.get('latency_us', {})
    if rec.get('failed'):
        return '%s  gen CPU %3.0f%%' % (rec['problem'], j.get('cpu_percent', 0))
    if j.get('seeded') and '--requests 1' in rec.get('argv', ''):
        # The memory phase: what counts is the seeding, not the one request measured after it.
        return 'seeded %d in %.1f s  gen CPU %3.0f%%' % (j['seeded'], j.get('wall_seconds', 0),
                                                         j.get('cpu_percent', 0))
    s = '%10.0f/s  p50 %7.0f us  p99 %8.0f us  gen CPU %3.0f%%' % (
        j.get('throughput', 0), lat.get('p50', 0), lat.get('p99', 0), j.get('cpu_percent', 0))
    if rec.get('problem'):
        s += '  [%s]' % rec['problem'][:120]
    elif rec.get('conn_errors'):
        s += '  [%s]' % rec['conn_errors']
    return s


def summarize_prop(p):
    j = p.get('json')
    if not j:
        return 'FAILED: %s' % p.get('problem', '?')
    if j.get('problem') or ('rounds_logged' in j and not j['rounds_logged']):
        return 'not available: %s' % j.get('problem', 'no probe round in the logs')
    return '  '.join('%d hop%s p50 %.3f ms p99 %.3f ms (missed %d)' % (
        h['hops'], '' if h['hops'] == 1 else 's', h['p50_ms'] or 0, h['p99_ms'] or 0, h['missed'])
        for h in j.get('by_hops', []))


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or '?'


def redis_version():
    exe = shutil.which('redis-server')
    if not exe:
        return None
    import subprocess
    try:
        out = subprocess.run([exe, '--version'], capture_output=True, text=True, timeout=10).stdout
        return out.split()[2].replace('v=', '') if len(out.split()) > 2 else out.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None


def thread_counts(text):
    """--gen-tries: "1,2" -> [1, 2]."""
    try:
        counts = [int(x) for x in text.split(',')]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError('expected thread counts such as 1,2, got %r' % text)
    return counts


def main(argv=None):
    ap = argparse.ArgumentParser(description='side-by-side benchmark of the herd')
    ap.add_argument('--quick', action='store_true', help='every scenario at tiny scale (about 3 minutes)')
    ap.add_argument('--out', default='bench/results', help='report directory')
    ap.add_argument('--systems', help='comma-separated subset: herd,herd-one,ring,herd-tls,ref,'
                                      'ref-seed,redis,redis-rep,null')
    ap.add_argument('--herd-threads', type=int, default=1,
                    help='event loops per C++ herd server and for herd-null (default 1)')
    ap.add_argument('--gen-threads', type=int, default=2,
                    help='herd-load threads for the runs that are not target comparisons (default 2, '
                         'so that the generator is not the limit; its CPU is in the report beside '
                         'every run)')
    ap.add_argument('--gen-tries', type=thread_counts, default=[1, 2],
                    help='herd-load thread counts tried for the target comparisons (IAMAT at 50 '
                         'connections, WHATSAT), comma-separated (default 1,2): every system is run '
                         'with each and keeps its best run')
    ap.add_argument('--keep-tmp', action='store_true', help='keep the temporary directory')
    ap.add_argument('--report-only', action='store_true',
                    help='rewrite report.md and the charts from OUT/results.json, run nothing')
    args = ap.parse_args(argv)

    out = os.path.join(ROOT, args.out) if not os.path.isabs(args.out) else args.out
    if args.report_only:
        with open(os.path.join(out, 'results.json')) as f:
            report.write(json.load(f), out)
        print('bench: report rewritten in %s' % out)
        return 0

    for path, what in ((SERVER, 'herd-server'), (LOADGEN, 'herd-load'), (NULLSRV, 'herd-null'),
                       (GAZETTEER, 'the gazetteer')):
        if not os.path.exists(path):
            print('bench: %s is missing (%s); run make first' % (path, what), file=sys.stderr)
            return 2

    def on_signal(signum, frame):
        # One interruption is enough: the `finally` blocks stop every process; a second signal
        # must not cut that short.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted('signal %d' % signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    os.makedirs(out, exist_ok=True)
    bench = Bench(args)
    try:
        results = bench.run()
    except Interrupted as e:
        print('bench: interrupted (%s); every process was stopped' % e, file=sys.stderr)
        return 130
    with open(os.path.join(out, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1, sort_keys=False)
    report.write(results, out)
    print('bench: report written to %s (%.0f s)' % (os.path.join(out, 'report.md'),
                                                    results['meta']['seconds']))
    for w in results['warnings']:
        print('bench: warning: %s' % w, file=sys.stderr)
    if results['failures']:
        for f in results['failures']:
            print('bench: FAILED: %s' % f, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
