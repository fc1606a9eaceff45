"""Fault settings of the places simulator: what `POST /_sim/config` accepts, validated in one place.

A Faults object is immutable once built; the server swaps the whole object when a new configuration
arrives, and each request works on the object it saw when it started. Single-threaded (asyncio):
no locking.

Two kinds of keys:
  failure faults   status, error_message, http_status, body, drop, stall, truncate, not_json.
                   With `fail_first: N` they apply to the first N places requests only (each new
                   connection uses one as well when `stall: "handshake"`), then requests succeed.
  shaping keys     latency_ms, framing, chunk_bytes, gzip, slow_body_ms, close, layout, ascii,
                   rich, accept_keys, idle_timeout_ms, keepalive_requests. Always in force.
"""

# Limits on the values a test may ask for (keep a typo from hanging a run for a day).
MAX_DELAY_MS = 600_000
MAX_CHUNK_BYTES = 1 << 20

# Legacy statuses and their default error_message (None: Google sends none).
DAILY_QUOTA_TEXT = ('You have exceeded your daily request quota for this API. If you did not set '
                    'a custom daily request quota, verify your project has an active billing '
                    'account: http://g.co/dev/maps-no-account')
LEGACY_STATUS_TEXT = {
    'ZERO_RESULTS': None,
    'OVER_QUERY_LIMIT': 'You have exceeded your rate-limit for this API.',
    'REQUEST_DENIED': 'The provided API key is invalid.',
    'INVALID_REQUEST': 'Invalid request. One of the input parameters contains a non-permitted value.',
    'UNKNOWN_ERROR': None,
}
# Only INVALID_REQUEST comes with an HTTP error code from the legacy API.
LEGACY_HTTP_STATUS = {'INVALID_REQUEST': 400}

# Places API (New) error statuses: HTTP code and Google's generic message.
NEW_STATUS = {
    'INVALID_ARGUMENT': (400, 'Request contains an invalid argument.'),
    'PERMISSION_DENIED': (403, 'The caller does not have permission'),
    'NOT_FOUND': (404, 'Requested entity was not found.'),
    'RESOURCE_EXHAUSTED': (429, 'Resource has been exhausted (e.g. check quota).'),
    'INTERNAL': (500, 'Internal error encountered.'),
    'UNAVAILABLE': (503, 'The service is currently unavailable.'),
    'DEADLINE_EXCEEDED': (504, 'Deadline expired before operation could complete.'),
}
DAILY_QUOTA_TEXT_NEW = ("Quota exceeded for quota metric 'SearchNearby requests' and limit "
                        "'SearchNearby requests per day' of service 'places.googleapis.com'.")

# One vocabulary to the other. OVER_DAILY_LIMIT is ours: OVER_QUERY_LIMIT with the daily text.
LEGACY_TO_NEW = {
    'INVALID_REQUEST': 'INVALID_ARGUMENT',
    'REQUEST_DENIED': 'PERMISSION_DENIED',
    'OVER_QUERY_LIMIT': 'RESOURCE_EXHAUSTED',
    'OVER_DAILY_LIMIT': 'RESOURCE_EXHAUSTED',
    'UNKNOWN_ERROR': 'INTERNAL',
    'ZERO_RESULTS': None,                      # New API: 200 and `{}`
}
NEW_TO_LEGACY = {
    'INVALID_ARGUMENT': 'INVALID_REQUEST',
    'PERMISSION_DENIED': 'REQUEST_DENIED',
    'NOT_FOUND': 'INVALID_REQUEST',
    'RESOURCE_EXHAUSTED': 'OVER_QUERY_LIMIT',
    'INTERNAL': 'UNKNOWN_ERROR',
    'UNAVAILABLE': 'UNKNOWN_ERROR',
    'DEADLINE_EXCEEDED': 'UNKNOWN_ERROR',
}
STATUSES = sorted(set(LEGACY_STATUS_TEXT) | set(NEW_STATUS) | {'OVER_DAILY_LIMIT'})

# HTTP code of an `http_status` fault -> the status word its JSON body carries.
HTTP_TO_NEW = {400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED',
               404: 'NOT_FOUND', 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 501: 'UNIMPLEMENTED',
               503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED'}
HTTP_TO_LEGACY = {400: 'INVALID_REQUEST', 403: 'REQUEST_DENIED', 429: 'OVER_QUERY_LIMIT'}

LAYOUTS = ('google', 'compact', 'indent2', 'indent4')
BODIES = ('json', 'html', 'text', 'empty')
FRAMINGS = ('length', 'chunked', 'eof')
DROPS = ('close', 'reset')
STALLS = ('request', 'body', 'handshake')


class FaultError(ValueError):
    """A configuration the simulator refuses; the message names the key and the value."""


def _int(cfg, key, lo, hi):
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise FaultError('%s must be an integer %d..%d, got %r' % (key, lo, hi, v))
    return v


def _bool(cfg, key):
    v = cfg[key]
    if not isinstance(v, bool):
        raise FaultError('%s must be true or false, got %r' % (key, v))
    return v


def _choice(cfg, key, choices, true_means=None):
    v = cfg[key]
    if v is True and true_means is not None:
        return true_means
    if v is False and true_means is not None:
        return None
    if v not in choices:
        allowed = ' | '.join(list(choices) + (['true', 'false'] if true_means else []))
        raise FaultError('%s must be one of %s, got %r' % (key, allowed, v))
    return v


class Faults:
    """The validated fault settings. Attributes hold the effective values (defaults filled in);
    `as_json()` gives back what was configured."""

    KEYS = ('latency_ms', 'status', 'error_message', 'http_status', 'body', 'fail_first',
            'framing', 'chunk_bytes', 'gzip', 'slow_body_ms', 'drop', 'stall', 'truncate',
            'not_json', 'close', 'layout', 'ascii', 'rich', 'accept_keys', 'idle_timeout_ms',
            'keepalive_requests')

    def __init__(self, cfg=None, default_idle_timeout_ms=60_000):
        cfg = {} if cfg is None else cfg
        if not isinstance(cfg, dict):
            raise FaultError('the configuration must be a JSON object, got %s' % type(cfg).__name__)
        unknown = sorted(set(cfg) - set(self.KEYS))
        if unknown:
            raise FaultError('unknown key(s) %s; known: %s' % (', '.join(unknown),
                                                              ', '.join(self.KEYS)))
        self.configured = dict(cfg)
        g = cfg.get
        self.latency_ms = _int(cfg, 'latency_ms', 0, MAX_DELAY_MS) if 'latency_ms' in cfg else 0
        self.status = None
        if g('status') is not None:
            if cfg['status'] not in STATUSES or cfg['status'] == 'OK':
                raise FaultError('status must be one of %s, got %r'
                                 % (' | '.join(STATUSES), cfg['status']))
            self.status = cfg['status']
        self.error_message = None
        if g('error_message') is not None:
            if not isinstance(cfg['error_message'], str):
                raise FaultError('error_message must be a string, got %r' % cfg['error_message'])
            self.error_message = cfg['error_message']
        self.http_status = _int(cfg, 'http_status', 200, 599) if g('http_status') is not None \
            else None
        self.body = _choice(cfg, 'body', BODIES) if 'body' in cfg else 'json'
        self.fail_first = _int(cfg, 'fail_first', 0, 1 << 31) if g('fail_first') is not None \
            else None
        self.framing = _choice(cfg, 'framing', FRAMINGS) if 'framing' in cfg else 'length'
        self.chunk_bytes = _int(cfg, 'chunk_bytes', 1, MAX_CHUNK_BYTES) if 'chunk_bytes' in cfg \
            else 256
        self.gzip = _bool(cfg, 'gzip') if 'gzip' in cfg else True
        self.slow_body_ms = _int(cfg, 'slow_body_ms', 0, MAX_DELAY_MS) if 'slow_body_ms' in cfg \
            else 0
        self.drop = _choice(cfg, 'drop', DROPS, true_means='close') if 'drop' in cfg else None
        self.stall = _choice(cfg, 'stall', STALLS, true_means='request') if 'stall' in cfg \
            else None
        self.truncate = _bool(cfg, 'truncate') if 'truncate' in cfg else False
        self.not_json = None
        if 'not_json' in cfg:
            v = cfg['not_json']
            if isinstance(v, str):
                self.not_json = v.encode('utf-8')
            elif v is True:
                self.not_json = b'<html><body>upstream proxy error</body></html>\n'
            elif v is not False:
                raise FaultError('not_json must be true, false or a string, got %r' % v)
        self.close = _bool(cfg, 'close') if 'close' in cfg else False
        self.layout = _choice(cfg, 'layout', LAYOUTS) if 'layout' in cfg else None
        self.ascii = _bool(cfg, 'ascii') if 'ascii' in cfg else False
        if self.ascii and self.layout in (None, 'google'):
            raise FaultError('ascii needs layout compact, indent2 or indent4 (Google\'s legacy '
                             'layout writes non-ASCII raw)')
        self.rich = _bool(cfg, 'rich') if 'rich' in cfg else False
        self.accept_keys = None
        if g('accept_keys') is not None:
            v = cfg['accept_keys']
            if not isinstance(v, list) or not all(isinstance(k, str) and k for k in v):
                raise FaultError('accept_keys must be a list of non-empty strings, got %r' % v)
            self.accept_keys = frozenset(v)
        self.idle_timeout_ms = _int(cfg, 'idle_timeout_ms', 1, MAX_DELAY_MS) \
            if 'idle_timeout_ms' in cfg else default_idle_timeout_ms
        self.keepalive_requests = _int(cfg, 'keepalive_requests', 1, 1 << 31) \
            if g('keepalive_requests') is not None else None
        if self.error_message is not None and self.status is None and self.http_status is None:
            raise FaultError('error_message needs status or http_status')
        if self.drop and self.stall:
            raise FaultError('drop and stall exclude each other')

    @property
    def has_request_failure(self):
        """True when a failure fault applies to requests (fail_first then counts them)."""
        return (self.status is not None or self.http_status is not None or self.drop is not None
                or self.stall in ('request', 'body') or self.truncate
                or self.not_json is not None)

    def as_json(self):
        return dict(self.configured)
