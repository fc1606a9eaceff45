"""SPEC.md "Logging": every line received and sent (clients and peers), and every connection opened
and dropped, with timestamps, in <log_dir>/<NAME>.log. The entry format is the server's own; the
tests look for the lines themselves, a date-time stamp at the start of each entry, and the client's
address in the connection entries."""

import datetime
import re
import time

from herdlib import Client, check_at_line, poll_whatsat, unique_id, wait_for

STAMP = re.compile(rb'^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(\.\d+)?Z? ')


def entries(herd, name):
    return [l for l in herd.log_bytes(name).split(b'\n') if l]


def stamp_of(line):
    m = STAMP.match(line)
    assert m, 'log entry without a leading timestamp: %r' % line[:200]
    text = m.group(1).decode().replace(' ', 'T')
    return datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%S').replace(
        tzinfo=datetime.timezone.utc)


def test_client_session_is_logged(herd5):
    cid = unique_id('logged')
    loc = b'+12.345678-012.345678'
    iamat_line = b'IAMAT %s %s 1520023934.918963997' % (cid, loc)
    whatsat_line = b'WHATSAT %s 7 2' % cid
    bogus = b'BOGUS %s' % cid
    started = datetime.datetime.now(datetime.timezone.utc)
    with Client(herd5.port('Welsh')) as c:
        local_port = c.sock.getsockname()[1]
        c.send(iamat_line + b'\n')
        at_line = c.read_line()[:-1]
        check_at_line(at_line, 'Welsh', cid, loc, b'1520023934.918963997')
        c.send(whatsat_line + b'\n')
        c.read_whatsat()
        c.send(bogus + b'\r\n')
        assert c.read_line() == b'? ' + bogus + b'\n'
    address = b'127.0.0.1:%d' % local_port

    def complete():
        lines = entries(herd5, 'Welsh')
        opened = [i for i, l in enumerate(lines) if re.search(re.escape(address) + rb'(?!\d)', l)]
        if not opened:
            return None
        tag = lines[opened[0]].split(b' ')[1]
        later = [l for l in lines[opened[0] + 1:] if l.split(b' ')[1:2] == [tag]]
        closed = [l for l in later if re.search(rb'clos|drop|disconnect|hung|reset|eof', l, re.I)]
        return (lines, opened[0], later) if closed else None

    lines, first, later = wait_for(complete, 5, 'the open and close entries of the connection')
    for l in lines:
        stamp_of(l)
    when = stamp_of(lines[first])
    assert started - datetime.timedelta(seconds=2) <= when, (started, lines[first])
    assert when <= datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
    session = b'\n'.join(later)
    # Received lines, and the replies sent.
    for needle in (iamat_line, whatsat_line, bogus, at_line, b'? ' + bogus):
        assert needle in session, needle
    # The WHATSAT reply is logged too: the AT line again and the places JSON after it.
    assert session.count(at_line) >= 2, session[:2000]
    assert b'"status"' in session
    # Connection close comes after the last reply.
    last_close = max(i for i, l in enumerate(later)
                     if re.search(rb'clos|drop|disconnect|hung|reset|eof', l, re.I))
    last_reply = max(i for i, l in enumerate(later) if b'? ' + bogus in l)
    assert last_close > last_reply


def test_peer_traffic_is_logged(herd5):
    cid = unique_id('peerlog')
    loc = b'+23.456789+023.456789'
    with Client(herd5.port('Goloman')) as c:
        c.send(b'IAMAT %s %s 1520023934\n' % (cid, loc))
        at_line = c.read_line()[:-1]
    poll_whatsat(herd5.port('Welsh'), cid, at_line, radius=1, bound=1)
    time.sleep(0.3)  # the log writer runs in the background

    # Goloman logged sending it to its neighbours; Holiday received it and sent it on; Welsh got it.
    def logged(name, count):
        return sum(1 for l in entries(herd5, name) if at_line in l) >= count

    wait_for(lambda: logged('Goloman', 4), 5, 'Goloman: received IAMAT, reply, 3 floods')
    wait_for(lambda: logged('Holiday', 2), 5, 'Holiday: AT received and flooded on')
    wait_for(lambda: logged('Welsh', 1), 5, 'Welsh: AT received')
    for name in ('Goloman', 'Holiday', 'Welsh'):
        for l in entries(herd5, name):
            stamp_of(l)
    # Peer connections and hellos are logged at the receiving end.
    welsh = herd5.log_bytes('Welsh')
    assert b'HERD Holiday' in welsh


def test_control_bytes_are_escaped_in_the_log(herd5):
    """A client's NUL, ESC, DEL and stray CR reach the log escaped: after them the log is still text
    that grep reads, and no escape sequence reaches an operator's terminal."""
    cid = unique_id('ctl')
    nasty = b'BOGUS ' + cid + b' \x00nul \x1b[2J\x1b]0;owned\x07 \x7fdel \rcr \x01\x1f end'
    with Client(herd5.port('Hands')) as c:
        c.send(nasty + b'\n')
        assert c.read_line() == b'? ' + nasty + b'\n'
    want = (b'BOGUS ' + cid + b' \\x00nul \\x1b[2J\\x1b]0;owned\\x07 \\x7fdel \\rcr \\x01\\x1f end')
    wait_for(lambda: want in herd5.log_bytes('Hands'), 5, 'the escaped line in Hands.log')
    log = herd5.log_bytes('Hands')
    bad = sorted({b for b in log if (b < 0x20 and b != 0x0a) or b == 0x7f})
    assert not bad, 'raw control bytes in the log: %r' % bad
    # Received and answered: both entries escaped the same way.
    assert log.count(want) >= 2
