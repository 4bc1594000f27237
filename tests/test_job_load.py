"""Issue 12's load proof: 300 videos submitted as fast as the API accepts them, at most 3 processed at once.

Marked `load` (run alone with `pytest -m load`); CI runs it with the rest. tests/jobs_harness.py says what stands
in for AWS. How the wall time grows with the number of videos is measured by scripts/bench_load.py, not here.
"""

from __future__ import annotations

import pytest

from jobs_harness import run_load

VIDEOS, CAP = 300, 3


@pytest.mark.load
def test_300_videos_drain_through_3_slots_in_submission_order_and_each_is_reported_once(templates, monkeypatch):
    result = run_load(templates, VIDEOS, CAP, monkeypatch)
    print("\n" + result.line())
    assert result.scheduler_errors == []
    assert (result.succeeded, result.failed, result.lost) == (VIDEOS, 0, 0), result.failures
    assert result.completions == VIDEOS and result.errors == 0, "exactly one completion message each, no error"
    assert result.max_running <= CAP
    assert sorted(result.start_order) == result.submit_order, "every video started exactly once"
    # Submission order, within the slots: a video never starts after one submitted more than CAP places later.
    late = [(i, video) for i, video in enumerate(result.start_order) if abs(result.submit_order.index(video) - i) > CAP]
    assert late == []
