#!/usr/bin/python3
"""faultproxy: a small fault-injecting TCP proxy for the herd's peer links (like toxiproxy).

    faultproxy.py --control PORT --route NAME LISTEN_PORT TARGET_HOST:TARGET_PORT [--route ...]

Each route listens on 127.0.0.1:LISTEN_PORT and forwards every connection to the target, both ways.
A herd goes through it when a server's config names the route's port as a neighbour's peer_port
(tools/chaos/chaos.py and test/integration/herdlib.py write such configs: one route per direction
of each link, named like `Goloman>Hands` for the connection Goloman dials to Hands).

The control port takes one command per line and answers one line (`ok ...` or `error ...`):

    mode ROUTE pass         forward (the default)
    mode ROUTE drop         cut: close every connection of the route at once (RST) and stop listening,
                            so new connections are refused
    mode ROUTE blackhole    keep connections open but deliver nothing, either way: the sender's bytes
                            are accepted by TCP and never reach the other side
    delay ROUTE MS          deliver each chunk MS milliseconds after it was read
    rate ROUTE BYTES        slow-drain: read from the sender at most BYTES bytes a second (0: no limit)
    close ROUTE             close the route's current connections (RST); new ones are accepted
    stats ROUTE             `ok up=N down=N conns=N swallowed=N`: bytes delivered to the target (up),
                            back from it (down), connections open, bytes swallowed by a blackhole
    reset ROUTE             zero the byte counters
    routes                  the route names
    quit                    stop the proxy

ROUTE may be `*` for every route (mode, delay, rate, close, reset). Loopback only; standard library
only. SIGTERM or SIGINT stops it. It prints `faultproxy ready` once every port listens.
"""

import argparse
import asyncio
import signal
import socket
import struct
import sys

CHUNK = 65536


class Route:
    def __init__(self, name, listen_port, target):
        self.name = name
        self.listen_port = listen_port
        self.target = target
        self.mode = 'pass'
        self.delay = 0.0
        self.rate = 0
        self.up = self.down = self.swallowed = 0
        self.conns = set()   # open (client writer, target writer) pairs
        self.server = None
        self.wanted = asyncio.Event()  # the mode changed: listen or stop listening

    async def keep_listening(self, ready):
        """Listens while the mode is not drop; refuses connections (no listener) while it is."""
        while True:
            if self.mode != 'drop' and self.server is None:
                for attempt in range(50):
                    try:
                        self.server = await asyncio.start_server(
                            lambda rd, wr: handle(self, rd, wr), '127.0.0.1', self.listen_port,
                            reuse_address=True)
                        break
                    except OSError as e:
                        if ready is not None:
                            ready.set_exception(e)
                            return
                        await asyncio.sleep(0.1)
            elif self.mode == 'drop' and self.server is not None:
                self.server.close()
                self.server = None
            if ready is not None:
                ready.set_result(True)
                ready = None
            self.wanted.clear()
            await self.wanted.wait()

    def abort_all(self):
        for pair in list(self.conns):
            for w in pair:
                if w is not None:
                    abort(w)
        self.conns.clear()


def abort(writer):
    """Closes with RST (SO_LINGER 0), so the other end sees a reset, as with a cut link."""
    try:
        sock = writer.get_extra_info('socket')
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        writer.transport.abort()
    except Exception:
        pass


async def pump(route, reader, writer, upstream, pair):
    """Copies reader -> writer under the route's faults until either side ends."""
    try:
        while True:
            size = CHUNK
            if route.rate:
                size = max(1, min(CHUNK, route.rate // 20))
            data = await reader.read(size)
            if not data:
                break
            if pair not in route.conns:
                break
            if route.mode == 'blackhole':
                route.swallowed += len(data)
                continue
            if route.delay:
                await asyncio.sleep(route.delay)
            if pair not in route.conns:
                break
            writer.write(data)
            await writer.drain()
            if upstream:
                route.up += len(data)
            else:
                route.down += len(data)
            if route.rate:
                await asyncio.sleep(len(data) / route.rate)
    except (ConnectionError, OSError, asyncio.CancelledError):
        pass
    finally:
        if pair in route.conns:
            route.conns.discard(pair)
            for w in pair:
                abort(w)


async def handle(route, creader, cwriter):
    if route.mode == 'drop':
        abort(cwriter)
        return
    try:
        treader, twriter = await asyncio.open_connection(*route.target)
    except OSError:
        abort(cwriter)
        return
    for w in (cwriter, twriter):
        sock = w.get_extra_info('socket')
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pair = (cwriter, twriter)
    route.conns.add(pair)
    if route.mode == 'drop':  # cut while we dialled
        route.conns.discard(pair)
        abort(cwriter)
        abort(twriter)
        return
    await asyncio.gather(pump(route, creader, twriter, True, pair),
                         pump(route, treader, cwriter, False, pair))


def command(routes, line, stop):
    f = line.split()
    if not f:
        return 'error empty command'
    verb, args = f[0], f[1:]
    if verb == 'routes':
        return 'ok ' + ' '.join(routes)
    if verb == 'quit':
        stop.set()
        return 'ok'
    if not args:
        return 'error %s needs a route' % verb
    if args[0] == '*':
        targets = list(routes.values())
    elif args[0] in routes:
        targets = [routes[args[0]]]
    else:
        return 'error unknown route %r' % args[0]
    try:
        if verb == 'mode' and len(args) == 2 and args[1] in ('pass', 'drop', 'blackhole'):
            for r in targets:
                r.mode = args[1]
                if r.mode == 'drop':
                    r.abort_all()
                r.wanted.set()
            return 'ok'
        if verb == 'delay' and len(args) == 2:
            for r in targets:
                r.delay = max(0.0, float(args[1]) / 1000.0)
            return 'ok'
        if verb == 'rate' and len(args) == 2:
            for r in targets:
                r.rate = max(0, int(args[1]))
            return 'ok'
        if verb == 'close' and len(args) == 1:
            for r in targets:
                r.abort_all()
            return 'ok'
        if verb == 'reset' and len(args) == 1:
            for r in targets:
                r.up = r.down = r.swallowed = 0
            return 'ok'
        if verb == 'stats' and len(args) == 1 and len(targets) == 1:
            r = targets[0]
            return 'ok up=%d down=%d conns=%d swallowed=%d' % (r.up, r.down, len(r.conns), r.swallowed)
    except ValueError:
        pass
    return 'error bad command %r' % line


async def control(routes, stop, reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write((command(routes, line.decode('ascii', 'replace'), stop) + '\n').encode())
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main_async(args):
    routes = {}
    for name, port, target in args.route:
        host, _, tport = target.rpartition(':')
        routes[name] = Route(name, int(port), (host or '127.0.0.1', int(tport)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = []
    for r in routes.values():
        ready = loop.create_future()
        tasks.append(asyncio.create_task(r.keep_listening(ready)))
        await ready
    ctl = await asyncio.start_server(lambda rd, wr: control(routes, stop, rd, wr),
                                     '127.0.0.1', args.control, reuse_address=True)
    print('faultproxy ready', flush=True)
    await stop.wait()
    ctl.close()
    for t in tasks:
        t.cancel()
    for r in routes.values():
        if r.server is not None:
            r.server.close()
        r.abort_all()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--control', type=int, required=True, help='control port on 127.0.0.1')
    ap.add_argument('--route', nargs=3, action='append', default=[],
                    metavar=('NAME', 'LISTEN_PORT', 'TARGET'), help='a route: name, port, host:port')
    args = ap.parse_args(argv)
    if not args.route:
        ap.error('at least one --route')
    try:
        asyncio.run(main_async(args))
    except OSError as e:
        print('faultproxy: %s' % e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
