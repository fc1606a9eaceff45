"""The first commands a new user types must work on a machine that has none of the build packages.

A machine that already has the packages cannot show that, so these tests point the build at package
folders that are empty until the dependency step runs, the way they are on a fresh Debian: a copy of
the repository is built with LLHTTP_SRC/LLHTTP_INC naming empty folders and DEPS_STEP naming a
stand-in for apt that fills them (from this machine's node-llhttp) and records that it ran. A
Makefile that decides on its rules before the dependency step has run fails here, as the first
`make run` on a fresh machine did ("No rule to make target 'build/obj/llhttp/llhttp.o'").
"""

import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LLHTTP_SRC = '/usr/share/llhttp'
LLHTTP_INC = '/usr/share/include/llhttp'
GOALS = ['all', 'run', 'test', 'bench', 'certs']


@pytest.fixture
def fresh(tmp_path):
    return fresh_copy(tmp_path)


def fresh_copy(tmp_path):
    """A copy of the repository's files (tracked and new, not ignored) and empty package folders."""
    src = tmp_path / 'herd'
    files = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                           cwd=REPO, check=True, stdout=subprocess.PIPE).stdout.split(b'\0')
    for f in filter(None, files):
        path = os.path.join(REPO, f.decode())
        if os.path.isfile(path):
            dest = src / f.decode()
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
    pkg_src, pkg_inc = tmp_path / 'pkg' / 'llhttp', tmp_path / 'pkg' / 'include'
    pkg_src.mkdir(parents=True)
    pkg_inc.mkdir(parents=True)
    marker = tmp_path / 'deps-step-ran'
    stand_in = tmp_path / 'apt-stand-in.sh'
    stand_in.write_text('#!/bin/sh\n'
                        '# Installs node-llhttp into the empty folders, as apt-get would.\n'
                        'cp %s/*.c %s/ && cp %s/llhttp.h %s/ && touch %s\n'
                        % (LLHTTP_SRC, pkg_src, LLHTTP_INC, pkg_inc, marker))
    stand_in.chmod(0o755)
    return {'src': src, 'pkg_src': pkg_src, 'pkg_inc': pkg_inc, 'marker': marker,
            'vars': ['BUILD=%s' % (tmp_path / 'build'), 'LLHTTP_SRC=%s' % pkg_src,
                     'LLHTTP_INC=%s' % pkg_inc, 'DEPS_STEP=%s' % stand_in],
            'build': tmp_path / 'build'}


def make(fresh, *args, user=None, group=None, timeout=300):
    argv = ['make', '-C', str(fresh['src'])] + fresh['vars'] + list(args)
    if user:
        argv = ['setpriv', '--reuid=%s' % user, '--regid=%s' % group, '--clear-groups', '--'] + argv
    return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)


@pytest.fixture(autouse=True)
def need_llhttp():
    if not os.path.exists(os.path.join(LLHTTP_SRC, 'llhttp.c')):
        pytest.skip('node-llhttp is not installed here (make deps installs it)')


@pytest.mark.parametrize('goal', GOALS)
def test_every_readme_goal_has_its_rules_before_the_packages_exist(fresh, goal):
    # make -n decides every rule of the goal without running anything: with the packages' folders
    # still empty, a rule that needs a package file to exist already makes it stop.
    p = make(fresh, '-n', goal)
    out = p.stdout.decode(errors='replace')
    assert 'No rule to make target' not in out, out[-2000:]
    assert p.returncode == 0, out[-2000:]


def test_llhttp_is_compiled_from_what_the_dependency_step_installs(fresh):
    objs = ['%s/obj/llhttp/%s.o' % (fresh['build'], n) for n in ('llhttp', 'api', 'http')]
    p = make(fresh, *objs)
    out = p.stdout.decode(errors='replace')
    assert p.returncode == 0, out[-3000:]
    assert fresh['marker'].exists(), 'the dependency step did not run:\n' + out[-2000:]
    for o in objs:
        assert os.path.getsize(o) > 0, o
    # The build says what it does, not only compiler command lines.
    assert 'checking the Debian packages' in out, out
    assert 'compile  llhttp/llhttp.c' in out, out


def test_a_user_who_is_not_root_gets_the_one_apt_get_line_at_once():
    try:
        nobody = pwd.getpwnam('nobody')
    except KeyError:
        pytest.skip('no user "nobody" to run as')
    if os.geteuid() != 0 or not shutil.which('setpriv'):
        pytest.skip('needs root and setpriv to act as another user')
    # Somewhere that user can reach (pytest's own temporary folders are root's alone).
    with tempfile.TemporaryDirectory(prefix='herd-fresh-') as base:
        os.chmod(base, 0o755)
        fresh = fresh_copy(pathlib.Path(base))
        for root, dirs, _ in os.walk(base):
            for d in dirs:
                os.chown(os.path.join(root, d), nobody.pw_uid, nobody.pw_gid)
        # The real dependency step, asked for a package this machine cannot have.
        fresh['vars'] = [v for v in fresh['vars'] if not v.startswith('DEPS_STEP=')]
        p = make(fresh, 'DEB_PACKAGES=herd-test-no-such-package', 'all',
                 user='%d' % nobody.pw_uid, group='%d' % nobody.pw_gid, timeout=60)
        out = p.stdout.decode(errors='replace')
        assert p.returncode != 0, out
        assert 'apt-get install herd-test-no-such-package' in out, out
        assert 'compile' not in out, 'it went on compiling:\n' + out
        assert not os.path.exists(fresh['build'] / 'obj'), out
