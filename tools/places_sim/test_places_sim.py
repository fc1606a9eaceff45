"""Tests of the places simulator through Python's own socket/ssl/http.client: what goes over the
wire, byte for byte where it matters.  Run: make places-sim-test
(= /usr/bin/python3 -m pytest -q tools/places_sim; needs build/data/cities.pbf).

One simulator process serves the module (certificates from tools/certs.py in a temporary folder);
each test starts from `{}` faults and zeroed stats. Every wait has a deadline; every process started
is stopped.
"""

import gzip
import http.client
import json
import math
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, 'tools', 'reference'))
sys.path.insert(0, HERE)
import herd_ref  # noqa: E402
from simctl import PlacesSim  # noqa: E402

PYTHON = '/usr/bin/python3'
SIM = os.path.join(HERE, 'places_sim.py')
CERTS = os.path.join(REPO, 'tools', 'certs.py')
GAZETTEER = os.path.join(REPO, 'build', 'data', 'cities.pbf')
IO_TIMEOUT = 5.0
LEGACY = '/maps/api/place/nearbysearch/json'
NEW = '/v1/places:searchNearby'
ABQ = (35.08449, -106.65114)          # Albuquerque, GeoNames 5454711
UCLA = (34.068930, -118.445127)
OCEAN = (0.0, -140.0)

pytestmark = pytest.mark.skipif(not os.path.exists(GAZETTEER),
                                reason='run make build/data/cities.pbf')


# ------------------------------------------------------------------------------------------------
# Certificates and the simulator process.

def make_certs(out, names, hosts=(), ca_name='places-sim test CA'):
    """CA + one certificate per name in `out`, with tools/certs.py (openssl underneath)."""
    cmd = [PYTHON, CERTS, '--out', out, '--ca-name', ca_name, '--names'] + list(names)
    if hosts:
        cmd += ['--hosts'] + list(hosts)
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


class Sim(PlacesSim):
    """The simulator under test, with the test's certificates (tools/certs.py in `tmp`)."""

    def __init__(self, tmp, plain=False, extra=()):
        super().__init__(cert=os.path.join(tmp, 'places-sim.pem'),
                         key=os.path.join(tmp, 'places-sim.key'), ca=os.path.join(tmp, 'ca.pem'),
                         plain=plain, gazetteer=GAZETTEER, extra_args=extra,
                         log_path=os.path.join(tmp, 'sim-%s.log' % ('plain' if plain else 'tls')))
        self.ctx = self.ssl_context

    def conn(self, timeout=IO_TIMEOUT):
        return self.connection(timeout)

    def config(self, **faults):
        status, v = self.control('POST', '/_sim/config', faults)
        assert status == 200, v
        return v


@pytest.fixture(scope='module')
def certdir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('certs'))
    make_certs(d, ['places-sim'], ['localhost', '127.0.0.1'])
    return d


@pytest.fixture(scope='module')
def sim(certdir):
    s = Sim(certdir)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(autouse=True)
def fresh(request):
    if 'sim' in request.fixturenames:
        s = request.getfixturevalue('sim')
        s.config()
        s.control('POST', '/_sim/reset-stats')
    yield


# ------------------------------------------------------------------------------------------------
# A raw client: what the server puts on the wire.

class Resp:
    def __init__(self, data, how):
        self.raw = data
        self.how = how                       # 'eof' | 'timeout' | 'reset'
        head, sep, rest = data.partition(b'\r\n\r\n')
        self.has_head = bool(sep)
        lines = head.split(b'\r\n')
        self.code = int(lines[0].split()[1]) if self.has_head else None
        self.headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(b':')
            self.headers[k.strip().lower().decode()] = v.strip().decode()
        self.wire = rest
        self.chunks = None
        self.complete = False
        te = self.headers.get('transfer-encoding')
        if te == 'chunked':
            self.chunks, self.body, self.complete = dechunk(rest)
        elif 'content-length' in self.headers:
            n = int(self.headers['content-length'])
            self.body = rest[:n]
            self.complete = len(rest) >= n
        else:
            self.body = rest
            self.complete = how == 'eof'
        if self.headers.get('content-encoding') == 'gzip' and self.complete:
            self.body = gzip.decompress(self.body)

    def json(self):
        return json.loads(self.body)


def distance_m(a, b):
    """Metres between two (lat, lng) points, as the gazetteer search computes them."""
    pa, pb = herd_ref._radians(a[0]), herd_ref._radians(b[0])
    return herd_ref.haversine_m(pa, a[1], math.cos(pa), pb, b[1], math.cos(pb))


def same_json(a, b):
    """Equal JSON values, numbers equal to 15 significant digits (layouts print floats
    differently: Google's %.16g against Python's shortest round trip)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_json(a[k], b[k])
                                                                     for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same_json, a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= 1e-15 * max(abs(a), abs(b))
    return a == b


def dechunk(data):
    sizes, body, pos = [], b'', 0
    while True:
        nl = data.find(b'\r\n', pos)
        if nl < 0:
            return sizes, body, False
        n = int(data[pos:nl], 16)
        sizes.append(n)
        if n == 0:
            return sizes, body, data[nl + 2:nl + 4] == b'\r\n'
        if len(data) < nl + 2 + n + 2:
            return sizes, body + data[nl + 2:nl + 2 + n], False
        body += data[nl + 2:nl + 2 + n]
        assert data[nl + 2 + n:nl + 4 + n] == b'\r\n'
        pos = nl + 4 + n


def open_socket(sim, timeout=IO_TIMEOUT, server_hostname='places-sim'):
    s = socket.create_connection(('127.0.0.1', sim.port), timeout=timeout)
    if sim.plain:
        return s
    return sim.ctx.wrap_socket(s, server_hostname=server_hostname)


def read_until_close(s, timeout):
    s.settimeout(timeout)
    out = bytearray()
    deadline = time.monotonic() + timeout
    how = 'timeout'
    while time.monotonic() < deadline:
        try:
            c = s.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, ssl.SSLError) as e:
            how = 'reset' if isinstance(e, ConnectionResetError) else 'ssl-error'
            break
        if not c:
            how = 'eof'
            break
        out += c
    return bytes(out), how


def request_bytes(method, target, headers=None, body=b'', close=True):
    h = {'Host': 'places-sim', 'User-Agent': 'test_places_sim'}
    if close:
        h['Connection'] = 'close'
    if body:
        h['Content-Length'] = str(len(body))
    h.update(headers or {})
    return (('%s %s HTTP/1.1\r\n' % (method, target)) +
            ''.join('%s: %s\r\n' % kv for kv in h.items()) + '\r\n').encode() + body


def raw(sim, method, target, headers=None, body=b'', timeout=IO_TIMEOUT):
    """One request with Connection: close; everything the server sent until it closed."""
    s = open_socket(sim)
    try:
        s.sendall(request_bytes(method, target, headers, body))
        return Resp(*read_until_close(s, timeout))
    finally:
        s.close()


def legacy_target(lat, lng, radius, key='test-key', comma=','):
    q = 'location=%r%s%r&radius=%s' % (lat, comma, lng, radius)
    if key is not None:
        q += '&key=' + key
    return LEGACY + '?' + q


def new_body(lat, lng, radius, count=None, **extra):
    v = {'locationRestriction': {'circle': {'center': {'latitude': lat, 'longitude': lng},
                                            'radius': radius}}}
    if count is not None:
        v['maxResultCount'] = count
    v.update(extra)
    return json.dumps(v).encode()


NEW_HEADERS = {'X-Goog-Api-Key': 'new-key', 'Content-Type': 'application/json',
               'X-Goog-FieldMask': 'places.id,places.displayName,places.formattedAddress,'
                                   'places.location,places.types,places.rating,'
                                   'places.userRatingCount,places.businessStatus'}


def get_legacy(sim, *a, headers=None, **kw):
    return raw(sim, 'GET', legacy_target(*a, **kw), headers)


def post_new(sim, body, headers=NEW_HEADERS):
    return raw(sim, 'POST', NEW, headers, body)


# ------------------------------------------------------------------------------------------------
# The process, TLS, keep-alive, stats.

def test_plain_mode_and_usage_errors(certdir):
    s = Sim(certdir, plain=True)
    try:
        assert s.line.startswith('places-sim listening on http://127.0.0.1:')
        assert s.url == 'http://127.0.0.1:%d' % s.port
        r = get_legacy(s, *ABQ, 1000)
        assert r.code == 200 and r.json()['results'][0]['name'] == 'Albuquerque'
        s.config(drop='reset')
        with pytest.raises(ConnectionResetError):
            with socket.create_connection(('127.0.0.1', s.port), timeout=IO_TIMEOUT) as c:
                c.sendall(request_bytes('GET', legacy_target(*ABQ, 1000)))
                c.recv(100)
    finally:
        s.stop()
    for args in (['--host', '192.0.2.1', '--plain'], ['--plain', '--cert', 'x'], [],
                 ['--plain', '--faults', '{"latency": 5}'],
                 ['--cert', os.path.join(certdir, 'nope.pem'), '--key', 'nope.key']):
        p = subprocess.run([PYTHON, SIM, '--gazetteer', GAZETTEER] + args, capture_output=True,
                           timeout=60)
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr and not p.stdout


def test_tls_verified_against_the_ca_only(sim, tmp_path):
    c = sim.conn()
    c.request('GET', legacy_target(*ABQ, 1000))
    assert c.getresponse().status == 200
    sock = c.sock
    assert sock.version() in ('TLSv1.2', 'TLSv1.3') and sock.selected_alpn_protocol() is None
    c.close()
    # the system store does not know the test CA
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection(('127.0.0.1', sim.port), timeout=IO_TIMEOUT) as s:
            ssl.create_default_context().wrap_socket(s, server_hostname='localhost')
    # a certificate from another CA is not ours either
    other = str(tmp_path / 'other')
    make_certs(other, ['places-sim'], ['127.0.0.1'], ca_name='another CA')
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection(('127.0.0.1', sim.port), timeout=IO_TIMEOUT) as s:
            ssl.create_default_context(cafile=os.path.join(other, 'ca.pem')).wrap_socket(
                s, server_hostname='places-sim')
    # the right CA but a name the certificate does not carry
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection(('127.0.0.1', sim.port), timeout=IO_TIMEOUT) as s:
            sim.ctx.wrap_socket(s, server_hostname='maps.googleapis.com')
    # SNI and ALPN are seen by the server
    ctx = ssl.create_default_context(cafile=sim.ca)
    ctx.set_alpn_protocols(['h2', 'http/1.1'])
    with socket.create_connection(('127.0.0.1', sim.port), timeout=IO_TIMEOUT) as s:
        with ctx.wrap_socket(s, server_hostname='localhost') as t:
            assert t.selected_alpn_protocol() == 'http/1.1'
            t.sendall(request_bytes('GET', legacy_target(*ABQ, 1000)))
            assert Resp(*read_until_close(t, IO_TIMEOUT)).code == 200
    st = sim.stats()
    assert st['tls_handshake_failures'] == 3, st
    assert 'CERTIFICATE' in st['last_tls_error'].upper() or 'ALERT' in st['last_tls_error'].upper()
    assert st['last_sni'] == 'localhost' and st['last_alpn'] == 'http/1.1'
    assert st['tls_handshakes'] == 2 and st['tcp_connections'] == 5


def test_killed_and_restarted_on_the_same_port(certdir):
    s = Sim(certdir)
    try:
        port = s.port
        s.kill()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(('127.0.0.1', port), timeout=IO_TIMEOUT).close()
    finally:
        s.stop()
    s = PlacesSim(cert=os.path.join(certdir, 'places-sim.pem'),
                  key=os.path.join(certdir, 'places-sim.key'), ca=os.path.join(certdir, 'ca.pem'),
                  gazetteer=GAZETTEER, port=port, faults={'latency_ms': 1})
    try:
        assert s.port == port and s.control('GET', '/_sim/config')[1]['config'] == {
            'latency_ms': 1}
        assert os.path.exists(s.log_path)
    finally:
        s.stop()
    # The log it made for itself (none was given) goes with it: runs leave nothing in /tmp.
    assert not os.path.exists(s.log_path)


def test_tls_1_2_only(certdir):
    s = Sim(certdir, extra=['--tls-max', '1.2'])
    try:
        c = s.conn()
        c.request('GET', legacy_target(*ABQ, 1000))
        assert c.getresponse().status == 200
        assert c.sock.version() == 'TLSv1.2'
        c.close()
        assert s.stats()['last_tls_version'] == 'TLSv1.2'
    finally:
        s.stop()


def test_keep_alive_and_stats(sim):
    c = sim.conn()
    for i in range(5):
        c.request('GET', legacy_target(*ABQ, 1000 + i, key='k%d' % i),
                  headers={'Accept-Encoding': 'identity'})
        r = c.getresponse()
        assert r.status == 200 and r.getheader('Connection') is None
        r.read()
    c.request('POST', NEW, body=new_body(*UCLA, 5000), headers=NEW_HEADERS)
    r = c.getresponse()
    assert r.status == 200
    r.read()
    c.close()
    st = sim.stats()                    # on its own connection: counted under control
    assert st['requests'] == {'legacy': 5, 'new': 1, 'control': 1, 'other': 0}
    assert st['tcp_connections'] == 1 and st['tls_handshakes'] == 1
    assert st['control_connections'] == 1
    assert st['keys_seen'] == 6 and st['last_key'] == 'new-key'
    assert st['responses'] == {'200': 6}
    lr = st['last_request']
    assert lr['endpoint'] == 'new' and lr['nth_on_connection'] == 6
    assert lr['headers']['x-goog-fieldmask'] == NEW_HEADERS['X-Goog-FieldMask']
    assert json.loads(lr['body'])['locationRestriction']['circle']['radius'] == 5000
    # a request without a key is counted but not as a key
    get_legacy(sim, *ABQ, 1000, key=None)
    st = sim.stats()
    assert st['keys_seen'] == 6 and st['requests']['legacy'] == 6
    assert sim.control('POST', '/_sim/reset-stats')[0] == 200
    st = sim.stats()
    assert st['requests']['legacy'] == 0 and st['tcp_connections'] == 0 and st['last_key'] is None


def test_request_framing_the_server_accepts(sim):
    """A chunked request body, Expect: 100-continue, and two pipelined requests."""
    body = new_body(*ABQ, 1000, 1)
    chunked = b'%x;ext=1\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n' % (
        10, body[:10], len(body) - 10, body[10:])
    h = dict(NEW_HEADERS, **{'Transfer-Encoding': 'chunked', 'Connection': 'close'})
    s = open_socket(sim)
    try:
        s.sendall(request_bytes('POST', NEW, h)[:-2] + b'\r\n' + chunked)
        r = Resp(*read_until_close(s, IO_TIMEOUT))
    finally:
        s.close()
    assert r.code == 200 and r.json()['places'][0]['id'] == 'geonames:5454711'
    s = open_socket(sim)
    try:
        h = dict(NEW_HEADERS, **{'Expect': '100-continue', 'Content-Length': str(len(body))})
        s.sendall(request_bytes('POST', NEW, h))
        assert s.recv(100) == b'HTTP/1.1 100 Continue\r\n\r\n'
        s.sendall(body)
        r = Resp(*read_until_close(s, IO_TIMEOUT))
        assert r.code == 200 and r.json()['places'][0]['id'] == 'geonames:5454711'
    finally:
        s.close()
    s = open_socket(sim)
    try:
        s.sendall(request_bytes('GET', legacy_target(*ABQ, 1000), close=False) +
                  request_bytes('GET', legacy_target(64.8378, -147.7164, 20000)))
        data, how = read_until_close(s, IO_TIMEOUT)
        assert how == 'eof' and data.count(b'HTTP/1.1 200 OK\r\n') == 2
        assert b'"Albuquerque"' in data and b'"Fairbanks"' in data
        assert data.index(b'"Albuquerque"') < data.index(b'"Fairbanks"')
    finally:
        s.close()


def test_unknown_paths_and_methods(sim):
    assert raw(sim, 'GET', '/maps/api/place/textsearch/json?key=x').code == 404
    r = raw(sim, 'POST', LEGACY + '?location=1,1&radius=1&key=k', body=b'{}')
    assert r.code == 405 and r.headers['allow'] == 'GET'
    assert raw(sim, 'GET', NEW).code == 405
    assert raw(sim, 'GET', '/_sim/nothing').code == 404
    r = raw(sim, 'GET', '/x', headers={'X-Big': 'a' * 70000})
    assert r.code == 431
    assert sim.stats()['requests']['other'] == 1


# ------------------------------------------------------------------------------------------------
# Legacy Nearby Search.

def test_legacy_is_the_offline_provider_byte_for_byte(sim):
    places = herd_ref.OfflinePlaces(GAZETTEER)
    for (lat, lng), radius in ((ABQ, 10000), (ABQ, 2500.5), (UCLA, 3000), (OCEAN, 50000),
                               ((64.8378, -147.7164), 20000)):
        want = places.response(lat, lng, float(radius), 20) + b'\n'
        assert want.count(b'"place_id"') < 20          # one page: no next_page_token
        for comma in (',', '%2C', '%2c'):
            r = get_legacy(sim, lat, lng, radius, comma=comma)
            assert r.code == 200 and r.complete and r.how == 'eof'
            assert r.headers['content-type'] == 'application/json; charset=UTF-8'
            assert r.body == want, (lat, lng, radius)
    assert get_legacy(sim, *OCEAN, 50000).json() == {
        'html_attributions': [], 'results': [], 'status': 'ZERO_RESULTS'}


def test_legacy_paging_ranking_and_filters(sim):
    seen, pops, token = [], [], None
    cities = {c[0]: c for c in herd_ref.read_cities_pbf(GAZETTEER)}
    for page in range(3):
        target = legacy_target(*UCLA, 50000) if token is None else \
            LEGACY + '?pagetoken=%s&key=k' % urllib.parse.quote(token)
        v = raw(sim, 'GET', target).json()
        assert v['status'] == 'OK' and len(v['results']) == 20
        for x in v['results']:
            gid = int(x['place_id'].split(':')[1])
            pops.append(cities[gid][2])
            seen.append(gid)
        token = v.get('next_page_token')
        assert (token is None) == (page == 2)
    assert len(set(seen)) == 60 and pops == sorted(pops, reverse=True)
    bad = raw(sim, 'GET', LEGACY + '?pagetoken=garbage&key=k')
    assert bad.code == 400 and bad.json()['status'] == 'INVALID_REQUEST'
    # rankby=distance with a keyword: nearest first, names filtered
    v = raw(sim, 'GET', LEGACY + '?location=%r,%r&rankby=distance&keyword=santa&key=k'
            % UCLA).json()
    names = [x['name'] for x in v['results']]
    assert names and all('santa' in n.lower() for n in names)
    d = [distance_m(UCLA, (x['geometry']['location']['lat'], x['geometry']['location']['lng']))
         for x in v['results']]
    assert d == sorted(d)
    # a type cities do not have
    v = raw(sim, 'GET', legacy_target(*UCLA, 5000) + '&type=restaurant').json()
    assert v['status'] == 'ZERO_RESULTS'


@pytest.mark.parametrize('query,code,status,message', [
    ('location=35.0,-106.0&radius=1000', 200, 'REQUEST_DENIED', 'You must use an API key'),
    ('location=35.0,-106.0&radius=1000&key=', 200, 'REQUEST_DENIED', 'You must use an API key'),
    ('radius=1000&key=k', 400, 'INVALID_REQUEST', "Missing the 'location'"),
    ('location=35.0&radius=1000&key=k', 400, 'INVALID_REQUEST', "Invalid 'location'"),
    ('location=95.0,-106.0&radius=1000&key=k', 400, 'INVALID_REQUEST', "Invalid 'location'"),
    ('location=35.0,-181&radius=1000&key=k', 400, 'INVALID_REQUEST', "Invalid 'location'"),
    ('location=nan,1&radius=1000&key=k', 400, 'INVALID_REQUEST', "Invalid 'location'"),
    ('location=35.0,-106.0&key=k', 400, 'INVALID_REQUEST', "Missing the 'radius'"),
    ('location=35.0,-106.0&radius=50001&key=k', 400, 'INVALID_REQUEST', "Invalid 'radius'"),
    ('location=35.0,-106.0&radius=-1&key=k', 400, 'INVALID_REQUEST', "Invalid 'radius'"),
    ('location=35.0,-106.0&radius=ten&key=k', 400, 'INVALID_REQUEST', "Invalid 'radius'"),
    ('location=35.0,-106.0&radius=10&rankby=fame&key=k', 400, 'INVALID_REQUEST', "'rankby'"),
    ('location=35.0,-106.0&radius=10&rankby=distance&key=k', 400, 'INVALID_REQUEST',
     'radius must not'),
    ('location=35.0,-106.0&rankby=distance&key=k', 400, 'INVALID_REQUEST', 'keyword, name'),
])
def test_legacy_validation(sim, query, code, status, message):
    r = raw(sim, 'GET', LEGACY + '?' + query)
    assert r.code == code
    v = r.json()
    assert v['status'] == status and message in v['error_message']
    assert v['results'] == [] and v['html_attributions'] == []
    assert herd_ref.render_google_json(v) + b'\n' == r.body


def test_accept_keys(sim):
    sim.config(accept_keys=['good'])
    assert get_legacy(sim, *ABQ, 1000, key='good').json()['status'] == 'OK'
    v = get_legacy(sim, *ABQ, 1000, key='bad').json()
    assert v == {'error_message': 'The provided API key is invalid.', 'html_attributions': [],
                 'results': [], 'status': 'REQUEST_DENIED'}
    h = dict(NEW_HEADERS, **{'X-Goog-Api-Key': 'bad'})
    r = post_new(sim, new_body(*ABQ, 1000), h)
    assert r.code == 400 and r.json()['error']['status'] == 'INVALID_ARGUMENT'
    assert r.json()['error']['details'][0]['reason'] == 'API_KEY_INVALID'
    h['X-Goog-Api-Key'] = 'good'
    assert post_new(sim, new_body(*ABQ, 1000), h).code == 200
    assert sim.stats()['last_key'] == 'good'


# ------------------------------------------------------------------------------------------------
# Places API (New).

def test_new_api_answers(sim):
    r = post_new(sim, new_body(*UCLA, 20000, 7))
    assert r.code == 200 and r.headers['content-type'] == 'application/json; charset=UTF-8'
    v = r.json()
    assert r.body == (json.dumps(v, indent=2, ensure_ascii=False) + '\n').encode()
    places = v['places']
    assert len(places) == 7
    wanted = {'id', 'displayName', 'formattedAddress', 'location', 'types', 'rating',
              'userRatingCount', 'businessStatus'}
    for p in places:
        assert set(p) <= wanted and {'id', 'displayName', 'location', 'types'} <= set(p)
        assert p['displayName']['languageCode'] == 'en' and p['types'] == ['locality',
                                                                           'political']
        assert p['formattedAddress'] == p['displayName']['text']
        rated = 'rating' in p
        assert rated == ('userRatingCount' in p) == ('businessStatus' in p)
        if rated:
            assert 3.0 <= p['rating'] <= 5.0 and p['businessStatus'] == 'OPERATIONAL'
    assert any('rating' in p for p in places) and not all('rating' in p for p in places)
    # the same cities, in the same order, as the legacy endpoint
    legacy = get_legacy(sim, *UCLA, 20000).json()['results'][:7]
    assert [p['id'] for p in places] == [x['place_id'] for x in legacy]
    assert [p['location'] for p in places] == [
        {'latitude': x['geometry']['location']['lat'],
         'longitude': x['geometry']['location']['lng']} for x in legacy]
    # the mask decides the fields, down to sub-fields; * gives everything
    h = dict(NEW_HEADERS, **{'X-Goog-FieldMask': 'places.displayName.text'})
    v = post_new(sim, new_body(*UCLA, 20000, 2, languageCode='fr'), h).json()
    assert v['places'] == [{'displayName': {'text': x['name']}} for x in legacy[:2]]
    h['X-Goog-FieldMask'] = '*'
    p = post_new(sim, new_body(*UCLA, 20000, 1, languageCode='fr'), h).json()['places'][0]
    assert {'name', 'id', 'viewport', 'googleMapsUri', 'primaryType'} <= set(p)
    assert p['displayName']['languageCode'] == 'fr'
    # default count 20, nothing found -> {}, distance ranking
    assert len(post_new(sim, new_body(*UCLA, 50000)).json()['places']) == 20
    r = post_new(sim, new_body(*OCEAN, 50000, 5))
    assert r.code == 200 and r.body == b'{}\n'
    near = post_new(sim, new_body(*UCLA, 20000, 10, rankPreference='DISTANCE')).json()
    d = [distance_m(UCLA, (p['location']['latitude'], p['location']['longitude']))
         for p in near['places']]
    assert d == sorted(d) and d[-1] <= 20000
    assert post_new(sim, new_body(*UCLA, 20000, 3, includedTypes=['restaurant'])).body == \
        b'{}\n'
    assert len(post_new(sim, new_body(*UCLA, 20000, 3, includedTypes=['locality'])).json()[
        'places']) == 3
    # the key may come as ?key= too; snake_case fields work (proto3 JSON)
    h = dict(NEW_HEADERS)
    del h['X-Goog-Api-Key']
    body = json.dumps({'max_result_count': 2, 'location_restriction': {'circle': {
        'center': {'latitude': ABQ[0], 'longitude': ABQ[1]}, 'radius': 1000}}}).encode()
    r = raw(sim, 'POST', NEW + '?key=qk', h, body)
    assert r.code == 200 and r.json()['places'][0]['id'] == 'geonames:5454711'
    assert sim.stats()['last_key'] == 'qk'


@pytest.mark.parametrize('change,code,status,message', [
    ({'drop_header': 'X-Goog-Api-Key'}, 403, 'PERMISSION_DENIED', 'missing a valid API key'),
    ({'drop_header': 'X-Goog-FieldMask'}, 400, 'INVALID_ARGUMENT', 'FieldMask is a required'),
    ({'mask': 'places.nonsense'}, 400, 'INVALID_ARGUMENT', "path 'places.nonsense'"),
    ({'mask': 'displayName'}, 400, 'INVALID_ARGUMENT', "path 'displayName'"),
    ({'body': b'{"maxResultCount": 3'}, 400, 'INVALID_ARGUMENT', 'Invalid JSON payload'),
    ({'body': b'[1]'}, 400, 'INVALID_ARGUMENT', 'Invalid JSON payload'),
    ({'body': b'{"bogus": 1}'}, 400, 'INVALID_ARGUMENT', 'Unknown name "bogus"'),
    ({'count': 0}, 400, 'INVALID_ARGUMENT', 'max_result_count'),
    ({'count': 21}, 400, 'INVALID_ARGUMENT', 'max_result_count'),
    ({'radius': 50000.5}, 400, 'INVALID_ARGUMENT', 'radius'),
    ({'radius': -1}, 400, 'INVALID_ARGUMENT', 'radius'),
    ({'lat': 91}, 400, 'INVALID_ARGUMENT', 'latitude'),
    ({'lng': -180.5}, 400, 'INVALID_ARGUMENT', 'longitude'),
    ({'body': b'{"maxResultCount": 3}'}, 400, 'INVALID_ARGUMENT', 'location_restriction'),
    ({'extra': {'rankPreference': 'FAME'}}, 400, 'INVALID_ARGUMENT', 'rank_preference'),
])
def test_new_api_validation(sim, change, code, status, message):
    h = dict(NEW_HEADERS)
    if 'drop_header' in change:
        del h[change['drop_header']]
    if 'mask' in change:
        h['X-Goog-FieldMask'] = change['mask']
    body = change.get('body') or new_body(change.get('lat', ABQ[0]), change.get('lng', ABQ[1]),
                                          change.get('radius', 1000), change.get('count', 5),
                                          **change.get('extra', {}))
    r = post_new(sim, body, h)
    assert r.code == code
    err = r.json()['error']
    assert err['code'] == code and err['status'] == status and message in err['message'], err


# ------------------------------------------------------------------------------------------------
# Faults.

def test_fault_config_endpoint(sim):
    assert sim.control('GET', '/_sim/config')[1] == {'config': {}, 'fail_first_left': None}
    v = sim.config(latency_ms=5, framing='chunked', fail_first=2, status='OVER_QUERY_LIMIT')
    assert v == {'config': {'latency_ms': 5, 'framing': 'chunked', 'fail_first': 2,
                            'status': 'OVER_QUERY_LIMIT'}, 'fail_first_left': 2}
    assert sim.control('GET', '/_sim/config')[1] == v
    for bad in ({'latency': 1}, {'latency_ms': -1}, {'latency_ms': '5'}, {'status': 'OK'},
                {'status': 'NOPE'}, {'framing': 'gzip'}, {'gzip': 'yes'}, {'drop': 'maybe'},
                {'stall': 'forever'}, {'http_status': 99}, {'body': 'xml'},
                {'accept_keys': 'k'}, {'error_message': 'x'}, {'drop': True, 'stall': True},
                {'ascii': True}, {'chunk_bytes': 0}, [1, 2]):
        status, err = sim.control('POST', '/_sim/config', bad)
        assert status == 400 and err['error'], bad
    c = sim.conn()
    c.request('POST', '/_sim/config', body=b'{not json', headers={'Connection': 'close'})
    assert c.getresponse().status == 400
    c.close()
    # refused configurations leave the previous one in force; {} resets
    assert sim.control('GET', '/_sim/config')[1] == v
    assert sim.config() == {'config': {}, 'fail_first_left': None}


def test_latency(sim):
    sim.config(latency_ms=300)
    t0 = time.monotonic()
    r = get_legacy(sim, *ABQ, 1000)
    assert r.code == 200 and time.monotonic() - t0 >= 0.3
    sim.config()
    t0 = time.monotonic()
    get_legacy(sim, *ABQ, 1000)
    assert time.monotonic() - t0 < 0.3


@pytest.mark.parametrize('status,legacy_code,legacy_status,message,new_code,new_status', [
    ('OVER_QUERY_LIMIT', 200, 'OVER_QUERY_LIMIT', 'You have exceeded your rate-limit for this API.',
     429, 'RESOURCE_EXHAUSTED'),
    ('OVER_DAILY_LIMIT', 200, 'OVER_QUERY_LIMIT', 'You have exceeded your daily request quota',
     429, 'RESOURCE_EXHAUSTED'),
    ('REQUEST_DENIED', 200, 'REQUEST_DENIED', 'The provided API key is invalid.',
     403, 'PERMISSION_DENIED'),
    ('INVALID_REQUEST', 400, 'INVALID_REQUEST', 'Invalid request.', 400, 'INVALID_ARGUMENT'),
    ('ZERO_RESULTS', 200, 'ZERO_RESULTS', None, 200, None),
    ('UNKNOWN_ERROR', 200, 'UNKNOWN_ERROR', None, 500, 'INTERNAL'),
    ('UNAVAILABLE', 200, 'UNKNOWN_ERROR', None, 503, 'UNAVAILABLE'),
    ('RESOURCE_EXHAUSTED', 200, 'OVER_QUERY_LIMIT', 'rate-limit', 429, 'RESOURCE_EXHAUSTED'),
    ('PERMISSION_DENIED', 200, 'REQUEST_DENIED', 'API key', 403, 'PERMISSION_DENIED'),
    ('INTERNAL', 200, 'UNKNOWN_ERROR', None, 500, 'INTERNAL'),
])
def test_status_faults(sim, status, legacy_code, legacy_status, message, new_code, new_status):
    sim.config(status=status)
    r = get_legacy(sim, *ABQ, 1000)
    assert r.code == legacy_code
    v = r.json()
    assert v['status'] == legacy_status and v['results'] == []
    assert r.body == herd_ref.render_google_json(v) + b'\n'
    if message is None:
        assert 'error_message' not in v
    else:
        assert message in v['error_message']
    r = post_new(sim, new_body(*ABQ, 1000))
    assert r.code == new_code
    if new_status is None:
        assert r.body == b'{}\n'
    else:
        err = r.json()['error']
        assert err['code'] == new_code and err['status'] == new_status and err['message']
    sim.config(status=status, error_message='custom <text>')
    v = get_legacy(sim, *ABQ, 1000).json()
    assert v['status'] == legacy_status and v['error_message'] == 'custom <text>'
    if new_status is not None:
        assert post_new(sim, new_body(*ABQ, 1000)).json()['error']['message'] == 'custom <text>'
    assert sim.stats()['faults_applied'] == (4 if new_status else 3)


def test_http_status_faults(sim):
    for code, body in ((500, 'json'), (503, 'html'), (504, 'text'), (429, 'empty'),
                       (503, 'json')):
        sim.config(http_status=code, body=body)
        r = get_legacy(sim, *ABQ, 1000)
        n = post_new(sim, new_body(*ABQ, 1000))
        assert r.code == code and n.code == code
        if body == 'json':
            assert r.json()['status'] == 'UNKNOWN_ERROR' and str(code) in r.json()[
                'error_message']
            err = n.json()['error']
            assert err['code'] == code and err['status'] == {500: 'INTERNAL',
                                                             503: 'UNAVAILABLE'}[code]
        elif body == 'html':
            assert r.headers['content-type'].startswith('text/html')
            assert r.body.startswith(b'<!DOCTYPE html>') and b'Error 503' in r.body
            with pytest.raises(ValueError):
                n.json()
        elif body == 'text':
            assert r.headers['content-type'].startswith('text/plain')
            assert r.body == b'504 Gateway Timeout\n'
        else:
            assert r.body == b'' and r.headers['content-length'] == '0'
    sim.config(http_status=429, status='OVER_QUERY_LIMIT')
    v = get_legacy(sim, *ABQ, 1000)
    assert v.code == 429 and v.json()['error_message'].startswith('You have exceeded')


def test_fail_first(sim):
    sim.config(fail_first=2, http_status=503, latency_ms=10)
    codes = [get_legacy(sim, *ABQ, 1000).code for _ in range(2)]
    codes.append(post_new(sim, new_body(*ABQ, 1000)).code)
    codes.append(get_legacy(sim, *ABQ, 1000).code)
    assert codes == [503, 503, 200, 200]
    st = sim.stats()
    assert st['fail_first_left'] == 0 and st['faults_applied'] == 2
    assert st['responses'] == {'200': 2, '503': 2}
    # a new config re-arms it
    sim.config(fail_first=1, status='OVER_QUERY_LIMIT')
    assert [get_legacy(sim, *ABQ, 1000).json()['status'] for _ in range(2)] == [
        'OVER_QUERY_LIMIT', 'OK']


def test_chunked_framing(sim):
    plain = get_legacy(sim, *UCLA, 10000)
    assert 'transfer-encoding' not in plain.headers
    assert int(plain.headers['content-length']) == len(plain.wire) == len(plain.body)
    sim.config(framing='chunked', chunk_bytes=100)
    r = get_legacy(sim, *UCLA, 10000)
    assert r.headers['transfer-encoding'] == 'chunked' and 'content-length' not in r.headers
    assert r.complete and r.body == plain.body
    n = len(plain.body)
    assert r.chunks == [100] * (n // 100) + ([n % 100] if n % 100 else []) + [0]
    assert r.wire.startswith(b'64\r\n')
    # chunks of compressed bytes when gzip is asked for
    sim.config(framing='chunked', chunk_bytes=64)
    r = get_legacy(sim, *UCLA, 10000, headers={'Accept-Encoding': 'gzip, deflate'})
    assert r.headers['content-encoding'] == 'gzip' and r.body == plain.body
    assert all(c == 64 for c in r.chunks[:-2])
    assert sim.stats()['chunked_responses'] == 2


def test_gzip(sim):
    plain = get_legacy(sim, *UCLA, 10000)
    r = get_legacy(sim, *UCLA, 10000, headers={'Accept-Encoding': 'gzip'})
    assert r.headers['content-encoding'] == 'gzip'
    assert r.wire[:2] == b'\x1f\x8b' and int(r.headers['content-length']) == len(r.wire)
    assert len(r.wire) < len(plain.body) / 3 and r.body == plain.body
    for ae in ('identity', 'gzip;q=0', 'br'):
        r = get_legacy(sim, *UCLA, 10000, headers={'Accept-Encoding': ae})
        assert 'content-encoding' not in r.headers and r.body == plain.body, ae
    n = post_new(sim, new_body(*UCLA, 10000), dict(NEW_HEADERS, **{'Accept-Encoding': 'gzip'}))
    assert n.headers['content-encoding'] == 'gzip' and n.json()['places']
    sim.config(gzip=False)
    r = get_legacy(sim, *UCLA, 10000, headers={'Accept-Encoding': 'gzip'})
    assert 'content-encoding' not in r.headers and r.body == plain.body
    assert sim.stats()['gzip_responses'] == 2


def test_slow_body(sim):
    plain = get_legacy(sim, *ABQ, 3000)
    sim.config(slow_body_ms=60, chunk_bytes=500)
    pieces = -(-len(plain.body) // 500)
    assert pieces >= 3
    s = open_socket(sim)
    try:
        s.sendall(request_bytes('GET', legacy_target(*ABQ, 3000)))
        t0 = time.monotonic()
        arrivals, data = [], b''
        s.settimeout(IO_TIMEOUT)
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
            arrivals.append((time.monotonic() - t0, len(data)))
    finally:
        s.close()
    r = Resp(data, 'eof')
    assert r.body == plain.body
    assert arrivals[-1][0] >= 0.06 * pieces * 0.9
    # the headers came first, the body trickled in over several reads
    assert len(arrivals) >= pieces


def test_drop(sim):
    def strict_exchange():
        """The request on a TLS socket that reports a missing close_notify as an error."""
        s = socket.create_connection(('127.0.0.1', sim.port), timeout=IO_TIMEOUT)
        t = sim.ctx.wrap_socket(s, server_hostname='places-sim', suppress_ragged_eofs=False)
        try:
            t.sendall(request_bytes('GET', legacy_target(*ABQ, 1000)))
            return t.recv(100)
        finally:
            t.close()

    sim.config(drop=True)
    r = get_legacy(sim, *ABQ, 1000)
    assert r.raw == b'' and r.how == 'eof'
    assert strict_exchange() == b''                   # an orderly TLS close (close_notify)
    c = sim.conn()
    c.request('GET', legacy_target(*ABQ, 1000))
    with pytest.raises(http.client.RemoteDisconnected):
        c.getresponse()
    c.close()
    sim.config(drop='reset')                          # no close_notify, a TCP reset
    with pytest.raises((ConnectionResetError, ssl.SSLEOFError)):
        strict_exchange()
    assert sim.stats()['faults_applied'] == 4


def test_stall_request_with_client_timeout(sim):
    sim.config(stall=True)
    t0 = time.monotonic()
    r = raw(sim, 'GET', legacy_target(*ABQ, 1000), timeout=1.0)
    assert r.raw == b'' and r.how == 'timeout' and time.monotonic() - t0 >= 1.0
    # the stalled connection is released once the client gives up
    deadline = time.monotonic() + IO_TIMEOUT
    while sim.stats()['open_connections'] > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sim.stats()['open_connections'] == 1          # the stats request's own


def test_stall_blocks_only_its_own_connection(sim):
    sim.config(stall='request', fail_first=1)
    stalled = open_socket(sim)
    try:
        stalled.sendall(request_bytes('GET', legacy_target(*ABQ, 1000)))
        deadline = time.monotonic() + IO_TIMEOUT
        while sim.stats()['requests']['legacy'] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        t0 = time.monotonic()
        assert get_legacy(sim, *ABQ, 1000).code == 200
        assert time.monotonic() - t0 < 1.0
        st = sim.stats()
        assert st['inflight'] == 1 and st['max_inflight'] == 2
        stalled.settimeout(0.2)
        with pytest.raises(socket.timeout):
            stalled.recv(1)
    finally:
        stalled.close()


def test_stall_in_the_body(sim):
    sim.config(stall='body', framing='chunked', chunk_bytes=100)
    r = raw(sim, 'GET', legacy_target(*UCLA, 10000), timeout=1.0)
    assert r.code == 200 and r.how == 'timeout' and not r.complete
    assert r.chunks and r.chunks[0] == 100 and 0 not in r.chunks


def test_stall_handshake(sim):
    sim.config(stall='handshake', fail_first=1)
    s = socket.create_connection(('127.0.0.1', sim.port), timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises((socket.timeout, TimeoutError)):
        sim.ctx.wrap_socket(s, server_hostname='places-sim')
    assert time.monotonic() - t0 >= 0.9
    s.close()
    assert get_legacy(sim, *ABQ, 1000).code == 200          # fail_first used up
    st = sim.stats()
    assert st['faults_applied'] == 1 and st['tls_handshakes'] == 1


def test_truncate(sim):
    plain = get_legacy(sim, *UCLA, 10000)
    sim.config(truncate=True)
    r = get_legacy(sim, *UCLA, 10000)
    assert r.code == 200 and r.how == 'eof' and not r.complete
    assert int(r.headers['content-length']) == len(plain.body)
    assert 0 < len(r.wire) < len(plain.body) and plain.body.startswith(r.wire)
    assert r.headers['connection'] == 'close'
    c = sim.conn()
    c.request('GET', legacy_target(*UCLA, 10000))
    with pytest.raises(http.client.IncompleteRead):
        c.getresponse().read()
    c.close()
    sim.config(truncate=True, framing='chunked', chunk_bytes=200)
    r = get_legacy(sim, *UCLA, 10000)
    assert r.how == 'eof' and not r.complete and r.chunks[0] == 200 and 0 not in r.chunks


def test_not_json(sim):
    sim.config(not_json=True)
    r = get_legacy(sim, *ABQ, 1000)
    assert r.code == 200 and r.headers['content-type'].startswith('application/json')
    with pytest.raises(ValueError):
        json.loads(r.body)
    sim.config(not_json='{"results": [')
    assert post_new(sim, new_body(*ABQ, 1000)).body == b'{"results": ['


def test_close_eof_framing_idle_timeout_and_keepalive_limit(sim):
    sim.config(close=True)
    c = sim.conn()
    c.request('GET', legacy_target(*ABQ, 1000))
    r = c.getresponse()
    assert r.getheader('Connection') == 'close' and r.status == 200
    r.read()
    assert c.sock is None                 # http.client saw the close
    c.close()
    # the server really closes: a second request on the same socket gets EOF
    s = open_socket(sim)
    try:
        req = request_bytes('GET', legacy_target(*ABQ, 1000), close=False)
        s.sendall(req + req)
        data, how = read_until_close(s, IO_TIMEOUT)
        assert how == 'eof' and data.count(b'HTTP/1.1 200 OK') == 1
    finally:
        s.close()
    # close-delimited body: no Content-Length, no chunking
    sim.config(framing='eof')
    plain_body = None
    s = open_socket(sim)
    try:
        s.sendall(request_bytes('GET', legacy_target(*ABQ, 1000), close=False))
        r = Resp(*read_until_close(s, IO_TIMEOUT))
        assert r.how == 'eof' and 'content-length' not in r.headers
        assert 'transfer-encoding' not in r.headers and r.json()['status'] == 'OK'
        plain_body = r.body
    finally:
        s.close()
    assert plain_body.endswith(b'}\n')
    # an idle keep-alive connection is closed after idle_timeout_ms
    sim.config(idle_timeout_ms=200)
    s = open_socket(sim)
    try:
        s.sendall(request_bytes('GET', legacy_target(*ABQ, 1000), close=False))
        t0 = time.monotonic()
        data, how = read_until_close(s, IO_TIMEOUT)
        assert how == 'eof' and 0.15 < time.monotonic() - t0 < 2.0
        assert Resp(data, how).code == 200
    finally:
        s.close()
    # keepalive_requests: the Nth response on a connection says close
    sim.config(keepalive_requests=2)
    c = sim.conn()
    for i, want in ((1, None), (2, 'close')):
        c.request('GET', legacy_target(*ABQ, 1000))
        r = c.getresponse()
        assert r.getheader('Connection') == want
        r.read()
    c.close()


def test_layouts(sim):
    google = get_legacy(sim, *UCLA, 10000)
    v = google.json()
    assert google.body == herd_ref.render_google_json(v) + b'\n'
    sim.config(layout='compact')
    r = get_legacy(sim, *UCLA, 10000)
    assert same_json(json.loads(r.body), v) and b'\n' not in r.body and b': ' not in r.body
    assert r.body == json.dumps(json.loads(r.body), separators=(',', ':'),
                                ensure_ascii=False).encode()
    n = post_new(sim, new_body(*UCLA, 10000, 3))
    assert b'\n' not in n.body and json.loads(n.body)['places']
    sim.config(layout='indent4')
    r = get_legacy(sim, *UCLA, 10000)
    assert same_json(json.loads(r.body), v)
    assert r.body.startswith(b'{\n    "html_attributions": []')
    sim.config(layout='indent2', ascii=True)
    r = get_legacy(sim, *(47.3769, 8.5417), 10000)            # Zurich: umlauts
    assert max(r.body) < 0x80 and b'\\u00' in r.body
    assert same_json(json.loads(r.body), get_legacy(sim, *(47.3769, 8.5417), 10000).json())
    sim.config(layout='google')
    n = post_new(sim, new_body(*UCLA, 10000, 2))
    assert n.body.startswith(b'{\n   "places" : [')


def test_rich_legacy_results(sim):
    sim.config(rich=True)
    r = get_legacy(sim, *UCLA, 20000)
    v = r.json()
    assert r.body == herd_ref.render_google_json(v) + b'\n'
    rich = [x for x in v['results'] if 'photos' in x]
    assert rich and len(rich) < len(v['results'])
    x = rich[0]
    assert x['business_status'] == 'OPERATIONAL' and 1 <= x['price_level'] <= 4
    assert x['photos'][0]['html_attributions'][0].startswith('<a href=')
    assert b'\\u003ca href=' in r.body                     # Google escapes < and >
    assert '\u00e9' in x['photos'][0]['html_attributions'][0]
