"""The peer port, spoken to by a fake peer: `HERD <name>` then AT lines. The server stores and floods
what is newer, never writes on an inbound peer connection, closes a connection without a valid
hello, and breaks timestamp ties the same way on every server."""

import threading
import time

from herdlib import (IO_TIMEOUT, NAMES, Client, flush_links, iamat, invalid, poll_whatsat, unique_id,
                     wait_for, whatsat)


def fake_peer(herd, server):
    return Client(herd.peer_ports[server])


def test_fake_peer_record_is_stored_and_flooded(herd5):
    cid = unique_id('peer')
    record = b'AT Hands +0.500000000 %s +01.000000+002.000000 1234.5' % cid
    with fake_peer(herd5, 'Goloman') as p:
        p.send(b'HERD Hands\n' + record + b'\n')
        reply = poll_whatsat(herd5.port('Goloman'), cid, record, radius=1, bound=1)
        assert reply.startswith(record + b'\n')
        # Flooded on: every server of the herd learns it (Hands through Wilkes).
        for name in NAMES:
            poll_whatsat(herd5.port(name), cid, record, radius=1, bound=1)
        # A client reporting the same time gets the stored record back.
        assert iamat(herd5.port('Welsh'), cid, b'+05.0+005.0', b'1234.5') == record
        # The server never writes on an inbound peer connection, and keeps it open.
        p.expect_silence(1.0)
        record2 = b'AT Hands -3.000000001 %s +01.500000+002.500000 1235' % cid
        p.send(record2 + b'\n')
        for name in NAMES:
            poll_whatsat(herd5.port(name), cid, record2, radius=1, bound=1)
        p.expect_silence(0.3)


def test_fake_peer_records_split_and_pipelined(herd5):
    ids = [unique_id('peerpipe') for _ in range(50)]
    records = [b'AT Wilkes +%d.%09d %s -45.%06d+170.%06d %d.25' % (i, i, c, i, i, 100 + i)
               for i, c in enumerate(ids)]
    data = b'HERD Wilkes\r\n' + b''.join(r + (b'\r\n' if i % 2 else b'\n')
                                         for i, r in enumerate(records))
    with fake_peer(herd5, 'Holiday') as p:
        # In odd-sized pieces, so lines are split across writes.
        for k in range(0, len(data), 37):
            p.send(data[k:k + 37])
            time.sleep(0.001)
        for c, r in zip(ids, records):
            poll_whatsat(herd5.port('Holiday'), c, r, radius=1, bound=1)
        poll_whatsat(herd5.port('Hands'), ids[-1], records[-1], radius=1, bound=1)
        p.expect_silence(0.3)


def test_invalid_at_lines_from_a_peer_are_not_stored(herd5):
    cid = unique_id('peerbad')
    bad = [b'AT Hands +0.5 %s +01.0+002.0 100' % cid,                 # 1 fraction digit in diff
           b'AT Hands 0.500000000 %s +01.0+002.0 100' % cid,          # no sign
           b'AT Hands +0.500000000 %s +01.0,+002.0 100' % cid,        # bad location
           b'AT Hands +0.500000000 %s +01.0+002.0 nan' % cid,         # bad time
           b'AT Hands +0.500000000 %s +01.0+002.0' % cid,             # missing field
           b'IAMAT %s +01.0+002.0 100' % cid,                         # a client command
           b'WHATSAT %s 10 5' % cid]
    with fake_peer(herd5, 'Goloman') as p:
        p.send(b'HERD Hands\n' + b'\n'.join(bad) + b'\n')
        p.expect_silence(0.5)
    for name in ('Goloman', 'Hands', 'Wilkes'):
        assert whatsat(herd5.port(name), cid, 10, 5) == invalid(b'WHATSAT %s 10 5' % cid)


def test_record_cut_off_by_the_end_of_a_peer_stream_is_not_stored(herd5):
    # A neighbour that dies mid-write leaves half a line, which can still read as a valid record
    # (here its time cut short): a client's unterminated last line is answered, a peer's is not.
    cid, whole = unique_id('peercut'), unique_id('peerwhole')
    whole_record = b'AT Hands +0.500000000 %s +01.000000+002.000000 1234.5' % whole
    cut = b'AT Hands +0.500000000 %s +01.000000+002.000000 1234' % cid
    with fake_peer(herd5, 'Goloman') as p:
        p.send(b'HERD Hands\n' + whole_record + b'\n' + cut)
    poll_whatsat(herd5.port('Goloman'), whole, whole_record, radius=1, bound=1)
    wait_for(lambda: b'no newline); ignored: ' + cut + b'\n' in herd5.log_bytes('Goloman'), IO_TIMEOUT,
             'the cut-off line in the log')
    for name in ('Goloman', 'Hands', 'Wilkes'):
        assert whatsat(herd5.port(name), cid, 10, 5) == invalid(b'WHATSAT %s 10 5' % cid)


def test_peer_extra_fields_are_accepted(herd5):
    cid = unique_id('peerextra')
    six = b'AT Hands +0.250000000 %s +03.0+004.0 777.125' % cid
    with fake_peer(herd5, 'Wilkes') as p:
        p.send(b'HERD Hands\n' + six + b' hop=1 via=Hands\n')
        reply = wait_for(lambda: (lambda r: r if r.startswith(six) else None)(
            whatsat(herd5.port('Wilkes'), cid, 1, 1)), 10, 'the record at Wilkes')
        assert reply.split(b'\n', 1)[0] in (six, six + b' hop=1 via=Hands')


def closed_without_reply(herd, server, data):
    with fake_peer(herd, server) as p:
        p.send(data)
        return p.read_to_eof(timeout=IO_TIMEOUT) == b''


def test_connection_without_valid_hello_is_closed(herd5):
    cid = unique_id('nohello')
    record = b'AT Hands +0.500000000 %s +01.000000+002.000000 99' % cid
    for hello in (b'', b'HELLO Hands\n', b'HERD\n', b'HERD Nobody\n', b'HERD Hands extra\n',
                  b'herd Hands\n', b'IAMAT %s +01.0+002.0 99\n' % cid):
        assert closed_without_reply(herd5, 'Goloman', hello + record + b'\n'), hello
    # None of those records was stored.
    assert whatsat(herd5.port('Goloman'), cid, 1, 1) == invalid(b'WHATSAT %s 1 1' % cid)


def test_tie_between_two_peer_records_converges_on_the_greater(herd5):
    for first, second in (('Hands', 'Holiday'), ('Holiday', 'Hands')):
        cid = unique_id('tie')
        r_a = b'AT %s +0.100000000 %s +10.000000+010.000000 5000.5' % (first.encode(), cid)
        r_b = b'AT %s +0.200000000 %s +20.000000+020.000000 5000.5' % (second.encode(), cid)
        winner = max(r_a, r_b)
        # Sent at the same time to two servers at opposite ends of the herd. Each fake peer claims
        # the name of a server that is not a neighbour of the one it talks to: a server need not
        # send a record back to the neighbour it came from, so posing as a neighbour would keep
        # the record from being flooded to the real one.
        pa, pb = fake_peer(herd5, 'Goloman'), fake_peer(herd5, 'Welsh')
        try:
            pa.send(b'HERD Welsh\n')
            pb.send(b'HERD Hands\n')
            ta = threading.Thread(target=pa.send, args=(r_a + b'\n',))
            tb = threading.Thread(target=pb.send, args=(r_b + b'\n',))
            ta.start(); tb.start(); ta.join(5); tb.join(5)
            for name in NAMES:
                poll_whatsat(herd5.port(name), cid, winner, radius=1, bound=1)
            # Whatever either record set off is delivered before each link's sentinel.
            flush_links(herd5)
            for name in NAMES:
                assert whatsat(herd5.port(name), cid, 1, 1).split(b'\n', 1)[0] == winner, name
        finally:
            pa.close()
            pb.close()


def test_tie_between_two_client_reports_converges(herd5):
    cid = unique_id('clienttie')
    t = b'6000.000000001'
    replies = {}

    def report(name, loc):
        replies[name] = iamat(herd5.port(name), cid, loc, t)

    threads = [threading.Thread(target=report, args=('Hands', b'+01.0+001.0')),
               threading.Thread(target=report, args=('Welsh', b'+02.0+002.0'))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert set(replies) == {'Hands', 'Welsh'}
    winner = max(replies.values())
    for name in NAMES:
        poll_whatsat(herd5.port(name), cid, winner, radius=1, bound=1)
    flush_links(herd5)
    lines = {n: whatsat(herd5.port(n), cid, 1, 1).split(b'\n', 1)[0] for n in NAMES}
    assert set(lines.values()) == {winner}, lines


def test_peer_port_is_not_a_client_port(herd5):
    """IAMAT/WHATSAT on the peer port (after a valid hello) get no reply."""
    cid = unique_id('peerclient')
    with fake_peer(herd5, 'Hands') as p:
        p.send(b'HERD Goloman\nIAMAT %s +01.0+001.0 1\nWHATSAT %s 10 5\n' % (cid, cid))
        p.expect_silence(0.5)
