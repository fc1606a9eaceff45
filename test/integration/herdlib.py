"""Helpers for the herd integration tests: starting herds of herd-server processes on free loopback
ports, talking to them over TCP with bounded waits, and checking replies against SPEC.md.

Everything here uses the standard library only. Every wait has a deadline; every process started
through Herd is stopped (SIGTERM, then SIGKILL) by Herd.stop(), which the fixtures always call.
"""

import json
import math
import os
import re
import select
import signal
import socket
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _from_repo(path):
    return path if os.path.isabs(path) else os.path.join(REPO, path)


SERVER = _from_repo(os.environ.get('HERD_SERVER') or 'build/herd-server')
GAZETTEER = _from_repo(os.environ.get('HERD_GAZETTEER') or 'build/data/cities.pbf')
REFERENCE = _from_repo('tools/reference/herd_ref.py')
FAULTPROXY = _from_repo('tools/chaos/faultproxy.py')
CERTS_TOOL = _from_repo('tools/certs.py')
REFERENCE_PYTHON = '/usr/bin/python3'  # Debian's, which sees python3-yaml

NAMES = ['Goloman', 'Hands', 'Holiday', 'Welsh', 'Wilkes']
LINKS = [['Goloman', 'Hands'], ['Goloman', 'Holiday'], ['Goloman', 'Wilkes'],
         ['Hands', 'Wilkes'], ['Holiday', 'Welsh'], ['Holiday', 'Wilkes']]

IO_TIMEOUT = 5.0        # one reply, on a healthy server
READY_TIMEOUT = 30.0    # one server start (ASan, loaded 2-core machine)
PROPAGATION_TIMEOUT = 15.0
NS = 10**9
EARTH_RADIUS_M = 6371008.8
WHITESPACE = b' \t\r\n\f\v'

# What a sanitizer writes when it finds something.
SANITIZER_MARKERS = (b'ERROR: AddressSanitizer', b'ERROR: LeakSanitizer', b'runtime error:',
                     b'ERROR: ThreadSanitizer', b'WARNING: ThreadSanitizer')


def server_sanitizer():
    """'AddressSanitizer', 'ThreadSanitizer' or '' (a release build), as SERVER's --version says:
    tests that measure memory allow for a sanitizer's shadow memory."""
    import subprocess
    try:
        out = subprocess.run([SERVER, '--version'], capture_output=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ''
    for name in (b'AddressSanitizer', b'ThreadSanitizer'):
        if b', ' + name + b')' in out:
            return name.decode()
    return ''


# ------------------------------------------------------------------------------------------------
# Ports and processes

def http_get(port, path, headers=None, timeout=IO_TIMEOUT, method='GET'):
    """One HTTP/1.1 request to 127.0.0.1:port; returns (status, headers dict lower-cased, body)."""
    import http.client
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()


def free_ports(n):
    """n distinct ports that were free on 127.0.0.1 a moment ago (bound to port 0 together)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(('127.0.0.1', 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def server_env(extra=None):
    env = dict(os.environ)
    env['HERD_GAZETTEER'] = GAZETTEER
    # Sanitizer reports go to stderr (captured per server); keep the process alive on UBSan reports
    # so one finding does not hide the rest, and check for leaks at exit.
    env.setdefault('ASAN_OPTIONS', 'detect_leaks=1:abort_on_error=0')
    env.setdefault('UBSAN_OPTIONS', 'print_stacktrace=1')
    if extra:
        env.update(extra)
    return env


def make_certs(out, names, ca_name=None):
    """A CA and one certificate per name in `out` (tools/certs.py, as `make certs` does)."""
    argv = [REFERENCE_PYTHON, CERTS_TOOL, '--out', str(out), '--names'] + list(names)
    if ca_name:
        argv += ['--ca-name', ca_name]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, timeout=60)
    return str(out)


PEER_TLS_YAML = ('peer_tls:\n'
                 '  ca_file: certs/ca.pem\n'
                 '  cert_file: certs/{name}.pem\n'
                 '  key_file: certs/{name}.key\n')


def run_server_once(args, cwd=None, timeout=20.0, env=None):
    """Runs herd-server with args (for CLI/config errors); returns CompletedProcess (bytes)."""
    return subprocess.run([SERVER] + list(args), cwd=cwd, env=env or server_env(),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


class ServerProc:
    """One running herd-server. stdout is read until the ready line; stderr goes to a file."""

    def __init__(self, name, config_path, workdir, env=None, reference=False, binary=None,
                 preexec=None):
        self.name = name
        self.binary = binary or SERVER  # another herd-server build (e.g. ASan without UBSan)
        self.preexec = preexec  # run in the child before exec (e.g. resource limits)
        # The asyncio reference server (tools/reference) instead of herd-server, for mixed herds.
        self.reference = reference
        self.config_path = config_path
        self.workdir = workdir
        self.env = env
        self.proc = None
        self.stderr_path = None
        self.ready_line = None
        self.starts = 0
        self.killed = False  # stopped on purpose by a test (SIGKILL): not expected to exit 0

    def start(self):
        self.starts += 1
        self.stderr_path = os.path.join(self.workdir, '%s.stderr.%d' % (self.name, self.starts))
        with open(self.stderr_path, 'wb') as err:
            argv = [self.binary, self.name, '--config', self.config_path]
            if self.reference:
                argv = [REFERENCE_PYTHON, REFERENCE, self.name, '--config', self.config_path,
                        '--gazetteer', GAZETTEER]
            self.proc = subprocess.Popen(argv,
                                         cwd=self.workdir, env=self.env or server_env(),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, preexec_fn=self.preexec)
        self.ready_line = None
        self.killed = False

    @property
    def pid(self):
        return self.proc.pid

    def stderr(self):
        try:
            with open(self.stderr_path, 'rb') as f:
                return f.read()
        except OSError:
            return b''

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Waits for the ready line on stdout. Returns True when ready, False when the process
        exited first (its status and stderr tell why). Raises on timeout."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        buf = b''
        while b'\n' not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError('%s: no ready line within %.0f s; stderr: %r'
                                     % (self.name, timeout, self.stderr()[-2000:]))
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    self.proc.wait(timeout=10)
                    return False
                buf += chunk
        self.ready_line = buf.split(b'\n', 1)[0].decode('utf-8', 'replace')
        pattern = (r'ready %s client .*' if self.reference
                   else r'herd-server %s: clients .*, ready in \d+ ms')
        assert re.fullmatch(pattern % re.escape(self.name), self.ready_line), self.ready_line
        return True

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        self.killed = True
        if self.alive():
            self.proc.send_signal(sig)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def stop(self, signalled=False):
        """SIGTERM (unless already sent), bounded wait, then SIGKILL. Returns (exit status,
        stderr bytes)."""
        if self.proc is None:
            return None, b''
        if self.proc.poll() is None:
            if not signalled:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode, self.stderr()

    def cpu_seconds(self):
        """User plus system CPU time the process has used so far (all its threads)."""
        with open('/proc/%d/stat' % self.proc.pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')

    def vm_rss_kb(self):
        with open('/proc/%d/status' % self.proc.pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
        raise AssertionError('no VmRSS for pid %d' % self.proc.pid)


class Herd:
    """A herd of servers on free loopback ports, with its config and logs in `workdir`."""

    def __init__(self, workdir, names=None, links=None, limits=None, threads=2, extra_yaml='',
                 reference=(), peer_tls=False, places=None, env=None, proxied=False, admin=False,
                 binaries=None, preexec=None):
        self.workdir = str(workdir)
        # The places: section as a dict (default: the offline provider), and extra environment
        # variables for every server (an API key, say).
        self.places = places or {'provider': 'offline'}
        self.env = env
        # Every link through tools/chaos/faultproxy.py (one route per direction, `A>B` for the
        # connection A dials to B), each server with a config of its own that points there.
        self.proxied = proxied
        self.proxy_proc = None
        self.proxy_ports = {}   # route name -> listen port
        self.control_port = None
        self.reference = set(reference)  # names run by the asyncio reference server
        self.names = list(names or NAMES)
        self.links = [list(l) for l in (links if links is not None else LINKS)]
        self.limits = limits
        self.threads = threads
        self.extra_yaml = extra_yaml
        self.admin = admin      # give every server an admin_port (admin_ports[name])
        self.admin_ports = {}
        # Peer links over TLS: certificates for every server in workdir/certs (tools/certs.py).
        self.peer_tls = peer_tls
        self.cert_dir = os.path.join(self.workdir, 'certs')
        self.config_path = os.path.join(self.workdir, 'config.yaml')
        self.log_dir = os.path.join(self.workdir, 'logs')
        self.ports = {}
        self.peer_ports = {}
        self.servers = {}
        self.problems = []  # sanitizer reports and unclean exits found at stop
        self.binaries = dict(binaries or {})  # name -> herd-server binary, for some servers
        self.preexec = dict(preexec or {})    # name -> function run in that server's child process

    # -- config
    def write_config(self):
        routes = [(a, b) for a, b in self.links] + [(b, a) for a, b in self.links]
        per = 3 if self.admin else 2
        # One call, so that the proxy's ports never collide with the servers'.
        ports = free_ports(per * len(self.names) + (len(routes) + 1 if self.proxied else 0))
        proxy_ports = ports[per * len(self.names):]
        for i, name in enumerate(self.names):
            self.ports[name] = ports[per * i]
            self.peer_ports[name] = ports[per * i + 1]
            if self.admin:
                self.admin_ports[name] = ports[per * i + 2]
        lines = ['threads: %d' % self.threads,
                 'log_dir: logs',
                 'places:'] + ['  %s: %s' % (k, json.dumps(v) if isinstance(v, str) else v)
                               for k, v in self.places.items()] + [
                 'peer_backoff: { initial_ms: 100, max_ms: 500 }',
                 'servers:']
        for name in self.names:
            admin = ', admin_port: %d' % self.admin_ports[name] if self.admin else ''
            lines.append('  %s: { host: 127.0.0.1, port: %d, peer_port: %d%s }'
                         % (name, self.ports[name], self.peer_ports[name], admin))
        lines.append('links:' if self.links else 'links: []')
        for a, b in self.links:
            lines.append('  - [%s, %s]' % (a, b))
        if self.limits:
            lines.append('limits:')
            for k, v in self.limits.items():
                lines.append('  %s: %s' % (k, v))
        text = '\n'.join(lines) + '\n' + self.extra_yaml
        if self.peer_tls:
            make_certs(self.cert_dir, self.names)
            text += PEER_TLS_YAML
        with open(self.config_path, 'w') as f:
            f.write(text)
        if self.proxied:
            self.control_port = proxy_ports[-1]
            self.proxy_ports = {'%s>%s' % r: p for r, p in zip(routes, proxy_ports)}
            for name in self.names:
                via = {b: self.proxy_ports['%s>%s' % (a, b)] for a, b in routes if a == name}
                own = text
                for other, port in via.items():
                    own = re.sub(r'peer_port: %d\b' % self.peer_ports[other], 'peer_port: %d' % port, own)
                with open(self.server_config(name), 'w') as f:
                    f.write(own)

    def server_config(self, name):
        return (os.path.join(self.workdir, 'config-%s.yaml' % name) if self.proxied
                else self.config_path)

    def start_proxy(self):
        argv = [REFERENCE_PYTHON, FAULTPROXY, '--control', str(self.control_port)]
        for route, port in self.proxy_ports.items():
            a, b = route.split('>')
            argv += ['--route', route, str(port), '127.0.0.1:%d' % self.peer_ports[b]]
        self.proxy_proc = subprocess.Popen(argv, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        line = b''
        deadline = time.monotonic() + READY_TIMEOUT
        while not line.endswith(b'\n') and time.monotonic() < deadline:
            r, _, _ = select.select([self.proxy_proc.stdout], [], [], 0.5)
            if r:
                chunk = os.read(self.proxy_proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
        assert line.startswith(b'faultproxy ready'), 'faultproxy did not start: %r' % line

    def proxy(self, command):
        """One command to the fault proxy (see tools/chaos/faultproxy.py); returns its answer."""
        with socket.create_connection(('127.0.0.1', self.control_port), timeout=IO_TIMEOUT) as s:
            s.sendall(command.encode() + b'\n')
            answer = b''
            while not answer.endswith(b'\n'):
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
        answer = answer.decode().strip()
        assert answer.startswith('ok'), (command, answer)
        return answer

    def proxy_stats(self, route):
        """{'up': bytes delivered to the route's target, 'down': ..., 'conns': ..., 'swallowed': ...}"""
        return {k: int(v) for k, v in (f.split('=') for f in self.proxy('stats ' + route).split()[1:])}

    # -- processes
    def start(self, attempts=5):
        """Starts every server; retries on fresh ports when one loses a port race."""
        for attempt in range(attempts):
            self.write_config()
            if self.proxied:
                self.start_proxy()
            env = server_env(self.env) if self.env else None
            self.servers = {n: ServerProc(n, self.server_config(n), self.workdir, env=env,
                                          reference=n in self.reference,
                                          binary=self.binaries.get(n), preexec=self.preexec.get(n))
                            for n in self.names}
            for s in self.servers.values():
                s.start()
            failed = [s for s in self.servers.values() if not s.wait_ready()]
            if not failed:
                self.wait_links_settled()
                return self
            in_use = all(s.proc.returncode == 1 and b'in use' in s.stderr() for s in failed)
            for s in self.servers.values():
                s.kill()
            self.stop_proxy()
            if not in_use or attempt == attempts - 1:
                raise AssertionError('herd did not start: ' + '; '.join(
                    '%s exit %s: %r' % (s.name, s.proc.returncode, s.stderr()[-1000:])
                    for s in failed))
        return self

    def wait_links_settled(self, timeout=PROPAGATION_TIMEOUT):
        """Waits until every link between two C++ servers has finished its first catch-up (the
        receiver logs `caught up`), so a test starts on a herd whose links carry records one by
        one rather than in the catch-up of a link still coming up; and until every link from or to
        a reference server is up at its sender. A reference server drops the updates it takes while
        its link is down, and it redials with a growing backoff: a test that began while a slow
        neighbour was still starting would lose its first update there."""
        pending = {(a, b) for a, b in self.links} | {(b, a) for a, b in self.links}

        def settled(a, b):  # a's link to b
            if a in self.reference:
                return b'link %s: up ' % b.encode() in self.log_bytes(a)
            if b in self.reference:
                return b' %s + link up' % b.encode() in self.log_bytes(a)
            return b'/%s * caught up: ' % a.encode() in self.log_bytes(b)

        def done():
            for a, b in list(pending):
                if settled(a, b):
                    pending.discard((a, b))
            return not pending
        wait_for(done, timeout, 'the first catch-up of every link: %s' % sorted(pending))

    def restart(self, name):
        """Starts `name` again with the same config and ports (after kill())."""
        s = self.servers[name]
        assert not s.alive(), '%s is still running' % name
        if not s.killed:
            self.collect(s)
        deadline = time.monotonic() + 10
        while True:
            s.start()
            if s.wait_ready():
                return s
            # The kernel may need a moment to release the port of a killed process.
            if time.monotonic() > deadline:
                raise AssertionError('%s did not restart: exit %s: %r'
                                     % (name, s.proc.returncode, s.stderr()[-1000:]))
            time.sleep(0.2)

    def data_path(self, name):
        """<data_dir>/<name> for a herd whose extra_yaml says `data_dir: data`."""
        return os.path.join(self.workdir, 'data', name)

    def wipe(self, name):
        """Removes a (stopped) server's data directory: its next start is a fresh disk."""
        import shutil
        shutil.rmtree(self.data_path(name), ignore_errors=True)

    def kill_all(self, sig=signal.SIGKILL):
        """Signals every running server at once (then reaps them)."""
        for s in self.servers.values():
            if s.alive():
                s.killed = True
                s.proc.send_signal(sig)
        for s in self.servers.values():
            if s.proc is not None:
                s.proc.wait(timeout=20)
                self.collect(s, expect_clean=False)

    def kill(self, name, sig=signal.SIGKILL):
        s = self.servers[name]
        s.kill(sig)
        self.collect(s, expect_clean=False)

    def collect(self, s, expect_clean=True):
        err = s.stderr()
        for marker in SANITIZER_MARKERS:
            if marker in err:
                self.problems.append('%s (start %d): sanitizer report:\n%s'
                                     % (s.name, s.starts, err.decode('utf-8', 'replace')[-6000:]))
                break
        if expect_clean and s.proc is not None and s.proc.returncode not in (0, None):
            self.problems.append('%s (start %d): exit status %s after SIGTERM; stderr: %r'
                                 % (s.name, s.starts, s.proc.returncode, err[-2000:]))

    def stop_proxy(self):
        if self.proxy_proc is not None and self.proxy_proc.poll() is None:
            self.proxy_proc.terminate()
            try:
                self.proxy_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proxy_proc.kill()
                self.proxy_proc.wait(timeout=10)
        if self.proxy_proc is not None and self.proxy_proc.stdout:
            self.proxy_proc.stdout.close()

    def stop(self):
        """Stops every server; returns the list of problems (sanitizer reports, unclean exits)."""
        running = []
        for s in self.servers.values():
            if s.proc is not None and s.proc.poll() is None:
                s.proc.send_signal(signal.SIGTERM)
                running.append(s)
        for s in self.servers.values():
            if s.proc is None:
                continue
            s.stop(signalled=s in running)
            if not s.killed:
                self.collect(s)  # a server that died by itself is a problem too
        self.stop_proxy()
        return self.problems

    # -- access
    def port(self, name):
        return self.ports[name]

    def client(self, name, timeout=IO_TIMEOUT):
        return Client(self.ports[name], timeout)

    def log_path(self, name):
        return os.path.join(self.log_dir, name + '.log')

    def log_bytes(self, name):
        try:
            with open(self.log_path(name), 'rb') as f:
                return f.read()
        except OSError:
            return b''


# ------------------------------------------------------------------------------------------------
# Talking to a server

class Client:
    """A client connection with a receive buffer; every read has a deadline."""

    def __init__(self, port, timeout=IO_TIMEOUT, nodelay=True):
        self.timeout = timeout
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b''

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def half_close(self):
        self.sock.shutdown(socket.SHUT_WR)

    def _fill(self, deadline, what):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError('timed out waiting for %s; have %r' % (what, self.buf[-300:]))
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            raise AssertionError('timed out waiting for %s; have %r' % (what, self.buf[-300:]))
        if not chunk:
            raise EOFError('connection closed while waiting for %s; have %r' % (what, self.buf[-300:]))
        self.buf += chunk

    def read_until(self, marker, timeout=None, start=0):
        """Bytes up to and including the first `marker` found at or after offset `start`."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            i = self.buf.find(marker, start)
            if i >= 0:
                out, self.buf = self.buf[:i + len(marker)], self.buf[i + len(marker):]
                return out
            self._fill(deadline, repr(marker))

    def read_line(self, timeout=None):
        return self.read_until(b'\n', timeout)

    def read_exactly(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._fill(deadline, '%d bytes' % n)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_whatsat(self, timeout=None):
        """A WHATSAT reply: `? ...\\n`, or the AT line plus JSON through the first `\\n\\n`."""
        first = self.read_line(timeout)
        if first.startswith(b'? '):
            return first
        return first + self.read_until(b'\n\n', timeout)

    def read_to_eof(self, timeout=None):
        """Everything until the server closes; fails on timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                self._fill(deadline, 'EOF')
            except EOFError:
                out, self.buf = self.buf, b''
                return out
            except ConnectionResetError:
                out, self.buf = self.buf, b''
                return out

    def expect_silence(self, seconds):
        """Asserts that nothing arrives for `seconds` (the connection may stay open)."""
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(4096)
        except socket.timeout:
            return
        raise AssertionError('expected no bytes, got %r' % chunk)


def request(port, data, n_lines=1, timeout=IO_TIMEOUT):
    """Sends `data` on a new connection and returns the first n_lines lines (each with its \\n)."""
    with Client(port, timeout) as c:
        c.send(data)
        return b''.join(c.read_line() for _ in range(n_lines))


def whatsat(port, client_id, radius=10, bound=5, timeout=IO_TIMEOUT):
    with Client(port, timeout) as c:
        c.send(b'WHATSAT %s %s %s\n' % (client_id, str(radius).encode(), str(bound).encode()))
        return c.read_whatsat()


def iamat(port, client_id, location, client_time, timeout=IO_TIMEOUT):
    """Sends one IAMAT; returns the reply line without its newline."""
    line = b'IAMAT %s %s %s\n' % (client_id, location, client_time)
    return request(port, line, 1, timeout)[:-1]


def updates(herd, entry, prefix, n, t=b'1600000000.5', ids=None, location=b'+34.068930-118.445127'):
    """n pipelined IAMATs at `entry` for fresh clients (or for `ids`); returns {client id: AT line}."""
    ids = ids or [unique_id(prefix) for _ in range(n)]
    out = {}
    with herd.client(entry, timeout=20) as c:
        c.send(b''.join(b'IAMAT %s %s %s\n' % (i, location, t) for i in ids))
        for i in ids:
            out[i] = c.read_line()[:-1]
    return out


def missing_at(herd, name, expected):
    """The clients whose record at `name` is not the expected AT line."""
    held = at_lines(herd.port(name), expected.keys(), timeout=20)
    return {i for i, line in expected.items() if held[i] != line}


def wait_all_at(herd, name, expected, timeout=30):
    """Waits until `name` holds every expected AT line ({client id: line})."""
    wait_for(lambda: not missing_at(herd, name, expected), timeout,
             '%d records at %s' % (len(expected), name), interval=0.2)


def at_lines(port, client_ids, timeout=IO_TIMEOUT, batch=200):
    """The stored AT line (bytes, no newline) of each client at one server, or None when unknown:
    WHATSAT id 1 1 pipelined on one connection, in batches."""
    out = {}
    ids = list(client_ids)
    with Client(port, timeout) as c:
        for k in range(0, len(ids), batch):
            part = ids[k:k + batch]
            c.send(b''.join(b'WHATSAT %s 1 1\n' % i for i in part))
            for i in part:
                reply = c.read_whatsat()
                out[i] = None if reply.startswith(b'? ') else reply.split(b'\n', 1)[0]
    return out


def poll_whatsat(port, client_id, expected_at, timeout=PROPAGATION_TIMEOUT, radius=10, bound=5):
    """Asks WHATSAT until the AT line is `expected_at` (bytes, no newline); returns the reply."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = whatsat(port, client_id, radius, bound)
        if last.split(b'\n', 1)[0] == expected_at:
            return last
        if time.monotonic() > deadline:
            raise AssertionError('port %d never returned %r for %r; last reply %r'
                                 % (port, expected_at, client_id, last[:300]))
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------------
# Times and checks

def fmt_time(ns):
    """A POSIX time in integer nanoseconds as `seconds.fraction` with 9 digits."""
    return b'%d.%09d' % (ns // NS, ns % NS)


AT_RE = re.compile(rb'AT (\S+) ([+-])(\d+)\.(\d{9}) (\S+) (\S+) (\S+)')


def parse_diff_ns(text):
    """`+12.000000001` -> 12000000001 (int ns); asserts the exact SPEC shape."""
    m = re.fullmatch(rb'([+-])(\d+)\.(\d{9})', text)
    assert m, 'bad time difference %r' % text
    v = int(m.group(2)) * NS + int(m.group(3))
    return -v if m.group(1) == b'-' else v


def check_at_line(line, server, client_id, location, client_time):
    """Checks an AT reply line (no newline) field by field; returns the diff in ns."""
    assert not line.endswith(b'\n')
    parts = line.split(b' ')
    assert len(parts) == 6, line
    assert parts[0] == b'AT' and parts[1] == server.encode(), line
    assert parts[3:] == [client_id, location, client_time], line
    assert b'+-' not in parts[2] and b'e' not in parts[2].lower(), line
    return parse_diff_ns(parts[2])


def haversine_m(lat1, lng1, lat2, lng2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def parse_location(text):
    m = re.fullmatch(rb'([+-]\d+\.\d+)([+-]\d+\.\d+)', text)
    assert m, text
    return float(m.group(1)), float(m.group(2))


def check_whatsat_reply(reply, at_line, bound, radius_km=None):
    """Checks a WHATSAT reply against SPEC: the exact AT line, JSON ending in `}\\n\\n` with no blank
    line inside, at most `bound` results, all within the radius of the AT line's location.
    Returns the parsed JSON."""
    assert reply.startswith(at_line + b'\n'), (reply[:200], at_line)
    body = reply[len(at_line) + 1:]
    assert body.endswith(b'}\n\n'), body[-50:]
    assert not body.endswith(b'}\n\n\n')
    text = body[:-2]
    assert b'\n\n' not in text, 'blank line inside the JSON'
    doc = json.loads(text.decode('utf-8'))
    assert isinstance(doc, dict)
    assert doc.get('status') in ('OK', 'ZERO_RESULTS'), doc.get('status')
    results = doc.get('results')
    assert isinstance(results, list)
    assert len(results) <= bound
    assert (doc['status'] == 'OK') == (len(results) > 0)
    if radius_km is not None:
        lat, lng = parse_location(at_line.split(b' ')[4])
        for r in results:
            loc = r['geometry']['location']
            d = haversine_m(lat, lng, loc['lat'], loc['lng'])
            assert d <= radius_km * 1000 + 1.0, (r.get('name'), d, radius_km)
    return doc


def invalid(line):
    """The reply SPEC fixes for an invalid line (given without its ending)."""
    return b'? ' + line + b'\n'


def wait_for(pred, timeout, what, interval=0.05, diagnose=None):
    """Polls pred() until it is true (returns its value) or `timeout` seconds pass (AssertionError).
    diagnose(), if given, is called on a timeout and its text added to the message, so that a
    failure says what the waiting side saw (a server's memory and metrics, a client's progress)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            message = 'timed out after %.1f s waiting for %s' % (timeout, what)
            if diagnose:
                message += '\n' + diagnose()
            raise AssertionError(message)
        time.sleep(interval)


TCP_ESTABLISHED = 1
TCP_STATES = {1: 'ESTABLISHED', 2: 'SYN_SENT', 3: 'SYN_RECV', 4: 'FIN_WAIT1', 5: 'FIN_WAIT2',
              6: 'TIME_WAIT', 7: 'CLOSE', 8: 'CLOSE_WAIT', 9: 'LAST_ACK', 10: 'LISTEN', 11: 'CLOSING'}


def tcp_state(sock):
    """The kernel's TCP state of `sock` (TCP_STATES names it); reading nothing from the socket."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return info[0]


def socket_queues(sock):
    """(bytes sent but not yet acknowledged by the peer, bytes received and not yet read) of `sock`."""
    import fcntl
    import struct
    import termios
    out = struct.unpack('i', fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b'\0' * 4))[0]
    unread = struct.unpack('i', fcntl.ioctl(sock.fileno(), termios.FIONREAD, b'\0' * 4))[0]
    return out, unread


def _proc_net_tcp_address(addr):
    host, port = addr[:2]
    return '%08X:%04X' % (int.from_bytes(socket.inet_aton(host), 'little'), port)


def peer_queues(ours, theirs):
    """(bytes the peer has written and not yet sent to us, bytes it has received from us and not yet
    read) on the other end of a loopback IPv4 connection (our address, theirs), from /proc/net/tcp;
    None once it is gone. For a server that seems stuck: did it stop reading, or has it nothing to read?"""
    local = _proc_net_tcp_address(theirs)
    remote = _proc_net_tcp_address(ours)
    try:
        with open('/proc/net/tcp') as f:
            for line in f:
                fields = line.split()
                if fields[1] == local and fields[2] == remote:
                    tx, rx = fields[4].split(':')
                    return int(tx, 16), int(rx, 16)
    except OSError:
        pass
    return None


def process_memory(pid):
    """{'VmPeak': kB, 'VmSize': kB, 'VmRSS': kB} of a running process, or {} once it is gone."""
    try:
        with open('/proc/%d/status' % pid) as f:
            return {k: int(v.split()[0]) for k, v in (l.split(':', 1) for l in f)
                    if k in ('VmPeak', 'VmSize', 'VmRSS')}
    except (OSError, ValueError):
        return {}


# The /metrics samples describe_server() reports: memory, buffers, connections, progress, the log.
DESCRIBED_METRICS = ('herd_buffered_bytes', 'herd_connections{', 'herd_commands_total',
                     'herd_log_', 'process_virtual_memory_bytes', 'process_resident_memory_bytes')


def log_tail(path, entries=6, width=200):
    """The last `entries` entries of a log file, each cut to `width` characters (replies are long)."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))
            lines = f.read().splitlines()[-entries:]
    except OSError as e:
        return ['(%s)' % e]
    return [l[:width].decode(errors='replace') + (' [...]' if len(l) > width else '') for l in lines]


def describe_server(pid, admin_port=None, log_path=None):
    """What a test can see of a server when a wait on it times out: its memory (from /proc), the
    buffered bytes, connections, commands answered and log counters of its /metrics (when it has an
    admin port), and the last entries of its log."""
    mem = process_memory(pid)
    memory = ', '.join('%s %d kB' % kv for kv in mem.items()) if mem else 'not running'
    parts = ['server pid %d: %s' % (pid, memory)]
    if admin_port and mem:
        try:
            status, _, body = http_get(admin_port, '/metrics')
            parts.append('metrics (HTTP %d): ' % status + '; '.join(
                l for l in body.decode(errors='replace').splitlines() if l.startswith(DESCRIBED_METRICS)))
        except Exception as e:  # a diagnosis must not hide the failure it explains
            parts.append('metrics: unavailable (%r)' % e)
    if log_path:
        parts.append('log %s ends:\n  ' % log_path + '\n  '.join(log_tail(str(log_path))))
    return '\n'.join(parts)


_counter = [0]


def unique_id(prefix='c'):
    """A client ID no other test uses (per process run)."""
    _counter[0] += 1
    return b'%s-%d-%d' % (prefix.encode(), os.getpid(), _counter[0])


def neighbours(herd, name):
    return [b for a, b in herd.links if a == name] + [a for a, b in herd.links if b == name]


def flush_links(herd, names=None, timeout=PROPAGATION_TIMEOUT):
    """Waits until every peer link of the herd has delivered everything queued on it before this
    call: a fresh sentinel IAMAT at each server N, then, for each neighbour S of N, S's log shows
    that sentinel received from N directly. Links are FIFO, so whatever N had queued for S before
    (a duplicate, a stale record wrongly flooded) has been received and logged by then. For the
    "nothing else happened" checks: a wait on an event, not on the clock. C++ servers only."""
    names = [n for n in (names or herd.names) if neighbours(herd, n)]
    sentinels = {}
    for n in names:
        cid = unique_id('flush-%s' % n)
        sentinels[n] = iamat(herd.port(n), cid, b'+00.000000+000.000000', b'1')
    pending = {(n, s) for n in names for s in neighbours(herd, n) if s in herd.servers}

    def done():
        for n, s in list(pending):
            if (b'/%s < %s' % (n.encode(), sentinels[n])) in herd.log_bytes(s):
                pending.discard((n, s))
        return not pending
    wait_for(done, timeout, 'sentinels over every link: %s' % sorted(pending))
