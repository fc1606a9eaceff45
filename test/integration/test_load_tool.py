"""herd-load itself: an IPv6 target, the --latency-out percentile export (HdrHistogram's .hgrm
layout), per-command latency in the JSON, and duration units on the command line."""

import json
import os
import socket
import subprocess
import threading

import pytest

import herdlib

LOADGEN = os.path.join(herdlib.REPO, 'build', 'herd-load')
RUN_TIMEOUT = 60.0


@pytest.fixture(autouse=True)
def _need_loadgen():
    if not os.path.exists(LOADGEN):
        pytest.skip('build/herd-load is not built')


class LineEchoServer:
    """Answers every line received with `OK\\n` (what `--protocol null` expects), on ::1."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('::1', 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.lines = 0
        self.threads[0].start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn):
        conn.settimeout(0.2)
        with conn:
            while not self.stopping.is_set():
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                n = data.count(b'\n')
                self.lines += n
                if n:
                    conn.sendall(b'OK\n' * n)

    def stop(self):
        self.stopping.set()
        self.sock.close()
        for t in self.threads:
            t.join(5)


def run_load(args, timeout=RUN_TIMEOUT):
    return subprocess.run([LOADGEN] + args, capture_output=True, text=True, timeout=timeout)


def read_hgrm(path):
    """[(value ms, percentile fraction, total count)] from an .hgrm file, and its comment lines."""
    rows, comments = [], []
    with open(path) as f:
        for line in f:
            if line.startswith('#'):
                comments.append(line)
                continue
            parts = line.split()
            if not parts or parts[0] == 'Value':
                continue
            rows.append((float(parts[0]), float(parts[1]), int(parts[2])))
    return rows, comments


def check_hgrm(rows, replies, max_us):
    assert len(rows) >= 2
    assert rows[0][1] == 0.0
    assert rows[-1][1] == 1.0
    assert rows[-1][2] == replies              # the last line counts every measured reply
    assert abs(rows[-1][0] * 1000 - max_us) <= 0.1 + 1e-6 * max_us   # ... and shows the max
    for a, b in zip(rows, rows[1:]):
        assert b[1] > a[1] and b[0] >= a[0] and b[2] >= a[2]


def test_ipv6_target_and_latency_out(tmp_path):
    server = LineEchoServer()
    out = tmp_path / 'lat.hgrm'
    try:
        r = run_load(['--target', '[::1]:%d' % server.port, '--protocol', 'null',
                      '--connections', '4', '--pipeline', '4', '--threads', '2',
                      '--warmup', '100ms', '--duration', '700ms', '--json',
                      '--latency-out', str(out)])
    finally:
        server.stop()
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout.strip().splitlines()[-1])
    assert j['targets'] == ['[::1]:%d' % server.port]
    assert j['errors']['total'] == 0
    assert j['replies'] > 50
    assert 0.6 < j['measured_seconds'] < 1.5      # 700ms, not 700 s
    assert server.lines >= j['replies']
    assert j['latency_us']['count'] == j['replies']
    assert j['latency_us_by_command']['IAMAT']['count'] == j['replies']
    assert 'WHATSAT' not in j['latency_us_by_command']
    rows, comments = read_hgrm(out)
    check_hgrm(rows, j['replies'], j['latency_us']['max'])
    assert any('milliseconds' in c for c in comments)
    with open(out) as f:
        assert '       Value     Percentile TotalCount 1/(1-Percentile)\n' in f.read()
    # The JSON carries the same distribution.
    pts = j['latency_percentiles']
    assert pts[0][0] == 0 and pts[-1][0] == 100 and pts[-1][2] == j['replies']
    assert len(pts) == len(rows)
    # The p50 in the file agrees with the JSON's.
    p50 = next(v for v, q, n in rows if q >= 0.5)
    assert abs(p50 * 1000 - j['latency_us']['p50']) <= 0.01 * j['latency_us']['p50'] + 0.1


def test_config_with_a_bracketed_ipv6_host(tmp_path):
    # herd-server accepts `host: "[::1]"` (README, Configuration reference); --config must too.
    server = LineEchoServer()
    cfg = tmp_path / 'herd.yaml'
    cfg.write_text('servers:\n  A: { host: "[::1]", port: %d, peer_port: 9 }\n' % server.port)
    try:
        r = run_load(['--config', str(cfg), '--entry', 'A', '--protocol', 'null',
                      '--connections', '2', '--duration', '300ms', '--json'])
    finally:
        server.stop()
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout.strip().splitlines()[-1])
    assert j['errors']['total'] == 0 and j['replies'] > 0


def test_per_command_latency_against_a_server(solo, tmp_path):
    out = tmp_path / 'mixed.hgrm'
    r = run_load(['--target', '127.0.0.1:%d' % solo.port('Solo'), '--connections', '4',
                  '--clients', '40', '--seed', '--whatsat-ratio', '0.5', '--duration', '600ms',
                  '--json', '--latency-out', str(out)])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    j = json.loads(r.stdout.strip().splitlines()[-1])
    by = j['latency_us_by_command']
    assert by['IAMAT']['count'] == j['iamat_ok'] > 0
    assert by['WHATSAT']['count'] == j['whatsat_ok'] > 0
    assert by['IAMAT']['count'] + by['WHATSAT']['count'] == j['latency_us']['count']
    rows, _ = read_hgrm(out)
    check_hgrm(rows, j['replies'], j['latency_us']['max'])
    for suffix, key in (('.iamat', 'IAMAT'), ('.whatsat', 'WHATSAT')):
        rows, _ = read_hgrm(str(out) + suffix)
        check_hgrm(rows, by[key]['count'], by[key]['max'])
    # The text report shows the two commands apart.
    r = run_load(['--target', '127.0.0.1:%d' % solo.port('Solo'), '--connections', '2',
                  '--clients', '20', '--seed', '--whatsat-ratio', '0.5', '--duration', '300ms'])
    assert r.returncode == 0, r.stdout[-2000:]
    assert 'IAMAT' in r.stdout and 'WHATSAT' in r.stdout
    lines = r.stdout.splitlines()
    at = next(i for i, l in enumerate(lines) if l.startswith('latency'))
    assert lines[at + 1].split() == ['all', 'IAMAT', 'WHATSAT']
    p50 = lines[at + 2].split()
    assert p50[0] == 'p50' and len(p50) == 7      # p50, then a value and its unit per column


@pytest.mark.parametrize('args,needle', [
    (['--duration', '5x'], 'unknown unit "x"'),
    (['--duration', '10sec'], 'unknown unit "sec"'),
    (['--warmup', 'ms'], 'no number'),
    (['--target', '::1:9000'], 'brackets'),
    (['--target', '[::1]9000'], '[HOST]:PORT'),
    (['--target', '[::1]:0'], '1..65535'),
])
def test_bad_flags_are_clear_errors(args, needle):
    base = ['--target', '127.0.0.1:9', '--protocol', 'null']
    r = run_load(base + args if args[0] != '--target' else args + ['--protocol', 'null'], timeout=10)
    assert r.returncode == 2
    assert needle in r.stderr, r.stderr


def test_unwritable_latency_out_fails_before_the_run(tmp_path):
    r = run_load(['--target', '127.0.0.1:9', '--protocol', 'null', '--duration', '10s',
                  '--latency-out', str(tmp_path / 'no-such-dir' / 'x.hgrm')], timeout=10)
    assert r.returncode == 2
    assert 'cannot open' in r.stderr


def test_an_ack_file_that_cannot_be_written_fails_the_run(solo):
    # /dev/full opens, but every write to it fails (ENOSPC): acknowledgements a checker such as
    # tools/chaos relies on would be lost without a word.
    r = run_load(['--target', '127.0.0.1:%d' % solo.port('Solo'), '--connections', '2',
                  '--clients', '20', '--duration', '300ms', '--ack-file', '/dev/full'])
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert '/dev/full: cannot write: No space left on device (acknowledgements were lost)' in r.stderr
