#!/usr/bin/python3
"""Starts every server of a herd config in the foreground: `make run` calls this.

Prints each server's ready line (client port, peer port, log file) as it comes, then one line saying
the herd is up and how to try it, then waits. Ctrl-C (or SIGTERM) stops all of them cleanly; if one
server exits on its own, the others are stopped too and the exit status says so. The servers also
stop when this process dies in any other way (they are started with a parent-death signal), so no
herd is left running behind a closed terminal. Standard library plus Debian's python3-yaml only.
"""
import argparse
import ctypes
import signal
import subprocess
import sys
import threading
import time

import yaml

READY_TIMEOUT_S = 60   # a server's start, gazetteer included, on a loaded machine
PR_SET_PDEATHSIG = 1


def die_with_parent():
    """In the child, before exec: SIGTERM when the parent (this script) dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def say(text, err=False):
    try:
        print(text, file=sys.stderr if err else sys.stdout, flush=True)
    except BrokenPipeError:
        pass  # nobody reads our output any more; keep managing the servers


def forward(name, proc, ready):
    """Copies a server's stdout to ours and notes its ready line."""
    for raw in proc.stdout:
        line = raw.decode('utf-8', 'replace').rstrip('\n')
        if ' ready in ' in line:
            ready.add(name)
        say(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml", help="herd config (default: config.yaml)")
    ap.add_argument("--server", default="build/herd-server", help="the herd-server binary")
    args = ap.parse_args()

    try:
        with open(args.config, "rb") as f:
            config = yaml.safe_load(f)
        names = list(config["servers"])
        first_port = int((config["servers"][names[0]] or {})["port"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, IndexError) as e:
        sys.exit(f"run_herd: {args.config}: cannot read the servers of the herd: {e}")

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    say(f"run_herd: starting the {len(names)} servers of {args.config}")
    procs, ready = {}, set()
    for name in names:
        procs[name] = subprocess.Popen([args.server, name, "--config", args.config],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       preexec_fn=die_with_parent)
        threading.Thread(target=forward, args=(name, procs[name], ready), daemon=True).start()

    status = 0
    announced = False
    started = time.monotonic()
    while not stopping:
        for name, p in procs.items():
            if p.poll() is not None:
                say(f"run_herd: {name} exited with status {p.returncode}; stopping the herd", err=True)
                status = 1
                stopping = True
                break
        if not stopping and not announced and len(ready) == len(names):
            announced = True
            say(f"run_herd: the herd is up. Try it from another terminal: build/herd-cli -p {first_port}"
                f" (then type IAMAT/WHATSAT lines; see README). Ctrl-C stops all {len(names)} servers.")
        if not stopping and not announced and time.monotonic() - started > READY_TIMEOUT_S:
            late = ', '.join(n for n in names if n not in ready)
            say(f"run_herd: {late} not ready after {READY_TIMEOUT_S} s; stopping the herd", err=True)
            status, stopping = 1, True
        time.sleep(0.1)

    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for name, p in procs.items():
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"run_herd: {name} did not stop in time; killing it", err=True)
            p.kill()
            p.wait()
    say("run_herd: herd stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
