#!/usr/bin/python3
"""Holds many mostly idle client connections open to one server, for the benchmark's
idle-connections phase.

    /usr/bin/python3 tools/bench/holder.py --port P --count N --protocol herd|redis|null

Opens N connections to 127.0.0.1:P in batches; on each one sends one request (an IAMAT for a
client of its own for the herd and herd-null, PING for Redis) and waits for its one-line reply, so
that a connection only counts as held once the server has really served it. Prints one JSON line
{"held": ..., "failed": ..., "seconds": ...} and then sits idle. On SIGTERM it checks how many of
the connections are still open, prints {"still_open": ...} and exits.
"""

import argparse
import errno
import json
import resource
import selectors
import signal
import socket
import sys
import time


def probe(protocol, k):
    if protocol == 'redis':
        return b'PING\r\n'
    t = time.time_ns()
    return b'IAMAT idle%d.hold +34.068930-118.445127 %d.%09d\n' % (k, t // 10**9, t % 10**9)


def reply_ok(protocol, line):
    if protocol == 'redis':
        return line.startswith(b'+PONG')
    if protocol == 'herd':
        return line.startswith(b'AT ')
    return True


def open_batch(port, protocol, first, n, timeout):
    """Connect n sockets, send each its probe, wait for each reply line. Returns (ok, failed)."""
    sel = selectors.DefaultSelector()
    state = {}
    failed = 0
    for k in range(first, first + n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex(('127.0.0.1', port))
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            failed += 1
            continue
        state[s] = {'k': k, 'out': probe(protocol, k), 'in': b'', 'connected': rc == 0}
        sel.register(s, selectors.EVENT_WRITE)
    ok = []
    deadline = time.monotonic() + timeout
    while state and time.monotonic() < deadline:
        for key, events in sel.select(timeout=0.2):
            s = key.fileobj
            st = state[s]
            try:
                if events & selectors.EVENT_WRITE:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, 'connect')
                    sent = s.send(st['out'])
                    st['out'] = st['out'][sent:]
                    if not st['out']:
                        sel.modify(s, selectors.EVENT_READ)
                    continue
                data = s.recv(4096)
                if not data:
                    raise OSError('closed')
                st['in'] += data
                if b'\n' in st['in']:
                    sel.unregister(s)
                    del state[s]
                    if reply_ok(protocol, st['in']):
                        ok.append(s)
                    else:
                        s.close()
                        failed += 1
            except OSError:
                sel.unregister(s)
                del state[s]
                s.close()
                failed += 1
    for s in state:
        sel.unregister(s)
        s.close()
        failed += 1
    sel.close()
    return ok, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--count', type=int, required=True)
    ap.add_argument('--protocol', choices=['herd', 'redis', 'null'], default='herd')
    ap.add_argument('--batch', type=int, default=500)
    ap.add_argument('--timeout', type=float, default=60.0, help='seconds for the whole opening')
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.count + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, soft)), hard))

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    t0 = time.monotonic()
    deadline = t0 + args.timeout
    held, failed = [], 0
    k = 0
    while k < args.count and not stop and time.monotonic() < deadline:
        n = min(args.batch, args.count - k)
        ok, bad = open_batch(args.port, args.protocol, k, n, max(1.0, deadline - time.monotonic()))
        held += ok
        failed += bad
        k += n
    failed += args.count - k
    print(json.dumps({'held': len(held), 'failed': failed,
                      'seconds': round(time.monotonic() - t0, 3)}), flush=True)

    while not stop:
        time.sleep(0.2)

    still = 0
    for s in held:
        try:
            data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            if data:
                still += 1  # unexpected bytes, but the connection is open
        except BlockingIOError:
            still += 1
        except OSError:
            pass
    print(json.dumps({'still_open': still}), flush=True)
    for s in held:
        s.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
