"""Ingestion benchmark (group "ingest"): first ingest of a tree vs a scan of the same tree,
and the no-op re-run.  Goal: ingest >= 50% of the scan rate.

    PYTHONPATH=. .venv/bin/python -m pytest benches/bench_ingest.py
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from fastdicom import testing
from fastdicom.batch import scan
from fastdicom.ingest import ingest

N = int(os.environ.get("FASTDICOM_BENCH_INGEST", "4000"))
BENCH_DIR = Path(os.environ.get("FASTDICOM_BENCH_DIR",
                                Path(tempfile.gettempdir()) / "fastdicom-bench"))
_RESULTS: dict = {}


def _tree(disabled: bool) -> Path:
    n = min(N, 64) if disabled else N
    d = BENCH_DIR / f"ingest-{n}"
    if not (d / ".complete").exists():
        per = 200
        for s in range(0, n, per):
            testing.write_ct_series(d / f"s{s // per:04d}", min(per, n - s), 16, 16,
                                    seed=s // per)
        (d / ".complete").write_text("ok")
    return d


@pytest.mark.parametrize("what", ["scan", "ingest", "rerun"])
def test_ingest(benchmark, what, request, tmp_path):
    disabled = request.config.getoption("benchmark_disable", False)
    tree = _tree(disabled)
    n = sum(1 for _ in tree.rglob("*.dcm"))
    scan(tree, workers=2)   # warm cache
    benchmark.group = "ingest"
    counter = iter(range(1000))

    if what == "scan":
        def run():
            return scan(tree, workers=2)
        setup = None
    elif what == "ingest":
        def setup():
            db = tmp_path / f"i{next(counter)}.sqlite"
            return (db,), {}

        def run(db):
            r = ingest([tree], str(db), workers=2, progress=False)
            assert r.indexed == n
    else:
        db = tmp_path / "rerun.sqlite"
        ingest([tree], str(db), workers=2, progress=False)

        def run():
            r = ingest([tree], str(db), workers=2, progress=False)
            assert r.unchanged == n
        setup = None
    if setup is None:
        benchmark.pedantic(run, rounds=3, iterations=1)
    else:
        benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
    if not disabled and benchmark.stats is not None:
        _RESULTS[what] = n / benchmark.stats.stats.min


def teardown_module(module):
    if "scan" in _RESULTS and "ingest" in _RESULTS:
        print(f"\ningest: scan {_RESULTS['scan']:,.0f} files/s, ingest "
              f"{_RESULTS['ingest']:,.0f} files/s = {_RESULTS['ingest'] / _RESULTS['scan']:.0%}"
              f" of scan (goal >= 50%), re-run {_RESULTS.get('rerun', 0):,.0f} files/s")


def test_ingest_peak_rss_flat(plan):
    """Issue 6: the peak RSS of an ingest job stays flat (within 50 MiB) from 20,000 to
    200,000 tiny files (``FASTDICOM_BENCH_SIZE`` 1GiB; 64 and 640 at the default "tiny"
    size of CI), each job in a fresh interpreter (see :mod:`fastdicom.bench.memory`)."""
    from fastdicom.bench.memory import RSS_SLACK, rss_goal
    small, large = plan.rss_files
    g = rss_goal(small, large)
    print(f"\n{g['task']}: {g['measured']} (goal {g['goal']})")
    runs = [g["runs"][str(n)] for n in (small, large)]
    assert [r["indexed"] for r in runs] == [small, large]
    assert abs(runs[1]["rss"] - runs[0]["rss"]) <= RSS_SLACK, g["measured"]
