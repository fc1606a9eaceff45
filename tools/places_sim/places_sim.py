#!/usr/bin/python3
"""Places simulator: a local HTTPS stand-in for Google's Nearby Search, legacy and New.

    /usr/bin/python3 tools/places_sim/places_sim.py [--port 0] [--host 127.0.0.1]
        (--cert FILE --key FILE | --plain) [--gazetteer build/data/cities.pbf]
        [--faults JSON] [--idle-timeout-ms 60000] [--tls-max 1.2|1.3] [--access-log FILE|-]

The first line on stdout is `places-sim listening on https://127.0.0.1:PORT` (http:// with
--plain) once the gazetteer is loaded and the socket listens; --port 0 picks a free port.
SIGINT/SIGTERM stop it (exit 0); it exits 1 when it cannot listen, 2 on a usage error.

Endpoints (README.md beside this file has examples):
  GET  /maps/api/place/nearbysearch/json?location=LAT,LNG&radius=M&key=K   legacy
  POST /v1/places:searchNearby  (X-Goog-Api-Key, X-Goog-FieldMask, JSON body)  New
  POST /_sim/config  GET /_sim/config  GET /_sim/stats  POST /_sim/reset-stats  control

It is the interop counterpart of the herd's C++ HTTPS client, so it shares nothing with it: plain
asyncio streams with Python's ssl module, a hand-written HTTP/1.1 reader/writer (http11.py) that
controls framing byte for byte, the answers of google_api.py, the faults of faults.py.
Single-threaded: one asyncio loop, one task per connection, requests on a connection in order.
"""

import argparse
import asyncio
import gzip
import ipaddress
import json
import os
import signal
import socket
import ssl
import struct
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import google_api  # noqa: E402
import http11  # noqa: E402
from faults import FaultError, Faults  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_GAZETTEER = os.path.join(REPO_ROOT, 'build', 'data', 'cities.pbf')
LEGACY_PATH = '/maps/api/place/nearbysearch/json'
NEW_PATH = '/v1/places:searchNearby'
CONTROL_PREFIX = '/_sim/'
HANDSHAKE_TIMEOUT = 10.0          # seconds for a TLS handshake
STALL_MAX = 3600.0                # a stalled connection is closed after this long regardless
CLOSE_TIMEOUT = 2.0               # seconds to wait for a graceful close
LEGACY_SERVER = 'scaffolding on HTTPServer2'
NEW_SERVER = 'ESF'


class Stats:
    """Counters served by GET /_sim/stats; POST /_sim/reset-stats starts a new epoch."""

    def __init__(self):
        self.epoch = 0
        self.reset()

    def reset(self):
        self.epoch += 1
        self.requests = {'legacy': 0, 'new': 0, 'control': 0, 'other': 0}
        self.responses = {}
        self.faults_applied = 0
        self.tcp_connections = 0
        self.control_connections = 0
        self.tls_handshakes = 0
        self.tls_resumed = 0
        self.tls_handshake_failures = 0
        self.last_tls_error = None
        self.last_tls_version = None
        self.last_sni = None
        self.last_alpn = None
        self.max_inflight = 0
        self.keys_seen = 0
        self.last_key = None
        self.gzip_responses = 0
        self.chunked_responses = 0
        self.last_request = None


class Connection:
    __slots__ = ('id', 'epoch', 'tls', 'resumed', 'requests', 'control', 'version', 'alpn',
                 'sni')

    def __init__(self, cid, epoch):
        self.id = cid
        self.epoch = epoch          # stats epoch it was counted in
        self.tls = False
        self.resumed = False
        self.requests = 0
        self.control = False
        self.version = self.alpn = self.sni = None


class Simulator:
    def __init__(self, gazetteer, faults, ssl_ctx, idle_timeout_ms, access_log):
        self.legacy = google_api.LegacyApi(gazetteer)
        self.new = google_api.NewApi(gazetteer)
        self.ssl_ctx = ssl_ctx
        self.default_idle_ms = idle_timeout_ms
        self.faults = faults
        self.fail_left = faults.fail_first
        self.stats = Stats()
        self.inflight = 0
        self.open_connections = 0
        self.conn_seq = 0
        self.tasks = set()
        self.log_file = access_log
        self.started = time.monotonic()
        self.sni = {}               # id(SSLObject) -> server name, until its handshake completes
        if ssl_ctx is not None:
            ssl_ctx.sni_callback = self._on_sni

    # -- bookkeeping ------------------------------------------------------------------------------

    def log(self, text):
        if self.log_file is not None:
            self.log_file.write('%s places-sim %s\n' % (time.strftime('%H:%M:%S'), text))
            self.log_file.flush()

    def _on_sni(self, sslobj, server_name, ctx):
        if len(self.sni) > 4096:     # entries of handshakes that failed
            self.sni.clear()
        self.sni[id(sslobj)] = server_name
        return None

    def take_failure(self, connection_level):
        """Whether the failure faults apply to this request (or new connection), counting
        fail_first down."""
        f = self.faults
        if connection_level:
            if f.stall != 'handshake':
                return False
        elif not f.has_request_failure:
            return False
        if self.fail_left is None:
            return True
        if self.fail_left > 0:
            self.fail_left -= 1
            return True
        return False

    def stats_json(self):
        s = self.stats
        return {
            'requests': dict(s.requests),
            'responses': dict(sorted(s.responses.items())),
            'faults_applied': s.faults_applied,
            'fail_first_left': self.fail_left,
            'tcp_connections': s.tcp_connections,
            'control_connections': s.control_connections,
            'open_connections': self.open_connections,
            'tls_handshakes': s.tls_handshakes,
            'tls_resumed': s.tls_resumed,
            'tls_handshake_failures': s.tls_handshake_failures,
            'last_tls_error': s.last_tls_error,
            'last_tls_version': s.last_tls_version,
            'last_sni': s.last_sni,
            'last_alpn': s.last_alpn,
            'inflight': self.inflight,
            'max_inflight': s.max_inflight,
            'keys_seen': s.keys_seen,
            'last_key': s.last_key,
            'gzip_responses': s.gzip_responses,
            'chunked_responses': s.chunked_responses,
            'last_request': s.last_request,
            'uptime_s': round(time.monotonic() - self.started, 3),
        }

    # -- connections ------------------------------------------------------------------------------

    async def on_connection(self, reader, writer):
        task = asyncio.current_task()
        self.tasks.add(task)
        self.conn_seq += 1
        conn = Connection(self.conn_seq, self.stats.epoch)
        self.stats.tcp_connections += 1
        self.open_connections += 1
        abort = False
        try:
            if self.take_failure(connection_level=True):
                self.stats.faults_applied += 1
                self.log('#%d stalled before the handshake (fault)' % conn.id)
                await wait_eof(reader)
                return
            if self.ssl_ctx is not None:
                try:
                    await writer.start_tls(self.ssl_ctx, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
                except (OSError, asyncio.TimeoutError, ssl.SSLError, ConnectionError) as e:
                    self.stats.tls_handshake_failures += 1
                    self.stats.last_tls_error = '%s: %s' % (type(e).__name__, e)
                    self.log('#%d TLS handshake failed: %s' % (conn.id, e))
                    abort = True
                    return
                sslobj = writer.get_extra_info('ssl_object')
                conn.tls = True
                conn.resumed = bool(sslobj.session_reused)
                if conn.epoch == self.stats.epoch:
                    self.stats.tls_handshakes += 1
                    self.stats.tls_resumed += conn.resumed
                conn.version = sslobj.version()
                conn.alpn = sslobj.selected_alpn_protocol()
                conn.sni = self.sni.pop(id(sslobj), None)
            while True:
                try:
                    req = await http11.read_request(reader, writer,
                                                    self.faults.idle_timeout_ms / 1000.0)
                except http11.HttpError as e:
                    self.log('#%d bad request: %s' % (conn.id, e))
                    await self._send_plain(writer, e.code, str(e) + '\n', close=True)
                    return
                if req is None:
                    return
                conn.requests += 1
                if conn.requests == 1:
                    if req.path.startswith(CONTROL_PREFIX):
                        self._count_as_control(conn)
                    elif conn.tls:
                        s = self.stats
                        s.last_tls_version, s.last_alpn, s.last_sni = \
                            conn.version, conn.alpn, conn.sni
                keep = await self.handle(conn, req, reader, writer)
                if keep == 'abort':
                    abort = True
                    return
                if not keep:
                    return
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as e:
            self.log('#%d connection error: %s' % (conn.id, e))
        except Exception as e:                  # a bug: say so on stderr and to the client
            print('places-sim: internal error on connection #%d: %r' % (conn.id, e),
                  file=sys.stderr, flush=True)
            try:
                await self._send_plain(writer, 500, 'places-sim internal error: %r\n' % e,
                                       close=True)
            except (ConnectionError, OSError):
                pass
        finally:
            self.open_connections -= 1
            self.tasks.discard(task)
            await close_writer(writer, abort)

    def _count_as_control(self, conn):
        """A connection that starts with a control request does not count as client traffic."""
        conn.control = True
        s = self.stats
        if conn.epoch != s.epoch:
            return
        s.tcp_connections -= 1
        s.control_connections += 1
        if conn.tls:
            s.tls_handshakes -= 1
            s.tls_resumed -= conn.resumed

    # -- requests ---------------------------------------------------------------------------------

    async def handle(self, conn, req, reader, writer):
        """Answer one request. Returns True to keep the connection, False to close it
        gracefully, 'abort' to reset it."""
        path = req.path
        if path.startswith(CONTROL_PREFIX):
            self.stats.requests['control'] += 1
            return await self.control(req, writer)
        endpoint = {LEGACY_PATH: 'legacy', NEW_PATH: 'new'}.get(path, 'other')
        self.stats.requests[endpoint] += 1
        if endpoint == 'other':
            body = google_api.html_error_page(404, 'Not Found')
            return await self._send(writer, req, 404, [('Content-Type', google_api.HTML_TYPE)],
                                    body, self.faults, False, LEGACY_SERVER)
        want = 'GET' if endpoint == 'legacy' else 'POST'
        if req.method != want:
            body = google_api.html_error_page(405, 'Method Not Allowed')
            return await self._send(writer, req, 405, [('Content-Type', google_api.HTML_TYPE),
                                                       ('Allow', want)],
                                    body, self.faults, False, LEGACY_SERVER)
        f = self.faults
        query = urllib.parse.parse_qs(req.query, keep_blank_values=True)
        key = (query.get('key') or [None])[-1] if endpoint == 'legacy' else \
            (req.fields.get('x-goog-api-key') or (query.get('key') or [None])[-1])
        s = self.stats
        if key:
            s.keys_seen += 1
            s.last_key = key
        s.last_request = {
            'endpoint': endpoint, 'method': req.method, 'target': req.target,
            'headers': dict(req.fields), 'body': req.body.decode('utf-8', 'replace'),
            'connection': conn.id, 'nth_on_connection': conn.requests,
        }
        failing = self.take_failure(connection_level=False)
        if failing:
            s.faults_applied += 1
        self.inflight += 1
        s.max_inflight = max(s.max_inflight, self.inflight)
        t0 = time.monotonic()
        what = '#%d/%d %s %s %s' % (conn.id, conn.requests, endpoint, req.method,
                                    mask_key(req.target))
        try:
            if f.latency_ms:
                await asyncio.sleep(f.latency_ms / 1000.0)
            if failing and f.drop:
                self.log('%s -> dropped (%s)' % (what, f.drop))
                if f.drop == 'reset':
                    set_linger_zero(writer)
                    return 'abort'
                return False
            if failing and f.stall == 'request':
                self.log('%s -> stalled' % what)
                await wait_eof(reader)
                return False
            api = self.legacy if endpoint == 'legacy' else self.new
            if failing and f.not_json is not None:
                reply = google_api.Reply(200, f.not_json)
            elif failing and (f.status or f.http_status):
                reply = api.fault_reply(f, f.layout or ('google' if endpoint == 'legacy'
                                                        else 'indent2'))
            elif endpoint == 'legacy':
                reply = api.answer(query, f)
            else:
                reply = api.answer(req.fields, query, req.body, f)
            headers = [('Content-Type', reply.content_type)]
            if endpoint == 'new':
                headers.append(('Vary', 'Origin, X-Origin, Referer, Accept-Encoding'))
            keep = await self._send(writer, req, reply.code, headers, reply.body, f,
                                    failing, LEGACY_SERVER if endpoint == 'legacy'
                                    else NEW_SERVER, conn)
            self.log('%s -> %d, %d bytes, %.1f ms%s' % (
                what, reply.code, len(reply.body), (time.monotonic() - t0) * 1000,
                ' (fault)' if failing else ''))
            if failing and f.stall == 'body':
                await wait_eof(reader)
                return False
            return keep
        finally:
            self.inflight -= 1

    async def _send(self, writer, req, code, headers, body, f, failing, server, conn=None):
        """Write a places-endpoint response shaped by the faults; returns keep-alive."""
        s = self.stats
        truncate = failing and f.truncate
        stall_body = failing and f.stall == 'body'
        keep = req.keep_alive and not f.close and f.framing != 'eof' and not truncate \
            and not stall_body
        if conn is not None and f.keepalive_requests is not None and \
                conn.requests >= f.keepalive_requests:
            keep = False
        framing = f.framing
        if framing == 'chunked' and req.version == 'HTTP/1.0':
            framing = 'eof'
            keep = False
        headers = list(headers)
        if body and f.gzip and req.accepts_gzip():
            body = gzip.compress(body, compresslevel=6, mtime=0)
            headers.append(('Content-Encoding', 'gzip'))
            s.gzip_responses += 1
        headers += [('Date', http11.http_date()), ('Server', server),
                    ('Cache-Control', 'private'), ('X-XSS-Protection', '0'),
                    ('X-Frame-Options', 'SAMEORIGIN')]
        if not keep:
            headers.append(('Connection', 'close'))
        if framing == 'chunked':
            s.chunked_responses += 1
        s.responses[str(code)] = s.responses.get(str(code), 0) + 1
        await http11.write_response(writer, code, headers, body, framing=framing,
                                    chunk_bytes=f.chunk_bytes, slow_ms=f.slow_body_ms,
                                    truncate=truncate, stall_body=stall_body)
        return keep

    async def _send_plain(self, writer, code, text, close=False, content_type='text/plain'):
        body = text.encode('utf-8')
        head = [http11.status_line(code),
                b'Content-Type: %s; charset=UTF-8\r\n' % content_type.encode(),
                b'Content-Length: %d\r\n' % len(body),
                b'Date: %s\r\n' % http11.http_date().encode()]
        if close:
            head.append(b'Connection: close\r\n')
        writer.write(b''.join(head) + b'\r\n' + body)
        await writer.drain()

    # -- control ----------------------------------------------------------------------------------

    async def control(self, req, writer):
        keep = req.keep_alive
        route = (req.method, req.path)
        if route == ('POST', '/_sim/config'):
            try:
                cfg = json.loads(req.body.decode('utf-8')) if req.body.strip() else {}
                faults = Faults(cfg, self.default_idle_ms)
            except (ValueError, FaultError) as e:
                await self._send_json(writer, 400, {'error': str(e)}, keep)
                return keep
            self.faults = faults
            self.fail_left = faults.fail_first
            self.log('config %s' % json.dumps(faults.as_json(), sort_keys=True))
            await self._send_json(writer, 200, {'config': faults.as_json(),
                                                'fail_first_left': self.fail_left}, keep)
        elif route == ('GET', '/_sim/config'):
            await self._send_json(writer, 200, {'config': self.faults.as_json(),
                                                'fail_first_left': self.fail_left}, keep)
        elif route == ('GET', '/_sim/stats'):
            await self._send_json(writer, 200, self.stats_json(), keep)
        elif route == ('POST', '/_sim/reset-stats'):
            self.stats.reset()
            await self._send_json(writer, 200, {}, keep)
        else:
            await self._send_json(writer, 404, {'error': 'no control endpoint %s %s; there are '
                                                'POST /_sim/config, GET /_sim/config, GET '
                                                '/_sim/stats, POST /_sim/reset-stats'
                                                % (req.method, req.path)}, keep)
        return keep

    async def _send_json(self, writer, code, value, keep):
        await self._send_plain(writer, code, json.dumps(value, indent=2) + '\n', close=not keep,
                               content_type='application/json')

    async def stop(self):
        for t in list(self.tasks):
            t.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=CLOSE_TIMEOUT)


# ---------------------------------------------------------------------------------------------
# Helpers.

def mask_key(target):
    """The request target with the key's value hidden (for the access log)."""
    path, q, query = target.partition('?')
    if not q:
        return target
    parts = [('key=***' if p.startswith('key=') else p) for p in query.split('&')]
    return path + '?' + '&'.join(parts)


async def wait_eof(reader):
    """Hold the connection until the client closes it (or STALL_MAX), reading and discarding."""
    try:
        async with asyncio.timeout(STALL_MAX):
            while await reader.read(65536):
                pass
    except (TimeoutError, ConnectionError, OSError):
        pass


def set_linger_zero(writer):
    """Make the coming close a reset (RST) instead of an orderly shutdown."""
    sock = writer.get_extra_info('socket')
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        except OSError:
            pass


async def close_writer(writer, abort):
    try:
        if abort:
            writer.transport.abort()
            return
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
    except (ConnectionError, OSError, asyncio.TimeoutError, ssl.SSLError):
        writer.transport.abort()
    except asyncio.CancelledError:
        writer.transport.abort()
        raise


def make_ssl_context(cert, key, tls_max):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls_max == '1.2':
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(['http/1.1'])
    return ctx


def loopback(host):
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# Main.

async def serve(args, sim):
    loop = asyncio.get_running_loop()
    try:
        server = await asyncio.start_server(sim.on_connection, args.host, args.port,
                                            limit=http11.MAX_HEADER_BYTES, reuse_address=True)
    except OSError as e:
        print('places-sim: cannot listen on %s:%d: %s' % (args.host, args.port, e),
              file=sys.stderr)
        return 1
    port = server.sockets[0].getsockname()[1]
    host = '[%s]' % args.host if ':' in args.host else args.host
    print('places-sim listening on %s://%s:%d' % ('http' if args.plain else 'https', host, port),
          flush=True)
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    await stop
    server.close()
    await sim.stop()
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description='local HTTPS simulator of Google Nearby Search '
                                 '(legacy and New) with fault injection')
    ap.add_argument('--host', default='127.0.0.1', help='loopback address to listen on')
    ap.add_argument('--port', type=int, default=0, help='0 picks a free port (printed)')
    ap.add_argument('--cert', help='server certificate chain (PEM)')
    ap.add_argument('--key', help='its private key (PEM)')
    ap.add_argument('--plain', action='store_true', help='plain HTTP instead of HTTPS')
    ap.add_argument('--gazetteer', default=DEFAULT_GAZETTEER, help='GeoNames cities.pbf')
    ap.add_argument('--faults', default='{}', help='initial fault settings (JSON object)')
    ap.add_argument('--idle-timeout-ms', type=int, default=60000,
                    help='close a keep-alive connection idle this long (fault idle_timeout_ms)')
    ap.add_argument('--tls-max', choices=('1.2', '1.3'), default='1.3',
                    help='highest TLS version offered')
    ap.add_argument('--access-log', help='one line per request to this file (- for stderr)')
    args = ap.parse_args(argv)
    if not loopback(args.host):
        ap.error('--host must be a loopback address (127.0.0.0/8, ::1 or localhost)')
    if not 0 <= args.port <= 65535:
        ap.error('--port must be 0..65535')
    if args.plain == bool(args.cert or args.key) or (not args.plain and not (args.cert and
                                                                           args.key)):
        ap.error('give --cert and --key, or --plain')
    try:
        faults = Faults(json.loads(args.faults), args.idle_timeout_ms)
    except (ValueError, FaultError) as e:
        ap.error('--faults: %s' % e)
    ctx = None
    if not args.plain:
        try:
            ctx = make_ssl_context(args.cert, args.key, args.tls_max)
        except (OSError, ssl.SSLError) as e:
            print('places-sim: cannot load --cert %s / --key %s: %s' % (args.cert, args.key, e),
                  file=sys.stderr)
            return 2
    try:
        gaz = google_api.Gazetteer(args.gazetteer)
    except (OSError, ValueError, IndexError) as e:
        print('places-sim: cannot load --gazetteer %s: %s' % (args.gazetteer, e),
              file=sys.stderr)
        return 2
    log = None
    if args.access_log == '-':
        log = sys.stderr
    elif args.access_log:
        log = open(args.access_log, 'a')
    sim = Simulator(gaz, faults, ctx, args.idle_timeout_ms, log)
    return asyncio.run(serve(args, sim))


if __name__ == '__main__':
    sys.exit(main())
