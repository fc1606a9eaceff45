"""herd-cli, the README's client: one command from its arguments, or lines from standard input; each
reply printed whole (a WHATSAT's JSON included); exit 1 on a `? ` reply, 3 when the server cannot be
reached or does not answer within -t, 4 when the reply cannot be written to standard output."""

import contextlib
import os
import socket
import subprocess
import threading
import time

import pytest

from herdlib import REPO, check_at_line, check_whatsat_reply, unique_id

CLI = os.path.join(os.path.dirname(os.path.abspath(os.environ.get('HERD_SERVER') or
                                                   os.path.join(REPO, 'build/herd-server'))), 'herd-cli')
UCLA = b'+34.068930-118.445127'


def cli(*args, stdin=b''):
    return subprocess.run([CLI] + list(args), input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=30)


def test_one_command_per_call(solo):
    port = str(solo.port('Solo'))
    cid = unique_id('cli')
    p = cli('-p', port, 'IAMAT', cid.decode(), UCLA.decode(), '1520023934.918963997')
    assert p.returncode == 0, p.stderr
    at = p.stdout[:-1]
    assert p.stdout.endswith(b'\n') and p.stdout.count(b'\n') == 1, p.stdout
    check_at_line(at, 'Solo', cid, UCLA, b'1520023934.918963997')

    p = cli('-h', '127.0.0.1', '-p', port, 'WHATSAT', cid.decode(), '10', '3')
    assert p.returncode == 0, p.stderr
    # Printed as the server sent it, less the blank line that ends a WHATSAT reply.
    check_whatsat_reply(p.stdout + b'\n', at, 3, 10)

    p = cli('-p', port, 'WHATSAT', 'nobody-' + cid.decode(), '10', '3')
    assert p.returncode == 1
    assert p.stdout == b'? WHATSAT nobody-%s 10 3\n' % cid


def test_lines_from_standard_input(solo):
    port = str(solo.port('Solo'))
    cid = unique_id('cli')
    lines = (b'IAMAT %s %s 1520023934.5\n\n   \nWHATSAT %s 5 1\nHELLO there\nWHATSAT %s 5 2\n'
             % (cid, UCLA, cid, cid))
    p = cli('-p', port, stdin=lines)
    assert p.returncode == 1, p.stderr  # one `? ` reply among them
    out = p.stdout
    at, rest = out.split(b'\n', 1)
    check_at_line(at, 'Solo', cid, UCLA, b'1520023934.5')
    first, rest = rest.split(b'\n}\n', 1)
    check_whatsat_reply(first + b'\n}\n\n', at, 1, 5)
    invalid, rest = rest.split(b'\n', 1)
    assert invalid == b'? HELLO there'
    check_whatsat_reply(rest + b'\n', at, 2, 5)


def test_errors_are_named():
    p = cli('-p', '1', 'WHATSAT', 'x', '1', '1')
    assert p.returncode == 3 and b'cannot connect' in p.stderr, p.stderr
    # An IPv6 literal may be bracketed, as in the config ("[::1]"): it is not a host name to look up.
    p = cli('-h', '[::1]', '-p', '1', 'WHATSAT', 'x', '1', '1')
    assert p.returncode == 3 and b'cannot connect to [::1]:1' in p.stderr, p.stderr
    p = cli('-p', 'http')
    assert p.returncode == 2 and b'-p: expected a port' in p.stderr, p.stderr
    p = cli('--bogus')
    assert p.returncode == 2 and b"unknown option '--bogus'" in p.stderr, p.stderr
    # A blank command would get no answer (the server ignores blank lines): refused, not waited on,
    # and "" is not taken for "read standard input".
    for blank in (' ', '\t', ''):
        p = cli('-p', '1', blank)
        assert p.returncode == 2 and b'the command is blank' in p.stderr, (blank, p.stderr)


def timed_cli(*args, bound):
    """cli(), failing (not hanging) when herd-cli is still running after `bound` seconds; returns the
    CompletedProcess and how long it ran."""
    start = time.monotonic()
    try:
        p = subprocess.run([CLI] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=bound)
    except subprocess.TimeoutExpired:
        pytest.fail('herd-cli %s still running after %s s' % (' '.join(args), bound))
    return p, time.monotonic() - start


@contextlib.contextmanager
def full_listener():
    """A loopback port whose accept queue is full: a connect to it gets no SYN-ACK, and a blocking
    connect() waits out the kernel's SYN retries (about two minutes)."""
    srv = socket.socket()
    fillers = []
    try:
        srv.bind(('127.0.0.1', 0))
        srv.listen(0)  # room for one connection that is never accepted
        port = srv.getsockname()[1]
        for _ in range(3):  # the first fills the queue; the rest keep the SYN queue busy too
            c = socket.socket()
            fillers.append(c)
            c.setblocking(False)
            c.connect_ex(('127.0.0.1', port))
        time.sleep(0.2)  # the first handshake completes
        yield port
    finally:
        for c in fillers:
            c.close()
        srv.close()


@contextlib.contextmanager
def silent_server(reply=b'', after=0.0):
    """A loopback server that accepts one connection, reads its command and, `after` seconds later,
    sends `reply` and then nothing, keeping the connection open."""
    srv = socket.socket()
    srv.bind(('127.0.0.1', 0))
    srv.listen(1)
    srv.settimeout(10)
    done = threading.Event()

    def serve():
        with contextlib.suppress(OSError):
            conn, _ = srv.accept()
            with conn:
                conn.recv(65536)
                if not done.wait(after):
                    conn.sendall(reply)
                done.wait(10)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        done.set()
        srv.close()
        t.join(15)


def test_connect_is_bounded_by_t():
    # A listener that never accepts: without the -t bound on the connect this ran for minutes.
    with full_listener() as port:
        p, took = timed_cli('-t', '1', '-p', str(port), 'IAMAT', 'a', '+1.0+1.0', '1', bound=10)
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert p.stderr == b'herd-cli: cannot connect to 127.0.0.1:%d within 1 s\n' % port, p.stderr
    assert 0.9 <= took < 5, took


def test_no_reply_within_t():
    # The limit is printed as given: "1 s", not "1.00 s" (nor "100. s" for -t 100).
    with silent_server() as port:
        p, took = timed_cli('-t', '1', '-p', str(port), 'IAMAT', 'a', '+1.0+1.0', '1', bound=10)
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert p.stderr == b'herd-cli: no complete reply within 1 s\n', p.stderr
    assert 0.9 <= took < 5, took


def test_whatsat_reply_shares_the_deadline():
    # The AT line comes after 1 s of the 2 and the JSON never: the run still ends at 2 s, not at 3
    # (the JSON given a fresh -t of its own).
    at = b'AT Solo +0.000000001 a +1.0+1.0 1\n'
    with silent_server(reply=at, after=1.0) as port:
        p, took = timed_cli('-t', '2', '-p', str(port), 'WHATSAT', 'a', '10', '1', bound=10)
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert p.stderr == b'herd-cli: no complete reply within 2 s\n' and p.stdout == b'', (p.stdout, p.stderr)
    assert 1.9 <= took < 2.6, took


def test_a_reply_that_cannot_be_printed_is_not_a_success():
    # Standard output on a full disk: the reply is lost, and the exit status must say so (it was 0).
    at = b'AT Solo +0.000000001 a +1.0+1.0 1\n'
    with silent_server(reply=at) as port, open('/dev/full', 'wb') as full:
        p = subprocess.run([CLI, '-t', '5', '-p', str(port), 'IAMAT', 'a', '+1.0+1.0', '1'],
                           stdin=subprocess.DEVNULL, stdout=full, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 4, (p.returncode, p.stderr)
    assert p.stderr.startswith(b'herd-cli: cannot write the reply to standard output: '), p.stderr
