"""Batch header scan: schema, typed values vs pydicom, errors, walking, threads."""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from fastdicom import testing
from fastdicom.batch import DEFAULT_TAGS, scan, scan_batches, schema

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _data_dir():
    if not DATA.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"test data missing: {DATA}")
        pytest.skip(f"test data not found at {DATA}")
    return DATA


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    testing.write_mixed_set(root / "mixed", 24)
    testing.write_ct_series(root / "ct", 4, 32, 32, transfer_syntax=testing.RLE_LOSSLESS) \
        if testing.builtin_frame_encoder(testing.RLE_LOSSLESS) else None
    junk = testing.write_junk(root / "junk")
    return root, junk


def test_schema_fixed():
    s = schema(["Rows", "PixelSpacing", "PatientName", "ImageType", "SliceThickness",
                "InstanceNumber", "StudyDate"])
    assert s.names[:3] == ["path", "size", "mtime_ns"]
    assert s.field("Rows").type == pa.int64()
    assert s.field("PixelSpacing").type == pa.list_(pa.float64())
    assert s.field("PatientName").type == pa.string()
    assert s.field("ImageType").type == pa.list_(pa.string())
    assert s.field("SliceThickness").type == pa.float64()
    assert s.field("InstanceNumber").type == pa.int64()
    assert s.names[-8:] == ["transfer_syntax", "pixel_offset", "pixel_length", "num_frames",
                            "error_type", "error_message", "error_offset", "error_tag"]
    assert s.field("error_offset").type == s.field("error_tag").type == pa.int64()
    with pytest.raises(ValueError):
        schema(["ReferencedImageSequence"])
    # the scan stops at Float / Double Float Pixel Data as at Pixel Data: no always-null column
    for keyword in ("FloatPixelData", "DoubleFloatPixelData", "PixelData", 0xFFFEE000):
        with pytest.raises(ValueError, match=r"from \(7FE0,0008\) on"):
            schema([keyword])
    assert "ExtendedOffsetTable" in schema(["ExtendedOffsetTable"]).names


def test_scan_mixed_matches_dcmread(mixed):
    import fastdicom
    root, junk = mixed
    t = scan(root, workers=2)
    assert t.schema == schema(DEFAULT_TAGS)
    rows = t.to_pylist()
    by_path = {r["path"]: r for r in rows}
    assert len(rows) == sum(1 for p in root.rglob("*") if p.is_file())
    for kind, p in junk.items():
        r = by_path[str(p)]
        if kind in ("valid", "dicm_only"):
            assert r["error_type"] is None
        else:
            assert r["error_type"] is not None, kind
    for p in (root / "mixed").iterdir():
        r = by_path[str(p)]
        assert r["error_type"] is None
        ds = fastdicom.dcmread(p)
        assert r["SOPInstanceUID"] == ds.SOPInstanceUID
        assert r["Rows"] == ds.Rows and r["Columns"] == ds.Columns
        assert r["PatientName"] == str(ds.PatientName)
        assert r["ImagePositionPatient"] == pytest.approx([float(v) for v in
                                                           ds.ImagePositionPatient])
        assert r["transfer_syntax"] == ds.file_meta.TransferSyntaxUID
        el = ds["PixelData"]
        assert r["pixel_length"] == el.length
        if not ds._ctx.inflated:
            assert r["pixel_offset"] == el.offset
            raw = p.read_bytes()[r["pixel_offset"]:r["pixel_offset"] + r["pixel_length"]]
            assert len(raw) == r["pixel_length"]
        else:
            assert r["pixel_offset"] is None
        assert r["num_frames"] == 1


def test_threads_same_result_and_batches(mixed):
    root, _ = mixed
    a = scan(root, workers=1)
    b = scan(root, workers=2)
    assert a.equals(b)
    batches = list(scan_batches(root, workers=2, batch_size=7))
    assert all(x.num_rows <= 7 for x in batches)
    assert pa.Table.from_batches(batches).equals(a)


def test_globs_symlinks_and_raise(mixed, tmp_path):
    root, junk = mixed
    t = scan(str(root / "mixed" / "MX0000*.dcm"))
    assert t.num_rows == 10
    link = tmp_path / "link.dcm"
    os.symlink(next((root / "mixed").iterdir()), link)
    loop = tmp_path / "loop"
    os.symlink(tmp_path, loop)
    t = scan(tmp_path)
    assert sorted(t.column("error_type").to_pylist()) == ["SymlinkSkipped", "SymlinkSkipped"]
    t = scan(tmp_path, follow_symlinks=True)
    assert t.column("error_type").to_pylist() == [None]
    from fastdicom.errors import InvalidDicomError
    with pytest.raises(InvalidDicomError):
        scan(junk["text"], errors="raise")
    # a symlink not followed is the caller's policy, no error: errors="raise" keeps its row
    # (it raised OSError), and still raises for a file that fails after it
    t = scan(tmp_path, errors="raise")
    assert sorted(t.column("error_type").to_pylist()) == ["SymlinkSkipped", "SymlinkSkipped"]
    with pytest.raises(InvalidDicomError):
        scan([str(link), str(junk["text"])], errors="raise")


def test_changed_size_detected(tmp_path):
    # a file that grows between the two fstat calls cannot be simulated portably; a vanished
    # file is an OSError row
    t = scan([str(tmp_path / "nope.dcm")])
    assert t.column("error_type").to_pylist() == ["FileNotFoundError"]


def _pydicom_value(elem):
    from pydicom.multival import MultiValue
    v = elem.value
    if isinstance(v, (list, MultiValue)):
        return [_plain(x) for x in v]
    return _plain(v)


def _plain(x):
    from pydicom.valuerep import PersonName
    if isinstance(x, PersonName):
        return str(x)
    if isinstance(x, float) or type(x).__name__ in ("DSfloat", "DSdecimal"):
        return float(x)
    if isinstance(x, int):
        return int(x)
    return x


def _same(ours, theirs):
    if isinstance(ours, list):
        if not isinstance(theirs, list):
            theirs = [theirs]
        return len(ours) == len(theirs) and all(_same(a, b) for a, b in zip(ours, theirs))
    if isinstance(theirs, list):
        return False
    if isinstance(ours, str) and isinstance(theirs, str):
        return ours == theirs.strip(" ")    # we strip the padding of each value
    if isinstance(ours, float) and isinstance(theirs, (int, float)):
        return math.isclose(ours, theirs, rel_tol=1e-9) or (math.isnan(ours) and math.isnan(theirs))
    return ours == theirs


@pytest.mark.filterwarnings("ignore")
def test_typed_columns_vs_pydicom_on_corpus():
    pydicom = pytest.importorskip("pydicom")
    corpus = _data_dir() / "corpus"
    files = sorted(str(p) for p in corpus.rglob("*") if p.is_file() and p.name != "MANIFEST.tsv")
    t = scan(files, workers=2)
    keywords = [k for k in DEFAULT_TAGS if k != "SpecificCharacterSet"]
    checked = mismatches = 0
    bad = []
    warnings.simplefilter("ignore")
    for r in t.to_pylist():
        if r["error_type"] is not None:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(r["path"], stop_before_pixels=True)
        except Exception:
            continue
        for k in keywords:
            if k not in ds or ds[k].VR == "SQ":
                continue
            theirs = ds[k].value
            ours = r[k]
            if theirs in ("", None) or theirs == []:
                continue
            try:
                theirs = _pydicom_value(ds[k])
            except Exception:
                continue
            checked += 1
            if not _same(ours, theirs):
                mismatches += 1
                bad.append((r["path"], k, ours, theirs))
    print(f"corpus: {t.num_rows} files, {checked} values compared, {mismatches} differ")
    assert checked > 5000
    # a handful of corpus files hold deliberately invalid values (pydicom keeps the text)
    for b in bad[:20]:
        print(b)
    assert mismatches <= checked * 0.002, bad[:20]


def _python_decoded(paths, tags):
    """The same chunk decoded by the generic Python column code (no nogil finisher)."""
    from fastdicom.batch import _Plan, _scan_table
    plan = _Plan(tags, check_deflated=False)
    plan.kinds = np.zeros_like(plan.kinds)
    return _scan_table(plan, paths, True)


def test_nogil_columns_match_python_decoding(tmp_path):
    # values the column finisher handles (latin-1 / UTF-8 text, DS/IS numbers and lists,
    # binary numbers in both byte orders, empty and padded values) and ones it hands back
    # (escapes, odd numbers): every column equals the generic Python decoding
    from fastdicom.batch import _Plan, _scan_table
    tags = ["SpecificCharacterSet", "PatientName", "StudyDescription", "ImageType",
            "SliceThickness", "InstanceNumber", "ImagePositionPatient", "WindowCenter",
            "Rows", "AcquisitionMatrix", "PixelSpacing", "SeriesNumber", "ImageComments"]
    cases = [
        ("ISO_IR 100", "M\xfcller^J\xfcrgen", "Thorax ", "ORIGINAL\\PRIMARY\\AXIAL ", "1.25",
         " 17 ", "-179.2\\-179.2\\1228.125", "40\\400", "2.5e1\\ .5 "),
        ("ISO_IR 192", "\u5c71\u7530^\u592a\u90ce", "", "DERIVED", "", "", "1\\\\3", "",
         "1.\\+2"),
        ("", "Plain^Name", "  lead", "A\\B", "NaN", "12.0", "1e400\\0\\-0", "abc", "7"),
        ("ISO 2022 IR 87", "\x1b$B;3ED\x1b(B", "x", "", "3", "-4", "", "1", "1\\2"),
    ]
    paths = []
    for k, (cs, pn, desc, it, st, inst, ipp, wc, ps) in enumerate(cases):
        for ts in (testing.EXPLICIT_LE, testing.EXPLICIT_BE, testing.IMPLICIT_LE):
            els = [(0x00080005, "CS", cs), (0x00080008, "CS", it),
                   (0x00081030, "LO", desc), (0x00100010, "PN", pn),
                   (0x00180050, "DS", st), (0x00181310, "US", [0, 512, 256, 0]),
                   (0x00200011, "IS", ""), (0x00200013, "IS", inst),
                   (0x00200032, "DS", ipp), (0x00280010, "US", 16 + k),
                   (0x00280030, "DS", ps), (0x00281050, "DS", wc)]
            els = [(t, vr, v.encode("latin-1" if cs != "ISO_IR 192" else "utf-8")
                    if isinstance(v, str) and vr in ("PN", "LO") and cs != "ISO 2022 IR 87"
                    else v) for t, vr, v in els]
            p = tmp_path / f"c{k}_{len(paths)}.dcm"
            try:
                testing.write_file(p, els, transfer_syntax=ts)
            except (TypeError, ValueError):
                continue
            paths.append(str(p))
    assert paths
    plan = _Plan(tags, check_deflated=False)
    for p in paths + [paths]:
        chunk = p if isinstance(p, list) else [p]
        fast = _scan_table(plan, chunk, True)
        slow = _python_decoded(chunk, tags)
        for name in fast.schema.names:
            assert repr(fast.column(name).to_pylist()) == \
                repr(slow.column(name).to_pylist()), (p, name)


def test_long_list_with_directories_keeps_order(mixed):
    root, _ = mixed
    files = sorted(str(p) for p in (root / "mixed").iterdir())
    listed = files[:12] * 6 + [str(root / "junk")] + files[12:] + \
        [str(root / "mixed" / "MX0000*.dcm")]
    t = scan(listed, workers=2, tags=["Rows"])
    walked = scan([str(root / "junk")], workers=1, tags=["Rows"])
    globbed = scan(str(root / "mixed" / "MX0000*.dcm"), workers=1, tags=["Rows"])
    expect = files[:12] * 6 + walked.column("path").to_pylist() + files[12:] + \
        globbed.column("path").to_pylist()
    assert t.column("path").to_pylist() == expect


def _forced_files(root):
    """Raw data sets (no preamble, no ``DICM``) in three encodings, one with a file meta
    group but no ``DICM``, and non-DICOM files that ``force`` must still refuse."""
    els = testing.ct_instance_elements(rows=8, columns=8, private=False)
    out = {}
    for name, ts, meta in (("raw_implicit", testing.IMPLICIT_LE, False),
                           ("raw_explicit_be", testing.EXPLICIT_BE, False),
                           ("meta_no_dicm", testing.EXPLICIT_LE, True)):
        p = root / f"{name}.dcm"
        testing.write_file(p, els, transfer_syntax=ts, preamble=None, write_meta=meta)
        assert p.read_bytes()[128:132] != b"DICM"
        out[name] = p
    out["text"] = root / "notes.txt"
    out["text"].write_bytes(b"not a DICOM file at all\n" * 50)
    # an MP4-like file: a big declared box length right at the start
    out["video"] = root / "clip.mp4"
    out["video"].write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4096))
    out["empty"] = root / "empty.dcm"
    out["empty"].write_bytes(b"")
    return out


@pytest.mark.filterwarnings("ignore")
def test_force_reads_raw_data_sets_like_pydicom(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    files = _forced_files(tmp_path)
    paths = [str(p) for p in files.values()]
    plain = {r["path"]: r for r in scan(paths).to_pylist()}
    forced = {r["path"]: r for r in scan(paths, force=True, workers=2).to_pylist()}
    for name in ("raw_implicit", "raw_explicit_be", "meta_no_dicm"):
        p = str(files[name])
        assert plain[p]["error_type"] == "InvalidDicomError"
        assert "force" in plain[p]["error_message"]
        r = forced[p]
        assert r["error_type"] is None, (name, r["error_message"])
        ds = pydicom.dcmread(p, force=True, stop_before_pixels=True)
        compared = 0
        for k in DEFAULT_TAGS:
            if k not in ds or ds[k].VR == "SQ" or ds[k].value in ("", None, []):
                assert r[k] in (None, [], ""), (name, k, r[k])
                continue
            assert _same(r[k], _pydicom_value(ds[k])), (name, k, r[k], ds[k].value)
            compared += 1
        assert compared >= 10
        assert r["SOPInstanceUID"] == str(ds.SOPInstanceUID)
    # the meta group is read without DICM: the transfer syntax is known
    assert forced[str(files["meta_no_dicm"])]["transfer_syntax"] == testing.EXPLICIT_LE
    for name in ("text", "video"):
        r = forced[str(files[name])]
        assert r["error_type"] == "InvalidDicomError", (name, r)
        assert "first bytes" in r["error_message"]
    assert forced[str(files["empty"])]["error_message"] == "empty file"


@pytest.mark.filterwarnings("ignore")
def test_force_on_corpus_files_without_preamble():
    """Every corpus file refused for want of a preamble: with ``force``, the scanned values
    are pydicom's (``dcmread(force=True)``)."""
    pydicom = pytest.importorskip("pydicom")
    corpus = _data_dir() / "corpus"
    files = sorted(str(p) for p in corpus.rglob("*") if p.is_file() and p.name != "MANIFEST.tsv")
    t = scan(files, workers=2)
    refused = [r["path"] for r in t.to_pylist() if r["error_type"] == "InvalidDicomError"
               and "preamble" in r["error_message"]]
    assert len(refused) >= 10
    compared = read = 0
    for r in scan(refused, force=True).to_pylist():
        try:
            ds = pydicom.dcmread(r["path"], force=True, stop_before_pixels=True)
            values = {k: _pydicom_value(ds[k]) for k in DEFAULT_TAGS
                      if k in ds and ds[k].VR != "SQ" and ds[k].value not in ("", None, [])}
        except Exception:
            continue        # pydicom cannot read it either: no oracle
        if r["error_type"] is not None:
            continue
        read += 1
        for k, v in values.items():
            assert _same(r[k], v), (r["path"], k, r[k], v)
            compared += 1
    assert read >= 8 and compared >= 50, (read, compared)


def test_raise_carries_offset_and_tag(tmp_path):
    """``errors="raise"`` raises the first failed file's error with its path, the byte
    offset and the tag of the element at fault (a hand-built file: (0010,0010) declares 100
    bytes at offset 186 and holds 10), as ``errors="record"`` rows and the index keep them."""
    import struct
    from fastdicom.errors import TruncatedError

    def el(g, e, vr, val):
        return struct.pack("<HH", g, e) + vr + struct.pack("<H", len(val)) + val
    meta = el(2, 0x10, b"UI", b"1.2.840.10008.1.2.1\0")
    data = b"\0" * 128 + b"DICM" + el(2, 0, b"UL", struct.pack("<I", len(meta))) + meta
    data += el(8, 0x18, b"UI", b"1.2.3\0")
    assert len(data) == 186
    data += struct.pack("<HH", 0x10, 0x10) + b"PN" + struct.pack("<H", 100) + b"ABCDEFGHIJ"
    bad = tmp_path / "cut.dcm"
    bad.write_bytes(data)
    good = testing.write_ct_series(tmp_path / "ok", 70, 8, 8, seed=3)
    for paths in ([str(tmp_path)], [str(p) for p in good] + [str(bad)]):   # walked, listed
        with pytest.raises(TruncatedError) as info:
            scan(paths, errors="raise")
        e = info.value
        assert (e.path, e.offset, e.tag) == (str(bad), 186, 0x00100010), paths[:1]
        rows = scan(paths, ["PatientName"]).to_pylist()
        where = {r["path"]: (r["error_type"], r["error_offset"], r["error_tag"]) for r in rows}
        assert where.pop(str(bad)) == ("TruncatedError", 186, 0x00100010)
        assert len(where) == 70 and set(where.values()) == {(None, None, None)}


def _pool_affinities(pool, n):
    """The CPU masks of ``n`` distinct threads of ``pool`` (each held at a barrier)."""
    import threading
    barrier = threading.Barrier(n, timeout=10)

    def probe():
        barrier.wait()
        return threading.get_native_id(), frozenset(os.sched_getaffinity(0))
    return dict(f.result() for f in [pool.submit(probe) for _ in range(n)])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity")
def test_scan_pool_threads_pinned_one_per_cpu(monkeypatch, mixed):
    from fastdicom import batch
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("one CPU")
    monkeypatch.setattr(batch, "_POOLS", {})
    n = len(cpus)
    masks = _pool_affinities(batch._scan_pool(n), n)
    assert len(masks) == n
    # one thread on each CPU of the process, each on exactly one
    assert sorted(next(iter(m)) for m in masks.values()) == cpus
    assert all(len(m) == 1 for m in masks.values())
    # a scan through the pinned pool gives the rows of a single-threaded one
    root, _ = mixed
    assert scan(root, workers=n).equals(scan(root, workers=1))
    # fewer threads than CPUs, or turned off: left to the scheduler
    assert batch.pinned_cpus(n - 1) is None
    assert batch.pinned_cpus(n) == cpus
    monkeypatch.setenv("FASTDICOM_PIN_THREADS", "0")
    assert batch.pinned_cpus(n) is None
    monkeypatch.setattr(batch, "_POOLS", {})
    masks = _pool_affinities(batch._scan_pool(n), n)
    assert all(m == frozenset(cpus) for m in masks.values())


def test_calling_thread_scans_too():
    """_bounded_map (the scan's chunk scheduler), helped (a list of files), runs items on the
    calling thread when no pool thread has started them, yields every result in the order of
    the items, and raises an item's error at that item's turn, whichever thread ran it."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor
    from fastdicom.batch import _bounded_map
    me = threading.get_ident()
    ran_on = {}

    def fn(i):
        ran_on[i] = threading.get_ident()
        time.sleep(0.01)
        if i == 7:
            raise ValueError("item 7")
        return i * i

    with ThreadPoolExecutor(1) as pool:
        got = []
        with pytest.raises(ValueError, match="item 7"):
            for r in _bounded_map(pool, fn, range(12), 4, help=True):
                got.append(r)
        assert got == [i * i for i in range(7)]
        # the caller ran items itself and so did the pool thread; nothing ran twice
        assert me in ran_on.values() and set(ran_on.values()) - {me}
        pool.submit(int).result()     # the items still in flight when 7 raised are done
        ran_on.clear()
        assert list(_bounded_map(pool, fn, range(7), 3, help=True)) == [i * i for i in range(7)]
        assert sorted(ran_on) == list(range(7))
        # without help (a walk: the calling thread walks) only the pool runs items
        ran_on.clear()
        assert list(_bounded_map(pool, fn, range(5), 3)) == [i * i for i in range(5)]
        assert me not in ran_on.values()


def test_list_of_directories_is_walked_in_chunks_of_a_walk(tmp_path, monkeypatch):
    """A long list of directories (taken first as files, then walked) is scanned in chunks of
    a walk, not in slices of the list's length (70 folders, 2 workers: 64-file chunks, each
    a round trip through the GIL the walking thread holds; 2 workers were slower than one)."""
    from fastdicom import batch
    dirs = []
    for k in range(70):
        testing.write_ct_series(tmp_path / f"d{k:02d}", 3, 4, 4, seed=k)
        dirs.append(str(tmp_path / f"d{k:02d}"))
    sizes = []
    real = batch._extract

    def recording(plan, plain, nofollow):
        sizes.append(len(plain))
        return real(plan, plain, nofollow)
    monkeypatch.setattr(batch, "_extract", recording)
    t = scan(dirs, ["Rows"], workers=2)
    assert t.num_rows == 210 and t.column("error_type").null_count == 210
    # the list's own slices of 64 and 6 (the folders, refused as files), and the walk of
    # each slice's folders in one chunk (it was cut in 64-file chunks: 64, 64, 64, 18); in
    # an order that depends on the threads' timing (a loaded machine: 64, 192, 6, 18)
    assert sorted(sizes) == [6, 18, 64, 192], sizes
    assert t.equals(scan(dirs, ["Rows"], workers=1))


def test_long_list_of_pathlib_paths_is_not_walked(tmp_path, monkeypatch):
    """A long list of pathlib paths is scanned like the same list of str (no walk, no lstat
    per file), and gives the same table; a directory in it is still walked."""
    from fastdicom import batch
    files = [str(p) for p in testing.write_ct_series(tmp_path / "s", 80, 8, 8, seed=4)]
    as_str = scan(files, ["Rows", "SOPInstanceUID"], workers=2)
    walks = []
    real = batch._walk_chunks

    def counting(src, follow, size, visited=None):
        walks.append(src)
        return real(src, follow, size, visited)
    monkeypatch.setattr(batch, "_walk_chunks", counting)
    as_path = scan([Path(p) for p in files], ["Rows", "SOPInstanceUID"], workers=2)
    assert as_path.equals(as_str) and walks == []
    sub = testing.write_ct_series(tmp_path / "d", 3, 8, 8, seed=5)
    mixed = scan([Path(p) for p in files] + [tmp_path / "d"], ["Rows"], workers=1)
    assert mixed.num_rows == 83 and walks
    assert sorted(mixed.column("path").to_pylist()[80:]) == sorted(str(p) for p in sub)


def test_path_column_of_undecodable_names(tmp_path):
    # a file name that is not UTF-8 is walked as a str with \udcXX escapes; the path
    # column shows it with U+FFFD (the nogil reader's UTF-8 text is used only for valid
    # Unicode), and the file is still read
    src = tmp_path / "ok.dcm"
    testing.write_ct_series(tmp_path / "s", 1, 8, 8)
    one = next((tmp_path / "s").iterdir())
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.dcm"
    os.rename(one, raw)
    os.symlink(raw, src)      # a symlink: skipped, its name valid
    t = scan([str(tmp_path)], ["Rows"], workers=1)
    rows = dict(zip(t.column("path").to_pylist(), t.column("Rows").to_pylist()))
    assert rows[str(tmp_path) + "/caf\ufffd.dcm"] == 8
    assert rows[str(src)] is None
    # a long explicit list (scanned without a walk), with str and bytes paths
    many = [str(tmp_path) + "/caf\udce9.dcm"] * 70
    t = scan(many, ["Rows"], workers=2)
    assert set(t.column("path").to_pylist()) == {str(tmp_path) + "/caf\ufffd.dcm"}
    assert set(t.column("Rows").to_pylist()) == {8}
    t = scan([raw] * 3, ["Rows"], workers=1)
    assert t.column("path").to_pylist() == [str(tmp_path) + "/caf\ufffd.dcm"] * 3
    assert t.column("Rows").to_pylist() == [8] * 3


def test_int64_columns_from_buffers_match_pa_array():
    from fastdicom.batch import _int64_array, _int64_values
    rng = np.random.default_rng(5)
    for n in (0, 1, 7, 8, 9, 64, 1000):
        v = rng.integers(-2**62, 2**62, n)
        for null in (None, np.zeros(n, bool), rng.random(n) < 0.3, np.ones(n, bool)):
            got = _int64_array(v, null)
            got.validate(full=True)
            assert got.equals(pa.array(v, pa.int64(), mask=null))
        arr = pa.array([None if x % 3 == 0 else int(x) for x in v], pa.int64())
        for start in (0, 1, 5):
            part = arr.slice(min(start, n))
            want = np.array([-7 if x is None else x for x in part.to_pylist()], np.int64)
            assert np.array_equal(_int64_values(part, -7), want)
    assert np.array_equal(_int64_values(pa.nulls(3, pa.int64()), 4), [4, 4, 4])


def test_first_scan_does_not_import_pandas(mixed):
    # pa.array and pa.scalar import pandas when it is installed: ~0.2 s on the first scan
    import subprocess
    import sys
    pytest.importorskip("pandas")
    root, _ = mixed
    code = ("import sys, fastdicom; t = fastdicom.scan(sys.argv[1]); "
            "assert t.num_rows > 20; print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(root / "mixed")], check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert out.stdout.strip() == "False"


def test_validity_and_string_lengths_from_buffers():
    import pyarrow.compute as pc
    from fastdicom.batch import _string_lengths, _valid_mask
    rng = np.random.default_rng(9)
    for n in (0, 1, 8, 9, 100):
        vals = [None if rng.random() < 0.3 else "é" * int(rng.integers(0, 4))
                for _ in range(n)]
        for arr in (pa.array(vals, pa.string()), pa.nulls(n, pa.string()),
                    pa.array(["x"] * n, pa.string())):
            for start in (0, 1, 3):
                part = arr.slice(min(start, n))
                assert np.array_equal(_valid_mask(part),
                                      part.is_valid().to_numpy(zero_copy_only=False))
                want = pc.binary_length(part).fill_null(0).to_numpy(zero_copy_only=False)
                assert np.array_equal(_string_lengths(part), want)
    large = pa.array(["ab", None, "", "é"], pa.large_string()).slice(1)
    assert _string_lengths(large).tolist() == [0, 0, 2]


def test_paths_with_a_nul_byte_name_no_file(tmp_path):
    # "d/x.dcm\0junk" would be cut to "d/x.dcm" by a C string: it must never read that file
    import warnings
    import fastdicom
    from fastdicom import series
    testing.write_ct_series(tmp_path / "s", 1, 8, 8)
    real = str(next((tmp_path / "s").iterdir()))
    bad = real + "\0junk"
    for paths, workers in (([bad], 1), ([bad] * 70, 2), ([real] * 3 + [bad], 1),
                           ([real] * 70 + [bad], 2)):
        t = scan(paths, ["Rows"], workers=workers)
        assert t.num_rows == len(paths)
        for p, rows, et, em in zip(paths, t.column("Rows").to_pylist(),
                                   t.column("error_type").to_pylist(),
                                   t.column("error_message").to_pylist()):
            if p == bad:
                assert (rows, et, em) == (None, "ValueError", "embedded null byte")
            else:
                assert (rows, et) == (8, None)
    for fn in (fastdicom.dcmread, fastdicom.open):
        with pytest.raises(ValueError, match="null byte"):
            fn(bad)
    # errors="raise": the builtin class of a file that is not read (not a bare OSError)
    with pytest.raises(ValueError, match="null byte"):
        scan([real, bad], errors="raise")
    with pytest.raises(FileNotFoundError, match="nope"):
        scan([str(tmp_path / "nope.dcm")], errors="raise")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(IsADirectoryError, match="not a regular file"):
        scan([str(tmp_path / "fifo")] * 70, errors="raise")
    with pytest.raises(ValueError, match="null byte"):
        fastdicom.dcmread(bad, stop_before_pixels=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = series.find_series([real, bad])
        vol = series.load_series([bad, real])
    assert [len(s.instances) for s in found] == [1]
    assert vol.shape == (1, 8, 8)
    assert any("null byte" in str(w.message) or "ValueError" in str(w.message)
               for w in caught)


@pytest.mark.parametrize("ts", [testing.EXPLICIT_LE, "1.2.840.10008.1.2"])
def test_group_length_scanned_as_ul(tmp_path, ts):
    """A public group length (gggg,0000) is UL: an int64 column, read from implicit files as
    from explicit ones (it was a binary column of the raw bytes); a private one stays bytes."""
    p = tmp_path / "g.dcm"
    testing.write_file(p, [(0x00080000, "UL", 0x01020304), (0x00080060, "CS", "CT"),
                           (0x00090000, "UL", 7), (0x00100000, "UL", 4),
                           (0x00100010, "PN", "A^B")], transfer_syntax=ts)
    t = scan([p], tags=["(0008,0000)", "(0010,0000)", "(0009,0000)"])
    assert t.schema.field("x00080000").type == pa.int64()
    assert t.column("x00080000").to_pylist() == [0x01020304]
    assert t.column("x00100000").to_pylist() == [4]
    assert t.column("x00090000").to_pylist() == [(7).to_bytes(4, "little")]


def test_unusual_worker_counts_do_not_keep_threads(tmp_path):
    """A pool of more threads than the process keeps (``_POOLED_MAX``) ends with its scan,
    also when the iterator is dropped half way; the tables equal a one-worker scan's."""
    import threading
    import time
    from fastdicom import batch
    testing.write_ct_series(tmp_path, 300, 4, 4)
    many = batch._POOLED_MAX + 5
    ref = scan(tmp_path, workers=1)
    before = threading.active_count()
    assert scan(tmp_path, workers=many).equals(ref)
    it = scan_batches(tmp_path, workers=many, batch_size=10)
    next(it)
    it.close()
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


def test_un_values_decode_alike_whatever_the_chunk(tmp_path):
    """An element written with VR UN is read with the dictionary's VR (padding stripped,
    values split), as dcmread and pydicom read it -- also when another file of the same
    chunk sends the column down the generic decoder (here values with a non-ASCII byte); that
    decoder kept "1.2.3\\x00" and unsplit "A\\B" for UN elements, and each value's padding."""
    import fastdicom
    a, b = tmp_path / "a.dcm", tmp_path / "b.dcm"
    testing.write_file(a, [(0x00080008, "UN", b"ORIGINAL \\PRIMARY "),
                           (0x00080016, "UN", b"1.2.840.10008.5.1.4.1.1.2\x00"),
                           (0x00100040, "UN", b"O ")])
    testing.write_file(b, [(0x00080008, "CS", b"DERIV\xc9D\\X "),
                           (0x00080016, "UI", b"1.2.840.10408.5.1.4.1\xae1.2\x00"),
                           (0x00100040, "CS", "M")])
    tags = ["ImageType", "SOPClassUID", "PatientSex"]
    alone = scan([a], tags=tags).to_pylist()[0]
    ds = fastdicom.dcmread(a)
    want = {"ImageType": ["ORIGINAL", "PRIMARY"], "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
            "PatientSex": "O"}
    assert {k: alone[k] for k in tags} == want
    # (the Dataset keeps a value's inner padding, "ORIGINAL ", as pydicom does; scan strips
    # each value, in the vectorised and in the generic decoder alike)
    assert [ds.ImageType[0].rstrip(), ds.ImageType[1], ds.SOPClassUID, ds.PatientSex] == \
        want["ImageType"] + [want["SOPClassUID"], want["PatientSex"]]
    for order in ([a, b], [b, a]):
        rows = {r["path"]: r for r in scan(order, tags=tags).to_pylist()}
        assert {k: rows[str(a)][k] for k in tags} == want, order


@pytest.mark.parametrize("bad_tag", [b"\x08\x80\x20\x00", b"\xff\x7f\x12\x00", b"\x30\x00\x20\x00"])
def test_a_damaged_tag_out_of_order_does_not_hide_the_rest(tmp_path, bad_tag):
    """A tag damaged into a larger one, ahead of the others ((8008,0020) or (7FFF,0012): past
    Pixel Data; (0030,0020): past the other tags): the nogil scan used to stop there and
    return the rest of the file as absent (no UIDs, no pixel data) without an error.  Now
    the data set is read whole, as dcmread reads it."""
    import fastdicom
    p = testing.write_ct_series(tmp_path / "s", 2, 4, 4, shuffle_names=False)[0]
    data = p.read_bytes()
    head = b"\x08\x00\x20\x00DA"
    assert data.count(head) == 1
    p.write_bytes(data.replace(head, bad_tag + b"DA"))
    ds = fastdicom.dcmread(p, stop_before_pixels=True)
    full = fastdicom.dcmread(p)
    r = scan([p]).to_pylist()[0]
    assert r["error_type"] is None
    for k in ("SOPInstanceUID", "SeriesInstanceUID", "PatientID", "Modality", "Rows"):
        assert r[k] == getattr(ds, k), k
    assert r["InstanceNumber"] == ds.InstanceNumber and r["StudyDate"] is None
    assert r["pixel_offset"] == full[0x7FE00010].offset and r["pixel_length"] == 32
    # the series reader's nogil header scan: the slice stays in its series
    stacks = fastdicom.find_series(tmp_path / "s")
    assert [s.num_instances for s in stacks] == [2]


def test_text_tag_with_a_damaged_binary_vr_reads_alike_in_any_chunk(tmp_path):
    """ImageType whose VR bytes were damaged into US: its bytes are read as the dictionary's
    text alone and in a chunk whose other file sends the column down the generic decoder
    (that decoder gave the US numbers as text: ['17732', ...])."""
    a, b = tmp_path / "a.dcm", tmp_path / "b.dcm"
    testing.write_file(a, [(0x00080008, "CS", "DERIVED\\PRIMARY"), (0x00100040, "CS", "O")])
    data = a.read_bytes()
    head = b"\x08\x00\x08\x00CS"
    assert data.count(head) == 1
    a.write_bytes(data.replace(head, b"\x08\x00\x08\x00US"))
    testing.write_file(b, [(0x00080008, "CS", b"DERIV\xc9D\\X ")])
    alone = scan([a], tags=["ImageType"]).column("ImageType").to_pylist()
    assert alone == [["DERIVED", "PRIMARY"]]
    for order in ([a, b], [b, a]):
        rows = {r["path"]: r for r in scan(order, tags=["ImageType"]).to_pylist()}
        assert rows[str(a)]["ImageType"] == alone[0], order


@pytest.mark.parametrize("ts", [testing.EXPLICIT_LE, testing.EXPLICIT_BE, testing.IMPLICIT_LE])
def test_uv_values_above_int64_keep_their_value(tmp_path, ts):
    # UV (unsigned 64-bit) values reach 2**64 - 1: an int64 column wrapped them negative
    pydicom = pytest.importorskip("pydicom")
    big = [(1 << 64) - 1, 1 << 63, 12345]
    p = tmp_path / "uv.dcm"
    testing.write_file(p, [(0x00080428, "UV", big[0]), (0x00720083, "UV", big),
                           (0x7FE00003, "UV", 1 << 63)], transfer_syntax=ts)
    tags = ["TotalNumberOfStudyRecords", "SelectorUVValue",
            "EncapsulatedPixelDataValueTotalLength"]
    assert schema(tags).field("TotalNumberOfStudyRecords").type == pa.uint64()
    assert schema(tags).field("SelectorUVValue").type == pa.list_(pa.uint64())
    ds = pydicom.dcmread(p)
    expected = {"TotalNumberOfStudyRecords": ds[0x00080428].value,
                "SelectorUVValue": list(ds[0x00720083].value),
                "EncapsulatedPixelDataValueTotalLength": ds[0x7FE00003].value}
    assert expected["SelectorUVValue"] == big           # the oracle read what was written
    for t in (scan([str(p)], tags=tags), _python_decoded([str(p)], tags)):
        row = t.to_pylist()[0]
        assert {k: row[k] for k in tags} == expected


def test_a_value_of_padding_alone_is_no_value(tmp_path):
    # "  " in a multi-valued text or number column is no value (null), as a zero-length
    # one and as pydicom reads it ('', VM 0); not one empty value ['']; a single-valued
    # text column keeps "" for it.  Same through the nogil finisher and the generic decoder.
    pydicom = pytest.importorskip("pydicom")
    tags = ["ConvolutionKernel", "ImageType", "PixelSpacing", "StudyDescription",
            "SliceThickness", "OtherPatientIDs"]
    p = tmp_path / "pad.dcm"
    testing.write_file(p, [(0x00080008, "CS", b"  "), (0x00081030, "LO", b"  "),
                           (0x00101000, "LO", b"A\\ "), (0x00180050, "DS", b"  "),
                           (0x00181210, "SH", b"\0\0"), (0x00280030, "DS", b"  ")],
                       transfer_syntax=testing.EXPLICIT_LE)
    ds = pydicom.dcmread(p)
    assert ds.ImageType == "" and ds.ConvolutionKernel == "" and ds.PixelSpacing == ""
    for t in (scan([str(p)], tags=tags), _python_decoded([str(p)], tags)):
        row = t.to_pylist()[0]
        assert row["ConvolutionKernel"] is None and row["ImageType"] is None
        assert row["PixelSpacing"] is None and row["SliceThickness"] is None
        assert row["StudyDescription"] == ""
        assert row["OtherPatientIDs"] == ["A", ""]      # two values, the second empty


def test_scan_ingest_export_and_series_never_import_pandas(tmp_path):
    # pa.array, pa.scalar, fill_null(value) and to_numpy ask pyarrow's pandas shim about
    # their input, which imports pandas (240 ms, 48 MB) when it is installed: a child
    # process records every attempt to import it (and refuses it, so the check does not
    # depend on pandas being installed)
    import subprocess
    import sys
    root = tmp_path / "t"
    testing.write_ct_series(root / "ct", 40, 8, 8)
    (root / "junk.dcm").write_bytes(b"not DICOM at all" * 20)     # a row with an error
    (root / "empty.dcm").write_bytes(b"")
    (root / "mf").mkdir()
    mf = testing.write_multiframe(root / "mf" / "mf.dcm", 3, 8, 8)
    code = f"""
import sys, warnings
tried = []
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pandas":
            tried.append(name)
            raise ImportError("refused by the test")
sys.meta_path.insert(0, Refuse())
warnings.simplefilter("ignore")
import fastdicom
from fastdicom import series
from fastdicom.ingest import ingest
root = {str(root)!r}
assert fastdicom.scan(root).num_rows == 43
assert fastdicom.scan(root, ["PatientName", "ImageType", "PixelSpacing", "Rows"],
                      workers=1).num_rows == 43
files = sorted(str(p) for p in __import__("pathlib").Path(root).rglob("*.dcm"))
assert len(list(fastdicom.scan_batches(files * 3, batch_size=17))) > 1
r = ingest([root], {str(tmp_path / "i.sqlite")!r}, parquet={str(tmp_path / "parts")!r},
           progress=False, batch_size=10)
assert r.indexed == 41 and r.failed == 2, r.counts()
assert ingest([root], {str(tmp_path / "i.sqlite")!r}, progress=False).unchanged == 41
from fastdicom.ingest import export_parquet
assert export_parquet({str(tmp_path / "i.sqlite")!r}, {str(tmp_path / "all.parquet")!r}) == 41
assert series.load_series(root + "/ct").array.shape == (40, 8, 8)
assert series.load_series({str(mf)!r}).array.shape == (3, 8, 8)
print(tried)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**os.environ,
                                           "PYTHONPATH": str(Path(__file__).parents[1])})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_arrays_made_from_buffers_equal_pa_array():
    # the buffer-built arrays of the scan equal pa.array's, nulls and empty lists included
    from hypothesis import given, settings, strategies as st
    from fastdicom.batch import _array_of, _bool_array, _int64_values, _number_array
    base = [(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=6),
             pa.string()), (st.binary(max_size=5), pa.binary()),
            (st.integers(-2**63, 2**63 - 1), pa.int64()), (st.integers(0, 2**64 - 1), pa.uint64()),
            (st.one_of(st.floats(allow_nan=False), st.integers(-2**53, 2**53)), pa.float64())]
    cases = [(st.one_of(st.none(), s), t) for s, t in base]
    cases += [(st.one_of(st.none(), st.lists(s, max_size=3)), pa.list_(t)) for s, t in base]

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def check(data):
        for strategy, typ in cases:
            values = data.draw(st.lists(strategy, max_size=8))
            got = _array_of(values, typ)
            assert got.type == typ
            got.validate(full=True)
            assert got.equals(pa.array(values, typ)), (values, typ)
    check()
    # values not of the column's type are refused, as pa.array refuses them
    for values, typ in (([1.5], pa.int64()), (["a"], pa.int64()), ([b"x"], pa.string()),
                        (["ab"], pa.list_(pa.string())), ([-1], pa.uint64()),
                        ([2**64], pa.uint64()), ([2**53 + 1], pa.float64())):
        with pytest.raises((TypeError, ValueError, OverflowError, AttributeError)):
            _array_of(values, typ)
    # numpy numbers are numbers (an error offset may be one)
    assert _array_of([np.int64(5), None, 7], pa.int64()).equals(pa.array([5, None, 7]))
    assert _array_of([np.float32(0.5), 2], pa.float64()).equals(pa.array([0.5, 2.0]))
    mask = np.array([True, False, True])
    assert _bool_array(mask).equals(pa.array(mask))
    v = np.array([5, -1, 7])
    a = _number_array(v, pa.int64(), v < 0)
    assert a.equals(pa.array(v, mask=v < 0))
    assert _int64_values(a, 9).tolist() == [5, 9, 7]
    assert _int64_values(pa.array([3, None], pa.int32()), -1).tolist() == [3, -1]
    assert _int64_values(pa.chunked_array([a[1:]]), 0).tolist() == [0, 7]


def test_values_past_a_columns_limit_leave_the_nogil_reader(tmp_path, monkeypatch):
    # a chunk's values of one tag are addressed by int32 offsets: past the limit (2 GiB
    # before, where the offsets wrapped and the finisher read before its buffer) the nogil
    # reader leaves the file to the general one.  Such a chunk was then cut short by error
    # rows, so a row depended on the files scanned with it (600 files of a 1 MiB value: 89
    # error rows with 1 worker, 1 with 2, none in batches of 256); now the chunk is scanned
    # again in halves, and only a file whose own values pass the limit is an error row.
    # A small limit stands in here.
    import fastdicom.batch as batch
    from fastdicom import _batch
    monkeypatch.setattr(batch, "_ARENA_LIMIT", 100)
    sizes = [40, 50, 30, 8, 3, 120, 100]
    paths = []
    folder = tmp_path / "files"
    folder.mkdir()
    for k, size in enumerate(sizes):
        p = folder / f"f{k}.dcm"
        testing.write_file(p, [(0x00080016, "UI", testing.CT_IMAGE_STORAGE),
                               (0x00080018, "UI", f"1.2.{k}"),
                               (0x00081030, "LO", b"x" * size)],
                           transfer_syntax=testing.EXPLICIT_LE)
        paths.append(str(p))
    plan = batch._Plan(["StudyDescription"])
    r = _batch.extract(paths, plan.tag_array, kinds=plan.kinds, params=plan.params,
                       arena_max=100)
    assert r["status"].tolist() == [0, 0, _batch.STATUS_FALLBACK, 0,
                                    _batch.STATUS_FALLBACK, _batch.STATUS_FALLBACK,
                                    _batch.STATUS_FALLBACK]
    want = ["x" * n if n <= 100 else None for n in sizes]
    alone = [scan([p], tags=["StudyDescription"], workers=1).to_pylist()[0] for p in paths]
    assert [r["StudyDescription"] for r in alone] == want
    for workers in (1, 2):
        for batch_size in (1, 3, 1000):
            for src in (paths, folder):
                rows = [row for b in scan_batches(src, tags=["StudyDescription"],
                                                  workers=workers, batch_size=batch_size)
                        for row in b.to_pylist()]
                assert rows == alone, (workers, batch_size, src)
        assert scan(paths, tags=["StudyDescription"], workers=workers).to_pylist() == alone
    assert [r["error_type"] for r in alone] == [None] * 5 + ["LimitExceededError", None]
    assert "(0008,1030) is 120 bytes" in alone[5]["error_message"]
    assert alone[5]["error_tag"] == 0x00081030
    # the ingest's chunks too (its batches of files are cut by its own rules)
    import sqlite3

    from fastdicom.ingest import ingest
    for workers in (1, 2):
        db = str(tmp_path / f"i{workers}.sqlite")
        r = ingest([str(folder)], db, tags=["StudyDescription"], workers=workers)
        assert (r.indexed, r.failed) == (6, 1)
        with sqlite3.connect(db) as con:
            got = dict(con.execute("SELECT sop_instance_uid, StudyDescription FROM instances"))
        assert got == {f"1.2.{k}": v for k, v in enumerate(want) if v is not None}
    batches = batch._scan_chunk(plan, paths, True)
    assert len(batches) > 1 and all(len(b.column("StudyDescription").buffers()[2]) <= 100
                                    for b in batches)
    # the C limit itself: the offsets of decoded text (up to 2 bytes per byte) stay in int32
    assert 2 * _batch.ARENA_LIMIT < 2 ** 31


def test_integer_strings_out_of_range_are_null_not_an_error(tmp_path):
    # an IS value past int64 raised OverflowError out of scan (and so ended a whole ingest
    # job); one below -2**63 was clamped to it; in a chunk holding such a value the others
    # went through a double (922337203685477580 came back 922337203685477632)
    values = ["99999999999999999999", "9223372036854775808", "-9223372036854775809",
              "922337203685477580", "-9223372036854775808", "12", "1e3", "12.5", "abc"]
    want = [None, None, None, 922337203685477580, -(1 << 63), 12, 1000, None, None]
    for i, v in enumerate(values):
        testing.write_file(tmp_path / f"f{i}.dcm", [
            (0x00080016, "UI", testing.CT_IMAGE_STORAGE), (0x00080018, "UI", f"1.2.{i}"),
            (0x00200013, "IS", v), (0x00081160, "IS", f"{v}\\7")])
    paths = [str(tmp_path / f"f{i}.dcm") for i in range(len(values))]
    t = scan(paths, ["InstanceNumber", "ReferencedFrameNumber"])
    assert t.column("InstanceNumber").to_pylist() == want
    assert t.column("ReferencedFrameNumber").to_pylist() == [[w, 7] for w in want]
    assert t.column("error_type").null_count == len(values)
    for i, p in enumerate(paths):        # alone in its chunk: the same
        assert scan([p], ["InstanceNumber"]).column("InstanceNumber")[0].as_py() == want[i]


def test_repeating_groups_get_a_column_each():
    # (6000,0010) and (6002,0010) are both OverlayRows in the dictionary: the table had two
    # columns of one name (and ingest failed on it); the first group keeps the keyword
    assert schema(["60020010", "OverlayRows", "(6004,0010)"]).names[3:6] == [
        "x60020010", "OverlayRows", "x60040010"]


def test_number_text_outside_the_ds_is_forms_is_null_in_any_chunk(tmp_path):
    # IS "1.5" came back 1 when another file of the chunk sent the column down the generic
    # decoder (int() of DSfloat), "0x10" 16 through Arrow's cast, "1_000" 1000 through int();
    # "1\\2" in a single-valued column gave null or 1 depending on the chunk.  Now: the text
    # forms of PS3.5 table 6.2-1 only, the first of several values (as a binary number's)
    cases = {"1.5": (None, 1.5), "0x10": (None, None), "1_000": (None, None),
             "1\\2": (1, 1.0), " +3 ": (3, 3.0), "1e3": (1000, 1000.0), "inf": (None, None),
             "nan": (None, None), "\u0663": (None, None), "-.5E1": (-5, -5.0)}
    spoil = tmp_path / "spoil.dcm"
    testing.write_file(spoil, [(0x00080018, "UI", "9"), (0x00200013, "IS", b"1\xe9"),
                               (0x00180050, "DS", b"1\xe9"), (0x00280008, "IS", b"1\xe9")])
    tags = ["InstanceNumber", "SliceThickness"]
    for k, (text, (want_is, want_ds)) in enumerate(cases.items()):
        p = tmp_path / f"n{k}.dcm"
        raw = text.encode("utf-8")
        testing.write_file(p, [(0x00080018, "UI", f"1.{k}"), (0x00200013, "IS", raw),
                               (0x00180050, "DS", raw)])
        for t in (scan([str(p)], tags), scan([str(p), str(spoil)], tags),
                  scan([str(spoil), str(p)], tags), _python_decoded([str(p)], tags)):
            row = {r["path"]: r for r in t.to_pylist()}[str(p)]
            assert (row["InstanceNumber"], row["SliceThickness"]) == (want_is, want_ds), text


def test_us_or_ss_values_follow_pixel_representation_in_implicit_vr(tmp_path):
    # an implicit-VR file has no VR for SmallestImagePixelValue ("US or SS"): it was always
    # read as US (-2 came back 65534); pydicom and the Dataset use PixelRepresentation
    import fastdicom
    pydicom = pytest.importorskip("pydicom")
    tags = ["SmallestImagePixelValue", "LargestImagePixelValue"]
    paths = []
    for k, (pr, ts) in enumerate([(1, testing.IMPLICIT_LE), (0, testing.IMPLICIT_LE),
                                  (None, testing.IMPLICIT_LE), (1, testing.EXPLICIT_LE),
                                  (1, testing.EXPLICIT_BE)]):
        els = [(0x00080018, "UI", f"1.{k}"), (0x00280106, "SS" if pr else "US", -2 if pr else 7),
               (0x00280107, "SS" if pr else "US", -1 if pr else 65535)]
        if pr is not None:
            els.append((0x00280103, "US", pr))
        paths.append(str(tmp_path / f"u{k}.dcm"))
        testing.write_file(paths[-1], els, transfer_syntax=ts)
    want = [[pydicom.dcmread(p)[t].value for t in tags] for p in paths]
    assert want[0] == [-2, -1] and want[1] == [7, 65535]         # the oracle read them so
    assert [[getattr(fastdicom.dcmread(p), t) for t in tags] for p in paths] == want
    for t in (scan(paths, tags), _python_decoded(paths, tags)):
        assert [[r[k] for k in tags] for r in t.to_pylist()] == want
    for p, w in zip(paths, want):
        assert [scan([p], tags).to_pylist()[0][k] for k in tags] == w


def test_empty_binary_values_are_null_as_pydicom_reads_them(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    tags = ["EncapsulatedDocument", "DarkCurrentCounts", "ContrastBolusAgent"]
    for ts in (testing.IMPLICIT_LE, testing.EXPLICIT_LE):
        p = tmp_path / "b.dcm"
        testing.write_file(p, [(0x00080018, "UI", "1.2"), (0x00143050, "OB", b""),
                               (0x00180010, "LO", ""), (0x00420011, "OB", b"")],
                           transfer_syntax=ts)
        ds = pydicom.dcmread(p)
        want = [ds[t].value for t in tags]
        assert want == [None, None, ""]
        for t in (scan([str(p)], tags), _python_decoded([str(p)], tags)):
            assert [t.to_pylist()[0][k] for k in tags] == want


def test_negative_number_of_frames_is_no_frame_count(tmp_path):
    # NumberOfFrames -3 gave num_frames 1 (as if absent); 0 and 2 are kept, absent is 1
    want = {"-3": None, "0": 0, "2": 2, None: 1}
    for k, (nf, w) in enumerate(want.items()):
        p = tmp_path / f"f{k}.dcm"
        els = [(0x00080018, "UI", f"1.{k}"), (0x00280010, "US", 2), (0x00280011, "US", 2),
               (0x00280100, "US", 8), (0x7FE00010, "OB", b"\0" * 8)]
        if nf is not None:
            els.append((0x00280008, "IS", nf))
        testing.write_file(p, els)
        for t in (scan([str(p)]), _python_decoded([str(p)], ["Rows"])):
            assert t.column("num_frames")[0].as_py() == w, nf


def test_recursive_glob_matching_folders_gives_each_file_once(tmp_path):
    # "d/**/*" matches d/a and d/a/x.dcm: the folder was walked and the file read again
    # (3 files came back as 6 rows, "d/**" as 9); tags given as a generator failed
    d = tmp_path / "d"
    for sub in ("", "a", "a/b"):
        (d / sub).mkdir(parents=True, exist_ok=True)
        testing.write_file(d / sub / "x.dcm", [(0x00080018, "UI", f"1.2.{len(sub)}")])
    want = sorted(str(p) for p in d.rglob("*.dcm"))
    for pattern in (f"{d}/**/*", f"{d}/**", f"{d}/**/*.dcm", f"{d}/*"):
        t = scan(pattern, (k for k in ["SOPInstanceUID"]))
        got = t.column("path").to_pylist()
        assert sorted(got) == want, pattern        # (d/* matches d/a: walked)
        assert len(set(got)) == len(got)
    assert sorted(scan(d).column("path").to_pylist()) == want


def test_person_names_lose_empty_trailing_groups_as_pydicom(tmp_path):
    # "Wang^XiaoDong=王^小東=" (an empty phonetic group): scan kept the "=", pydicom and
    # dcmread drop it; in the fast and the generic decoder, single- and multi-valued
    import fastdicom
    pydicom = pytest.importorskip("pydicom")
    tags = ["PatientName", "OtherPatientNames", "ReferringPhysicianName"]
    paths = []
    for k, (cs, name) in enumerate([("ISO_IR 192", "Wang^XiaoDong=王^小東="),
                                    ("ISO_IR 100", "Müller^Jürgen=="),
                                    ("ISO_IR 100", "=Yamada")]):
        p = tmp_path / f"pn{k}.dcm"
        testing.write_file(p, [(0x00080005, "CS", cs), (0x00080018, "UI", f"1.{k}"),
                               (0x00080090, "PN", "A^B^^="),
                               (0x00100010, "PN", name),
                               (0x00101001, "PN", [name, "C=D="])])
        paths.append(str(p))
    for t in (scan(paths, tags), _python_decoded(paths, tags)):
        for row in t.to_pylist():
            ds = pydicom.dcmread(row["path"])
            fd = fastdicom.dcmread(row["path"])
            assert row["PatientName"] == str(ds.PatientName) == str(fd.PatientName)
            assert row["OtherPatientNames"] == [str(v) for v in ds.OtherPatientNames]
            assert row["ReferringPhysicianName"] == str(ds.ReferringPhysicianName) == "A^B^^"


def test_multi_valued_person_name_of_empty_groups_alone_is_no_value(tmp_path):
    """A multi-valued PN column: "=" or "==" (empty groups only) is no value, as an empty or
    padding-only one is, and as the Dataset's PersonName has VM 0 (it gave [""]); a value
    with a name keeps its empty values ("A\\=": two values)."""
    import fastdicom
    values = ["=", "==", "", "  ", "A\\=", "A^B=", "=B", "A\\B="]
    paths = []
    for k, v in enumerate(values):
        p = tmp_path / f"pn{k}.dcm"
        testing.write_file(p, [(0x00080018, "UI", f"1.{k}"), (0x00081070, "PN", v.encode())])
        paths.append(str(p))
    for t in (scan(paths, ["OperatorsName"]), _python_decoded(paths, ["OperatorsName"])):
        got = t.column("OperatorsName").to_pylist()
        for v, p, g in zip(values, paths, got):
            e = fastdicom.dcmread(p)["OperatorsName"]
            if e.VM == 0:
                assert g is None, (v, g)
            else:
                value = e.value if e.VM > 1 else [e.value]
                assert g == [str(x) for x in value], (v, g)
        assert got[:4] == [None] * 4 and got[4:] == [["A", ""], ["A^B"], ["=B"], ["A", "B"]]
        assert t.slice(1).column("OperatorsName").to_pylist() == got[1:]


def _reference_walk(top: str) -> list:
    """The documented walk order, built independently: a folder's entries by sorted name
    (its files, symlinks and specials where they sort), then its subfolders in name order,
    each walked the same way (depth first); symlinks not followed."""
    import stat as st_
    out = []
    names = sorted(os.listdir(top))
    subs = []
    for n in names:
        p = top + "/" + n
        mode = os.lstat(p).st_mode
        if st_.S_ISLNK(mode):
            out.append((p, "symlink"))
        elif st_.S_ISDIR(mode):
            subs.append(p)
        elif st_.S_ISREG(mode):
            out.append((p, "file"))
        else:
            out.append((p, "special"))
    for p in subs:
        out.extend(_reference_walk(p))
    return out


@pytest.mark.parametrize("run_files", [2, 3, 4096])
def test_walk_order_runs_and_chunks_match_a_reference_walk(tmp_path, monkeypatch, run_files):
    """The walk hands a folder's files over in runs (slices of at most _RUN_FILES) and the
    scan cuts them into chunks: the entries, their kinds, the scan's rows and error rows
    and every chunking stay in the order of an independent walk, whatever the run size."""
    from fastdicom import batch
    monkeypatch.setattr(batch, "_RUN_FILES", run_files)
    root = tmp_path / "t"
    src = testing.write_ct_series(tmp_path / "src", 3, 8, 8, seed=3)
    blob = src[0].read_bytes()
    layout = {
        "a": ["f1", "f2", "f3", "f4", "f5"],                  # files only
        "b": ["0.dcm", "k/", "m.dcm", "n@", "p|", "q.dcm", "r.dcm", "z/"],   # mixed
        "b/k": ["x.dcm"], "b/z": [], "c": ["d/"], "c/d": ["e/", "y.dcm"], "c/d/e": ["w.dcm"],
    }
    for folder, names in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for n in names:
            p = root / folder / n.rstrip("/@|")
            if n.endswith("/"):
                p.mkdir(exist_ok=True)
            elif n.endswith("@"):
                p.symlink_to(root / "a" / "f1")
            elif n.endswith("|"):
                os.mkfifo(p)
            else:
                p.write_bytes(blob)
    (root / "top.dcm").write_bytes(blob)
    ref = _reference_walk(str(root))
    assert len(ref) == 15 and [k for _, k in ref].count("file") == 13
    got = [(e.path, e.kind) for e in batch.iter_files([str(root)])]
    assert got == ref
    assert list(batch.walk_rows([str(root)])) == [
        (p, None if k == "file" else ("SymlinkSkipped", "symbolic link not followed")
         if k == "symlink" else ("IsADirectoryError", "not a regular file")) for p, k in ref]
    for size in (1, 2, 3, 5, 1024):
        chunks = list(batch._walk_chunks([str(root)], False, size))
        assert all(0 < len(c) <= size for c, _ in chunks)
        assert [p for c, _ in chunks for p in c] == [p for p, _ in ref]
        flat_errs = [e.get(i) for c, e in chunks for i in range(len(c))]
        assert [x is not None for x in flat_errs] == [k != "file" for _, k in ref]
    for workers in (1, 2):
        t = scan(str(root), ["Rows"], workers=workers)
        assert t.column("path").to_pylist() == [p for p, _ in ref]
        assert t.column("error_type").to_pylist() == [
            None if k == "file" else "SymlinkSkipped" if k == "symlink"
            else "IsADirectoryError" for _, k in ref]
        assert t.column("Rows").to_pylist() == [8 if k == "file" else None for _, k in ref]
        parts = list(batch.scan_batches(str(root), ["Rows"], workers=workers, batch_size=3))
        assert pa.Table.from_batches(parts).equals(t)


@pytest.mark.parametrize("follow", [False, True])
def test_a_folder_given_twice_gives_the_same_rows_however_the_list_is_cut(tmp_path, follow):
    """A list of more than 64 paths is scanned in slices, and a slice holding a folder was
    walked with a "visited" set of its own: a folder given twice (or, following symlinks,
    beside a link to it) was walked once when both fell in one slice and twice otherwise
    (72 paths: 78 rows with workers=1, 86 with workers=2 or batch_size=64)."""
    folder = tmp_path / "d"
    testing.write_ct_series(folder, 4, 4, 4)
    loose = testing.write_ct_series(tmp_path / "loose", 70, 2, 2, seed=3)
    second = folder
    if follow:
        second = tmp_path / "link"
        second.symlink_to(folder, target_is_directory=True)
    paths = [str(folder)] + [str(p) for p in loose] + [str(second)]
    expect = 4 + 70          # the folder (or the link to it) once
    ref = scan(paths, ["Rows"], workers=1, follow_symlinks=follow)
    assert ref.num_rows == expect
    for workers in (1, 2):
        assert scan(paths, ["Rows"], workers=workers, follow_symlinks=follow).equals(ref)
        for size in (5, 10, 64, 2048):
            got = pa.Table.from_batches(list(scan_batches(
                paths, ["Rows"], workers=workers, batch_size=size, follow_symlinks=follow)))
            assert got.equals(ref), (workers, size)
    # a short list is walked whole: the same rule
    assert scan([str(folder), str(second)], ["Rows"], follow_symlinks=follow).num_rows == 4


@pytest.mark.parametrize("size", [0, -1, -5, 1.5, "3", True, None])
def test_scan_batches_checks_batch_size(tmp_path, size):
    """batch_size -1 gave no batch and no row, silently; 0 a bare 'range() arg 3' error."""
    p = testing.write_ct_series(tmp_path, 2, 2, 2)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        next(scan_batches(p, ["Rows"], batch_size=size))
    assert sum(b.num_rows for b in scan_batches(p, ["Rows"], batch_size=np.int64(1))) == 2


@pytest.mark.parametrize("ts", [testing.EXPLICIT_LE, testing.IMPLICIT_LE, testing.DEFLATED_LE,
                                testing.RLE_LOSSLESS])
def test_headers_of_changing_size_in_one_chunk_read_like_pydicom(tmp_path, ts):
    # The first read of a large file is shorter after a file with a short header (see
    # SMALL_READ in _batch.pyx: that header's size + 512, in whole KiB), and a deflated
    # header is inflated in growing steps: a header past the short read (0.4 KiB to 40 KiB
    # of InstitutionAddress before most tags, some just past the KiB of the one before)
    # must read the same whatever came before it, in one chunk of one worker.
    pydicom = pytest.importorskip("pydicom")
    enc = testing.builtin_frame_encoder(ts) if ts == testing.RLE_LOSSLESS else None
    if ts == testing.RLE_LOSSLESS and enc is None:
        pytest.skip("no RLE encoder")
    pads = [0, 0, 5000, 0, 3000, 40000, 0, 0, 2500, 0, 400, 900, 0, 1500, 600, 0]
    rng = np.random.default_rng(7)
    paths = []
    for k, pad in enumerate(pads):
        # (noise: an RLE or deflated file stays past 8 KiB)
        els = testing.ct_instance_elements(rows=80, columns=80, index=k, n_slices=len(pads),
                                           pixel_array=rng.integers(0, 4096, (80, 80),
                                                                    dtype=np.uint16))
        if pad:
            els.append((0x00080081, "ST", "x" * pad))     # InstitutionAddress
        els = testing._encode_pixels_for(ts, els, enc, 16)
        p = tmp_path / f"f{k:02d}.dcm"
        testing.write_file(p, els, transfer_syntax=ts)
        paths.append(str(p))
    assert all(os.path.getsize(p) > 12000 for p in paths)
    rows = scan(paths, workers=1).to_pylist()
    for p, r in zip(paths, rows):
        ds = pydicom.dcmread(p)
        assert r["error_type"] is None, (p, r["error_message"])
        assert r["SOPInstanceUID"] == ds.SOPInstanceUID
        assert r["InstanceNumber"] == ds.InstanceNumber
        assert r["SliceLocation"] == pytest.approx(float(ds.SliceLocation))
        assert r["Rows"] == ds.Rows == 80
        assert r["PatientName"] == str(ds.PatientName)
        assert r["transfer_syntax"] == ts
        if ts == testing.DEFLATED_LE:
            assert r["pixel_offset"] is None
            assert r["pixel_length"] == len(ds.PixelData)
        else:
            # (encapsulated: the items, without the sequence delimiter, as pydicom keeps them)
            raw = Path(p).read_bytes()[r["pixel_offset"]:r["pixel_offset"] + r["pixel_length"]]
            assert raw == ds.PixelData


def test_iglob_equals_python_glob_on_a_tree_without_symlinks(tmp_path):
    """The walk's own glob gives glob.glob(recursive=True)'s matches (the oracle) where the
    two may agree: hidden names, '**' for zero or more folders, classes, trailing '/'."""
    import glob
    import random

    from fastdicom.batch import iglob
    rng = random.Random(11)
    names = ["a", "b", "ab", ".h", "x.dcm", "y.dcm", ".z.dcm", "c[1]", "d*"]

    def make(folder, depth):
        for name in rng.sample(names, 5):
            p = folder / name
            if depth < 3 and rng.random() < 0.5 and not name.endswith(".dcm"):
                p.mkdir(exist_ok=True)
                make(p, depth + 1)
            elif not p.exists():
                p.write_bytes(b"")
    make(tmp_path, 0)
    patterns = ["*", "**", "**/", "**/*.dcm", "*/*.dcm", "**/x.dcm", ".*", "**/.*", "*/",
                "a/**/b/**", "[ab]*/**/*", "?/*", "**/**/*.dcm", "c[[]1]/*", "none/*",
                "x.dcm/*", "*/a", "**/*[!m]", "a//*"]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for pattern in patterns:
            for spelled in (pattern, f"{tmp_path}/{pattern}", f"./{pattern}"):
                assert sorted(iglob(spelled)) == sorted(glob.glob(spelled, recursive=True)), \
                    spelled
    finally:
        os.chdir(cwd)


def test_recursive_glob_does_not_follow_folder_symlinks_or_their_loops(tmp_path):
    """'**' went into symlinked folders as glob.glob does: a link to '..' gave a row per
    loop turn (41 for one file), two such links never ended.  Links are followed only with
    follow_symlinks (each folder once), as in a walk."""
    import threading
    d = tmp_path / "a" / "d"
    d.mkdir(parents=True)
    testing.write_file(d / "x.dcm", [(0x00080018, "UI", "1.2.3")])
    (d / "up").symlink_to("..")
    (d / "up2").symlink_to("../..")
    real = tmp_path / "real"
    real.mkdir()
    testing.write_file(real / "r.dcm", [(0x00080018, "UI", "1.2.4")])
    (tmp_path / "a" / "linkdir").symlink_to("../real")
    result = {}

    def run():
        result["no"] = scan(f"{tmp_path}/a/**/*.dcm").column("path").to_pylist()
        result["yes"] = scan(f"{tmp_path}/a/**/*.dcm",
                             follow_symlinks=True).column("path").to_pylist()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the glob did not end"
    assert result["no"] == [str(d / "x.dcm")]
    followed = result["yes"]
    assert len(followed) == 2 and str(d / "x.dcm") in followed
    assert sum(p.endswith("/r.dcm") for p in followed) == 1      # the real folder once
    # a folder named literally in the pattern is entered as given, as in a path
    assert scan(f"{tmp_path}/a/linkdir/*.dcm").column("path").to_pylist() == \
        [f"{tmp_path}/a/linkdir/r.dcm"]


def test_a_chunks_columns_are_freed_without_the_garbage_collector(tmp_path):
    """_fast_batch's column decoder called itself, so its closure held it: every chunk's raw
    columns lived on until the cyclic collector ran (scan_batches over 200,000 tiny files
    grew from 116 to 164 MiB).  What a scan leaves to the collector must not grow with its
    chunks."""
    import gc
    for i in range(24):
        testing.write_file(tmp_path / f"f{i:02d}.dcm", [(0x00080018, "UI", f"1.2.{i}"),
                                                        (0x00100010, "PN", "A^B")])

    def garbage(batch_size):
        gc.collect()
        gc.disable()
        try:
            rows = sum(b.num_rows for b in scan_batches(tmp_path, workers=1,
                                                       batch_size=batch_size))
            return rows, gc.collect()
        finally:
            gc.enable()
    garbage(24)                                   # (first-call imports and caches)
    one_chunk, many_chunks = garbage(24), garbage(2)
    assert one_chunk[0] == many_chunks[0] == 24
    assert many_chunks[1] == one_chunk[1]


def test_a_folder_and_its_subfolder_both_given_give_a_row_each_also_when_following(tmp_path):
    """With follow_symlinks the walk of ``top`` marked ``top/sub`` as visited, so ``sub``,
    given too, was skipped: 2 rows instead of the 3 the scan gives without following (the
    docstring: a file under two inputs has a row for each)."""
    top = tmp_path / "top"
    sub = top / "sub"
    sub.mkdir(parents=True)
    for d in (top, sub):
        testing.write_file(d / "x.dcm", [(0x00080018, "UI", "1.2.3")])
    want = sorted([str(top / "x.dcm")] + [str(sub / "x.dcm")] * 2)
    for follow in (False, True):
        got = scan([top, sub], follow_symlinks=follow).column("path").to_pylist()
        assert sorted(got) == want, follow
        assert len(scan([top, top], follow_symlinks=follow)) == 2   # given twice: once


def test_raise_of_a_missing_file_is_the_oserror_open_gives(tmp_path):
    """errors="raise" on a missing file raised FileNotFoundError without errno and
    filename; open() sets both (the README: "an OSError as open gives it")."""
    missing = tmp_path / "nope.dcm"
    with pytest.raises(OSError) as ours:
        scan([missing], ["PatientID"], errors="raise")
    with pytest.raises(OSError) as theirs:
        open(missing, "rb")
    assert type(ours.value) is type(theirs.value) is FileNotFoundError
    assert (ours.value.errno, ours.value.strerror, ours.value.filename) == \
        (theirs.value.errno, theirs.value.strerror, theirs.value.filename)
    folder = tmp_path / "d"
    folder.mkdir()
    for p in (folder / "x.dcm", folder / "y.dcm"):
        p.write_bytes(b"")
    (folder / "x.dcm").chmod(0)
    if not os.access(folder / "x.dcm", os.R_OK):          # (root reads it anyway)
        with pytest.raises(PermissionError) as denied:
            scan([folder / "x.dcm"], errors="raise")
        assert denied.value.errno == 13 and denied.value.filename == str(folder / "x.dcm")


def test_a_tag_given_as_a_group_element_list_is_taken_as_its_tuple(tmp_path):
    """tags.parse_tag takes [group, element]; scan() and schema() failed on it with
    "unhashable type: 'list'" (their caches)."""
    from fastdicom.batch import schema
    testing.write_file(tmp_path / "a.dcm", [(0x00100020, "LO", "P1")])
    assert schema([[0x10, 0x20]]) == schema([(0x10, 0x20)]) == schema(["PatientID"])
    assert scan(tmp_path, [[0x10, 0x20]]).column("PatientID").to_pylist() == ["P1"]


def test_recursive_glob_over_a_tree_deeper_than_pythons_stack(tmp_path):
    """'**' walks with a stack: a tree 1,200 folders deep (Python's glob.glob raises
    RecursionError on it) gives its file."""
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for _ in range(1200):
            os.mkdir("a")
            os.chdir("a")
        testing.write_file("x.dcm", [(0x00080018, "UI", "1.2.3")])
    finally:
        os.chdir(cwd)
    try:
        rows = scan(f"{tmp_path}/**/*.dcm", ["SOPInstanceUID"]).to_pylist()
        assert [r["SOPInstanceUID"] for r in rows] == ["1.2.3"]
        assert rows[0]["path"] == str(tmp_path) + "/a" * 1200 + "/x.dcm"
    finally:
        # removed here, deepest first: shutil.rmtree recurses per level, and pytest's
        # clean-up of old temporary folders would fail on this tree in a later session
        deepest = str(tmp_path) + "/a" * 1200
        os.remove(deepest + "/x.dcm")
        for k in range(1200, 0, -1):
            os.rmdir(str(tmp_path) + "/a" * k)
