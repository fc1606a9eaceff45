"""Catch-up (anti-entropy) on peer links, case by case: a restarted server, a relay through a
restarted middle server, a partition that heals, a neighbour that fell past the backlog while its
link was cut, records lost in a connection that failed, and the two flood-routing rules catch-up must
not hide. Links are cut, blackholed and healed with tools/chaos/faultproxy.py (Herd(proxied=True))."""

import re
import socket
import time

from herdlib import (NAMES, Client, at_lines, flush_links, missing_at, poll_whatsat, unique_id, updates,
                     wait_all_at, wait_for)

UCLA = b'+34.068930-118.445127'


def caught_up_lines(herd, name):
    return [l for l in herd.log_bytes(name).split(b'\n') if b'* caught up: ' in l]


def wait_marked(herd, sender, receiver, timeout=10):
    """Waits until the receiver's log shows a MARK from `sender` after the last record it got from
    it: the receiver then holds (and would answer in SYNC-FROM) all of the sender's history so far."""
    def marked():
        lines = [l for l in herd.log_bytes(receiver).split(b'\n') if b'/%s < ' % sender.encode() in l]
        return lines and b' < MARK ' in lines[-1]
    wait_for(marked, timeout, 'a MARK from %s after its last record, in %s.log' % (sender, receiver))


def test_a_restarted_server_gets_everything_back(make_herd):
    """The operator's report: Welsh killed and restarted answered `?` for every client. Now its
    neighbour sends it the whole table (it holds none of Holiday's history), and updates made
    while it was down are among them."""
    herd = make_herd()
    before = updates(herd, 'Goloman', 'before', 300)
    wait_all_at(herd, 'Welsh', before)
    herd.kill('Welsh')
    during = updates(herd, 'Hands', 'during', 50)
    herd.restart('Welsh')
    wait_all_at(herd, 'Welsh', {**before, **during})
    wait_for(lambda: b'Welsh * catch-up: full transfer of the table (it holds none of our history)'
             in herd.log_bytes('Holiday'), 10, 'a full transfer in Holiday.log')
    wait_for(lambda: caught_up_lines(herd, 'Welsh'), 10, 'caught up, in Welsh.log')
    # And it floods on again: an update at the restarted Welsh reaches the far side.
    after = updates(herd, 'Welsh', 'after', 1)
    wait_all_at(herd, 'Hands', after)


def test_relay_through_a_restarted_middle_server(make_herd):
    """Holiday is Welsh's only neighbour. Updates made while Holiday is down cannot reach Welsh;
    once Holiday is back it learns them from Goloman and Wilkes and floods them on to Welsh."""
    herd = make_herd()
    base = updates(herd, 'Welsh', 'base', 20)
    wait_all_at(herd, 'Hands', base)
    herd.kill('Holiday')
    while_down = updates(herd, 'Goloman', 'relay', 200)
    wait_all_at(herd, 'Wilkes', while_down)
    assert missing_at(herd, 'Welsh', while_down) == set(while_down), 'Welsh is cut off while Holiday is down'
    herd.restart('Holiday')
    wait_all_at(herd, 'Holiday', {**base, **while_down})
    wait_all_at(herd, 'Welsh', while_down)


def test_a_partition_that_heals_replays_only_what_was_missed(make_herd):
    """Welsh's link to Holiday is cut (both directions) while updates go on; once it heals,
    Holiday replays from its backlog what Welsh missed (no full transfer, and only the newest
    version of a client that moved several times), Welsh sends back what it took meanwhile, and the
    bytes that cross the link for it stay within twice the bytes of the records Welsh missed."""
    herd = make_herd(proxied=True)
    warm = updates(herd, 'Goloman', 'warm', 200)  # a table that a full transfer would have to resend
    wait_all_at(herd, 'Welsh', warm)
    flush_links(herd)
    wait_marked(herd, 'Holiday', 'Welsh')  # Welsh holds Holiday's history up to here
    full_transfers = herd.log_bytes('Holiday').count(b'Welsh * catch-up: full transfer')
    herd.proxy('mode Holiday>Welsh drop')
    herd.proxy('mode Welsh>Holiday drop')
    missed = updates(herd, 'Goloman', 'missed', 100)
    # Clients that move again and again while the link is down: only their newest records are missed.
    movers = [unique_id('mover') for _ in range(20)]
    for k in range(10):
        with herd.client('Goloman') as c:
            c.send(b''.join(b'IAMAT %s %s 1600000001.%d\n' % (i, UCLA, k) for i in movers))
            for i in movers:
                missed[i] = c.read_line()[:-1]
    taken = updates(herd, 'Welsh', 'taken', 10)  # Welsh's own news, for the other direction
    wait_all_at(herd, 'Holiday', missed)
    assert missing_at(herd, 'Welsh', missed) == set(missed)
    herd.proxy('reset Holiday>Welsh')
    herd.proxy('mode Holiday>Welsh pass')
    herd.proxy('mode Welsh>Holiday pass')
    wait_all_at(herd, 'Welsh', missed)
    wait_all_at(herd, 'Hands', taken)
    wait_for(lambda: re.search(rb'Welsh \* catch-up: replaying backlog seqs \d+\.\.\d+',
                               herd.log_bytes('Holiday')), 5, 'a replay in Holiday.log')
    assert herd.log_bytes('Holiday').count(b'Welsh * catch-up: full transfer') == full_transfers
    wait_for(lambda: len(caught_up_lines(herd, 'Welsh')) >= 2, 10, 'the second catch-up in Welsh.log')
    sent = herd.proxy_stats('Holiday>Welsh')['up']
    missed_bytes = sum(len(line) + 1 for line in missed.values())
    assert sent <= 2 * missed_bytes, (sent, missed_bytes)


def test_past_the_backlog_a_reconnect_gets_a_full_transfer(make_herd):
    """A link cut for longer than the backlog reaches back (64 KiB here): when it heals, the
    backlog no longer holds the neighbour's position, so it gets the whole table instead."""
    herd = make_herd(names=['A', 'B'], links=[['A', 'B']], proxied=True,
                     limits={'peer_backlog_bytes': 65536})
    wait_for(lambda: caught_up_lines(herd, 'B'), 10, 'first catch-up')
    herd.proxy('mode A>B drop')
    recs = {}
    for k in range(4):  # ~100 KB of records
        recs.update(updates(herd, 'A', 'overflow', 300))
    assert missing_at(herd, 'B', recs) == set(recs)
    herd.proxy('mode A>B pass')
    wait_all_at(herd, 'B', recs)
    wait_for(lambda: re.search(rb'B \* catch-up: full transfer of the table \(the backlog no longer reaches back',
                               herd.log_bytes('A')), 5, 'a full transfer in A.log')


def test_records_lost_in_a_failed_connection_are_repaired(make_herd):
    """Records written into a connection that then fails: TCP took them, the neighbour never read
    them (a blackhole in the proxy). They were sent as far as A can tell; on the reconnect, B says
    how far it really got (the last MARK it read) and A replays the rest from its backlog."""
    herd = make_herd(names=['A', 'B'], links=[['A', 'B']], proxied=True)
    wait_for(lambda: caught_up_lines(herd, 'B'), 10, 'first catch-up')
    herd.proxy('mode A>B blackhole')
    lost = updates(herd, 'A', 'lost', 50)
    last = list(lost.values())[-1]
    # A wrote them all to the link (its log says so) ...
    wait_for(lambda: b'B > ' + last in herd.log_bytes('A'), 10, 'the last record sent, in A.log')
    wait_for(lambda: herd.proxy_stats('A>B')['swallowed'] > sum(len(l) for l in lost.values()), 10,
             'the records swallowed by the proxy')
    # ... and B never got them.
    assert missing_at(herd, 'B', lost) == set(lost)
    herd.proxy('mode A>B pass')
    herd.proxy('close A>B')  # the connection fails (RST); A redials
    wait_all_at(herd, 'B', lost)
    wait_for(lambda: re.search(rb'B \* catch-up: replaying backlog seqs \d+\.\.\d+', herd.log_bytes('A')),
             5, 'a replay in A.log')
    assert herd.log_bytes('A').count(b'B * catch-up: full transfer') == 1  # the first, of an empty table


def test_a_late_answer_does_not_send_twice_what_the_link_carried(make_herd):
    """A round trip longer than the second the dialler waits for SYNC-FROM (a distant or loaded
    link): A starts the live stream from where its link stopped; when the answer comes after all,
    the replay does not send a second time what that stream carried meanwhile."""
    herd = make_herd(names=['A', 'B'], links=[['A', 'B']], proxied=True)
    wait_for(lambda: caught_up_lines(herd, 'B'), 10, 'first catch-up')
    herd.proxy('mode A>B drop')
    missed = updates(herd, 'A', 'late', 200)  # they wait in A's backlog
    herd.proxy('delay A>B 800')  # each way: B's answer reaches A 1.6 s after A's SYNC
    herd.proxy('reset A>B')
    herd.proxy('mode A>B pass')
    wait_all_at(herd, 'B', missed)
    wait_for(lambda: len(caught_up_lines(herd, 'B')) >= 2, 10, 'the second catch-up in B.log')
    log = herd.log_bytes('A')
    assert b'B * no catch-up answer' in log  # the answer was late indeed
    assert re.search(rb'B \* catch-up: replaying backlog seqs \d+\.\.\d+', log)
    sent = herd.proxy_stats('A>B')['up']
    missed_bytes = sum(len(line) + 1 for line in missed.values())
    assert sent < 1.5 * missed_bytes, (sent, missed_bytes)


def test_a_record_is_never_sent_back_to_the_neighbour_it_came_from(make_herd):
    """Even when that neighbour sends no seen= (a fake peer, or the asyncio reference): A must not
    send a record from "B" back to B. B's log never shows it, although a later record from A
    (the sentinel) has crossed the same link."""
    herd = make_herd(names=['A', 'B'], links=[['A', 'B']])
    wait_for(lambda: caught_up_lines(herd, 'B'), 10, 'first catch-up')
    cid = unique_id('from-b')
    record = b'AT B +0.500000000 %s +01.000000+002.000000 1234.5' % cid
    with Client(herd.peer_ports['A']) as fake:
        fake.send(b'HERD B\n' + record + b'\n')
        poll_whatsat(herd.port('A'), cid, record, radius=1, bound=1)
        flush_links(herd, ['A'])
    assert cid not in herd.log_bytes('B'), 'A sent the record back to B'
    assert at_lines(herd.port('B'), [cid])[cid] is None


def test_the_seen_field_names_the_links_up_when_each_record_is_sent(make_herd):
    """Goloman remembers the seen= field it wrote for a sender and set (here: a client, no set), and
    that field must follow its links: all three neighbours named while all links are up, Hands left
    out while its link is cut, named again once it is back. One client connection throughout, so
    every update is routed by the same loop, and three updates a phase, so later ones reuse what the
    first worked out."""
    herd = make_herd(proxied=True)
    neighbours = ['Hands', 'Holiday', 'Wilkes']

    def link_is_up(name):
        events = re.findall(rb' %s ([-+]) link (?:up|down)' % name.encode(), herd.log_bytes('Goloman'))
        return events[-1:] == [b'+']

    sent_with = {}

    def phase(c, tag, to):
        ids = [unique_id(tag) for _ in range(3)]
        c.send(b''.join(b'IAMAT %s %s 1600000000.5\n' % (i, UCLA) for i in ids))
        lines = [c.read_line()[:-1] for _ in ids]
        entries = lambda: [l for l in herd.log_bytes('Goloman').split(b'\n')
                           if any(b' %s > %s seen=' % (n.encode(), line) in l for n in to for line in lines)]
        wait_for(lambda: len(entries()) == 3 * len(to), 10, '%s: the updates sent to %s' % (tag, to))
        sent_with[tag] = sorted({l.split(b' seen=')[1] for l in entries()})

    # (Through the proxy, links may come up and drop once while the servers start.)
    wait_for(lambda: all(link_is_up(n) for n in neighbours), 30, "Goloman's three links up")
    with herd.client('Goloman') as c:
        phase(c, 'all-up', neighbours)
        herd.proxy('mode Goloman>Hands drop')
        herd.proxy('mode Hands>Goloman drop')
        wait_for(lambda: not link_is_up('Hands'), 10, 'the link to Hands down, in Goloman.log')
        phase(c, 'hands-cut', ['Holiday', 'Wilkes'])
        herd.proxy('mode Goloman>Hands pass')
        herd.proxy('mode Hands>Goloman pass')
        wait_for(lambda: link_is_up('Hands'), 30, 'the link to Hands up again, in Goloman.log')
        phase(c, 'back', neighbours)
    assert sent_with == {'all-up': [b'Goloman,Hands,Holiday,Wilkes'], 'hands-cut': [b'Goloman,Holiday,Wilkes'],
                         'back': [b'Goloman,Hands,Holiday,Wilkes']}, sent_with


def test_a_neighbour_whose_link_is_down_is_never_named_in_seen(make_herd):
    """Goloman's link to Hands is cut when an update comes to Goloman, so Goloman must not name
    Hands in seen=: Wilkes, whose link to Hands is up, sends it on. Goloman is then killed (what it
    owed Hands dies with it) and Hands, never restarted, still has the record."""
    herd = make_herd(proxied=True)
    herd.proxy('mode Goloman>Hands drop')
    herd.proxy('mode Hands>Goloman drop')
    wait_for(lambda: b'Hands - link down' in herd.log_bytes('Goloman'), 10, 'the link down, in Goloman.log')
    rec = updates(herd, 'Goloman', 'not-named', 1)
    line = list(rec.values())[0]
    sent = lambda: [l for l in herd.log_bytes('Goloman').split(b'\n')
                    if b' Holiday > ' + line in l or b' Wilkes > ' + line in l]
    wait_for(lambda: len(sent()) == 2, 5, 'the update sent to Holiday and Wilkes, in Goloman.log')
    for l in sent():
        assert re.search(rb' seen=\S*Wilkes', l) and not re.search(rb' seen=\S*Hands', l), l
    herd.kill('Goloman')
    wait_all_at(herd, 'Hands', rec)


def test_idle_servers_with_data_stop_marking(make_herd):
    """With a data_dir, a MARK received is recorded in the backlog (a progress entry), which the
    link back passes over. That alone calls for no MARK: else two idle neighbours MARKed each
    other's MARKs once a second for ever, each one a record-log write. Found in review."""
    herd = make_herd(names=['Goloman', 'Hands'], links=[['Goloman', 'Hands']],
                     extra_yaml='data_dir: data\nfsync: everysec\n')
    updates(herd, 'Goloman', 'idle', 3)
    wait_marked(herd, 'Goloman', 'Hands')

    def marks():
        return sum(herd.log_bytes(n).count(b' > MARK ') for n in ('Goloman', 'Hands'))
    # Past the MARKs that close the traffic above (MARKs go at most every 100 ms; idle links are
    # looked at every second), the count stands still.
    time.sleep(2.5)
    settled = marks()
    time.sleep(3.5)
    assert marks() == settled


def test_a_claim_past_what_was_stored_gets_a_full_transfer(make_herd):
    """An acceptor's SYNC-FROM names how far it holds the dialler's history. A seq of the current run
    that the dialler has not stored yet cannot be true (no server sends it): where that neighbour
    stands is unknown, so it gets everything. It used to be taken as "holds everything" and be sent
    nothing; 2^64-1 wrapped to seq 0 and got a transfer for the wrong reason."""
    herd = make_herd(names=['A', 'B'], links=[['A', 'B']], threads=1)
    wait_for(lambda: caught_up_lines(herd, 'B'), 10, 'first catch-up')
    ids = [unique_id('held') for _ in range(3)]
    with Client(herd.port('A')) as c:
        c.send(b''.join(b'IAMAT %s %s 1600000000.5\n' % (i, UCLA) for i in ids))
        for _ in ids:
            assert c.read_line().startswith(b'AT A ')
    herd.kill('B')
    # B's peer port, now spoken for by a fake acceptor: A redials it.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(('127.0.0.1', herd.peer_ports['B']))
    listener.listen(4)
    listener.settimeout(15)
    try:
        for claim in (b'1000000', b'18446744073709551615'):
            conn, _ = listener.accept()
            try:
                conn.settimeout(10)
                got = b''
                while got.count(b'\n') < 2:
                    chunk = conn.recv(4096)
                    assert chunk, got
                    got += chunk
                hello, sync = got.split(b'\n')[:2]
                assert hello == b'HERD A' and sync.startswith(b'SYNC '), got
                run = sync.split()[1]
                conn.sendall(b'SYNC-FROM %s %s\n' % (run, claim))
                deadline = time.monotonic() + 10
                while not all(i in got for i in ids) and time.monotonic() < deadline:
                    try:
                        chunk = conn.recv(65536)
                    except socket.timeout:
                        break
                    if not chunk:
                        break
                    got += chunk
                assert all(i in got for i in ids), (claim, got[-600:])
                assert b'\nBULK ' in got, got[-600:]
                wait_for(lambda: b'B * catch-up: full transfer' in herd.log_bytes('A')
                         and b'it claims our seq %s; the last we stored is 3' % claim in herd.log_bytes('A'),
                         10, 'the reason in the log')
            finally:
                conn.close()
    finally:
        listener.close()


def test_a_mark_before_sync_is_ignored_and_a_bulk_on_a_live_link_is_a_catch_up(make_herd):
    """On a neighbour's connection (a fake B here): a MARK before any SYNC names no run, so it is
    ignored (the SYNC-FROM answer then names a run); a BULK frame after the first catch-up ended
    (a full transfer on a live link) is a catch-up of its own, logged when its MARK comes."""
    herd = make_herd(names=['A', 'B'], links=[['A', 'B']])
    herd.kill('B')  # its connection stands in for B's link from here on
    cid = unique_id('live-bulk')
    with Client(herd.peer_ports['A'], timeout=10) as b:
        b.send(b'HERD B\nMARK 7\nSYNC fakerun1\n')
        answer = b.read_line()
        assert re.fullmatch(rb'SYNC-FROM (-|[0-9A-Za-z]+) \d+( ALL)?\n', answer), answer
        assert answer.split(b' ')[2] != b'7\n', answer
        b.send(b'MARK 0\n')
        wait_for(lambda: b'/B * caught up: 0 catch-up records received' in herd.log_bytes('A'), 5,
                 'the first catch-up at A')
        b.send(b'BULK 1\nAT B +0.000000001 %s %s 1520023934.5\nMARK 1\n' % (cid, UCLA))
        wait_for(lambda: b'/B * caught up: 1 catch-up records received, 1 stored' in herd.log_bytes('A'), 5,
                 'the live full transfer logged as a catch-up at A')
    assert b'MARK before SYNC; ignored' in herd.log_bytes('A')
