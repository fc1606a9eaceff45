"""The accept modes (config `accept`), through a real server with two loops: with `reuseport` each
loop has a socket of its own on the client port and keeps what the kernel hands it, with
`exclusive` the loops share one socket and split clients round-robin. Either way every short
connection is answered, /metrics shows per loop who accepted and who serves, and the port is not
shared with anything else."""

import re
import socket

import pytest

import herdlib
from herdlib import http_get, unique_id, wait_for

UCLA = b'+34.068930-118.445127'
T = b'1600000000.5'
CONNECTIONS = 60


def per_loop(text, name):
    """{loop index: value} of a per-loop counter in a /metrics text."""
    out = {}
    for m in re.finditer(r'^%s\{loop="(\d+)"\} (\d+)$' % re.escape(name), text, re.M):
        out[int(m.group(1))] = int(m.group(2))
    return out


@pytest.mark.parametrize('mode', ['reuseport', 'exclusive'])
def test_two_loops_answer_short_connections(make_herd, mode):
    herd = make_herd(names=['Solo'], links=[], threads=2, admin=True, extra_yaml='accept: %s\n' % mode)
    wait_for(lambda: b'2 loops, accept %s' % mode.encode() in herd.log_bytes('Solo'), 5, 'the start-up line')
    port = herd.port('Solo')
    for _ in range(CONNECTIONS):  # each from a new source port: connect, IAMAT, its reply, close
        cid = unique_id('acc')
        with socket.create_connection(('127.0.0.1', port), timeout=herdlib.IO_TIMEOUT) as s:
            s.sendall(b'IAMAT %s %s %s\n' % (cid, UCLA, T))
            reply = s.makefile('rb').readline()
        assert reply.startswith(b'AT Solo ') and reply.endswith(b' %s %s %s\n' % (cid, UCLA, T)), reply
    status, _, body = http_get(herd.admin_ports['Solo'], '/metrics')
    assert status == 200
    text = body.decode()
    accepts = per_loop(text, 'herd_loop_client_accepts_total')
    sessions = per_loop(text, 'herd_loop_client_sessions_total')
    assert sorted(accepts) == [0, 1] and sorted(sessions) == [0, 1], text
    assert sum(accepts.values()) == CONNECTIONS and sum(sessions.values()) == CONNECTIONS
    if mode == 'reuseport':
        # The kernel's hash over 60 source ports gives each loop's socket some (none: p = 2^-59),
        # and no connection moves between loops.
        assert accepts[0] > 0 and accepts[1] > 0, accepts
        assert sessions == accepts
    else:
        assert sessions == {0: CONNECTIONS // 2, 1: CONNECTIONS // 2}, sessions


def test_reuseport_does_not_join_another_process_reuseport_socket(tmp_path):
    """SO_REUSEPORT lets any socket of the same user share the port; the server's probe bind keeps
    it from silently splitting connections with a stranger (or a second herd-server)."""
    stranger = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        stranger.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        stranger.bind(('127.0.0.1', 0))
        stranger.listen(8)
        busy = stranger.getsockname()[1]
        peer_port = herdlib.free_ports(1)[0]
        path = tmp_path / 'config.yaml'
        path.write_text('threads: 2\naccept: reuseport\nlog_dir: logs\nservers:\n'
                        '  Solo: { host: 127.0.0.1, port: %d, peer_port: %d }\nlinks: []\n' % (busy, peer_port))
        r = herdlib.run_server_once(['Solo', '--config', str(path)], cwd=str(tmp_path), timeout=30)
    finally:
        stranger.close()
    err = r.stderr.decode('utf-8', 'replace')
    assert r.returncode == 1, (r.returncode, err)
    assert 'cannot listen for clients on 127.0.0.1:%d' % busy in err and 'in use' in err, err
    assert b'ready' not in r.stdout
