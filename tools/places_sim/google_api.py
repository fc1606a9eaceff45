"""What the two Google Nearby Search endpoints answer, computed from the GeoNames gazetteer.

  LegacyApi   GET /maps/api/place/nearbysearch/json   (Places API, legacy)
  NewApi      POST /v1/places:searchNearby            (Places API (New))

Both validate a request the way Google does (../../shared/PLACES.md), find the cities inside the
circle ranked by population (Google's "prominence"; distance on request) and render the answer in
their endpoint's layout, or the error a fault asks for. They return a Reply (HTTP code, body bytes,
content type) and do no I/O: the server decides framing, compression and timing.
Not thread-safe; the simulator calls them from its one event loop.
"""

import base64
import functools
import http
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'reference'))
import herd_ref  # noqa: E402  (the gazetteer decoder, the search and Google's legacy layout)

from faults import (DAILY_QUOTA_TEXT, DAILY_QUOTA_TEXT_NEW, HTTP_TO_LEGACY, HTTP_TO_NEW,  # noqa: E402
                    LEGACY_HTTP_STATUS, LEGACY_STATUS_TEXT, LEGACY_TO_NEW, NEW_STATUS,
                    NEW_TO_LEGACY)

MAX_RADIUS_M = 50000.0
LEGACY_PAGE = 20                 # results per legacy page
LEGACY_MAX = 60                  # results over all pages
NEW_MAX_RESULTS = 20
SEARCH_ALL = 1 << 30             # "no bound" for the gazetteer search
RESPONSE_CACHE = 4096            # rendered answers kept per endpoint (benchmarks repeat queries)
CITY_TYPES = ('locality', 'political')
PAGE_TOKEN_PREFIX = 'SIM1'

JSON_TYPE = 'application/json; charset=UTF-8'
HTML_TYPE = 'text/html; charset=UTF-8'
TEXT_TYPE = 'text/plain; charset=UTF-8'

NO_KEY_TEXT = ('You must use an API key to authenticate each request to Google Maps Platform '
               'APIs. For additional information, please refer to http://g.co/dev/maps-no-account')
BAD_KEY_TEXT = 'The provided API key is invalid.'
NEW_NO_KEY_TEXT = ('The request is missing a valid API key.')
NEW_BAD_KEY_TEXT = 'API key not valid. Please pass a valid API key.'
NEW_NO_MASK_TEXT = ("FieldMask is a required parameter. See "
                    "https://cloud.google.com/apis/docs/system-parameters on how to provide it. "
                    "As an example, you can set the header 'X-Goog-FieldMask' to 'displayName' "
                    "in order to request the display name of places. You can also set the value "
                    "to '*' in development to request all available fields (not recommended for "
                    "production).")

# Fields a Place can carry in the real API; a mask naming anything else is refused as Google does.
# The simulator fills the ones it has data for (PLACE_FIELDS_FILLED).
PLACE_FIELDS = {
    'name', 'id', 'types', 'nationalPhoneNumber', 'internationalPhoneNumber', 'formattedAddress',
    'addressComponents', 'plusCode', 'location', 'viewport', 'rating', 'googleMapsUri',
    'websiteUri', 'reviews', 'regularOpeningHours', 'utcOffsetMinutes', 'photos',
    'adrFormatAddress', 'businessStatus', 'priceLevel', 'attributions', 'userRatingCount',
    'iconMaskBaseUri', 'iconBackgroundColor', 'displayName', 'primaryTypeDisplayName',
    'currentOpeningHours', 'currentSecondaryOpeningHours', 'regularSecondaryOpeningHours',
    'editorialSummary', 'primaryType', 'shortFormattedAddress', 'accessibilityOptions',
    'takeout', 'delivery', 'dineIn', 'curbsidePickup', 'reservable', 'servesBreakfast',
    'servesLunch', 'servesDinner', 'servesBeer', 'servesWine', 'servesVegetarianFood',
    'outdoorSeating', 'liveMusic', 'goodForChildren', 'allowsDogs', 'restroom', 'goodForGroups',
    'paymentOptions', 'parkingOptions', 'evChargeOptions', 'fuelOptions', 'priceRange',
    'timeZone', 'postalAddress', 'pureServiceAreaBusiness', 'containingPlaces', 'generativeSummary',
    'reviewSummary', 'googleMapsLinks', 'subDestinations', 'goodForWatchingSports',
    'menuForChildren', 'servesCocktails', 'servesCoffee', 'servesDessert',
}
REQUEST_FIELDS = {
    'includedTypes', 'excludedTypes', 'includedPrimaryTypes', 'excludedPrimaryTypes',
    'maxResultCount', 'locationRestriction', 'rankPreference', 'languageCode', 'regionCode',
    'routingParameters',
}
RANK_PREFERENCES = ('RANK_PREFERENCE_UNSPECIFIED', 'POPULARITY', 'DISTANCE')


class Reply:
    __slots__ = ('code', 'body', 'content_type')

    def __init__(self, code, body, content_type=JSON_TYPE):
        self.code = code
        self.body = body
        self.content_type = content_type


# ---------------------------------------------------------------------------------------------
# Rendering.

def _text(v):
    """The value with every bytes object decoded (GeoNames names are UTF-8), for json.dumps."""
    if isinstance(v, bytes):
        return v.decode('utf-8', 'replace')
    if isinstance(v, dict):
        return {_text(k): _text(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_text(x) for x in v]
    return v


def render(value, layout, ascii_only=False):
    """The document as bytes: 'google' = Google's legacy layout (JsonCpp styled, ends in a
    newline), 'compact' = no whitespace, no final newline, 'indent2'/'indent4' = json.dumps
    with that indent and a final newline."""
    if layout == 'google':
        return herd_ref.render_google_json(value) + b'\n'
    v = _text(value)
    if layout == 'compact':
        return json.dumps(v, separators=(',', ':'), ensure_ascii=ascii_only).encode('utf-8')
    indent = 4 if layout == 'indent4' else 2
    return (json.dumps(v, indent=indent, ensure_ascii=ascii_only) + '\n').encode('utf-8')


def html_error_page(code, reason):
    """An HTML error page in the spirit of Google's front end (not JSON, for `body: html`)."""
    return ('<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n'
            '  <title>Error %d (%s)!!1</title>\n'
            '  <p><b>%d.</b> <ins>That\u2019s an error.</ins>\n'
            '  <p>The server encountered a temporary error and could not complete your request.'
            '<p>Please try again later. <ins>That\u2019s all we know.</ins>\n'
            % (code, reason, code)).encode('utf-8')


def _new_error(code, status, message, details=None):
    err = {'code': code, 'message': message, 'status': status}
    if details:
        err['details'] = details
    return {'error': err}


def _error_info(reason):
    return [{'@type': 'type.googleapis.com/google.rpc.ErrorInfo', 'reason': reason,
             'domain': 'googleapis.com',
             'metadata': {'service': 'places.googleapis.com'}}]


# ---------------------------------------------------------------------------------------------
# The search shared by both endpoints.

class Gazetteer:
    """Cities in a circle, ranked by population (then distance, then id) or by distance."""

    def __init__(self, path):
        self.places = herd_ref.OfflinePlaces(path)

    def search(self, lat, lng, radius_m, limit, by_distance=False, keyword=None):
        found = self.places.search(lat, lng, radius_m, SEARCH_ALL)
        cities = self.places.cities
        if keyword:
            kw = keyword.lower()
            found = [i for i in found if kw in cities[i][1].decode('utf-8', 'replace').lower()]
        if by_distance:
            phi1 = herd_ref._radians(lat)
            cos1 = math.cos(phi1)

            def dist(i):
                _, _, _, clat, clng = cities[i]
                phi2 = herd_ref._radians(clat)
                return (herd_ref.haversine_m(phi1, lng, cos1, phi2, clng, math.cos(phi2)),
                        cities[i][0])
            found.sort(key=dist)
        return found[:limit]

    def legacy_result(self, i, rich):
        r = self.places.result_object(i)
        gid = self.places.cities[i][0]
        if rich and gid % 3 == 0:
            r.update(_rich_legacy(gid))
        return r

    def new_place(self, i, language):
        gid, name, _, lat, lng = self.places.cities[i]
        name = name.decode('utf-8', 'replace')
        d = herd_ref.VIEWPORT_DELTA
        pid = 'geonames:%d' % gid
        p = {
            'name': 'places/' + pid,
            'id': pid,
            'types': list(CITY_TYPES),
            'formattedAddress': name,
            'location': {'latitude': lat, 'longitude': lng},
            'viewport': {'low': {'latitude': lat - d, 'longitude': lng - d},
                         'high': {'latitude': lat + d, 'longitude': lng + d}},
        }
        if gid % 3 == 0:
            p['rating'] = _rating(gid)
        p['googleMapsUri'] = 'https://maps.google.com/?cid=%d' % gid
        if gid % 3 == 0:
            p['businessStatus'] = 'OPERATIONAL'
            p['userRatingCount'] = _rating_count(gid)
        p['iconMaskBaseUri'] = herd_ref._ICON_MASK
        p['iconBackgroundColor'] = herd_ref._ICON_BG
        p['displayName'] = {'text': name, 'languageCode': language}
        p['primaryTypeDisplayName'] = {'text': 'City', 'languageCode': 'en-US'}
        p['primaryType'] = 'locality'
        p['shortFormattedAddress'] = name
        return p


def _rating(gid):
    return 3.0 + (gid % 21) / 10.0          # 3.0 .. 5.0, one decimal


def _rating_count(gid):
    return 1 + gid % 4999


def _rich_legacy(gid):
    """Fields Google gives businesses, for `rich: true`: nested arrays of objects, HTML
    attributions with < > to escape, booleans, more numbers."""
    return {
        'business_status': 'OPERATIONAL',
        'opening_hours': {'open_now': gid % 2 == 0},
        'photos': [{
            'height': 3024,
            'html_attributions': ['<a href="https://maps.google.com/maps/contrib/%d">'
                                  'A \u00e9l\u00e8ve &amp; co</a>' % gid],
            'photo_reference': 'SimPhoto_%d_' % gid + 'x' * 40,
            'width': 4032,
        }],
        'plus_code': {'compound_code': '%04X+%02X Somewhere' % (gid % 65536, gid % 256),
                      'global_code': '85%06X+%02X' % (gid % (1 << 24), gid % 256)},
        'price_level': gid % 4 + 1,
        'rating': _rating(gid),
        'user_ratings_total': _rating_count(gid),
    }


def _number(s):
    """A finite float from a query parameter, or None."""
    try:
        v = float(s)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


# ---------------------------------------------------------------------------------------------
# Legacy Nearby Search.

class LegacyApi:
    def __init__(self, gazetteer):
        self.gaz = gazetteer
        self._page = functools.lru_cache(maxsize=RESPONSE_CACHE)(self._render_page)

    def status_reply(self, status, message, layout, ascii_only, code=None):
        """A non-OK legacy answer: `status` (legacy or New vocabulary, or OVER_DAILY_LIMIT)."""
        if status == 'OVER_DAILY_LIMIT':
            status, default = 'OVER_QUERY_LIMIT', DAILY_QUOTA_TEXT
        else:
            status = NEW_TO_LEGACY.get(status, status)
            default = LEGACY_STATUS_TEXT.get(status)
        doc = {'html_attributions': [], 'results': [], 'status': status}
        msg = message if message is not None else default
        if msg is not None:
            doc['error_message'] = msg
        return Reply(code or LEGACY_HTTP_STATUS.get(status, 200),
                     render(doc, layout, ascii_only))

    def fault_reply(self, f, layout):
        """The answer a failure fault asks for (status and/or http_status)."""
        if f.http_status is not None:
            return _http_fault(f, lambda: self.status_reply(
                f.status or HTTP_TO_LEGACY.get(f.http_status, 'UNKNOWN_ERROR'),
                f.error_message if f.error_message is not None else
                (None if f.status else 'HTTP %d from the upstream' % f.http_status),
                layout, f.ascii, f.http_status))
        return self.status_reply(f.status, f.error_message, layout, f.ascii)

    def answer(self, query, f):
        """query: dict name -> list of values (parse_qs). f: the Faults in force (shaping only;
        failures are handled by the caller through fault_reply)."""
        layout = f.layout or 'google'

        def one(name):
            v = query.get(name)
            return v[-1] if v else None

        def invalid(msg):
            return self.status_reply('INVALID_REQUEST', msg, layout, f.ascii)

        key = one('key')
        if not key:
            return self.status_reply('REQUEST_DENIED', NO_KEY_TEXT, layout, f.ascii)
        if f.accept_keys is not None and key not in f.accept_keys:
            return self.status_reply('REQUEST_DENIED', BAD_KEY_TEXT, layout, f.ascii)
        token = one('pagetoken')
        if token is not None:
            params = _decode_token(token)
            if params is None:
                return self.status_reply('INVALID_REQUEST', None, layout, f.ascii)
            lat, lng, radius, by_distance, keyword, type_, offset = params
        else:
            offset = 0
            loc = one('location')
            if loc is None:
                return invalid("Invalid request. Missing the 'location' parameter.")
            parts = loc.split(',')
            lat = _number(parts[0]) if len(parts) == 2 else None
            lng = _number(parts[1]) if len(parts) == 2 else None
            if lat is None or lng is None or not -90 <= lat <= 90 or not -180 <= lng <= 180:
                return invalid("Invalid request. Invalid 'location' parameter.")
            rankby = one('rankby') or 'prominence'
            if rankby not in ('prominence', 'distance'):
                return invalid("Invalid request. Invalid 'rankby' parameter.")
            by_distance = rankby == 'distance'
            keyword = one('keyword') or one('name')
            type_ = one('type')
            radius_s = one('radius')
            if by_distance:
                if radius_s is not None:
                    return invalid('Invalid request. When rankby=distance, radius must not be '
                                   'included.')
                if not (keyword or type_):
                    return invalid('Invalid request. When rankby=distance, one of keyword, name '
                                   'or type is required.')
                radius = MAX_RADIUS_M
            else:
                if radius_s is None:
                    return invalid("Invalid request. Missing the 'radius' parameter.")
                radius = _number(radius_s)
                if radius is None or not 0 <= radius <= MAX_RADIUS_M:
                    return invalid("Invalid request. Invalid 'radius' parameter.")
        return Reply(200, self._page(lat, lng, radius, by_distance, keyword, type_, offset,
                                     layout, f.ascii, f.rich))

    def _render_page(self, lat, lng, radius, by_distance, keyword, type_, offset, layout,
                     ascii_only, rich):
        """The body of one page of results (cached: the arguments are the whole key)."""
        if type_ and type_ not in CITY_TYPES:
            found = []
        else:
            found = self.gaz.search(lat, lng, radius, LEGACY_MAX, by_distance, keyword)
        page = found[offset:offset + LEGACY_PAGE]
        if not page:
            return render({'html_attributions': [], 'results': [], 'status': 'ZERO_RESULTS'},
                          layout, ascii_only)
        doc = {'html_attributions': [],
               'results': [self.gaz.legacy_result(i, rich) for i in page],
               'status': 'OK'}
        if len(found) > offset + LEGACY_PAGE:
            doc['next_page_token'] = _encode_token(
                (lat, lng, radius, by_distance, keyword, type_, offset + LEGACY_PAGE))
        return render(doc, layout, ascii_only)


def _encode_token(params):
    raw = json.dumps(list(params), separators=(',', ':')).encode('utf-8')
    return PAGE_TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode('ascii').rstrip('=')


def _decode_token(token):
    if not token.startswith(PAGE_TOKEN_PREFIX):
        return None
    body = token[len(PAGE_TOKEN_PREFIX):]
    try:
        v = json.loads(base64.urlsafe_b64decode(body + '=' * (-len(body) % 4)))
        lat, lng, radius, by_distance, keyword, type_, offset = v
        lat, lng, radius, offset = float(lat), float(lng), float(radius), int(offset)
    except (ValueError, TypeError):
        return None
    if not (0 <= offset < LEGACY_MAX and 0 <= radius <= MAX_RADIUS_M):
        return None
    return lat, lng, radius, bool(by_distance), keyword, type_, offset


def _http_fault(f, json_reply):
    """Body of an `http_status` fault: JSON (from json_reply()), an HTML page, text or nothing."""
    try:
        reason = http.HTTPStatus(f.http_status).phrase
    except ValueError:
        reason = 'Error'
    if f.body == 'html':
        return Reply(f.http_status, html_error_page(f.http_status, reason), HTML_TYPE)
    if f.body == 'text':
        return Reply(f.http_status, ('%d %s\n' % (f.http_status, reason)).encode(), TEXT_TYPE)
    if f.body == 'empty':
        return Reply(f.http_status, b'', TEXT_TYPE)
    return json_reply()


# ---------------------------------------------------------------------------------------------
# Places API (New) searchNearby.

class _Invalid(Exception):
    pass


def _parse_mask(mask):
    """'places.id,places.displayName.text' -> tree {'id': True, 'displayName': {'text': True}}, or
    True for every field. Raises _Invalid naming the bad path."""
    tree = {}
    for path in (p.strip() for p in mask.split(',')):
        if not path:
            continue
        if path in ('*', 'places', 'places.*'):
            return True
        parts = path.split('.')
        if parts[0] != 'places' or parts[1] not in PLACE_FIELDS:
            raise _Invalid("Error expanding 'fields' parameter. Cannot find matching fields for "
                           "path '%s'." % path)
        node = tree
        for j, part in enumerate(parts[1:]):
            last = j == len(parts) - 2
            cur = node.get(part)
            if cur is True:
                break
            if last:
                node[part] = True
            else:
                node = node.setdefault(part, {})
    if not tree:
        raise _Invalid(NEW_NO_MASK_TEXT)
    return tree


def _apply_mask(value, tree):
    if tree is True or not isinstance(value, dict):
        return value
    out = {}
    for k, x in value.items():
        sub = tree.get(k)
        if sub is not None:
            v = _apply_mask(x, sub)
            if not (isinstance(v, dict) and not v):
                out[k] = v
    return out


def _field(body, camel, snake):
    if camel in body:
        return body[camel]
    return body.get(snake)


def _snake(name):
    return ''.join('_' + c.lower() if c.isupper() else c for c in name)


def _num(v, what):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        if isinstance(v, str):          # proto3 JSON also takes numbers as strings
            n = _number(v)
            if n is not None:
                return n
        raise _Invalid('Invalid value at \'%s\' (TYPE_DOUBLE), %s' % (what, json.dumps(v)))
    if not math.isfinite(v):
        raise _Invalid('Invalid value at \'%s\'' % what)
    return float(v)


class NewApi:
    def __init__(self, gazetteer):
        self.gaz = gazetteer
        self._places = functools.lru_cache(maxsize=RESPONSE_CACHE)(self._render_places)

    def error_reply(self, status, message, layout, ascii_only, code=None, details=None):
        """An error envelope: `status` in either vocabulary (or OVER_DAILY_LIMIT); ZERO_RESULTS
        is a 200 `{}` as the New API has no such status."""
        daily = status == 'OVER_DAILY_LIMIT'
        status = LEGACY_TO_NEW.get(status, status)
        if status is None:
            return Reply(code or 200, render({}, layout, ascii_only))
        default_code, default_text = NEW_STATUS.get(status, (code or 500, 'Error'))
        if daily:
            default_text = DAILY_QUOTA_TEXT_NEW
        code = code or default_code
        return Reply(code, render(_new_error(code, status,
                                             message if message is not None else default_text,
                                             details), layout, ascii_only))

    def fault_reply(self, f, layout):
        if f.http_status is not None:
            return _http_fault(f, lambda: self.error_reply(
                f.status or HTTP_TO_NEW.get(f.http_status, 'UNKNOWN'),
                f.error_message, layout, f.ascii, f.http_status))
        return self.error_reply(f.status, f.error_message, layout, f.ascii)

    def answer(self, headers, query, body, f):
        """headers: lower-case name -> value; query: parse_qs dict; body: request bytes."""
        layout = f.layout or 'indent2'

        def bad(msg, details=None):
            return self.error_reply('INVALID_ARGUMENT', msg, layout, f.ascii, 400, details)

        key = headers.get('x-goog-api-key') or (query.get('key') or [None])[-1]
        if not key:
            return self.error_reply('PERMISSION_DENIED', NEW_NO_KEY_TEXT, layout, f.ascii, 403)
        if f.accept_keys is not None and key not in f.accept_keys:
            return bad(NEW_BAD_KEY_TEXT, _error_info('API_KEY_INVALID'))
        mask = headers.get('x-goog-fieldmask')
        if mask is None:
            mask = (query.get('fields') or query.get('$fields') or [None])[-1]
        if not mask:
            return bad(NEW_NO_MASK_TEXT)
        try:
            _parse_mask(mask)
            req = self._parse_body(body)
        except _Invalid as e:
            return bad(str(e))
        return Reply(200, self._places(mask, *req, layout, f.ascii))

    def _render_places(self, mask, lat, lng, radius, count, by_distance, language, included,
                       excluded, layout, ascii_only):
        """The body of a successful search (cached: the arguments are the whole key)."""
        types = set(CITY_TYPES)
        if (included and not types & included) or types & excluded:
            found = []
        else:
            found = self.gaz.search(lat, lng, radius, count, by_distance)
        tree = _parse_mask(mask)
        places = [_apply_mask(self.gaz.new_place(i, language), tree) for i in found]
        doc = {'places': places} if any(places) else {}
        return render(doc, layout, ascii_only)

    def _parse_body(self, body):
        try:
            v = json.loads(body.decode('utf-8')) if body.strip() else {}
        except (UnicodeDecodeError, ValueError) as e:
            raise _Invalid('Invalid JSON payload received. %s' % e)
        if not isinstance(v, dict):
            raise _Invalid('Invalid JSON payload received. Expected an object.')
        known = REQUEST_FIELDS | {_snake(k) for k in REQUEST_FIELDS}
        for k in v:
            if k not in known:
                raise _Invalid('Invalid JSON payload received. Unknown name "%s": Cannot find '
                               'field.' % k)
        count = _field(v, 'maxResultCount', 'max_result_count')
        if count is None:
            count = NEW_MAX_RESULTS
        else:
            if isinstance(count, str) and count.isdigit():
                count = int(count)
            if isinstance(count, bool) or not isinstance(count, int) or \
                    not 1 <= count <= NEW_MAX_RESULTS:
                raise _Invalid('max_result_count must be between 1 and 20.')
        lr = _field(v, 'locationRestriction', 'location_restriction')
        if not isinstance(lr, dict) or not isinstance(lr.get('circle'), dict):
            raise _Invalid('location_restriction is required.' if lr is None else
                           'location_restriction must hold a circle.')
        circle = lr['circle']
        center = circle.get('center')
        if not isinstance(center, dict):
            raise _Invalid('location_restriction.circle.center is required.')
        lat = _num(center.get('latitude', 0), 'location_restriction.circle.center.latitude')
        lng = _num(center.get('longitude', 0), 'location_restriction.circle.center.longitude')
        if not -90 <= lat <= 90:
            raise _Invalid('Invalid location_restriction.circle.center.latitude: must be in '
                           '[-90, 90].')
        if not -180 <= lng <= 180:
            raise _Invalid('Invalid location_restriction.circle.center.longitude: must be in '
                           '[-180, 180].')
        if 'radius' not in circle:
            raise _Invalid('location_restriction.circle.radius is required.')
        radius = _num(circle['radius'], 'location_restriction.circle.radius')
        if not 0 <= radius <= MAX_RADIUS_M:
            raise _Invalid('Invalid location_restriction.circle.radius: must be between 0.0 and '
                           '50000.0, inclusive.')
        rank = _field(v, 'rankPreference', 'rank_preference') or 'POPULARITY'
        if rank not in RANK_PREFERENCES:
            raise _Invalid('Invalid value at \'rank_preference\', "%s"' % rank)
        language = _field(v, 'languageCode', 'language_code') or 'en'
        if not isinstance(language, str):
            raise _Invalid('Invalid value at \'language_code\'')

        def type_set(camel):
            t = _field(v, camel, _snake(camel)) or []
            if not isinstance(t, list) or not all(isinstance(x, str) for x in t):
                raise _Invalid('Invalid value at \'%s\'' % _snake(camel))
            return frozenset(t)
        included = type_set('includedTypes') | type_set('includedPrimaryTypes')
        excluded = type_set('excludedTypes') | type_set('excludedPrimaryTypes')
        return lat, lng, radius, count, rank == 'DISTANCE', language, included, excluded
