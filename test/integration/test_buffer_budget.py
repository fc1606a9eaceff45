"""limits.max_buffered_bytes (issue 9): per-client bounds add up (a client that never reads holds
about a mebibyte), so the server also keeps a budget over all connections: past it, the clients
holding the most unsent output stop being read first, and memory stays near the budget however many
such clients come, while a light client is still answered at once."""

import os
import re
import resource
import signal
import socket
import subprocess
import time

import pytest

from herdlib import (REPO, TCP_ESTABLISHED, TCP_STATES, check_at_line, describe_server, free_ports,
                     http_get, iamat, peer_queues, server_env, server_sanitizer, socket_queues, tcp_state,
                     unique_id, wait_for, whatsat)

UCLA = b'+34.068930-118.445127'
T = b'1520023934.5'


def deaf_client(port, payload):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(('127.0.0.1', port))
    s.sendall(payload)
    return s


def test_many_clients_that_never_read_stay_within_the_budget(make_herd):
    # log_level events: the replies are not logged, so what grows is the connections' buffers and
    # not the log's lane (which holds up to limits.log_backlog_bytes of WHATSAT replies on its own).
    herd = make_herd(names=['Solo'], links=[], threads=1, extra_yaml='log_level: events\n',
                     limits={'max_buffered_bytes': 2 * 1024 * 1024, 'write_timeout_ms': 0},
                     env={'ASAN_OPTIONS': 'detect_leaks=1:abort_on_error=0:quarantine_size_mb=0'})
    port = herd.port('Solo')
    server = herd.servers['Solo']
    cid = unique_id('la')
    at = iamat(port, cid, UCLA, T)
    whatsat(port, cid, 50, 20)  # warm the places path
    time.sleep(0.3)
    before = server.vm_rss_kb()
    # 24 clients each ask for about 4.5 MB of replies and read none of it: without the budget each
    # holds its 1 MiB output bound (up to 2 MiB of buffer capacity).
    burst = b'WHATSAT %s 50 20\n' % cid * 300
    deaf = [deaf_client(port, burst) for _ in range(24)]
    try:
        time.sleep(2)
        # A light client is served promptly beside them.
        other = unique_id('light')
        t0 = time.monotonic()
        check_at_line(iamat(port, other, UCLA, T), 'Solo', other, UCLA, T)
        assert whatsat(port, cid, 10, 1).startswith(at + b'\n')
        assert time.monotonic() - t0 < 2.0
        grown_mb = (server.vm_rss_kb() - before) / 1024
        print('resident memory grew by %.1f MB' % grown_mb)
        # Release build: about 4 MB with the budget, about 30 MB without it (a 1 GiB budget). Under
        # ThreadSanitizer the buffers' shadow memory comes on top: 16.2 MB with the budget.
        bound_mb = 48 if server_sanitizer() == 'ThreadSanitizer' else 16
        assert grown_mb < bound_mb, "grew by %.1f MB" % grown_mb
    finally:
        for s in deaf:
            s.close()
    # When they are gone the server goes on as before.
    check_at_line(iamat(port, cid, UCLA, b'1520023935'), 'Solo', cid, UCLA, b'1520023935')



class PumpedDeafClient:
    """A client that sends `payload` and never reads. Its socket does not block: the waiting test
    calls pump() to send what the kernel takes now, so a timeout can say how far the client got,
    when it last made progress, and whether it was stuck behind a server that stopped reading."""

    def __init__(self, port, payload):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect(('127.0.0.1', port))
        self.sock.setblocking(False)
        self.addresses = self.sock.getsockname(), self.sock.getpeername()
        self.payload = memoryview(payload)
        self.sent = 0
        self.error = None
        self.started = self.last_progress = time.monotonic()
        self.pump()

    def pump(self):
        while self.sent < len(self.payload) and self.error is None:
            try:
                n = self.sock.send(self.payload[self.sent:self.sent + (1 << 20)])
            except BlockingIOError:
                return
            except OSError as e:
                self.error = e
                return
            self.sent += n
            self.last_progress = time.monotonic()

    def closed_by_server(self):
        """True once the server has closed the connection (FIN or RST), seen without reading from it."""
        try:
            return tcp_state(self.sock) != TCP_ESTABLISHED
        except OSError:
            return True

    def describe(self):
        now = time.monotonic()
        try:
            state = TCP_STATES.get(tcp_state(self.sock), '?')
            queues = ', %d bytes not yet taken by the server, %d unread' % socket_queues(self.sock)
        except OSError as e:
            state, queues = 'unknown (%s)' % e, ''
        server_end = peer_queues(*self.addresses)
        queues += ('; the server\'s end holds %d bytes it has not sent and %d it has not read' % server_end
                   if server_end else '; the server\'s end is closed')
        doing = ('blocked: the kernel takes no more (the server is not reading)'
                 if self.sent < len(self.payload) and self.error is None else 'waiting, sending nothing')
        return ('client: sent %d of %d bytes in %.1f s, the last of them %.1f s ago%s; %s; TCP %s%s'
                % (self.sent, len(self.payload), self.last_progress - self.started, now - self.last_progress,
                   ', send failed: %r' % self.error if self.error else '', doing, state, queues))

    def close(self):
        self.sock.close()


RELEASE_SERVER = os.path.join(REPO, 'build', 'herd-server')


def test_an_allocation_failure_for_one_client_drops_that_client_only(tmp_path):
    """Under an address-space limit (RLIMIT_AS, as a container's memory limit would be), a client
    whose replies need more memory than is left loses its connection, with `out of memory` in the
    log (even though the log falls behind and drops the replies it would have logged), and the
    server goes on serving everyone else. Runs the release build: ASan's allocator
    aborts on a failed operator new instead of throwing std::bad_alloc."""
    if not os.path.exists(RELEASE_SERVER):
        pytest.skip('needs the release build (make)')
    port, peer_port, admin_port = free_ports(3)
    config = tmp_path / 'config.yaml'
    config.write_text('threads: 1\nlog_dir: logs\nservers:\n'
                      '  Solo: { host: 127.0.0.1, port: %d, peer_port: %d, admin_port: %d }\n'
                      'limits: { max_output_bytes: 4294967296, max_buffered_bytes: 1099511627776,\n'
                      '          write_timeout_ms: 0, max_pending_replies: 1048576 }\n'
                      % (port, peer_port, admin_port))
    limit = 768 << 20

    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.Popen([RELEASE_SERVER, 'Solo', '--config', str(config)], cwd=str(tmp_path),
                            env=server_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=cap_memory)
    try:
        ready = proc.stdout.readline()
        assert b'ready' in ready, (ready, proc.stderr.read() if proc.poll() is not None else b'')
        log = tmp_path / 'logs' / 'Solo.log'
        cid = unique_id('la')
        at = iamat(port, cid, UCLA, T)
        # About 900 MB of replies, none of them read: more than the address space left.
        deaf = PumpedDeafClient(port, b'WHATSAT %s 50 20\n' % cid * 60000)

        def diagnose():
            return deaf.describe() + '\n' + describe_server(proc.pid, admin_port, log)

        def dropped():
            deaf.pump()
            return deaf.closed_by_server()
        try:
            # The drop where it happens: the server closes the connection. Not in the log: its writer
            # may lag far behind a busy disk, and the replies it logs are dropped when it does.
            wait_for(dropped, 60, 'the server to drop the client whose replies it has no memory for',
                     diagnose=diagnose)
            assert proc.poll() is None, proc.stderr.read()
            # Why, once the writer gets there (events keep room in the log when I/O lines do not).
            wait_for(lambda: b' - out of memory' in log.read_bytes(), 60, 'the reason of the drop in the log',
                     interval=0.2, diagnose=diagnose)
            assert whatsat(port, cid, 10, 1).startswith(at + b'\n')
            other = unique_id('other')
            check_at_line(iamat(port, other, UCLA, T), 'Solo', other, UCLA, T)
        finally:
            deaf.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            proc.stdout.close()
            proc.stderr.close()


def solo_metric(herd, name):
    """The value of the unlabelled sample `name` on Solo's /metrics."""
    status, _, body = http_get(herd.admin_ports['Solo'], '/metrics')
    assert status == 200
    return int(re.search(rb'^' + name + rb' (\d+)$', body, re.M).group(1))


def test_an_idle_connection_holds_no_buffer_memory(make_herd):
    """Clients that once sent a long line in two pieces (so that it waited in the connection's
    buffer), were answered, and sit idle, hold nothing: their buffers used to keep up to 64 KiB
    each for good (herd_buffered_bytes 64 KiB a client)."""
    herd = make_herd(names=['Solo'], links=[], threads=1, admin=True, extra_yaml='log_level: events\n')
    port = herd.port('Solo')

    def buffered():
        return solo_metric(herd, b'herd_buffered_bytes')

    idle = []
    try:
        for i in range(50):
            s = socket.create_connection(('127.0.0.1', port), timeout=10)
            idle.append(s)
            s.sendall(b'IAMAT ' + b'x' * 30000)  # the line's first piece waits in the buffer
        wait_for(lambda: buffered() >= 50 * 30000, 10, 'the partial lines buffered')
        for s in idle:
            s.sendall(b'y' * 30000 + b'\n')
            got = b''
            while not got.endswith(b'\n'):
                chunk = s.recv(65536)
                assert chunk, got[:100]
                got += chunk
            assert got.startswith(b'? IAMAT ')
        wait_for(lambda: buffered() == 0, 10, 'every buffer given back', diagnose=lambda: '%d bytes' % buffered())
    finally:
        for s in idle:
            s.close()


def test_a_burst_of_connections_is_followed_by_a_trim(make_herd):
    """The memory trimmer watched commands and peer records only: thousands of connections that
    each held a buffer and sent few commands never made a burst, and their freed heap stayed
    resident. A connection now counts as 64 units of work (a burst is 100,000)."""
    herd = make_herd(names=['Solo'], links=[], threads=1, admin=True, extra_yaml='log_level: warnings\n')
    port = herd.port('Solo')

    def trims():
        return solo_metric(herd, b'herd_memory_trims_total')

    assert trims() == 0
    for _ in range(1700):  # 1,700 x 64 = 108,800 units, and not one command
        s = socket.create_connection(('127.0.0.1', port), timeout=10)
        s.sendall(b'IAMAT ' + b'x' * 2000)
        s.close()
    wait_for(lambda: trims() >= 1, 15, 'a trim after the burst', diagnose=lambda: describe_server(herd.servers['Solo'].pid, herd.admin_ports['Solo']))


def read_until_closed(s, limit=1 << 20):
    """Everything the server sends on `s` until it closes its side (at most `limit` bytes)."""
    got = b''
    while len(got) < limit:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_past_the_budget_input_is_bounded_too(make_herd):
    """Input used to count toward the budget without being bounded by it: every client could hold an
    incomplete line of up to max_line (64 KiB), 1.3 GB over 20,000 clients, and 64 KiB of commands
    read ahead of replies it does not take. Past the budget a client's line may be at most
    max_id_bytes + 4 KiB (a longer one is answered as a line over the limit and the connection
    closed), and a client reads 4 KiB at a time, so what it has sent and the server holds stays
    small, while a light client is served as before."""
    budget = 1 << 20
    herd = make_herd(names=['Solo'], links=[], threads=1, admin=True, extra_yaml='log_level: events\n',
                     limits={'max_buffered_bytes': budget, 'max_output_bytes': 4096, 'line_timeout_ms': 60000,
                             'write_timeout_ms': 0})
    port = herd.port('Solo')

    def buffered():
        return solo_metric(herd, b'herd_buffered_bytes')

    held = []
    try:
        # Fill the budget with incomplete lines short enough to be held past it too (a 4 KiB buffer
        # each, every one taken in one read), and 64 KiB more, so that no buffer given back below
        # (the light client's, a reply's) takes the server back within it.
        while buffered() <= budget + 64 * 1024:
            assert len(held) < 300, 'the budget was never passed: %d bytes buffered' % buffered()
            s = socket.create_connection(('127.0.0.1', port), timeout=10)
            held.append(s)
            before = buffered()
            s.sendall(b'IAMAT ' + b'x' * 3000)
            wait_for(lambda: buffered() >= before + 3000, 10, 'the incomplete line buffered',
                     diagnose=lambda: 'before %d, now %d' % (before, buffered()))
        full = buffered()

        # Past it, a line of 60,000 bytes (one that is held within it) is cut short at max_id_bytes
        # (1024) + 4 KiB and answered.
        s = socket.create_connection(('127.0.0.1', port), timeout=10)
        try:
            s.sendall(b'IAMAT ' + b'y' * 60000)
            got = read_until_closed(s)
        finally:
            s.close()
        limit = 1024 + 4096
        assert got == b'? ' + (b'IAMAT ' + b'y' * 60000)[:limit] + b'\n', (len(got), got[:40])
        assert buffered() <= full + 16 * 1024, (full, buffered())

        # A client that sends commands and reads none of their replies holds little of its input:
        # 4 KiB reads instead of 64 KiB ones.
        other = unique_id('light')
        check_at_line(iamat(port, other, UCLA, T), 'Solo', other, UCLA, T)
        deaf = []
        base = buffered()
        for _ in range(8):
            d = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            d.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            d.settimeout(10)
            d.connect(('127.0.0.1', port))
            d.setblocking(False)
            deaf.append(d)
        command = b'WHATSAT %s 10 3\n' % other  # about 3 KB of reply each
        burst = command * (2 * 1024 * 1024 // len(command))
        sent = [0] * len(deaf)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for i, d in enumerate(deaf):
                try:
                    sent[i] += d.send(burst[sent[i]:sent[i] + 65536])
                except BlockingIOError:
                    pass
            time.sleep(0.05)
        grown = buffered() - base
        print('8 clients that read nothing added %d bytes buffered' % grown)
        # Each holds its replies' output (max_output_bytes, 4 KiB, and a reply of about 3 KB past it:
        # an 8 KiB buffer) and what is left of one read of commands: 4 KiB now, 64 KiB before (72 KiB
        # a client, 576 KiB for the eight).
        assert grown <= 8 * 16 * 1024, grown
        for d in deaf:
            d.close()

        # A light client is answered beside them all.
        check_at_line(iamat(port, other, UCLA, T), 'Solo', other, UCLA, T)
        assert whatsat(port, other, 10, 1).startswith(b'AT Solo ')
    finally:
        for s in held:
            s.close()
