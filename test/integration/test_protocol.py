"""SPEC.md "Lines and fields", "IAMAT", "WHATSAT" and "Invalid input", over the wire, against the
Goloman server of the shared five-server herd. Replies are compared byte for byte where SPEC fixes
them; time differences are checked against a range measured around the request in integer ns."""

import time

import pytest

from herdlib import (Client, NS, check_at_line, check_whatsat_reply, fmt_time, iamat, invalid,
                     request, unique_id, whatsat)

SERVER = 'Goloman'
UCLA = b'+34.068930-118.445127'
KIWI_TIME = b'1520023934.918963997'


@pytest.fixture(scope='module')
def port(herd5):
    return herd5.port(SERVER)


@pytest.fixture(scope='module')
def known(port):
    """A client Goloman knows, for WHATSATs that are invalid only because of their numbers."""
    cid = unique_id('known')
    reply = iamat(port, cid, UCLA, KIWI_TIME)
    check_at_line(reply, SERVER, cid, UCLA, KIWI_TIME)
    return cid, reply


def timed_iamat(port, cid, location, client_time):
    """Sends an IAMAT; returns (reply line, earliest possible diff ns, latest possible diff ns)."""
    ct = parse_time_ns(client_time)
    with Client(port) as c:
        before = time.time_ns()
        c.send(b'IAMAT %s %s %s\n' % (cid, location, client_time))
        line = c.read_line()
        after = time.time_ns()
    return line[:-1], before - ct, after - ct


def parse_time_ns(text):
    sec, _, frac = text.partition(b'.')
    return int(sec) * NS + int((frac[:9] or b'0').ljust(9, b'0'))


# ------------------------------------------------------------------------------------------------
# IAMAT

MALFORMED_IAMAT = [
    # the location
    b'IAMAT kiwi 34.068930-118.445127 1520023934.918963997',       # no sign on the latitude
    b'IAMAT kiwi +34.068930118.445127 1520023934.918963997',       # no sign on the longitude
    b'IAMAT kiwi +34.068930 1520023934.918963997',                 # a single number
    b'IAMAT kiwi -118.445127 1520023934.918963997',                # a single number
    b'IAMAT kiwi +34-118 1520023934.918963997',                    # no decimal points
    b'IAMAT kiwi +34.0-118 1520023934.918963997',                  # no decimal point (longitude)
    b'IAMAT kiwi +34-118.0 1520023934.918963997',                  # no decimal point (latitude)
    b'IAMAT kiwi +34.-118.0 1520023934.918963997',                 # no digit after the point
    b'IAMAT kiwi +.5-118.0 1520023934.918963997',                  # no digit before the point
    b'IAMAT kiwi +34.0,-118.0 1520023934.918963997',               # a comma
    b'IAMAT kiwi +34.0+-118.0 1520023934.918963997',               # two signs
    b'IAMAT kiwi ++34.0-118.0 1520023934.918963997',               # two signs
    b'IAMAT kiwi +34.0a-118.0 1520023934.918963997',               # letters
    b'IAMAT kiwi +abc.def-ghi.jkl 1520023934.918963997',           # letters
    b'IAMAT kiwi +34.0-118.0x 1520023934.918963997',               # trailing letter
    b'IAMAT kiwi N34.0W118.0 1520023934.918963997',                # letters for signs
    b'IAMAT kiwi +90.000001+000.000000 1520023934.918963997',      # latitude over 90
    b'IAMAT kiwi -91.0+000.0 1520023934.918963997',                # latitude under -90
    b'IAMAT kiwi +00.0+180.000001 1520023934.918963997',           # longitude over 180
    b'IAMAT kiwi +00.0-181.0 1520023934.918963997',                # longitude under -180
    b'IAMAT kiwi +34.0-118.0+1.0 1520023934.918963997',            # three numbers
    b'IAMAT kiwi +3e1-118.0 1520023934.918963997',                 # exponent in the location
    # the time
    b'IAMAT kiwi +34.068930-118.445127 abc',                       # alphabetic
    b'IAMAT kiwi +34.068930-118.445127 1520023934.9189x',          # a letter in the fraction
    b'IAMAT kiwi +34.068930-118.445127 -1520023934.918963997',     # negative
    b'IAMAT kiwi +34.068930-118.445127 -0.5',                      # negative
    b'IAMAT kiwi +34.068930-118.445127 +1520023934.918963997',     # explicit plus sign
    b'IAMAT kiwi +34.068930-118.445127 nan',
    b'IAMAT kiwi +34.068930-118.445127 NaN',
    b'IAMAT kiwi +34.068930-118.445127 inf',
    b'IAMAT kiwi +34.068930-118.445127 infinity',
    b'IAMAT kiwi +34.068930-118.445127 1.520023934e9',             # exponent
    b'IAMAT kiwi +34.068930-118.445127 1520023934E0',              # exponent
    b'IAMAT kiwi +34.068930-118.445127 1e9',                       # exponent
    b'IAMAT kiwi +34.068930-118.445127 0x5A9A1F1E',                # hex
    b'IAMAT kiwi +34.068930-118.445127 1520023934.',               # no fraction digits
    b'IAMAT kiwi +34.068930-118.445127 .918963997',                # no integer digits
    b'IAMAT kiwi +34.068930-118.445127 1520023934.9.1',            # two points
    b'IAMAT kiwi +34.068930-118.445127 1,5',
    # the field count
    b'IAMAT kiwi +34.068930-118.445127 1520023934.918963997 extra',
    b'IAMAT kiwi +34.068930-118.445127',
    b'IAMAT +34.068930-118.445127 1520023934.918963997',
    b'IAMAT kiwi',
    b'IAMAT',
    # the verb
    b'iamat kiwi +34.068930-118.445127 1520023934.918963997',
    b'IAMATX kiwi +34.068930-118.445127 1520023934.918963997',
    b'HELLO',
    b'WHATSIT kiwi 10 5',
]


@pytest.mark.parametrize('line', MALFORMED_IAMAT, ids=lambda l: l.decode())
def test_malformed_iamat_is_echoed(port, line):
    assert request(port, line + b'\n') == invalid(line)


@pytest.mark.parametrize('location,client_time', [
    (b'+90.0+180.0', b'1520023934.918963997'),
    (b'-90.0-180.0', b'1520023934.918963997'),
    (b'+90.000000-180.000000', b'1520023934'),                  # no fraction
    (b'+00.0-000.0', b'0'),                                     # time zero
    (b'-0.0+0.0', b'0.000000001'),
    (b'+34.068930-118.445127', b'0001520023934.5'),             # leading zeros, one digit
    (b'+034.5-0118.25', b'1520023934.918963997'),               # leading zeros in degrees
    (b'+34.068930-118.445127', b'1520023934.918963997123'),     # > 9 digits: first 9 count
])
def test_boundary_iamats_are_accepted(port, location, client_time):
    cid = unique_id('edge')
    line, lo, hi = timed_iamat(port, cid, location, client_time)
    diff = check_at_line(line, SERVER, cid, location, client_time)
    assert lo <= diff <= hi, (line, lo, hi)


def test_diff_is_exact_for_several_client_times(port):
    now = time.time_ns()
    times = [fmt_time(now - 5 * NS - 123456789),       # 5.12 s in the past
             fmt_time(now - 1),                        # 1 ns ago
             b'%d' % (now // NS - 3),                  # whole seconds
             b'%d.5' % (now // NS - 2),                # one fraction digit
             KIWI_TIME,                                # years ago
             b'1']
    for t in times:
        cid = unique_id('diff')
        line, lo, hi = timed_iamat(port, cid, UCLA, t)
        diff = check_at_line(line, SERVER, cid, UCLA, t)
        assert lo <= diff <= hi, (line, lo, hi)
        assert line.split(b' ')[2].startswith(b'+'), line


@pytest.mark.parametrize("ahead_ns", [500_000_000, 100 * NS + 1, 86000 * NS])  # within max_clock_skew
def test_future_client_time_gives_negative_diff(port, ahead_ns):
    cid = unique_id('future')
    t = fmt_time(time.time_ns() + ahead_ns)
    line, lo, hi = timed_iamat(port, cid, UCLA, t)
    diff = check_at_line(line, SERVER, cid, UCLA, t)
    text = line.split(b' ')[2]
    assert text.startswith(b'-') and not text.startswith(b'-+'), line
    assert b'+-' not in line
    if ahead_ns < NS:
        assert text.startswith(b'-0.'), line
    assert lo <= diff <= hi, (line, lo, hi)


def test_diff_has_exactly_nine_fraction_digits(port):
    for t in (b'1520023934', b'1520023934.9', b'1520023934.918963997', b'1520023934.9189639971'):
        cid = unique_id('nine')
        line = iamat(port, cid, UCLA, t)
        diff_text = line.split(b' ')[2]
        whole, _, frac = diff_text.partition(b'.')
        assert len(frac) == 9 and frac.isdigit(), line
        assert whole[1:].isdigit(), line


# ------------------------------------------------------------------------------------------------
# WHATSAT

def malformed_whatsats(cid):
    return [
        b'WHATSAT %s' % cid,
        b'WHATSAT %s 10' % cid,
        b'WHATSAT 10 5',
        b'WHATSAT',
        b'WHATSAT %s 10 5 extra' % cid,
        b'WHATSAT %s 1000 5' % cid,           # radius over 50
        b'WHATSAT %s 51 5' % cid,
        b'WHATSAT %s 50.000001 5' % cid,
        b'WHATSAT %s 10 1000' % cid,          # bound over 20
        b'WHATSAT %s 10 21' % cid,
        b'WHATSAT %s -10 5' % cid,            # negatives
        b'WHATSAT %s 10 -5' % cid,
        b'WHATSAT %s -0.5 5' % cid,
        b'WHATSAT %s +10 5' % cid,
        b'WHATSAT %s ten 5' % cid,            # letters
        b'WHATSAT %s 10 five' % cid,
        b'WHATSAT %s 10km 5' % cid,
        b'WHATSAT %s 10 5x' % cid,
        b'WHATSAT %s 0 5' % cid,              # zero
        b'WHATSAT %s 0.0 5' % cid,
        b'WHATSAT %s 000 5' % cid,
        b'WHATSAT %s 10 0' % cid,
        b'WHATSAT %s 10 2.5' % cid,           # not an integer
        b'WHATSAT %s 10 5.0' % cid,
        b'WHATSAT %s 1e1 5' % cid,            # exponent
        b'WHATSAT %s nan 5' % cid,
        b'WHATSAT %s inf 5' % cid,
        b'WHATSAT %s 10. 5' % cid,
        b'WHATSAT %s 10 99999999999999999999999' % cid,
        b'whatsat %s 10 5' % cid,
        b'WHATSAT %s 10 5' % unique_id('nobody'),   # unknown client
        b'WHATSAT %s 10 5' % cid.upper(),           # IDs are case-sensitive bytes
    ]


def test_malformed_whatsats_are_echoed(port, known):
    cid, _ = known
    for line in malformed_whatsats(cid):
        assert request(port, line + b'\n') == invalid(line), line


@pytest.mark.parametrize('radius,bound', [(b'50', b'20'), (b'50.0', b'1'), (b'0.001', b'3'),
                                          (b'1.5', b'20'), (b'10', b'1'),
                                          # positive, if below the smallest double: still valid
                                          pytest.param(b'0.' + b'0' * 400 + b'1', b'5', id='underflow-5')])
def test_boundary_whatsats_are_accepted(port, known, radius, bound):
    cid, at_line = known
    with Client(port) as c:
        c.send(b'WHATSAT %s %s %s\n' % (cid, radius, bound))
        reply = c.read_whatsat()
    check_whatsat_reply(reply, at_line, int(bound), float(radius))


# ------------------------------------------------------------------------------------------------
# Client IDs are bytes

@pytest.mark.parametrize('raw', [
    'caf\u00e9'.encode(),                      # NFC
    'cafe\u0301'.encode(),                     # NFD
    '\U0001F411\U0001F3D4\uFE0F'.encode(),      # emoji
    '\U0001F468\u200D\U0001F469\u200D\U0001F467'.encode(),  # ZWJ sequence
    b'\xff\xfe\x80bad',                        # invalid UTF-8
    b'\xc3\x28',                               # invalid 2-byte sequence
    b'\xed\xa0\x80',                           # a UTF-16 surrogate in UTF-8
    b'nul\x00in\x00id',                        # NUL bytes
    b'nbsp\xc2\xa0inside',                     # U+00A0 is not SPEC whitespace
    b'ctl\x1c\x1d\x1e\x1f\x85',                # nor are these (Python's str.split would say so)
    b'back\\slash"quote',
], ids=lambda b: b.hex())
def test_client_ids_are_echoed_byte_for_byte(port, raw):
    cid = raw + b'-' + unique_id('id')
    reply = iamat(port, cid, UCLA, KIWI_TIME)
    check_at_line(reply, SERVER, cid, UCLA, KIWI_TIME)
    got = whatsat(port, cid, 5, 1)
    check_whatsat_reply(got, reply, 1, 5)


def test_nfc_and_nfd_are_different_clients(port):
    tag = unique_id('norm')
    nfc = 'caf\u00e9'.encode() + tag
    nfd = 'cafe\u0301'.encode() + tag
    r1 = iamat(port, nfc, b'+10.0+010.0', b'1000')
    r2 = iamat(port, nfd, b'+20.0+020.0', b'1000')
    check_at_line(r1, SERVER, nfc, b'+10.0+010.0', b'1000')
    check_at_line(r2, SERVER, nfd, b'+20.0+020.0', b'1000')
    assert whatsat(port, nfc, 1, 1).split(b'\n', 1)[0] == r1
    assert whatsat(port, nfd, 1, 1).split(b'\n', 1)[0] == r2


# ------------------------------------------------------------------------------------------------
# Line endings and whitespace

def test_crlf_endings(port, known):
    cid = unique_id('crlf')
    with Client(port) as c:
        c.send(b'IAMAT %s %s %s\r\n' % (cid, UCLA, KIWI_TIME))
        at_line = c.read_line()[:-1]
        check_at_line(at_line, SERVER, cid, UCLA, KIWI_TIME)
        c.send(b'WHATSAT %s 10 2\r\n' % cid)
        check_whatsat_reply(c.read_whatsat(), at_line, 2, 10)
        c.send(b'BOGUS line here\r\n')
        assert c.read_line() == b'? BOGUS line here\n'
        c.send(b'WHATSAT %s 10 0\r\n' % cid)
        assert c.read_line() == b'? WHATSAT %s 10 0\n' % cid
        c.send(b'IAMAT %s %s nan\r\n' % (cid, UCLA))
        assert c.read_line() == b'? IAMAT %s %s nan\n' % (cid, UCLA)


def test_other_whitespace_separates_fields(port):
    cid = unique_id('ws')
    t = b'1520023934.5'
    for sep in (b'\t', b'\v', b'\f', b'  ', b' \t\v\f ', b'\r', b'\t\r\t'):
        with Client(port) as c:
            c.send(b'%sIAMAT%s%s%s%s%s%s%s\n' % (sep, sep, cid, sep, UCLA, sep, t, sep))
            line = c.read_line()[:-1]
            check_at_line(line, SERVER, cid, UCLA, t)
            c.send(b'\f WHATSAT%s%s%s10%s3 \t\n' % (sep, cid, sep, sep))
            check_whatsat_reply(c.read_whatsat(), line, 3, 10)


def test_invalid_lines_are_echoed_with_their_whitespace(port):
    for line in (b'  BOGUS\tx \v', b'\tIAMAT  a  b', b'\x0bWHATSAT\x0c', b'X\r\rY',
                 b' \t?', b'IAMAT\xa0kiwi +34.0-118.0 1', b'X\r', b'\rY'):
        if not line.endswith(b'\r'):  # `X\r` + `\n` would be `X` with a CRLF ending
            assert request(port, line + b'\n') == invalid(line), line
        assert request(port, line + b'\r\n') == invalid(line), line


def test_whitespace_only_lines_get_no_reply(port):
    with Client(port) as c:
        c.send(b'\n \n\t\n\r\n\v\f\n \t\r\v\f  \r\n' + b' ' * 1000 + b'\nPING\n')
        assert c.read_line() == b'? PING\n'
        c.expect_silence(0.3)
    # And at end of input with a half-close.
    with Client(port) as c:
        c.send(b'PING\n \t ')
        c.half_close()
        assert c.read_to_eof() == b'? PING\n'


# ------------------------------------------------------------------------------------------------
# Pipelining, splitting, ordering, half-close

def test_pipelined_iamat_and_whatsat_in_one_write(port):
    n = 100
    ids = [unique_id('pipe') for _ in range(n)]
    locs = [b'+%02d.%06d-%03d.%06d' % (30 + i % 10, i, 100 + i % 20, i * 7) for i in range(n)]
    times = [b'1520023934.%09d' % i for i in range(n)]
    data = b''
    for i in range(n):
        data += b'IAMAT %s %s %s\n' % (ids[i], locs[i], times[i])
        data += b'WHATSAT %s %d %d\n' % (ids[i], 1 + i % 50, 1 + i % 20)
        if i % 10 == 0:
            data += b'BOGUS %d\n' % i
    with Client(port, timeout=20) as c:
        c.send(data)
        for i in range(n):
            line = c.read_line()[:-1]
            check_at_line(line, SERVER, ids[i], locs[i], times[i])
            check_whatsat_reply(c.read_whatsat(), line, 1 + i % 20, 1 + i % 50)
            if i % 10 == 0:
                assert c.read_line() == b'? BOGUS %d\n' % i
        c.expect_silence(0.2)


def test_command_split_at_every_byte(port):
    cid = unique_id('split')
    line = b'IAMAT %s %s %s\r\n' % (cid, UCLA, KIWI_TIME)
    first = iamat(port, cid, UCLA, KIWI_TIME)
    check_at_line(first, SERVER, cid, UCLA, KIWI_TIME)
    # The same report again is not newer: every split must get the stored line back, exactly.
    for k in range(1, len(line)):
        with Client(port) as c:
            c.send(line[:k])
            time.sleep(0.003)
            c.send(line[k:])
            assert c.read_line() == first + b'\n', k
    wline = b'WHATSAT %s 10 2\r\n' % cid
    expect = whatsat(port, cid, 10, 2)
    check_whatsat_reply(expect, first, 2, 10)
    for k in range(1, len(wline)):
        with Client(port) as c:
            c.send(wline[:k])
            time.sleep(0.003)
            c.send(wline[k:])
            assert c.read_whatsat() == expect, k


def test_command_sent_one_byte_at_a_time(port):
    cid = unique_id('bytes')
    data = b'IAMAT %s %s %s\nBAD\nWHATSAT %s 5 1\n' % (cid, UCLA, KIWI_TIME, cid)
    with Client(port) as c:
        for i in range(len(data)):
            c.send(data[i:i + 1])
            time.sleep(0.001)
        line = c.read_line()[:-1]
        check_at_line(line, SERVER, cid, UCLA, KIWI_TIME)
        assert c.read_line() == b'? BAD\n'
        check_whatsat_reply(c.read_whatsat(), line, 1, 5)


def test_whatsat_then_iamat_answered_in_order(port, known):
    kid, kline = known
    cid = unique_id('order')
    first = iamat(port, cid, UCLA, b'1000.5')
    with Client(port) as c:
        # WHATSAT about the stored record, then a newer IAMAT for the same client, then another
        # client's IAMAT, an invalid line and a WHATSAT: all in one write.
        c.send(b'WHATSAT %s 10 3\nIAMAT %s +10.0+010.0 2000\nIAMAT %s %s %s\nNOPE\nWHATSAT %s 1 1\n'
               % (cid, cid, kid, UCLA, KIWI_TIME, cid))
        check_whatsat_reply(c.read_whatsat(), first, 3, 10)
        newer = c.read_line()[:-1]
        check_at_line(newer, SERVER, cid, b'+10.0+010.0', b'2000')
        assert c.read_line() == kline + b'\n'   # same time as stored: the stored line comes back
        assert c.read_line() == b'? NOPE\n'
        check_whatsat_reply(c.read_whatsat(), newer, 1, 1)


@pytest.mark.parametrize('kind', ['iamat', 'whatsat', 'invalid', 'pipelined', 'crlf-less-cr'])
def test_unterminated_last_line_answered_after_half_close(port, known, kind):
    kid, kline = known
    cid = unique_id('eof')
    with Client(port) as c:
        if kind == 'iamat':
            c.send(b'IAMAT %s %s %s' % (cid, UCLA, KIWI_TIME))
            c.half_close()
            out = c.read_to_eof()
            assert out.endswith(b'\n') and out.count(b'\n') == 1, out
            check_at_line(out[:-1], SERVER, cid, UCLA, KIWI_TIME)
        elif kind == 'whatsat':
            c.send(b'WHATSAT %s 10 4' % kid)
            c.half_close()
            check_whatsat_reply(c.read_to_eof(), kline, 4, 10)
        elif kind == 'invalid':
            c.send(b'WHATSAT %s 10 0' % kid)
            c.half_close()
            assert c.read_to_eof() == b'? WHATSAT %s 10 0\n' % kid
        elif kind == 'pipelined':
            c.send(b'IAMAT %s %s %s\nWHATSAT %s 2 2' % (cid, UCLA, KIWI_TIME, cid))
            c.half_close()
            out = c.read_to_eof()
            line, rest = out.split(b'\n', 1)
            check_at_line(line, SERVER, cid, UCLA, KIWI_TIME)
            check_whatsat_reply(rest, line, 2, 2)
        else:
            c.send(b'WHATSAT %s 10 4 \t' % kid)
            c.half_close()
            check_whatsat_reply(c.read_to_eof(), kline, 4, 10)


def test_half_closed_client_with_nothing_pending_is_closed(port):
    with Client(port) as c:
        c.half_close()
        assert c.read_to_eof() == b''


# ------------------------------------------------------------------------------------------------
# AT lines are for peers

def test_at_lines_on_the_client_port_are_rejected(port):
    cid = unique_id('at')
    for line in (b'AT Hands +0.263873386 %s +34.068930-118.445127 1520023934.918963997' % cid,
                 b'AT Hands -0.000000001 %s +34.0-118.0 1520023934' % cid,
                 b'AT Goloman +0.263873386 %s +34.068930-118.445127 9999999999.5 extra' % cid,
                 b'HERD Hands'):
        assert request(port, line + b'\n') == invalid(line)
    # And nothing was stored.
    assert whatsat(port, cid, 10, 5) == invalid(b'WHATSAT %s 10 5' % cid)
