"""Benchmark group "volume": loading a synthetic CT series.

Size from ``FASTDICOM_BENCH_SERIES_MB`` (default 16 MiB; the acceptance run is 1024 MiB =
2,048 instances of 512x512 int16).  The series is generated once per size under
``FASTDICOM_BENCH_DIR`` (default: the system temp folder) and reused.

Compared: the raw floor (per file open + pread of the pixel bytes into the preallocated
slice), ``load_series`` on a found ``SeriesInfo`` (read only) and on the folder (whole job:
find + sort + geometry + read), a pydicom loader (dcmread + pixel_array + sort + stack) and
dicomsdl when installed; with 1 and 2 workers.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from fastdicom.series import find_series, load_series, raw_floor_load
from fastdicom.testing import ct_instance_elements, write_file

ROWS = COLUMNS = 512
SLICE_BYTES = ROWS * COLUMNS * 2


def series_size_mb() -> int:
    return max(1, int(os.environ.get("FASTDICOM_BENCH_SERIES_MB", "16")))


def make_series(directory: Path, n: int) -> Path:
    """Write ``n`` 512x512 int16 CT instances (shuffled names) unless already there."""
    done = directory / ".complete"
    if done.exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2000, size=(ROWS, COLUMNS), dtype=np.int16)
    names = rng.permutation(n)
    for i in range(n):
        pixels = np.roll(base, i, axis=1)
        els = ct_instance_elements(rows=ROWS, columns=COLUMNS, index=i, n_slices=n,
                                   study_seed="bench", series_seed="bench-%d" % n,
                                   pixel_array=pixels, private=False, sequences=False)
        write_file(directory / ("IM%06d.dcm" % names[i]), els)
    done.write_text(str(n))
    return directory


@pytest.fixture(scope="module")
def series_dir() -> Path:
    n = max(2, series_size_mb() * (1 << 20) // SLICE_BYTES)
    root = Path(os.environ.get("FASTDICOM_BENCH_DIR", tempfile.gettempdir()))
    return make_series(root / ("fastdicom_bench_series_%d" % n), n)


@pytest.fixture(scope="module")
def info(series_dir):
    stacks = find_series(series_dir)
    assert len(stacks) == 1
    return stacks[0]


def pydicom_loader(directory: Path) -> np.ndarray:
    pydicom = pytest.importorskip("pydicom")
    slices = [pydicom.dcmread(p) for p in sorted(directory.glob("*.dcm"))]
    normal = np.cross(np.asarray(slices[0].ImageOrientationPatient[:3], float),
                      np.asarray(slices[0].ImageOrientationPatient[3:], float))
    slices.sort(key=lambda d: float(np.dot(np.asarray(d.ImagePositionPatient, float), normal)))
    return np.stack([d.pixel_array for d in slices])


def dicomsdl_loader(paths: list, out: np.ndarray) -> np.ndarray:
    dicomsdl = pytest.importorskip("dicomsdl")
    for k, p in enumerate(paths):
        ds = dicomsdl.open(str(p))
        ds.copyFrameData(0, out[k])
    return out


@pytest.mark.benchmark(group="volume")
@pytest.mark.parametrize("workers", [1, 2])
def test_raw_floor(benchmark, info, workers):
    paths = [h.path for h in info.instances]
    offsets = [h.pixel_offset for h in info.instances]
    shape = info.shape

    def run():
        out = np.empty(shape, np.int16)
        return raw_floor_load(paths, offsets, out, workers=workers)
    out = benchmark(run)
    assert out.shape == shape


@pytest.mark.benchmark(group="volume")
@pytest.mark.parametrize("workers", [1, 2])
def test_load_series_info(benchmark, info, workers):
    vol = benchmark(load_series, info, workers=workers)
    assert vol.array.shape == info.shape


@pytest.mark.benchmark(group="volume")
@pytest.mark.parametrize("workers", [1, 2])
def test_load_series_folder(benchmark, series_dir, info, workers):
    vol = benchmark(load_series, series_dir, workers=workers)
    assert vol.array.shape == info.shape


@pytest.mark.benchmark(group="volume")
def test_pydicom_loader(benchmark, series_dir, info):
    arr = benchmark.pedantic(pydicom_loader, args=(series_dir,), rounds=1, iterations=1)
    vol = load_series(info)
    assert np.array_equal(arr, vol.array)


@pytest.mark.benchmark(group="volume")
def test_dicomsdl_loader(benchmark, info):
    pytest.importorskip("dicomsdl")
    paths = [h.path for h in info.instances]

    def run():
        return dicomsdl_loader(paths, np.empty(info.shape, np.int16))
    out = benchmark(run)
    assert np.array_equal(out, load_series(info).array)
