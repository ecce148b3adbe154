"""Process-wide thread pools in a forked child (multiprocessing's default start method on
Linux): the parent's threads do not come along, so the child must make its own pools instead
of queueing work that no thread will ever run."""
from __future__ import annotations

import multiprocessing
import os

import numpy as np
import pytest

from fastdicom import load_series, testing
from fastdicom.batch import scan

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")


def _in_forked_child(fn, *args):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        return pool.apply_async(fn, args).get(timeout=60)


def _scan_rows(paths):
    return scan(paths, ["SOPInstanceUID", "Rows"], workers=2).to_pylist()


def _volume_sum(root):
    return float(load_series(root, workers=2).array.sum(dtype=np.float64))


def test_scan_pool_in_forked_child(tmp_path):
    paths = [str(p) for p in testing.write_ct_series(tmp_path / "s", 300, 8, 8, seed=5)]
    here = _scan_rows(paths)          # the parent's pool now exists, with its threads
    assert len(here) == 300
    assert _in_forked_child(_scan_rows, paths) == here


def test_series_helpers_in_forked_child(tmp_path):
    testing.write_ct_series(tmp_path / "s", 40, 16, 16, seed=6)
    here = _volume_sum(str(tmp_path / "s"))
    assert _in_forked_child(_volume_sum, str(tmp_path / "s")) == here
