"""The GeoNames cities in Redis, so that GEOSEARCH searches what the herd's offline WHATSAT
searches (issue 11: "GEOSEARCH over the same GeoNames cities").

load(port, gazetteer, key='herd') sends one GEOADD per 1,000 cities of build/data/cities.pbf to the
Redis at 127.0.0.1:port into the key that herd-load's GEADD/GEOSEARCH use, as members
`geonames:<id>` (client IDs never start so), and returns the number stored. Cities beyond Redis's
latitude range (±85.05112878°) are left out and counted. The file is decoded by the asyncio
reference herd's reader (tools/reference/herd_ref.py), the same data the C++ server loads.
"""

import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'reference'))

from herd_ref import read_cities_pbf  # noqa: E402

REDIS_MAX_LAT = 85.05112878
BATCH = 1000


def resp(*args):
    return b'*%d\r\n' % len(args) + b''.join(b'$%d\r\n%s\r\n' % (len(a), a) for a in args)


def load(port, gazetteer, key=b'herd', timeout=60):
    """Returns (cities stored, cities left out for their latitude)."""
    cities = read_cities_pbf(gazetteer)
    commands, batch, left_out = [], [], 0
    for gid, _name, _pop, lat, lng in cities:
        if abs(lat) > REDIS_MAX_LAT:
            left_out += 1
            continue
        batch += [b'%.5f' % lng, b'%.5f' % lat, b'geonames:%d' % gid]
        if len(batch) >= 3 * BATCH:
            commands.append(resp(b'GEOADD', key, *batch))
            batch = []
    if batch:
        commands.append(resp(b'GEOADD', key, *batch))
    stored = 0
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as s:
        s.sendall(b''.join(commands))
        buf = b''
        replies = 0
        while replies < len(commands):
            chunk = s.recv(65536)
            if not chunk:
                raise OSError('Redis closed the connection while loading the cities')
            buf += chunk
            while b'\r\n' in buf and replies < len(commands):
                line, _, buf = buf.partition(b'\r\n')
                if not line.startswith(b':'):
                    raise OSError('Redis refused a GEOADD of cities: %r' % line[:200])
                stored += int(line[1:])
                replies += 1
    return stored, left_out


if __name__ == '__main__':
    print(load(int(sys.argv[1]), sys.argv[2]))
