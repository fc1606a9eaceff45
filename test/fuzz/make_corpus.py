#!/usr/bin/python3
"""Writes the seed corpora of the fuzz harnesses into test/fuzz/corpus/<harness>/ (committed; run again
after changing the seeds here). Every seed is made here from nothing: no GeoNames data is copied, the
gazetteer seeds are a handful of invented places in the cities.pbf layout of PLACES.md."""

import gzip
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, 'tools'))
import cities_pbf  # noqa: E402
from cities_pbf import field_bytes, field_varint, record, varint, zigzag  # noqa: E402

LINES = [
    b'IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997',
    b'IAMAT k +90.0-180.0 0',
    b'IAMAT \xf0\x9f\xa5\x9d +0.0+0.0 999999999999999999.999999999999',
    b'WHATSAT kiwi.cs.ucla.edu 10 5',
    b'WHATSAT kiwi.cs.ucla.edu 50.000 20',
    b'WHATSAT x 0.1 01',
    b'AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997',
    b'AT Hands -12.000000001 a -1.5+2.5 5 seen=Goloman,Hands,Holiday',
    b'HERD Goloman',
    b'  \t\f\v ',
    b'',
    b'IAMAT kiwi +34-118 1',
    b'WHATSAT kiwi 51 21',
    b'AT a +1.0 b +1.0+1.0 1',
]


def city(gid, name, country, admin1, pop, dlng, dlat):
    return cities_pbf.city(gid, name, dlng, dlat, country=country, admin1=admin1, population=pop)


def gazetteer_seeds():
    one = city(1, b'Alpha', b'AA', b'01', 1000, -11824368, 3405223)
    two = one + city(2, b'Beta', b'AA', b'02', 5000, 1000, -2000)
    poles = city(3, b'North', b'NP', b'', 0, 0, 9000000) + city(4, b'South', b'SP', b'', 1, 18000000, -18000000)
    extra = field_bytes(5, b'PPL') + field_varint(12, 7)
    body = field_varint(1, zigzag(5)) + field_bytes(2, b'Gamma') + extra + field_varint(10, 0) + field_varint(11, 0)
    with_unknown = record(body)
    # The review's crafted file: a delta of -2^63 after a negative longitude (a regression seed).
    overflow = city(6, b'West', b'WW', b'', 0, -17000000, 0)
    body = field_varint(1, zigzag(7)) + varint(10 << 3) + b'\xff' * 9 + b'\x01' + field_varint(11, 1)
    overflow += record(body)
    return {'one.pbf': one, 'two.pbf': two, 'poles.pbf': poles, 'unknown-fields.pbf': with_unknown,
            'overflow-delta.pbf': overflow}


def http_seeds():
    """Responses as an upstream sends them; the first byte of each seed is the split point."""
    body = b'{"status": "OK", "results": []}'
    gz = gzip.compress(body, mtime=0)
    return {
        'length': b'\x10HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s'
                  % (len(body), body),
        'chunked': b'\x20HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n',
        'gzip': b'\x05HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s' % (len(gz), gz),
        'close': b'\x00HTTP/1.0 503 Service Unavailable\r\nConnection: close\r\n\r\nbusy',
        'interim': b'\x30HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n',
        'pipelined': b'\x07HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n',
    }


def json_seeds():
    """Upstream bodies; the first byte picks the HTTP status, the second the WHATSAT bound."""
    with open(os.path.join(REPO, 'test', 'fixtures', 'google-nearbysearch-example.json'), 'rb') as f:
        legacy = f.read()
    new = (b'{"places": [{"id": "abc", "displayName": {"text": "Caf\xc3\xa9", "languageCode": "fr"},'
           b' "location": {"latitude": 34.07, "longitude": -118.44}, "types": ["cafe"],'
           b' "formattedAddress": "1 Main St", "rating": 4.5, "userRatingCount": 10}]}')
    return {
        'legacy-ok': b'\x00\x04' + legacy,
        'legacy-denied': b'\x00\x01{"status": "REQUEST_DENIED", "error_message": "bad\\nkey", "results": []}',
        'new-ok': b'\x01\x13' + new,
        'new-error': b'\x09\x02{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}',
        'not-json': b'\x0a\x00<html>\n\n</html>',
        # Found by this harness: rapidjson's full-precision parse computed clz(0) for a zero with a
        # large exponent (a regression seed).
        'zero-exponent': b'760e77',
        # And for a zero with 25 fractional digits, then bytes that are not JSON (CI found it); for
        # an exponent that ran on once a first fix had rewritten the zero before it; and for a digit
        # after 330 fractional zeros, which read rapidjson's table of powers out of bounds.
        'zero-fraction': b'4.0.' + b'0' * 25 + b'F..',
        'zero-run-on': b'7\n\n0e0e0067',
        'tiny-digit': b'\x00\x00[0.' + b'0' * 330 + b'5e-30]',
    }


def json_check_seeds():
    """WHATSAT reply bodies as herd-load checks them, and the corners of the grammar."""
    with open(os.path.join(REPO, 'test', 'fixtures', 'google-nearbysearch-example.json'), 'rb') as f:
        legacy = f.read()
    return {
        'reply': legacy,
        'escapes': b'{"res\\u0075lts": [{"a": "\\ud83d\\ude00\\n\\"\\/"}, -0.5e+3, true, null],'
                   b' "status": "O\\u004b", "status": 1}',
        'nested': b'{"results": [[[{"results": []}]], {}], "x": {"status": "no"}, "status": "ZERO_RESULTS"}',
        'numbers': b'[0, -0, 1.5, 2e10, 3E-2, 123456789012345678901234567890]',
        'not-object': b'  "text"  ',
    }


def http_request_seeds():
    """Admin requests; the first byte is the cut point, the second the limits (high bit: small ones)."""
    return {
        'healthz': b'\x05\x00GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n',
        'pipelined': b'\x20\x00GET /metrics HTTP/1.1\r\nAuthorization: Bearer s3cret \t\r\n\r\n'
                     b'HEAD /v1/clients/kiwi%2Ecs?token=x&token=y HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'
                     b'GET /v1/dashboard?a=1&token=t HTTP/1.1\r\nConnection: close\r\n\r\n',
        'body': b'\x10\x00GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello',
        'chunked': b'\x10\x00GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
        'post': b'\x03\x00POST /metrics HTTP/1.1\r\n\r\n',
        'http2': b'\x03\x00GET / HTTP/2.0\r\n\r\n',
        'small-limits': b'\x09\x83GET /' + b'a' * 40 + b' HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n',
        # A finding (llhttp 8.1 ended the head at CR and any byte, taking that byte along): a regression seed.
        'cr-end': b'\x07\x00GET / HTTP/1.1\n\rXa\r :\n  b\r\nContent-Length: 0\r\n\r\n',
        'folded': b'\x07\x00GET / HTTP/1.1\r\nX: a\r\n  b\r\nContent-Length: 0\r\n\r\n',
        # Findings (a Transfer-Encoding accepted: not chunked last, with an Upgrade; empty): regression seeds.
        'te-upgrade': b'\x07\x00GET / HTTP/1.1\nTransfer-Encoding:chunkedc\r\nConnection:Upgrade\r\nUpgrade:b\r\n\n',
        'te-empty': b'\x10\x00GET / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\nc',
        # A finding (a header field without a name accepted): a regression seed.
        'name-empty': b'\x10\x00GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n',
    }


SYNC_LINES = [
    b'SYNC 5d41c0e7a9b2f301 8c3e0f6b9d2a4417:2048 00aa:18446744073709551615',
    b'SYNC-FROM 8c3e0f6b9d2a4417 1977',
    b'SYNC-FROM - 0',
    b'SYNC-FROM 5d41c0e7a9b2f301 7 ALL',
    b'BULK 71',
    b'AT Holiday +0.000123456 c7.load +34.0+118.0 1700000000.5 seen=Holiday,Welsh,Wilkes',
    b'MARK 2048',
    b'MARK 18446744073709551616',
    b'  SYNC\tr1 a:1 b:2 c:3 d:4 e:5 f:6 g:7 h:8 i:9',
    b'SYNC-FROM 8c3e0f6b9d2a4417 0100 all',
    b'MARK 000',
]


def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82f63b78 if crc & 1 else crc >> 1
    return crc ^ 0xffffffff


def entry(kind, seq, mask, line, spare=b'\0\0\0'):
    """One backlog entry (herd/flood_log.h): u32 size, u8 kind, 3 spare, u64 seq, u64 mask, line."""
    return struct.pack('<IB3sQQ', 24 + len(line), kind, spare, seq, mask) + line


def frame(kind, seq, mask, line, spare=b'\0\0\0'):
    """One frame of a data directory's file (herd/record_file.h): u32 length, u32 CRC-32C, entry."""
    e = entry(kind, seq, mask, line, spare)
    return struct.pack('<II', len(e), crc32c(e)) + e


AT1 = b'AT Hands +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997 seen=Hands,Holiday'
AT2 = b'AT Goloman -1.500000000 kiwi.cs.ucla.edu +34.1-118.4 1520023935.0'
AT3 = b'AT Welsh +0.100000000 other +0.0+0.0 7'


def record_log(first, run=b'run0000000000001', server=b'Goloman', links=b'Hands,Holiday', entries=None):
    body = frame(10, 0, 0, b'herd-log 1 ' + server + b' ' + run + b' ' + str(first).encode() + b' ' + links)
    for i, (kind, line) in enumerate(entries or []):
        body += frame(kind, first + i, 3 if kind == 1 else 0, line)
    return body


def snapshot(log_start, history=b'-', run=b'run0000000000001', records=(AT1, AT3), progress=(b'Hands runH 12',)):
    body = frame(10, 0, 0, b'herd-snapshot 1 Goloman ' + run + b' ' + str(log_start).encode() + b' ' + history)
    for r in records:
        body += frame(1, 0, 0, r)
    for p in progress:
        body += frame(2, 0, 0, p)
    return body + frame(11, 0, 0, str(len(records)).encode())


def record_file_seeds():
    """Files of a data directory; the first byte: bit 0 asks the harness to make the checksums right."""
    log = record_log(5, entries=[(1, AT1), (2, b'Hands runH 40'), (1, AT2)])
    return {
        'log': b'\x00' + log,
        'torn-tail': b'\x00' + log + frame(1, 8, 1, AT3)[:-7],
        'damaged-middle': b'\x00' + log[:40] + b'X' + log[41:],
        'snapshot': b'\x00' + snapshot(9),
        'fix-checksums': b'\x01' + entry(1, 1, 1, AT1)[:0] + struct.pack('<II', 24 + 4, 0) + entry(2, 7, 0, b'x y 1'[:4]),
        'spare-bytes': b'\x00' + frame(1, 3, 0xffffffffffffffff, AT3, spare=b'\x01\x02\x03'),
    }


def recovery_seeds():
    """Data directories for fuzz_recovery: a flag byte, then the files, each after a '====' line."""
    sep = b'\n====\n'
    log5 = record_log(5, entries=[(1, AT1), (2, b'Hands runH 40'), (1, AT2)])
    log8 = record_log(8, run=b'run0000000000002', entries=[(1, AT3)])
    return {
        # flags: bit 0 a snapshot comes first, bits 1-2 how many record logs follow, bit 3 fix checksums,
        # bits 4-5 the backlog's size (64 << 2k bytes)
        'one-log': bytes([0b00110010]) + sep + log5,
        'snapshot-and-logs': bytes([0b00110101]) + sep + snapshot(5, b'runold:3') + sep + log5 + sep + log8,
        'torn-tail': bytes([0b00000100]) + sep + log5 + sep + log8[:-5],
        'damage-not-last': bytes([0b00000100]) + sep + log5[:-3] + sep + log8,
        'gap': bytes([0b00010100]) + sep + log5 + sep + record_log(20, entries=[(1, AT3), (2, b'Holiday runY 3')]),
        'header-only': bytes([0b00000010]) + sep + record_log(1),
        'torn-header': bytes([0b00000010]) + sep + record_log(1)[:20],
        'bad-snapshot': bytes([0b00000001]) + sep + snapshot(3)[:-1],
        'other-server': bytes([0b00000010]) + sep + record_log(1, server=b'Hands', entries=[(1, AT1)]),
        'fix-checksums': bytes([0b00001011]) + sep + snapshot(2, b'r1:1') + sep + record_log(2, entries=[(1, AT2)]),
    }


def write(harness, name, data):
    d = os.path.join(HERE, 'corpus', harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def catch_up_seeds():
    """Scripts of fuzz_catch_up: a flags byte (1: a restarted server, 2: a backlog kept for a data
    directory), then steps: 0 <n-1> <n bytes from Hands>, 3 <n-1> <n bytes Holiday answers>,
    4 <client> <time> (an IAMAT), 5 (pump), 6 / 14 (reconnect to Holiday / from Hands), 7 (a loop turn)."""
    def from_hands(b):
        return bytes([0, len(b) - 1]) + b

    def answer(b):
        return bytes([3, len(b) - 1]) + b

    def iamat(who, when):
        return bytes([4, who, when])

    def record(client, sec, seen=b''):
        return (b'AT Hands +0.000000001 ' + client + b' +34.068930-118.445127 15200000' + sec + b'.5' + seen +
                b'\n')

    return {
        'full-transfer': b'\x00' + iamat(1, 5) + iamat(2, 6) + from_hands(record(b'c3', b'00', b' seen=Hands')) +
                         from_hands(record(b'c4', b'01', b' seen=Hands,Holiday')) + answer(b'SYNC-FROM - 0\n') +
                         iamat(3, 9) + from_hands(record(b'c5', b'02')) + b'\x05\x00',
        'replay': b'\x02' + iamat(1, 5) + iamat(2, 6) + iamat(1, 7) + from_hands(record(b'c3', b'00')) +
                  answer(b'SYNC-FROM goloman2 1\n') + iamat(3, 9) + b'\x05\x00',
        'restarted': b'\x01' + from_hands(b'SYNC hands1\nBULK 2\n' + record(b'c3', b'00') + b'SYNC x\nMARK 7\n') +
                     answer(b'SYNC-FROM goloman1 3 ALL\n') + b'\x0e\x00' +
                     from_hands(b'SYNC hands2 hands1:7\nMARK 3\n') + b'\x06\x00' + answer(b'SYNC-FROM goloman2 0\n'),
    }


def main():
    for i, line in enumerate(LINES):
        write('fuzz_command', 'line-%02d' % i, line)
    write('fuzz_lines', 'pipelined', b'\x10\x0b' + b'\n'.join(LINES) + b'\n')
    write('fuzz_lines', 'crlf-at-limit', b'\x07\x08' + b'12345678\r\nabcdefgh\r')
    write('fuzz_lines', 'long', b'\x03\x05' + b'x' * 40 + b'\nshort\n')
    write('fuzz_peer_record', 'flood', b'\n'.join(l for l in LINES if l.startswith(b'AT')) +
          b'\nAT Hands +1.000000000 kiwi.cs.ucla.edu +1.0+1.0 1520023934.918963997 seen=A,B\n')
    for i, line in enumerate(l for l in LINES if l.startswith(b'AT')):
        write('fuzz_packed_record', 'record-%02d' % i, line)
    write('fuzz_packed_record', 'raw-run', b'AT S +0.5 id +1.0x+2.0\t1 ' + bytes(range(0, 40)))
    write('fuzz_peer_record', 'tie', b'AT A +0.000000001 k +1.0+1.0 5\nAT B +0.000000001 k +1.0+1.0 5\n'
          b'AT A +0.000000001 k +1.0+1.0 5.000000000 seen=' + b','.join(b'S%d' % i for i in range(40)) + b'\n')
    with open(os.path.join(REPO, 'config.yaml'), 'rb') as f:
        write('fuzz_config', 'default.yaml', f.read())
    write('fuzz_config', 'limits.yaml', b'threads: 2\nservers:\n  A: { port: 1, peer_port: 2 }\n'
          b'  B: { host: ::1, port: 3, peer_port: 4 }\nlinks: [[A, B]]\n'
          b'limits: { max_line: 100, max_connections: 5 }\npeer_backoff: { initial_ms: 1, max_ms: 2 }\n')
    write('fuzz_config', 'bad.yaml', b'servers: [1, 2]\nlinks: {a: b}\n')
    for name, data in gazetteer_seeds().items():
        write('fuzz_gazetteer', name, data)
    for name, data in http_seeds().items():
        write('fuzz_http_response', name, data)
    for name, data in json_seeds().items():
        write('fuzz_upstream_json', name, data)
    for name, data in http_request_seeds().items():
        write('fuzz_http_request', name, data)
    write('fuzz_sync_line', 'exchange', b'\n'.join(SYNC_LINES) + b'\n')
    write('fuzz_sync_line', 'resume', b'MARK 5\nSYNC runB runA:10 runC:3\nMARK 7\nMARK 6\nSYNC runD\nMARK 2\n'
          b'SYNC-FROM runA 12\nSYNC-FROM runA 9\nSYNC-FROM runB 99\nSYNC-FROM runX 1\n')
    for name, data in {
            'query': b'/v1/dashboard?a&x=1&to%6Ben=a%2Bb%26c&token=second&y=2',
            'bad-escape': b'/v1/dashboard?token=%zz&token=%4',
            'bearer': b'bEaReR   s3cret \t',
            'client-id': b'kiwi%2Ecs \xf0\x9f\xa5\x9d \xed\xa0\x80 \xc0\xaf \xf4\x90\x80\x80 "\\\x01\x7f',
    }.items():
        write('fuzz_admin_text', name, data)
    for name, data in record_file_seeds().items():
        write('fuzz_record_file', name, data)
    for name, data in recovery_seeds().items():
        write('fuzz_recovery', name, data)
    for name, data in json_check_seeds().items():
        write('fuzz_json_check', name, data)
    for name, data in catch_up_seeds().items():
        write('fuzz_catch_up', name, data)


if __name__ == '__main__':
    main()
