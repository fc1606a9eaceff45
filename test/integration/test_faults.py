"""Faults in the default topology: SIGKILL Holiday and Goloman, check that the rest of the herd keeps
working without stalls, then restart them on the same ports and check that updates flow to every
server again (links are redialled with backoff; peer_backoff is 100..500 ms in test configs)."""

import signal
import time

from herdlib import (NAMES, at_lines, check_at_line, check_whatsat_reply, iamat, poll_whatsat, unique_id,
                     wait_for, whatsat)

UCLA = b'+34.068930-118.445127'
LIVE = ['Hands', 'Welsh', 'Wilkes']


def timed(fn, *args):
    t0 = time.monotonic()
    out = fn(*args)
    return out, time.monotonic() - t0


def test_kill_two_servers_then_restart_them(make_herd):
    herd = make_herd()

    # Before: a record everyone has, Welsh included.
    old_id = unique_id('before-kill')
    old = iamat(herd.port('Hands'), old_id, UCLA, b'1520023934.918963997')
    for name in NAMES:
        poll_whatsat(herd.port(name), old_id, old)

    herd.kill('Holiday')
    herd.kill('Goloman')

    # An update at Hands still reaches Wilkes (their direct link).
    during_id = unique_id('during-kill')
    during, dt = timed(iamat, herd.port('Hands'), during_id, UCLA, b'1520023935')
    check_at_line(during, 'Hands', during_id, UCLA, b'1520023935')
    assert dt < 1.0, dt
    check_whatsat_reply(poll_whatsat(herd.port('Wilkes'), during_id, during), during, 5, 10)

    # Welsh is cut off: it keeps its old record, answers WHATSAT about it, and knows nothing newer.
    check_whatsat_reply(whatsat(herd.port('Welsh'), old_id, 10, 5), old, 5, 10)
    assert whatsat(herd.port('Welsh'), during_id, 10, 5) == b'? WHATSAT %s 10 5\n' % during_id

    # Every live server answers promptly, again and again while its links keep redialling the
    # dead ones (several backoff rounds).
    worst = 0.0
    deadline = time.monotonic() + 2.5
    n = 0
    while time.monotonic() < deadline:
        for name in LIVE:
            cid = unique_id('probe-%s' % name)
            line, dt1 = timed(iamat, herd.port(name), cid, UCLA, b'1520023936.%d' % n)
            check_at_line(line, name, cid, UCLA, b'1520023936.%d' % n)
            reply, dt2 = timed(whatsat, herd.port(name), old_id, 10, 3)
            check_whatsat_reply(reply, old, 3, 10)
            worst = max(worst, dt1, dt2)
            assert dt1 < 1.0 and dt2 < 1.0, (name, dt1, dt2)
        n += 1
    assert n >= 3
    for name in LIVE:
        assert herd.servers[name].alive(), name

    # Restart the two on the same config and ports.
    herd.restart('Holiday')
    herd.restart('Goloman')

    # A new update at Hands reaches every server again, the restarted ones and Welsh included.
    after_id = unique_id('after-restart')
    after = iamat(herd.port('Hands'), after_id, UCLA, b'1520023937')
    for name in NAMES:
        check_whatsat_reply(poll_whatsat(herd.port(name), after_id, after), after, 5, 10)
    # And an update at the restarted Goloman floods out too.
    back_id = unique_id('from-goloman')
    back = iamat(herd.port('Goloman'), back_id, UCLA, b'1520023938')
    for name in NAMES:
        poll_whatsat(herd.port(name), back_id, back)


def test_a_stopped_neighbour_never_stalls_the_server(make_herd):
    """A neighbour that is alive but not reading (SIGSTOP) must not slow the server down: clients are
    answered promptly while floods for it pile up in the shared backlog (1 MiB here) and the link's
    4 MiB of unsent bytes. Once it reads again, the link finds that the backlog no longer holds its
    position and catches it up with a full transfer of the table: every client's newest record
    reaches it, although most of the updates made meanwhile were evicted from the backlog."""
    herd = make_herd(names=['A', 'B'], links=[['A', 'B']],
                     limits={'peer_backlog_bytes': 1048576})
    # The link is up and caught up (an empty table) before B stops.
    wait_for(lambda: b'/A * caught up: ' in herd.log_bytes('B'), 10, 'the first catch-up, in B.log')
    herd.servers['B'].proc.send_signal(signal.SIGSTOP)
    batches, per_batch = 300, 1000
    try:
        # 300,000 updates (~25 MB of flood lines) for 1,000 clients, each report newer than the last.
        slowest = 0.0
        with herd.client('A', timeout=10) as c:
            for b in range(batches):
                cmds = b''.join(b'IAMAT stall-%d +1.0+2.0 %d.5\n' % (i, 1000 + b * per_batch + i)
                                for i in range(per_batch))
                t0 = time.monotonic()
                c.send(cmds)
                for _ in range(per_batch):
                    assert c.read_line().startswith(b'AT A ')
                slowest = max(slowest, time.monotonic() - t0)
        # 1,000 pipelined IAMATs a batch: every batch answered well within a second or two.
        assert slowest < 2.0, slowest
    finally:
        herd.servers['B'].proc.send_signal(signal.SIGCONT)
    wait_for(lambda: b'B * catch-up: full transfer of the table (we fell behind' in herd.log_bytes('A'),
             30, 'a full transfer to B in A.log')
    ids = [b'stall-%d' % i for i in range(per_batch)]
    expected = {b'stall-%d' % i: b'%d.5' % (1000 + (batches - 1) * per_batch + i) for i in range(per_batch)}

    def stale_at_b():
        held = at_lines(herd.port('B'), ids, timeout=20)
        return {i: l for i, l in held.items() if l is None or not l.endswith(b' ' + expected[i])}
    wait_for(lambda: not stale_at_b(), 30, 'every client up to date at B', interval=0.2)
    wait_for(lambda: herd.log_bytes('B').count(b'/A * caught up: ') >= 2, 10, 'caught up again, in B.log')
    probe = unique_id('after-stop')
    at_line = iamat(herd.port('A'), probe, UCLA, b'1520023999')
    poll_whatsat(herd.port('B'), probe, at_line, timeout=30)
