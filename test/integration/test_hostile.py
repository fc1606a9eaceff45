"""Hostile clients against one server: over-long lines, binary garbage, a thousand concurrent
connections, and a client that sends without ever reading. The server must answer what it can,
bound its memory, and keep serving everyone else promptly."""

import errno
import random
import selectors
import socket
import threading
import time

import pytest

from herdlib import (Client, WHITESPACE, check_at_line, check_whatsat_reply, iamat, invalid,
                     unique_id, whatsat)

NAME = 'Solo'
MAX_LINE = 65536
UCLA = b'+34.068930-118.445127'
DOWNTOWN_LA = b'+34.052235-118.243683'


@pytest.fixture(scope='module')
def port(solo):
    return solo.port(NAME)


def sender(sock, data):
    """Sends `data` from a thread, ignoring the errors a closing server causes."""
    def run():
        try:
            sock.sendall(data)
        except OSError:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def numbered_bytes(n):
    """n bytes with no newline in which every 9-byte stretch names its own offset."""
    out = b''.join(b'%08d,' % i for i in range(0, n // 9 + 1))
    return out[:n]


def assert_serving(port, limit_s=1.0, server=NAME):
    """A fresh client gets IAMAT and WHATSAT answered, each in under limit_s."""
    cid = unique_id('probe')
    t0 = time.monotonic()
    line = iamat(port, cid, UCLA, b'1520023934.5')
    t1 = time.monotonic()
    check_at_line(line, server, cid, UCLA, b'1520023934.5')
    check_whatsat_reply(whatsat(port, cid, 5, 2), line, 2, 5)
    t2 = time.monotonic()
    assert t1 - t0 < limit_s and t2 - t1 < limit_s, (t1 - t0, t2 - t1)


# ------------------------------------------------------------------------------------------------
# Over-long lines

def test_one_mebibyte_line_is_truncated_and_the_client_dropped(port):
    data = numbered_bytes(1 << 20)
    with Client(port, timeout=15) as c:
        t = sender(c.sock, data)
        got = c.read_to_eof(timeout=15)
        t.join(15)
    assert got == b'? ' + data[:MAX_LINE] + b'\n', (len(got), got[:20], got[-20:])
    assert_serving(port)


def test_reply_to_a_line_over_the_limit_survives_a_client_that_reads_slowly(port):
    """The server closes with the rest of the line unread. A plain close would then answer with a
    reset, which throws away the part of the `? ` reply the kernel still holds (most of it, for a
    client with a small receive window): the server shuts its side and lingers instead."""
    data = numbered_bytes(1 << 20)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(15)
    s.connect(('127.0.0.1', port))
    try:
        t = sender(s, data)
        time.sleep(0.3)  # the server has read past the limit, answered and closed
        got = b''
        while True:
            chunk = s.recv(4096)  # a ConnectionResetError here is the failure
            if not chunk:
                break
            got += chunk
            time.sleep(0.002)
        t.join(15)
    finally:
        s.close()
    assert got == b'? ' + data[:MAX_LINE] + b'\n', (len(got), got[:20], got[-20:])
    assert_serving(port)


def test_line_over_the_limit_after_good_commands(port):
    cid = unique_id('before-long')
    data = b'IAMAT %s %s 1520023934\nBAD\n' % (cid, UCLA) + numbered_bytes(MAX_LINE + 1) + b'\n'
    with Client(port, timeout=15) as c:
        t = sender(c.sock, data + b'IAMAT never answered\n')
        line = c.read_line()[:-1]
        check_at_line(line, NAME, cid, UCLA, b'1520023934')
        assert c.read_line() == b'? BAD\n'
        rest = c.read_to_eof(timeout=15)
        t.join(15)
    assert rest == b'? ' + data.split(b'\n')[2][:MAX_LINE] + b'\n', (len(rest), rest[-30:])


def test_line_at_the_limit_is_an_ordinary_line(port):
    long_line = numbered_bytes(MAX_LINE)
    with Client(port, timeout=15) as c:
        t = sender(c.sock, long_line + b'\nPING\n')
        assert c.read_exactly(MAX_LINE + 3, timeout=15) == invalid(long_line)
        assert c.read_line() == b'? PING\n'
        t.join(15)
        # Still connected and served.
        c.send(b'PONG\n')
        assert c.read_line() == b'? PONG\n'


@pytest.mark.parametrize('split', ['one-write', 'split-before-CR', 'split-after-CR'])
def test_line_at_the_limit_with_crlf(port, split):
    """The `\\r` of a `\\r\\n` ending is part of the ending, not of the line, wherever the
    writes split: a line of exactly the limit is an ordinary line."""
    long_line = numbered_bytes(MAX_LINE)
    data = long_line + b'\r\nPING\n'
    cut = {'one-write': len(data), 'split-before-CR': MAX_LINE, 'split-after-CR': MAX_LINE + 1}[split]
    with Client(port, timeout=15) as c:
        t = sender(c.sock, data[:cut])
        t.join(15)
        time.sleep(0.2)
        if cut < len(data):
            c.send(data[cut:])
        assert c.read_exactly(MAX_LINE + 3, timeout=15) == invalid(long_line)
        try:
            assert c.read_line() == b'? PING\n'
        except EOFError:
            pytest.fail('the server treated the line as over the limit and disconnected')


# ------------------------------------------------------------------------------------------------
# Garbage

def expected_replies(data):
    """SPEC's answer to bytes that hold no valid command, given the client then half-closes."""
    out = []
    lines = data.split(b'\n')
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if last and not line:
            break
        if not last and line.endswith(b'\r'):
            line = line[:-1]
        if line.strip(WHITESPACE) == b'':
            continue
        out.append(invalid(line))
    return b''.join(out)


@pytest.mark.parametrize('seed', [1, 2, 3])
def test_binary_garbage_is_answered_line_by_line(port, seed):
    rnd = random.Random(seed)
    data = bytes(rnd.getrandbits(8) for _ in range(200_000))
    data = data.replace(b'\x00\x00', b'\x00\n')  # more short lines, NULs kept
    data += b'\x00\x00\xff\r\n\r\n\x00tail without newline'
    assert data.count(b'\n') > 500
    expect = expected_replies(data)
    with Client(port, timeout=20) as c:
        t = sender(c.sock, data)
        t.join(20)
        c.half_close()
        got = c.read_to_eof(timeout=20)
    assert len(got) == len(expect)
    assert got == expect
    assert_serving(port)


# ------------------------------------------------------------------------------------------------
# Many clients at once

def test_a_thousand_concurrent_connections(port):
    n = 1000
    sel = selectors.DefaultSelector()
    conns = []
    try:
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex(('127.0.0.1', port))
            assert err in (0, errno.EINPROGRESS), err
            cid = unique_id('thousand')
            loc = b'+34.%06d-118.%06d' % (i * 37 % 1000000, i * 91 % 1000000)
            req = b'IAMAT %s %s 1520023934.%09d\nWHATSAT %s 10 3\n' % (cid, loc, i, cid)
            st = {'sock': s, 'cid': cid, 'loc': loc, 'time': b'1520023934.%09d' % i,
                  'out': req, 'in': b'', 'done': False}
            conns.append(st)
            sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ, st)
        # All 1000 are open before any request is answered in full.
        deadline = time.monotonic() + 60
        pending = n
        while pending:
            left = deadline - time.monotonic()
            assert left > 0, '%d of %d connections unanswered' % (pending, n)
            for key, ev in sel.select(min(left, 1.0)):
                st = key.data
                s = st['sock']
                if ev & selectors.EVENT_WRITE and st['out']:
                    try:
                        k = s.send(st['out'])
                    except BlockingIOError:
                        k = 0
                    st['out'] = st['out'][k:]
                    if not st['out']:
                        sel.modify(s, selectors.EVENT_READ, st)
                if ev & selectors.EVENT_READ:
                    try:
                        chunk = s.recv(65536)
                    except BlockingIOError:
                        continue
                    assert chunk, 'connection %r closed early with %r' % (st['cid'], st['in'])
                    st['in'] += chunk
                    first, _, rest = st['in'].partition(b'\n')
                    if rest.startswith(first + b'\n') and rest.endswith(b'}\n\n'):
                        st['done'] = True
                        pending -= 1
                        sel.unregister(s)
        for st in conns:
            first, _, rest = st['in'].partition(b'\n')
            check_at_line(first, NAME, st['cid'], st['loc'], st['time'])
            check_whatsat_reply(rest, first, 3, 10)
    finally:
        sel.close()
        for st in conns:
            st['sock'].close()
    assert_serving(port)


# ------------------------------------------------------------------------------------------------
# A client that never reads

# What a stalled client may cost. A server that stops reading once max_output_bytes are unsent or
# max_pending_replies are queued holds at most about max_output_bytes + max_pending_replies x ~20 KB
# (one 20-place reply) + one 64 KiB read for it. Default limits: 1 MiB + 1,024 x 20 KB = ~22 MB;
# under ASan add the quarantine of the ~1,100 replies' temporary strings (~60 KB each, ~66 MB).
# Hence 150 MB for the defaults. With tight limits (64 replies, 64 KiB) a correct server needs
# ~2 MB even under ASan: 48 MB leaves a wide margin. Unbounded buffering of what the client sends
# here (about 4 MB of WHATSATs, each asking for ~20 KB) would be gigabytes.
DEFAULT_LIMITS_GROWTH_KB = 150 * 1024
TIGHT_LIMITS = {'max_pending_replies': 64, 'max_output_bytes': 65536}
TIGHT_LIMITS_GROWTH_KB = 48 * 1024


@pytest.mark.parametrize('limits', ['default', 'tight'])
def test_client_that_never_reads(solo, make_herd, limits):
    if limits == 'default':
        herd, name, bound_kb = solo, NAME, DEFAULT_LIMITS_GROWTH_KB
    else:
        herd = make_herd(names=['Tight'], links=[], limits=TIGHT_LIMITS)
        name, bound_kb = 'Tight', TIGHT_LIMITS_GROWTH_KB
    port = herd.port(name)
    server = herd.servers[name]
    cid = unique_id('hog')
    at_line = iamat(port, cid, DOWNTOWN_LA, b'1520023934')
    check_whatsat_reply(whatsat(port, cid, 50, 20), at_line, 20, 50)
    assert_serving(port, server=name)
    base_kb = server.vm_rss_kb()

    req = b'WHATSAT %s 50 20\n' % cid  # ~20 KB of reply for 22 bytes sent
    chunk = req * 4096
    hog = socket.create_connection(('127.0.0.1', port), timeout=5)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.setblocking(False)
    sent = 0
    peak_kb = base_kb
    latencies = []
    try:
        deadline = time.monotonic() + 20
        blocked_since = None
        # Send until the server has stopped reading for a good while (or 200 MB went out).
        while time.monotonic() < deadline and sent < 200 << 20:
            try:
                sent += hog.send(chunk)
                blocked_since = None
            except BlockingIOError:
                now = time.monotonic()
                blocked_since = blocked_since or now
                if now - blocked_since > 1.5:
                    break
                time.sleep(0.02)
            peak_kb = max(peak_kb, server.vm_rss_kb())
        assert blocked_since is not None, 'the server read %d bytes without stopping' % sent
        # The stalled client costs others nothing.
        for _ in range(5):
            t0 = time.monotonic()
            assert_serving(port, server=name)
            latencies.append(time.monotonic() - t0)
            peak_kb = max(peak_kb, server.vm_rss_kb())
            time.sleep(0.1)
        growth = peak_kb - base_kb
        print('non-reading client (%s limits): sent %d bytes (%d WHATSATs) before the server '
              'stopped reading; RSS %d KB -> peak %d KB (+%d KB); probe latencies %s'
              % (limits, sent, sent // len(req), base_kb, peak_kb, growth,
                 ['%.3f' % l for l in latencies]))
        assert max(latencies) < 2.0
        assert growth < bound_kb, 'RSS grew by %d KB (from %d KB to %d KB), limit %d KB' % (
            growth, base_kb, peak_kb, bound_kb)
    finally:
        hog.close()
    # After the hog is gone the server serves on, and is still alive.
    time.sleep(0.3)
    assert server.alive()
    assert_serving(port, server=name)
