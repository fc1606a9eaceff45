"""The reference herd's Google places providers: Nearby Search over HTTPS with aiohttp, as the
paper's PlacesHTTPClientProtocol did, for `places.provider: google` (legacy) and `google-new`
(Places API (New) searchNearby).

    GooglePlaces(settings, key, render, log).response(lat, lng, radius_m, bound) -> bytes

answers with the upstream JSON cut to `bound` results and rendered by `render` (Google's legacy
layout), whatever layout the upstream used; a New API answer is translated into the legacy shape
first. When there is no usable answer (timeout, connection or TLS failure, HTTP 5xx after the
retries, a body that is not JSON) the answer is an UNKNOWN_ERROR document saying why. The key is
never logged nor put in an answer. Runs on the server's one asyncio loop; not thread-safe.

What Google's clients do (PLACES.md), done here: keep-alive connections (one aiohttp session, at
most `max_inflight` connections), gzip, a time budget per request including its retries,
retries with jittered exponential backoff on HTTP 500/503/504, on OVER_QUERY_LIMIT (not the daily
quota) and on the New API's 429, and on a connection lost before an answer; identical requests in
flight at the same moment share one upstream call.
"""

import asyncio
import json
import random
import ssl
import time
import urllib.parse

import aiohttp

LEGACY_PATH = '/maps/api/place/nearbysearch/json'
NEW_PATH = '/v1/places:searchNearby'
NEW_FIELD_MASK = ('places.id,places.displayName,places.formattedAddress,places.location,'
                  'places.types,places.rating,places.userRatingCount,places.businessStatus')
RETRY_FIRST = 0.5                  # seconds; x1.5 per attempt, times a jitter of 0.5..1.5
RETRY_FACTOR = 1.5
RETRY_HTTP = (500, 503, 504)
DAILY_QUOTA_HINT = 'daily'
NEW_TO_LEGACY = {'INVALID_ARGUMENT': 'INVALID_REQUEST', 'PERMISSION_DENIED': 'REQUEST_DENIED',
                 'RESOURCE_EXHAUSTED': 'OVER_QUERY_LIMIT'}


class Upstream(Exception):
    """One attempt without a final answer: `retry` says whether another attempt may help, `doc`
    is the answer to pass on if no attempt does better (None: an UNKNOWN_ERROR saying why)."""

    def __init__(self, why, retry, doc=None):
        super().__init__(why)
        self.retry = retry
        self.doc = doc


def unknown_error(message):
    return {'html_attributions': [], 'results': [], 'status': 'UNKNOWN_ERROR',
            'error_message': message}


def translate_place(p):
    """A Places API (New) place -> a legacy Nearby Search result (the fields WHATSAT shows)."""
    r = {}
    if 'businessStatus' in p:
        r['business_status'] = p['businessStatus']
    loc = p.get('location')
    if isinstance(loc, dict) and 'latitude' in loc and 'longitude' in loc:
        r['geometry'] = {'location': {'lat': loc['latitude'], 'lng': loc['longitude']}}
    name = p.get('displayName')
    if isinstance(name, dict) and 'text' in name:
        r['name'] = name['text']
    if 'id' in p:
        r['place_id'] = p['id']
    if 'rating' in p:
        r['rating'] = p['rating']
    if 'types' in p:
        r['types'] = p['types']
    if 'userRatingCount' in p:
        r['user_ratings_total'] = p['userRatingCount']
    if 'formattedAddress' in p:
        r['vicinity'] = p['formattedAddress']
    return r


class GooglePlaces:
    def __init__(self, settings, key, render, log):
        """settings: the config's places section (provider, endpoint, ca_file, timeout_ms,
        max_inflight); key: the API key; render: dict -> bytes in Google's layout;
        log: object with event(text)."""
        self.legacy = settings['provider'] == 'google'
        self.endpoint = settings['endpoint'].rstrip('/')
        self.timeout = settings['timeout_ms'] / 1000.0
        self.max_inflight = settings['max_inflight']
        self.key = key
        self.render = render
        self.log = log
        self.ssl = None
        if self.endpoint.startswith('https:'):
            self.ssl = ssl.create_default_context()
            self.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
            if settings.get('ca_file'):
                self.ssl.load_verify_locations(cafile=settings['ca_file'])
        self.session = None
        self.inflight = {}                # request key -> task shared by identical requests

    def secret_free(self, text):
        """`text` with the key (raw or URL-encoded) replaced by ***."""
        for k in {self.key, urllib.parse.quote(self.key, safe=''), urllib.parse.quote_plus(self.key)}:
            if k:
                text = text.replace(k, '***')
        return text

    async def start(self):
        connector = aiohttp.TCPConnector(limit=self.max_inflight, ssl=self.ssl,
                                         enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(connector=connector, auto_decompress=True)

    async def close(self):
        if self.session is not None:
            await self.session.close()

    async def response(self, lat, lng, radius_m, bound):
        """The answer for one WHATSAT, rendered (no trailing newline)."""
        key = (lat, lng, radius_m) if self.legacy else (lat, lng, radius_m, bound)
        task = self.inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(lat, lng, radius_m, bound))
            self.inflight[key] = task
            task.add_done_callback(lambda t, k=key: self.inflight.pop(k, None))
        doc = await asyncio.shield(task)
        if doc.get('results') and len(doc['results']) > bound:
            doc = dict(doc, results=doc['results'][:bound])
        return self.render(doc)

    async def _fetch(self, lat, lng, radius_m, bound):
        """The legacy-shaped document for one upstream search, retries included."""
        t0 = time.monotonic()
        deadline = t0 + self.timeout
        attempt = 0
        what = '%s %r,%r r=%g' % ('legacy' if self.legacy else 'new', lat, lng, radius_m)
        while True:
            attempt += 1
            left = deadline - time.monotonic()
            try:
                async with asyncio.timeout(left):
                    code, doc = await (self._legacy(lat, lng, radius_m) if self.legacy
                                       else self._new(lat, lng, radius_m, bound))
                self.log.event('places %s: attempt %d: HTTP %d %s in %.1f ms' % (
                    what, attempt, code, doc.get('status'), (time.monotonic() - t0) * 1000))
                return doc
            except TimeoutError:
                why = 'upstream did not answer within %d ms' % (self.timeout * 1000)
                retry, last = False, None
            except Upstream as e:
                why, retry, last = str(e), e.retry, e.doc
            except (aiohttp.ClientError, OSError) as e:
                why = 'upstream connection failed: %s' % (str(e) or type(e).__name__)
                retry, last = True, None
            why = self.secret_free(why)
            delay = RETRY_FIRST * RETRY_FACTOR ** (attempt - 1) * (0.5 + random.random())
            if not retry or time.monotonic() + delay >= deadline:
                self.log.event('places %s: attempt %d: %s; giving up after %.1f ms' % (
                    what, attempt, why, (time.monotonic() - t0) * 1000))
                return last if last is not None else unknown_error(why)
            self.log.event('places %s: attempt %d: %s; retry in %.2fs' % (
                what, attempt, why, delay))
            await asyncio.sleep(delay)

    async def _legacy(self, lat, lng, radius_m):
        params = {'location': '%r,%r' % (lat, lng), 'radius': '%.15g' % radius_m,
                  'key': self.key}
        async with self.session.get(self.endpoint + LEGACY_PATH, params=params) as r:
            body = await r.read()
            code = r.status
        doc = _json_object(body)
        if doc is None or not isinstance(doc.get('status'), str):
            raise Upstream('upstream HTTP %d: the body is not a Nearby Search answer' % code,
                           code in RETRY_HTTP)
        if code in RETRY_HTTP or (doc['status'] == 'OVER_QUERY_LIMIT' and DAILY_QUOTA_HINT not in
                                  str(doc.get('error_message', ''))):
            raise Upstream('upstream HTTP %d %s%s' % (
                code, doc['status'], ': ' + str(doc['error_message'])
                if 'error_message' in doc else ''), True,
                doc if doc['status'] != 'OK' else None)
        return code, doc

    async def _new(self, lat, lng, radius_m, bound):
        body = {'maxResultCount': bound, 'locationRestriction': {'circle': {
            'center': {'latitude': lat, 'longitude': lng}, 'radius': radius_m}}}
        headers = {'X-Goog-Api-Key': self.key, 'X-Goog-FieldMask': NEW_FIELD_MASK}
        async with self.session.post(self.endpoint + NEW_PATH, json=body, headers=headers) as r:
            raw = await r.read()
            code = r.status
        doc = _json_object(raw)
        if doc is None:
            raise Upstream('upstream HTTP %d: the body is not JSON' % code,
                           code in RETRY_HTTP or code == 429)
        err = doc.get('error')
        if isinstance(err, dict) or code != 200:
            err = err if isinstance(err, dict) else {}
            status = NEW_TO_LEGACY.get(err.get('status'), 'UNKNOWN_ERROR')
            message = str(err.get('message') or 'upstream HTTP %d' % code)
            legacy = {'html_attributions': [], 'results': [], 'status': status,
                      'error_message': message}
            if code in RETRY_HTTP or code == 429:
                raise Upstream('upstream HTTP %d %s: %s' % (code, err.get('status'), message),
                               True, legacy)
            return code, legacy
        places = doc.get('places') or []
        results = [translate_place(p) for p in places if isinstance(p, dict)]
        return code, {'html_attributions': [], 'results': results,
                      'status': 'OK' if results else 'ZERO_RESULTS'}


def _json_object(body):
    try:
        v = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return v if isinstance(v, dict) else None
