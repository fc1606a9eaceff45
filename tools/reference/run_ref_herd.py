#!/usr/bin/python3
"""Start every server of a herd config as a separate reference process (herd_ref.py).

    /usr/bin/python3 tools/reference/run_ref_herd.py --config config.yaml [--seed-style]
                                                     [--gazetteer PATH] [--ready-timeout S]

Prints each server's client port, peer port and log file once it is listening, then waits. Ctrl-C
or SIGTERM stops them all (SIGTERM, then SIGKILL after a grace period). If one server exits on its
own, the others are stopped too and the exit status is 1.
"""

import argparse
import os
import selectors
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import herd_ref  # noqa: E402  (config validation shared with the server)

PYTHON = '/usr/bin/python3'
GRACE = 5.0


def stop_all(procs):
    for name, p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    for name, p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print('run_ref_herd: %s did not stop; killing it' % name, file=sys.stderr)
            p.kill()
            p.wait()


def main(argv=None):
    ap = argparse.ArgumentParser(description='run a herd of reference servers')
    ap.add_argument('--config', default='config.yaml')
    ap.add_argument('--seed-style', action='store_true')
    ap.add_argument('--gazetteer')
    ap.add_argument('--ready-timeout', type=float, default=60.0)
    args = ap.parse_args(argv)
    try:
        cfg = herd_ref.load_config(args.config)
    except herd_ref.ConfigError as e:
        print('run_ref_herd: %s' % e, file=sys.stderr)
        return 2

    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    procs = []
    sel = selectors.DefaultSelector()
    try:
        for name in cfg['servers']:
            cmd = [PYTHON, os.path.join(HERE, 'herd_ref.py'), name, '--config', args.config]
            if args.seed_style:
                cmd.append('--seed-style')
            if args.gazetteer:
                cmd += ['--gazetteer', args.gazetteer]
            # Own process group: a terminal Ctrl-C reaches only this runner, which then stops
            # the servers in order.
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, start_new_session=True)
            procs.append((name, p))
            sel.register(p.stdout, selectors.EVENT_READ, name)

        waiting = {name for name, _ in procs}
        byname = dict(procs)
        deadline = time.monotonic() + args.ready_timeout
        buf = {name: b'' for name in waiting}
        while waiting and not stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                print('run_ref_herd: not ready after %.0fs: %s'
                      % (args.ready_timeout, ', '.join(sorted(waiting))), file=sys.stderr)
                stop_all(procs)
                return 1
            for key, _ in sel.select(min(left, 0.2)):
                name = key.data
                chunk = os.read(key.fileobj.fileno(), 4096)
                if not chunk:
                    sel.unregister(key.fileobj)
                    rc = byname[name].wait()
                    print('run_ref_herd: %s exited with status %d before it was ready'
                          % (name, rc), file=sys.stderr)
                    stop_all(procs)
                    return 1
                buf[name] += chunk
                if b'\n' in buf[name]:
                    line = buf[name].split(b'\n', 1)[0].decode('utf-8', 'replace')
                    s = cfg['servers'][name]
                    log = line.rsplit(' log ', 1)[-1] if ' log ' in line else '?'
                    print('%-10s client %s:%d  peer %s:%d  log %s  (pid %d)'
                          % (name, s['host'], s['port'], s['host'], s['peer_port'], log,
                             byname[name].pid), flush=True)
                    sel.unregister(key.fileobj)
                    waiting.discard(name)
        if not stopping:
            print('herd of %d reference servers running%s; Ctrl-C stops it'
                  % (len(procs), ' (seed-style)' if args.seed_style else ''), flush=True)
        while not stopping:
            for name, p in procs:
                if p.poll() is not None:
                    print('run_ref_herd: %s exited with status %d; stopping the herd'
                          % (name, p.returncode), file=sys.stderr)
                    stop_all(procs)
                    return 1
            time.sleep(0.2)
        print('run_ref_herd: stopping', file=sys.stderr)
        stop_all(procs)
        return 0
    finally:
        for name, p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            if p.stdout:
                p.stdout.close()


if __name__ == '__main__':
    sys.exit(main())
