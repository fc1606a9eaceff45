"""The admin dashboard (GET / on the admin port) in headless Chromium, against a live five-server
herd: the five names and their links render as up; after one server is killed its node and every
link touching it render as down. Screenshots are kept in the test's output folder (and copied to
build/test-output/ when that folder can be written). Skipped with a message when Debian's chromium
is not installed (`make integration` installs it)."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import herdlib
from herdlib import fmt_time, http_get, iamat, unique_id, wait_for

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run',
         '--disable-dev-shm-usage', '--hide-scrollbars']


def chromium(url, *mode, timeout=90):
    profile = tempfile.mkdtemp(prefix='herd-chromium-')
    try:
        r = subprocess.run([CHROMIUM] + FLAGS + ['--user-data-dir=' + profile, '--window-size=1280,1000',
                                                 '--virtual-time-budget=6000'] + list(mode) + [url],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        return r
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def states(dom, attr):
    return dict(re.findall(r'data-%s="([^"]+)" data-state="(up|down)"' % attr, dom))


def keep(path):
    out = os.path.join(herdlib.REPO, 'build', 'test-output')
    try:
        os.makedirs(out, exist_ok=True)
        shutil.copy(path, out)
    except OSError:
        pass


@pytest.mark.skipif(not CHROMIUM, reason='Debian chromium is not installed (make integration installs it)')
def test_dashboard_in_chromium(make_herd, tmp_path):
    h = make_herd(admin=True)
    # Every link up, seen from both ends.
    for name in herdlib.NAMES:
        wait_for(lambda: all(json.loads(http_get(h.admin_ports[name], '/v1/dashboard')[2])['link_up'].values()),
                 20, '%s links up' % name)
    for i, name in enumerate(herdlib.NAMES):
        iamat(h.port(name), unique_id('dash'), b'+%02d.500000+%03d.250000' % (10 + 5 * i, 20 * i),
              fmt_time(time.time_ns()))
    status, headers, body = http_get(h.admin_ports['Goloman'], '/')
    assert status == 200 and headers['content-type'].startswith('text/html') and b'<svg id="topo"' in body
    assert b'http://' not in body.replace(b'http://www.w3.org/2000/svg', b''), 'the page must load nothing remote'
    status, _, world = http_get(h.admin_ports['Goloman'], '/world.json')
    assert status == 200 and json.loads(world)['type'] == 'Topology'

    url = 'http://127.0.0.1:%d/' % h.admin_ports['Goloman']
    r = chromium(url, '--dump-dom')
    dom = r.stdout.decode('utf-8', 'replace')
    servers, links = states(dom, 'server'), states(dom, 'link')
    assert servers == {n: 'up' for n in herdlib.NAMES}, (servers, r.stderr[-2000:])
    assert links == {'%s-%s' % (a, b): 'up' for a, b in herdlib.LINKS}, links
    shot = str(tmp_path / 'dashboard-all-up.png')
    chromium(url, '--screenshot=' + shot)
    assert os.path.getsize(shot) > 10000
    keep(shot)

    h.kill('Welsh')
    wait_for(lambda: not json.loads(http_get(h.admin_ports['Holiday'], '/v1/dashboard')[2])['link_up']['Welsh'],
             20, 'Holiday sees Welsh gone')
    dom = chromium(url, '--dump-dom').stdout.decode('utf-8', 'replace')
    servers, links = states(dom, 'server'), states(dom, 'link')
    assert servers['Welsh'] == 'down' and servers['Goloman'] == 'up'
    assert links['Holiday-Welsh'] == 'down'
    assert all(v == 'up' for k, v in links.items() if 'Welsh' not in k), links
    shot = str(tmp_path / 'dashboard-welsh-down.png')
    chromium(url, '--screenshot=' + shot)
    assert os.path.getsize(shot) > 10000
    keep(shot)
