"""Flooding in the default five-server herd: an IAMAT at one server is answered by WHATSAT at every
other; stale reports change nothing and are not flooded; newer ones replace the record everywhere.
Also the places part of WHATSAT: real GeoNames cities, in the Nearby Search shape."""

import pytest

from herdlib import (NAMES, Client, check_at_line, check_whatsat_reply, flush_links, iamat, poll_whatsat,
                     unique_id, wait_for, whatsat)

UCLA = b'+34.068930-118.445127'
DOWNTOWN_LA = b'+34.052235-118.243683'
MID_PACIFIC = b'+00.000000-150.000000'


def test_iamat_at_goloman_reaches_every_server(herd5):
    cid = unique_id('kiwi.cs.ucla.edu')
    t = b'1520023934.918963997'
    at_line = iamat(herd5.port('Goloman'), cid, UCLA, t)
    check_at_line(at_line, 'Goloman', cid, UCLA, t)
    replies = {}
    for name in NAMES:
        reply = poll_whatsat(herd5.port(name), cid, at_line, radius=10, bound=5)
        doc = check_whatsat_reply(reply, at_line, 5, 10)
        assert doc['status'] == 'OK'
        names = [r['name'] for r in doc['results']]
        assert names[0] == 'Santa Monica', names
        assert len(names) == 5, names
        replies[name] = reply
    # Each server asks its own provider, but the data is the same: the same bytes everywhere.
    assert len(set(replies.values())) == 1


def test_whatsat_respects_the_bound_and_radius(herd5):
    cid = unique_id('downtown')
    at_line = iamat(herd5.port('Hands'), cid, DOWNTOWN_LA, b'1520023934')
    for bound in (1, 3, 20):
        reply = poll_whatsat(herd5.port('Welsh'), cid, at_line, radius=50, bound=bound)
        doc = check_whatsat_reply(reply, at_line, bound, 50)
        assert len(doc['results']) == bound  # greater Los Angeles has more than 20 cities
        assert doc['results'][0]['name'] == 'Los Angeles'
    # A small radius in a big city: only the city itself.
    doc = check_whatsat_reply(whatsat(herd5.port('Welsh'), cid, 0.5, 20), at_line, 20, 0.5)
    assert [r['name'] for r in doc['results']] == ['Los Angeles']


def test_whatsat_with_no_places_nearby(herd5):
    cid = unique_id('pacific')
    at_line = iamat(herd5.port('Holiday'), cid, MID_PACIFIC, b'1520023934.5')
    reply = poll_whatsat(herd5.port('Hands'), cid, at_line, radius=1, bound=20)
    doc = check_whatsat_reply(reply, at_line, 20, 1)
    assert doc['status'] == 'ZERO_RESULTS' and doc['results'] == []


def log_lines_with(herd, name, needle):
    return [l for l in herd.log_bytes(name).split(b'\n') if needle in l]


def test_stale_iamat_gets_stored_line_and_is_not_flooded(herd5):
    cid = unique_id('stale')
    loc = b'+34.000001-118.000001'
    current = iamat(herd5.port('Goloman'), cid, loc, b'2000.5')
    check_at_line(current, 'Goloman', cid, loc, b'2000.5')
    for name in NAMES:
        poll_whatsat(herd5.port(name), cid, current, radius=1, bound=1)

    stale = {  # server -> (distinctive location, time not newer than 2000.5)
        'Hands': (b'+11.111111+011.111111', b'1999.999999999'),    # older
        'Wilkes': (b'+22.222222+022.222222', b'2000.500000000'),   # equal
        'Welsh': (b'+33.333333+033.333333', b'2000.5'),            # equal, other spelling
        'Goloman': (b'+44.444444+044.444444', b'2000.4999999999'), # older (10th digit ignored)
        'Holiday': (b'+55.555555+055.555555', b'0'),               # much older
    }
    for name, (sloc, st) in stale.items():
        assert iamat(herd5.port(name), cid, sloc, st) == current, name

    # Every link has delivered what was queued on it when the stale reports came in (sentinels).
    flush_links(herd5)
    for name in NAMES:
        assert whatsat(herd5.port(name), cid, 1, 1).split(b'\n', 1)[0] == current, name
    for name, (sloc, _) in stale.items():
        wait_for(lambda: log_lines_with(herd5, name, sloc), 5, 'the received IAMAT in the log of %s' % name)
    # The stale locations appear in the logs only as the received IAMAT lines, never in an AT line
    # sent to or received from a peer.
    for name in NAMES:
        for sloc, _ in stale.values():
            for line in log_lines_with(herd5, name, sloc):
                assert b'IAMAT ' in line, (name, line)


def test_newer_iamat_replaces_the_record_everywhere(herd5):
    cid = unique_id('newer')
    first = iamat(herd5.port('Welsh'), cid, b'+10.000000+010.000000', b'3000')
    for name in NAMES:
        poll_whatsat(herd5.port(name), cid, first, radius=1, bound=1)
    # One nanosecond newer, at the far end of the herd.
    second = iamat(herd5.port('Hands'), cid, b'+20.000000+020.000000', b'3000.000000001')
    check_at_line(second, 'Hands', cid, b'+20.000000+020.000000', b'3000.000000001')
    for name in NAMES:
        poll_whatsat(herd5.port(name), cid, second, radius=1, bound=1)
    # Much newer, in the middle.
    third = iamat(herd5.port('Holiday'), cid, b'+30.000000+030.000000', b'4000')
    for name in NAMES:
        poll_whatsat(herd5.port(name), cid, third, radius=1, bound=1)
    # And the older ones now get the newest back.
    assert iamat(herd5.port('Welsh'), cid, b'+10.000000+010.000000', b'3000') == third


def test_many_clients_propagate(herd5):
    """A burst of updates at one leaf reaches the far side complete."""
    ids = [unique_id('burst') for _ in range(200)]
    lines = []
    with Client(herd5.port('Welsh'), timeout=20) as c:
        c.send(b''.join(b'IAMAT %s +01.0+001.0 5000\n' % i for i in ids))
        for i in ids:
            lines.append(c.read_line()[:-1])
    for i, l in zip(ids, lines):
        check_at_line(l, 'Welsh', i, b'+01.0+001.0', b'5000')
    # Hands is three hops away: poll the last one, then check all.
    poll_whatsat(herd5.port('Hands'), ids[-1], lines[-1], radius=1, bound=1)
    wait_for(lambda: all(whatsat(herd5.port('Hands'), i, 1, 1).split(b'\n', 1)[0] == l
                         for i, l in zip(ids, lines)), 10, 'all 200 records at Hands', 0.2)


def test_places_around_the_world(herd5):
    """Non-ASCII names, the antimeridian and the far north: valid JSON, every place within the
    radius (haversine, R = 6371008.8 m)."""
    cases = [(b'-23.550520-046.633308', 'S\u00e3o Paulo'),    # Sao Paulo
             (b'+47.376887+008.541694', 'Z\u00fcrich'),       # Zurich
             (b'+50.064650+019.944980', 'Krak\u00f3w'),       # Krakow
             (b'+78.223172+015.626723', 'Longyearbyen'),     # Svalbard
             (b'+89.999999+000.000000', None)]               # the North Pole: nothing
    for loc, expect_name in cases:
        cid = unique_id('world')
        at_line = iamat(herd5.port('Wilkes'), cid, loc, b'1520023934')
        doc = check_whatsat_reply(whatsat(herd5.port('Wilkes'), cid, 50, 20), at_line, 20, 50)
        names = [r['name'] for r in doc['results']]
        if expect_name:
            assert expect_name in names, (loc, names)
        for r in doc['results']:
            assert r['place_id'] and r['vicinity'] and r['types'], r
    # Across the antimeridian: Egvekinot (66.32166, -179.12198) is ~44 km from a point at +179.9.
    cid = unique_id('chukotka')
    at_line = iamat(herd5.port('Wilkes'), cid, b'+66.321660+179.900000', b'1520023934')
    doc = check_whatsat_reply(whatsat(herd5.port('Wilkes'), cid, 50, 20), at_line, 20, 50)
    assert [r['name'] for r in doc['results']] == ['Egvekinot'], doc['results']
    doc = check_whatsat_reply(whatsat(herd5.port('Wilkes'), cid, 40, 20), at_line, 20, 40)
    assert doc['results'] == [] and doc['status'] == 'ZERO_RESULTS'


def test_each_server_receives_an_update_exactly_once(herd5):
    """The seen= field stops duplicate deliveries: in the default herd an update at Goloman reaches
    each of the four others once (4 deliveries, not the 8 of plain flooding), and every server still
    gets it."""
    cid = unique_id('once')
    at_line = iamat(herd5.port('Goloman'), cid, UCLA, b'1520023999.5')
    for name in NAMES:
        poll_whatsat(herd5.port(name), cid, at_line)
    # Every server stored it, so every forward of it was queued by now: once each link has delivered
    # a later sentinel, any duplicate has arrived and is logged.
    flush_links(herd5)
    record = at_line.rstrip(b'\n')
    received = {}
    seen = {}
    for name in NAMES:
        log = herd5.log_bytes(name)
        # Inbound peer entries look like "<time> p7/Goloman < AT Goloman ... seen=...".
        lines = [line for line in log.split(b'\n') if b' < ' + record in line and b' p' in line.split(b' < ')[0]]
        received[name] = len(lines)
        seen[name] = [line.split(b' seen=')[1] for line in lines]
    assert received == {'Goloman': 0, 'Hands': 1, 'Holiday': 1, 'Welsh': 1, 'Wilkes': 1}, received
    # Each sender names itself first, then the neighbours it sends to; Holiday passes it on to Welsh.
    assert seen == {'Goloman': [], 'Hands': [b'Goloman,Hands,Holiday,Wilkes'],
                    'Holiday': [b'Goloman,Hands,Holiday,Wilkes'], 'Welsh': [b'Goloman,Hands,Holiday,Wilkes,Welsh'],
                    'Wilkes': [b'Goloman,Hands,Holiday,Wilkes']}, seen


@pytest.mark.parametrize('entry,expected', [('Wilkes', 4), ('Hands', 5), ('Holiday', 5), ('Welsh', 5)])
def test_deliveries_of_an_update_by_entry_server(herd5, entry, expected):
    """From the other entries: Wilkes, like Goloman, reaches every server once. From Hands, Holiday
    or Welsh one server gets the update twice: two servers that receive it with the same set both
    pass it to a shared neighbour the set does not name (from Hands: Goloman and Wilkes, each to
    Holiday). Still fewer than the 8 of plain flooding, from any entry."""
    cid = unique_id('deliveries')
    at_line = iamat(herd5.port(entry), cid, UCLA, b'1520023999.5')
    for name in NAMES:
        poll_whatsat(herd5.port(name), cid, at_line)
    flush_links(herd5)
    record = at_line.rstrip(b'\n')
    received = {}
    for name in NAMES:
        log = herd5.log_bytes(name)
        received[name] = sum(1 for line in log.split(b'\n')
                             if b' < ' + record in line and b' p' in line.split(b' < ')[0])
    assert received[entry] == 0 and all(received[n] >= 1 for n in NAMES if n != entry), received
    assert sum(received.values()) == expected, received


def test_a_server_forwarding_a_record_without_seen_names_itself(make_herd):
    """A record from a sender that speaks no seen= (the asyncio reference, here a fake peer) is sent
    on with a set that names the forwarding server and the neighbour it goes to, and not the sender
    (only what a sender says of itself is trusted)."""
    herd = make_herd(names=['A', 'B', 'C'], links=[['A', 'B'], ['B', 'C']])
    cid = unique_id('no-seen')
    record = b'AT A +0.500000000 %s +01.000000+002.000000 1234.5' % cid
    with Client(herd.peer_ports['B']) as fake:
        fake.send(b'HERD A\n' + record + b'\n')
        poll_whatsat(herd.port('C'), cid, record, radius=1, bound=1)
    wait_for(lambda: b' < ' + record + b' seen=B,C\n' in herd.log_bytes('C'), 5, 'the record with seen=B,C, in C.log')
