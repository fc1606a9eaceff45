"""tools/bench/report.py: a target's ratio is never shown rounded across the threshold it is
judged against."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'tools', 'bench'))
import report  # noqa: E402


def test_a_ratio_is_shown_with_the_decimals_that_keep_its_verdict():
    assert report.f_ratio_vs(0.8953, 0.9) == '0.895×'  # two decimals would read 0.90×, as if met
    assert report.f_ratio_vs(0.91, 0.9) == '0.91×'
    assert report.f_ratio_vs(0.9, 0.9) == '0.90×'
    assert report.f_ratio_vs(1.49996, 1.5) == '1.49996×'
    assert report.f_ratio_vs(11.96, 12.0) == '11.96×'  # one decimal would read 12.0×
    assert report.f_ratio_vs(12.04, 12.0) == '12.0×'
    assert report.f_ratio_vs(None, 1.0) == ''
    for r in (0.1234, 0.8999, 0.95, 1.0, 1.4999, 2.0, 5.5, 11.99, 250.0):
        for need in (0.8, 0.9, 1.0, 1.5, 2.0, 12.0):
            shown = float(report.f_ratio_vs(r, need)[:-1])
            assert (shown >= need) == (r >= need), (r, need, shown)
