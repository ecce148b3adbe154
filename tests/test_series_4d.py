"""load_series_4d: the stacks of one grid (dynamic, multi-echo, fMRI runs) as one 4-D array,
checked against pydicom reading every file and placing it by its own tags."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from fastdicom import Limits, Volume4D, find_series, load_series, load_series_4d
from fastdicom.errors import LimitExceededError, PixelDataError, SeriesError
from fastdicom.testing import (RLE_LOSSLESS, builtin_frame_encoder, ct_instance_elements,
                               write_file)

pydicom = pytest.importorskip("pydicom")

ROOT = Path(__file__).resolve().parents[1]


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def _write_dynamic(folder: Path, times: list, n_slices: int = 5, *, field=(0x00200100, "IS"),
                   rows: int = 6, columns: int = 7, positions=None, seed="dyn", dtype=np.int16,
                   transfer_syntax=None):
    """One file per (time point, slice), named in an order that is neither; each pixel
    array tells its time point and slice.  Returns {path: (time value, z, pixels)}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(times) * 31 + n_slices)
    written = {}
    names = rng.permutation(len(times) * n_slices)
    for t, value in enumerate(times):
        for z in range(n_slices):
            px = (rng.integers(0, 50, (rows, columns)) + 1000 * t + 100 * z).astype(dtype)
            pos = positions[z] if positions is not None else (-3.0, 4.5, 2.5 * z - 1.0)
            els = ct_instance_elements(rows=rows, columns=columns, index=z, n_slices=n_slices,
                                       series_seed=seed, study_seed="study-" + seed,
                                       position=pos, pixel_array=px, private=False,
                                       sequences=False)
            els = [(tg, vr, (f"1.2.826.0.1.3680043.9.7.{t}.{z}" if tg == 0x00080018 else x))
                   for tg, vr, x in els]
            els.append((field[0], field[1], value))
            path = folder / f"f{int(names[t * n_slices + z]):03d}.dcm"
            kw = {}
            if transfer_syntax is not None:     # one fragment per frame
                enc = builtin_frame_encoder(transfer_syntax)
                els = [(tg, "OB", [enc(x)]) if tg == 0x7FE00010 else (tg, vr, x)
                       for tg, vr, x in els]
                kw = {"transfer_syntax": transfer_syntax}
            write_file(path, sorted(els, key=lambda e: e[0]), **kw)
            written[path] = (value, z, px)
    return written


def _oracle(folder: Path, keyword: str, rescale: bool = False) -> np.ndarray:
    """The 4-D array from pydicom: files sorted by the time tag (as a number), then by
    ImagePositionPatient along the slice normal."""
    items = []
    for p in sorted(folder.iterdir()):
        ds = pydicom.dcmread(p)
        iop = np.array(ds.ImageOrientationPatient, float)
        normal = np.cross(iop[:3], iop[3:])
        z = float(np.dot(np.array(ds.ImagePositionPatient, float), normal))
        px = ds.pixel_array
        if rescale:
            px = px * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        items.append((float(getattr(ds, keyword)), z, px))
    times = sorted({t for t, _, _ in items})
    zs = sorted({z for _, z, _ in items})
    out = np.empty((len(times), len(zs)) + items[0][2].shape, items[0][2].dtype)
    for t, z, px in items:
        out[times.index(t), zs.index(z)] = px
    return out


@pytest.mark.parametrize("keyword,tag,vr,times", [
    ("TemporalPositionIdentifier", 0x00200100, "IS", ["3", "1", "2"]),
    # (numeric, not text order: "1000" sorts before "400" as text)
    ("TriggerTime", 0x00181060, "DS", ["1000", "50", "400", "12.5"]),
    ("AcquisitionNumber", 0x00200012, "IS", ["10", "9", "11"]),
    ("EchoTime", 0x00180081, "DS", ["30", "4.5", "90"]),
])
def test_stacks_load_as_one_4d_array_like_pydicom(tmp_path, keyword, tag, vr, times):
    _write_dynamic(tmp_path, times, field=(tag, vr))
    stacks = _quiet(find_series, tmp_path)
    assert len(stacks) == len(times)
    vol = load_series_4d(stacks)
    assert isinstance(vol, Volume4D)
    expect = _oracle(tmp_path, keyword)
    assert vol.array.shape == expect.shape == (len(times), 5, 6, 7)
    np.testing.assert_array_equal(vol.array, expect)
    assert vol.array.dtype == expect.dtype
    # the shared geometry is each volume's, and every volume is a view of the 4-D array
    one = load_series(stacks[0])
    np.testing.assert_allclose(vol.affine, one.affine)
    assert vol.spacing == pytest.approx(one.spacing)
    for k, v in enumerate(vol.volumes):
        assert np.shares_memory(v.array, vol.array)
        np.testing.assert_array_equal(v.array, expect[k])
        np.testing.assert_allclose(v.affine, vol.affine)
    # the labels name what varies, in the array's order (ascending as numbers)
    assert len(vol.varying) == 1
    values = [lab[vol.varying[0]] for lab in vol.labels]
    assert values == sorted(float(t) for t in times)
    # rescaled: per slice, like pydicom's slope and intercept
    res = load_series_4d(stacks, rescale=True)
    assert res.array.dtype == np.float32
    np.testing.assert_allclose(res.array, _oracle(tmp_path, keyword, rescale=True))


def test_a_folder_loads_all_stacks_of_its_one_series_and_order_given_keeps_order(tmp_path):
    _write_dynamic(tmp_path, ["2", "1"])
    with pytest.warns(UserWarning, match="splits into 2 stacks"):
        stacks = find_series(tmp_path)
    # the split is what load_series_4d loads: it does not warn about it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        by_path = load_series_4d(tmp_path)
    np.testing.assert_array_equal(by_path.array, _oracle(tmp_path, "TemporalPositionIdentifier"))
    backwards = sorted(stacks, key=lambda s: -s.instances[0].temporal_position)
    given = load_series_4d(backwards, order="given")
    np.testing.assert_array_equal(given.array, by_path.array[::-1])
    assert [lab["temporal_position"] for lab in given.labels] == [2, 1]
    one = load_series_4d(stacks[0])
    assert one.array.shape == (1, 5, 6, 7) and one.varying == ()
    with pytest.raises(ValueError, match="order"):
        load_series_4d(stacks, order="random")


def test_several_series_or_another_grid_are_refused(tmp_path):
    _write_dynamic(tmp_path / "a", ["1", "2"], seed="a")
    _write_dynamic(tmp_path / "b", ["1", "2"], seed="b")
    with pytest.raises(SeriesError, match="several series"):
        _quiet(load_series_4d, tmp_path)
    a = _quiet(find_series, tmp_path / "a")
    b = _quiet(find_series, tmp_path / "b")
    # the same grid in two series: the caller may put them together
    both = load_series_4d([a[0], b[0]], order="given")
    assert both.array.shape == (2, 5, 6, 7)
    # another slice position: not one grid
    moved = [(-3.0, 4.5, 2.5 * z - 1.0) for z in range(5)]
    moved[3] = (-3.0, 4.5, 6.9)
    _write_dynamic(tmp_path / "c", ["1"], positions=moved, seed="c")
    c = _quiet(find_series, tmp_path / "c")
    with pytest.raises(SeriesError, match="volume 1 .* not on the grid of volume 0: other "
                                          "slice positions") as exc:
        load_series_4d([a[0], c[0]], order="given")
    assert exc.value.path.endswith(".dcm")
    # another shape
    _write_dynamic(tmp_path / "d", ["1"], rows=8, seed="d")
    d = _quiet(find_series, tmp_path / "d")
    with pytest.raises(SeriesError, match=r"shape \(5, 8, 7\), not \(5, 6, 7\)"):
        load_series_4d([a[0], d[0]], order="given")


def test_another_pixel_type_needs_a_dtype(tmp_path):
    _write_dynamic(tmp_path / "s", ["1"], seed="p")
    _write_dynamic(tmp_path / "u", ["1"], seed="p2", dtype=np.uint16)
    s, u = _quiet(find_series, tmp_path / "s")[0], _quiet(find_series, tmp_path / "u")[0]
    with pytest.raises(SeriesError, match="dtype"):
        load_series_4d([s, u], order="given")
    vol = load_series_4d([s, u], order="given", dtype=np.int32)
    np.testing.assert_array_equal(vol.array[0], _oracle(tmp_path / "s", "TemporalPositionIdentifier")[0])
    np.testing.assert_array_equal(vol.array[1], _oracle(tmp_path / "u", "TemporalPositionIdentifier")[0])


def test_short_pixel_data_is_found_before_the_array_is_allocated(tmp_path):
    files = _write_dynamic(tmp_path, ["1", "2", "3"])
    victim = next(p for p, (t, z, _) in files.items() if t == "3" and z == 2)
    data = victim.read_bytes()
    victim.write_bytes(data[:-20])
    stacks = _quiet(find_series, tmp_path)
    with pytest.raises(PixelDataError) as exc:
        load_series_4d(stacks)
    assert exc.value.path == str(victim)
    # errors="skip": the slice is zero and listed, the rest as pydicom reads it
    vol = _quiet(load_series_4d, stacks, errors="skip")
    victim.write_bytes(data)
    expect = _oracle(tmp_path, "TemporalPositionIdentifier")
    expect[2, 2] = 0
    np.testing.assert_array_equal(vol.array, expect)
    assert [p for p, _ in vol.volumes[2].skipped] == [str(victim)]


def test_decoded_stacks_must_fit_the_decode_budget(tmp_path):
    pytest.importorskip("fastdicom.pixels")
    _write_dynamic(tmp_path, ["1", "2"], transfer_syntax=RLE_LOSSLESS)
    stacks = _quiet(find_series, tmp_path)
    vol = load_series_4d(stacks)
    np.testing.assert_array_equal(vol.array, _oracle(tmp_path, "TemporalPositionIdentifier"))
    # one volume fits, the two do not
    budget = vol.array[0].nbytes + 10
    with pytest.raises(LimitExceededError, match="decode_budget"):
        load_series_4d(stacks, limits=Limits(decode_budget=budget))


def test_a_stack_that_is_already_4d_is_refused(tmp_path):
    # an enhanced multi-frame instance with two time points: load_series gives it as 4-D
    per_frame = [[(0x00209111, "SQ", [[(0x00209128, "UL", 1 + k % 2)]]),
                  (0x00209113, "SQ", [[(0x00200032, "DS", [0, 0, k // 2])]])] for k in range(4)]
    write_file(tmp_path / "mf.dcm", [
        (0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.2.1"), (0x00080018, "UI", "1.2.3.4.9"),
        (0x00080060, "CS", "CT"), (0x0020000D, "UI", "1.2.3.1"), (0x0020000E, "UI", "1.2.3.2"),
        (0x00280002, "US", 1), (0x00280004, "CS", "MONOCHROME2"), (0x00280008, "IS", 4),
        (0x00280010, "US", 4), (0x00280011, "US", 4), (0x00280100, "US", 16),
        (0x00280101, "US", 16), (0x00280102, "US", 15), (0x00280103, "US", 0),
        (0x52009229, "SQ", [[(0x00209116, "SQ", [[(0x00200037, "DS", [1, 0, 0, 0, 1, 0])]]),
                             (0x00289110, "SQ", [[(0x00280030, "DS", [1, 1])]])]]),
        (0x52009230, "SQ", per_frame),
        (0x7FE00010, "OW", np.arange(4 * 16, dtype="<u2").tobytes())])
    (info,) = _quiet(find_series, tmp_path)
    assert _quiet(load_series, info).array.shape == (2, 2, 4, 4)
    with pytest.raises(SeriesError, match=r"4-D \(2, 2, 4, 4\), not a 3-D volume"):
        load_series_4d(info)


def test_cli_load_4d(tmp_path):
    _write_dynamic(tmp_path / "d", ["5", "6"])
    out = tmp_path / "v.npz"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "fastdicom", "load", str(tmp_path / "d"),
                        "--4d", "-o", str(out)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "splits into" not in r.stderr      # the split is what --4d loads
    # `series` lists the stacks, each with how its series splits: no warning either
    r = subprocess.run([sys.executable, "-m", "fastdicom", "series", str(tmp_path / "d")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "splits into" not in r.stderr, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and all("split: temporal position" in x for x in lines), r.stdout
    z = np.load(out)
    np.testing.assert_array_equal(z["array"], _oracle(tmp_path / "d",
                                                      "TemporalPositionIdentifier"))
    assert z["affine"].shape == (4, 4)
    # one stack of it, without --4d: the split is worth a warning there
    r = subprocess.run([sys.executable, "-m", "fastdicom", "load", str(tmp_path / "d"),
                        "--stack", "1", "-o", str(out)], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0 and "splits into 2 stacks" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "fastdicom", "load", str(tmp_path / "d"),
                        "--4d", "--stack", "0", "-o", str(out)], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 2 and "not allowed with" in r.stderr


def test_cli_load_4d_needs_one_series(tmp_path):
    _write_dynamic(tmp_path / "a", ["1", "2"], seed="a")
    _write_dynamic(tmp_path / "b", ["1", "2"], seed="b")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = tmp_path / "v.npy"
    r = subprocess.run([sys.executable, "-m", "fastdicom", "load", str(tmp_path), "--4d",
                        "-o", str(out)], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "several series match; use --series" in r.stderr
    uid = _quiet(find_series, tmp_path / "b")[0].SeriesInstanceUID
    r = subprocess.run([sys.executable, "-m", "fastdicom", "load", str(tmp_path), "--4d",
                        "--series", uid, "-o", str(out)], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(out), _oracle(tmp_path / "b",
                                                        "TemporalPositionIdentifier"))
    r = subprocess.run([sys.executable, "-m", "fastdicom", "load", str(tmp_path), "--4d",
                        "--series", "1.2.3", "-o", str(out)], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 1 and "no series matches --series" in r.stderr
