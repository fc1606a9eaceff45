"""Tests of the asyncio reference herd.  Run: /usr/bin/python3 -m pytest -q tools/reference

The herds started here use a small synthetic gazetteer written by the tests (so the expected places
are known exactly); the real GeoNames file is checked too when build/data/cities.pbf exists.
Every wait is bounded and every process started is killed at the end.
"""

import json
import math
import os
import re
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, 'tools'))
sys.path.insert(0, os.path.join(REPO, 'test', 'integration'))
import cities_pbf  # noqa: E402
import herd_ref  # noqa: E402
from herdlib import free_ports  # noqa: E402

PYTHON = '/usr/bin/python3'
HERD_REF = os.path.join(HERE, 'herd_ref.py')
CERTS = os.path.join(REPO, 'tools', 'certs.py')
FIXTURE = '/work/shared/fixtures/google-nearbysearch-example.json'
REAL_GAZETTEER = os.path.join(REPO, 'build', 'data', 'cities.pbf')
NAMES = ['Goloman', 'Hands', 'Holiday', 'Welsh', 'Wilkes']
LINKS = [['Goloman', 'Hands'], ['Goloman', 'Holiday'], ['Goloman', 'Wilkes'],
         ['Hands', 'Wilkes'], ['Holiday', 'Welsh'], ['Holiday', 'Wilkes']]
IO_TIMEOUT = 5.0
NS = 10**9

# ------------------------------------------------------------------------------------------------
# A synthetic gazetteer (cities.pbf format) around UCLA.

CENTER = (34.068930, -118.445127)


def write_pbf(path, cities):
    """cities: (geonameid, name bytes, population, lat, lng)."""
    out = bytearray()
    plat = plng = 0
    for gid, name, pop, lat, lng in cities:
        ilat, ilng = round(lat * 1e5), round(lng * 1e5)
        out += cities_pbf.city(gid, name, ilng - plng, ilat - plat, country=b'US', feature=b'PPL',
                               population=pop or None)
        plat, plng = ilat, ilng
    with open(path, 'wb') as f:
        f.write(out)


def synthetic_cities():
    cities = []
    lat0, lng0 = CENTER
    for k in range(30):
        # a spiral out to ~40 km, populations with deliberate ties
        ang = k * 0.7
        dist_deg = 0.012 * (k + 1)
        lat = round(lat0 + dist_deg * math.sin(ang), 5)
        lng = round(lng0 + dist_deg * math.cos(ang), 5)
        pop = [5000, 5000, 120000, 0, 700][k % 5] + (k // 5) * 10
        cities.append((1000 + k, b'Town %d' % k, pop, lat, lng))
    cities.append((2000, 'Caf\u00e9 <b>"Q"</b> & \\ / \t'.encode(), 10**7, round(lat0 + 0.001, 5), round(lng0, 5)))
    cities.append((2001, b'Far Away', 10**8, 40.0, -100.0))
    return cities


def haversine(lat1, lng1, lat2, lng2):
    r = 6371008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2) - math.radians(lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def expected_names(lat, lng, radius_km, bound):
    rows = []
    for gid, name, pop, clat, clng in synthetic_cities():
        d = haversine(lat, lng, clat, clng)
        if d <= radius_km * 1000:
            rows.append((-pop, d, gid, name))
    rows.sort()
    return [r[3].decode() for r in rows[:bound]]


# ------------------------------------------------------------------------------------------------
# Herd processes.

def make_certs(out, names, ca_name='reference test CA', hosts=()):
    """A CA and one certificate per name (CN and SAN DNS = the name, plus `hosts`) in `out`, by
    tools/certs.py."""
    subprocess.run([PYTHON, CERTS, '--out', out, '--ca-name', ca_name, '--names'] + list(names) +
                   (['--hosts'] + list(hosts) if hosts else []),
                   check=True, capture_output=True, timeout=60)


class Herd:
    def __init__(self, tmp, names, links, seed_style=False, gazetteer=None, start=None,
                 peer_tls=None, places=None, env=None):
        """peer_tls: a folder of certificates (ca.pem, NAME.pem, NAME.key) relative to tmp;
        places: more keys of the places section (dict, replacing provider: offline);
        env: the servers' environment."""
        self.tmp = tmp
        ports = free_ports(2 * len(names))
        self.servers = {n: (ports[2 * i], ports[2 * i + 1]) for i, n in enumerate(names)}
        self.log_dir = os.path.join(tmp, 'logs')
        self.gazetteer = gazetteer
        self.config = os.path.join(tmp, 'config.yaml')
        with open(self.config, 'w') as f:
            f.write('threads: 0\nlog_dir: %s\nplaces:\n  gazetteer: %s\n'
                    % (self.log_dir, gazetteer))
            for k, v in (places or {'provider': 'offline'}).items():
                f.write('  %s: %s\n' % (k, json.dumps(v)))
            if peer_tls is not None:
                f.write('peer_tls:\n  ca_file: %s/ca.pem\n  cert_file: %s/{name}.pem\n'
                        '  key_file: %s/{name}.key\n' % (peer_tls, peer_tls, peer_tls))
            f.write('servers:\n')
            for n, (p, pp) in self.servers.items():
                f.write('  %s: { host: 127.0.0.1, port: %d, peer_port: %d }\n' % (n, p, pp))
            f.write('links:\n')
            for a, b in links:
                f.write('  - [%s, %s]\n' % (a, b))
        self.seed_style = seed_style
        self.env = env
        self.procs = {}
        for n in (names if start is None else start):
            self.start(n)
        self.wait_ready()

    def start(self, name):
        cmd = [PYTHON, HERD_REF, name, '--config', self.config]
        if self.seed_style:
            cmd.append('--seed-style')
        self.procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            env=self.env)

    def wait_ready(self, timeout=30.0):
        sel = selectors.DefaultSelector()
        pending = {}
        for n, p in self.procs.items():
            if not getattr(p, 'ready', False):
                sel.register(p.stdout, selectors.EVENT_READ, n)
                pending[n] = b''
        deadline = time.monotonic() + timeout
        try:
            while pending:
                left = deadline - time.monotonic()
                assert left > 0, 'servers not ready: %s' % sorted(pending)
                for key, _ in sel.select(left):
                    n = key.data
                    chunk = os.read(key.fileobj.fileno(), 1024)
                    assert chunk, '%s exited: %s' % (n, self.procs[n].stderr.read1(4096))
                    pending[n] += chunk
                    if b'\n' in pending[n]:
                        assert pending[n].startswith(b'ready ' + n.encode()), pending[n]
                        self.procs[n].ready = True
                        sel.unregister(key.fileobj)
                        del pending[n]
        finally:
            sel.close()

    def port(self, name):
        return self.servers[name][0]

    def peer_port(self, name):
        return self.servers[name][1]

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()

    def kill(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def exchange(port, data, timeout=IO_TIMEOUT, half_close=True, chunks=None):
    """Send data (or the list `chunks`, one send each), half-close, read until EOF."""
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as s:
        if chunks is None:
            s.sendall(data)
        else:
            for c in chunks:
                s.sendall(c)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                c = s.recv(1 << 16)
            except socket.timeout:
                break
            if not c:
                break
            out += c
        return bytes(out)


def wait_for(fn, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            return v
        time.sleep(interval)


def whatsat_line(port, cid, radius=b'10', bound=b'5'):
    r = exchange(port, b'WHATSAT %s %s %s\n' % (cid, radius, bound))
    return r


def at_line_of(reply):
    return reply.split(b'\n', 1)[0]


@pytest.fixture(scope='module')
def gazetteer(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('gaz') / 'cities.pbf')
    write_pbf(path, synthetic_cities())
    return path


@pytest.fixture(scope='module')
def herd(tmp_path_factory, gazetteer):
    h = None
    try:
        h = Herd(str(tmp_path_factory.mktemp('herd')), NAMES, LINKS, gazetteer=gazetteer)
        assert herd_ready(h), 'herd links did not come up'
        yield h
    finally:
        if h is not None:
            h.stop()
            h.kill()


def herd_ready(h):
    """Every server's log shows each of its outbound links up, and a probe flooded from Goloman
    reaches every server. A record reaching everyone is not enough on its own: it can travel on the
    links that are up, and the reference drops what it owes a link that is still down (its dials
    back off), so a test's first record could be lost on a link that came up after the probe."""
    def links_up():
        for name in NAMES:
            log = read_log(h, name)
            mine = [b if a == name else a for a, b in LINKS if name in (a, b)]
            if not all(b'link %s: up' % n.encode() in log for n in mine):
                return False
        return True
    if not wait_for(links_up, timeout=20):
        return False
    t = 1000
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        t += 1
        line = at_line_of(exchange(h.port('Goloman'), b'IAMAT warmup +0.0+0.0 %d\n' % t))
        time.sleep(0.2)
        if all(at_line_of(whatsat_line(h.port(n), b'warmup')) == line for n in NAMES):
            return True
    return False


def propagated(h, cid, line, names):
    return wait_for(lambda: all(at_line_of(whatsat_line(h.port(n), cid)) == line
                                for n in names))


# ------------------------------------------------------------------------------------------------
# Pure functions.

def test_config_takes_a_bracketed_ipv6_host(tmp_path):
    # The C++ server reads host: "[::1]" as ::1; a mixed herd needs the reference to read it alike.
    path = tmp_path / 'c.yaml'
    path.write_text('servers:\n  A: { host: "[::1]", port: 1, peer_port: 2 }\n'
                    '  B: { host: "::1", port: 3, peer_port: 4 }\nlinks: [[A, B]]\n')
    cfg = herd_ref.load_config(str(path))
    assert cfg['servers']['A']['host'] == '::1'
    assert cfg['servers']['B']['host'] == '::1'


def test_renderer_reproduces_google_fixture():
    with open(FIXTURE, 'rb') as f:
        raw = f.read()
    value = json.loads(raw, parse_int=int)
    assert herd_ref.render_google_json(value) == raw[:-1]


def test_renderer_rules():
    r = herd_ref.render_google_json
    assert r({}) == b'{}'
    assert r([]) == b'[]'
    assert r({'b': 1, 'a': [1.0, 2.5, -0.1]}) == b'{\n   "a" : [ 1, 2.5, -0.1 ],\n   "b" : 1\n}'
    assert r('<\x01\x1f"\\\b\f\n\r\t/&\u00e9') == \
        b'"\\u003c\\u0001\\u001f\\"\\\\\\b\\f\\n\\r\\t/&\xc3\xa9"'
    assert r(b'>\xff') == b'"\\u003e\xff"'
    assert r([1e20, 0.1 + 0.2, 1 / 3, -0.0, 2.0, True, None]) == \
        b'[ 1e+20, 0.3, 0.3333333333333333, -0, 2, true, null ]'
    # one-line thresholds: 4 + 2(n-1) + total length < 74, and n*3 < 74
    assert r(['x' * 66]) == b'[ "' + b'x' * 66 + b'" ]'                  # 4 + 68 = 72
    assert r(['x' * 68]) == b'[\n   "' + b'x' * 68 + b'"\n]'             # 4 + 70 = 74
    assert r([1] * 23).count(b'\n') == 0                                    # 71 < 74
    assert r([1] * 24).count(b'\n') == 25                                   # 74 >= 74
    assert r([[], {}]) == b'[ [], {} ]'
    assert r([[1]]) == b'[\n   [ 1 ]\n]'
    assert r({'k': [{'a': 1}]}) == b'{\n   "k" : [\n      {\n         "a" : 1\n      }\n   ]\n}'


def test_time_and_location_parsing():
    pt, pl = herd_ref.parse_time, herd_ref.parse_location
    assert pt(b'1520023934.918963997') == 1520023934918963997
    assert pt(b'1.1234567899') == 1 * NS + 123456789
    assert pt(b'0') == 0 and pt(b'007.5') == 7 * NS + 500000000
    assert pt(b'999999999999999999') is not None and pt(b'1000000000000000000') is None
    assert pt(b'0' * 5000 + b'1') == NS
    for bad in (b'.5', b'5.', b'-1', b'+1', b'1e5', b'nan', b'inf', b'1.2.3', b'', b'\xd9\xa1'):
        assert pt(bad) is None, bad
    assert pl(b'+34.068930-118.445127') == (34.06893, -118.445127)
    assert pl(b'+90.000-180.0') == (90.0, -180.0)
    for bad in (b'+90.0000001+0.0', b'+0.0+180.01', b'34.0-118.0', b'+34-118', b'+34.0,-118.0',
                b'+34.0+-118.0', b'+34.0', b'+3a.0+1.0', b'+1.0+2.0+3.0'):
        assert pl(bad) is None, bad
    fd = herd_ref.format_diff
    assert fd(0) == b'+0.000000000' and fd(-1) == b'-0.000000001'
    assert fd(1234 * NS + 5) == b'+1234.000000005' and fd(-3 * NS) == b'-3.000000000'


def test_pbf_decoder_on_synthetic_file(gazetteer):
    got = herd_ref.read_cities_pbf(gazetteer)
    want = synthetic_cities()
    assert [(g, n, p) for g, n, p, _, _ in got] == [(g, n, p) for g, n, p, _, _ in want]
    for (_, _, _, lat, lng), (_, _, _, wlat, wlng) in zip(got, want):
        assert abs(lat - wlat) < 1e-9 and abs(lng - wlng) < 1e-9


@pytest.mark.skipif(not os.path.exists(REAL_GAZETTEER), reason='run make build/data/cities.pbf')
def test_real_gazetteer():
    places = herd_ref.OfflinePlaces(REAL_GAZETTEER)
    assert len(places.cities) == 135233
    alb = [c for c in places.cities if c[0] == 5454711]
    assert alb == [(5454711, b'Albuquerque', 559121, 35.08449, -106.65114)]
    doc = places.response(35.08449, -106.65114, 10000.0, 3)
    v = json.loads(doc)
    assert v['status'] == 'OK' and v['results'][0]['name'] == 'Albuquerque'
    assert v['results'][0]['place_id'] == 'geonames:5454711'
    assert herd_ref.render_google_json(v) == doc


# ------------------------------------------------------------------------------------------------
# One herd of five.

def test_iamat_reply_and_exact_diff(herd):
    port = herd.port('Hands')
    for frac in (b'.918963997', b'', b'.5', b'.1234567899999'):
        sec = time.time_ns() // NS - 100
        t = b'%d%s' % (sec, frac)
        client_ns = herd_ref.parse_time(t)
        before = time.time_ns()
        r = exchange(port, b'IAMAT diff%s +34.068930-118.445127 %s\n' % (frac, t))
        after = time.time_ns()
        m = re.fullmatch(rb'AT Hands ([+-])([0-9]+)\.([0-9]{9}) diff(\S*) '
                         rb'\+34\.068930-118\.445127 (\S+)\n', r)
        assert m, r
        assert m.group(4) == frac and m.group(5) == t
        diff = (int(m.group(2)) * NS + int(m.group(3))) * (1 if m.group(1) == b'+' else -1)
        assert m.group(1) == b'+'
        assert before - client_ns <= diff <= after - client_ns
    # a client clock in the future: negative difference
    t = b'%d.000000001' % (time.time_ns() // NS + 1000)
    r = exchange(port, b'IAMAT future +1.0+2.0 %s\n' % t)
    assert re.fullmatch(rb'AT Hands -99[0-9]\.[0-9]{9} future \+1\.0\+2\.0 ' + t + rb'\n', r), r


def test_whatsat_at_every_server(herd):
    t = b'%d.123456789' % (time.time_ns() // NS)
    reply = exchange(herd.port('Goloman'), b'IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 %s\n'
                     % t)
    line = at_line_of(reply)
    assert line.startswith(b'AT Goloman ')
    assert propagated(herd, b'kiwi.cs.ucla.edu', line, NAMES)
    for name in NAMES:
        for radius, bound in ((b'10', 5), (b'50', 20), (b'0.5', 3), (b'3.25', 1)):
            r = exchange(herd.port(name), b'WHATSAT kiwi.cs.ucla.edu %s %d\n' % (radius, bound))
            assert r.startswith(line + b'\n{'), r[:200]
            assert r.endswith(b'}\n\n')
            body = r[len(line) + 1:-2]
            assert b'\n\n' not in body
            v = json.loads(body)
            assert len(v['results']) <= bound
            want = expected_names(*CENTER, float(radius), bound)
            assert [x['name'] for x in v['results']] == want
            assert v['status'] == ('OK' if want else 'ZERO_RESULTS')
            assert herd_ref.render_google_json(v) == body
    # escapes and raw UTF-8 in a name
    r = exchange(herd.port('Welsh'), b'WHATSAT kiwi.cs.ucla.edu 1 1\n')
    assert b'"name" : "Caf\xc3\xa9 \\u003cb\\u003e\\"Q\\"\\u003c/b\\u003e & \\\\ / \\t"' in r


def test_whatsat_zero_results(herd):
    line = at_line_of(exchange(herd.port('Welsh'), b'IAMAT ocean +0.0-150.0 1000\n'))
    r = exchange(herd.port('Welsh'), b'WHATSAT ocean 50 20\n')
    assert r == line + (b'\n{\n   "html_attributions" : [],\n   "results" : [],\n'
                        b'   "status" : "ZERO_RESULTS"\n}\n\n')


def test_stale_and_equal_iamat_return_stored_line(herd):
    g, w = herd.port('Goloman'), herd.port('Welsh')
    newer = at_line_of(exchange(g, b'IAMAT stale +10.0+10.0 2000.5\n'))
    assert propagated(herd, b'stale', newer, NAMES)
    # older and equal timestamps, at the origin and elsewhere: the stored line, no flood
    assert exchange(g, b'IAMAT stale +11.0+11.0 2000.4\n') == newer + b'\n'
    assert exchange(g, b'IAMAT stale +11.0+11.0 2000.500000000\n') == newer + b'\n'
    assert exchange(w, b'IAMAT stale +12.0+12.0 1999\n') == newer + b'\n'
    time.sleep(0.3)
    for n in NAMES:
        assert at_line_of(whatsat_line(herd.port(n), b'stale')) == newer
    # a newer one wins everywhere
    newest = at_line_of(exchange(w, b'IAMAT stale +13.0+13.0 2000.500000001\n'))
    assert newest.startswith(b'AT Welsh ')
    assert propagated(herd, b'stale', newest, NAMES)


INVALID = [
    b'HELLO world', b'IAMAT a +1.0+1.0', b'IAMAT a +1.0+1.0 5 extra', b'iamat a +1.0+1.0 5',
    b'IAMAT a 34.0-118.0 5', b'IAMAT a +34-118 5', b'IAMAT a +34.0,-118.0 5',
    b'IAMAT a +34.0+-118.0 5', b'IAMAT a +34.0 5', b'IAMAT a +90.5+0.0 5', b'IAMAT a +0.0-180.1 5',
    b'IAMAT a +1.0+1.0 .5', b'IAMAT a +1.0+1.0 5.', b'IAMAT a +1.0+1.0 -5', b'IAMAT a +1.0+1.0 1e5',
    b'IAMAT a +1.0+1.0 nan', b'IAMAT a +1.0+1.0 inf', b'IAMAT a +1.0+1.0 1000000000000000000',
    b'WHATSAT nobody-knows-me 10 5', b'WHATSAT known 0 5', b'WHATSAT known 0.0 5',
    b'WHATSAT known 50.01 5', b'WHATSAT known -1 5', b'WHATSAT known 10 0', b'WHATSAT known 10 21',
    b'WHATSAT known 10 5.0', b'WHATSAT known 1e1 5', b'WHATSAT known 10', b'WHATSAT known 10 5 5',
    b'AT Goloman +0.1 known +1.0+1.0 5', b'HERD Goloman', b'  \tWHATSAT  known  10 x  ',
    b'\xff\xfe garbage \x00',
]


def test_invalid_lines(herd):
    port = herd.port('Holiday')
    known = at_line_of(exchange(port, b'IAMAT known +1.0+1.0 5\n'))
    data = b''.join(l + b'\n' for l in INVALID)
    assert exchange(port, data) == b''.join(b'? ' + l + b'\n' for l in INVALID)
    # CRLF endings are not echoed; whitespace-only lines are ignored
    r = exchange(port, b'bad one\r\n\r\n \t\x0b\x0c \n\nWHATSAT known 50 20\r\nbad\ttwo \r\n')
    assert r.startswith(b'? bad one\n' + known + b'\n{')
    assert r.endswith(b'}\n\n? bad\ttwo \n')
    # accepted edge values
    assert exchange(port, b'WHATSAT known 50 20\nWHATSAT known 50.000 020\n'
                          b'WHATSAT known 0.001 1\n').count(b'}\n\n') == 3
    assert exchange(port, b'IAMAT edge -90.0+180.0 0\n').startswith(b'AT Holiday +')


def test_pipelining_and_split_packets(herd):
    port = herd.port('Wilkes')
    cmds = []
    for i in range(200):
        cmds.append(b'IAMAT pipe%d +1.5-2.5 %d.5\n' % (i, 3000 + i))
        cmds.append(b'WHATSAT pipe%d 5 1\n' % i if i % 10 == 0 else b'nonsense %d\n' % i)
    data = b''.join(cmds)
    r = exchange(port, data)
    pos = 0
    for i in range(200):
        exp = b'AT Wilkes '
        assert r[pos:pos + len(exp)] == exp, (i, r[pos:pos + 80])
        nl = r.index(b'\n', pos)
        at = r[pos:nl]
        assert at.endswith(b' pipe%d +1.5-2.5 %d.5' % (i, 3000 + i))
        pos = nl + 1
        if i % 10 == 0:
            assert r[pos:pos + len(at) + 1] == at + b'\n'
            pos = r.index(b'}\n\n', pos) + 3
        else:
            exp = b'? nonsense %d\n' % i
            assert r[pos:pos + len(exp)] == exp
            pos += len(exp)
    assert pos == len(r)
    # the same bytes one at a time (the final line unterminated: processed at EOF)
    small = b'IAMAT split +1.0+1.0 7\r\nWHATSAT split 1 1\nbad\nWHATSAT split 1 1'
    r = exchange(port, None, chunks=[small[i:i + 1] for i in range(len(small))])
    at = at_line_of(r)
    assert r.count(at + b'\n{') == 2 and b'}\n\n? bad\n' + at in r and r.endswith(b'}\n\n')


def test_unterminated_last_line_and_ids(herd):
    port = herd.port('Goloman')
    assert exchange(port, b'IAMAT eof +1.0+1.0 5').startswith(b'AT Goloman ')
    for cid in (b'\xff\xfe\x80', '\U0001f95d'.encode(), b'a\x00b', b'x' * 1000):
        line = at_line_of(exchange(port, b'IAMAT %s +2.0+2.0 9\n' % cid))
        assert line.split(b' ')[3] == cid
        assert propagated(herd, cid, line, NAMES)


def test_overlong_line(herd):
    port = herd.port('Hands')
    with socket.create_connection(('127.0.0.1', port), timeout=IO_TIMEOUT) as s:
        s.sendall(b'IAMAT ok +1.0+1.0 1\n' + b'A' * 70000 + b'\nIAMAT after +1.0+1.0 1\n')
        out = bytearray()
        deadline = time.monotonic() + IO_TIMEOUT
        while time.monotonic() < deadline:
            try:
                c = s.recv(1 << 16)
            except (socket.timeout, ConnectionResetError):
                break
            if not c:
                break
            out += c
    lines = bytes(out).split(b'\n')
    assert lines[0].startswith(b'AT Hands ')
    assert lines[1] == b'? ' + b'A' * 65536
    assert lines[2:] == [b'']
    # exactly the limit is fine
    r = exchange(port, b'Z' * 65536 + b'\n')
    assert r == b'? ' + b'Z' * 65536 + b'\n'


def test_peer_port_tiebreak_and_silence(herd):
    """Feed AT lines straight to a peer port, as a C++ neighbour would; the peer port never
    writes, ties go to the greater record bytes, extra fields are ignored."""
    lo = b'AT Xa +0.000000001 tie +1.0+1.0 4000.25'
    hi = b'AT Xb +0.000000001 tie +1.0+1.0 4000.25'
    with socket.create_connection(('127.0.0.1', herd.peer_port('Welsh')), timeout=IO_TIMEOUT) as s:
        s.sendall(b'HERD Tester\n' + hi + b' extra fields\n' + lo + b'\n')
        assert propagated(herd, b'tie', hi, NAMES)
        s.sendall(lo + b'\nAT broken\nnonsense\n')
        time.sleep(0.3)
        s.settimeout(0.2)
        with pytest.raises(socket.timeout):
            s.recv(10)                                  # nothing written to us
    with socket.create_connection(('127.0.0.1', herd.peer_port('Hands')), timeout=IO_TIMEOUT) as s:
        s.sendall(b'HERD Tester\n' + lo + b'\n')         # the smaller record loses everywhere
    time.sleep(0.3)
    for n in NAMES:
        assert at_line_of(whatsat_line(herd.port(n), b'tie')) == hi


def test_admission_limits_like_the_cpp_server(herd):
    """limits.max_id_bytes (default 1024) and limits.max_clock_skew (default 86400 s): refused with
    `? ` from a client, ignored from a peer, as the C++ server does (herd/admission.h)."""
    port = herd.port('Wilkes')
    ahead = int(time.time()) + 2 * 86400
    for line in (b'IAMAT ' + b'i' * 1025 + b' +1.0+1.0 5', b'IAMAT future +1.0+1.0 %d' % ahead):
        assert exchange(port, line + b'\n') == b'? ' + line + b'\n'
    ok = b'IAMAT ' + b'i' * 1024 + b' +1.0+1.0 5'
    assert exchange(port, ok + b'\n').startswith(b'AT Wilkes ')
    soon = b'IAMAT soon +1.0+1.0 %d' % (int(time.time()) + 3600)
    assert exchange(port, soon + b'\n').startswith(b'AT Wilkes ')
    with socket.create_connection(('127.0.0.1', herd.peer_port('Welsh')), timeout=IO_TIMEOUT) as s:
        s.sendall(b'HERD Tester\nAT Xa +0.000000001 peerfuture +1.0+1.0 %d\n'
                  b'AT Xa +0.000000001 peernow +1.0+1.0 5\n' % ahead)
        assert propagated(herd, b'peernow', b'AT Xa +0.000000001 peernow +1.0+1.0 5', NAMES)
    assert whatsat_line(herd.port('Welsh'), b'peerfuture').startswith(b'? ')


def test_client_port_rejects_peer_lines(herd):
    r = exchange(herd.port('Hands'), b'HERD Goloman\nAT Goloman +0.1 c +1.0+1.0 5\n')
    assert r == b'? HERD Goloman\n? AT Goloman +0.1 c +1.0+1.0 5\n'


def test_logs(herd):
    def logged():
        with open(os.path.join(herd.log_dir, 'Goloman.log'), 'rb') as f:
            text = f.read()
        return b'kiwi.cs.ucla.edu' in text and b'open client#' in text and b'link Hands' in text
    assert wait_for(logged, timeout=5)
    with open(os.path.join(herd.log_dir, 'Hands.log'), 'rb') as f:
        assert b'peer links are neither encrypted nor authenticated' in f.read()


# ------------------------------------------------------------------------------------------------
# Other herds.

def test_seed_style_flooding(tmp_path, gazetteer):
    h = None
    try:
        h = Herd(str(tmp_path), NAMES, LINKS, seed_style=True, gazetteer=gazetteer)
        line = at_line_of(exchange(h.port('Welsh'), b'IAMAT seed +34.068930-118.445127 77.7\n'))
        assert propagated(h, b'seed', line, NAMES)
        r = exchange(h.port('Hands'), b'WHATSAT seed 10 5\n')
        assert r.startswith(line + b'\n{') and r.endswith(b'}\n\n')
        newer = at_line_of(exchange(h.port('Hands'), b'IAMAT seed +1.0+1.0 77.8\n'))
        assert propagated(h, b'seed', newer, NAMES)
        h.stop()
        with open(os.path.join(h.log_dir, 'Holiday.log'), 'rb') as f:
            log = f.read()
        assert log.count(b'seed-link ') >= 2            # a connection per flooded message
        assert log.count(b'open peer-in#') >= 2
    finally:
        if h is not None:
            h.stop()
            h.kill()


def test_down_neighbour_never_stalls_and_reconnects(tmp_path, gazetteer):
    h = None
    try:
        h = Herd(str(tmp_path), ['A', 'B'], [['A', 'B']], gazetteer=gazetteer, start=['A'])
        t0 = time.monotonic()
        r = exchange(h.port('A'), b'IAMAT lonely +1.0+1.0 1\n')
        assert r.startswith(b'AT A ') and time.monotonic() - t0 < 1.0
        h.start('B')
        h.wait_ready()
        # dropped while B was down (no catch-up); later updates arrive once the link is up
        n = [1]

        def fresh():
            n[0] += 1
            line = at_line_of(exchange(h.port('A'), b'IAMAT lonely +1.0+1.0 %d\n' % n[0]))
            time.sleep(0.1)
            return at_line_of(whatsat_line(h.port('B'), b'lonely')) == line
        assert wait_for(fresh, timeout=15)
    finally:
        if h is not None:
            h.stop()
            h.kill()


def test_config_errors(tmp_path):
    def run(cfg_text, name='A', env=None):
        p = tmp_path / 'c.yaml'
        p.write_text(cfg_text)
        return subprocess.run([PYTHON, HERD_REF, name, '--config', str(p)],
                              capture_output=True, timeout=20, env=env)
    good = 'servers:\n  A: { port: 1, peer_port: 2 }\n  B: { port: 3, peer_port: 4 }\n'
    r = run(good, name='Nobody')
    assert r.returncode == 2 and b'Nobody' in r.stderr
    r = run(good + 'links:\n  - [A, C]\n')
    assert r.returncode == 2 and b"'C'" in r.stderr
    r = run('servers:\n  A: { port: 70000, peer_port: 2 }\n')
    assert r.returncode == 2 and b'port' in r.stderr
    r = run('servers:\n  A: { port: 5, peer_port: 5 }\n')
    assert r.returncode == 2 and b'already used' in r.stderr
    r = run('servers: [A, B\n')
    assert r.returncode == 2 and b'YAML' in r.stderr
    r = run('threads: 0\n')
    assert r.returncode == 2 and b'servers' in r.stderr
    r = run(good + 'places: { provider: bing }\n')
    assert r.returncode == 2 and b'places.provider' in r.stderr and b'bing' in r.stderr
    env = {k: v for k, v in os.environ.items() if k != 'NO_SUCH_KEY_VAR'}
    r = run(good + 'places: { provider: google, key_env: NO_SUCH_KEY_VAR }\n', env=env)
    assert r.returncode == 2 and b'NO_SUCH_KEY_VAR' in r.stderr and b'places.key_env' in r.stderr
    for bad in ('endpoint: ftp://x', 'timeout_ms: 0', 'max_inflight: -1', 'ca_file: [1]'):
        r = run(good + 'places: { provider: google-new, %s }\n' % bad,
                env=dict(env, GOOGLE_API_KEY='k'))
        assert r.returncode == 2 and b'places.' + bad.split(':')[0].encode() in r.stderr, bad
    r = run(good + 'places: { provider: google, ca_file: nope.pem }\n',
            env=dict(env, GOOGLE_API_KEY='k'))
    assert r.returncode == 2 and b'places.ca_file' in r.stderr and b'nope.pem' in r.stderr


# ------------------------------------------------------------------------------------------------
# Peer TLS.

GOLOMAN_NEIGHBOURS = ['Hands', 'Holiday', 'Wilkes']


@pytest.fixture(scope='module')
def tls_herd(tmp_path_factory, gazetteer):
    """The five-server herd with peer_tls; certificates in <tmp>/certs (relative paths in the
    config), plus Mallory (a name outside the herd) from the same CA and Hands from another CA."""
    tmp = str(tmp_path_factory.mktemp('tlsherd'))
    make_certs(os.path.join(tmp, 'certs'), NAMES + ['Mallory'])
    make_certs(os.path.join(tmp, 'evil'), ['Hands'], ca_name='another CA')
    h = None
    try:
        h = Herd(tmp, NAMES, LINKS, gazetteer=gazetteer, peer_tls='certs')
        h.certs = os.path.join(tmp, 'certs')
        h.evil = os.path.join(tmp, 'evil')
        assert herd_ready(h), 'TLS herd links did not come up'
        yield h
    finally:
        if h is not None:
            h.stop()
            h.kill()


def read_log(h, name):
    with open(os.path.join(h.log_dir, name + '.log'), 'rb') as f:
        return f.read()


def test_tls_herd_floods(tls_herd):
    h = tls_herd
    line = at_line_of(exchange(h.port('Welsh'), b'IAMAT tls-kiwi +34.068930-118.445127 5.5\n'))
    assert line.startswith(b'AT Welsh ')
    assert propagated(h, b'tls-kiwi', line, NAMES)
    r = exchange(h.port('Hands'), b'WHATSAT tls-kiwi 10 3\n')
    assert r.startswith(line + b'\n{') and r.endswith(b'}\n\n')

    def logged():
        g = read_log(h, 'Goloman')
        return all(b'link %s: up' % n.encode() in g and
                   b'client certificate for %s' % n.encode() in g for n in GOLOMAN_NEIGHBOURS)
    assert wait_for(logged, timeout=5)
    g = read_log(h, 'Goloman')
    assert re.search(rb'link Hands: up \S+ TLS TLSv1\.[23]', g)
    assert b'mutually authenticated TLS' in g and b'neither encrypted' not in g
    # on the wire: the peer port speaks TLS, and it wants a certificate from us
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(h.certs, 'ca.pem'))
    with socket.create_connection(('127.0.0.1', h.peer_port('Goloman')), timeout=IO_TIMEOUT) as s:
        with ctx.wrap_socket(s, server_hostname='Goloman') as t:
            assert t.version() in ('TLSv1.2', 'TLSv1.3')
            assert dict(x[0] for x in t.getpeercert()['subject'])['commonName'] == 'Goloman'


def tls_client(h, cert_dir, cert_name, server='Goloman', max_version=None):
    """A TLS connection to `server`'s peer port presenting cert_dir/cert_name (None: no
    certificate); the server is verified with the herd's CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(h.certs, 'ca.pem'))
    if max_version is not None:
        ctx.maximum_version = max_version
    if cert_name is not None:
        ctx.load_cert_chain(os.path.join(cert_dir, cert_name + '.pem'),
                            os.path.join(cert_dir, cert_name + '.key'))
    s = socket.create_connection(('127.0.0.1', h.peer_port(server)), timeout=IO_TIMEOUT)
    try:
        return ctx.wrap_socket(s, server_hostname=server)
    except (ssl.SSLError, OSError):
        s.close()
        raise


def closed_by_server(sock, timeout=IO_TIMEOUT):
    """True when the server closes the connection (EOF, reset or a TLS alert) within timeout;
    False when it is still open (an accepted peer connection is never written to)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(100) == b''
    except socket.timeout:
        return False
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True


def try_flood(h, cert_dir, cert_name, lines, server='Goloman', max_version=None):
    """Send `lines` on a TLS peer connection; True when the server closed it."""
    try:
        t = tls_client(h, cert_dir, cert_name, server, max_version)
    except (ssl.SSLError, ConnectionResetError):
        return True                                   # refused during the handshake
    try:
        try:
            t.sendall(lines)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return True
        return closed_by_server(t)
    finally:
        t.close()


def stored_nowhere(h, cid):
    return all(whatsat_line(h.port(n), cid) == b'? WHATSAT %s 10 5\n' % cid for n in NAMES)


def test_tls_refuses_strangers_and_liars(tls_herd):
    h = tls_herd
    at = b'AT Hands +0.000000001 %s +1.0+1.0 7777.5\n'
    before = read_log(h, 'Goloman').count(b'refused: ')
    # plaintext
    with socket.create_connection(('127.0.0.1', h.peer_port('Goloman')), timeout=IO_TIMEOUT) as s:
        s.sendall(b'HERD Hands\n' + at % b'tls-plain')
        assert closed_by_server(s)
    # no client certificate (TLS 1.2 and 1.3: in 1.3 the refusal comes after our first write)
    for v in (ssl.TLSVersion.TLSv1_2, None):
        assert try_flood(h, h.certs, None, b'HERD Hands\n' + at % b'tls-nocert', max_version=v)
    # a certificate for Hands from another CA
    assert try_flood(h, h.evil, 'Hands', b'HERD Hands\n' + at % b'tls-evil')
    # a good certificate for Hands, a hello naming another neighbour
    assert try_flood(h, h.certs, 'Hands', b'HERD Wilkes\n' + at % b'tls-liar')
    # a good certificate for a server that is not Goloman's neighbour, and for a stranger
    assert try_flood(h, h.certs, 'Welsh', b'HERD Welsh\n' + at % b'tls-welsh')
    assert try_flood(h, h.certs, 'Mallory', b'HERD Mallory\n' + at % b'tls-mallory')
    # a good certificate, records before the hello; a second hello with another name
    assert try_flood(h, h.certs, 'Hands', at % b'tls-early' + b'HERD Hands\n')
    assert try_flood(h, h.certs, 'Hands',
                     b'HERD Hands\nHERD Wilkes\n' + at % b'tls-second')
    time.sleep(0.3)
    for cid in (b'tls-plain', b'tls-nocert', b'tls-evil', b'tls-liar', b'tls-welsh',
                b'tls-mallory', b'tls-early', b'tls-second'):
        assert stored_nowhere(h, cid), cid

    def refusals_logged():
        g = read_log(h, 'Goloman')
        return g.count(b'refused: ') - before >= 10 and all(w in g for w in (
            b'TLS handshake failed', b'hello Wilkes: the client certificate is for Hands',
            b'hello Welsh: not a neighbour of Goloman', b'hello Mallory: not a neighbour',
            b'AT before the hello', b'second hello Wilkes after Hands'))
    assert wait_for(refusals_logged, timeout=5), read_log(h, 'Goloman')[-3000:]
    # the honest neighbour's certificate and hello: kept open and stored everywhere
    t = tls_client(h, h.certs, 'Hands')
    try:
        line = at % b'tls-honest'
        t.sendall(b'HERD Hands\n' + line)
        assert not closed_by_server(t, timeout=0.5)
        assert propagated(h, b'tls-honest', line[:-1], NAMES)
    finally:
        t.close()
    # and the herd's own links survived all of it
    fresh = at_line_of(exchange(h.port('Welsh'), b'IAMAT tls-after +2.0+2.0 8888\n'))
    assert propagated(h, b'tls-after', fresh, NAMES)


def test_tls_link_checks_the_neighbours_name(tmp_path, gazetteer):
    """A dials B's peer port, where something with a good certificate for another name listens:
    A refuses it (host name check) and sends it nothing."""
    certs = str(tmp_path / 'certs')
    make_certs(certs, ['A', 'B', 'Mallory'])
    h = None
    srv = socket.socket()
    try:
        h = Herd(str(tmp_path), ['A', 'B'], [['A', 'B']], gazetteer=gazetteer, start=[],
                 peer_tls='certs')
        h.certs = certs
        srv.bind(('127.0.0.1', h.peer_port('B')))      # before A starts: its first dial lands
        srv.listen(4)
        srv.settimeout(3 * IO_TIMEOUT)
        h.start('A')
        h.wait_ready()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(certs, 'Mallory.pem'), os.path.join(certs, 'Mallory.key'))
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(IO_TIMEOUT)
            got = b''
            try:
                with ctx.wrap_socket(conn, server_side=True) as t:
                    got = t.recv(100)
            except (ssl.SSLError, ConnectionResetError, socket.timeout):
                pass
            assert got == b''

        def refused():
            return re.search(rb'link B: connect to \S+ failed \([^)]*(Hostname mismatch|'
                             rb'certificate verify failed)', read_log(h, 'A'))
        assert wait_for(refused, timeout=5), read_log(h, 'A')
    finally:
        srv.close()
        if h is not None:
            h.stop()
            h.kill()


def test_tls_config_errors(tmp_path):
    certs = str(tmp_path / 'certs')
    make_certs(certs, ['A', 'B'])

    def run(tls_text, name='A'):
        p = tmp_path / 'c.yaml'
        p.write_text('servers:\n  A: { port: 1, peer_port: 2 }\n  B: { port: 3, peer_port: 4 }\n'
                     'links:\n  - [A, B]\n' + tls_text)
        return subprocess.run([PYTHON, HERD_REF, name, '--config', str(p)],
                              capture_output=True, timeout=30)
    r = run('peer_tls: { ca_file: certs/ca.pem, cert_file: "certs/{name}.pem" }\n')
    assert r.returncode == 2 and b'peer_tls.key_file' in r.stderr
    r = run('peer_tls: certs\n')
    assert r.returncode == 2 and b"'peer_tls' must be a mapping" in r.stderr
    r = run('peer_tls: { ca_file: certs/ca.pem, cert_file: "certs/{name}.pem", '
            'key_file: certs/nope.key }\n')
    assert r.returncode == 2 and b'peer_tls.key_file' in r.stderr and b'nope.key' in r.stderr
    r = run('peer_tls: { ca_file: certs/ca.pem, cert_file: certs/B.pem, key_file: certs/B.key }\n')
    assert r.returncode == 2 and b'is for B, not for this server A' in r.stderr
    r = run('peer_tls: { ca_file: certs/ca.pem, cert_file: "certs/{name}.pem", '
            'key_file: certs/B.key }\n')
    assert r.returncode == 2 and b'peer_tls.cert_file' in r.stderr
    r = run('peer_tls: { ca_file: certs/A.key, cert_file: "certs/{name}.pem", '
            'key_file: "certs/{name}.key" }\n')
    assert r.returncode == 2 and b'peer_tls.ca_file' in r.stderr


# ------------------------------------------------------------------------------------------------
# Google providers, against the places simulator (tools/places_sim) serving the test gazetteer.

API_KEY = 'ref-test-key-0123456789'


@pytest.fixture(scope='module')
def places_sim(tmp_path_factory, gazetteer):
    sys.path.insert(0, os.path.join(REPO, 'tools', 'places_sim'))
    from simctl import PlacesSim
    d = str(tmp_path_factory.mktemp('simcerts'))
    make_certs(d, ['places-sim'], hosts=['127.0.0.1'])
    sim = PlacesSim(cert=os.path.join(d, 'places-sim.pem'), key=os.path.join(d, 'places-sim.key'),
                    ca=os.path.join(d, 'ca.pem'), gazetteer=gazetteer,
                    log_path=os.path.join(d, 'sim.log'))
    try:
        yield sim
    finally:
        sim.stop()


def google_herd(tmp, sim, provider, timeout_ms=3000):
    return Herd(tmp, ['A', 'B'], [['A', 'B']], gazetteer='/nonexistent',
                places={'provider': provider, 'endpoint': sim.url, 'ca_file': sim.ca,
                        'key_env': 'REF_TEST_PLACES_KEY', 'timeout_ms': timeout_ms},
                env=dict(os.environ, REF_TEST_PLACES_KEY=API_KEY))


@pytest.fixture(scope='module', params=['google', 'google-new'])
def gherd(request, tmp_path_factory, places_sim):
    h = google_herd(str(tmp_path_factory.mktemp(request.param)), places_sim, request.param)
    h.provider = request.param
    h.sim = places_sim
    try:
        t = [1000]

        def flooded():                  # the link comes up with backoff: repeat until it carries
            t[0] += 1
            h.ucla = at_line_of(exchange(h.port('A'), b'IAMAT ucla +34.068930-118.445127 %d\n'
                                         % t[0]))
            time.sleep(0.1)
            return at_line_of(whatsat_line(h.port('B'), b'ucla')) == h.ucla
        assert wait_for(flooded, timeout=20)
        yield h
    finally:
        h.stop()
        h.kill()


@pytest.fixture(autouse=True)
def sim_reset(request):
    if 'gherd' in request.fixturenames:
        sim = request.getfixturevalue('gherd').sim
        sim.config()
        sim.reset_stats()
    yield


def whatsat_doc(h, port, radius, bound, cid=b'ucla'):
    r = exchange(port, b'WHATSAT %s %s %d\n' % (cid, radius, bound))
    line, _, body = r.partition(b'\n')
    assert r.endswith(b'}\n\n') and b'\n\n' not in body[:-2], r[:300]
    body = body[:-2]
    assert herd_ref.render_google_json(json.loads(body)) == body     # Google's legacy layout
    return line, body, json.loads(body)


def test_google_whatsat_answers(gherd, gazetteer):
    h = gherd
    offline = herd_ref.OfflinePlaces(gazetteer)
    for name in ('A', 'B'):
        for radius, bound in ((b'10', 5), (b'50', 20), (b'0.5', 3), (b'3.25', 1)):
            line, body, v = whatsat_doc(h, h.port(name), radius, bound)
            assert line == h.ucla
            want = expected_names(*CENTER, float(radius), bound)
            assert [x['name'] for x in v['results']] == want
            assert v['status'] == ('OK' if want else 'ZERO_RESULTS')
            if h.provider == 'google' and len(expected_names(*CENTER, float(radius), 99)) <= 20:
                # one page upstream (no next_page_token): the offline provider's answer exactly
                assert body == offline.response(*CENTER, float(radius) * 1000, bound)
            if h.provider == 'google-new' and want:
                x = v['results'][0]
                assert x['place_id'].startswith('geonames:') and x['vicinity'] == x['name']
                assert set(x) <= {'business_status', 'geometry', 'name', 'place_id', 'rating',
                                  'types', 'user_ratings_total', 'vicinity'}
                assert x['types'] == ['locality', 'political']
    if h.provider == 'google-new':
        v = whatsat_doc(h, h.port('A'), b'50', 20)[2]
        rated = [x for x in v['results'] if 'rating' in x]
        assert rated and all(x['business_status'] == 'OPERATIONAL' and
                             x['user_ratings_total'] >= 1 for x in rated)
        assert h.sim.stats()['last_request']['headers']['x-goog-fieldmask'].startswith('places.')
    st = h.sim.stats()
    assert st['last_key'] == API_KEY and st['requests']['legacy' if h.provider == 'google'
                                                       else 'new'] >= 8
    # keep-alive: every upstream request of a server rode on one connection per server
    assert st['tls_handshakes'] <= 2 and st['tcp_connections'] <= 2
    # every upstream request is logged, the key in no line
    for name in ('A', 'B'):
        assert wait_for(lambda: b'places ' in read_log(h, name), timeout=5)
        assert API_KEY.encode() not in read_log(h, name)


def test_google_layout_and_encoding_do_not_matter(gherd):
    h = gherd
    want = whatsat_doc(h, h.port('A'), b'10', 5)[1]
    for faults in ({'layout': 'compact'}, {'layout': 'indent4', 'ascii': True},
                   {'framing': 'chunked', 'chunk_bytes': 7}, {'gzip': False, 'framing': 'eof'},
                   {'slow_body_ms': 5, 'chunk_bytes': 300}):
        h.sim.config(**faults)
        body = whatsat_doc(h, h.port('A'), b'10', 5)[1]
        assert herd_ref.render_google_json(json.loads(body)) == body
        assert json.loads(body) == json.loads(want), faults


@pytest.mark.parametrize('status', ['REQUEST_DENIED', 'INVALID_REQUEST', 'ZERO_RESULTS',
                                    'OVER_DAILY_LIMIT'])
def test_google_statuses_passed_on(gherd, status):
    h = gherd
    h.sim.config(status=status)
    v = whatsat_doc(h, h.port('A'), b'10', 5)[2]
    legacy = 'OVER_QUERY_LIMIT' if status == 'OVER_DAILY_LIMIT' else status
    assert v['status'] == legacy and v['results'] == []
    if status != 'ZERO_RESULTS':
        assert v['error_message']
    if status == 'OVER_DAILY_LIMIT' and h.provider == 'google':
        assert 'daily' in v['error_message']
    # none of them is retried, except the New API's 429 (the daily quota looks the same there)
    n = h.sim.stats()['requests']['legacy' if h.provider == 'google' else 'new']
    assert n == (1 if h.provider == 'google' or status != 'OVER_DAILY_LIMIT' else n)


def test_google_retries_then_succeeds(gherd):
    h = gherd
    for faults in ({'http_status': 503, 'body': 'html'}, {'status': 'OVER_QUERY_LIMIT'},
                   {'drop': True}, {'http_status': 500}):
        h.sim.reset_stats()
        h.sim.config(fail_first=1, **faults)
        t0 = time.monotonic()
        v = whatsat_doc(h, h.port('A'), b'10', 5)[2]
        assert v['status'] == 'OK', (faults, v)
        assert 0.2 < time.monotonic() - t0 < 2.5
        assert h.sim.stats()['faults_applied'] == 1


def test_google_failures_become_unknown_error(gherd):
    h = gherd
    for faults, text in (({'not_json': True}, b'not'), ({'http_status': 502, 'body': 'html'},
                                                         b'502'),
                         ({'truncate': True}, b'upstream')):
        h.sim.config(**faults)
        line, body, v = whatsat_doc(h, h.port('A'), b'10', 5)
        assert line == h.ucla
        assert v['status'] == 'UNKNOWN_ERROR' and v['results'] == [], faults
        assert text in v['error_message'].encode()
        assert API_KEY not in v['error_message']


def test_google_stall_answers_within_the_timeout_and_iamat_is_not_delayed(gherd):
    h = gherd
    h.sim.config(stall=True)
    with socket.create_connection(('127.0.0.1', h.port('A')), timeout=IO_TIMEOUT) as s:
        t0 = time.monotonic()
        s.sendall(b'WHATSAT ucla 10 5\n')
        time.sleep(0.2)
        # another client's IAMAT is answered at once meanwhile
        t1 = time.monotonic()
        assert exchange(h.port('A'), b'IAMAT during-stall +1.0+1.0 5\n').startswith(b'AT A ')
        assert time.monotonic() - t1 < 0.5
        s.shutdown(socket.SHUT_WR)
        data = b''
        while not data.endswith(b'}\n\n'):
            c = s.recv(65536)
            if not c:
                break
            data += c
        took = time.monotonic() - t0
    assert data.startswith(h.ucla + b'\n{') and b'"UNKNOWN_ERROR"' in data
    assert 2.8 < took < 4.5                                 # timeout_ms 3000


def test_google_replies_keep_command_order_and_share_calls(gherd):
    h = gherd
    h.sim.config(latency_ms=300)
    cmds = b'WHATSAT ucla 10 2\nIAMAT order +1.0+1.0 9\nWHATSAT ucla 10 1\nbad line\n'
    r = exchange(h.port('A'), cmds)
    first = r.index(h.ucla + b'\n{')
    iamat = r.index(b' order +1.0+1.0 9\n')
    assert first < iamat < r.rindex(h.ucla + b'\n{') and r.endswith(b'? bad line\n')
    assert r.count(b'"status" : "OK"') == 2
    # identical requests in flight at the same moment: one upstream call
    h.sim.reset_stats()
    out = []
    ts = [threading.Thread(target=lambda: out.append(whatsat_line(h.port('A'), b'ucla', b'7',
                                                                  b'4')))
          for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(IO_TIMEOUT)
    assert len(out) == 6 and len(set(out)) == 1
    st = h.sim.stats()['requests']
    assert st['legacy'] + st['new'] == 1


def test_tls_seed_style_flooding(tmp_path, gazetteer):
    """A connection per flooded message over TLS: hello, record and close arrive together, before
    the server has even finished its side of the upgrade."""
    make_certs(str(tmp_path / 'certs'), NAMES)
    h = None
    try:
        h = Herd(str(tmp_path), NAMES, LINKS, seed_style=True, gazetteer=gazetteer,
                 peer_tls='certs')
        h.certs = str(tmp_path / 'certs')
        line = at_line_of(exchange(h.port('Welsh'), b'IAMAT tls-seed +34.068930-118.445127 7.5\n'))
        assert propagated(h, b'tls-seed', line, NAMES)
        newer = at_line_of(exchange(h.port('Hands'), b'IAMAT tls-seed +1.0+1.0 7.75\n'))
        assert propagated(h, b'tls-seed', newer, NAMES)
        h.stop()
        log = read_log(h, 'Holiday')
        assert log.count(b'seed-link ') >= 2 and b'client certificate for ' in log
        assert b'refused' not in log
    finally:
        if h is not None:
            h.stop()
            h.kill()
