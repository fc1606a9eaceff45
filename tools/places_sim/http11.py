"""HTTP/1.1 on asyncio streams for the places simulator: a request reader and a response writer
whose framing the caller controls byte for byte.

The reader takes one request at a time off a keep-alive connection (Content-Length or chunked
bodies, `Expect: 100-continue`), bounded in header bytes, header count and body size. The writer
sends a response as Content-Length, chunked or close-delimited, optionally in slow pieces,
truncated (a body shorter than its framing promises) or stalled half way.
Both run on the simulator's event loop only; a connection is used by one task at a time.
"""

import asyncio
import email.utils
import http

MAX_HEADER_BYTES = 65536          # request line + headers (also the StreamReader line limit)
MAX_HEADERS = 100
MAX_BODY = 1 << 20
REQUEST_TIMEOUT = 10.0            # seconds from a request's first byte to its last


class HttpError(Exception):
    """A request the reader refuses; the server answers `code` and closes."""

    def __init__(self, code, why):
        super().__init__(why)
        self.code = code


class Request:
    __slots__ = ('method', 'target', 'version', 'headers', 'fields', 'body', 'path', 'query')

    def __init__(self, method, target, version, headers):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers                  # [(name, value)] as received (str, latin-1)
        fields = {}
        for k, v in headers:
            k = k.lower()
            fields[k] = fields[k] + ', ' + v if k in fields else v
        self.fields = fields                    # lower-case name -> value (repeats comma-joined)
        self.body = b''
        self.path, _, self.query = target.partition('?')

    @property
    def keep_alive(self):
        tokens = {t.strip().lower() for t in self.fields.get('connection', '').split(',')}
        if self.version == 'HTTP/1.0':
            return 'keep-alive' in tokens
        return 'close' not in tokens

    def accepts_gzip(self):
        """True when Accept-Encoding lists gzip (or *) with a q-value above zero."""
        for item in self.fields.get('accept-encoding', '').split(','):
            name, _, params = item.strip().partition(';')
            name = name.strip().lower()
            if name not in ('gzip', 'x-gzip', '*'):
                continue
            q = 1.0
            for p in params.split(';'):
                k, _, v = p.strip().partition('=')
                if k.strip().lower() == 'q':
                    try:
                        q = float(v)
                    except ValueError:
                        q = 0.0
            if q > 0:
                return True
        return False


async def read_request(reader, writer, idle_timeout):
    """The next request on the connection, or None when the client closed (or stayed idle for
    idle_timeout seconds) between requests. Raises HttpError for a malformed request."""
    try:
        line = await asyncio.wait_for(reader.readline(), idle_timeout)
        while line in (b'\r\n', b'\n'):         # tolerated before a request line (RFC 9112 2.2)
            line = await asyncio.wait_for(reader.readline(), idle_timeout)
    except asyncio.TimeoutError:
        return None
    except ValueError:
        raise HttpError(414, 'request line over %d bytes' % MAX_HEADER_BYTES)
    if not line:
        return None
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            return await _read_rest(line, reader, writer)
    except TimeoutError:
        raise HttpError(408, 'request not complete within %.0fs' % REQUEST_TIMEOUT)


async def _read_rest(line, reader, writer):
    if not line.endswith(b'\n'):
        raise HttpError(400, 'connection closed inside the request line')
    parts = line.rstrip(b'\r\n').split(b' ')
    if len(parts) != 3 or not parts[2].startswith(b'HTTP/1.'):
        raise HttpError(400, 'bad request line %r' % line[:100])
    method, target, version = (p.decode('latin-1') for p in parts)
    if version not in ('HTTP/1.0', 'HTTP/1.1'):
        raise HttpError(505, 'version %s' % version)
    headers = []
    total = len(line)
    while True:
        try:
            h = await reader.readline()
        except ValueError:
            raise HttpError(431, 'header line over %d bytes' % MAX_HEADER_BYTES)
        total += len(h)
        if total > MAX_HEADER_BYTES:
            raise HttpError(431, 'headers over %d bytes' % MAX_HEADER_BYTES)
        if not h.endswith(b'\n'):
            raise HttpError(400, 'connection closed inside the headers')
        h = h.rstrip(b'\r\n')
        if not h:
            break
        if h[:1] in (b' ', b'\t'):
            raise HttpError(400, 'obsolete header line folding')
        name, colon, value = h.partition(b':')
        if not colon or not name or name != name.strip():
            raise HttpError(400, 'bad header line %r' % h[:100])
        headers.append((name.decode('latin-1'), value.strip(b' \t').decode('latin-1')))
        if len(headers) > MAX_HEADERS:
            raise HttpError(431, 'more than %d headers' % MAX_HEADERS)
    req = Request(method, target, version, headers)
    te = req.fields.get('transfer-encoding')
    cl = req.fields.get('content-length')
    if te is None and cl is None:
        return req
    if req.fields.get('expect', '').lower() == '100-continue':
        writer.write(b'HTTP/1.1 100 Continue\r\n\r\n')
        await writer.drain()
    if te is not None:
        if te.split(',')[-1].strip().lower() != 'chunked':
            raise HttpError(501, 'transfer-encoding %s' % te)
        req.body = await _read_chunked(reader)
    else:
        values = {v.strip() for v in cl.split(',')}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise HttpError(400, 'bad content-length %r' % cl)
        n = int(values.pop())
        if n > MAX_BODY:
            raise HttpError(413, 'body of %d bytes' % n)
        try:
            req.body = await reader.readexactly(n)
        except asyncio.IncompleteReadError:
            raise HttpError(400, 'connection closed inside the body')
    return req


async def _read_chunked(reader):
    body = bytearray()
    try:
        while True:
            size_line = await reader.readline()
            size = size_line.split(b';', 1)[0].strip()
            try:
                n = int(size, 16)
            except ValueError:
                raise HttpError(400, 'bad chunk size %r' % size_line[:40])
            if n == 0:
                while (await reader.readline()).rstrip(b'\r\n'):   # trailers
                    pass
                return bytes(body)
            if len(body) + n > MAX_BODY:
                raise HttpError(413, 'chunked body over %d bytes' % MAX_BODY)
            body += await reader.readexactly(n)
            if (await reader.readline()).rstrip(b'\r\n'):
                raise HttpError(400, 'chunk not followed by CRLF')
    except (asyncio.IncompleteReadError, ValueError):
        raise HttpError(400, 'connection closed or line too long inside a chunked body')


def status_line(code):
    try:
        reason = http.HTTPStatus(code).phrase
    except ValueError:
        reason = 'Status %d' % code
    return b'HTTP/1.1 %d %s\r\n' % (code, reason.encode('latin-1'))


def http_date():
    return email.utils.formatdate(usegmt=True)


def _split(data, n):
    return [data[i:i + n] for i in range(0, len(data), n)] or [b'']


async def write_response(writer, code, headers, body, framing='length', chunk_bytes=256,
                         slow_ms=0, truncate=False, stall_body=False):
    """Send one response. `headers`: [(name, value)] without framing headers (added here).
    framing: 'length' (Content-Length), 'chunked' (chunks of chunk_bytes), 'eof' (no length;
    the caller closes after it). truncate: send about half of the framed body and return (the
    caller must close). slow_ms: the body goes out in pieces of chunk_bytes (one chunk each when
    chunked) with this delay before each. stall_body: send half as with truncate and return; the
    caller then holds the connection open. Returns the number of body bytes sent on the wire."""
    head = [status_line(code)]
    if framing == 'length':
        announced = len(body) if body or not truncate else 16
        head.append(b'Content-Length: %d\r\n' % announced)
        frames = _split(body, chunk_bytes)
    elif framing == 'chunked':
        head.append(b'Transfer-Encoding: chunked\r\n')
        frames = [b'%x\r\n%s\r\n' % (len(c), c) for c in _split(body, chunk_bytes) if c]
        frames.append(b'0\r\n\r\n')
    else:
        frames = _split(body, chunk_bytes)
    for k, v in headers:
        head.append(('%s: %s\r\n' % (k, v)).encode('latin-1'))
    head.append(b'\r\n')
    head = b''.join(head)
    if truncate or stall_body:
        wire = b''.join(frames)
        if framing == 'chunked':
            wire = wire[:-len(b'0\r\n\r\n')]
        wire = wire[:len(wire) // 2]
        frames = _split(wire, chunk_bytes) if framing != 'chunked' or slow_ms else [wire]
    sent = 0
    if not slow_ms:
        data = b''.join(frames)
        writer.write(head + data)
        await writer.drain()
        return len(data)
    writer.write(head)
    await writer.drain()
    for f in frames:
        if not f:
            continue
        await asyncio.sleep(slow_ms / 1000.0)
        writer.write(f)
        await writer.drain()
        sent += len(f)
    return sent
