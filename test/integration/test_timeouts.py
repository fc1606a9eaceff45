"""Time bounds on client connections (issue 9): an incomplete line held too long
(limits.line_timeout_ms), a silent client (limits.idle_timeout_ms, off by default) and a client that
does not read its replies (limits.write_timeout_ms) are closed and the log says why; clients that
are slow but alive are not."""

import re
import socket
import time

from herdlib import Client, check_at_line, iamat, unique_id, wait_for

UCLA = b'+34.068930-118.445127'
T = b'1520023934.5'


def closed_by_server(c, timeout):
    """Waits until the server closes `c` (EOF or reset); returns the seconds it took."""
    start = time.monotonic()
    c.read_to_eof(timeout=timeout)
    return time.monotonic() - start


def tag_of(herd, name, local_port):
    """The log tag (cN) of the connection from `local_port`."""
    def find():
        m = re.search(rb' (c\d+) \+ client connected from 127\.0\.0\.1:%d\n' % local_port,
                      herd.log_bytes(name))
        return m and m.group(1)
    return wait_for(find, 5, 'the connection in the log')


def test_an_incomplete_line_held_too_long_closes_the_connection(make_herd):
    herd = make_herd(names=['Solo'], links=[], limits={'line_timeout_ms': 600})
    port = herd.port('Solo')
    with Client(port, timeout=10) as slow, Client(port, timeout=10) as steady:
        # A complete line arriving in pieces inside the bound is answered.
        cid = unique_id('pieces')
        slow.send(b'IAMAT %s ' % cid)
        time.sleep(0.3)
        slow.send(b'%s %s\n' % (UCLA, T))
        check_at_line(slow.read_line()[:-1], 'Solo', cid, UCLA, T)
        # Then a line that never ends: closed after about 600 ms (the sweep runs every 150 ms).
        slow.send(b'IAMAT never-ends +34.0')
        took = closed_by_server(slow, 10)
        assert 0.5 <= took <= 3.0, took
        # A client sending complete lines slowly is not touched.
        for _ in range(5):
            sid = unique_id('steady')
            check_at_line(iamat(port, sid, UCLA, T), 'Solo', sid, UCLA, T)
            steady.send(b'IAMAT %s %s %s\n' % (sid, UCLA, T))
            steady.read_line()
            time.sleep(0.3)
    wait_for(lambda: b'line timeout: an incomplete line held for over 600 ms' in herd.log_bytes('Solo'),
             5, 'the line timeout in the log')


def test_a_client_streaming_lines_is_not_taken_for_one_holding_a_line(make_herd):
    """The bound is on one incomplete line, not on a stream whose every read ends inside some line:
    a client pipelining commands for over three bounds, each write ending one line and starting the
    next, is answered throughout. (The clock used to start at the first incomplete line and restart
    only when a read ended exactly at a line's end, so such a client was dropped after one bound.)"""
    herd = make_herd(names=['Solo'], links=[], limits={'line_timeout_ms': 600})
    port = herd.port('Solo')
    ids = [unique_id('stream') for _ in range(40)]
    start = time.monotonic()
    with Client(port, timeout=10) as c:
        c.send(b'IAMAT %s ' % ids[0])
        for done, started in zip(ids, ids[1:]):
            time.sleep(0.05)
            c.send(b'%s %s\nIAMAT %s ' % (UCLA, T, started))
            check_at_line(c.read_line()[:-1], 'Solo', done, UCLA, T)
        c.send(b'%s %s\n' % (UCLA, T))
        check_at_line(c.read_line()[:-1], 'Solo', ids[-1], UCLA, T)
    assert time.monotonic() - start > 3 * 0.6
    assert b'line timeout' not in herd.log_bytes('Solo')


def test_idle_clients_are_closed_only_when_asked(make_herd):
    herd = make_herd(names=['Idle'], links=[], limits={'idle_timeout_ms': 500})
    with Client(herd.port('Idle'), timeout=10) as c:
        took = closed_by_server(c, 10)
        assert 0.4 <= took <= 3.0, took
    wait_for(lambda: b'idle timeout: nothing received for over 500 ms' in herd.log_bytes('Idle'), 5,
             'the idle timeout in the log')
    # Off by default: a silent client stays.
    default = make_herd(names=['Quiet'], links=[])
    with Client(default.port('Quiet'), timeout=10) as c:
        c.expect_silence(1.5)
        cid = unique_id('still')
        c.send(b'IAMAT %s %s %s\n' % (cid, UCLA, T))
        check_at_line(c.read_line()[:-1], 'Quiet', cid, UCLA, T)


def small_receiver(port):
    """A client whose receive buffer is small, so that unread replies back up into the server."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(('127.0.0.1', port))
    return s


def test_a_client_that_does_not_read_is_closed_and_a_slow_reader_is_not(make_herd):
    herd = make_herd(names=['W'], links=[], limits={'write_timeout_ms': 1000})
    port = herd.port('W')
    cid = unique_id('la')
    iamat(port, cid, UCLA, T)
    burst = b'WHATSAT %s 50 20\n' % cid * 300  # about 4.5 MB of replies
    deaf = small_receiver(port)
    deaf_tag = tag_of(herd, 'W', deaf.getsockname()[1])
    slow = small_receiver(port)
    slow_tag = tag_of(herd, 'W', slow.getsockname()[1])
    try:
        deaf.sendall(burst)
        slow.sendall(burst)
        # The slow reader takes 8 KB every 100 ms for 4 s: always behind, never stalled for 1 s.
        got = 0
        end = time.monotonic() + 4
        while time.monotonic() < end:
            got += len(slow.recv(8192))
            time.sleep(0.1)
        assert got > 100000
        log = herd.log_bytes('W')
        assert re.search(rb' %s - write timeout: the client took none of \d+ bytes for over 1000 ms' % deaf_tag, log), \
            log[-2000:]
        assert b' %s - ' % slow_tag not in log
        # The server goes on serving everyone else.
        other = unique_id('other')
        check_at_line(iamat(port, other, UCLA, T), 'W', other, UCLA, T)
    finally:
        deaf.close()
        slow.close()


def test_the_sweep_runs_every_quarter_of_the_shortest_timeout(make_herd):
    """Deadlines are checked every quarter of the shortest timeout (here 800 ms: every 200 ms), so a
    connection goes at most about a quarter late. Eight clients connected 100 ms apart fall at every
    phase of the sweep: a sweep once per whole timeout would leave one of them 1.5 s or more. The
    upper bound, 1.4 s, leaves 400 ms for a slow machine's wake-ups between those."""
    herd = make_herd(names=['Idle'], links=[], limits={'idle_timeout_ms': 800})
    port = herd.port('Idle')
    clients = []
    try:
        for _ in range(8):
            clients.append((time.monotonic(), Client(port, timeout=10)))
            time.sleep(0.1)  # (spacing the connections over the sweep's phases, not waiting for anything)
        for opened, c in clients:
            c.read_to_eof(timeout=10)
            took = time.monotonic() - opened
            assert 0.75 <= took <= 1.4, took
    finally:
        for _, c in clients:
            c.close()
