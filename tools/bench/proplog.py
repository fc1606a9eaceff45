"""Propagation delays from the servers' own log timestamps: a probe that does not poll.

`herd-load --propagation` sends IAMATs for fresh clients `prop<tag>-<round>.load` to one server and
polls the others, so its delays carry up to one poll round trip each. Every server also logs each
line it receives with the time its event loop took it (`2026-11-26T01:20:17.913412Z p3/Hands < AT
...`), so the same rounds can be timed without polling: for each probe client, the entry's
`< IAMAT` entry starts the clock and each other server's first `< AT` entry for that client stops
it. All servers run on this machine, so their clocks are one clock. A server whose log writer fell
behind drops entries (and says so in its log), and records that arrive in a catch-up BULK frame are
logged by the frame's header only: such rounds are missing from the log, not from the server, and
are reported as missed (with the count of dropped entries beside them).

Used by bench.py right after the probe, while the logs still hold its rounds."""

import datetime
import os
import re

# A received line about a probe client: the client's IAMAT at the entry, a flooded AT elsewhere.
# The notice a server's log carries when its writer fell behind and entries were dropped.
DROPPED = re.compile(rb' (\d+) entries dropped$', re.M)
LINE = re.compile(rb'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z \S+ < (IAMAT|AT \S+ \S+) (prop\d+-\d+\.load) ',
                  re.M)


def stamp_us(text):
    """Microseconds since the epoch of a log timestamp (UTC, without the Z)."""
    day, frac = text.decode().split('.')
    t = datetime.datetime.strptime(day, '%Y-%m-%dT%H:%M:%S').replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp()) * 1_000_000 + int(frac.ljust(6, '0')[:6])


def first_receipts(path, want_iamat):
    """({client: µs} of the first received line about each probe client in one log file: the
    IAMAT (want_iamat) or the first flooded AT record; log entries the server says it dropped)."""
    out = {}
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError:
        return out, 0
    for m in LINE.finditer(data):
        if (m.group(2) == b'IAMAT') != want_iamat:
            continue
        client = m.group(3).decode()
        if client not in out:
            out[client] = stamp_us(m.group(1))
    return out, sum(int(m.group(1)) for m in DROPPED.finditer(data))


def percentile(sorted_vals, q):
    """The value at percentile q (0..100) of a sorted list: the rank ceil(q% of n)."""
    if not sorted_vals:
        return None
    rank = max(1, min(len(sorted_vals), -(-len(sorted_vals) * q // 100)))
    return sorted_vals[int(rank) - 1]


def figures(delays_us):
    v = sorted(delays_us)
    ms = lambda x: None if x is None else x / 1000.0  # noqa: E731
    return {'seen': len(v), 'p50_ms': ms(percentile(v, 50)), 'p90_ms': ms(percentile(v, 90)),
            'p99_ms': ms(percentile(v, 99)), 'p99.9_ms': ms(percentile(v, 99.9)),
            'max_ms': ms(v[-1] if v else None)}


def delays(log_dir, entry, hops):
    """Per server and per hop count: the delay from the entry's receipt of each probe IAMAT to each
    other server's first receipt of the record, from the logs in log_dir (<name>.log). hops: {name:
    hop count from the entry}. Rounds the entry did not log are skipped; a server that never logged a
    round's record counts it as missed."""
    start, entry_dropped = first_receipts(os.path.join(log_dir, entry + '.log'), True)
    servers, by_hop = [], {}
    for name in sorted(hops, key=lambda n: (hops[n], n)):
        if name == entry:
            continue
        got, dropped = first_receipts(os.path.join(log_dir, name + '.log'), False)
        d = [got[c] - t for c, t in start.items() if c in got]
        missed = sum(1 for c in start if c not in got)
        # A round missing from a log whose writer dropped entries is not a lost record.
        s = {'name': name, 'hops': hops[name], 'missed': missed, 'log_dropped': dropped}
        s.update(figures(d))
        servers.append(s)
        h = by_hop.setdefault(hops[name], {'delays': [], 'missed': 0, 'servers': 0})
        h['delays'] += d
        h['missed'] += missed
        h['servers'] += 1
    rows = []
    for k in sorted(by_hop):
        r = {'hops': k, 'servers': by_hop[k]['servers'], 'missed': by_hop[k]['missed']}
        r.update(figures(by_hop[k]['delays']))
        rows.append(r)
    return {'rounds_logged': len(start), 'entry_log_dropped': entry_dropped, 'by_hops': rows,
            'servers': servers}
