"""limits.max_clock_skew (issue 9): a report dated further ahead of the receiving server's clock is
refused, `? ` to a client, logged and not stored from a peer, so that no report can pin a client's
location for good (a time 10^17 s ahead beats every honest report that follows)."""

import time

from herdlib import Client, NS, check_at_line, fmt_time, iamat, invalid, unique_id, wait_for, whatsat

UCLA = b'+34.068930-118.445127'
DOWNTOWN = b'+34.052235-118.243683'
FAR = b'100000000000000000.5'  # 10^17 s: valid (below 10^18), 3 billion years ahead


def ahead(seconds):
    return fmt_time(time.time_ns() + int(seconds * NS))


def test_a_client_far_ahead_is_refused_and_cannot_pin(make_herd):
    herd = make_herd(names=['A', 'B'], links=[['A', 'B']])
    port = herd.port('A')
    cid = unique_id('pin')
    line = b'IAMAT %s %s %s' % (cid, UCLA, FAR)
    assert iamat(port, cid, UCLA, FAR) + b'\n' == invalid(line)
    # Just past the default bound (one day) is refused; just inside it is taken.
    late = ahead(86400 + 120)
    assert iamat(port, cid, UCLA, late) + b'\n' == invalid(b'IAMAT %s %s %s' % (cid, UCLA, late))
    assert whatsat(port, cid, 10, 1) == invalid(b'WHATSAT %s 10 1' % cid)
    # An honest report now is stored, and neighbours get it.
    now = ahead(0)
    at = iamat(port, cid, DOWNTOWN, now)
    check_at_line(at, 'A', cid, DOWNTOWN, now)
    wait_for(lambda: whatsat(herd.port('B'), cid, 10, 1).startswith(at + b'\n'), 10, 'B has it')
    soon = ahead(86400 - 120)
    check_at_line(iamat(port, cid, UCLA, soon), 'A', cid, UCLA, soon)
    wait_for(lambda: b'limits.max_clock_skew' in herd.log_bytes('A'), 5, 'the refusal in the log')


def test_the_bound_is_configurable_and_zero_turns_it_off(make_herd):
    herd = make_herd(names=['Tight'], links=[], limits={'max_clock_skew': 60})
    port = herd.port('Tight')
    cid = unique_id('tight')
    t = ahead(120)
    assert iamat(port, cid, UCLA, t) + b'\n' == invalid(b'IAMAT %s %s %s' % (cid, UCLA, t))
    t = ahead(30)
    check_at_line(iamat(port, cid, UCLA, t), 'Tight', cid, UCLA, t)
    off = make_herd(names=['Off'], links=[], limits={'max_clock_skew': 0})
    cid = unique_id('off')
    check_at_line(iamat(off.port('Off'), cid, UCLA, FAR), 'Off', cid, UCLA, FAR)


def test_a_peer_record_far_ahead_is_logged_and_not_stored(make_herd):
    herd = make_herd(names=['A', 'B'], links=[['A', 'B']])
    port = herd.port('A')
    pinned, honest = unique_id('peer-pin'), unique_id('peer-honest')
    now = ahead(0)
    with Client(herd.peer_ports['A']) as p:
        p.send(b'HERD B\n')
        p.send(b'AT B +0.000000001 %s %s %s\n' % (pinned, UCLA, FAR))
        p.send(b'AT B +0.000000001 %s %s %s\n' % (honest, UCLA, now))
        wait_for(lambda: whatsat(port, honest, 10, 1).startswith(b'AT B '), 5, 'the honest record')
    assert whatsat(port, pinned, 10, 1) == invalid(b'WHATSAT %s 10 1' % pinned)
    wait_for(lambda: b'limits.max_clock_skew ahead of this server\'s clock; not stored' in herd.log_bytes('A'),
             5, 'the refusal in the log')
    # Nor was it passed on (B would have it from A's flood otherwise).
    time.sleep(0.3)
    assert whatsat(herd.port('B'), pinned, 10, 1).startswith(b'? ')
