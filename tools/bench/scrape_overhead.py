#!/usr/bin/python3
"""Does a Prometheus-style scrape cost the client path anything? (issue 10: IAMAT throughput with a
GET /metrics every second must be at least 98% of the throughput without.)

    /usr/bin/python3 tools/bench/scrape_overhead.py [--rounds 4] [--duration 5] [--out FILE]
    make bench-scrape

Starts one herd-server (no links, the default log level, its admin port on loopback), then alternates closed-loop IAMAT runs of
build/herd-load without and with a scraper thread that GETs /metrics once a second, `--rounds` pairs,
and reports each run and the ratio of the medians. Alternating pairs spreads the machine's drift
over both sides. Exit 0 when the ratio is at least --target (default 0.98), 1 otherwise.
"""
import argparse
import http.client
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import procs  # tools/bench: free ports, /proc readers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_server(tmp, threads):
    port, peer, admin = procs.free_ports(3)
    cfg = os.path.join(tmp, 'config.yaml')
    with open(cfg, 'w') as f:
        f.write('threads: %d\nlog_dir: logs\nplaces: { provider: offline }\n'
                'servers:\n  Bench: { host: 127.0.0.1, port: %d, peer_port: %d, admin_port: %d }\n'
                'links: []\n' % (threads, port, peer, admin))
    env = dict(os.environ, HERD_GAZETTEER=os.path.join(REPO, 'build/data/cities.pbf'))
    p = subprocess.Popen([os.path.join(REPO, 'build/herd-server'), 'Bench', '--config', cfg], cwd=tmp, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    buf = b''
    while b'ready in' not in buf:
        if time.monotonic() > deadline or p.poll() is not None:
            raise SystemExit('herd-server did not start')
        if select.select([p.stdout], [], [], 0.5)[0]:
            buf += os.read(p.stdout.fileno(), 4096)
    return p, port, admin


def load(port, duration, connections, pipeline):
    r = subprocess.run([os.path.join(REPO, 'build/herd-load'), '--target', '127.0.0.1:%d' % port,
                        '--connections', str(connections), '--pipeline', str(pipeline), '--duration',
                        str(duration), '--warmup', '1', '--json'], stdout=subprocess.PIPE, timeout=duration + 60)
    doc = json.loads(r.stdout)
    return doc


def throughput(doc):
    for key in ('throughput', 'replies_per_s', 'rate'):
        if key in doc:
            return float(doc[key])
    return float(doc['answered']) / float(doc['duration_s'])


def scraper(admin, stop, counts):
    while not stop.is_set():
        t0 = time.monotonic()
        c = http.client.HTTPConnection('127.0.0.1', admin, timeout=5)
        c.request('GET', '/metrics')
        body = c.getresponse().read()
        c.close()
        counts.append(len(body))
        stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rounds', type=int, default=4)
    ap.add_argument('--duration', type=float, default=5)
    ap.add_argument('--connections', type=int, default=50)
    ap.add_argument('--pipeline', type=int, default=1)
    ap.add_argument('--threads', type=int, default=1, help='event loops of the server')
    ap.add_argument('--target', type=float, default=0.98)
    ap.add_argument('--out', help='write the results as JSON here')
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix='herd-scrape-') as tmp:
        p, port, admin = start_server(tmp, args.threads)
        runs = {'without': [], 'with': []}
        scrapes = []
        try:
            for r in range(args.rounds):
                for side in (('without', 'with') if r % 2 == 0 else ('with', 'without')):
                    stop = threading.Event()
                    t = None
                    if side == 'with':
                        t = threading.Thread(target=scraper, args=(admin, stop, scrapes))
                        t.start()
                    doc = load(port, args.duration, args.connections, args.pipeline)
                    stop.set()
                    if t:
                        t.join()
                    runs[side].append(throughput(doc))
                    print('round %d %-7s scrape: %10.0f IAMAT/s' % (r + 1, side, runs[side][-1]), flush=True)
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=20)
    med = {k: statistics.median(v) for k, v in runs.items()}
    ratio = med['with'] / med['without']
    print('median without %.0f/s, with a scrape every second %.0f/s: ratio %.3f (target >= %.2f, %d scrapes of ~%d bytes)'
          % (med['without'], med['with'], ratio, args.target, len(scrapes), scrapes[-1] if scrapes else 0))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump({'runs': runs, 'median': med, 'ratio': ratio, 'target': args.target,
                       'scrapes': len(scrapes)}, f, indent=1)
    return 0 if ratio >= args.target else 1


if __name__ == '__main__':
    sys.exit(main())
