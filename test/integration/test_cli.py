"""herd-cli, the README's client: one command from its arguments, or lines from standard input; each
reply printed whole (a WHATSAT's JSON included); exit 1 on a `? ` reply, 3 when the server cannot be
reached."""

import os
import subprocess

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
    p = cli('-p', 'http')
    assert p.returncode == 2 and b'-p: expected a port' in p.stderr, p.stderr
    p = cli('--bogus')
    assert p.returncode == 2 and b"unknown option '--bogus'" in p.stderr, p.stderr
    # A blank command would get no answer (the server ignores blank lines): refused, not waited on,
    # and "" is not taken for "read standard input".
    for blank in (' ', '\t', ''):
        p = cli('-p', '1', blank)
        assert p.returncode == 2 and b'the command is blank' in p.stderr, (blank, p.stderr)
