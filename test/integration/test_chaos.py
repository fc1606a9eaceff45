"""The short chaos run of `make test` (tools/chaos/chaos.py; `make chaos` is the long one): a
five-server herd with data_dir and fsync: always, every link through the fault proxy, under steady
load from build/herd-load while servers are killed (and come back with or without their data),
stopped, and links are cut, blackholed, delayed and slowed, and hostile clients attack the live
servers (tools/chaos/hostile.py: each attack must get the answer its limit promises). It must converge on one record per
client, at least as new as the newest acknowledged one, except where the acknowledging server came
back empty."""

import os
import re
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), 'tools', 'chaos'))

import chaos  # noqa: E402


def test_short_chaos_run(capsys):
    if not os.path.exists(chaos.LOADGEN):
        pytest.skip('build/herd-load is not built')
    rc = chaos.main(['--duration', os.environ.get('HERD_CHAOS_SECONDS', '20'), '--rate', '500',
                     '--converge', '60', '--hostile'])
    out = capsys.readouterr().out
    print(out)
    assert rc == 0, out
    assert 'converged: True' in out and ', 0 not excused' in out, out
    assert re.search(r'hostile attacks judged: .*\d', out), out
