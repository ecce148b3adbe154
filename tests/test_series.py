"""Tests for fastdicom.series: grouping, ordering, geometry and load_series."""
from __future__ import annotations

import argparse
import math
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastdicom
from fastdicom.errors import DicomWarning, SeriesError
from fastdicom.series import compute_geometry, find_series, load_series, register_cli
from fastdicom.testing import (DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, RLE_LOSSLESS,
                               ct_instance_elements, multiframe_frame, write_ct_series,
                               write_file, write_multiframe)

from _data import require_shared  # noqa: E402


def need_corpus() -> Path:
    return require_shared() / "corpus"


def quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DicomWarning)
        return fn(*a, **kw)


def pydicom_stack(paths) -> np.ndarray:
    pydicom = pytest.importorskip("pydicom")
    return np.stack([pydicom.dcmread(str(p)).pixel_array for p in paths])


def expected_affine(first_pos, orientation, spacing, step_vec) -> np.ndarray:
    """Independent affine: columns (slice, row, column) in LPS at voxel centres."""
    r = np.asarray(orientation[:3], float)
    c = np.asarray(orientation[3:], float)
    a = np.eye(4)
    a[:3, 0] = step_vec
    a[:3, 1] = c * spacing[0]
    a[:3, 2] = r * spacing[1]
    a[:3, 3] = first_pos
    return a


def oblique(alpha_deg=30.0, beta_deg=20.0):
    a, b = math.radians(alpha_deg), math.radians(beta_deg)
    r = np.array([math.cos(a), math.sin(a), 0.0])
    c = np.array([-math.sin(a) * math.cos(b), math.cos(a) * math.cos(b), -math.sin(b)])
    return tuple(np.round(np.r_[r, c], 6))


def canonical(array, affine):
    """Flip the slice axis so that it runs along +normal (references may sort either way)."""
    normal = np.cross(affine[:3, 2], affine[:3, 1])
    if np.dot(affine[:3, 0], normal) < 0:
        affine = affine.copy()
        affine[:3, 3] = affine[:3, 3] + (array.shape[0] - 1) * affine[:3, 0]
        affine[:3, 0] = -affine[:3, 0]
        array = array[::-1]
    return array, affine


# ---------------------------------------------------------------------------------------------
# ordering, values and affine

@pytest.mark.parametrize("order", ["ascending", "descending", "random"])
def test_shuffled_names_and_instance_numbers(tmp_path, order):
    paths = write_ct_series(tmp_path, 12, 32, 24, instance_number_order=order, seed=3)
    stacks = find_series(tmp_path)
    assert len(stacks) == 1
    info = stacks[0]
    assert info.paths == [Path(p) for p in paths]
    assert info.num_instances == 12 and info.shape == (12, 32, 24)
    assert info.dtype == np.int16 and info.split_reason is None and info.stack == 0
    vol = load_series(info)
    assert np.array_equal(vol.array, pydicom_stack(paths))
    assert vol.geometry.regular and vol.geometry.ordering == "position"


@pytest.mark.parametrize("orientation", [(1, 0, 0, 0, 1, 0), (1, 0, 0, 0, 0, -1),
                                         (0, 1, 0, 0, 0, -1), oblique()])
def test_affine_independent(tmp_path, orientation):
    paths = write_ct_series(tmp_path, 7, 16, 20, orientation=orientation, spacing=(0.8, 0.6),
                            slice_thickness=2.5)
    pydicom = pytest.importorskip("pydicom")
    dss = [pydicom.dcmread(str(p)) for p in paths]
    pos = np.array([[float(v) for v in d.ImagePositionPatient] for d in dss])
    vol = load_series(tmp_path)
    step = (pos[-1] - pos[0]) / 6
    exp = expected_affine(pos[0], [float(v) for v in dss[0].ImageOrientationPatient],
                          (0.8, 0.6), step)
    assert np.allclose(vol.affine, exp, atol=1e-4)
    assert np.allclose(vol.spacing, (2.5, 0.8, 0.6), atol=1e-4)
    assert np.allclose(vol.origin, pos[0])
    assert np.allclose(vol.positions, pos)
    # every voxel centre of the last slice's last pixel
    far = pos[-1] + 15 * 0.8 * np.asarray(orientation[3:], float) \
        + 19 * 0.6 * np.asarray(orientation[:3], float)
    assert np.allclose(vol.index_to_lps((6, 15, 19)), far, atol=1e-3)
    assert np.allclose(vol.direction.T @ vol.direction, np.eye(3), atol=1e-5)


def test_negative_slice_direction(tmp_path):
    paths = write_ct_series(tmp_path, 6, 16, 16, slice_spacing=-1.5)
    info = find_series(tmp_path)[0]
    assert info.paths == [Path(p) for p in reversed(paths)]
    vol = load_series(info)
    assert np.allclose(vol.affine[:3, 0], [0, 0, 1.5], atol=1e-4)
    assert np.array_equal(vol.array, pydicom_stack(reversed(paths)))


def _write_positions(directory, positions, *, orientation=(1, 0, 0, 0, 1, 0), seed="p",
                     rows=16, columns=16, instance_numbers=None, drop=(), **kw):
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i, p in enumerate(positions):
        els = ct_instance_elements(rows=rows, columns=columns, index=i,
                                   n_slices=len(positions), series_seed=seed,
                                   study_seed="study-" + str(seed), position=p,
                                   orientation=orientation,
                                   instance_number=None if instance_numbers is None
                                   else instance_numbers[i], **kw)
        els = [e for e in els if e[0] not in drop]
        path = directory / ("F%03d.dcm" % ((i * 7) % len(positions)))
        write_file(path, els)
        out.append(path)
    return out


def test_gantry_tilt_detected_and_sheared_affine(tmp_path):
    positions = [(0.0, 0.4 * i, 2.0 * i) for i in range(8)]
    paths = _write_positions(tmp_path, positions)
    with pytest.warns(DicomWarning, match="tilt"):
        info = find_series(tmp_path)[0]
    g = info.geometry
    assert g.tilted
    assert g.gantry_tilt_degrees == pytest.approx(math.degrees(math.atan2(0.4, 2.0)), abs=1e-3)
    vol = quiet(load_series, info)
    assert np.allclose(vol.affine[:3, 0], [0, 0.4, 2.0], atol=1e-6)
    assert np.allclose(vol.index_to_lps((7, 0, 0)), positions[-1])
    assert info.paths == [Path(p) for p in paths]


def _series_and_localizer(directory, n, size, loc_rows):
    """A CT series of ``n`` axial slices plus a coronal localizer in the same series."""
    write_ct_series(directory, n, size, size, shuffle_names=False)
    loc = ct_instance_elements(rows=loc_rows, columns=size, index=0, n_slices=1,
                               series_seed="series-0", study_seed="study-0",
                               orientation=(1, 0, 0, 0, 0, -1), position=(0, 0, 0),
                               instance_number=1)
    loc = [(t, v, ("1.2.3.4.5" if t == 0x00080018 else x)) for t, v, x in loc]
    write_file(directory / "LOCALIZER.dcm", loc)


def test_warnings_name_the_callers_line(tmp_path):
    # find_series and load_series are wrapped (fastdicom._stop); their warnings must still be
    # attributed to the user's line, not to a frame inside the package
    _series_and_localizer(tmp_path, 6, 16, 16)
    with pytest.warns(DicomWarning, match="splits") as rec:
        find_series(tmp_path)
    assert {w.filename for w in rec} == {__file__}
    gap = write_ct_series(tmp_path / "gap", 8, 16, 16, shuffle_names=False)
    os.remove(gap[4])
    with pytest.warns(DicomWarning, match="missing") as rec:
        load_series(tmp_path / "gap")
    assert {w.filename for w in rec} == {__file__}


@pytest.mark.parametrize("image_type", [["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"],
                                        ["ORIGINAL", "PRIMARY", "M", "ND"]])
def test_siemens_mosaic_is_flagged(tmp_path, image_type):
    for i in range(3):   # the image type is the only difference between the two cases
        els = ct_instance_elements(rows=16, columns=16, index=i, n_slices=3, series_seed="m",
                                   study_seed="study-m", position=(0.0, 0.0, 3.0 * i))
        els = [(t, v, image_type if t == 0x00080008 else x) for t, v, x in els]
        assert any(t == 0x00080008 for t, _, _ in els)
        write_file(tmp_path / f"M{i}.dcm", els)
    mosaic = "MOSAIC" in image_type
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        (info,) = find_series(tmp_path)
        vol = load_series(info)
    flagged = [i for i in info.geometry.issues if "mosaic" in i]
    assert bool(flagged) == mosaic
    assert any("mosaic" in str(w.message) for w in rec) == mosaic
    assert vol.array.shape == (3, 16, 16)   # loaded as stored either way


def test_mosaic_run_warns_once_and_flags_every_stack(tmp_path):
    # an fMRI run: every mosaic at the same position, one acquisition each -> one stack each
    for i in range(4):
        els = ct_instance_elements(rows=16, columns=16, index=i, n_slices=4, series_seed="r",
                                   study_seed="study-r", position=(0.0, 0.0, 0.0))
        els = [(t, v, ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"] if t == 0x00080008 else x)
               for t, v, x in els] + [(0x00200012, "IS", str(i + 1))]
        write_file(tmp_path / f"R{i}.dcm", sorted(els, key=lambda e: e[0]))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        stacks = find_series(tmp_path)
    assert len(stacks) == 4
    assert all(any("mosaic" in i for i in s.geometry.issues) for s in stacks)
    assert sum("mosaic" in str(w.message) for w in rec) == 1


def test_float_jitter_is_regular_but_real_gap_is_caught():
    pos = [(0.0, 0.0, 0.1 * 3 * i) for i in range(10)]      # 0.29999999999999716-like steps
    g = compute_geometry(pos, (1, 0, 0, 0, 1, 0), (1, 1), warn=False)
    assert g.regular and not g.missing_slices and not g.uneven_spacing
    assert g.spacing[0] == pytest.approx(0.3)
    gap = pos[:4] + pos[5:]
    with pytest.warns(DicomWarning, match="missing"):
        g = compute_geometry(gap, (1, 0, 0, 0, 1, 0), (1, 1))
    assert g.missing_slices == [(3, 1)] and not g.regular
    assert g.spacing[0] == pytest.approx(0.3)
    uneven = [(0, 0, z) for z in (0, 1, 2, 3.4, 4.4)]
    with pytest.warns(DicomWarning, match="uneven"):
        g = compute_geometry(uneven, (1, 0, 0, 0, 1, 0), (1, 1))
    assert g.uneven_spacing


def test_missing_slice_in_folder(tmp_path):
    paths = write_ct_series(tmp_path, 10, 16, 16, shuffle_names=False)
    os.remove(paths[4])
    with pytest.warns(DicomWarning, match="missing"):
        info = find_series(tmp_path)[0]
    assert info.geometry.missing_slices == [(3, 1)]
    vol = quiet(load_series, info)
    assert vol.array.shape[0] == 9 and vol.spacing[0] == pytest.approx(1.25)


def test_duplicate_file_and_duplicate_position(tmp_path):
    paths = write_ct_series(tmp_path, 6, 16, 16, shuffle_names=False)
    shutil.copy(paths[2], tmp_path / "copy.dcm")          # same SOP Instance UID
    with pytest.warns(DicomWarning, match="duplicate"):
        info = find_series(tmp_path)[0]
    assert info.num_instances == 6 and info.duplicates == [str(tmp_path / "copy.dcm")] or \
        info.duplicates == [str(paths[2])]
    # distinct instance at an existing position
    els = ct_instance_elements(rows=16, columns=16, index=2, n_slices=6, series_seed="series-0",
                               study_seed="study-0", instance_number=99)
    els = [(t, v, ("9.9.9" if t == 0x00080018 else x)) for t, v, x in els]
    write_file(tmp_path / "dup.dcm", els)
    with pytest.warns(DicomWarning):
        info = find_series(tmp_path)[0]
    assert info.geometry.duplicate_positions
    with pytest.raises(SeriesError, match="share positions"):
        load_series(info)
    with pytest.warns(DicomWarning):
        vol = load_series(info, errors="skip")
    assert vol.array.shape[0] == 6 and len(vol.skipped) == 1


def test_a_whole_copy_is_kept_before_one_cut_short(tmp_path):
    """Of two copies of one SOP instance, the one whose pixel data is cut short was kept when
    its path sorted first, and the whole one listed as the duplicate: load_series raised."""
    paths = write_ct_series(tmp_path, 4, 16, 16, shuffle_names=False)
    short = tmp_path / "0_short_copy.dcm"       # sorts before every slice
    data = paths[1].read_bytes()
    short.write_bytes(data[:-10])
    assert min(paths + [short]) == short
    info = quiet(find_series, tmp_path)[0]
    assert info.num_instances == 4 and info.duplicates == [str(short)]
    vol = quiet(load_series, info)
    assert np.array_equal(vol.array, pydicom_stack(paths))
    # the short copy alone keeps its place (load names it), as any slice cut short does
    os.remove(paths[1])
    info = quiet(find_series, tmp_path)[0]
    assert info.num_instances == 4 and not info.duplicates
    with pytest.raises(fastdicom.PixelDataError) as exc:
        load_series(info)
    assert exc.value.path == str(short)


@pytest.mark.parametrize("step", [1.0, 2.0, 5.0])
def test_gaps_between_whole_mm_positions_are_told(step):
    """Positions written as whole mm put the decimal grid at 1 mm, and its rounding allowance
    (2 grids) hid a missing slice or an uneven step of a 1 or 2 mm stack: no issue, regular,
    and an affine a step off for the slices after the gap."""
    ori = (1, 0, 0, 0, 1, 0)
    z = [-50 + k * step for k in range(8)]
    gap = [(0.0, 0.0, v) for v in z[:4] + z[5:]]
    g = compute_geometry(gap, ori, (0.5, 0.5), warn=False)
    assert g.missing_slices == [(3, 1)] and not g.regular and not g.uneven_spacing
    assert g.affine[2, 0] == pytest.approx(step)
    assert np.allclose(g.affine @ [7, 0, 0, 1], [0, 0, z[7], 1])
    uneven = [(0.0, 0.0, v) for v in z[:4]] + [(0.0, 0.0, v + step / 2) for v in z[4:]]
    g = compute_geometry(uneven, ori, (0.5, 0.5), warn=False)
    assert g.uneven_spacing and not g.missing_slices and not g.regular
    even = [(0.0, 0.0, v) for v in z]
    g = compute_geometry(even, ori, (0.5, 0.5), warn=False)
    assert g.regular and not g.issues and g.affine[2, 0] == pytest.approx(step)


@pytest.mark.parametrize("decimals", [1, 2])
def test_the_affine_step_of_rounded_positions_is_their_mean(decimals):
    """0.625 mm slices written with 1 or 2 decimals step 0.6/0.7 (0.62/0.63): the median step
    made the affine drift 5 mm (1 mm) from the last slice's own position over 200 slices."""
    pos = [(0.0, 0.0, round(-100 + k * 0.625, decimals)) for k in range(200)]
    g = compute_geometry(pos, (1, 0, 0, 0, 1, 0), (0.5, 0.5), warn=False)
    assert g.regular and not g.issues
    assert abs((g.affine @ [199, 0, 0, 1])[2] - pos[-1][2]) <= 10.0 ** -decimals


def test_localizer_inside_series_splits(tmp_path):
    _series_and_localizer(tmp_path, 10, 32, 24)
    with pytest.warns(DicomWarning, match="splits"):
        stacks = find_series(tmp_path)
    assert len(stacks) == 2
    assert {s.SeriesInstanceUID for s in stacks} == {stacks[0].SeriesInstanceUID}
    main, localizer = stacks
    assert main.stack == 0 and main.num_instances == 10 and localizer.num_instances == 1
    assert "orientation" in main.split_reason and "rows/columns" in main.split_reason
    assert main.geometry.spacing[0] == pytest.approx(1.25)      # never the localizer's gap
    with pytest.raises(SeriesError, match="several stacks"):
        quiet(load_series, tmp_path)
    vol = quiet(load_series, tmp_path, stack=0)
    assert vol.array.shape == (10, 32, 32)


def test_echo_and_temporal_split(tmp_path):
    for echo in (1, 2):
        _write_positions(tmp_path / ("e%d" % echo), [(0, 0, z) for z in range(4)], seed="mr",
                         instance_numbers=[echo * 10 + k for k in range(4)])
    # give the second folder another echo time by rewriting with an extra element
    for i, p in enumerate(sorted((tmp_path / "e2").iterdir())):
        els = ct_instance_elements(rows=16, columns=16, index=i, n_slices=4, series_seed="mr",
                                   study_seed="study-mr", position=(0, 0, i))
        els = [(t, v, (f"9.8.{i}" if t == 0x00080018 else x)) for t, v, x in els]
        write_file(p, els + [(0x00180081, "DS", 30.0), (0x00180086, "IS", 2)])
    with pytest.warns(DicomWarning):
        stacks = find_series(tmp_path)
    assert len(stacks) == 2
    assert "echo number" in stacks[0].split_reason and "echo time" in stacks[0].split_reason
    assert all(s.geometry.regular for s in stacks)


def test_mixed_series_in_one_folder(tmp_path):
    a = write_ct_series(tmp_path, 5, 16, 16, seed=1, file_prefix="A")
    b = write_ct_series(tmp_path, 7, 20, 16, seed=2, file_prefix="B")
    stacks = find_series(tmp_path)
    assert sorted(s.num_instances for s in stacks) == [5, 7]
    with pytest.raises(SeriesError, match="several stacks") as exc:
        load_series(tmp_path)
    assert stacks[0].SeriesInstanceUID in str(exc.value)
    for s, paths in zip(sorted(stacks, key=lambda s: s.num_instances), (a, b)):
        assert np.array_equal(load_series(s).array, pydicom_stack(paths))


def test_instance_number_fallback(tmp_path):
    _write_positions(tmp_path, [(0, 0, z) for z in range(5)], instance_numbers=[5, 4, 3, 2, 1],
                     drop=(0x00200032,))
    with pytest.warns(DicomWarning, match="InstanceNumber"):
        info = find_series(tmp_path)[0]
    assert info.geometry.ordering == "instance_number"
    assert [h.instance_number for h in info.instances] == [1, 2, 3, 4, 5]


def test_rescale_dtype_out_and_workers(tmp_path):
    paths = write_ct_series(tmp_path, 9, 24, 24)
    info = find_series(tmp_path)[0]
    raw = pydicom_stack(paths)
    vol = load_series(info, rescale=True, workers=3)
    assert vol.array.dtype == np.float32 and vol.rescaled
    assert np.array_equal(vol.array, raw.astype(np.float32) - 1024)
    assert np.all(vol.rescale_slope == 1) and np.all(vol.rescale_intercept == -1024)
    v64 = load_series(info, rescale=True, dtype=np.float64, workers=1)
    assert v64.array.dtype == np.float64
    mm = np.memmap(tmp_path / "vol.raw", dtype=np.int16, mode="w+", shape=info.shape)
    vol = load_series(info, out=mm, workers=2, progress=True)
    assert vol.array is mm and np.array_equal(np.asarray(mm), raw)
    with pytest.raises(ValueError):
        load_series(info, out=np.empty((1, 2, 3), np.int16))


def test_bad_instance_raise_or_skip(tmp_path):
    paths = write_ct_series(tmp_path, 6, 16, 16, shuffle_names=False)
    info = find_series(tmp_path)[0]
    with open(paths[3], "r+b") as fh:        # the file shrinks after the scan
        fh.truncate(os.path.getsize(paths[3]) - 100)
    with pytest.raises(fastdicom.DicomError):
        load_series(info)
    with pytest.warns(DicomWarning, match="zero-filled"):
        vol = load_series(info, errors="skip")
    assert [Path(p) for p, _ in vol.skipped] == [paths[3]]
    assert not vol.array[3].any() and vol.array[2].any()


def _patch_us(path: Path, tag: int, value: int) -> None:
    head = (tag >> 16).to_bytes(2, "little") + (tag & 0xFFFF).to_bytes(2, "little") + \
        b"US\x02\x00"
    data = path.read_bytes()
    i = data.index(head) + len(head)
    path.write_bytes(data[:i] + value.to_bytes(2, "little") + data[i + 2:])


def test_frames_not_in_the_file_are_not_allocated(tmp_path):
    """Rows/Columns damaged to 46341 ask for a 4 GiB volume from a file of a few KB: the load
    fails before allocating (it used to allocate, zero-fill and list the slice as skipped)."""
    import tracemalloc
    paths = write_ct_series(tmp_path, 3, 16, 16, shuffle_names=False)
    for p in paths:
        _patch_us(p, 0x00280010, 46341)
        _patch_us(p, 0x00280011, 46341)
    info = find_series(tmp_path)[0]
    assert info.shape == (3, 46341, 46341)
    tracemalloc.start()
    try:
        for errors in ("raise", "skip"):
            with pytest.raises(fastdicom.PixelDataError, match="needs bytes 0..4294"
                               if errors == "raise" else "none of the 3 frames") as exc:
                load_series(info, errors=errors)
            assert exc.value.path == str(paths[0]) and exc.value.tag == 0x7FE00010
        assert tracemalloc.get_traced_memory()[1] < 50 << 20
    finally:
        tracemalloc.stop()


def _set_number_of_frames(path: Path, value: bytes) -> None:
    """Replace the (even-length, explicit VR) NumberOfFrames value of ``path``."""
    data = path.read_bytes()
    head = b"\x28\x00\x08\x00IS"
    i = data.index(head)
    n = int.from_bytes(data[i + 6:i + 8], "little")
    assert len(value) % 2 == 0
    path.write_bytes(data[:i + 6] + len(value).to_bytes(2, "little") + value +
                     data[i + 8 + n:])


def test_encapsulated_frames_missing_raise_before_allocating(tmp_path):
    """NumberOfFrames damaged from 4 to 1000 in an RLE file of four fragments (10 KB: room
    for 1000 fragment items, so the header scan keeps it): the frame table is checked
    before a (1000, 64, 64) volume (8 MB) is allocated and zero-filled."""
    import tracemalloc
    path = write_multiframe(tmp_path / "mf.dcm", 4, 64, 64, transfer_syntax=RLE_LOSSLESS)
    _set_number_of_frames(path, b"1000")
    info = quiet(find_series, path)[0]
    assert info.shape == (1000, 64, 64)
    tracemalloc.start()
    try:
        for errors in ("raise", "skip"):
            with pytest.raises(fastdicom.DicomError) as exc:
                load_series(info, errors=errors)
            assert exc.value.path == str(path)
        assert tracemalloc.get_traced_memory()[1] < 4 << 20
    finally:
        tracemalloc.stop()


def test_encapsulated_frames_beyond_the_bytes_are_left_out(tmp_path):
    """NumberOfFrames damaged from 4 to 9999 in an RLE file of 10 KB: 9999 frames need 9999
    fragment items (80 KB of item headers alone), so the header scan leaves the file out
    (a warning when it is named) and load_series names it, instead of planning 9999 frames."""
    path = write_multiframe(tmp_path / "mf.dcm", 4, 64, 64, transfer_syntax=RLE_LOSSLESS)
    _set_number_of_frames(path, b"9999")
    assert path.stat().st_size < 8 * 9999
    with pytest.warns(DicomWarning, match="mf.dcm: not readable as DICOM .PixelDataError"):
        assert find_series(path) == []
    with pytest.raises(SeriesError, match="NumberOfFrames does not fit") as exc:
        quiet(load_series, path)
    assert exc.value.path == str(path)


# NumberOfFrames and the other numbers of a header: checked before anything is sized by them

def _frames_elements(frames: str, *, sop: str = "1.2.3.4", extra: tuple = (),
                     pixels: bytes = b"\0" * 4, bits: int = 8) -> list:
    """A 2 x 2 image (series 1.3) declaring NumberOfFrames ``frames`` (the text written),
    with ``pixels`` as its Pixel Data."""
    return [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"), (0x00080018, "UI", sop),
            (0x0020000D, "UI", "1.2"), (0x0020000E, "UI", "1.3"), (0x00280008, "IS", frames),
            (0x00280010, "US", 2), (0x00280011, "US", 2), (0x00280100, "US", bits),
            *extra, (0x7FE00010, "OB", pixels)]


@pytest.mark.parametrize("ts", [EXPLICIT_LE, EXPLICIT_BE, DEFLATED_LE])
@pytest.mark.parametrize("frames", ["2", "300000"])
def test_number_of_frames_beyond_native_pixel_data_is_left_out(tmp_path, ts, frames):
    """NumberOfFrames says more 2 x 2 frames than the 4 bytes of Pixel Data hold (explicit
    LE: the nogil header scan; big endian and deflated: the general one): the file is left
    out of a folder scan (logged, as a damaged file) and with a warning when named, and
    load_series names it -- before anything is sized by the declared count (it planned
    300000 frames: tens of MB; 999999999 was a MemoryError)."""
    import tracemalloc
    folder = tmp_path / "d"
    good = write_ct_series(folder / "good", 2, 8, 8)
    bad = folder / "bad.dcm"
    write_file(bad, _frames_elements(frames), transfer_syntax=ts)
    # 8 frames of 2 x 2 bits are in 4 bytes: kept
    packed = folder / "packed.dcm"
    write_file(packed, _frames_elements("8", sop="1.2.3.5", bits=1), transfer_syntax=ts)
    tracemalloc.start()
    try:
        stacks = quiet(find_series, folder, workers=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
    found = {str(p): h for s in stacks for p, h in zip(s.paths, s.instances)}
    assert sorted(found) == sorted(map(str, good + [packed]))
    assert found[str(packed)].n_frames == 8
    with pytest.warns(DicomWarning, match=r"bad\.dcm: not readable as DICOM .PixelDataError"):
        assert find_series(bad) == []
    with pytest.raises(SeriesError, match="NumberOfFrames does not fit the pixel data") as exc:
        quiet(load_series, bad)
    assert exc.value.path == str(bad)


def test_number_of_frames_is_checked_before_functional_groups_are_read(tmp_path,
                                                                       monkeypatch):
    """NumberOfFrames 1e15 and one (empty) Shared Functional Groups item: the scan read the
    groups once per declared frame (a hang).  The count is checked against the pixel data
    first, and the groups are read once per item present (frames without a per-frame item
    share one record of the shared groups)."""
    import fastdicom.series as S
    calls = []
    real = S._functional

    def counting(*args):
        calls.append(args)
        if len(calls) > 1000:
            raise AssertionError("functional groups read once per declared frame")
        return real(*args)
    monkeypatch.setattr(S, "_functional", counting)
    bad = tmp_path / "bad.dcm"
    write_file(bad, _frames_elements("1e15", extra=((0x52009229, "SQ", [[]]),)))
    with pytest.warns(DicomWarning, match="bad.dcm: not readable as DICOM .PixelDataError"):
        assert find_series(bad) == []
    assert not calls
    # a sound file of 50 frames with shared groups only: all frames get them
    shared = [(0x00289110, "SQ", [[(0x00280030, "DS", [0.5, 0.5]), (0x00180050, "DS", 2)]]),
              (0x00209116, "SQ", [[(0x00200037, "DS", [1, 0, 0, 0, 1, 0])]]),
              (0x00289145, "SQ", [[(0x00281052, "DS", -10), (0x00281053, "DS", 2)]])]
    pixels = bytes(range(200))
    ok = tmp_path / "ok.dcm"
    write_file(ok, _frames_elements("50", extra=((0x52009229, "SQ", [shared]),),
                                    pixels=pixels))
    (info,) = quiet(find_series, ok)
    assert len(calls) <= 6          # one record of the shared groups, not 50
    h = info.instances[0]
    assert h.n_frames == 50 and len(h.frames) == 50
    assert all(f["spacing"] == (0.5, 0.5) and f["slope"] == 2 for f in h.frames)
    vol = quiet(load_series, info, rescale=True)
    want = np.frombuffer(pixels, np.uint8).reshape(50, 2, 2) * 2.0 - 10
    assert np.array_equal(vol.array, want)


@pytest.mark.parametrize("value", ["1e999", "inf", "-Infinity"])
def test_numbers_that_are_not_finite_are_no_values_not_an_overflow(tmp_path, value):
    """NumberOfFrames, SeriesNumber and InstanceNumber "1e999" / "inf": read as no value (as
    text that is no number is), not an OverflowError that ended the whole folder scan."""
    folder = tmp_path / "d"
    write_ct_series(folder / "good", 2, 8, 8)
    write_file(folder / "odd.dcm", _frames_elements(
        value, extra=((0x00200011, "IS", value), (0x00200013, "IS", value))))
    stacks = quiet(find_series, folder, workers=1)
    assert len(stacks) == 2
    (odd,) = [s for s in stacks if s.SeriesInstanceUID == "1.3"]
    h = odd.instances[0]
    assert (h.n_frames, h.series_number, h.instance_number) == (1, None, None)
    assert odd.SeriesNumber is None
    assert quiet(load_series, odd).array.shape == (1, 2, 2)


def test_orientation_too_large_to_round_is_no_overflow(tmp_path):
    """A cosine of 1e308 divided by the grouping step is infinite: round() of it raised
    OverflowError out of find_series (for the whole folder)."""
    write_ct_series(tmp_path / "good", 2, 8, 8)
    write_file(tmp_path / "odd.dcm", _frames_elements(
        "1", extra=((0x00200037, "DS", [1e308, 0, 0, 0, 1, 0]),)))
    stacks = quiet(find_series, tmp_path, workers=1)
    assert sorted(s.num_instances for s in stacks) == [1, 2]


def test_a_value_a_header_cannot_convert_leaves_one_file_out(tmp_path, monkeypatch):
    """ValueError / OverflowError out of one file's header scan leave that file out (a
    warning when named) and the scan goes on; UnsafePathError and programming errors
    (TypeError) still raise."""
    import fastdicom.series as S
    paths = write_ct_series(tmp_path, 3, 8, 8, shuffle_names=False)
    real = S.scan_instance
    failures = {str(paths[1]): OverflowError("cannot convert float infinity to integer"),
                str(paths[2]): ValueError("invalid literal")}

    def scan(p, limits=None):
        if p in failures:
            raise failures[p]
        return real(p, limits)
    monkeypatch.setattr(S, "scan_instance", scan)
    monkeypatch.setattr(S, "_series", None)     # every file through the general path
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stacks = find_series([str(p) for p in paths], workers=1)
    assert [p for s in stacks for p in s.paths] == [paths[0]]
    said = " ".join(str(w.message) for w in caught)
    assert f"{paths[1]}: not readable as DICOM (OverflowError)" in said
    assert f"{paths[2]}: not readable as DICOM (ValueError)" in said
    assert quiet(find_series, tmp_path, workers=1)[0].paths == [paths[0]]
    for exc in (fastdicom.UnsafePathError("leaves its root"), TypeError("a bug")):
        failures[str(paths[1])] = exc
        with pytest.raises(type(exc)):
            quiet(find_series, tmp_path, workers=1)


def test_load_series_checks_the_frame_count_of_a_header_it_is_given(tmp_path):
    """A SeriesInfo whose header declares more frames than its file holds (made or changed
    after the scan): load_series raises naming the file, not a MemoryError."""
    path = write_multiframe(tmp_path / "mf.dcm", 3, 4, 4)
    info = find_series(path)[0]
    info.instances[0].n_frames = 10 ** 12
    with pytest.raises(fastdicom.PixelDataError, match="NumberOfFrames") as exc:
        load_series(info)
    assert exc.value.path == str(path)


@pytest.mark.parametrize("workers", [1, 2])
def test_encapsulated_multiframe_read_once_per_thread(tmp_path, monkeypatch, workers):
    """The frames of an RLE multi-frame file are decoded from one read of its header per
    thread (it was read again for every frame: 25x slower than pixel_array on 500 frames)."""
    pydicom = pytest.importorskip("pydicom")
    import fastdicom.filereader as fr
    path = write_multiframe(tmp_path / "mf.dcm", 40, 16, 12, dtype=np.int16,
                            transfer_syntax=RLE_LOSSLESS, functional_groups=True)
    info = find_series(path)[0]
    reads = []
    real = fr.dcmread
    monkeypatch.setattr(fr, "dcmread", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    vol = load_series(info, workers=workers)
    assert 1 <= len(reads) <= workers + 1
    ref = pydicom.dcmread(str(path)).pixel_array
    flat = vol.array.reshape((-1,) + vol.array.shape[-2:])
    assert np.array_equal(flat, ref[np.asarray(vol.frame_indices).reshape(-1)])


def test_decoded_volume_within_decode_budget(tmp_path):
    rle = write_ct_series(tmp_path / "rle", 3, 16, 16, transfer_syntax=RLE_LOSSLESS)
    native = write_ct_series(tmp_path / "native", 3, 16, 16)
    small = fastdicom.Limits(decode_budget=3 * 16 * 16 * 2 - 1)
    with pytest.raises(fastdicom.LimitExceededError, match="decode_budget"):
        load_series(tmp_path / "rle", limits=small)
    assert np.array_equal(load_series(tmp_path / "rle").array, pydicom_stack(rle))
    # native frames are read from bytes that are in the files: no decode budget
    assert np.array_equal(load_series(tmp_path / "native", limits=small).array,
                          pydicom_stack(native))
    with pytest.raises(TypeError, match="Limits"):
        load_series(tmp_path / "rle", limits=8 << 30)


def test_one_slice_short_of_bytes(tmp_path):
    """A slice whose pixel data is shorter than its frame (cut before the scan): raise names
    it before anything is read; skip zero-fills it and reads the others."""
    paths = write_ct_series(tmp_path, 4, 16, 16, shuffle_names=False)
    with open(paths[2], "r+b") as fh:
        fh.truncate(os.path.getsize(paths[2]) - 10)
    info = quiet(find_series, tmp_path)[0]
    assert info.num_instances == 4
    with pytest.raises(fastdicom.PixelDataError) as exc:
        load_series(info)
    assert exc.value.path == str(paths[2])
    with pytest.warns(DicomWarning, match="zero-filled"):
        vol = load_series(info, errors="skip")
    assert [Path(p) for p, _ in vol.skipped] == [paths[2]]
    ref = pydicom_stack([paths[0], paths[1], paths[3]])
    assert np.array_equal(vol.array[[0, 1, 3]], ref) and not vol.array[2].any()


def test_big_endian_and_implicit(tmp_path):
    for ts in ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2"):
        d = tmp_path / ts
        paths = write_ct_series(d, 4, 16, 16, transfer_syntax=ts)
        assert np.array_equal(load_series(d).array, pydicom_stack(paths))


# ---------------------------------------------------------------------------------------------
# references: SimpleITK and highdicom

@pytest.mark.parametrize("orientation", [(1, 0, 0, 0, 1, 0), oblique(25, -15)])
def test_against_simpleitk(tmp_path, orientation):
    sitk = pytest.importorskip("SimpleITK")
    write_ct_series(tmp_path, 8, 20, 28, orientation=orientation, spacing=(0.9, 0.7),
                    slice_thickness=1.5, instance_number_order="random")
    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(tmp_path))
    reader.SetFileNames(names)
    img = reader.Execute()
    ref = sitk.GetArrayFromImage(img)         # (slice, row, column), rescaled by ITK
    d = np.asarray(img.GetDirection()).reshape(3, 3)
    sx, sy, sz = img.GetSpacing()
    ref_aff = np.eye(4)
    ref_aff[:3, 0] = d[:, 2] * sz
    ref_aff[:3, 1] = d[:, 1] * sy
    ref_aff[:3, 2] = d[:, 0] * sx
    ref_aff[:3, 3] = img.GetOrigin()
    ref, ref_aff = canonical(ref, ref_aff)
    vol = load_series(tmp_path, rescale=True)
    assert np.allclose(vol.affine, ref_aff, atol=1e-3)
    assert np.array_equal(vol.array, ref.astype(np.float32))


def test_against_highdicom(tmp_path):
    hd = pytest.importorskip("highdicom")
    pydicom = pytest.importorskip("pydicom")
    if not hasattr(hd, "get_volume_from_series"):
        pytest.skip("highdicom without get_volume_from_series")
    paths = write_ct_series(tmp_path, 6, 16, 24, orientation=oblique(10, 40), spacing=(0.5, 0.8))
    dss = [pydicom.dcmread(str(p)) for p in paths]
    ref = hd.get_volume_from_series(dss, dtype=np.float32)
    arr, aff = canonical(np.asarray(ref.array), np.asarray(ref.affine))
    vol = load_series(tmp_path, rescale=True)
    assert np.allclose(vol.affine, aff, atol=1e-3)
    assert np.array_equal(vol.array, arr)


# ---------------------------------------------------------------------------------------------
# multi-frame

def test_synthetic_multiframe_functional_groups(tmp_path):
    path = write_multiframe(tmp_path / "mf.dcm", 5, 12, 10, dtype=np.int16,
                            functional_groups=True, slice_thickness=2.0, spacing=(0.5, 0.25))
    stacks = find_series(path)
    assert len(stacks) == 1 and stacks[0].shape == (5, 12, 10)
    vol = load_series(stacks[0])
    exp = np.stack([multiframe_frame(i, 5, 12, 10, dtype=np.int16) for i in range(5)])
    assert np.array_equal(vol.array, exp)
    assert np.allclose(vol.spacing, (2.0, 0.5, 0.25))
    assert np.allclose(vol.affine[:3, 0], [0, 0, 2.0])


@pytest.mark.parametrize("tag", [0x00209116, 0x52009230, 0x52009229])
def test_multiframe_functional_group_not_a_sequence(tmp_path, tag):
    """A functional group (or its container) whose VR was damaged into OB holds bytes, not
    items: it counts as absent; it used to raise AttributeError ('int' has no 'get')."""
    path = write_multiframe(tmp_path / "mf.dcm", 4, 6, 5, dtype=np.int16,
                            functional_groups=True)
    data = path.read_bytes()
    head = (tag >> 16).to_bytes(2, "little") + (tag & 0xFFFF).to_bytes(2, "little") + b"SQ"
    if data.count(head) != 1:
        pytest.skip(f"{tag:08X} is not written once by write_multiframe")
    path.write_bytes(data.replace(head, head[:4] + b"OB"))
    stacks = quiet(find_series, path)
    assert [s.shape for s in stacks] == [(4, 6, 5)]
    vol = quiet(load_series, stacks[0])
    exp = np.stack([multiframe_frame(i, 4, 6, 5, dtype=np.int16) for i in range(4)])
    assert np.array_equal(vol.array, exp)
    assert np.isfinite(vol.affine).all()


def test_same_series_uid_in_two_studies_named_by_study(tmp_path):
    """stack= picks a stack of one series; a series UID found in two studies is two series."""
    for study in ("1.2.3.1", "1.2.3.2"):
        write_ct_series(tmp_path / study, 3, 4, 4, seed=0, file_prefix=f"S{study[-1]}")
        for p in (tmp_path / study).iterdir():
            ds = fastdicom.dcmread(p)
            old = str(ds.StudyInstanceUID).encode()
            new = study.encode().ljust(len(old), b"9")[:len(old)]
            p.write_bytes(p.read_bytes().replace(old, new))
    stacks = find_series(tmp_path)
    assert len(stacks) == 2 and len({s.SeriesInstanceUID for s in stacks}) == 1
    with pytest.raises(SeriesError, match="several series.*study 1.2.3.1.*study 1.2.3.2"):
        load_series(tmp_path, stack=0)


def test_corpus_enhanced_multiframe():
    corpus = need_corpus()
    pydicom = pytest.importorskip("pydicom")
    for rel in ("pydicom-data/eCT_Supplemental.dcm", "fo-dicom/Tests/MOVEKNEE.dcm",
                "dcmqi/segmentations/23x38x3/multiframe/mf.dcm", "fo-dicom/Tests/mr_brucker.dcm"):
        path = corpus / rel
        if not path.exists():
            continue
        stacks = quiet(find_series, path)
        assert len(stacks) == 1, rel
        vol = quiet(load_series, stacks[0])
        ref = pydicom.dcmread(str(path)).pixel_array
        flat = vol.array.reshape((-1,) + vol.array.shape[-2:])
        idx = np.asarray(vol.frame_indices).reshape(-1)
        assert np.array_equal(flat, ref[idx]), rel
        assert sorted(idx.tolist()) == list(range(ref.shape[0])), rel


def test_corpus_dicomdir_series():
    corpus = need_corpus()
    pydicom = pytest.importorskip("pydicom")
    dicomdir = corpus / "pydicom/test_files/dicomdirtests/DICOMDIR"
    stacks = quiet(find_series, dicomdir)
    assert sum(s.num_instances for s in stacks) == 31
    for s in stacks:
        vol = quiet(load_series, s, errors="skip")
        ref = np.stack([pydicom.dcmread(str(p)).pixel_array for p in vol.paths])
        ok = [k for k in range(len(vol.paths)) if str(vol.paths[k]) not in
              {p for p, _ in vol.skipped}]
        assert np.array_equal(vol.array[ok], ref[ok])


# ---------------------------------------------------------------------------------------------
# CLI

def test_cli_series_and_load(tmp_path, capsys):
    write_ct_series(tmp_path / "s", 4, 8, 8)
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    args = parser.parse_args(["series", str(tmp_path / "s")])
    assert args.func(args) == 0
    uid = find_series(tmp_path / "s")[0].SeriesInstanceUID
    assert uid in capsys.readouterr().out
    out = tmp_path / "v.npz"
    args = parser.parse_args(["load", str(tmp_path / "s"), "--series", uid, "-o", str(out)])
    assert args.func(args) == 0
    z = np.load(out)
    assert z["array"].shape == (4, 8, 8) and z["affine"].shape == (4, 4)
    assert np.allclose(z["spacing"], (1.25, 0.7, 0.7))
    # .npy: the array alone, at exactly that path (it used to be written to "v.npy.npz")
    npy = tmp_path / "v.npy"
    args = parser.parse_args(["load", str(tmp_path / "s"), "-o", str(npy)])
    assert args.func(args) == 0
    assert np.array_equal(np.load(npy), z["array"]) and not (tmp_path / "v.npy.npz").exists()
    args = parser.parse_args(["load", str(tmp_path / "s"), "-o", str(tmp_path / "v.nii")])
    assert args.func(args) == 2
    assert "-o must name a .npz" in capsys.readouterr().err
    assert not (tmp_path / "v.nii").exists() and not (tmp_path / "v.nii.npz").exists()
    # nothing to load: the message says why (it said "no matching stack" for both)
    (tmp_path / "empty").mkdir()
    args = parser.parse_args(["load", str(tmp_path / "empty"), "-o", str(npy)])
    with pytest.raises(SeriesError, match="no image series found in"):
        args.func(args)
    args = parser.parse_args(["load", str(tmp_path / "s"), "--stack", "3", "-o", str(npy)])
    with pytest.raises(SeriesError, match=f"no stack matches --series/--stack; found: {uid} "
                                          "stack 0"):
        args.func(args)


# ---------------------------------------------------------------------------------------------
# the nogil fast paths (header extractor, bulk slice reader) agree with the general path

def _fast_headers(paths):
    _series = pytest.importorskip("fastdicom._series")
    from fastdicom.series import InstanceHeader
    return _series.scan_headers([str(p) for p in paths], InstanceHeader)


@pytest.mark.parametrize("ts", ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
def test_fast_header_scan_matches_general_path(tmp_path, ts):
    import dataclasses
    from fastdicom.series import scan_instance
    paths = write_ct_series(tmp_path, 5, 16, 16, transfer_syntax=ts, orientation=oblique(),
                            bits_stored=12)
    for p, h in zip(paths, _fast_headers(paths)):
        assert h is not False, f"{p}: fast path not taken"
        assert dataclasses.asdict(h) == dataclasses.asdict(scan_instance(p))


def test_fast_header_scan_matches_general_path_on_corpus():
    """Every corpus file the fast extractor accepts gives exactly the general path's header;
    files the general path rejects are never accepted."""
    import dataclasses
    from fastdicom.series import scan_instance
    files = sorted(p for p in need_corpus().rglob("*") if p.is_file())
    fast = _fast_headers(files)
    taken = 0
    for p, h in zip(files, fast):
        if h is False:
            continue
        try:
            ref = quiet(scan_instance, p)
        except (fastdicom.DicomError, OSError) as exc:
            pytest.fail(f"{p}: fast path accepted a file the general path rejects ({exc})")
        if h is None or ref is None:
            assert h is ref, p
            continue
        taken += 1
        assert dataclasses.asdict(h) == dataclasses.asdict(ref), p
    assert taken > 0


def test_fast_header_scan_falls_back(tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI")   # truncated meta
    missing = tmp_path / "missing.dcm"
    paths = write_ct_series(tmp_path / "be", 1, 8, 8, transfer_syntax="1.2.840.10008.1.2.2")
    assert _fast_headers([junk, missing, paths[0]]) == [False, False, False]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_bulk_read_signed_12_bit_and_workers(tmp_path, workers):
    paths = write_ct_series(tmp_path, 37, 12, 10, bits_stored=12)
    vol = load_series(tmp_path, workers=workers)
    assert np.array_equal(vol.array, pydicom_stack(paths))
    assert vol.paths == paths


def test_bulk_read_missing_file_raise_or_skip(tmp_path):
    paths = write_ct_series(tmp_path, 5, 8, 8, shuffle_names=False)
    info = find_series(tmp_path)[0]
    paths[1].unlink()
    with pytest.raises(FileNotFoundError):
        load_series(info)
    with pytest.warns(DicomWarning, match="zero-filled"):
        vol = load_series(info, errors="skip", workers=2)
    assert [Path(p) for p, _ in vol.skipped] == [paths[1]]
    assert not vol.array[1].any() and vol.array[0].any()


def test_explicit_list_counts_each_file_once(tmp_path):
    """A list of paths naming the same files several ways (through a symlinked folder, a
    symlink to a file, a doubled separator, and inside a folder also listed) finds each
    instance once; a listed file that is missing or not DICOM is warned about, a folder in
    the list is walked."""
    real = tmp_path / "real"
    paths = write_ct_series(real, 70, 8, 8, seed=9)
    (tmp_path / "via").symlink_to(real, target_is_directory=True)
    (tmp_path / "one.dcm").symlink_to(paths[0])
    (tmp_path / "junk.dcm").write_bytes(b"not dicom")
    more = write_ct_series(tmp_path / "more", 5, 8, 8, seed=10)
    listed = [str(p) for p in paths]
    listed += [str(tmp_path / "via" / Path(p).name) for p in paths[:20]]
    listed += [str(tmp_path / "one.dcm"), str(real) + "//" + Path(paths[1]).name,
               str(tmp_path / "junk.dcm"), str(tmp_path / "missing.dcm"),
               str(tmp_path / "more"), str(tmp_path / "more" / Path(more[0]).name)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stacks = find_series(listed)
    found = sorted(str(p) for s in stacks for p in s.paths)
    assert sum(s.num_instances for s in stacks) == 75
    assert len({os.path.realpath(p) for p in found}) == 75
    assert not any(s.duplicates for s in stacks)
    said = " ".join(str(w.message) for w in caught)
    assert "junk.dcm" in said and "missing.dcm" in said
    assert "duplicate" not in said


def test_spacing_that_is_not_positive_is_replaced_with_a_warning():
    pos = [(0.0, 0.0, float(i)) for i in range(4)]
    for bad in ((0, 0), (-0.7, 0.7), (0.7, float("nan")), (float("inf"), 1)):
        with pytest.warns(DicomWarning, match="not positive"):
            g = compute_geometry(pos, (1, 0, 0, 0, 1, 0), bad)
        assert g.spacing[1:] == (1.0, 1.0)
        assert np.linalg.det(g.affine[:3, :3]) != 0
    g = compute_geometry(pos, (1, 0, 0, 0, 1, 0), (0.5, 0.25), warn=False)
    assert g.spacing[1:] == (0.5, 0.25) and not g.issues


def test_non_finite_or_short_geometry_falls_back_to_instance_numbers():
    # NaN/inf positions or orientation (a DS of "nan" parses), or an orientation of five
    # values, are no geometry: ordered by InstanceNumber with a warning, never a NaN spacing
    good = (1, 0, 0, 0, 1, 0)
    nan, inf = float("nan"), float("inf")
    for pos, ori in ((((0, 0, 0), (0, 0, nan), (0, 0, 2)), good),
                     (((0, 0, 0), (0, 0, inf), (0, 0, 2)), good),
                     (((0, 0, 0), (0, 0, 1), (0, 0, 2)), (1, 0, 0, 0, nan, 0)),
                     (((0, 0, 0), (0, 0, 1), (0, 0, 2)), (1, 0, 0, 0, 1)),
                     (((0, 0, 0), (0, 0), (0, 0, 2)), good)):
        with pytest.warns(DicomWarning, match="ordered by InstanceNumber"):
            g = compute_geometry(pos, ori, (1, 1), instance_numbers=[3, 1, 2])
        assert g.order == [1, 2, 0]
        assert np.isfinite(g.affine).all() and all(math.isfinite(s) for s in g.spacing)


@pytest.mark.parametrize("workers", [1, 2])
def test_rescale_rounds_once_to_float32(tmp_path, workers):
    # per-slice slope/intercept (as PET writes them) where the intercept cancels most of the
    # product: the float32 volume must equal pydicom's float64 modality LUT rounded once
    # (rounding slope * x first was off by 5e-5 at 0.3)
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.pixels import apply_modality_lut
    rng = np.random.default_rng(5)
    slopes = ["0.5", "0.123457", "2.5", "0.5"]
    icpts = ["-299.7", "-1024.3", "0", "-299.7"]
    paths = []
    for k, (sl, ic) in enumerate(zip(slopes, icpts)):
        ds = Dataset()
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.128"
        ds.SOPInstanceUID = f"1.2.3.4.{k}"
        ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.Modality = "1.2.3.4", "1.2.3", "PT"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, 2.0 * k]
        ds.PixelSpacing, ds.InstanceNumber = [1, 1], k + 1
        ds.Rows = ds.Columns = 6
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.RescaleSlope, ds.RescaleIntercept = sl, ic
        pix = rng.integers(0, 9000, (6, 6)).astype(np.uint16)
        pix[0, 0] = 600
        ds.PixelData = pix.tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
        p = tmp_path / f"pt{k}.dcm"
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    expected = np.stack([apply_modality_lut(d.pixel_array, d)
                         for d in (pydicom.dcmread(p) for p in paths)])
    assert expected.dtype == np.float64 and expected[0, 0, 0] == pytest.approx(0.3)
    vol = load_series(tmp_path, rescale=True, workers=workers)
    assert vol.array.dtype == np.float32
    assert np.array_equal(vol.array, expected.astype(np.float32))
    v64 = load_series(tmp_path, rescale=True, dtype=np.float64, workers=workers)
    assert np.array_equal(v64.array, expected)


def test_listed_paths_are_normalised_as_pathlib_does():
    # the fast path of the input expansion must give pathlib's spelling for every str
    from hypothesis import given, settings, strategies as st
    from fastdicom.series import _normalised

    @settings(max_examples=400, deadline=None)
    @given(st.text(alphabet="/.ab", max_size=12))
    def check(s):
        assert _normalised(s) == os.fspath(Path(s))
    check()
    for s in ("", ".", "./", "/", "//", "///a", "a//b", "a/./b", "a/.", "./a", "a/", "/a/../b",
              "/a/..b/c", "..", "../a"):
        assert _normalised(s) == os.fspath(Path(s)), s
    assert _normalised(Path("a//b/")) == "a/b"


def test_listed_spellings_of_one_file_are_one_instance(tmp_path, monkeypatch):
    # a file listed under several spellings (relative, "./", "//", through a symlinked
    # folder) is one instance, named as first listed; ".." is resolved
    write_ct_series(tmp_path / "s", 3, 8, 8)
    names = sorted(os.listdir(tmp_path / "s"))
    os.symlink(tmp_path / "s", tmp_path / "link")
    monkeypatch.chdir(tmp_path)
    listed = [f"s/{names[0]}", f"./s/{names[0]}", f"{tmp_path}//s/{names[0]}",
              f"link/{names[0]}", f"s/../s/{names[1]}", str(tmp_path / "s" / names[1]),
              str(tmp_path / "s" / names[2])]
    stacks = find_series(listed, workers=1)
    assert len(stacks) == 1
    got = sorted(h.path for h in stacks[0].instances)
    assert got == sorted([f"s/{names[0]}", f"s/../s/{names[1]}",
                          str(tmp_path / "s" / names[2])])


def test_walked_files_and_folders_that_cannot_be_read_are_warned(tmp_path, monkeypatch):
    # a file of a walk that cannot be read (here: gone between the walk and the read) and a
    # folder that cannot be listed may hold slices: one warning each, not a silent gap
    import fastdicom.series as S
    write_ct_series(tmp_path / "a", 3, 8, 8, seed=1)
    write_ct_series(tmp_path / "b", 2, 8, 8, seed=1)
    (tmp_path / "notes.txt").write_text("not DICOM")
    real_scandir, real_walk = os.scandir, S._walk_dir

    def scandir(folder="."):
        if os.fspath(folder).endswith("/b"):
            raise PermissionError(13, "Permission denied", os.fspath(folder))
        return real_scandir(folder)

    def walk(top, recursive, out, unlisted):
        real_walk(top, recursive, out, unlisted)
        out.append((str(tmp_path / "a" / "gone.dcm"), str(tmp_path / "a" / "gone.dcm")))
    monkeypatch.setattr(S.os, "scandir", scandir)
    monkeypatch.setattr(S, "_walk_dir", walk)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stacks = find_series(tmp_path, workers=1)
    assert [len(s.instances) for s in stacks] == [3]
    texts = sorted(str(w.message) for w in caught if issubclass(w.category, DicomWarning))
    assert len(texts) == 2, texts
    assert texts[0].startswith("1 file could not be read and is left out (")
    assert "gone.dcm: FileNotFoundError" in texts[0]
    assert texts[1].startswith("1 folder could not be listed and is left out (")
    assert "/b: PermissionError: Permission denied" in texts[1]
    # the file that is not DICOM is no warning
    assert not any("notes.txt" in t for t in texts)


def test_multiframe_file_to_decode_is_read_once_per_thread(tmp_path, monkeypatch):
    # the frame-table check, the dtype probe and the calling thread's frames share one read
    # of the file's header (the check and the frames were a full dcmread each)
    import fastdicom.filereader as fr
    path = write_multiframe(tmp_path / "mf.dcm", 6, 16, 12, transfer_syntax=RLE_LOSSLESS)
    want = fastdicom.dcmread(path).pixel_array
    info = find_series(path)[0]
    reads = []
    real = fr.dcmread

    def counting(*a, **k):
        reads.append(a[0])
        return real(*a, **k)
    monkeypatch.setattr(fr, "dcmread", counting)
    vol = load_series(info, workers=1)
    assert len(reads) == 1
    assert vol.array.shape == want.shape
    assert sorted(map(bytes, vol.array)) == sorted(map(bytes, want))
    reads.clear()
    vol2 = load_series(info, workers=2)
    assert len(reads) <= 3        # at most once per thread that decodes frames
    assert np.array_equal(vol2.array, vol.array)


def _pydicom_instance(sop_class: str, series_uid: str, modality: str):
    """A pydicom data set with its file meta (explicit VR little endian) and UIDs."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = sop_class
    fm.MediaStorageSOPInstanceUID = uid = generate_uid()
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = fm
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = "1.2.3", series_uid, modality
    return ds


def _pydicom_slices(directory, n, *, photometric="MONOCHROME2", samples=1, planar=0,
                    bits=(16, 16), signed=0, pixels=None, compress=(), frames=None):
    """``n`` slices written by pydicom (an independent writer), pixels from ``pixels(k)``."""
    pytest.importorskip("pydicom")
    from pydicom.uid import RLELossless
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        ds = _pydicom_instance("1.2.840.10008.5.1.4.1.1.7", "1.2.3.4", "OT")
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0.0, 0.0, 2.0 * k]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [1.0, 1.0]
        ds.Rows, ds.Columns = 8, 6
        ds.SamplesPerPixel, ds.PhotometricInterpretation = samples, photometric
        if samples > 1:
            ds.PlanarConfiguration = planar
        ds.BitsAllocated, ds.BitsStored = bits
        ds.HighBit, ds.PixelRepresentation = bits[1] - 1, signed
        if frames:
            ds.NumberOfFrames = frames
        ds.PixelData = pixels(k)
        if k in compress:
            ds.compress(RLELossless)
        path = directory / f"{k:02d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def test_rgb_planar_configuration_1_volume_is_interleaved(tmp_path):
    # planar data (RRR... GGG... BBB...) is decoded to (rows, cols, 3) as pixel_array is,
    # not copied raw into the volume's interleaved slots
    rgb = [np.random.RandomState(k).randint(0, 255, (8, 6, 3)).astype(np.uint8)
           for k in range(3)]
    paths = _pydicom_slices(tmp_path / "s", 3, photometric="RGB", samples=3, planar=1,
                            bits=(8, 8), pixels=lambda k: rgb[k].transpose(2, 0, 1).tobytes())
    for workers in (1, 2):
        vol = quiet(load_series, tmp_path / "s", workers=workers)
        np.testing.assert_array_equal(vol.array, np.stack(rgb))
        np.testing.assert_array_equal(vol.array, pydicom_stack(paths))


def test_ybr_full_native_and_rle_slices_share_one_colour_space(tmp_path):
    # native YBR_FULL slices are converted to RGB like the RLE one (and like pixel_array)
    ybr = [np.random.RandomState(k).randint(0, 255, (8, 6, 3)).astype(np.uint8)
           for k in range(3)]
    paths = _pydicom_slices(tmp_path / "s", 3, photometric="YBR_FULL", samples=3,
                            bits=(8, 8), pixels=lambda k: ybr[k].tobytes(), compress=(1,))
    vol = quiet(load_series, tmp_path / "s")
    np.testing.assert_array_equal(vol.array, pydicom_stack(paths))
    assert not np.array_equal(vol.array[0], ybr[0])


@pytest.mark.parametrize("bits", [(16, 12), (8, 6), (32, 20)])
def test_unsigned_bits_above_high_bit_are_cleared(tmp_path, bits):
    # unsigned samples with bits set above High Bit (overlay bits, garbage): the volume holds
    # the stored bits only, as pixel_array does, on the bulk reader (1 frame per file, no
    # rescale), the per-frame reads (rescale) and a multi-frame file alike
    dtype = {8: "<u1", 16: "<u2", 32: "<u4"}[bits[0]]
    high = ((1 << bits[0]) - 1) ^ ((1 << bits[1]) - 1)

    def pixels(k):
        return ((np.arange(48, dtype=dtype) + k) | high).tobytes()
    paths = _pydicom_slices(tmp_path / "s", 3, bits=bits, pixels=pixels)
    ref = pydicom_stack(paths)
    assert ref.max() < 1 << bits[1]
    for workers in (1, 2):
        np.testing.assert_array_equal(quiet(load_series, tmp_path / "s", workers=workers).array,
                                      ref)
        np.testing.assert_array_equal(
            quiet(load_series, tmp_path / "s", workers=workers, rescale=True).array, ref)
    mf = _pydicom_slices(tmp_path / "m", 1, bits=bits, frames=3,
                         pixels=lambda k: b"".join(pixels(j) for j in range(3)))
    pydicom = pytest.importorskip("pydicom")
    np.testing.assert_array_equal(quiet(load_series, mf).array,
                                  pydicom.dcmread(str(mf[0])).pixel_array)


def test_read_slices_clears_or_extends_the_bits_above_high_bit(tmp_path):
    from fastdicom import _series
    raw = np.array([0xF001, 0x0FFF, 0x0800, 0x8000], "<u2")
    path = tmp_path / "raw"
    path.write_bytes(b"x" * 10 + raw.tobytes())
    for signed, want in ((False, [0x001, 0xFFF, 0x800, 0x000]),
                         (True, [0x001, -1, -2048, 0])):
        dest = np.zeros((1, 8), np.uint8)
        got = np.zeros(1, np.int64)
        _series.read_slices([os.fsencode(path)], np.array([10], np.int64),
                            np.array([-1], np.int64), dest, 0, 1, got, 2, 4, signed=signed)
        assert got[0] == 8
        assert dest.view("<i2" if signed else "<u2")[0].tolist() == want


def test_a_dicom_file_cut_short_in_its_header_is_left_out_with_a_warning(tmp_path):
    # a copy cut short before its Pixel Data is damaged DICOM, not a file without an image:
    # the walk leaves it out with a warning (a slice could be missing without one)
    paths = write_ct_series(tmp_path, 4, 8, 8)
    last = sorted(paths)[-1]
    data = Path(last).read_bytes()
    Path(last).write_bytes(data[:400])
    (tmp_path / "notes.txt").write_text("not DICOM")       # not DICOM: no warning
    with pytest.warns(DicomWarning, match=r"1 DICOM file is damaged and is left out .*"
                                          r"TruncatedError") as caught:
        vol = load_series(tmp_path)
    assert vol.shape[0] == 3
    assert not any("notes.txt" in str(w.message) for w in caught)
    with pytest.raises(fastdicom.TruncatedError):
        fastdicom.series.scan_instance(last)


def test_positions_off_the_line_of_the_stack_are_an_issue(tmp_path):
    # two fields of view interleaved (x alternates 0 / 30 mm): the affine cannot give every
    # slice's position, so the stack is not regular and says why
    _write_positions(tmp_path / "s", [(30.0 * (k % 2), 0.0, 2.0 * k) for k in range(5)])
    with pytest.warns(DicomWarning, match=r"not on one line: sorted slice 1 lies 30 mm"):
        vol = load_series(tmp_path / "s")
    assert not vol.geometry.regular
    assert any("not on one line" in m for m in vol.geometry.issues)
    # within a tenth of a pixel of the line (rounded positions): no issue
    geo = compute_geometry([(0.0004 * (k % 2), 0.0, 2.0 * k) for k in range(5)],
                           (1, 0, 0, 0, 1, 0), (0.5, 0.5), warn=False)
    assert geo.regular and not geo.issues


def test_pixel_spacings_within_tolerance_are_one_stack(tmp_path):
    # 0.78125 and 0.7812501 round to different 4-decimal keys: still one stack; a real
    # difference (0.8) still splits
    from fastdicom.series import SPACING_RELATIVE_TOLERANCE
    assert 1e-7 / 0.78125 < SPACING_RELATIVE_TOLERANCE < 0.02 / 0.8

    def write(directory, spacings):
        directory.mkdir()
        for k, sp in enumerate(spacings):
            write_file(directory / f"{k}.dcm", ct_instance_elements(
                rows=8, columns=8, index=k, n_slices=len(spacings), series_seed="sp",
                study_seed="sp", position=(0.0, 0.0, float(k)), spacing=sp))
    write(tmp_path / "a", [("0.78125", "0.78125")] * 2 + [("0.7812501", "0.78125")] +
          [("0.78125", "0.78125")])
    found = quiet(find_series, tmp_path / "a")
    assert [(s.stack, s.split_reason, s.shape[0]) for s in found] == [(0, None, 4)]
    write(tmp_path / "b", [("0.78125", "0.78125")] * 3 + [("0.8", "0.78125")])
    found = quiet(find_series, tmp_path / "b")
    assert [(s.split_reason, s.shape[0]) for s in found] == [("pixel spacing", 3),
                                                               ("pixel spacing", 1)]


def _enhanced(path, positions, orientations, spacing=(1.0, 1.0), slopes=None):
    """An enhanced MR instance written by pydicom: per-frame position and orientation."""
    pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    ds = _pydicom_instance("1.2.840.10008.5.1.4.1.1.4.1", "1.2.3.5", "MR")
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 8, 6, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.NumberOfFrames = len(positions)
    pm = Dataset()
    pm.PixelSpacing, pm.SliceThickness = list(spacing), 1.0
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([pm])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    items = []
    for p, o in zip(positions, orientations):
        item, pp, po = Dataset(), Dataset(), Dataset()
        pp.ImagePositionPatient, po.ImageOrientationPatient = list(p), list(o)
        item.PlanePositionSequence = Sequence([pp])
        item.PlaneOrientationSequence = Sequence([po])
        if slopes is not None:
            pv = Dataset()
            pv.RescaleSlope, pv.RescaleIntercept = slopes[len(items)], -10
            pv.RescaleType = "US"
            item.PixelValueTransformationSequence = Sequence([pv])
        items.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    ds.PixelData = np.arange(len(positions) * 48, dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_multiframe_frames_in_different_planes_or_positions_are_not_one_volume(tmp_path):
    ax, sag = (1.0, 0, 0, 0, 1.0, 0), (0, 1.0, 0, 0, 0, -1.0)
    (tmp_path / "a").mkdir()
    _enhanced(tmp_path / "a" / "x.dcm", [(0, 0, k) for k in range(4)], [ax, ax, sag, sag])
    with pytest.warns(DicomWarning, match="frames differ in orientation"):
        info = find_series(tmp_path / "a")
    assert len(info) == 1 and not info[0].geometry.regular
    with pytest.raises(SeriesError, match="frames differ in orientation"):
        load_series(info[0])
    with pytest.warns(DicomWarning, match="frames differ in orientation"):
        assert load_series(info[0], errors="skip").shape == (4, 8, 6)
    (tmp_path / "b").mkdir()
    _enhanced(tmp_path / "b" / "x.dcm", [(0, 0, 0), (0, 0, 1), (0, 0, 1), (0, 0, 2)], [ax] * 4)
    info = quiet(find_series, tmp_path / "b")
    assert info[0].geometry.duplicate_positions == [[1, 2]]
    with pytest.raises(SeriesError, match="2 frames share positions"):
        load_series(info[0])
    # the same frames in one plane, positions distinct: one regular volume, no warning
    (tmp_path / "c").mkdir()
    _enhanced(tmp_path / "c" / "x.dcm", [(0, 0, k) for k in (2, 0, 3, 1)], [ax] * 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DicomWarning)
        vol = load_series(tmp_path / "c")
    assert vol.geometry.regular
    assert vol.positions[:, 2].tolist() == [0, 1, 2, 3]


def test_multiframe_per_frame_rescale_differs_warns_without_rescale(tmp_path):
    # as for single-frame slices: raw values of frames rescaled differently are not
    # comparable, so loading them unrescaled says so; rescale=True applies each frame's
    ax = (1.0, 0, 0, 0, 1.0, 0)
    path = _enhanced(tmp_path / "x.dcm", [(0, 0, k) for k in range(3)], [ax] * 3,
                     slopes=[1, 2, 3])
    with pytest.warns(DicomWarning, match="differ between frames"):
        raw = load_series(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DicomWarning)
        vol = load_series(path, rescale=True)
    assert vol.rescale_slope.ravel().tolist() == [1, 2, 3]
    np.testing.assert_allclose(vol.array, raw.array * np.array([1, 2, 3])[:, None, None] - 10)


@pytest.mark.parametrize("ts", [RLE_LOSSLESS, DEFLATED_LE])
def test_decoded_slice_replaced_after_the_scan_is_an_error(tmp_path, ts):
    # a native slice of another size since the header scan raised; a decoded (RLE, deflated)
    # one was loaded silently: another image under the first scan's geometry and rescale
    from fastdicom.errors import PixelDataError
    from fastdicom.testing import _encode_pixels_for
    d = tmp_path / "s"
    write_ct_series(d, 4, 32, 32, transfer_syntax=ts)
    info = find_series(d)[0]
    victim = info.instances[1].path
    other = ct_instance_elements(rows=32, columns=32, index=3, n_slices=4, study_seed="zz",
                                 series_seed="zz")
    write_file(victim, _encode_pixels_for(ts, other, None, 16), transfer_syntax=ts)
    assert os.path.getsize(victim) != info.instances[1].file_size
    with pytest.raises(PixelDataError, match="changed since the header scan") as exc:
        load_series(info)
    assert exc.value.path == str(victim)
    with pytest.warns(DicomWarning, match="zero-filled"):
        v = load_series(info, errors="skip")
    assert [p for p, _ in v.skipped] == [str(victim)]
    assert not v.array[1].any() and v.array[0].any()


def test_slice_declaring_a_huge_size_that_fails_to_decode_touches_no_memory(tmp_path):
    # errors="skip" zero-filled the failed slice: a 2 KB deflated file declaring 12000 x
    # 12000 made the process write 288 MB (several such files: up to limits.decode_budget)
    import subprocess
    import sys
    els = [e for e in ct_instance_elements(rows=16, columns=20, index=0, n_slices=1)
           if e[0] not in (0x00280010, 0x00280011)]
    els = sorted(els + [(0x00280010, "US", 12000), (0x00280011, "US", 12000)],
                 key=lambda e: e[0])
    d = tmp_path / "s"
    d.mkdir()
    write_file(d / "a.dcm", els, transfer_syntax=DEFLATED_LE)
    code = f"""
import resource, warnings
import fastdicom
warnings.simplefilter("ignore")
s = fastdicom.find_series({str(d)!r})
assert [x.num_instances for x in s] == [1]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
v = fastdicom.load_series(s[0], errors="skip")
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
assert v.array.shape == (1, 12000, 12000) and len(v.skipped) == 1
assert "holds" in v.skipped[0][1] and not v.array[0, ::500, ::500].any()
print(grew)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) < 64 * 1024      # KiB: far below the 288 MB declared


def _enhanced_pairs(path, zs, temporal=None):
    n = len(zs)
    per_frame = []
    for k, z in enumerate(zs):
        item = [(0x00209113, "SQ", [[(0x00200032, "DS", [0, 0, z])]])]
        if temporal is not None:
            item.insert(0, (0x00209111, "SQ", [[(0x00209128, "UL", temporal[k])]]))
        per_frame.append(item)
    write_file(path, [
        (0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.2.1"), (0x00080018, "UI", "1.2.3.4.9"),
        (0x00080060, "CS", "CT"), (0x0020000D, "UI", "1.2.3.1"), (0x0020000E, "UI", "1.2.3.2"),
        (0x00280002, "US", 1), (0x00280004, "CS", "MONOCHROME2"), (0x00280008, "IS", n),
        (0x00280010, "US", 4), (0x00280011, "US", 4), (0x00280100, "US", 16),
        (0x00280101, "US", 16), (0x00280102, "US", 15), (0x00280103, "US", 0),
        (0x52009229, "SQ", [[(0x00209116, "SQ", [[(0x00200037, "DS", [1, 0, 0, 0, 1, 0])]]),
                             (0x00289110, "SQ", [[(0x00280030, "DS", [1, 1])]])]]),
        (0x52009230, "SQ", per_frame),
        (0x7FE00010, "OW", np.arange(n * 16, dtype="<u2").tobytes())])


def test_frames_sharing_positions_without_time_points_raise(tmp_path):
    # frames two per position with nothing telling the pairs apart (no TemporalPositionIndex,
    # no DimensionIndexValues) loaded silently as a 4-D volume; README: they raise as slices
    # sharing positions do, and errors="skip" loads them as they are
    zs = [0, 0, 1, 1, 2, 2]
    (tmp_path / "a").mkdir()
    _enhanced_pairs(tmp_path / "a" / "mf.dcm", zs)
    with pytest.raises(SeriesError, match="share positions"):
        quiet(load_series, tmp_path / "a")
    with pytest.warns(DicomWarning):
        v = load_series(tmp_path / "a", errors="skip")
    assert v.array.shape == (6, 4, 4)
    # the same frames as two time points: a (2, 3) grid, each time point in position order
    (tmp_path / "b").mkdir()
    _enhanced_pairs(tmp_path / "b" / "mf.dcm", zs, temporal=[1, 2, 1, 2, 1, 2])
    v = quiet(load_series, tmp_path / "b")
    assert v.array.shape == (2, 3, 4, 4) and v.geometry.regular
    frames = np.arange(6 * 16, dtype="<u2").reshape(6, 4, 4)
    assert np.array_equal(v.array[0], frames[[0, 2, 4]])
    assert np.array_equal(v.array[1], frames[[1, 3, 5]])


@pytest.mark.parametrize("sbs", [2.0, None])
def test_multiframe_without_per_frame_positions_keeps_its_root_geometry(tmp_path, sbs):
    # one ImagePositionPatient/ImageOrientationPatient for all frames (no functional
    # groups): the origin came back (0, 0, 0) and the step 1 mm, with no issue reported
    n, rows, cols = 4, 8, 10
    els = [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7.3"), (0x00080018, "UI", "1.2.3.4.5.6"),
           (0x00080060, "CS", "OT"), (0x00180050, "DS", 3.0),
           (0x0020000D, "UI", "1.2.3.1"), (0x0020000E, "UI", "1.2.3.2"),
           (0x00200032, "DS", [-10.0, 20.0, 35.0]), (0x00200037, "DS", [0, 1, 0, 0, 0, -1]),
           (0x00280002, "US", 1), (0x00280004, "CS", "MONOCHROME2"), (0x00280008, "IS", n),
           (0x00280010, "US", rows), (0x00280011, "US", cols), (0x00280030, "DS", [0.5, 0.25]),
           (0x00280100, "US", 16), (0x00280101, "US", 16), (0x00280102, "US", 15),
           (0x00280103, "US", 0),
           (0x7FE00010, "OW", np.arange(n * rows * cols, dtype="<u2").tobytes())]
    if sbs is not None:
        els.append((0x00180088, "DS", sbs))
    write_file(tmp_path / "mf.dcm", sorted(els, key=lambda e: e[0]))
    v = quiet(load_series, tmp_path)
    row, col = np.array([0, 1.0, 0]), np.array([0, 0, -1.0])
    normal = np.cross(row, col)
    step = sbs or 3.0            # else SliceThickness, reported
    assert np.allclose(v.origin, [-10, 20, 35])
    # the affine maps (frame, row, column) indices to patient coordinates
    for k, i, j in [(0, 0, 0), (3, 7, 9), (2, 1, 5)]:
        want = np.array([-10, 20, 35]) + k * step * normal + i * 0.5 * col + j * 0.25 * row
        assert np.allclose(v.affine @ [k, i, j, 1], [*want, 1]), (k, i, j)
    assert v.geometry.regular == (sbs is not None)
    assert bool(v.geometry.issues) == (sbs is None)
    assert np.array_equal(v.array.reshape(-1), np.arange(n * rows * cols))


@pytest.mark.parametrize("ts", [EXPLICIT_LE, RLE_LOSSLESS])
def test_rescale_applies_a_modality_lut_sequence_as_pydicom(tmp_path, ts):
    # rescale=True applied slope/intercept only: the stored values of slices whose Modality
    # LUT Sequence maps them came back unmapped
    pydicom = pytest.importorskip("pydicom")
    from pydicom.pixels import apply_modality_lut
    lut = (np.arange(4096) * 3 % 65536).astype("<u2")
    d = tmp_path / "s"
    d.mkdir()
    for i in range(3):
        a = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 17 + i) % 4096
        els = ct_instance_elements(rows=8, columns=8, index=i, n_slices=3, pixel_array=a,
                                   bits_stored=12)
        els = [e for e in els if e[0] not in (0x00281052, 0x00281053, 0x00281054)]
        if i != 1:      # (one slice without: its values stay as stored)
            els.append((0x00283000, "SQ", [[(0x00283002, "US", [4096, 0, 16]),
                                            (0x00283006, "OW", lut.tobytes())]]))
        from fastdicom.testing import _encode_pixels_for
        write_file(d / f"f{i}.dcm", _encode_pixels_for(ts, sorted(els, key=lambda e: e[0]),
                                                         None, 12), transfer_syntax=ts)
    v = quiet(load_series, d, rescale=True)
    ref = np.stack([apply_modality_lut(ds.pixel_array, ds) for ds in
                    (pydicom.dcmread(p) for p in v.paths)])
    assert np.array_equal(v.array, ref)
    assert not np.array_equal(v.array[0], pydicom.dcmread(v.paths[0]).pixel_array)
    raw = quiet(load_series, d)          # rescale=False: the stored values
    assert np.array_equal(raw.array, np.stack([pydicom.dcmread(p).pixel_array
                                               for p in raw.paths]))


@pytest.mark.parametrize("rescale", [False, True])
def test_native_slice_of_another_size_since_the_scan_names_the_change(tmp_path, rescale):
    # through the per-slice reader (rescale=True) the message was "file changed or pixel
    # data shorter than expected (-1 of 640 bytes)": a size sentinel shown as a byte count
    from fastdicom.errors import PixelDataError
    write_ct_series(tmp_path / "s", 3, 16, 20)
    info = find_series(tmp_path / "s")[0]
    victim = info.instances[2].path
    with open(victim, "ab") as fh:
        fh.write(b"\0" * 8)
    with pytest.raises(PixelDataError) as exc:
        quiet(load_series, info, rescale=rescale)
    assert "changed since the header scan (size differs)" in str(exc.value)
    assert "-1 of" not in str(exc.value) and exc.value.path == str(victim)


def test_slices_left_after_dropping_duplicates_keep_the_scan_step(tmp_path):
    # errors="skip" dropping slices at one position recomputed the geometry with
    # SliceThickness (2) where find_series had taken SpacingBetweenSlices (3)
    d = tmp_path / "s"
    d.mkdir()
    for i in range(3):
        els = ct_instance_elements(rows=8, columns=8, index=i, n_slices=3)
        els = [e for e in els if e[0] not in (0x00200032, 0x00180050, 0x00180088)] + [
            (0x00200032, "DS", [0, 0, 5]), (0x00180050, "DS", 2.0), (0x00180088, "DS", 3.0)]
        write_file(d / f"f{i}.dcm", sorted(els, key=lambda e: e[0]))
    info = quiet(find_series, d)[0]
    with pytest.warns(DicomWarning, match="duplicate positions"):
        v = load_series(info, errors="skip")
    assert v.array.shape[0] == 1
    assert v.spacing[0] == info.geometry.spacing[0] == 3.0


def test_volume_that_cannot_be_allocated_is_a_dicom_error(tmp_path):
    # a 718-byte RLE file declaring 65535 x 65535 pixels: load_series raised numpy's bare
    # MemoryError where the process may not map that much (here: RLIMIT_AS of 1 GiB)
    import struct
    import subprocess
    import sys
    from fastdicom.testing import encode_dataset, encode_file_meta
    header = struct.pack("<I", 1) + struct.pack("<15I", 64, *[0] * 14)
    els = [e for e in ct_instance_elements(rows=16, columns=16, index=0, n_slices=1)
           if e[0] not in (0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280102,
                           0x00280103, 0x7FE00010)]
    els += [(0x00280010, "US", 40000), (0x00280011, "US", 40000), (0x00280100, "US", 8),
            (0x00280101, "US", 8), (0x00280102, "US", 7), (0x00280103, "US", 0),
            (0x7FE00010, "OB", [b"", header + b"\x81\x07" * 10], {"undefined_length": True})]
    d = tmp_path / "s"
    d.mkdir()
    meta = encode_file_meta(transfer_syntax=RLE_LOSSLESS,
                            sop_class_uid="1.2.840.10008.5.1.4.1.1.2", sop_instance_uid="1.2.3.4")
    (d / "a.dcm").write_bytes(b"\0" * 128 + b"DICM" + meta +
                              encode_dataset(sorted(els, key=lambda e: e[0])))
    code = f"""
import resource, warnings
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
import fastdicom
from fastdicom.errors import LimitExceededError
warnings.simplefilter("ignore")
info = fastdicom.find_series({str(d)!r})[0]
try:
    fastdicom.load_series(info)
except LimitExceededError as exc:
    assert "cannot be allocated" in str(exc) and exc.tag == 0x7FE00010, exc
    print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert out.returncode == 0 and out.stdout.split()[-1:] == ["ok"], out.stderr[-2000:]


# ---------------------------------------------------------------------------------------------
# session 17: findings of an independent geometry check

@pytest.mark.parametrize("ts", [EXPLICIT_LE, EXPLICIT_BE])
def test_nul_after_a_position_value_reads_the_same_in_every_transfer_syntax(tmp_path, ts):
    """b"0\\x00\\\\0\\\\z": each value stripped of spaces and NULs, as the nogil header scan,
    dcmread's DS values and pydicom read it.  The general path (big endian here) stripped only
    the whole text, float("0\\x00") failed, and the series fell back to InstanceNumber (which
    runs against the positions here)."""
    from fastdicom.series import scan_instance
    pydicom = pytest.importorskip("pydicom")
    paths = []
    for k, z in enumerate([0.0, 2.0, 4.0]):
        els = []
        for t, vr, val in ct_instance_elements(rows=2, columns=2, index=k, n_slices=3,
                                               private=False, sequences=False):
            if t == 0x00200032:
                val = b"0\x00\\0\\" + str(z).encode()
            elif t == 0x00200013:
                val = 3 - k
            els.append((t, vr, val))
        paths.append(tmp_path / ("s%d.dcm" % k))
        write_file(paths[-1], els, transfer_syntax=ts)
    for p, z in zip(paths, [0.0, 2.0, 4.0]):
        assert [float(v) for v in pydicom.dcmread(p).ImagePositionPatient] == [0, 0, z]
        assert scan_instance(p).position == (0.0, 0.0, z)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DicomWarning)
        info = find_series(tmp_path)[0]
    assert info.geometry.ordering == "position" and info.geometry.issues == []
    assert info.paths == paths


def _multiframe_without_one_position(path, z, missing, spacing_between_slices=None):
    pydicom = pytest.importorskip("pydicom")
    n = len(z)
    write_multiframe(path, n, 4, 3, dtype=np.int16, functional_groups=True,
                     slice_thickness=2.0)
    ds = pydicom.dcmread(path)
    for k, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        item.PlanePositionSequence[0].ImagePositionPatient = [0, 0, z[k]]
    del ds.PerFrameFunctionalGroupsSequence[missing].PlanePositionSequence
    if spacing_between_slices is not None:
        ds.SpacingBetweenSlices = spacing_between_slices
    ds.save_as(path)
    return path


@pytest.mark.parametrize("sbs", [None, 2.0])
@pytest.mark.parametrize("missing", [0, 4])
def test_multiframe_with_a_frame_without_position_is_not_placed_silently(tmp_path, sbs,
                                                                          missing):
    """Frames at z = 8, 6, 4, 2, 0 with one PlanePositionSequence left out: all the known
    positions used to be dropped and the frames placed from ImagePositionPatient along +z
    (the known ones at z 10, 12, ... instead of 6, 4, ...), with no issue when the file had a
    SpacingBetweenSlices.  Now: frame order, not regular, the issue names the frames."""
    z = [8.0, 6.0, 4.0, 2.0, 0.0]
    path = _multiframe_without_one_position(tmp_path / "mf.dcm", z, missing, sbs)
    with pytest.warns(DicomWarning, match="1 of 5 frames have no position"):
        info = find_series(path)[0]
    g = info.geometry
    assert not g.regular and g.ordering == "frame"
    assert any("1 of 5 frames have no position" in i for i in g.issues)
    vol = quiet(load_series, info)
    assert list(vol.frame_indices) == list(range(5))
    exp = np.stack([multiframe_frame(i, 5, 4, 3, dtype=np.int16) for i in range(5)])
    assert np.array_equal(vol.array, exp)
    for k in range(5):
        if k == missing:
            assert np.isnan(vol.positions[k]).all()
        else:
            assert np.allclose(vol.positions[k], (0, 0, z[k]))
    if missing != 0:
        assert np.allclose(vol.origin, (0, 0, z[0]))


def _rotation(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    a, b, c, d = q
    return np.array([[a*a+b*b-c*c-d*d, 2*(b*c-a*d), 2*(b*d+a*c)],
                     [2*(b*c+a*d), a*a-b*b+c*c-d*d, 2*(c*d-a*b)],
                     [2*(b*d-a*c), 2*(c*d+a*b), a*a-b*b-c*c+d*d]])


@pytest.mark.parametrize("decimals", [2, 3])
def test_rounded_positions_of_an_untilted_oblique_stack_are_not_a_tilt(decimals):
    """ImagePositionPatient written with 2 or 3 decimals (common) moves an untilted oblique
    stack's slices sideways by the rounding alone: 0.01 degrees of tilt over a 1 mm step is
    0.17 um.  Most random orientations were reported as gantry tilted (issue, warning and a
    sheared affine); a shear now needs to move the last slice a twentieth of a pixel off the
    normal through the first."""
    rng = np.random.default_rng(17 + decimals)
    for _ in range(100):
        rot = _rotation(rng)
        r, c = rot[:, 0], rot[:, 1]
        normal = np.cross(r, c)
        n = int(rng.integers(2, 12))
        start = rng.uniform(-200, 200, 3)
        pos = [tuple(np.round(start + k * 1.0 * normal, decimals)) for k in range(n)]
        ori = tuple(np.round(np.concatenate([r, c]), 6))
        g = compute_geometry(pos, ori, (0.5, 0.5), warn=False)
        assert not g.tilted and g.gantry_tilt_degrees == 0.0
        # (2 decimals of 1 mm steps vary by up to 1.7 %: the rounding, not uneven spacing)
        assert not g.issues and g.regular and not g.uneven_spacing
        assert np.allclose(g.affine[:3, 0], normal, atol=0.02)


@pytest.mark.parametrize("decimals", [2, 3])
def test_rounded_positions_still_show_real_unevenness_and_gaps(decimals):
    """The tolerance for positions on a coarse decimal grid covers the rounding only: a step
    10 % longer than the others is still uneven, and a gap still a gap."""
    rng = np.random.default_rng(5 + decimals)
    extra = 0.05
    for _ in range(50):
        rot = _rotation(rng)
        normal = np.cross(rot[:, 0], rot[:, 1])
        ori = tuple(np.round(np.concatenate([rot[:, 0], rot[:, 1]]), 6))
        start = rng.uniform(-200, 200, 3)
        along = [0.0, 1.0, 2.0, 3.0 + 2 * extra, 4.0 + 2 * extra, 5.0 + 2 * extra]
        pos = [tuple(np.round(start + z * normal, decimals)) for z in along]
        g = compute_geometry(pos, ori, (0.5, 0.5), warn=False)
        assert g.uneven_spacing, g.issues
        gap = [tuple(np.round(start + z * normal, decimals)) for z in (0, 1, 2, 4, 5)]
        g = compute_geometry(gap, ori, (0.5, 0.5), warn=False)
        assert g.missing_slices == [(2, 1)] and not g.uneven_spacing, g.issues


def test_decimal_grid_of_positions():
    from fastdicom.series import _decimal_grid
    assert _decimal_grid(np.array([[-125.35, 12.3, 0.0]])) == pytest.approx(0.01)
    assert _decimal_grid(np.array([[1.0, -2.0, 3.0]])) == 1.0
    assert _decimal_grid(np.array([[0.1 * 3, 1.000001]])) == pytest.approx(1e-6)
    assert _decimal_grid(np.array([[1 / 3, 0.5]])) == 0.0
    assert _decimal_grid(np.array([[np.nan, 0.25]])) == pytest.approx(0.01)


@pytest.mark.parametrize("n, lateral_mm", [(3, 0.05), (40, 0.5), (200, 3.5)])
def test_a_small_real_tilt_is_still_a_tilt(n, lateral_mm):
    """A shear that moves the last slice sideways by a tenth of a pixel or more is kept."""
    step = lateral_mm / (n - 1)
    pos = [(0.0, step * k, 1.0 * k) for k in range(n)]
    g = compute_geometry(pos, (1, 0, 0, 0, 1, 0), (0.5, 0.5), warn=False)
    assert g.tilted
    assert g.gantry_tilt_degrees == pytest.approx(math.degrees(math.atan(step)), rel=1e-6)
    assert np.allclose(g.affine[:3, 0], (0, step, 1.0))


def _slices_of(tmp_path, arrays, *, signed, slope=1.0, intercept=0.0):
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, a in enumerate(arrays):
        els = []
        for t, vr, v in ct_instance_elements(rows=a.shape[0], columns=a.shape[1], index=k,
                                             n_slices=len(arrays), private=False,
                                             sequences=False):
            if t == 0x00280103:
                v = 1 if signed else 0
            elif t == 0x00281053:
                v = slope
            elif t == 0x00281052:
                v = intercept
            elif t == 0x7FE00010:
                v = a
            els.append((t, vr, v))
        paths.append(tmp_path / ("s%d.dcm" % k))
        write_file(paths[-1], els)
    return paths


@pytest.mark.parametrize("workers", [1, 2])
def test_integer_dtype_rounds_and_refuses_what_does_not_fit(tmp_path, workers):
    """An integer ``dtype`` used to truncate rescaled values toward zero (-1022.5 -> -1022,
    -0.5 -> 0, 1.5 -> 1) and wrap stored values that do not fit (uint16 60000 into int16:
    -5536), silently.  Now values are rounded half to even and a value that does not fit
    raises ValueError naming the file."""
    pydicom = pytest.importorskip("pydicom")
    rng = np.random.default_rng(5)
    arrays = [rng.integers(0, 4096, (6, 5)).astype(np.uint16) for _ in range(3)]
    arrays[1][0, :4] = (2045, 2047, 2049, 2051)      # 0.5 * x - 1024: -1.5, -0.5, 0.5, 1.5
    arrays[2][2, 3] = 60000
    paths = _slices_of(tmp_path / "u", arrays, signed=False, slope=0.5, intercept=-1024)
    ref = np.stack([pydicom.dcmread(p).pixel_array for p in paths]).astype(np.float64)
    vol = load_series(tmp_path / "u", rescale=True, dtype=np.int16, workers=workers)
    assert vol.array.dtype == np.int16
    assert np.array_equal(vol.array, np.rint(ref * 0.5 - 1024).astype(np.int16))
    assert list(vol.array[1, 0, :4]) == [-2, 0, 0, 2]
    raw = load_series(tmp_path / "u", dtype=np.int32, workers=workers)
    assert np.array_equal(raw.array, ref.astype(np.int32))
    with pytest.raises(ValueError, match=r"s2\.dcm.*60000.*int16"):
        load_series(tmp_path / "u", dtype=np.int16, workers=workers)
    with pytest.raises(ValueError, match="uint8"):
        load_series(tmp_path / "u", rescale=True, dtype=np.uint8, workers=workers)
    # a float dtype is a plain cast, as before
    f32 = load_series(tmp_path / "u", rescale=True, workers=workers)
    assert np.array_equal(f32.array, (ref * 0.5 - 1024).astype(np.float32))


@pytest.mark.parametrize("orientation, ok", [
    ((1, 0, 0, 0, 1, 0), True),
    ((0.866025, 0.5, 0, -0.5, 0.866025, 0), True),             # 6 decimals: fine
    ((1, 0, 0, 0.196, 0.98, 0), False),                         # 79 degrees apart
    ((2, 0, 0, 0, 2, 0), False),                                # not unit length
    ((1, 0, 0, 0, 0.99, 0), False)])
def test_orientation_that_is_not_orthonormal_is_an_issue(orientation, ok):
    """PS3.3 C.7.6.2.1.1: the cosines are unit vectors at right angles.  Other values were
    accepted silently (regular, no issue)."""
    pos = [(0, 0, float(k)) for k in range(4)]
    g = compute_geometry(pos, orientation, (1, 1), warn=False)
    flagged = [i for i in g.issues if "ImageOrientationPatient" in i]
    assert bool(flagged) == (not ok)
    if not ok:
        with pytest.warns(DicomWarning, match="not two unit vectors at right angles"):
            compute_geometry(pos, orientation, (1, 1))


@pytest.mark.parametrize("step, spacing", [(-2.5, 2.5), (2.5, 2.5), (float("nan"), 1.0),
                                           (float("inf"), 1.0), (0.0, 1.0)])
def test_single_slice_axis_is_the_normal_whatever_the_given_step(step, spacing):
    # a negative SpacingBetweenSlices turned a single slice's axis against the normal (of
    # the row and column directions, as for a stack) and a nan one made the affine nan
    g = compute_geometry([(10.0, 20.0, 30.0)], (0, 1, 0, 0, 0, -1), (0.5, 0.5),
                         slice_thickness=step, warn=False)
    normal = np.cross((0, 1, 0), (0, 0, -1))
    assert np.allclose(g.affine[:3, 0], normal * spacing)
    assert g.spacing[0] == pytest.approx(spacing)


@pytest.mark.parametrize("tag, keyword, want", [
    (0x00280008, "NumberOfFrames", 1), (0x00200013, "InstanceNumber", 2),
    (0x00281053, "RescaleSlope", 1.0), (0x00180088, "SpacingBetweenSlices", 1.0)])
def test_a_number_written_as_a_person_name_is_read_as_its_text(tmp_path, tag, keyword, want):
    # (a PersonName has a length and no items: series._num took it for a list and raised
    # TypeError out of find_series and load_series)
    from fastdicom.testing import write_file
    for i in range(2):
        els = [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"), (0x00080018, "UI", f"1.2.3.{i}"),
               (0x0020000D, "UI", "1.2.3"), (0x0020000E, "UI", "1.2.3.1"),
               (0x00200013, "IS", i + 1), (0x00200032, "DS", [0, 0, i]),
               (0x00200037, "DS", [1, 0, 0, 0, 1, 0]), (0x00280002, "US", 1),
               (0x00280004, "CS", "MONOCHROME2"), (0x00280010, "US", 4), (0x00280011, "US", 4),
               (0x00280030, "DS", [1, 1]), (0x00280100, "US", 16), (0x00280101, "US", 16),
               (0x00280102, "US", 15), (0x00280103, "US", 0),
               (0x7FE00010, "OW", np.arange(16, dtype=np.uint16).tobytes())]
        if i == 1:
            els = [e for e in els if e[0] != tag] + [(tag, "PN", str(want))]
        write_file(tmp_path / f"{i}.dcm", els)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DicomWarning)
        stacks = find_series(tmp_path, workers=1)
        volume = load_series(tmp_path, workers=1)
    assert [s.num_instances for s in stacks] == [2]
    assert volume.array.shape == (2, 4, 4)


@pytest.mark.parametrize("spacing, says", [
    (None, "no PixelSpacing (absent, or not two finite numbers)"),
    ((), "no PixelSpacing (absent, or not two finite numbers)"),
    ((0.5,), "PixelSpacing '0.5' is not two numbers (row\\column)"),
    ((0.5, 0.5, 0.5), "PixelSpacing '0.5\\0.5\\0.5' is not two numbers"),
    (("a", 1.0), "PixelSpacing 'a\\1.0' is not two numbers"),
    ((float("nan"), 1.0), "PixelSpacing nan\\1 is not positive"),
    ((0.0, 1.0), "PixelSpacing 0\\1 is not positive"),
])
def test_pixel_spacing_that_cannot_be_used_is_named(spacing, says):
    """compute_geometry with a PixelSpacing of one or three values (it raised IndexError for
    one), none, or non-finite or non-positive ones: 1 mm is assumed and the issue says why."""
    g = compute_geometry([(0, 0, 0), (0, 0, 1)], (1, 0, 0, 0, 1, 0), spacing, warn=False)
    assert g.spacing[1:] == (1.0, 1.0)
    assert [i for i in g.issues if "PixelSpacing" in i][0].startswith(says), g.issues


def _rt_dose(path, offsets, position=(-228.65, -419.24, -122.44), orientation=(1, 0, 0, 0, 1, 0),
             frames=None):
    """A multi-frame RT Dose as a treatment planning system writes it: one
    ImagePositionPatient and orientation for the grid, each frame's plane in the
    GridFrameOffsetVector (no functional groups)."""
    pydicom = pytest.importorskip("pydicom")
    n = len(offsets) if frames is None else frames
    write_multiframe(path, n, 4, 3, dtype=np.uint32)
    ds = pydicom.dcmread(path)
    ds.Modality = "RTDOSE"
    ds.ImagePositionPatient = list(position)
    ds.ImageOrientationPatient = list(orientation)
    ds.GridFrameOffsetVector = [float(v) for v in offsets]
    ds.PixelSpacing = [2.5, 2.5]
    ds.FrameIncrementPointer = 0x3004000C
    ds.save_as(path)
    return path


@pytest.mark.parametrize("form", ["relative", "absolute", "decreasing", "oblique"])
def test_rt_dose_frames_are_placed_by_the_grid_frame_offset_vector(tmp_path, form):
    """An RT Dose grid's frames were placed 1 mm apart from ImagePositionPatient (its
    SliceThickness or 1 mm), whatever the GridFrameOffsetVector said: a 3 mm dose grid came
    out a third of its length.  The frames now lie at ImagePositionPatient + (offset - first
    offset) along the normal (PS3.3 C.8.8.3.2, relative and absolute forms), ordered along
    the normal as slices are."""
    pos = np.array([-228.65, -419.24, -122.44])
    ori = (1, 0, 0, 0, 1, 0)
    rel = [0.0, 3.0, 6.0, 9.0, 12.0]
    if form == "absolute":
        offsets = [pos[2] + r for r in rel]
    elif form == "decreasing":
        rel = [0.0, -2.5, -5.0, -7.5]
        offsets = rel
    else:
        offsets = rel
    if form == "oblique":
        c, s = math.cos(0.3), math.sin(0.3)
        ori = (1, 0, 0, 0, c, s)
    path = _rt_dose(tmp_path / "dose.dcm", offsets, position=pos, orientation=ori)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DicomWarning)
        info = find_series(path)[0]
        vol = load_series(info)
    normal = np.cross(np.asarray(ori[:3], float), np.asarray(ori[3:], float))
    expect = {k: pos + r * normal for k, r in enumerate(rel)}
    order = sorted(range(len(rel)), key=lambda k: rel[k])      # along the normal
    g = info.geometry
    assert g.regular and g.issues == [] and g.ordering == "position"
    assert list(vol.frame_indices) == order
    for j, k in enumerate(order):
        assert np.allclose(vol.positions[j], expect[k])
    assert np.allclose(vol.origin, expect[order[0]])
    step = abs(rel[1] - rel[0])
    assert np.allclose(vol.affine[:3, 0], step * normal)
    n = len(rel)
    frames = np.stack([multiframe_frame(k, n, 4, 3, dtype=np.uint32) for k in order])
    assert np.array_equal(vol.array, frames)


@pytest.mark.parametrize("scaling", ["1.5e-05", "0.00271", "abc", "-2", None])
def test_rt_dose_grid_scaling_is_the_rescale_slope(tmp_path, scaling):
    """Stored dose values times DoseGridScaling are Gy (PS3.3 C.8.8.3): rescale=True gives
    them (pydicom's pixels times the element's value as the oracle); a value that is not a
    positive number is not applied, with a warning; no element, no warning."""
    pydicom = pytest.importorskip("pydicom")
    path = _rt_dose(tmp_path / "dose.dcm", [0.0, 3.0, 6.0])
    if scaling is not None:
        ds = pydicom.dcmread(path)
        ds.DoseGridScaling = scaling if scaling != "abc" else "7.777777"
        ds.save_as(path)
        if scaling == "abc":        # (pydicom writes no such DS: the bytes are replaced)
            data = path.read_bytes()
            assert data.count(b"7.777777") == 1
            path.write_bytes(data.replace(b"7.777777", b"abc     "))
    usable = scaling is not None and float(scaling if scaling != "abc" else "nan") > 0
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        (info,) = find_series(path)
        vol = load_series(info, rescale=True, dtype=np.float64)
    said = [w for w in rec if "DoseGridScaling" in str(w.message)]
    assert len(said) == (scaling is not None and not usable)
    ref = pydicom.dcmread(path).pixel_array.astype(np.float64)
    factor = float(pydicom.dcmread(path).DoseGridScaling) if usable else 1.0
    assert usable == (factor != 1.0)
    np.testing.assert_allclose(vol.array, ref * factor, rtol=1e-12)
    assert np.all(vol.rescale_slope == factor)
    raw = load_series(info)
    assert raw.array.dtype == np.uint32 and np.array_equal(raw.array, ref)


def test_rt_dose_grid_offsets_that_do_not_fit_are_named(tmp_path):
    """A GridFrameOffsetVector with a value per frame but neither starting at 0 nor at the
    position along the normal is read as relative to its first value, and said so; one with
    a wrong count is not used (frames 1 mm apart in frame order, as before), and said so."""
    off = _rt_dose(tmp_path / "off.dcm", [50.0, 52.0, 54.0], position=(0, 0, -10))
    with pytest.warns(DicomWarning, match="read as relative"):
        info = find_series(off)[0]
    assert any("starts at 50" in i for i in info.geometry.issues)
    vol = quiet(load_series, info)
    assert np.allclose(vol.positions, [(0, 0, -10), (0, 0, -8), (0, 0, -6)])
    count = _rt_dose(tmp_path / "count.dcm", [0.0, 3.0], position=(0, 0, 0), frames=3)
    with pytest.warns(DicomWarning):
        info = find_series(count)[0]
    g = info.geometry
    assert any("has 2 value(s) for 3 frame(s): not used" in i for i in g.issues)
    assert not g.regular and g.ordering == "frame"
    vol = quiet(load_series, info)
    assert list(vol.frame_indices) == [0, 1, 2]
