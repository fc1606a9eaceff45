"""The admin endpoint (servers.NAME.admin_port): /healthz, /metrics in the Prometheus text format,
/v1/clients/ID, bearer token auth, bounds on slow and oversized requests and on readers that take
nothing, and that none of it is reachable on the client port."""

import re
import socket
import time

import pytest

import herdlib
from herdlib import http_get, iamat, unique_id, wait_for


@pytest.fixture(scope='module')
def pair(tmp_path_factory):
    h = herdlib.Herd(tmp_path_factory.mktemp('admin'), names=['Goloman', 'Hands'],
                     links=[['Goloman', 'Hands']], admin=True)
    try:
        h.start()
    except BaseException:
        h.stop()
        raise
    yield h
    problems = h.stop()
    assert not problems, problems


def metric(text, name, labels=''):
    """The value of one sample, or None."""
    pat = re.escape(name) + (re.escape('{' + labels + '}') if labels else '') + r' (\S+)$'
    for line in text.splitlines():
        m = re.match(pat, line)
        if m:
            return float(m.group(1))
    return None


def test_healthz(pair):
    status, headers, body = http_get(pair.admin_ports['Goloman'], '/healthz')
    assert status == 200 and body == b'serving\n'
    assert headers['content-length'] == str(len(body))


def test_metrics_format_and_counts(pair):
    port = pair.admin_ports['Goloman']
    wait_for(lambda: metric(http_get(port, '/metrics')[2].decode(), 'herd_peer_link_up',
                            'peer="Hands"') == 1, 15, 'link to Hands up')
    cid = unique_id()
    iamat(pair.port('Goloman'), cid, b'+34.068930-118.445127', herdlib.fmt_time(time.time_ns()))
    herdlib.request(pair.port('Goloman'), b'BOGUS line\n')
    status, headers, body = http_get(port, '/metrics')
    assert status == 200
    assert headers['content-type'].startswith('text/plain; version=0.0.4')
    text = body.decode()
    # Every sample belongs to a family announced with HELP and TYPE before it.
    announced = set()
    for line in text.splitlines():
        if line.startswith('# HELP '):
            announced.add(line.split()[2])
        elif line.startswith('# TYPE '):
            assert line.split()[3] in ('counter', 'gauge', 'histogram'), line
        else:
            name = re.match(r'[a-zA-Z_:][a-zA-Z0-9_:]*', line).group(0)
            base = re.sub(r'_(bucket|sum|count)$', '', name)
            assert name in announced or base in announced, line
            assert name.startswith(('herd_', 'process_')), line
    assert metric(text, 'herd_commands_total', 'command="IAMAT",result="ok"') >= 1
    assert metric(text, 'herd_commands_total', 'command="invalid",result="error"') >= 1
    assert metric(text, 'herd_clients_stored') >= 1
    assert metric(text, 'herd_reply_latency_seconds_count') >= 2
    assert metric(text, 'herd_reply_latency_seconds_bucket', 'le="+Inf"') == \
        metric(text, 'herd_reply_latency_seconds_count')
    assert metric(text, 'process_resident_memory_bytes') > 1e6
    assert metric(text, 'process_open_fds') >= 5
    assert metric(text, 'herd_log_bytes_written_total') is not None
    # The record reached Hands: Goloman flooded it, Hands received it from Goloman.
    wait_for(lambda: metric(http_get(port, '/metrics')[2].decode(), 'herd_peer_records_flooded_total',
                            'peer="Hands"') >= 1, 10, 'flooded count')
    # The link to Hands goes through the whole backlog: nothing left pending once the record is sent.
    wait_for(lambda: metric(http_get(port, '/metrics')[2].decode(), 'herd_peer_backlog_pending',
                            'peer="Hands"') == 0, 10, 'backlog pending back to 0')
    assert metric(http_get(port, '/metrics')[2].decode(), 'herd_peer_full_transfers_total', 'peer="Hands"') >= 0
    hport = pair.admin_ports['Hands']
    wait_for(lambda: metric(http_get(hport, '/metrics')[2].decode(), 'herd_peer_records_received_total',
                            'peer="Goloman"') >= 1, 10, 'received count')


def test_client_lookup(pair):
    cid = unique_id('look"up\\')
    t = time.time()
    iamat(pair.port('Goloman'), cid, b'+34.068930-118.445127', herdlib.fmt_time(time.time_ns()))
    import json
    import urllib.parse
    status, headers, body = http_get(pair.admin_ports['Goloman'], '/v1/clients/' + urllib.parse.quote(cid, safe=''))
    assert status == 200 and headers['content-type'] == 'application/json'
    doc = json.loads(body)
    assert doc['client'] == cid.decode() and doc['server'] == 'Goloman'
    assert abs(doc['latitude'] - 34.06893) < 1e-6 and abs(doc['longitude'] + 118.445127) < 1e-6
    assert doc['record'].startswith('AT Goloman ')
    status, _, body = http_get(pair.admin_ports['Goloman'], '/v1/clients/nobody-' + unique_id().decode())
    assert status == 404 and json.loads(body)['error'] == 'unknown client'
    assert http_get(pair.admin_ports['Goloman'], '/v1/clients/%zz')[0] == 400
    assert http_get(pair.admin_ports['Goloman'], '/nothing')[0] == 404


def test_client_ids_that_are_not_utf8_leave_the_json_valid(pair):
    """IDs may be any bytes, JSON text is Unicode: a stray byte is written as U+FFFD, so neither the
    client's record nor the dashboard (which lists recent clients) stops parsing."""
    import json
    import urllib.parse
    cid = b'd2\xff\xfe' + unique_id('raw')
    iamat(pair.port('Goloman'), cid, b'+34.068930-118.445127', herdlib.fmt_time(time.time_ns()))
    status, _, body = http_get(pair.admin_ports['Goloman'], '/v1/clients/' + urllib.parse.quote(cid, safe=''))
    assert status == 200
    expected = cid.decode('utf-8', errors='replace')
    assert json.loads(body.decode('utf-8'))['client'] == expected
    status, _, body = http_get(pair.admin_ports['Goloman'], '/v1/dashboard')
    assert status == 200
    assert expected in [r['client'] for r in json.loads(body.decode('utf-8'))['recent']]


def raw(port, data, timeout=8.0):
    """Sends raw bytes; returns everything until the server closes (bounded)."""
    s = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    try:
        s.sendall(data)
        out = b''
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
        raise AssertionError('server kept the connection open: %r' % out[:200])
    finally:
        s.close()


def test_http_1_0_keep_alive_is_said_when_kept(pair):
    """An HTTP/1.0 client closes after each response unless told otherwise: a connection kept open
    must say `Connection: keep-alive`, or the client waits for the end of the body for the idle
    timeout. Without the request for it, the server closes after the response."""
    port = pair.admin_ports['Goloman']
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    try:
        for _ in range(2):  # the same connection serves a second request
            s.sendall(b'GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
            got = b''
            while not got.endswith(b'serving\n'):
                chunk = s.recv(4096)
                assert chunk, got
                got += chunk
            assert b'\r\nConnection: keep-alive\r\n' in got, got
    finally:
        s.close()
    out = raw(port, b'GET /healthz HTTP/1.0\r\n\r\n', timeout=3)
    assert out.startswith(b'HTTP/1.1 200 ') and out.endswith(b'serving\n')
    assert b'keep-alive' not in out


def test_bad_requests(pair):
    port = pair.admin_ports['Goloman']
    assert raw(port, b'POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n').startswith(b'HTTP/1.1 405 ')
    assert raw(port, b'BREW /pot HTTP/1.1\r\n\r\n').startswith(b'HTTP/1.1 40')
    assert raw(port, b'GET /healthz HTTP/1.1\r\nX: ' + b'a' * 20000 + b'\r\n\r\n').startswith(b'HTTP/1.1 431 ')
    assert raw(port, b'GET /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello').startswith(b'HTTP/1.1 413 ')
    # Pipelined requests are answered in order, then the connection closes as asked.
    out = raw(port, b'GET /healthz HTTP/1.1\r\n\r\nGET /nothing HTTP/1.1\r\nConnection: close\r\n\r\n')
    assert out.count(b'HTTP/1.1 ') == 2 and out.index(b' 200 ') < out.index(b' 404 ')


def test_head_bound_is_exact(pair):
    """README: a head of at most 8 KiB. 8192 bytes, the blank line included, pass; 8193 do not."""
    port = pair.admin_ports['Goloman']

    def head(n):
        h = b'GET /healthz HTTP/1.1\r\nConnection: close\r\nX: '
        return h + b'a' * (n - len(h) - 4) + b'\r\n\r\n'
    assert len(head(8192)) == 8192
    assert raw(port, head(8192)).startswith(b'HTTP/1.1 200 ')
    assert raw(port, head(8193)).startswith(b'HTTP/1.1 431 ')


def split_responses(data):
    """Pipelined responses with Content-Length: ([(status, body)], the incomplete rest)."""
    out = []
    while True:
        end = data.find(b'\r\n\r\n')
        if end < 0:
            return out, data
        lines = data[:end].decode('latin-1').split('\r\n')
        length = next(int(v) for k, _, v in (line.partition(':') for line in lines[1:])
                      if k.lower() == 'content-length')
        if len(data) < end + 4 + length:
            return out, data
        out.append((int(lines[0].split()[1]), data[end + 4:end + 4 + length]))
        data = data[end + 4 + length:]


def test_a_connection_owed_responses_is_not_idle(pair):
    """Many pipelined requests, then a pause in reading longer than the idle timeout: the server
    holds responses it cannot send yet (reading paused), and every one of them arrives whole (the
    idle timer used to close the connection and cut one mid-body)."""
    port = pair.admin_ports['Goloman']
    status, _, world = http_get(port, '/world.json')
    assert status == 200 and len(world) > 10000
    n = 300  # far more than the server's 1 MiB of unsent responses and the kernel's buffers
    s = socket.create_connection(('127.0.0.1', port), timeout=15)
    try:
        s.sendall(b'GET /world.json HTTP/1.1\r\n\r\n' * (n - 1) +
                  b'GET /world.json HTTP/1.1\r\nConnection: close\r\n\r\n')
        time.sleep(7)
        data = b''
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    responses, rest = split_responses(data)
    assert rest == b'', 'response %d cut after %d bytes' % (len(responses) + 1, len(rest))
    assert len(responses) == n
    assert all(r == (200, world) for r in responses)


def test_a_stalled_reader_is_closed(pair):
    """A reader that takes none of its responses is closed after the write timeout (10 s), as a
    stalled reader, not as an idle connection at 5 s."""
    port = pair.admin_ports['Goloman']
    s = socket.create_connection(('127.0.0.1', port), timeout=20)
    try:
        start = time.monotonic()
        s.sendall(b'GET /world.json HTTP/1.1\r\n\r\n' * 300)
        wait_for(lambda: b'stalled reader' in pair.log_bytes('Goloman'), 20, 'stalled reader closed')
        elapsed = time.monotonic() - start
        assert 9.5 < elapsed < 15, elapsed
        # The connection is gone: what the kernel held, then the end (no more than a part of it all).
        data = b''
        try:
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        assert len(split_responses(data)[0]) < 300
    finally:
        s.close()


def test_request_time_runs_from_its_first_byte(pair):
    """The 5 s a request may take start at its first byte, not at the response before it on the same
    keep-alive connection."""
    port = pair.admin_ports['Goloman']
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    try:
        def response():
            data = b''
            while True:
                responses, data = split_responses(data)
                if responses:
                    return responses[0][0]
                chunk = s.recv(65536)
                assert chunk, 'closed: %r' % data
                data += chunk
        s.sendall(b'GET /healthz HTTP/1.1\r\n\r\n')
        assert response() == 200
        time.sleep(4.0)
        s.sendall(b'GET /healthz HTTP/1.1\r\n')
        time.sleep(1.5)
        s.sendall(b'Host: x\r\n\r\n')
        assert response() == 200
    finally:
        s.close()


def test_slowloris_is_closed(pair):
    port = pair.admin_ports['Goloman']
    s = socket.create_connection(('127.0.0.1', port), timeout=15)
    try:
        start = time.monotonic()
        s.sendall(b'GET /healthz HTTP/1.1\r\n')
        out = b''
        while time.monotonic() - start < 12:
            try:
                s.sendall(b'X-Slow: 1\r\n')
            except OSError:
                break
            time.sleep(0.5)
            s.setblocking(False)
            try:
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
            except BlockingIOError:
                pass
            s.setblocking(True)
        assert time.monotonic() - start < 9, 'slow request not closed in time'
        assert out.startswith(b'HTTP/1.1 408 ') or out == b''
    finally:
        s.close()


def test_not_on_client_port(pair):
    out = herdlib.request(pair.port('Goloman'), b'GET /metrics HTTP/1.1\r\n')
    assert out.startswith(b'? GET /metrics')


def test_token(make_herd):
    h = make_herd(names=['Solo'], links=[], admin=True, env={'HERD_ADMIN_TOKEN': 's3cret'},
                  extra_yaml='admin_token_env: HERD_ADMIN_TOKEN\n')
    port = h.admin_ports['Solo']
    assert http_get(port, '/healthz')[0] == 200  # probes need no token
    status, headers, _ = http_get(port, '/metrics')
    assert status == 401 and headers['www-authenticate'] == 'Bearer'
    assert http_get(port, '/metrics', {'Authorization': 'Bearer wrong'})[0] == 401
    assert http_get(port, '/metrics', {'Authorization': 'Bearer s3cret'})[0] == 200
    # The scheme is case-insensitive and may be followed by more than one space (RFC 7235).
    assert http_get(port, '/metrics', {'Authorization': 'bearer  s3cret'})[0] == 200
    for wrong in ('Bearers3cret', 'Bearer', 'Bearer ', 'Basic s3cret', 'BEARER s3cre'):
        assert http_get(port, '/metrics', {'Authorization': wrong})[0] == 401, wrong


def test_token_with_trailing_whitespace(make_herd):
    """Whitespace after a header value is optional whitespace (RFC 9110), not part of the token."""
    h = make_herd(names=['Solo'], links=[], admin=True, env={'HERD_ADMIN_TOKEN': 's3cret'},
                  extra_yaml='admin_token_env: HERD_ADMIN_TOKEN\n')
    port = h.admin_ports['Solo']
    for good in ('Bearer s3cret ', 'Bearer s3cret\t', 'bearer  s3cret \t '):
        assert http_get(port, '/metrics', {'Authorization': good})[0] == 200, repr(good)
    for wrong in ('Bearer s3cre ', 'Bearer  ', 'Bearer s3cret x'):
        assert http_get(port, '/metrics', {'Authorization': wrong})[0] == 401, repr(wrong)


def test_token_in_the_query(make_herd):
    """The dashboard's JSON takes the token as a `token` query parameter, wherever it stands."""
    h = make_herd(names=['Solo'], links=[], admin=True, env={'HERD_ADMIN_TOKEN': 's3cret'},
                  extra_yaml='admin_token_env: HERD_ADMIN_TOKEN\n')
    port = h.admin_ports['Solo']
    for good in ('?token=s3cret', '?x=1&token=s3cret', '?token=s3cret&y=2', '?a&x=1&token=s3%63ret&y=2'):
        assert http_get(port, '/v1/dashboard' + good)[0] == 200, good
    for wrong in ('', '?token=wrong', '?x=1&token=s3cre', '?xtoken=s3cret', '?token=wrong&token=s3cret',
                  '?token=s3cret%zz'):
        assert http_get(port, '/v1/dashboard' + wrong)[0] == 401, wrong
    # Only the dashboard's JSON takes it there.
    assert http_get(port, '/metrics?token=s3cret')[0] == 401


def test_token_env_missing(tmp_path):
    h = herdlib.Herd(tmp_path, names=['Solo'], links=[], admin=True,
                     extra_yaml='admin_token_env: HERD_NO_SUCH_TOKEN_VAR\n')
    h.write_config()
    r = herdlib.run_server_once(['Solo', '--config', h.config_path])
    assert r.returncode in (1, 2) and b'HERD_NO_SUCH_TOKEN_VAR' in r.stderr
