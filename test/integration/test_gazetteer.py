"""The offline places data as the server meets it at start-up: whatever $HERD_GAZETTEER names (a
directory, /dev/zero, a pipe, a huge file, a truncated or crafted one), the server stops at once
with exit status 1 and a message naming the file and what is wrong with it, as the README promises,
and with no sanitizer report (no memory error, no undefined behaviour on any input)."""

import os
import subprocess
import sys

import pytest

from herdlib import REPO, SANITIZER_MARKERS, SERVER, free_ports, server_env

sys.path.insert(0, os.path.join(REPO, 'tools'))
import cities_pbf  # noqa: E402
from cities_pbf import record  # noqa: E402

START_TIMEOUT = 20.0


def city(gid, dlng, dlat):
    return cities_pbf.city(gid, b'X', dlng, dlat)


def start(tmp_path, gazetteer):
    port, peer = free_ports(2)
    config = tmp_path / 'config.yaml'
    config.write_text('servers:\n  Solo: { host: 127.0.0.1, port: %d, peer_port: %d }\n' % (port, peer))
    return subprocess.run([SERVER, 'Solo', '--config', str(config)], cwd=str(tmp_path),
                          env=server_env({'HERD_GAZETTEER': str(gazetteer)}),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=START_TIMEOUT)


def expect_refused(tmp_path, gazetteer, *needles):
    r = start(tmp_path, gazetteer)
    err = r.stderr
    for marker in SANITIZER_MARKERS:
        assert marker not in err, err.decode('utf-8', 'replace')[-3000:]
    assert r.returncode == 1, (r.returncode, err[-2000:])
    assert str(gazetteer).encode() in err, err
    for needle in needles:
        assert needle.encode() in err, (needle, err)
    assert b'ready' not in r.stdout


def test_a_directory_is_refused(tmp_path):
    d = tmp_path / 'data'
    d.mkdir()
    expect_refused(tmp_path, d, 'not a regular file (a directory)')


def test_dev_zero_is_refused_at_once(tmp_path):
    expect_refused(tmp_path, '/dev/zero', 'not a regular file (a character device)')


def test_a_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / 'cities.pbf'
    os.mkfifo(str(fifo))
    expect_refused(tmp_path, fifo, 'not a regular file (a pipe)')


def test_a_huge_file_is_refused_unread(tmp_path):
    big = tmp_path / 'cities.pbf'
    with open(str(big), 'wb') as f:
        f.truncate(300 << 20)  # sparse: nothing is written
    expect_refused(tmp_path, big, 'too large')


def test_an_empty_file_is_refused(tmp_path):
    empty = tmp_path / 'cities.pbf'
    empty.write_bytes(b'')
    expect_refused(tmp_path, empty, 'empty')


def test_a_truncated_file_is_refused(tmp_path):
    f = tmp_path / 'cities.pbf'
    f.write_bytes((city(1, 100, 100) + city(2, 100, 100))[:-3])
    expect_refused(tmp_path, f, 'truncated')


@pytest.mark.parametrize('name, data, needle', [
    # A delta of -2^63 after a negative longitude: a signed overflow in the reader before.
    ('overflowing delta', city(1, -17000000, 0) + record(b'\x08\x04\x50' + b'\xff' * 9 + b'\x01\x58\x02'),
     'delta out of range'),
    ('varint over 64 bits', record(b'\x08' + b'\x80' * 9 + b'\x02'), 'corrupt'),
    ('record length over 64 bits', b'\x80' * 9 + b'\x7f', 'corrupt'),
    ('coordinates off the globe', city(1, 0, 9000000) + city(2, 0, 1), 'out of range'),
    ('string overrunning its record', record(b'\x08\x02\x12\x09abc'), 'corrupt'),
    ('garbage', b'hello, world\n' * 100, 'corrupt'),
])
def test_a_crafted_file_is_refused(tmp_path, name, data, needle):
    f = tmp_path / 'cities.pbf'
    f.write_bytes(data)
    expect_refused(tmp_path, f, needle)
