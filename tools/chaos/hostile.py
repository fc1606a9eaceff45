"""Hostile clients for the chaos run (`chaos.py --hostile`): while the herd serves steady load and
faults come and go, a thread keeps attacking the live servers the ways issue 9 lists, and checks
that each attack gets the answer the limits promise:

    slowloris   an incomplete line fed a byte at a time: closed after limits.line_timeout_ms
    no-read     WHATSATs pipelined by a client that never reads: the server stops reading it, and
                closes it after limits.write_timeout_ms
    oversize    a line over limits.max_line: `? ` and the connection closed
    control     lines full of NUL, ESC, CR and other control bytes: one `? ` reply per line
    long-id     an IAMAT whose ID is over limits.max_id_bytes: `? `
    future      an IAMAT from further ahead than limits.max_clock_skew: `? `
    stranger    a connection to the peer port that never says hello: closed after
                limits.peer_hello_timeout_ms
    churn       many connections opened and dropped at once, some mid-line

An attack whose server was killed or stopped meanwhile proves nothing and is not counted. The
thread only reports; chaos.py turns its problems into a failed run.
"""

import os
import random
import socket
import struct
import threading
import time

# Limits for a herd under hostile clients: short enough that every timeout fires several times in
# a run of minutes, long enough for a sanitizer build on a loaded machine to keep up.
LIMITS = {
    'line_timeout_ms': 2000,
    'write_timeout_ms': 3000,
    'peer_hello_timeout_ms': 2000,
    'max_line': 8192,
    'max_id_bytes': 256,
    'max_clock_skew': 3600,
    'max_buffered_bytes': 32 * 1024 * 1024,
}
# Time allowed beyond a timeout for the server to notice (its sweep runs every quarter of the
# shortest timeout) and for a busy sanitizer build to act.
SLACK_S = 4.0
UCLA = b'+34.068930-118.445127'
TCP_ESTABLISHED = 1


def tcp_state(sock):
    """The kernel's TCP state of `sock` (1: established; 7, 8: the other side has closed)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return struct.unpack('B', info[:1])[0]


def closed_by_server(sock):
    """True once the server has closed `sock` (FIN or RST), without reading anything from it."""
    try:
        return tcp_state(sock) != TCP_ESTABLISHED
    except OSError:
        return True


def _chunks(sock, deadline):
    """What the server sends, chunk by chunk, until it closes or the deadline passes; the last
    item is None when it closed."""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            chunk = b''
        if not chunk:
            yield None
            return
        yield chunk


def read_until_eof(sock, deadline):
    """Everything the server sends until it closes (True) or the deadline passes (False)."""
    data = b''
    for chunk in _chunks(sock, deadline):
        if chunk is None:
            return data, True
        data += chunk
    return data, False


def read_lines(sock, count, deadline):
    """`count` reply lines, or fewer if the deadline passes or the server closes."""
    buf = b''
    for chunk in _chunks(sock, deadline):
        if chunk is None:
            break
        buf += chunk
        if buf.count(b'\n') >= count:
            break
    return buf.split(b'\n')[:count] if buf.count(b'\n') >= count else buf.split(b'\n')[:-1]


class Hostile(threading.Thread):
    """Attacks the servers of `herd` until stop(); `busy()` names the servers a fault holds."""

    def __init__(self, herd, busy, epoch, seed, limits=None, clock=time.monotonic):
        super().__init__(daemon=True)
        self.herd = herd
        self.busy = busy            # () -> set of server names killed or stopped now
        self.epoch = epoch          # name -> a number that changes whenever it is killed or stopped
        self.rng = random.Random(seed)
        self.limits = dict(LIMITS, **(limits or {}))
        self.done = threading.Event()
        self.counts = {}            # attack -> times it ran to a verdict
        self.problems = []
        self.lock = threading.Lock()
        self.clock = clock          # for the times in problems (the run's clock)

    def stop(self):
        self.done.set()

    def run(self):
        attacks = [self.slowloris, self.no_read, self.oversize, self.control, self.long_id,
                   self.future, self.stranger, self.churn]
        while not self.done.is_set():
            live = [n for n in self.herd.names if n not in self.busy()]
            if not live:
                time.sleep(0.1)
                continue
            name = self.rng.choice(live)
            attack = self.rng.choice(attacks)
            before = self.epoch(name)
            started = self.clock()
            try:
                problem = attack(name)
            except OSError as e:
                problem = '%s: %r' % (attack.__name__, e)
            if self.epoch(name) != before or name in self.busy():
                continue            # the server was killed or stopped meanwhile: no verdict
            with self.lock:
                self.counts[attack.__name__] = self.counts.get(attack.__name__, 0) + 1
                if problem:
                    self.problems.append('hostile %s at %s (%.1f-%.1f s): %s'
                                         % (attack.__name__, name, started, self.clock(), problem))
            self.done.wait(self.rng.uniform(0.0, 0.3))

    # -- helpers
    def connect(self, port):
        s = socket.create_connection(('127.0.0.1', port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def wait_closed(self, sock, timeout_s, feed=None):
        """True if the server closes `sock` within timeout_s + SLACK_S; `feed()` runs meanwhile."""
        deadline = time.monotonic() + timeout_s + SLACK_S
        while time.monotonic() < deadline and not self.done.is_set():
            if closed_by_server(sock):
                return True
            if feed:
                try:
                    feed()
                except OSError:
                    return True     # reset by the server
            time.sleep(0.2)
        return closed_by_server(sock) or self.done.is_set()

    # -- the attacks; each returns a problem, or None
    def slowloris(self, name):
        with self.connect(self.herd.port(name)) as s:
            s.sendall(b'IAMAT slowloris')
            started = time.monotonic()
            if not self.wait_closed(s, self.limits['line_timeout_ms'] / 1000, feed=lambda: s.send(b'x')):
                return 'an incomplete line was held for %.1f s' % (time.monotonic() - started)
        return None

    def no_read(self, name):
        port = self.herd.port(name)
        cid = b'hostile-noread-%d' % self.rng.randrange(1 << 30)
        with self.connect(port) as s:
            s.sendall(b'IAMAT %s %s %.3f\n' % (cid, UCLA, time.time()))
            if not read_lines(s, 1, time.monotonic() + 10)[:1]:
                return 'no answer to the IAMAT before the WHATSATs'
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.setblocking(False)
            line = b'WHATSAT %s 50 20\n' % cid
            sent, stop_at = 0, time.monotonic() + 20
            blocked_since = None
            # Push until the server stops taking commands: our send buffer stays full for 1 s.
            while time.monotonic() < stop_at:
                try:
                    sent += s.send(line * 64)
                    blocked_since = None
                except BlockingIOError:
                    blocked_since = blocked_since or time.monotonic()
                    if time.monotonic() - blocked_since > 1.0:
                        break
                    time.sleep(0.02)
                except OSError:
                    return None     # closed already (its output stalled long enough)
            else:
                return 'the server kept reading (%d bytes) from a client that never reads' % sent
            started = time.monotonic()
            if not self.wait_closed(s, self.limits['write_timeout_ms'] / 1000):
                return 'a client that never reads was kept for %.1f s' % (time.monotonic() - started)
        return None

    def oversize(self, name):
        n = self.limits['max_line'] + 1 + self.rng.randrange(1000)
        with self.connect(self.herd.port(name)) as s:
            s.sendall(b'IAMAT ' + b'o' * n + b'\n')
            data, closed = read_until_eof(s, time.monotonic() + 10)
            if not data.startswith(b'? IAMAT ooo') or not closed:
                return 'a line of %d bytes got %r, closed: %s' % (n + 7, data[:40], closed)
        return None

    def control(self, name):
        bad = bytes(b for b in range(256) if b not in (0x0a,))
        lines = []
        for _ in range(self.rng.randint(1, 20)):
            body = bytes(self.rng.choice(bad) for _ in range(self.rng.randint(1, 200)))
            lines.append(b'X' + body)   # starts with a letter: never an empty or a valid command
        with self.connect(self.herd.port(name)) as s:
            s.sendall(b''.join(l + b'\n' for l in lines))
            replies = read_lines(s, len(lines), time.monotonic() + 10)
            if len(replies) != len(lines) or not all(r.startswith(b'? X') for r in replies):
                return 'control bytes: %d lines, replies %r' % (len(lines), replies[:3])
        return None

    def long_id(self, name):
        cid = b'L' * (self.limits['max_id_bytes'] + 1 + self.rng.randrange(2000))
        line = b'IAMAT %s %s %.3f' % (cid, UCLA, time.time())
        with self.connect(self.herd.port(name)) as s:
            s.sendall(line + b'\n')
            replies = read_lines(s, 1, time.monotonic() + 10)
            if replies != [b'? ' + line]:
                return 'an ID of %d bytes got %r' % (len(cid), [r[:40] for r in replies])
        return None

    def future(self, name):
        ahead = self.limits['max_clock_skew'] * self.rng.choice([2, 10, 10**6])
        line = b'IAMAT hostile-future %s %.3f' % (UCLA, time.time() + ahead)
        with self.connect(self.herd.port(name)) as s:
            s.sendall(line + b'\n')
            replies = read_lines(s, 1, time.monotonic() + 10)
            if replies != [b'? ' + line]:
                return 'a time %d s ahead got %r' % (ahead, replies)
        return None

    def stranger(self, name):
        with self.connect(self.herd.peer_ports[name]) as s:
            if self.rng.random() < 0.5:
                s.sendall(os.urandom(self.rng.randint(1, 64)).replace(b'\n', b' '))
            started = time.monotonic()
            if not self.wait_closed(s, self.limits['peer_hello_timeout_ms'] / 1000):
                return 'a peer connection without a hello was held for %.1f s' % (time.monotonic() - started)
        return None

    def churn(self, name):
        port = self.herd.port(name)
        socks = []
        try:
            for i in range(self.rng.randint(50, 300)):
                try:
                    s = socket.create_connection(('127.0.0.1', port), timeout=5)
                except OSError:
                    break
                if i % 3 == 0:
                    s.send(b'IAMAT churn-%d %s' % (i, UCLA))
                if i % 7 == 0:      # an abortive close: RST instead of FIN
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
                socks.append(s)
        finally:
            for s in socks:
                s.close()
        # The server still answers a normal client at once.
        with self.connect(port) as s:
            line = b'IAMAT hostile-after-churn %s %.3f' % (UCLA, time.time())
            s.sendall(line + b'\n')
            replies = read_lines(s, 1, time.monotonic() + 10)
            if not replies or not replies[0].startswith(b'AT %s ' % name.encode()):
                return 'after %d connections dropped, an IAMAT got %r' % (len(socks), replies)
        return None
