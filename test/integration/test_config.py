"""Command line and configuration errors: exit status 2 with a message naming the file, key and
value; 1 when the server cannot start (port in use, missing data); warnings for unknown keys;
--help exits 0."""

import os
import signal
import socket
import time

import pytest

from herdlib import (NAMES, ServerProc, free_ports, run_server_once, server_env)


def herd_yaml(ports, servers=None, links=None, extra=''):
    """A config text; `servers` maps name -> dict of fields (None: the five with free ports)."""
    if servers is None:
        servers = {n: {'host': '127.0.0.1', 'port': ports[2 * i], 'peer_port': ports[2 * i + 1]}
                   for i, n in enumerate(NAMES)}
    if links is None:
        links = [['Goloman', 'Hands'], ['Goloman', 'Holiday'], ['Goloman', 'Wilkes'],
                 ['Hands', 'Wilkes'], ['Holiday', 'Welsh'], ['Holiday', 'Wilkes']]
    out = ['threads: 1', 'log_dir: logs', 'peer_backoff: { initial_ms: 100, max_ms: 500 }',
           'servers:']
    for name, fields in servers.items():
        out.append('  %s: { %s }' % (name, ', '.join('%s: %s' % kv for kv in fields.items())))
    out.append('links:')
    for a, b in links:
        out.append('  - [%s, %s]' % (a, b))
    return '\n'.join(out) + '\n' + extra


@pytest.fixture
def ports():
    return free_ports(10)


def write(tmp_path, text, name='config.yaml'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def run(tmp_path, args, env=None):
    r = run_server_once(args, cwd=str(tmp_path), timeout=30, env=env)
    return r.returncode, r.stdout.decode('utf-8', 'replace'), r.stderr.decode('utf-8', 'replace')


def expect_config_error(tmp_path, text, *needles, server='Hands'):
    path = write(tmp_path, text)
    code, out, err = run(tmp_path, [server, '--config', path])
    assert code == 2, (code, out, err)
    assert path in err or 'config.yaml' in err, err
    for n in needles:
        assert n in err, (n, err)
    assert 'ready' not in out
    return err


def test_help_exits_zero(tmp_path):
    code, out, err = run(tmp_path, ['--help'])
    assert code == 0, err
    assert 'usage' in out.lower() and '--config' in out


def test_no_server_name_is_a_usage_error(tmp_path):
    code, out, err = run(tmp_path, [])
    assert code == 2 and err.strip(), (code, err)


def test_unknown_option_is_a_usage_error(tmp_path, ports):
    path = write(tmp_path, herd_yaml(ports))
    code, out, err = run(tmp_path, ['Hands', '--config', path, '--frobnicate'])
    assert code == 2 and '--frobnicate' in err, (code, err)


def test_unknown_server_name(tmp_path, ports):
    path = write(tmp_path, herd_yaml(ports))
    code, out, err = run(tmp_path, ['Nobody', '--config', path])
    assert code == 2, (code, err)
    assert 'Nobody' in err


def test_missing_config_file(tmp_path):
    path = str(tmp_path / 'no-such-config.yaml')
    code, out, err = run(tmp_path, ['Hands', '--config', path])
    assert code == 2, (code, err)
    assert 'no-such-config.yaml' in err


def test_default_config_is_read_from_the_working_directory(tmp_path):
    code, out, err = run(tmp_path, ['Hands'])   # no ./config.yaml here
    assert code == 2 and 'config.yaml' in err, (code, err)


def test_link_to_an_unknown_server(tmp_path, ports):
    expect_config_error(tmp_path, herd_yaml(ports, links=[['Goloman', 'Hands'], ['Hands', 'Nowhere']]),
                        'links', 'Nowhere')


def test_self_link(tmp_path, ports):
    # The value is a list; the message names the key (links[1]) and says what is wrong.
    expect_config_error(tmp_path, herd_yaml(ports, links=[['Goloman', 'Hands'], ['Wilkes', 'Wilkes']]),
                        'links[1]', 'itself')


def test_duplicate_link(tmp_path, ports):
    expect_config_error(tmp_path, herd_yaml(ports, links=[['Goloman', 'Hands'], ['Hands', 'Welsh'],
                                                          ['Hands', 'Goloman']]),
                        'links', 'Goloman', 'Hands')


def test_duplicate_port(tmp_path, ports):
    servers = {'Goloman': {'port': ports[0], 'peer_port': ports[1]},
               'Hands': {'port': ports[2], 'peer_port': ports[3]},
               'Welsh': {'port': ports[2], 'peer_port': ports[4]}}
    err = expect_config_error(tmp_path, herd_yaml(ports, servers, links=[['Goloman', 'Hands']]),
                              str(ports[2]))
    assert 'port' in err


def test_client_port_equal_to_a_peer_port(tmp_path, ports):
    servers = {'Goloman': {'port': ports[0], 'peer_port': ports[1]},
               'Hands': {'port': ports[1], 'peer_port': ports[3]}}
    expect_config_error(tmp_path, herd_yaml(ports, servers, links=[['Goloman', 'Hands']]),
                        str(ports[1]))


def test_missing_port(tmp_path, ports):
    servers = {'Goloman': {'port': ports[0], 'peer_port': ports[1]},
               'Hands': {'peer_port': ports[3]}}
    expect_config_error(tmp_path, herd_yaml(ports, servers, links=[['Goloman', 'Hands']]),
                        'Hands', 'port')


def test_missing_peer_port(tmp_path, ports):
    servers = {'Goloman': {'port': ports[0], 'peer_port': ports[1]},
               'Hands': {'port': ports[3]}}
    expect_config_error(tmp_path, herd_yaml(ports, servers, links=[['Goloman', 'Hands']]),
                        'Hands', 'peer_port')


@pytest.mark.parametrize('value', ['70000', '65536', '0', '-1', 'abc', '12.5', '[1, 2]'])
def test_port_out_of_range_or_not_a_number(tmp_path, ports, value):
    servers = {'Goloman': {'port': ports[0], 'peer_port': ports[1]},
               'Hands': {'port': value, 'peer_port': ports[3]}}
    err = expect_config_error(tmp_path, herd_yaml(ports, servers, links=[['Goloman', 'Hands']]),
                              'Hands', 'port')
    if value[0] != '[':
        assert value in err


@pytest.mark.parametrize('text,needle', [
    ('servers: [unclosed\n', 'YAML'),
    ('servers:\n  Hands: { port: 1, peer_port: 2\n', 'YAML'),
    ('servers:\n\tHands: {}\n', 'YAML'),                        # a tab in indentation
    ('- just\n- a list\n', 'top level'),
    ('', 'servers'),                                            # empty file
])
def test_bad_yaml(tmp_path, text, needle):
    err = expect_config_error(tmp_path, text)
    assert needle.lower() in err.lower(), err


def test_bad_threads(tmp_path, ports):
    expect_config_error(tmp_path, herd_yaml(ports).replace('threads: 1', 'threads: many'),
                        'threads', 'many')


@pytest.mark.parametrize('extra,needles', [
    ('places:\n  provider: carrier-pigeon\n', ['places.provider', 'carrier-pigeon']),
    ('limits:\n  max_line: 1\n', ['limits.max_line', '1']),
    ('limits:\n  max_connections: lots\n', ['max_connections', 'lots']),
    ('accept: round-robin\n', ['accept', "'round-robin'", 'exclusive, reuseport']),
])
def test_bad_values(tmp_path, ports, extra, needles):
    expect_config_error(tmp_path, herd_yaml(ports, extra=extra), *needles)


def test_backoff_max_below_initial(tmp_path, ports):
    text = herd_yaml(ports).replace('peer_backoff: { initial_ms: 100, max_ms: 500 }',
                                    'peer_backoff: { initial_ms: 900, max_ms: 500 }')
    expect_config_error(tmp_path, text, 'max_ms', '500')


def start_and_stop(tmp_path, config_path, name, env=None):
    s = ServerProc(name, config_path, str(tmp_path), env=env)
    s.start()
    try:
        ready = s.wait_ready()
        time.sleep(0.3)  # see test_sigterm_right_after_ready_stops_cleanly for why
    finally:
        code, err = s.stop()
    return ready, code, err.decode('utf-8', 'replace')


def test_unknown_key_only_warns(tmp_path, ports):
    text = herd_yaml(ports, extra='colour: mauve\nlimits:\n  max_lines: 5\n')
    path = write(tmp_path, text)
    ready, code, err = start_and_stop(tmp_path, path, 'Hands')
    assert ready, err
    assert code == 0, (code, err)
    assert 'colour' in err and 'max_lines' in err, err


def test_relative_log_dir_is_relative_to_the_config_file(tmp_path, ports):
    sub = tmp_path / 'conf'
    sub.mkdir()
    path = write(sub, herd_yaml(ports))
    ready, code, err = start_and_stop(tmp_path, path, 'Welsh')  # started from tmp_path, not sub
    assert ready and code == 0, err
    assert os.path.exists(sub / 'logs' / 'Welsh.log')
    assert not os.path.exists(tmp_path / 'logs')


@pytest.mark.parametrize('which', ['port', 'peer_port'])
def test_port_in_use_exits_1_naming_the_address(tmp_path, ports, which):
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind(('127.0.0.1', 0))
        blocker.listen(1)
        busy = blocker.getsockname()[1]
        fields = {'host': '127.0.0.1', 'port': ports[0], 'peer_port': ports[1]}
        fields[which] = busy
        servers = {'Goloman': fields, 'Hands': {'port': ports[2], 'peer_port': ports[3]}}
        path = write(tmp_path, herd_yaml(ports, servers, links=[['Goloman', 'Hands']]))
        code, out, err = run(tmp_path, ['Goloman', '--config', path])
    finally:
        blocker.close()
    assert code == 1, (code, out, err)
    assert '127.0.0.1:%d' % busy in err, err
    assert 'ready' not in out
    # The kernel gave the blocker its port from the range for outgoing connections: the error says so
    # (an outgoing connection may be what holds such a port), and what to do.
    low, high = ephemeral_range()
    assert low <= busy <= high
    assert ("port %d is in the kernel's range for outgoing connections, %d-%d" % (busy, low, high)) in err, err
    assert 'ip_local_reserved_ports' in err, err


def ephemeral_range():
    with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
        low, high = f.read().split()
    return int(low), int(high)


def test_port_in_use_below_the_outgoing_range_gets_no_such_hint(tmp_path, ports):
    low, _ = ephemeral_range()
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        for busy in range(low - 2000, low - 1000):
            try:
                blocker.bind(('127.0.0.1', busy))
                break
            except OSError:
                continue
        blocker.listen(1)
        servers = {'Goloman': {'host': '127.0.0.1', 'port': ports[0], 'peer_port': busy},
                   'Hands': {'port': ports[2], 'peer_port': ports[3]}}
        path = write(tmp_path, herd_yaml(ports, servers, links=[['Goloman', 'Hands']]))
        code, out, err = run(tmp_path, ['Goloman', '--config', path])
    finally:
        blocker.close()
    assert code == 1, (code, out, err)
    assert 'cannot listen for peers on 127.0.0.1:%d' % busy in err and 'in use' in err, err
    assert 'outgoing' not in err, err


def test_missing_gazetteer_exits_1(tmp_path, ports):
    path = write(tmp_path, herd_yaml(ports))
    missing = str(tmp_path / 'nowhere' / 'cities.pbf')
    code, out, err = run(tmp_path, ['Hands', '--config', path],
                         env=server_env({'HERD_GAZETTEER': missing}))
    assert code == 1, (code, out, err)
    assert missing in err


def test_sigterm_stops_cleanly(tmp_path, ports):
    """`--help`: exit status 0 after a clean stop (SIGINT/SIGTERM); the log says it stopped."""
    path = write(tmp_path, herd_yaml(ports))
    for sig in (signal.SIGTERM, signal.SIGINT):
        s = ServerProc('Wilkes', path, str(tmp_path))
        s.start()
        try:
            assert s.wait_ready()
            time.sleep(0.5)
            s.proc.send_signal(sig)
            s.proc.wait(timeout=15)
        finally:
            s.kill()
        assert s.proc.returncode == 0, (sig, s.proc.returncode, s.stderr())
    log = (tmp_path / 'logs' / 'Wilkes.log').read_bytes()
    assert log.rstrip(b'\n').split(b'\n')[-1].find(b'stop') >= 0, log[-300:]


def test_sigterm_right_after_ready_stops_cleanly(tmp_path, ports):
    """A SIGTERM sent as soon as the ready line is out must still stop the server cleanly (exit
    0), not kill it: once a server says it is ready, a supervisor may stop it at any moment."""
    path = write(tmp_path, herd_yaml(ports))
    codes = []
    for _ in range(10):
        s = ServerProc('Welsh', path, str(tmp_path))
        s.start()
        try:
            assert s.wait_ready()
            s.proc.send_signal(signal.SIGTERM)
            s.proc.wait(timeout=15)
        finally:
            s.kill()
        codes.append(s.proc.returncode)
    assert codes == [0] * 10, codes
