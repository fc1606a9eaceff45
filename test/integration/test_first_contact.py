"""What a new user meets at once: many pipelined WHATSATs on one connection (every command read is
answered, however far the replies outgrow the output bound), and the longest IAMAT a server accepts
(its flooded record must reach every server without cutting a peer link)."""

import time

import pytest

from herdlib import (Client, check_at_line, check_whatsat_reply, fmt_time, poll_whatsat, unique_id)

LA = b'+34.052230-118.243680'
MAX_LINE = 65536


def send_iamat(c, cid, when=b'1520023934.918963997', where=LA):
    c.send(b'IAMAT %s %s %s\n' % (cid, where, when))
    line = c.read_line()[:-1]
    check_at_line(line, line.split(b' ')[1].decode(), cid, where, when)
    return line


def read_whatsats(c, at_line, n, bound, timeout):
    """Reads n WHATSAT replies, each checked in full; fails naming how many came."""
    deadline = time.monotonic() + timeout
    for i in range(n):
        try:
            reply = c.read_whatsat(timeout=max(0.1, deadline - time.monotonic()))
        except AssertionError as e:
            raise AssertionError('only %d of %d pipelined WHATSATs were answered: %s' % (i, n, e))
        check_whatsat_reply(reply, at_line, bound, 50)


def test_100_pipelined_whatsats_are_all_answered(solo):
    # 100 replies of 20 cities (~1.5 MB) pass max_output_bytes (1 MiB) while the kernel takes every
    # byte at once: the lines held back must be offered again, not wait for the client's next byte.
    cid = unique_id('la')
    with Client(solo.port('Solo'), timeout=30) as c:
        at = send_iamat(c, cid)
        c.send(b'WHATSAT %s 50 20\n' % cid * 100)
        read_whatsats(c, at, 100, 20, timeout=60)
        c.expect_silence(0.2)


def test_pipelined_whatsats_then_half_close_under_a_small_output_bound(make_herd):
    # A tiny bound stops the session after every reply or two; the client half-closes right after
    # its last command, so the held lines outlive the connection's own input buffer.
    herd = make_herd(names=['Solo'], links=[], limits={'max_output_bytes': 4096})
    cid = unique_id('la')
    with Client(herd.port('Solo'), timeout=30) as c:
        at = send_iamat(c, cid)
        c.send(b'WHATSAT %s 50 20\n' % cid * 60 + b'WHATSAT %s 1 1' % cid)  # last one unterminated
        c.half_close()
        read_whatsats(c, at, 60, 20, timeout=60)
        last = c.read_whatsat()
        check_whatsat_reply(last, at, 1, 1)
        assert c.read_to_eof(timeout=10) == b''


@pytest.mark.parametrize('reference', [(), ('Holiday', 'Goloman')], ids=['cpp', 'mixed'])
def test_longest_accepted_iamat_floods_to_every_server(make_herd, reference):
    # A line of exactly max_line bytes is accepted; its AT record (longer by the header, the time
    # difference and seen=) must still fit every neighbour's peer line limit, and the updates
    # pipelined right behind it must arrive too: through C++ servers only, and through the two
    # asyncio reference servers on the path (which keep the same peer bound).
    # The ID takes the whole line, so the ID bound (limits.max_id_bytes) is raised to let it in.
    herd = make_herd(reference=reference, limits={'max_id_bytes': MAX_LINE})
    when = fmt_time(time.time_ns() - 5 * 10**9)
    head = b'IAMAT '
    tail = b' %s %s' % (LA, when)
    big = unique_id('big') + b'-'
    big += b'x' * (MAX_LINE - len(head) - len(big) - len(tail))
    line = head + big + tail
    assert len(line) == MAX_LINE
    small = [unique_id('after') for _ in range(3)]
    with Client(herd.port('Welsh'), timeout=30) as c:
        c.send(line + b'\n' + b''.join(b'IAMAT %s %s %s\n' % (s, LA, when) for s in small))
        big_at = c.read_line(timeout=30)[:-1]
        check_at_line(big_at, 'Welsh', big, LA, when)
        small_at = [c.read_line()[:-1] for _ in small]
    # Hands is three hops from Welsh (Welsh - Holiday - Goloman - Hands).
    for name in ('Holiday', 'Goloman', 'Wilkes', 'Hands'):
        for cid, at in [(big, big_at)] + list(zip(small, small_at)):
            check_whatsat_reply(poll_whatsat(herd.port(name), cid, at, timeout=30), at, 5, 10)
    for name in set(herd.names) - set(reference):
        log = herd.log_bytes(name)
        assert b'over the limit' not in log, name
        assert b'link down' not in log, name
