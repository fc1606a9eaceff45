"""Operations: log levels, SIGHUP reopen under load (no lost or split entries), size rotation, log
to stderr, signals (reopen, stop, stop during start-up), graceful stop flushing peer outboxes, and
the CLI flags --version, --check and --strict."""

import os
import re
import resource
import signal
import socket
import subprocess
import time

import pytest

import herdlib
from herdlib import Client, fmt_time, free_ports, iamat, run_server_once, unique_id, wait_for

ENTRY = re.compile(rb'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \S+ [<>+\-!*] ')
LOC = b'+34.068930-118.445127'


def entries(data):
    lines = data.split(b'\n')
    assert lines[-1] == b'', 'log does not end with a newline: %r' % lines[-1][-200:]
    for l in lines[:-1]:
        assert ENTRY.match(l), 'malformed (split or glued) log entry: %r' % l[:300]
    return lines[:-1]


def solo(make_herd, extra, log_dir=None):
    if log_dir is None:
        return make_herd(names=['Solo'], links=[], extra_yaml=extra)
    # The herd's config names log_dir already: swap the value in before the start.
    original = herdlib.Herd.write_config

    def write_config(self):
        original(self)
        text = open(self.config_path).read().replace('log_dir: logs\n', 'log_dir: %s\n' % log_dir)
        open(self.config_path, 'w').write(text)
    herdlib.Herd.write_config = write_config
    try:
        return make_herd(names=['Solo'], links=[], extra_yaml=extra)
    finally:
        herdlib.Herd.write_config = original


def send_some(port, n, prefix):
    """n IAMATs on one connection, pipelined in batches; returns the IDs."""
    ids = [unique_id(prefix) for _ in range(n)]
    with Client(port, timeout=20) as c:
        for i in range(0, n, 100):
            batch = ids[i:i + 100]
            c.send(b''.join(b'IAMAT %s %s %s\n' % (cid, LOC, fmt_time(time.time_ns())) for cid in batch))
            for _ in batch:
                c.read_line()
    return ids


def stop_and_read(h, name='Solo'):
    h.stop()
    out = b''
    for f in sorted(os.listdir(h.log_dir)):
        with open(os.path.join(h.log_dir, f), 'rb') as fh:
            out += fh.read()
    return out


def test_log_levels(make_herd):
    seen = {}
    for level in ('io', 'events', 'warnings'):
        h = solo(make_herd, 'log_level: %s\n' % level)
        iamat(h.port('Solo'), unique_id('lvl'), LOC, fmt_time(time.time_ns()))
        # A problem: a peer connection whose first line is no hello.
        with Client(h.peer_ports['Solo']) as c:
            c.send(b'not a hello\n')
            c.read_to_eof()
        data = stop_and_read(h)
        seen[level] = {l.split(b' ')[2] for l in entries(data)}
    assert {b'<', b'>', b'+', b'-', b'!'} <= seen['io']
    assert b'<' not in seen['events'] and b'>' not in seen['events']
    assert {b'+', b'-', b'!', b'*'} <= seen['events']
    assert seen['warnings'] == {b'!'}


def test_sighup_under_load_loses_and_splits_nothing(make_herd):
    h = solo(make_herd, 'log_level: io\n')
    pid = h.servers['Solo'].pid
    path = h.log_path('Solo')
    import threading
    ids = []
    err = []

    def load():
        try:
            for k in range(30):
                ids.extend(send_some(h.port('Solo'), 100, 'hup%d' % k))
                time.sleep(0.02)
        except Exception as e:  # reported by the assertion below
            err.append(e)

    t = threading.Thread(target=load)
    t.start()
    rotations = 0
    deadline = time.monotonic() + 60
    while t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
        os.rename(path, '%s.moved%d' % (path, rotations))  # logrotate `create`: move, then HUP
        os.kill(pid, signal.SIGHUP)
        rotations += 1
    t.join(60)
    assert not err, err
    assert rotations >= 3
    assert h.servers['Solo'].alive()
    wait_for(lambda: os.path.exists(path), 5, 'log reopened at its path')
    data = stop_and_read(h)
    lines = entries(data)
    received = sum(1 for l in lines if b' < IAMAT ' in l)
    sent = sum(1 for l in lines if b' > AT Solo ' in l)
    assert received == len(ids) == 3000 and sent == 3000


def test_a_failed_reopen_is_said_in_the_old_file_on_stderr_and_in_metrics(make_herd):
    """logrotate moved the log, but the path cannot be created again (here a directory stands
    there): the server writes on to the moved file and says so there, on stderr and in a counter,
    instead of logging, unseen, into a file that may be deleted next."""
    h = make_herd(names=['Solo'], links=[], admin=True)
    path = h.log_path('Solo')
    os.rename(path, path + '.moved')
    os.mkdir(path)
    h.servers['Solo'].proc.send_signal(signal.SIGHUP)
    needle = b'cannot reopen the log file (Is a directory); writing on to the file it replaced'
    wait_for(lambda: needle in open(path + '.moved', 'rb').read(), 10, 'the failure in the moved file')
    iamat(h.port('Solo'), b'after-hup', LOC, fmt_time(time.time_ns()))
    wait_for(lambda: b'< IAMAT after-hup' in open(path + '.moved', 'rb').read(), 10, 'entries going on')
    status, _, body = herdlib.http_get(h.admin_ports['Solo'], '/metrics')
    assert status == 200 and b'\nherd_log_reopen_failures_total 1\n' in body
    assert needle in h.servers['Solo'].stderr()
    os.rmdir(path)


def test_size_rotation(make_herd):
    h = solo(make_herd, 'log_max_bytes: 8192\nlog_keep: 2\n')
    for k in range(12):  # several writer batches, so the bound is crossed more than twice
        send_some(h.port('Solo'), 50, 'rot%d' % k)
        time.sleep(0.05)
    data = stop_and_read(h)
    entries(data)
    files = sorted(os.listdir(h.log_dir))
    assert files == ['Solo.log', 'Solo.log.1', 'Solo.log.2'], files
    for f in files:
        assert os.path.getsize(os.path.join(h.log_dir, f)) <= 8192 + 65536


def test_log_to_stderr(make_herd):
    h = solo(make_herd, '', log_dir='"-"')
    iamat(h.port('Solo'), unique_id('err'), LOC, fmt_time(time.time_ns()))
    h.stop()
    err = h.servers['Solo'].stderr()
    assert b' < IAMAT ' in err
    assert not os.path.exists(h.log_path('Solo'))


def test_signals(make_herd):
    h = solo(make_herd, '')
    s = h.servers['Solo']
    s.proc.send_signal(signal.SIGUSR1)  # reopen, like SIGHUP
    time.sleep(0.3)
    assert s.alive()
    iamat(h.port('Solo'), unique_id('sig'), LOC, fmt_time(time.time_ns()))
    s.proc.send_signal(signal.SIGUSR2)  # stops cleanly
    assert s.proc.wait(timeout=15) == 0
    assert b'stopping on ' in h.log_bytes('Solo')


def test_sigterm_during_start_up(tmp_path):
    h = herdlib.Herd(tmp_path, names=['Solo'], links=[])
    h.write_config()
    p = subprocess.Popen([herdlib.SERVER, 'Solo', '--config', h.config_path], env=herdlib.server_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.15)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 5
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()


def test_graceful_stop_flushes_the_outbox(make_herd):
    h = make_herd(names=['A', 'B'], links=[['A', 'B']], extra_yaml='shutdown_timeout_ms: 3000\n')
    wait_for(lambda: b'link up' in h.log_bytes('A'), 10, 'A linked to B')
    cid = unique_id('drain')
    with Client(h.port('A')) as c:
        c.send(b''.join(b'IAMAT %s-%d %s %s\n' % (cid, i, LOC, fmt_time(time.time_ns())) for i in range(2000)))
        for _ in range(2000):
            c.read_line()
    h.servers['A'].proc.send_signal(signal.SIGTERM)
    assert h.servers['A'].proc.wait(timeout=15) == 0
    wait_for(lambda: h.log_bytes('B').count(b' < AT A ') >= 2000, 10, 'B got every record')


def test_a_draining_server_refuses_new_connections_and_says_stopping(make_herd):
    """While a graceful stop drains (here a client that reads none of its replies holds it), the
    client and peer ports refuse new connections at once: they used to be completed by the kernel
    and never answered until the exit. The admin port stays, and /healthz says 503 stopping on a new
    connection."""
    h = make_herd(names=['Solo'], links=[], admin=True, extra_yaml='shutdown_timeout_ms: 8000\n')
    port = h.port('Solo')
    cid = unique_id('drainer')
    iamat(port, cid, LOC, fmt_time(time.time_ns()))
    holder = Client(port)
    holder.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    holder.send(b'WHATSAT %s 50 20\n' % cid * 3000)  # megabytes of replies, never read
    time.sleep(0.5)
    s = h.servers['Solo']
    s.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: b'stopping: no longer accepting' in h.log_bytes('Solo'), 5, 'the drain begun')
    try:
        for p in (port, h.peer_ports['Solo']):
            t0 = time.monotonic()
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(('127.0.0.1', p), timeout=5).close()
            assert time.monotonic() - t0 < 1
        status, _, body = herdlib.http_get(h.admin_ports['Solo'], '/healthz')
        assert (status, body) == (503, b'stopping\n')
        assert s.proc.poll() is None  # still draining: the refusals above came during the drain
    finally:
        holder.close()
    assert s.proc.wait(timeout=15) == 0


def test_a_second_stop_signal_cuts_the_drain_short(make_herd):
    """A client that reads nothing holds the drain for shutdown_timeout_ms (here 60 s); a second
    SIGTERM ends it at once, with the dropped output said in the log."""
    h = make_herd(names=['Solo'], links=[], extra_yaml='shutdown_timeout_ms: 60000\n')
    port = h.port('Solo')
    cid = unique_id('cut')
    iamat(port, cid, LOC, fmt_time(time.time_ns()))
    holder = Client(port)
    holder.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    holder.send(b'WHATSAT %s 50 20\n' % cid * 3000)
    time.sleep(0.5)
    s = h.servers['Solo']
    try:
        s.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: b'stopping: no longer accepting' in h.log_bytes('Solo'), 5, 'the drain begun')
        time.sleep(0.3)
        assert s.proc.poll() is None  # held by the client
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 5
        assert b'stopping: a second stop signal; output still unsent is dropped' in h.log_bytes('Solo')
    finally:
        holder.close()


def test_version():
    r = run_server_once(['--version'])
    assert r.returncode == 0 and r.stdout.startswith(b'herd-server ') and b'llhttp' in r.stdout
    # A sanitizer build names its sanitizer; the release build names none.
    for build, said in (('build', b'(C++20)\n'), ('build/asan', b'(C++20, AddressSanitizer)\n'),
                        ('build/tsan', b'(C++20, ThreadSanitizer)\n')):
        exe = os.path.join(herdlib.REPO, build, 'herd-server')
        if os.path.exists(exe):
            out = subprocess.run([exe, '--version'], capture_output=True, timeout=30).stdout
            assert said in out, (build, out)


def test_check_and_strict(tmp_path):
    h = herdlib.Herd(tmp_path, names=['Solo'], links=[], extra_yaml='surprise: 1\n')
    h.write_config()
    r = run_server_once(['Solo', '--config', h.config_path, '--check'])
    assert r.returncode == 0, r.stderr
    assert b'valid' in r.stdout and b'surprise: unknown key' in r.stderr
    assert not os.path.exists(h.log_dir)  # nothing created, nothing bound
    r = run_server_once(['Solo', '--config', h.config_path, '--check', '--strict'])
    assert r.returncode == 2 and b'surprise: unknown key' in r.stderr
    with open(h.config_path, 'a') as f:
        f.write('strict: true\n')
    r = run_server_once(['Solo', '--config', h.config_path, '--check'])
    assert r.returncode == 2 and b'surprise' in r.stderr


def test_check_finds_problems(tmp_path):
    h = herdlib.Herd(tmp_path, names=['A', 'B'], links=[['A', 'B']])
    h.write_config()
    # A host that is not an address (and, to stay off the network, not a name to look up either:
    # "::1::" fails as a numeric address and as a name without any query leaving the machine).
    text = open(h.config_path).read().replace('B: { host: 127.0.0.1', 'B: { host: "[::1::]"')
    # A log_dir below a regular file can never be created.
    text = text.replace('log_dir: logs\n', 'log_dir: config.yaml/logs\n')
    open(h.config_path, 'w').write(text)
    r = run_server_once(['A', '--config', h.config_path, '--check'])
    assert r.returncode == 2
    assert b'servers.B.host' in r.stderr and b'log_dir' in r.stderr
    r = run_server_once(['A', '--config', str(tmp_path)])
    assert r.returncode == 2 and b'Is a directory' in r.stderr
    r = run_server_once(['A', '--config', h.config_path])
    assert r.returncode == 2 and b'log_dir' in r.stderr


def test_check_tries_the_log_file_as_the_start_would(tmp_path):
    """--check agrees with the start: a log path that is a directory, or a log_dir that cannot be
    made (under /proc, where access() still says yes to root), fail both; a fresh one passes both,
    and --check creates nothing."""
    h = herdlib.Herd(tmp_path, names=['Solo'], links=[])
    h.write_config()
    text = open(h.config_path).read()
    for log_dir, why in (('taken', b'Is a directory'), ('/proc/herd-check-logs', b'cannot create the log directory')):
        if log_dir == 'taken':
            os.makedirs(os.path.join(str(tmp_path), 'taken', 'Solo.log'))
        open(h.config_path, 'w').write(text.replace('log_dir: logs\n', 'log_dir: %s\n' % log_dir))
        r = run_server_once(['Solo', '--config', h.config_path, '--check'])
        assert r.returncode == 2 and why in r.stderr, r.stderr
        r = run_server_once(['Solo', '--config', h.config_path])
        assert r.returncode == 2 and b'log_dir' in r.stderr, r.stderr
    open(h.config_path, 'w').write(text.replace('log_dir: logs\n', 'log_dir: fresh/a/b\n'))
    r = run_server_once(['Solo', '--config', h.config_path, '--check'])
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(str(tmp_path), 'fresh'))


def test_check_tries_the_data_dir_and_the_token_as_the_start_would(tmp_path):
    """A data_dir below a regular file, or under /proc, fails --check (exit 2) and the start (exit 1,
    naming data_dir); a fresh one passes --check, which creates nothing. An admin token variable that
    is unset or empty is a configuration error, exit 2, both ways."""
    h = herdlib.Herd(tmp_path, names=['Solo'], links=[])
    h.write_config()
    text = open(h.config_path).read()
    for data_dir, why in (('config.yaml/state', b'(%s: Not a directory)' % h.config_path.encode()),
                          ('/proc/herd-check-state', b'cannot create the data directory')):
        open(h.config_path, 'w').write(text + 'data_dir: %s\n' % data_dir)
        r = run_server_once(['Solo', '--config', h.config_path, '--check'])
        assert r.returncode == 2 and b'data_dir: ' in r.stderr and why in r.stderr, r.stderr
        r = run_server_once(['Solo', '--config', h.config_path])
        assert r.returncode == 1 and b'Solo: data_dir: ' in r.stderr, r.stderr
    open(h.config_path, 'w').write(text + 'data_dir: fresh/state\n')
    r = run_server_once(['Solo', '--config', h.config_path, '--check'])
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(str(tmp_path), 'fresh'))

    port = free_ports(1)[0]
    with_admin = text.replace('peer_port:', 'admin_port: %d, peer_port:' % port) + 'admin_token_env: HERD_TEST_TOKEN\n'
    open(h.config_path, 'w').write(with_admin)
    env = herdlib.server_env()
    env.pop('HERD_TEST_TOKEN', None)
    for value, said in ((None, b'is not set'), ('', b'is empty')):
        if value is not None:
            env['HERD_TEST_TOKEN'] = value
        for extra in (['--check'], []):
            r = run_server_once(['Solo', '--config', h.config_path] + extra, env=env)
            assert r.returncode == 2, (extra, r.returncode, r.stderr)
            assert b'admin_token_env: the environment variable HERD_TEST_TOKEN ' + said in r.stderr, r.stderr


def test_a_log_past_the_file_size_limit_does_not_kill_the_server(tmp_path):
    """With RLIMIT_FSIZE below the log's size (systemd's LimitFSIZE=), a write past it used to raise
    SIGXFSZ and end the process. Now the write fails (EFBIG), its entries count as dropped, and the
    server goes on answering."""
    h = herdlib.Herd(tmp_path, names=['Solo'], links=[], extra_yaml='log_max_bytes: 0\n',
                     preexec={'Solo': lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))})
    h.start()
    try:
        port = h.port('Solo')
        for i in range(400):  # some 90 KiB of log
            cid = b'fsz%d' % i
            at = iamat(port, cid, b'+34.068930-118.445127', b'1621464827.959498503')
            assert at.startswith(b'AT Solo '), at
        assert os.path.getsize(os.path.join(h.log_dir, 'Solo.log')) <= 64 * 1024
        assert h.servers['Solo'].proc.poll() is None
        assert iamat(port, b'after', b'+34.068930-118.445127', b'1621464827.959498503').startswith(b'AT Solo ')
    finally:
        h.stop()
    assert not any('SIGXFSZ' in p or 'signal' in p for p in h.problems), h.problems


def test_server_names_that_cannot_name_a_log_file_are_refused(tmp_path):
    for bad in ('x/y', '..', 'n' * 252):
        h = herdlib.Herd(tmp_path, names=['Solo'], links=[])
        h.write_config()
        text = open(h.config_path).read().replace('  Solo:', '  "%s":' % bad)
        open(h.config_path, 'w').write(text)
        r = run_server_once([bad, '--config', h.config_path, '--check'])
        assert r.returncode == 2 and b"is its log file's name" in r.stderr, (bad, r.stderr)


def test_make_install(tmp_path):
    """`make install PREFIX=...` lays out a tree whose server finds its places data by itself."""
    if os.environ.get('HERD_SERVER'):
        import pytest
        pytest.skip('make install is tested against the release build (HERD_SERVER is set)')
    prefix = tmp_path / 'prefix'
    r = subprocess.run(['make', '-s', 'install', 'PREFIX=%s' % prefix], cwd=herdlib.REPO,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:]
    unit = (prefix / 'share/herd/herd@.service').read_text()
    assert 'ExecStart=%s/bin/herd-server %%i' % prefix in unit and '@PREFIX@' not in unit
    assert (prefix / 'share/herd/logrotate.herd').exists()
    h = herdlib.Herd(tmp_path, names=['Solo'], links=[])
    h.write_config()
    env = {k: v for k, v in os.environ.items() if k != 'HERD_GAZETTEER'}
    r = subprocess.run([str(prefix / 'bin/herd-server'), 'Solo', '--config', h.config_path, '--check'],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr
    assert b'share/herd/cities.pbf' in r.stdout


def test_partial_last_entry_is_ended(tmp_path):
    """A log whose last entry was cut short (a crash mid-write) gets that line ended before new
    entries are appended, so no two entries share a line."""
    h = herdlib.Herd(tmp_path, names=['Solo'], links=[])
    os.makedirs(h.log_dir)
    with open(h.log_path('Solo'), 'wb') as f:
        f.write(b'2026-01-01T00:00:00.000000Z c1 < IAMAT cut-short +1.0+1.0 1.')
    try:
        h.start()
        iamat(h.port('Solo'), unique_id('after'), LOC, fmt_time(time.time_ns()))
    finally:
        h.stop()
    lines = h.log_bytes('Solo').split(b'\n')
    assert lines[0] == b'2026-01-01T00:00:00.000000Z c1 < IAMAT cut-short +1.0+1.0 1.'
    entries(b'\n'.join(lines[1:]))


def test_ipv6_literal_in_brackets(tmp_path):
    if not socket_has_ipv6():
        import pytest
        pytest.skip('no IPv6 loopback here')
    h = herdlib.Herd(tmp_path, names=['Solo'], links=[])
    h.write_config()
    text = open(h.config_path).read().replace('host: 127.0.0.1', 'host: "[::1]"')
    open(h.config_path, 'w').write(text)
    s = herdlib.ServerProc('Solo', h.config_path, h.workdir)
    s.start()
    try:
        assert s.wait_ready()
        assert '[::1]:%d' % h.ports['Solo'] in s.ready_line
        import socket as so
        c = so.create_connection(('::1', h.ports['Solo']), timeout=5)
        c.sendall(b'IAMAT v6 +1.0+1.0 1.0\n')
        assert c.recv(4096).startswith(b'AT Solo ')
        c.close()
    finally:
        code, err = s.stop()
    assert code == 0, err
    assert b'[::1]:' in open(h.log_path('Solo'), 'rb').read()


def socket_has_ipv6():
    import socket as so
    try:
        s = so.socket(so.AF_INET6, so.SOCK_STREAM)
        s.bind(('::1', 0))
        s.close()
        return True
    except OSError:
        return False
