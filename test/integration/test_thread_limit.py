"""A process at its thread limit (RLIMIT_NPROC, systemd's TasksMax=, a container's pids.max): a
herd-server that cannot start one of its threads (the signal thread, the log and record writers, the
memory trimmer, a loop) says which and exits 1, stopping what had started, instead of aborting with
"terminate called after throwing an instance of 'std::system_error'" and a core file.

RLIMIT_NPROC binds only an unprivileged user, so the server runs as `nobody` (root is needed to
switch to it; the test is skipped otherwise), from a copy of the release binary in a directory that
user can read. The limit counts every thread of that user on the machine, so the test does not
assume which count stops which thread: it walks the counts up until the server starts."""

import os
import pwd
import re
import resource
import shutil
import signal
import subprocess
import tempfile

import pytest

from herdlib import REPO, free_ports

FAILED = re.compile(rb"herd-server: cannot start thread ([\w-]+): Resource temporarily unavailable "
                    rb"\(the process's thread limit")


def as_nobody_with(nproc, uid, gid):
    def preexec():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    return preexec


def test_a_server_out_of_threads_names_the_thread_and_exits_1():
    if os.geteuid() != 0:
        pytest.skip('switching to the unprivileged user (for RLIMIT_NPROC to bind) needs root')
    release = os.path.join(REPO, 'build', 'herd-server')
    if not os.path.exists(release):
        pytest.skip('needs build/herd-server')
    nobody = pwd.getpwnam('nobody')
    work = tempfile.mkdtemp(prefix='herd-nproc-', dir='/tmp')
    try:
        os.chmod(work, 0o777)
        exe = os.path.join(work, 'herd-server')
        shutil.copy(release, exe)
        os.chmod(exe, 0o755)
        port, peer_port = free_ports(2)
        # A google provider at a local endpoint needs no gazetteer (which the user may not be able
        # to read), and a data_dir adds the record writer to the threads.
        with open(os.path.join(work, 'config.yaml'), 'w') as f:
            f.write('threads: 2\nlog_dir: logs\ndata_dir: data\n'
                    'places: { provider: google, endpoint: "http://127.0.0.1:1", key_env: HERD_TEST_KEY }\n'
                    'servers:\n  A: { host: 127.0.0.1, port: %d, peer_port: %d }\n' % (port, peer_port))
        env = dict(os.environ, HERD_TEST_KEY='k')
        refused = []
        started = None
        for nproc in range(1, 40):
            try:
                proc = subprocess.Popen([exe, '--config', 'config.yaml', 'A'], cwd=work, env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE,
                                        preexec_fn=as_nobody_with(nproc, nobody.pw_uid, nobody.pw_gid))
            except BlockingIOError:
                continue  # the user's other processes already fill this count: exec itself is refused
            first = proc.stdout.readline()  # the ready line, or nothing when it exits
            if b'ready in' in first:
                proc.send_signal(signal.SIGTERM)
                _, err = proc.communicate(timeout=20)
                assert proc.returncode == 0, err[-2000:]
                started = nproc
                break
            _, err = proc.communicate(timeout=20)
            assert proc.returncode == 1, (nproc, proc.returncode, err[-2000:])
            m = FAILED.search(err)
            assert m, (nproc, err[-2000:])
            assert b'terminate called' not in err
            refused.append(m.group(1).decode())
        assert started is not None, refused
        # A higher count lets the server further: the refusals name its threads in the order it
        # starts them, each at least once (the first few counts may go to the user's other threads),
        # and the last one refused before it started was its last loop.
        order = ['signals', 'log-writer', 'record-writer', 'memory-trim', 'loop-0', 'loop-1']
        assert all(name in order for name in refused), refused
        positions = [order.index(name) for name in refused]
        assert positions == sorted(positions), refused
        for name in order[1:]:
            assert name in refused, refused
        assert refused[-1] == 'loop-1', refused
    finally:
        shutil.rmtree(work, ignore_errors=True)
