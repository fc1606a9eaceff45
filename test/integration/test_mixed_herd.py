"""A mixed herd: C++ servers and asyncio reference servers (tools/reference) in one topology. Updates
must flow across both kinds in every direction, and WHATSAT must give the same bytes from either
kind (same gazetteer, same ranking, same JSON layout)."""

import re

from herdlib import (NAMES, check_at_line, check_whatsat_reply, iamat, poll_whatsat, unique_id,
                     wait_for)

UCLA = b'+34.068930-118.445127'


def test_updates_cross_between_cpp_and_reference_servers(make_herd):
    # Holiday and Hands run the reference: every path from Welsh to Hands crosses both kinds.
    herd = make_herd(reference=('Holiday', 'Hands'))
    for origin in ('Welsh', 'Hands', 'Goloman', 'Holiday'):
        cid = unique_id('mixed-' + origin)
        at_line = iamat(herd.port(origin), cid, UCLA, b'1520023934.918963997')
        check_at_line(at_line, origin, cid, UCLA, b'1520023934.918963997')
        replies = {}
        for name in NAMES:
            reply = poll_whatsat(herd.port(name), cid, at_line, radius=10, bound=3)
            check_whatsat_reply(reply, at_line, 3, 10)
            replies[name] = reply
        # The reference and the C++ servers answer with identical bytes.
        assert len(set(replies.values())) == 1, {n: r[:200] for n, r in replies.items()}


def test_newer_reports_win_across_kinds(make_herd):
    herd = make_herd(reference=('Wilkes',))
    cid = unique_id('mixed-newer')
    old = iamat(herd.port('Hands'), cid, b'+10.0+010.0', b'1000')
    for name in NAMES:
        poll_whatsat(herd.port(name), cid, old, radius=1, bound=1)
    new = iamat(herd.port('Wilkes'), cid, b'+11.0+011.0', b'1001')
    for name in NAMES:
        poll_whatsat(herd.port(name), cid, new, radius=1, bound=1)
    # A stale report at a C++ server gets the reference's newer record back.
    assert iamat(herd.port('Welsh'), cid, b'+12.0+012.0', b'1000.5') == new


def test_mixed_herd_over_tls(make_herd):
    """The same crossing paths with peer_tls: the reference's Python ssl and the C++ TLS transport
    authenticate each other in both directions (each dials and accepts the other)."""
    herd = make_herd(reference=('Holiday', 'Hands'), peer_tls=True)
    for origin in ('Welsh', 'Hands', 'Wilkes', 'Holiday'):
        cid = unique_id('mixed-tls-' + origin)
        at_line = iamat(herd.port(origin), cid, UCLA, b'1520023934.918963997')
        replies = {}
        for name in NAMES:
            replies[name] = poll_whatsat(herd.port(name), cid, at_line, radius=10, bound=3)
        assert len(set(replies.values())) == 1
    # the reference servers' links to C++ neighbours really are TLS, and nothing was refused
    # (the reference writes its log every half second)
    for name in ('Holiday', 'Hands'):
        def tls_logged():
            log = herd.log_bytes(name)
            return (b'mutually authenticated TLS' in log and
                    re.search(rb'link (Goloman|Wilkes|Welsh): up \S+ TLS TLSv1\.[23]', log) and
                    re.search(rb'client certificate for (Goloman|Wilkes|Welsh)', log))
        wait_for(tls_logged, 5, 'TLS links in the log of %s' % name)
        assert b'refused' not in herd.log_bytes(name)
