"""``limits`` (a :class:`fastdicom.Limits`) bounds the header reads of every batch entry
point -- scan, scan_batches, ingest, find_series / load_series, dask.read_headers -- as it
bounds :func:`fastdicom.dcmread`: on the nogil fast paths and on the general reader alike."""
from __future__ import annotations

import sqlite3

import pytest

import fastdicom
from fastdicom import Limits, testing
from fastdicom.batch import scan, scan_batches
from fastdicom.ingest import ingest
from fastdicom.series import find_series, load_series

REFERENCED_STUDY_SEQUENCE = 0x00081110
REFERENCED_SOP_INSTANCE_UID = 0x00081155


def _nested(depth: int):
    """A Referenced Study Sequence nested ``depth`` sequences deep."""
    inner = [(REFERENCED_SOP_INSTANCE_UID, "UI", "1.2.3.4")]
    for _ in range(depth):
        inner = [(REFERENCED_STUDY_SEQUENCE, "SQ", [inner])]
    return inner[0]


def _write(path, depth: int, transfer_syntax=testing.EXPLICIT_LE, seed=0):
    elements = testing.ct_instance_elements(rows=4, columns=4, index=seed,
                                            series_seed=f"limits-{depth}")
    elements = [e for e in elements if e[0] != REFERENCED_STUDY_SEQUENCE] + [_nested(depth)]
    elements.sort(key=lambda e: e[0])
    testing.write_file(path, elements, transfer_syntax=transfer_syntax)
    return str(path)


SYNTAXES = [testing.EXPLICIT_LE, testing.IMPLICIT_LE, testing.EXPLICIT_BE,
            testing.DEFLATED_LE]


@pytest.mark.parametrize("ts", SYNTAXES)
def test_scan_max_depth_from_limits(tmp_path, ts):
    p = _write(tmp_path / "a.dcm", 10, ts)
    fastdicom.dcmread(p)        # the file is fine with the default limits
    assert scan([p]).column("error_type").to_pylist() == [None]
    t = scan([p], limits=Limits(max_depth=5))
    assert t.column("error_type").to_pylist() == ["NestingTooDeepError"]
    with pytest.raises(fastdicom.NestingTooDeepError) as err:
        fastdicom.dcmread(p, limits=Limits(max_depth=5))
    assert t.column("error_tag").to_pylist() == [err.value.tag] == [0xFFFEE000]
    assert t.column("error_offset").to_pylist() == [err.value.offset]
    # a deeper nesting than the default: refused by default, read with a larger limit
    # (the nogil reader once had its own 64 whatever limits said)
    q = _write(tmp_path / "b.dcm", 70, ts)
    with pytest.raises(fastdicom.NestingTooDeepError):
        fastdicom.dcmread(q)
    assert scan([q]).column("error_type").to_pylist() == ["NestingTooDeepError"]
    t = scan([q], limits=Limits(max_depth=100))
    assert t.column("error_type").to_pylist() == [None]
    assert t.column("SOPInstanceUID").to_pylist() == [fastdicom.dcmread(
        q, limits=Limits(max_depth=100)).SOPInstanceUID]
    rows = sum(b.num_rows for b in scan_batches([p, q], limits=Limits(max_depth=100)))
    assert rows == 2


def test_scan_inflated_size_from_limits(tmp_path):
    p = _write(tmp_path / "d.dcm", 1, testing.DEFLATED_LE)
    assert scan([p]).column("error_type").to_pylist() == [None]
    t = scan([p], limits=Limits(max_inflated_bytes=256))
    assert t.column("error_type").to_pylist() == ["LimitExceededError"]
    with pytest.raises(fastdicom.LimitExceededError):
        fastdicom.dcmread(p, limits=Limits(max_inflated_bytes=256))


def test_limits_type_checked(tmp_path):
    p = _write(tmp_path / "a.dcm", 1)
    for call in (lambda: scan([p], limits=5), lambda: find_series([p], limits={}),
                 lambda: ingest([p], str(tmp_path / "i.sqlite"), limits="x", progress=False)):
        with pytest.raises(TypeError, match="fastdicom.Limits"):
            call()
    assert not (tmp_path / "i.sqlite.lock").exists()


def test_ingest_limits(tmp_path):
    d = tmp_path / "tree"
    d.mkdir()
    _write(d / "deep.dcm", 10)
    _write(d / "flat.dcm", 1, seed=1)
    db = str(tmp_path / "i.sqlite")
    r = ingest([d], db, limits=Limits(max_depth=5), progress=False, workers=2)
    assert (r.files, r.indexed, r.failed) == (2, 1, 1)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT display, error_type FROM failures").fetchall()
    assert rows == [(str(d / "deep.dcm"), "NestingTooDeepError")]
    con.close()
    # a later job with the default limits indexes the file it refused (an unchanged failed
    # file is read again only with reread)
    r = ingest([d], db, progress=False, reread=True)
    assert (r.files, r.indexed, r.failed) == (2, 2, 0)


@pytest.mark.parametrize("ts", [testing.EXPLICIT_LE, testing.IMPLICIT_LE])
def test_find_series_limits(tmp_path, ts):
    def folder(name, n, depth):
        d = tmp_path / name
        d.mkdir()
        for k in range(n):
            _write(d / f"{k}.dcm", depth, ts, seed=k)
        assert [len(s.instances) for s in find_series(d)] == [n]
        return d
    d = folder("series", 3, 10)
    with pytest.warns(fastdicom.DicomWarning, match="3 DICOM files are damaged.*Nesting"):
        assert find_series(d, limits=Limits(max_depth=5)) == []
    with pytest.raises(fastdicom.SeriesError, match="left out"), \
            pytest.warns(fastdicom.DicomWarning, match="NestingTooDeepError"):
        load_series(d, limits=Limits(max_depth=5))
    assert load_series(d).array.shape[0] == 3
    # beyond the nogil reader's own depth (32): the general reader, with the given limits
    e = folder("deep", 2, 40)
    with pytest.warns(fastdicom.DicomWarning, match="2 DICOM files are damaged.*Nesting"):
        assert find_series(e, limits=Limits(max_depth=39)) == []


def test_dask_read_headers_limits(tmp_path):
    pytest.importorskip("dask.dataframe")
    from fastdicom.dask import read_headers
    p = _write(tmp_path / "a.dcm", 10)
    df = read_headers([p], limits=Limits(max_depth=5)).compute(scheduler="sync")
    assert df["error_type"].tolist() == ["NestingTooDeepError"]
    df = read_headers([p]).compute(scheduler="sync")
    assert df["error_type"].isna().tolist() == [True]


def test_workers_zero_or_negative_is_refused(tmp_path):
    """workers=0 was taken for "the default" by scan and ingest, and clamped to 1 by
    find_series; it is a ValueError everywhere now (None is the default)."""
    p = _write(tmp_path / "a.dcm", 1)
    calls = {
        "scan": lambda w: scan([p], workers=w),
        "ingest": lambda w: ingest([p], str(tmp_path / "i.sqlite"), workers=w,
                                   progress=False),
        "find_series": lambda w: find_series([p], workers=w),
        "load_series": lambda w: load_series([p], workers=w),
    }
    for name, call in calls.items():
        for bad in (0, -2, 1.5, True):
            with pytest.raises(ValueError, match="workers"):
                call(bad)
        assert call(None) is not None, name
        assert call(1) is not None, name


def test_find_series_warns_for_a_named_file_without_an_image(tmp_path, caplog):
    """A file named in the input that holds no image (no Pixel Data) is left out with a
    DicomWarning, as the docstring says (it was left out silently); one met by a walk only
    logs."""
    import logging
    import warnings
    elements = [e for e in testing.ct_instance_elements(rows=4, columns=4)
                if e[0] != 0x7FE00010]
    nopix = tmp_path / "d" / "nopix.dcm"
    nopix.parent.mkdir()
    testing.write_file(nopix, elements)
    with pytest.warns(fastdicom.DicomWarning, match="nopix.dcm: holds no image"):
        assert find_series([str(nopix)]) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with caplog.at_level(logging.DEBUG, logger="fastdicom"):
            assert find_series(tmp_path / "d") == []
    assert any("nopix.dcm" in r.getMessage() and "no image" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("kwargs, error", [
    ({"max_depth": "3"}, TypeError), ({"max_depth": 3.0}, TypeError),
    ({"decode_budget": True}, TypeError), ({"max_elements": None}, TypeError),
    ({"max_depth": 0}, ValueError), ({"max_inflated_bytes": -1}, ValueError),
    ({"max_depth": 2**31}, ValueError), ({"max_depth": 2**30}, ValueError), ({"max_inflated_bytes": 2**63 - 1}, ValueError), ({"decode_budget": 2**64}, ValueError), ({"max_elements": 2**40}, ValueError)])
def test_limits_refuse_what_no_read_could_use(kwargs, error):
    """A Limits that a read would fail on (a string, a float, a count past the C int the scan
    takes) is refused when it is made, not when the first file is read."""
    with pytest.raises(error):
        Limits(**kwargs)


def test_limits_take_numpy_integers_as_ints():
    np = pytest.importorskip("numpy")
    limits = Limits(max_depth=np.int64(7), decode_budget=np.uint32(1 << 20))
    assert type(limits.max_depth) is int and limits.max_depth == 7
    assert type(limits.decode_budget) is int
