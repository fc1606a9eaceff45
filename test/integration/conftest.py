"""Fixtures for the herd integration tests.

HERD_SERVER (default build/herd-server) and HERD_GAZETTEER (default build/data/cities.pbf) pick the
binary and the offline places data, relative to the repository root. Each herd gets its own temp
directory (config + logs) and free loopback ports; every process is stopped at the end even when a
test fails, and sanitizer reports or unclean exits found then fail the teardown.
"""

import os
import resource
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import herdlib  # noqa: E402


def pytest_configure(config):
    # 1,000 concurrent client connections need more than the usual 1,024 descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def pytest_sessionstart(session):
    for path, what in ((herdlib.SERVER, 'HERD_SERVER'), (herdlib.GAZETTEER, 'HERD_GAZETTEER')):
        if not os.path.exists(path):
            raise pytest.UsageError('%s: %s not found (run `make`, or set %s)' % (path, what, what))


@pytest.fixture(scope='module')
def solo(tmp_path_factory):
    """One server with no links, for one test module."""
    yield from _running(herdlib.Herd(tmp_path_factory.mktemp('solo'), names=['Solo'], links=[]))


def _running(herd):
    """Starts `herd`, yields it to the tests, then stops it and fails on any server problem."""
    try:
        herd.start()
    except BaseException:
        herd.stop()
        raise
    yield herd
    _finish(herd)


def _finish(herd):
    problems = herd.stop()
    if problems:
        pytest.fail('server problems found at stop:\n' + '\n\n'.join(problems), pytrace=False)


@pytest.fixture(scope='module')
def tls_herd(tmp_path_factory):
    """The five-server topology with TLS peer links (certificates from tools/certs.py)."""
    yield from _running(herdlib.Herd(tmp_path_factory.mktemp('tlsherd'), peer_tls=True))


@pytest.fixture(scope='session')
def herd5(tmp_path_factory):
    """The default five-server topology, shared by the tests that do not disturb it (each uses
    its own client IDs)."""
    yield from _running(herdlib.Herd(tmp_path_factory.mktemp('herd5')))


@pytest.fixture
def make_herd(tmp_path):
    """Factory for herds private to one test: make_herd(names=..., links=..., limits=...)."""
    herds = []

    def make(**kw):
        d = tmp_path / ('herd%d' % len(herds))
        d.mkdir()
        h = herdlib.Herd(d, **kw)
        herds.append(h)
        return h.start()

    yield make
    problems = []
    for h in herds:
        problems += h.stop()
    if problems:
        pytest.fail('server problems found at stop:\n' + '\n\n'.join(problems), pytrace=False)
