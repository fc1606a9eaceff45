"""Descriptors (issue 9): clients and peer links share one open-file limit, and when clients took
every descriptor a server could no longer redial its neighbours. herd-server now keeps descriptors
for its loops, peer links and files, lowering limits.max_connections to fit RLIMIT_NOFILE with a
warning (as Redis does for maxclients), so a server full of clients still redials.

These run a server out of descriptors, so they use an ASan build without UBSan
($HERD_SERVER_ASAN_ONLY, `make asan-only`): UBSan's vptr check reports a false "invalid vptr" when
no descriptor is left. Without that build they use the release build."""

import os
import re
import resource
import socket

import pytest

from herdlib import REPO, SERVER, Client, iamat, unique_id, wait_for, whatsat

UCLA = b'+34.068930-118.445127'
T = b'1520023934.5'
NOFILE = 200


def binary():
    for path in (os.environ.get('HERD_SERVER_ASAN_ONLY'), os.path.join(REPO, 'build', 'herd-server')):
        if path:
            path = path if os.path.isabs(path) else os.path.join(REPO, path)
            if os.path.exists(path):
                return path
    pytest.skip('needs build/asan-only/herd-server or build/herd-server')


def low_fd_limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def test_a_server_full_of_clients_still_redials_its_neighbours(make_herd):
    exe = binary()
    herd = make_herd(names=['A', 'B'], links=[['A', 'B']], binaries={'A': exe, 'B': exe},
                     preexec={'A': low_fd_limit})
    err = herd.servers['A'].stderr()
    m = re.search(rb'limits.max_connections lowered from 20000 to (\d+) to fit the open-file limit '
                  rb'\(RLIMIT_NOFILE 200, of which (\d+) are kept', err)
    assert m, err[-2000:]
    allowed, kept = int(m.group(1)), int(m.group(2))
    assert allowed + kept == NOFILE and allowed > 0
    wait_for(lambda: b'B + link up' in herd.log_bytes('A'), 20, "A's link to B up")
    # More clients than A may hold: the surplus is refused, the rest stay connected.
    clients = []
    try:
        for _ in range(allowed + 50):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(('127.0.0.1', herd.port('A')))
            clients.append(s)
        wait_for(lambda: b'client connection limit reached' in herd.log_bytes('A'), 10, 'A refusing clients')
        # B goes away and comes back: A must dial it again with its clients still connected, and B's
        # link to A must get a peer slot on A.
        herd.kill('B')
        herd.restart('B')
        wait_for(lambda: herd.log_bytes('A').count(b'B + link up') >= 2, 20, "A's link to B up again")
        cid = unique_id('fd')
        with socket.create_connection(('127.0.0.1', herd.port('B')), timeout=5) as c:
            c.sendall(b'IAMAT %s %s %s\n' % (cid, UCLA, T))
            at = c.makefile('rb').readline().rstrip(b'\n')
        # A's clients hold every client slot, so ask A over one of their connections.
        probe = clients[0]
        replies = probe.makefile('rb')

        def on_a():
            probe.sendall(b'WHATSAT %s 10 1\n' % cid)
            first = replies.readline().rstrip(b'\n')
            if first.startswith(b'? '):
                return False
            while replies.readline() not in (b'\n', b''):
                pass  # the JSON, through its blank line
            return first == at
        wait_for(on_a, 15, "B's record on A", interval=0.1)
        other = unique_id('fd2')
        probe.sendall(b'IAMAT %s %s %s\n' % (other, UCLA, T))
        wait_for(lambda: whatsat(herd.port('B'), other, 10, 1).startswith(b'AT A '), 10, "A's record on B")
        assert b'Too many open files' not in herd.log_bytes('A')
    finally:
        for s in clients:
            s.close()


def test_an_open_file_limit_too_low_for_the_server_itself_is_an_error(tmp_path):
    import subprocess
    from herdlib import free_ports, server_env
    port, peer = free_ports(2)
    config = tmp_path / 'config.yaml'
    config.write_text('servers:\n  Solo: { host: 127.0.0.1, port: %d, peer_port: %d }\n' % (port, peer))

    def tiny():
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

    r = subprocess.run([binary(), 'Solo', '--config', str(config)], cwd=str(tmp_path), env=server_env(),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30, preexec_fn=tiny)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert b'RLIMIT_NOFILE 40' in r.stderr and b'no descriptor for clients' in r.stderr


def test_closed_clients_give_their_connection_slots_back(make_herd):
    """limits.max_connections counts the clients connected now: with a limit of 3, twenty
    connections one after another are each served, since each one's end frees its slot."""
    herd = make_herd(names=['A'], links=[], limits={'max_connections': 3})
    port = herd.port('A')
    for i in range(20):
        cid = unique_id('slot%d' % i)
        with Client(port, timeout=5) as c:
            c.send(b'IAMAT %s +34.068930-118.445127 1520023934.5\n' % cid)
            assert c.read_line().startswith(b'AT A '), i
            c.half_close()
            assert c.read_to_eof() == b''  # the server closed its end: the slot is free
    assert b'client connection limit reached' not in herd.log_bytes('A')
