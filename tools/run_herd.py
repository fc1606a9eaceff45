#!/usr/bin/python3
"""Starts every server of a herd config in the foreground: `make run` calls this.

Prints each server's client port, peer port and log file, then waits. Ctrl-C (or SIGTERM) stops all
of them cleanly; if one server exits on its own, the others are stopped too and the exit status says
so. Standard library plus Debian's python3-yaml only.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time

import yaml


READY_TIMEOUT_S = 30


def client_address(config, name):
    server = config["servers"][name] or {}
    return str(server.get("host", "127.0.0.1")), int(server["port"])


def accepts(address):
    """Whether something accepts TCP connections at (host, port) right now."""
    try:
        with socket.create_connection(address, timeout=0.5):
            return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config.yaml", help="herd config (default: config.yaml)")
    ap.add_argument("--server", default="build/herd-server", help="the herd-server binary")
    args = ap.parse_args()

    try:
        with open(args.config, "rb") as f:
            config = yaml.safe_load(f)
        names = list(config["servers"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        sys.exit(f"run_herd: {args.config}: cannot read the servers of the herd: {e}")

    procs = {}
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"run_herd: starting the {len(names)} servers of {args.config}", flush=True)
    for name in names:
        procs[name] = subprocess.Popen([args.server, name, "--config", args.config])

    status = 0
    waiting = {name: client_address(config, name) for name in names}
    deadline = time.monotonic() + READY_TIMEOUT_S
    while waiting and not stopping and time.monotonic() < deadline:
        waiting = {n: a for n, a in waiting.items() if not accepts(a) and procs[n].poll() is None}
        if waiting:
            time.sleep(0.1)
    if not stopping and all(p.poll() is None for p in procs.values()):
        first = names[0]
        host, port = client_address(config, first)
        print(f"run_herd: the herd is up. Try it from another terminal: nc {host} {port}"
              f"  (then IAMAT/WHATSAT lines; see README). Ctrl-C stops all {len(names)} servers.",
              flush=True)
    while not stopping:
        for name, p in procs.items():
            if p.poll() is not None:
                print(f"run_herd: {name} exited with status {p.returncode}; stopping the herd",
                      file=sys.stderr, flush=True)
                status = 1
                stopping = True
                break
        time.sleep(0.2)

    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for name, p in procs.items():
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"run_herd: {name} did not stop in time; killing it", file=sys.stderr)
            p.kill()
            p.wait()
    print("run_herd: herd stopped", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
