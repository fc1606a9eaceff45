"""The herd on real addresses: five servers in five Linux network namespaces, each with one veth
link into a bridge (in a sixth, hub namespace), addressed 10.213.0.1-5, nothing on loopback. A
record reported to Goloman reaches Welsh two hops away; with Hands' link set down (`ip link set
down`) the herd keeps flooding around it, and Hands catches up once its link is back.

Needs root and `ip netns`; skipped with a message where namespaces cannot be created. Nothing leaves
the machine: the namespaces have no route out."""

import contextlib
import os
import select
import signal
import subprocess
import sys
import time

import pytest

import herdlib
from herdlib import NAMES, LINKS, fmt_time, unique_id

SUBNET = '10.213.0.'
PORT, PEER_PORT = 12000, 13000
TAG = 'hd%d' % (os.getpid() % 100000)
HUB = TAG + 'hub'
CLI = os.path.join(herdlib.REPO, 'build', 'herd-cli')


def sh(*args, check=True):
    r = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    if check and r.returncode != 0:
        raise AssertionError('%s: %s' % (' '.join(args), r.stderr.decode()))
    return r


def ns(i):
    return '%s%d' % (TAG, i)


def addr(i):
    return SUBNET + str(i + 1)


@pytest.fixture
def netns(tmp_path):
    if os.geteuid() != 0:
        pytest.skip('network namespaces need root')
    probe = subprocess.run(['ip', 'netns', 'add', HUB], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if probe.returncode != 0:
        pytest.skip('cannot create network namespaces here: %s' % probe.stderr.decode().strip())
    if not os.path.exists(CLI):
        pytest.skip('build/herd-cli is missing (run make)')
    made = [HUB]
    try:
        sh('ip', '-n', HUB, 'link', 'add', 'br0', 'type', 'bridge')
        sh('ip', '-n', HUB, 'link', 'set', 'br0', 'up')
        for i in range(len(NAMES)):
            sh('ip', 'netns', 'add', ns(i))
            made.append(ns(i))
            sh('ip', '-n', ns(i), 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'port%d' % i,
               'netns', HUB)
            sh('ip', '-n', HUB, 'link', 'set', 'port%d' % i, 'master', 'br0', 'up')
            sh('ip', '-n', ns(i), 'addr', 'add', addr(i) + '/24', 'dev', 'eth0')
            sh('ip', '-n', ns(i), 'link', 'set', 'eth0', 'up')
            sh('ip', '-n', ns(i), 'link', 'set', 'lo', 'up')
        yield tmp_path
    finally:
        for n in made:
            subprocess.run(['ip', 'netns', 'del', n], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def write_config(path, extra=()):
    lines = ['threads: 2', 'log_dir: logs', 'peer_backoff: { initial_ms: 100, max_ms: 500 }'] + list(extra)
    lines.append('servers:')
    for i, name in enumerate(NAMES):
        lines.append('  %s: { host: %s, listen: 0.0.0.0, port: %d, peer_port: %d }'
                     % (name, addr(i), PORT, PEER_PORT))
    lines.append('links:')
    lines += ['  - [%s, %s]' % (a, b) for a, b in LINKS]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def start(i, config, workdir):
    err = open(os.path.join(workdir, '%s.stderr' % NAMES[i]), 'wb')
    p = subprocess.Popen(['ip', 'netns', 'exec', ns(i), herdlib.SERVER, NAMES[i], '--config', config],
                         cwd=workdir, env=herdlib.server_env(), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=err)
    err.close()
    deadline = time.monotonic() + herdlib.READY_TIMEOUT
    buf = b''
    while b'ready in' not in buf:
        assert time.monotonic() < deadline, '%s not ready' % NAMES[i]
        r, _, _ = select.select([p.stdout], [], [], 0.5)
        if r:
            chunk = os.read(p.stdout.fileno(), 4096)
            assert chunk, '%s exited: %s' % (NAMES[i], open(os.path.join(workdir, '%s.stderr' % NAMES[i]), 'rb').read()[-2000:])
            buf += chunk
    assert addr(i).encode() in buf or b'0.0.0.0' in buf, buf
    return p


def cli(i, *command):
    r = subprocess.run(['ip', 'netns', 'exec', ns(i), CLI, '-h', addr(i), '-p', str(PORT)] + list(command),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    return r.returncode, r.stdout


def wait_record(i, cid, at_line, timeout=20):
    deadline = time.monotonic() + timeout
    out = b''
    while time.monotonic() < deadline:
        rc, out = cli(i, 'WHATSAT', cid, '10', '1')
        if rc == 0 and out.split(b'\n', 1)[0] == at_line:
            return
        time.sleep(0.2)
    raise AssertionError('%s never got %r; last answer %r' % (NAMES[i], at_line, out[:200]))


def log_has(workdir, name, text, start=0):
    try:
        with open(os.path.join(workdir, 'logs', name + '.log'), 'rb') as f:
            return text in f.read()[start:]
    except FileNotFoundError:
        return False


def log_size(workdir, name):
    return os.path.getsize(os.path.join(workdir, 'logs', name + '.log'))


@contextlib.contextmanager
def herd_in(netns, extra=()):
    """The five servers, one per namespace, with `extra` config lines; yields the work directory.
    Every server is stopped at the end, and each must have exited cleanly."""
    workdir = str(netns)
    config = os.path.join(workdir, 'config.yaml')
    write_config(config, extra)
    procs = []
    try:
        for i in range(len(NAMES)):
            procs.append(start(i, config, workdir))
        yield workdir
        for p in procs:
            assert p.poll() is None
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()
    for p in procs:
        assert p.returncode == 0


def test_herd_across_namespaces(netns):
    with herd_in(netns):
        goloman, hands, welsh = NAMES.index('Goloman'), NAMES.index('Hands'), NAMES.index('Welsh')

        cid = unique_id('ns').decode()
        rc, out = cli(goloman, 'IAMAT', cid, '+34.068930-118.445127', fmt_time(time.time_ns()).decode())
        assert rc == 0 and out.startswith(b'AT Goloman '), out
        first = out.split(b'\n', 1)[0]
        wait_record(welsh, cid, first)
        wait_record(hands, cid, first)

        # Cut Hands off: its only interface goes down. The others keep flooding around it.
        sh('ip', '-n', ns(hands), 'link', 'set', 'eth0', 'down')
        rc, out = cli(goloman, 'IAMAT', cid, '+35.000000-119.000000', fmt_time(time.time_ns()).decode())
        assert rc == 0
        second = out.split(b'\n', 1)[0]
        wait_record(welsh, cid, second)
        rc, out = cli(hands, 'WHATSAT', cid, '10', '1')  # Hands still answers, with what it had
        assert out.split(b'\n', 1)[0] == first

        # Back up: the record waiting in Goloman's and Wilkes' outboxes (or a redialled link) gets there.
        sh('ip', '-n', ns(hands), 'link', 'set', 'eth0', 'up')
        wait_record(hands, cid, second, timeout=40)


def test_silent_blackhole_with_records_in_flight(netns):
    """A path that goes dark without a reset (Hands' port leaves the bridge: frames vanish, carriers stay
    up) while records are in flight to Hands. Keepalive alone never fires on a link with unacknowledged
    data (the kernel retransmits for about 15 minutes instead), so Goloman's link to Hands must end by
    its peer timeout, and after the path heals a redial catches Hands up."""
    with herd_in(netns, ['limits: { peer_timeout_ms: 3000 }']) as workdir:
        goloman, hands = NAMES.index('Goloman'), NAMES.index('Hands')
        cid = unique_id('bh').decode()
        rc, out = cli(goloman, 'IAMAT', cid, '+34.068930-118.445127', fmt_time(time.time_ns()).decode())
        assert rc == 0
        wait_record(hands, cid, out.split(b'\n', 1)[0])

        mark = log_size(workdir, 'Goloman')
        sh('ip', '-n', HUB, 'link', 'set', 'port%d' % hands, 'nomaster')  # silent: no RST, no link down
        cut = time.monotonic()
        last = None
        for k in range(3):  # records Goloman sends to Hands into the dark
            rc, out = cli(goloman, 'IAMAT', cid, '+35.%06d-119.000000' % k, fmt_time(time.time_ns()).decode())
            assert rc == 0
            last = out.split(b'\n', 1)[0]
            time.sleep(0.3)
        while not log_has(workdir, 'Goloman', b'Hands - link down', mark):
            assert time.monotonic() - cut < 12, ('Goloman still holds its link to Hands %.1f s into the '
                                                 'blackhole' % (time.monotonic() - cut))
            time.sleep(0.2)

        sh('ip', '-n', HUB, 'link', 'set', 'port%d' % hands, 'master', 'br0')
        wait_record(hands, cid, last, timeout=15)


def test_a_stall_mid_line_is_not_a_slow_sender(netns):
    """Hands' path goes dark for a few seconds while a burst of records is on its way to it (a rate
    limit keeps the burst in flight), so Hands holds a record cut in the middle for longer than
    line_timeout_ms. That is a stalled network, not slowloris: the link must survive the stall (TCP
    resumes it), not be closed by Hands and then reset, redialled and replayed once the path heals."""
    extra = ['log_level: events', 'limits: { line_timeout_ms: 1500, peer_timeout_ms: 20000 }']
    with herd_in(netns, extra) as workdir:
        goloman, hands = NAMES.index('Goloman'), NAMES.index('Hands')
        cid = unique_id('st').decode()
        rc, out = cli(goloman, 'IAMAT', cid, '+34.068930-118.445127', fmt_time(time.time_ns()).decode())
        assert rc == 0
        wait_record(hands, cid, out.split(b'\n', 1)[0])
        marks = {n: log_size(workdir, n) for n in ('Goloman', 'Hands')}

        # About 3 s of records at 1 Mbit/s towards Hands, cut off half a second in.
        # (A short queue: what is not yet delivered waits in Goloman's socket, not in front of Hands.)
        sh('ip', 'netns', 'exec', HUB, 'tc', 'qdisc', 'add', 'dev', 'port%d' % hands, 'root', 'tbf',
           'rate', '1mbit', 'burst', '8k', 'latency', '50ms')
        # One pipelined write: Goloman floods it in large writes, so TCP's segments end inside lines.
        pipelined = ('import socket, sys\n'
                     's = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)\n'
                     's.sendall(sys.stdin.buffer.read())\n'
                     'data = b""\n'
                     'while data.count(b"\\n") < int(sys.argv[3]):\n'
                     '    chunk = s.recv(1 << 16)\n'
                     '    if not chunk: break\n'
                     '    data += chunk\n'
                     'sys.stdout.buffer.write(data)\n')
        t = fmt_time(time.time_ns()).decode()
        burst = ''.join('IAMAT %s.%d +34.068930-118.445127 %s\n' % (cid, k, t) for k in range(3000))
        r = subprocess.run(['ip', 'netns', 'exec', ns(goloman), sys.executable, '-c', pipelined, addr(goloman),
                            str(PORT), '3000'], input=burst.encode(), stdout=subprocess.PIPE, timeout=20)
        replies = r.stdout.split(b'\n')
        assert r.returncode == 0 and len(replies) >= 3000, replies[-3:]
        time.sleep(0.5)
        sh('ip', '-n', HUB, 'link', 'set', 'port%d' % hands, 'nomaster')
        time.sleep(4)
        sh('ip', '-n', HUB, 'link', 'set', 'port%d' % hands, 'master', 'br0')
        wait_record(hands, '%s.2999' % cid, replies[2999], timeout=25)

        assert not log_has(workdir, 'Hands', b'line timeout', marks['Hands'])
        assert not log_has(workdir, 'Goloman', b'Hands - link down', marks['Goloman'])
