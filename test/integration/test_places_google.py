"""The google and google-new places providers end to end: real herd-server processes asking the
places simulator (tools/places_sim, Python's ssl and asyncio: an independent HTTP/TLS stack) over
HTTPS, with the simulator's development CA in places.ca_file.

Each provider's answers; every status and failure with its exact reply; retries and their absence,
counted at the simulator; keep-alive (20 WHATSATs, one or two TLS connections); coalescing and
max_inflight; a stalled upstream while IAMATs and other clients are answered at once; a certificate
from an unknown CA; the simulator killed and restarted; configuration errors; the key in no log.

One simulator serves the module; each test resets its faults and counters. Every herd and process a
test starts is stopped by it (fixtures), every wait has a deadline.
"""

import json
import os
import re
import selectors
import signal
import socket
import ssl
import struct
import subprocess
import http.client
import time

import pytest

import herdlib

PYTHON = '/usr/bin/python3'
SIM = os.path.join(herdlib.REPO, 'tools', 'places_sim', 'places_sim.py')
CERTS = os.path.join(herdlib.REPO, 'tools', 'certs.py')
KEY = 'herd-test-key-3f9c0e'           # searched for in every log: it must never appear
UCLA = b'+34.068930-118.445127'
SIM_READY_TIMEOUT = 60.0


# ------------------------------------------------------------------------------------------------
# The simulator

def make_certs(out, ca_name):
    subprocess.run([PYTHON, CERTS, '--out', out, '--ca-name', ca_name, '--names', 'places-sim',
                    '--hosts', 'localhost', '127.0.0.1'],
                   check=True, capture_output=True, timeout=60)


class Sim:
    """One places_sim.py process over HTTPS; control requests through Python's http.client."""

    def __init__(self, certs_dir, workdir, port=0):
        self.certs = certs_dir
        self.ca = os.path.join(certs_dir, 'ca.pem')
        self.workdir = workdir
        self.proc = None
        self.port = port
        self.start()

    def start(self):
        self._control = None
        self.err = open(os.path.join(self.workdir, 'sim.stderr'), 'ab')
        self.proc = subprocess.Popen(
            [PYTHON, SIM, '--port', str(self.port), '--gazetteer', herdlib.GAZETTEER,
             '--cert', os.path.join(self.certs, 'places-sim.pem'),
             '--key', os.path.join(self.certs, 'places-sim.key')],
            stdout=subprocess.PIPE, stderr=self.err, stdin=subprocess.DEVNULL)
        line = self._first_line()
        m = re.fullmatch(r'places-sim listening on https://127\.0\.0\.1:(\d+)', line)
        assert m, line
        self.port = int(m.group(1))
        self.endpoint = 'https://127.0.0.1:%d' % self.port

    def _first_line(self):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buf = b''
        deadline = time.monotonic() + SIM_READY_TIMEOUT
        try:
            while b'\n' not in buf:
                left = deadline - time.monotonic()
                assert left > 0, 'places simulator not ready within %.0f s' % SIM_READY_TIMEOUT
                if sel.select(min(left, 0.5)):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    assert chunk, 'places simulator exited: status %s' % self.proc.wait(10)
                    buf += chunk
        finally:
            sel.close()
        return buf.split(b'\n', 1)[0].decode()

    def control(self, method, path, value=None):
        """One control request on a kept-alive connection of our own: made before any fault, it
        keeps working when new connections stall (stall: handshake)."""
        for attempt in (1, 2):
            if self._control is None:
                ctx = ssl.create_default_context(cafile=self.ca)
                self._control = http.client.HTTPSConnection('127.0.0.1', self.port, timeout=herdlib.IO_TIMEOUT,
                                                            context=ctx)
            try:
                self._control.request(method, path, body=None if value is None else json.dumps(value))
                r = self._control.getresponse()
                return r.status, json.loads(r.read())
            except (OSError, http.client.HTTPException):
                self._control.close()
                self._control = None
                if attempt == 2:
                    raise

    def faults(self, **faults):
        status, v = self.control('POST', '/_sim/config', faults)
        assert status == 200, v
        return v

    def stats(self):
        return self.control('GET', '/_sim/stats')[1]

    def reset(self):
        self.faults()
        self.control('POST', '/_sim/reset-stats')
        self.control('GET', '/_sim/stats')  # opens our control connection before any fault

    def kill(self):
        if self._control is not None:
            self._control.close()
            self._control = None
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait(timeout=10)
            self.proc.stdout.close()
        self.err.close()

    def stop(self):
        if self._control is not None:
            self._control.close()
            self._control = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc:
            self.proc.stdout.close()
        self.err.close()


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    """The simulator's CA and certificate, and a second, unrelated CA."""
    good = str(tmp_path_factory.mktemp('sim-certs'))
    other = str(tmp_path_factory.mktemp('other-ca'))
    make_certs(good, 'places-sim test CA')
    make_certs(other, 'some other CA')
    return {'dir': good, 'ca': os.path.join(good, 'ca.pem'), 'other_ca': os.path.join(other, 'ca.pem')}


@pytest.fixture(scope='module')
def sim(certs, tmp_path_factory):
    s = Sim(certs['dir'], str(tmp_path_factory.mktemp('sim')))
    yield s
    s.stop()


@pytest.fixture
def fresh_sim(sim):
    sim.reset()
    return sim


# ------------------------------------------------------------------------------------------------
# Herds that use it

def places_conf(sim, provider='google', **extra):
    conf = {'provider': provider, 'key_env': 'HERD_TEST_PLACES_KEY', 'endpoint': sim.endpoint,
            'ca_file': sim.ca, 'timeout_ms': 10000}
    conf.update(extra)
    return conf


def solo(make_herd, sim, provider='google', threads=2, env_key=KEY, limits=None, **extra):
    return make_herd(names=['Solo'], links=[], threads=threads, places=places_conf(sim, provider, **extra),
                     env={'HERD_TEST_PLACES_KEY': env_key}, limits=limits)


def status_of(reply):
    """The "status" of a framed WHATSAT reply's JSON (after its AT line)."""
    return json.loads(reply.split(b'\n', 1)[1])['status']


def ask(herd, client_id, radius=10, bound=5, location=UCLA, timeout=herdlib.IO_TIMEOUT):
    """IAMAT then WHATSAT on one connection; returns (AT line, JSON text) of the WHATSAT reply."""
    port = herd.port('Solo')
    with herdlib.Client(port, timeout) as c:
        c.send(b'IAMAT %s %s %s\n' % (client_id, location, b'1520023934.918963997'))
        at = c.read_line()
        c.send(b'WHATSAT %s %s %d\n' % (client_id, str(radius).encode(), bound))
        reply = c.read_whatsat()
    first, json_text = reply.split(b'\n', 1)
    assert first + b'\n' == at, reply[:300]
    assert json_text.endswith(b'}\n\n') and b'\n\n' not in json_text[:-2], reply[-300:]
    return at[:-1], json_text[:-2].decode()


def error_json(status, message):
    """A reply with no usable answer, in Google's legacy layout (ASCII messages, no < or >)."""
    return ('{\n   "error_message" : %s,\n   "html_attributions" : [],\n   "results" : [],\n'
            '   "status" : "%s"\n}' % (json.dumps(message), status))


def status_json(status):
    return '{\n   "html_attributions" : [],\n   "results" : [],\n   "status" : "%s"\n}' % status


def offline_reply(make_herd, client_id, radius=10, bound=5):
    """What the offline provider answers for the same client and query (the simulator's legacy
    endpoint is byte for byte the offline provider for 20 results or fewer)."""
    h = make_herd(names=['Solo'], links=[], threads=1)
    return ask(h, client_id, radius, bound)


def settled_log(herd):
    """The server's log once the writer thread has caught up (it writes every 20 ms)."""
    herdlib.wait_for(lambda: b' places ' in herd.log_bytes('Solo'), 5, 'places lines in the log')
    time.sleep(0.1)
    return herd.log_bytes('Solo')


def no_key_anywhere(herd):
    log = settled_log(herd)
    assert KEY.encode() not in log
    for s in herd.servers.values():
        assert KEY.encode() not in s.stderr()


def legacy_requests(sim):
    return sim.stats()['requests']['legacy']


def new_requests(sim):
    return sim.stats()['requests']['new']


# ------------------------------------------------------------------------------------------------
# Answers

def test_google_answers_as_the_offline_provider_does(make_herd, fresh_sim):
    h = solo(make_herd, fresh_sim)
    cid = herdlib.unique_id()
    at, got = ask(h, cid, radius=10, bound=5)
    _, offline = offline_reply(make_herd, cid, radius=10, bound=5)
    assert got == offline
    assert json.loads(got)['status'] == 'OK'
    assert len(json.loads(got)['results']) == 5
    st = fresh_sim.stats()
    assert st['requests']['legacy'] == 1
    assert st['last_key'] == KEY                         # the key reached the upstream...
    target = st['last_request']['target']
    assert target.startswith('/maps/api/place/nearbysearch/json?location=34.06893,-118.445127&radius=10000&key=')
    log = settled_log(h).decode()
    assert re.search(r'places > GET %s/maps/api/place/nearbysearch/json\?location=34\.06893,-118\.445127'
                     r'&radius=10000&key=\*\*\*' % re.escape(fresh_sim.endpoint), log)
    assert re.search(r'places < HTTP 200 in \d+ ms: status OK, \d+ results', log)
    no_key_anywhere(h)                                   # ...and no log line


def test_google_cuts_to_the_bound_and_passes_zero_results(make_herd, fresh_sim):
    h = solo(make_herd, fresh_sim)
    _, one = ask(h, herdlib.unique_id(), radius=50, bound=1)
    assert len(json.loads(one)['results']) == 1
    _, ocean = ask(h, herdlib.unique_id(), radius=1, bound=5, location=b'+0.000000-140.000000')
    assert ocean == status_json('ZERO_RESULTS')


def test_google_new_answers_translated(make_herd, fresh_sim):
    h = solo(make_herd, fresh_sim, 'google-new')
    cid = herdlib.unique_id()
    _, got = ask(h, cid, radius=10, bound=4)
    _, offline = offline_reply(make_herd, cid, radius=10, bound=4)
    reply, expected = json.loads(got), json.loads(offline)
    assert reply['status'] == 'OK'
    assert [r['name'] for r in reply['results']] == [r['name'] for r in expected['results']]
    for r, e in zip(reply['results'], expected['results']):
        assert r['place_id'] == e['place_id'] and r['reference'] == e['place_id']
        assert r['geometry'] == e['geometry']
        assert r['types'] == ['locality', 'political']
        assert r['vicinity'] == e['vicinity']
        assert r['scope'] == 'GOOGLE'
    st = fresh_sim.stats()
    assert st['requests']['new'] == 1
    last = st['last_request']
    assert last['method'] == 'POST' and last['target'] == '/v1/places:searchNearby'
    assert last['headers']['x-goog-api-key'] == KEY
    assert 'places.displayName' in last['headers']['x-goog-fieldmask']
    body = json.loads(last['body'])
    assert body['maxResultCount'] == 4
    assert body['locationRestriction']['circle'] == {
        'center': {'latitude': 34.06893, 'longitude': -118.445127}, 'radius': 10000}
    _, ocean = ask(h, herdlib.unique_id(), radius=1, bound=5, location=b'+0.000000-140.000000')
    assert ocean == status_json('ZERO_RESULTS')
    no_key_anywhere(h)


def test_every_framing_encoding_and_layout_gives_the_same_reply(make_herd, fresh_sim):
    h = solo(make_herd, fresh_sim)
    cid = herdlib.unique_id()
    _, baseline = ask(h, cid, radius=20, bound=7)
    variants = [dict(framing='chunked', chunk_bytes=100), dict(framing='eof'), dict(gzip=False),
                dict(framing='chunked', gzip=True, chunk_bytes=7), dict(slow_body_ms=20, chunk_bytes=2000),
                dict(layout='compact'), dict(layout='indent2'), dict(layout='indent4', framing='chunked'),
                dict(close=True), dict(rich=False, latency_ms=50)]
    for v in variants:
        fresh_sim.faults(**v)
        _, got = ask(h, cid, radius=20, bound=7)
        assert got == baseline, v
    assert fresh_sim.stats()['chunked_responses'] >= 3
    assert fresh_sim.stats()['gzip_responses'] >= 3


# ------------------------------------------------------------------------------------------------
# Statuses passed on, and where there are retries

LEGACY_PASSED_ON = [
    ('REQUEST_DENIED', 'REQUEST_DENIED', 'The provided API key is invalid.'),
    ('INVALID_REQUEST', 'INVALID_REQUEST', 'Invalid request. Missing the location parameter.'),
    ('UNKNOWN_ERROR', 'UNKNOWN_ERROR', 'Something went wrong upstream.'),
    ('OVER_DAILY_LIMIT', 'OVER_QUERY_LIMIT', 'You have exceeded your daily request quota for this API.'),
]


@pytest.mark.parametrize('fault,status,message', LEGACY_PASSED_ON)
def test_legacy_statuses_are_passed_on_without_retry(make_herd, fresh_sim, fault, status, message):
    h = solo(make_herd, fresh_sim)
    fresh_sim.faults(status=fault, error_message=message)
    _, got = ask(h, herdlib.unique_id())
    assert got == error_json(status, message)
    time.sleep(0.8)  # a retry would have been sent by now
    assert legacy_requests(fresh_sim) == 1


NEW_PASSED_ON = [
    ('INVALID_ARGUMENT', 'INVALID_REQUEST', 'Invalid request: bad circle.'),
    ('PERMISSION_DENIED', 'REQUEST_DENIED', 'The request is missing a valid API key.'),
    ('NOT_FOUND', 'INVALID_REQUEST', 'Requested entity was not found.'),
]


@pytest.mark.parametrize('fault,status,message', NEW_PASSED_ON)
def test_new_error_envelopes_become_legacy_statuses_without_retry(make_herd, fresh_sim, fault, status, message):
    h = solo(make_herd, fresh_sim, 'google-new')
    fresh_sim.faults(status=fault, error_message=message)
    _, got = ask(h, herdlib.unique_id())
    assert got == error_json(status, message)
    time.sleep(0.8)
    assert new_requests(fresh_sim) == 1


@pytest.mark.parametrize('provider,faults,attempts', [
    ('google', dict(http_status=503, body='html', fail_first=2), 3),
    ('google', dict(http_status=500, fail_first=1), 2),
    ('google', dict(http_status=504, body='empty', fail_first=1), 2),
    ('google', dict(status='OVER_QUERY_LIMIT', fail_first=2), 3),
    ('google-new', dict(status='RESOURCE_EXHAUSTED', fail_first=2), 3),
    ('google-new', dict(status='UNAVAILABLE', fail_first=1), 2),
    ('google-new', dict(status='INTERNAL', fail_first=1), 2),
])
def test_transient_failures_are_retried_and_counted_at_the_simulator(make_herd, fresh_sim, provider, faults,
                                                                    attempts):
    h = solo(make_herd, fresh_sim, provider)
    cid = herdlib.unique_id()
    fresh_sim.faults(**faults)
    start = time.monotonic()
    _, got = ask(h, cid, timeout=10)
    took = time.monotonic() - start
    assert json.loads(got)['status'] == 'OK', got
    st = fresh_sim.stats()
    assert st['requests']['legacy' if provider == 'google' else 'new'] == attempts
    assert st['faults_applied'] == attempts - 1
    # Jittered backoff: about 0.5 s before the second attempt, 0.75 s before the third.
    assert took >= 0.3 * (attempts - 1)
    assert took < 5
    log = settled_log(h).decode()
    assert log.count('places * retrying in ') == attempts - 1
    assert '(attempt %d)' % attempts in log


@pytest.mark.parametrize('provider,faults,status,message', [
    ('google', dict(http_status=503, body='html'), 'UNKNOWN_ERROR',
     'the places upstream answered HTTP 503 with a body that is not JSON'),
    ('google', dict(status='OVER_QUERY_LIMIT', error_message='Slow down.'), 'OVER_QUERY_LIMIT', 'Slow down.'),
    ('google-new', dict(status='RESOURCE_EXHAUSTED', error_message='Quota exceeded.'), 'OVER_QUERY_LIMIT',
     'Quota exceeded.'),
    ('google-new', dict(status='UNAVAILABLE', error_message='Try later.'), 'UNKNOWN_ERROR', 'Try later.'),
])
def test_retries_end_with_the_budget(make_herd, fresh_sim, provider, faults, status, message):
    h = solo(make_herd, fresh_sim, provider, timeout_ms=2000)
    fresh_sim.faults(**faults)
    start = time.monotonic()
    _, got = ask(h, herdlib.unique_id(), timeout=10)
    took = time.monotonic() - start
    assert got == error_json(status, message)
    assert took < 2.5
    st = fresh_sim.stats()
    assert 2 <= st['requests']['legacy' if provider == 'google' else 'new'] <= 4


# ------------------------------------------------------------------------------------------------
# No usable answer: UNKNOWN_ERROR saying why, within timeout_ms

def test_no_usable_answer_is_unknown_error_within_the_timeout(make_herd, fresh_sim):
    h = solo(make_herd, fresh_sim, timeout_ms=1500)
    where = '127.0.0.1:%d' % fresh_sim.port
    cases = [
        (dict(stall='request'), 'no answer from the places upstream within 1500 ms'),
        (dict(stall='body'), 'no answer from the places upstream within 1500 ms'),
        (dict(stall='handshake'), 'no answer from the places upstream within 1500 ms'),
        (dict(not_json=True), 'the places upstream answered HTTP 200 with a body that is not JSON'),
        (dict(not_json='{"results": ['), 'the places upstream answered HTTP 200 with a body that is not JSON'),
        (dict(http_status=502, body='html'), 'the places upstream answered HTTP 502 with a body that is not JSON'),
        (dict(drop='close'), re.compile(r'the places upstream failed: %s: .*' % re.escape(where))),
        (dict(drop='reset'), re.compile(r'the places upstream failed: %s: .*' % re.escape(where))),
        (dict(truncate=True), re.compile(r'the places upstream failed: %s: .*middle of the response.*'
                                         % re.escape(where))),
        (dict(truncate=True, framing='chunked'), re.compile(r'the places upstream failed: %s: .*' % re.escape(where))),
    ]
    for faults, expected in cases:
        fresh_sim.faults(**faults)
        start = time.monotonic()
        _, got = ask(h, herdlib.unique_id(), timeout=10)
        took = time.monotonic() - start
        assert took < 1.5 + 1.0, (faults, took)
        if isinstance(expected, str):
            assert got == error_json('UNKNOWN_ERROR', expected), faults
        else:
            message = json.loads(got)['error_message']
            assert expected.fullmatch(message), (faults, message)
            assert got == error_json('UNKNOWN_ERROR', message)
        if 'stall' in faults:
            assert took >= 1.4
    no_key_anywhere(h)


def test_a_certificate_from_an_unknown_ca_is_refused(make_herd, fresh_sim, certs):
    h = solo(make_herd, fresh_sim, ca_file=certs['other_ca'])
    _, got = ask(h, herdlib.unique_id())
    message = json.loads(got)['error_message']
    assert got == error_json('UNKNOWN_ERROR', message)
    assert message.startswith('the places upstream failed: ')
    assert 'certificate verify failed' in message, message
    st = fresh_sim.stats()
    assert st['requests']['legacy'] == 0
    assert st['tls_handshake_failures'] >= 1
    # The system store does not know the simulator's CA either.
    h2 = solo(make_herd, fresh_sim, ca_file='')
    _, got2 = ask(h2, herdlib.unique_id())
    assert 'certificate verify failed' in json.loads(got2)['error_message']


def test_a_stalled_upstream_never_delays_iamat_or_other_clients(make_herd, fresh_sim):
    h = solo(make_herd, fresh_sim, timeout_ms=3000)
    port = h.port('Solo')
    fresh_sim.faults(stall='request')
    waiting = []
    for i in range(3):
        c = herdlib.Client(port, timeout=10)
        cid = herdlib.unique_id()
        c.send(b'IAMAT %s %s 1520023934.5\n' % (cid, UCLA))
        c.read_line()
        c.send(b'WHATSAT %s %d 5\n' % (cid, 10 + i))
        waiting.append(c)
    try:
        start = time.monotonic()
        for _ in range(20):
            t0 = time.monotonic()
            line = herdlib.iamat(port, herdlib.unique_id(), UCLA, b'1520023935.0')
            assert line.startswith(b'AT Solo ')
            assert time.monotonic() - t0 < 0.5
        assert time.monotonic() - start < 2.5
        for c in waiting:
            reply = c.read_whatsat(timeout=10)
            assert reply.split(b'\n', 1)[1][:-2].decode() == error_json(
                'UNKNOWN_ERROR', 'no answer from the places upstream within 3000 ms')
    finally:
        for c in waiting:
            c.close()


# ------------------------------------------------------------------------------------------------
# Connections, coalescing, limits

def test_keep_alive_twenty_whatsats_one_or_two_tls_connections(make_herd, fresh_sim):
    h = solo(make_herd, fresh_sim)
    cid = herdlib.unique_id()
    with herdlib.Client(h.port('Solo')) as c:
        c.send(b'IAMAT %s %s 1520023934.5\n' % (cid, UCLA))
        c.read_line()
        for i in range(20):
            c.send(b'WHATSAT %s %d 3\n' % (cid, 1 + i))
            assert b'"status" : "' in c.read_whatsat()
    st = fresh_sim.stats()
    assert st['requests']['legacy'] == 20
    assert 1 <= st['tcp_connections'] <= 2
    assert 1 <= st['tls_handshakes'] <= 2
    log = settled_log(h).decode()
    assert 1 <= log.count('places * connected to ') <= 2


def test_identical_requests_in_flight_share_one_upstream_call(make_herd, fresh_sim):
    h = solo(make_herd, fresh_sim, threads=1)
    cid = herdlib.unique_id()
    port = h.port('Solo')
    herdlib.iamat(port, cid, UCLA, b'1520023934.5')
    fresh_sim.faults(latency_ms=400)
    clients = [herdlib.Client(port, timeout=10) for _ in range(5)]
    try:
        for i, c in enumerate(clients):
            c.send(b'WHATSAT %s 10 %d\n' % (cid, 1 + i))
        replies = [c.read_whatsat(timeout=10) for c in clients]
    finally:
        for c in clients:
            c.close()
    assert legacy_requests(fresh_sim) == 1
    for i, r in enumerate(replies):
        assert len(json.loads(r.split(b'\n', 1)[1])['results']) == 1 + i


def one_slot_solo(make_herd, fresh_sim):
    """One server with one upstream slot, a client known to it, and 300 ms of upstream latency:
    (its client port, the client's ID)."""
    h = solo(make_herd, fresh_sim, threads=1, max_inflight=1)
    cid = herdlib.unique_id()
    port = h.port('Solo')
    herdlib.iamat(port, cid, UCLA, b'1520023934.5')
    fresh_sim.faults(latency_ms=300)
    return port, cid


def test_max_inflight_queues_then_refuses(make_herd, fresh_sim):
    # One upstream slot and a queue of 4 (4 x max_inflight): of six different WHATSATs sent at
    # once, one goes upstream, four wait their turn, the sixth is refused at once.
    port, cid = one_slot_solo(make_herd, fresh_sim)
    clients = [herdlib.Client(port, timeout=10) for _ in range(6)]
    try:
        for i, c in enumerate(clients):
            c.send(b'WHATSAT %s %d 2\n' % (cid, 1 + i))
            time.sleep(0.02)  # in this order
        start = time.monotonic()
        refused = clients[5].read_whatsat(timeout=10)
        assert time.monotonic() - start < 0.25
        assert refused.split(b'\n', 1)[1][:-2].decode() == error_json(
            'UNKNOWN_ERROR', 'too many places requests in progress (max_inflight 1); try again later')
        for c in clients[:5]:
            assert status_of(c.read_whatsat(timeout=10)) in ('OK', 'ZERO_RESULTS')
    finally:
        for c in clients:
            c.close()
    st = fresh_sim.stats()
    assert st['requests']['legacy'] == 5
    assert st['max_inflight'] == 1


def test_whatsats_of_a_client_that_left_are_never_sent_upstream(make_herd, fresh_sim):
    # One upstream slot: a client sends four different WHATSATs and leaves (resets its connection)
    # while the first is in flight. The three queued behind it are dropped when the slot comes
    # free; another client's WHATSAT is then answered as usual. (A client that closes with a FIN
    # may only have shut its sending side, still owed its replies: the server learns that it left
    # at its next reply, which the client's kernel answers with a reset.)
    port, cid = one_slot_solo(make_herd, fresh_sim)
    c = herdlib.Client(port, timeout=10)
    c.send(b''.join(b'WHATSAT %s %d 2\n' % (cid, 1 + i) for i in range(4)))
    herdlib.wait_for(lambda: legacy_requests(fresh_sim) == 1, 5, 'the first WHATSAT upstream')
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    c.close()
    time.sleep(0.6)  # the first call's answer comes (300 ms) and frees the slot
    fresh_sim.faults(latency_ms=0)
    later = herdlib.Client(port, timeout=10)
    try:
        later.send(b'WHATSAT %s 5 2\n' % cid)
        assert status_of(later.read_whatsat(timeout=10)) in ('OK', 'ZERO_RESULTS')
    finally:
        later.close()
    assert legacy_requests(fresh_sim) == 2


def test_reading_stops_at_max_pending_replies(make_herd, fresh_sim):
    # limits.max_pending_replies 2: of four different WHATSATs sent at once, two are taken and go
    # upstream; the other two stay unread until answers free the queue, then all four are answered.
    h = solo(make_herd, fresh_sim, threads=1, limits={'max_pending_replies': 2})
    port = h.port('Solo')
    cid = herdlib.unique_id()
    herdlib.iamat(port, cid, UCLA, b'1520023934.5')
    fresh_sim.faults(latency_ms=1000)
    with herdlib.Client(port, timeout=10) as c:
        c.send(b''.join(b'WHATSAT %s %d 2\n' % (cid, 1 + i) for i in range(4)))
        herdlib.wait_for(lambda: legacy_requests(fresh_sim) >= 2, 5, 'two WHATSATs upstream')
        time.sleep(0.4)  # (nothing to wait for: a third request would come now if one were taken)
        assert legacy_requests(fresh_sim) == 2
        for _ in range(4):
            assert status_of(c.read_whatsat(timeout=10)) in ('OK', 'ZERO_RESULTS')
    assert legacy_requests(fresh_sim) == 4


def test_a_client_owed_a_places_answer_is_not_idle(make_herd, fresh_sim):
    # limits.idle_timeout_ms closes a client that sends nothing and is owed nothing: one waiting
    # longer than that for a slow upstream's answer keeps its connection and gets the answer.
    h = solo(make_herd, fresh_sim, threads=1, limits={'idle_timeout_ms': 300})
    port = h.port('Solo')
    cid = herdlib.unique_id()
    herdlib.iamat(port, cid, UCLA, b'1520023934.5')
    fresh_sim.faults(latency_ms=1200)
    with herdlib.Client(port, timeout=10) as c:
        c.send(b'WHATSAT %s 10 2\n' % cid)
        reply = c.read_whatsat(timeout=10)
        assert status_of(reply) in ('OK', 'ZERO_RESULTS')
        # Owed nothing now, it is closed in about one bound.
        c.read_to_eof(timeout=5)


def test_a_client_that_half_closes_still_gets_its_places_answer(make_herd, fresh_sim):
    # A client that only shuts its sending side is owed the answers to what it sent: its
    # connection stays until the slow upstream's answer has gone out, then closes.
    h = solo(make_herd, fresh_sim, threads=1)
    port = h.port('Solo')
    cid = herdlib.unique_id()
    herdlib.iamat(port, cid, UCLA, b'1520023934.5')
    fresh_sim.faults(latency_ms=500)
    with herdlib.Client(port, timeout=10) as c:
        c.send(b'WHATSAT %s 10 2\n' % cid)
        c.half_close()
        reply = c.read_whatsat(timeout=10)
        assert status_of(reply) in ('OK', 'ZERO_RESULTS')
        assert c.read_to_eof(timeout=5) == b''


# ------------------------------------------------------------------------------------------------
# The simulator goes away and comes back

def test_herd_keeps_serving_while_the_simulator_is_killed_and_restarted(make_herd, certs, tmp_path):
    s = Sim(certs['dir'], str(tmp_path))
    try:
        h = solo(make_herd, s, timeout_ms=3000)
        port = h.port('Solo')
        cid = herdlib.unique_id()
        _, before = ask(h, cid)
        assert json.loads(before)['status'] == 'OK'
        s.kill()
        start = time.monotonic()
        _, during = ask(h, cid)
        assert time.monotonic() - start < 2
        message = json.loads(during)['error_message']
        assert during == error_json('UNKNOWN_ERROR', message)
        assert message.startswith('the places upstream failed: ')
        assert herdlib.iamat(port, herdlib.unique_id(), UCLA, b'1520023935.0').startswith(b'AT Solo ')
        s.start()  # the same port
        _, after = ask(h, cid)
        assert after == before
        # The kept-alive connection to the old process was dead: replaced, not reported.
        _, again = ask(h, cid)
        assert again == before
    finally:
        s.stop()


# ------------------------------------------------------------------------------------------------
# Configuration

def config_error(tmp_path, places, env, check=False):
    """Runs a one-server herd with this places section (only validating it with `check`, so that a
    configuration wrongly accepted does not leave a server running); returns (status, stderr text)."""
    h = herdlib.Herd(tmp_path, names=['Solo'], links=[], places=places)
    h.write_config()
    r = herdlib.run_server_once(['Solo', '--config', h.config_path] + (['--check'] if check else []),
                                env=herdlib.server_env(env))
    return r.returncode, r.stderr.decode()


@pytest.mark.parametrize('case', ['no key', 'empty key', 'bad ca', 'bad endpoint', 'key with a line break',
                                  'key with a control byte', 'key with a space'])
def test_configuration_errors_name_the_key_and_never_the_api_key(tmp_path, sim, case):
    places = places_conf(sim)
    env = {'HERD_TEST_PLACES_KEY': KEY}
    check = False
    if case.startswith('key with'):
        # google-new sends the key as a header: a line break made every WHATSAT fail ("invalid
        # request header") after a clean start, a control byte or a space went out in the header.
        places['provider'] = 'google-new'
        env = {'HERD_TEST_PLACES_KEY': {'key with a line break': KEY + '\n', 'key with a control byte': KEY + '\x01',
                                        'key with a space': KEY + ' '}[case]}
        want = ["places.key_env", "'HERD_TEST_PLACES_KEY'", 'space or control character']
        check = True
    elif case == 'no key':
        env = {}
        places['key_env'] = 'HERD_TEST_NO_SUCH_VARIABLE'
        want = ["places.key_env", "'HERD_TEST_NO_SUCH_VARIABLE'", 'not set']
    elif case == 'empty key':
        env = {'HERD_TEST_PLACES_KEY': ''}
        want = ["places.key_env", "'HERD_TEST_PLACES_KEY'", 'empty']
    elif case == 'bad ca':
        places['ca_file'] = str(tmp_path / 'missing-ca.pem')
        want = ['places.ca_file', 'missing-ca.pem']
    else:
        places['endpoint'] = 'htps://127.0.0.1:%d' % sim.port
        want = ['places.endpoint', "'htps://127.0.0.1:%d'" % sim.port]
    status, err = config_error(tmp_path, places, env, check)
    assert status == 2, err
    assert 'config.yaml' in err
    for w in want:
        assert w in err, err
    assert KEY not in err


def test_a_plain_http_endpoint_is_allowed_with_a_warning(make_herd, tmp_path):
    plain = subprocess.Popen([PYTHON, SIM, '--plain', '--port', '0', '--gazetteer', herdlib.GAZETTEER],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        holder = Sim.__new__(Sim)
        holder.proc = plain
        line = holder._first_line()
        m = re.fullmatch(r'places-sim listening on http://127\.0\.0\.1:(\d+)', line)
        assert m, line
        h = make_herd(names=['Solo'], links=[], places={'provider': 'google', 'key_env': 'HERD_TEST_PLACES_KEY',
                                                        'endpoint': 'http://127.0.0.1:%s' % m.group(1)},
                      env={'HERD_TEST_PLACES_KEY': KEY})
        _, got = ask(h, herdlib.unique_id())
        assert json.loads(got)['status'] == 'OK'
        err = h.servers['Solo'].stderr().decode()
        assert 'places.endpoint' in err and 'plain HTTP' in err
        no_key_anywhere(h)
    finally:
        plain.kill()
        plain.wait(timeout=10)
        plain.stdout.close()


def test_upstream_requests_are_counted_in_metrics(make_herd, fresh_sim):
    """The admin endpoint's places counters (issue 10): one answered attempt shows as 2xx, with a
    latency sample."""
    h = make_herd(names=['Solo'], links=[], threads=2, places=places_conf(fresh_sim),
                  env={'HERD_TEST_PLACES_KEY': KEY}, admin=True)
    ask(h, herdlib.unique_id())
    text = herdlib.http_get(h.admin_ports['Solo'], '/metrics')[2].decode()
    assert re.search(r'^herd_places_upstream_requests_total\{status="2xx"\} 1$', text, re.M), text[-3000:]
    assert re.search(r'^herd_places_upstream_latency_seconds_count 1$', text, re.M)
    assert KEY not in text
