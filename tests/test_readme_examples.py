"""README.md's examples and stated behaviours, run on synthetic data (fastdicom.testing).

Each test follows one passage of README.md and asserts what it says, so that the README and the
code cannot drift apart unnoticed.  Everything here is small (files of 32x32 or 64x64).
"""
import json
import os
import sqlite3
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastdicom
from fastdicom.cli import main
from fastdicom.testing import (ct_instance_elements, encode_dataset, write_ct_series,
                               write_junk, write_mixed_set, write_multiframe)

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@pytest.fixture
def ct(tmp_path):
    return write_ct_series(tmp_path / "study", n_slices=12, rows=32, columns=32)


@pytest.fixture
def landing(tmp_path):
    """A landing folder: a few valid instances of mixed transfer syntaxes, plus junk."""
    root = tmp_path / "landing"
    valid = write_mixed_set(root, n=8, rows=32, columns=32)
    junk = write_junk(root / "junk")
    return root, valid, junk


# ---------------------------------------------------------------------------- Using it

def test_using_it_dcmread(ct):
    path = str(ct[0])
    ds = fastdicom.dcmread(path)
    pid = ds.PatientID
    assert isinstance(pid, str) and pid
    # ds["PatientID"], ds[0x00100020], ds[(0x0010, 0x0020)]: the same element
    for key in ("PatientID", 0x00100020, (0x0010, 0x0020)):
        assert ds[key].value == pid and ds[key].tag == 0x00100020
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    hdr = fastdicom.dcmread(path, stop_before_pixels=True)
    assert "PixelData" not in hdr and hdr.PatientID == pid
    some = fastdicom.dcmread(path, specific_tags=["PatientID", "Rows"])
    assert some.PatientID == pid and some.Rows == 32 and "Columns" not in some
    j = ds.to_json_dict()
    assert j["00100020"] == {"vr": "LO", "Value": [pid]}
    # path | bytes | file-like; mode="mmap"|"read"; validation="warn"|"raise"|"ignore"
    data = Path(path).read_bytes()
    import io
    assert fastdicom.dcmread(data).PatientID == pid
    assert fastdicom.dcmread(io.BytesIO(data)).PatientID == pid
    for mode in ("mmap", "read"):
        assert fastdicom.dcmread(path, mode=mode).pixel_array.shape == (32, 32)
    for v in ("warn", "raise", "ignore"):
        assert fastdicom.dcmread(path, validation=v, limits=fastdicom.Limits()).Rows == 32


def test_using_it_to_pydicom(ct):
    pytest.importorskip("pydicom")
    ds = fastdicom.dcmread(str(ct[0]))
    pds = ds.to_pydicom()
    assert pds.PatientID == ds.PatientID
    assert np.array_equal(pds.pixel_array, ds.pixel_array)


def test_using_it_dataset_vocabulary(ct):
    ds = fastdicom.dcmread(str(ct[0]))
    assert "PatientID" in ds and len(ds) == len(list(ds))
    tags = [e.tag for e in ds]
    assert tags == sorted(tags)                       # iteration in tag order
    assert len(list(ds.iterall())) >= len(ds)
    assert ds.get("NoSuchKeyword", 7) == 7
    assert "PatientID" in ds.dir("Patient")
    e = ds.data_element("PatientID")
    assert (e.tag, e.VR, e.VM, e.keyword, e.name) == (0x00100020, "LO", 1, "PatientID",
                                                     "Patient ID")
    assert e.offset > 0 and e.length >= len(e.value)
    assert "PatientID" in ds.group_dataset(0x0010)
    assert 0x00100020 in ds[0x00100000:0x00110000]
    assert hasattr(ds, "private_block")
    # value types as pydicom 3: DS/IS as float/int subclasses keeping their text, a list for
    # VM > 1, PersonName for PN
    assert isinstance(ds.SliceThickness, float) and isinstance(ds.InstanceNumber, int)
    assert str(ds.SliceThickness) == "1.25"
    assert isinstance(ds.ImagePositionPatient, list) and len(ds.ImagePositionPatient) == 3
    assert type(ds.PatientName).__name__ == "PersonName"


def test_using_it_open_multiframe(tmp_path):
    path = write_multiframe(tmp_path / "multiframe.dcm", 20, 16, 16)
    with fastdicom.open(str(path)) as f:
        copy = f.dataset.frame(17)                    # a new array
        frame = f.frame(17)                           # read-only view on the map
        arr = f.dataset.pixel_array                   # all frames, a new array
    assert copy.flags.writeable and not frame.flags.writeable
    assert arr.shape == (20, 16, 16)
    assert np.array_equal(copy, frame) and np.array_equal(arr[17], frame)
    assert frame.sum() == copy.sum()                  # the view outlives close()


# ------------------------------------------------------------ Series, batch scans, ingestion

def test_series_example(ct):
    study = ct[0].parent
    found = fastdicom.find_series(str(study) + "/")
    assert len(found) == 1
    info = found[0]
    assert info.SeriesInstanceUID and info.stack == 0 and info.split_reason is None
    assert info.shape == (12, 32, 32)
    vol = fastdicom.load_series(info, rescale=True)
    assert vol.array.shape == (12, 32, 32) and vol.array.dtype.kind == "f"
    assert vol.spacing == (1.25, 0.7, 0.7)
    # affine: (slice, row, col) -> LPS mm; slice k lies at the k-th file in slice order
    first = fastdicom.dcmread(str(ct[0]), stop_before_pixels=True)
    last = fastdicom.dcmread(str(ct[-1]), stop_before_pixels=True)
    assert np.allclose(vol.affine @ [0, 0, 0, 1], list(first.ImagePositionPatient) + [1])
    assert np.allclose(vol.affine @ [11, 0, 0, 1], list(last.ImagePositionPatient) + [1])
    assert info.geometry.regular


def test_find_series_leaves_out_non_dicom_and_damaged(tmp_path, ct):
    junk = write_junk(tmp_path / "mixed")
    for p in ct:
        (tmp_path / "mixed" / p.name).write_bytes(p.read_bytes())
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        found = fastdicom.find_series(str(tmp_path / "mixed"))
    assert any(s.num_instances == 12 for s in found)
    msgs = [str(x.message) for x in w if issubclass(x.category, fastdicom.DicomWarning)]
    # one warning for the damaged DICOM files of the walk, naming how many and the first
    assert any("damaged" in m and "left out" in m for m in msgs)
    # a file named in the input that is not DICOM: a DicomWarning
    with pytest.warns(fastdicom.DicomWarning, match="not readable as DICOM"):
        fastdicom.find_series([str(junk["text"])])


def test_slices_sharing_positions(tmp_path):
    write_ct_series(tmp_path / "dup", n_slices=3, rows=16, columns=16, slice_spacing=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (info,) = fastdicom.find_series(str(tmp_path / "dup"))
    assert not info.geometry.regular and info.issues
    with pytest.raises(fastdicom.SeriesError):
        fastdicom.load_series(info)
    # errors="skip" keeps the first slice at each shared position, with a warning
    with pytest.warns(fastdicom.DicomWarning):
        vol = fastdicom.load_series(info, errors="skip")
    assert vol.array.shape == (1, 16, 16)


SCAN_FIXED_HEAD = ["path", "size", "mtime_ns"]
SCAN_FIXED_TAIL = ["transfer_syntax", "pixel_offset", "pixel_length", "num_frames",
                   "error_type", "error_message", "error_offset", "error_tag"]


def test_scan_example_and_columns(landing):
    root, valid, junk = landing
    table = fastdicom.scan(str(root) + "/", tags=fastdicom.DEFAULT_TAGS)
    import pyarrow as pa
    assert isinstance(table, pa.Table)
    names = table.column_names
    assert names == SCAN_FIXED_HEAD + list(fastdicom.DEFAULT_TAGS) + SCAN_FIXED_TAIL
    assert table.schema == fastdicom.batch.schema(fastdicom.DEFAULT_TAGS)
    assert table.num_rows == len(valid) + len(junk)
    rows = {Path(r["path"]).name: r for r in table.to_pylist()}
    for p in valid:
        r = rows[p.name]
        assert r["error_type"] is None and r["num_frames"] == 1 and r["SOPInstanceUID"]
    # junk: an error row of its own file, never silently
    for kind in ("empty", "text", "random", "no_dicm"):
        assert rows[junk[kind].name]["error_type"] == "InvalidDicomError"
    # cut short: an error row (dcmread reads these with a DicomWarning), with offset and tag
    for kind in ("truncated_header", "truncated_pixels"):
        r = rows[junk[kind].name]
        assert r["error_type"] == "TruncatedError"
        assert r["error_offset"] is not None and r["error_tag"] is not None
    assert rows[junk["truncated_pixels"].name]["error_tag"] == 0x7FE00010   # group << 16 | el
    with pytest.warns(fastdicom.DicomWarning):
        fastdicom.dcmread(str(junk["truncated_pixels"]))


def test_scan_force_reads_raw_data_sets_only(tmp_path):
    els = ct_instance_elements(rows=8, columns=8)
    raw = tmp_path / "raw.dcm"
    raw.write_bytes(encode_dataset(els, explicit=False))    # no preamble, no DICM
    text = tmp_path / "text.dcm"
    text.write_bytes(b"not a DICOM file at all\n" * 20)
    t = fastdicom.scan([str(raw), str(text)], tags=["PatientID"])
    assert t.column("error_type").to_pylist() == ["InvalidDicomError"] * 2
    t = fastdicom.scan([str(raw), str(text)], tags=["PatientID"], force=True)
    assert t.column("error_type").to_pylist() == [None, "InvalidDicomError"]
    assert t.column("PatientID")[0].as_py() == fastdicom.dcmread(str(raw), force=True).PatientID


def test_ingest_example(tmp_path, landing):
    root, valid, junk = landing
    db = tmp_path / "index.sqlite"
    parts = tmp_path / "parts"
    result = fastdicom.ingest([str(root) + "/"], str(db), parquet=str(parts) + "/")
    counts = result.counts()
    assert sum(counts[s] for s in ("indexed", "unchanged", "duplicate", "conflict", "skipped",
                                   "failed", "missing")) == counts["files"]
    assert counts["indexed"] == len(valid) + 1              # write_junk's "valid" file too
    assert counts["failed"] == len(junk) - 1
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 3
    rows = con.execute("SELECT PatientName FROM instances WHERE Modality = 'CT'").fetchall()
    assert len(rows) == counts["indexed"]
    z = con.execute("SELECT json_extract(ImagePositionPatient, '$[2]') FROM instances").fetchall()
    assert all(isinstance(v, float) for (v,) in z)
    # the ledger: keyed by the absolute path's bytes; every file in exactly one state
    states = dict(con.execute("SELECT state, count(*) FROM files GROUP BY state").fetchall())
    assert states == {"indexed": counts["indexed"], "failed": counts["failed"]}
    assert all(bytes(p).startswith(b"/") for (p,) in con.execute("SELECT path FROM files"))
    con.close()
    assert len(list(parts.glob("part-*.parquet"))) == 1
    # the same job again: every file unchanged or failed, nothing read again
    again = fastdicom.ingest([str(root) + "/"], str(db), parquet=str(parts) + "/").counts()
    assert again["unchanged"] == counts["indexed"] and again["indexed"] == 0


def test_ingest_tag_columns(tmp_path, ct):
    db = tmp_path / "i.sqlite"
    fastdicom.ingest([str(ct[0].parent)], str(db), tags=["Manufacturer"])
    con = sqlite3.connect(db)
    cols = [r[1] for r in con.execute("PRAGMA table_info(instances)")]
    fixed = ["sop_instance_uid", "path", "display_path", "size", "mtime_ns", "sop_class_uid",
             "series_instance_uid", "study_instance_uid", "transfer_syntax_uid", "rows",
             "columns", "frames", "pixel_offset", "pixel_length"]
    assert cols[:len(fixed)] == fixed
    # the requested tag, and the tags the derived tables need, whatever the job asks
    assert set(cols[len(fixed):]) == {"Manufacturer", "PatientID", "IssuerOfPatientID",
                                      "PatientName", "PatientBirthDate", "PatientSex",
                                      "AccessionNumber", "StudyDate", "StudyTime", "StudyID",
                                      "StudyDescription", "Modality", "SeriesNumber",
                                      "SeriesDescription"}
    con.close()
    # a job asking for a new tag adds its column, NULL for the files it finds unchanged;
    # reread fills it
    fastdicom.ingest([str(ct[0].parent)], str(db), tags=["ImageType"])
    con = sqlite3.connect(db)
    assert {v for (v,) in con.execute("SELECT ImageType FROM instances")} == {None}
    con.close()
    r = fastdicom.ingest([str(ct[0].parent)], str(db), tags=["ImageType"], reread=True)
    assert r.indexed == len(ct)
    con = sqlite3.connect(db)
    assert None not in {v for (v,) in con.execute("SELECT ImageType FROM instances")}
    con.close()


def test_ingest_cli_exit_codes_and_ls(tmp_path, ct, capsys):
    db = str(tmp_path / "index.sqlite")
    folder = str(ct[0].parent)
    assert main(["ingest", folder, "--db", db, "--tags", "PatientID,(0010,0010)", "-q"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last)["indexed"] == len(ct)
    # bad usage: exit code 2 and {"error": "usage", ...}
    assert main(["ingest", folder, "--db", db, "--workers", "0", "-q"]) == 2
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last)["error"] == "usage"
    # ls: tab-separated values under a header line; the default counts files per state
    assert main(["ls", db]) == 0
    assert capsys.readouterr().out.splitlines() == ["state\tfiles", f"indexed\t{len(ct)}"]
    assert main(["ls", db, "--no-header"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"indexed\t{len(ct)}"]
    assert main(["ls", db, "--series"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    out = tmp_path / "out.parquet"
    assert main(["export", db, str(out)]) == 0
    import pyarrow.parquet as pq
    t = pq.read_table(out)
    assert t.num_rows == len(ct)
    assert str(t.schema.field("path").type) == "binary"
    assert str(t.schema.field("display_path").type) == "string"


def test_ls_failures_tag_format(tmp_path, capsys):
    junk = write_junk(tmp_path / "j")
    db = str(tmp_path / "j.sqlite")
    assert main(["ingest", str(tmp_path / "j"), "--db", db, "-q"]) == 0
    capsys.readouterr()
    assert main(["ls", db, "--failures"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["path", "error_type", "message", "offset", "tag"]
    row = [ln for ln in lines if junk["truncated_pixels"].name in ln][0].split("\t")
    assert row[1] == "TruncatedError" and row[4] == "(7FE0,0010)"


# ------------------------------------------------------------------------------- Errors

def test_errors_hierarchy_and_paths(tmp_path, landing):
    root, valid, junk = landing
    assert issubclass(fastdicom.DicomError, ValueError)
    with pytest.raises(fastdicom.InvalidDicomError) as ei:
        fastdicom.dcmread(str(junk["text"]))
    assert ei.value.path == str(junk["text"]) and hasattr(ei.value, "offset")
    assert hasattr(ei.value, "tag")
    with pytest.raises(fastdicom.TruncatedError):
        fastdicom.dcmread(str(junk["truncated_header"]), validation="raise")
    with pytest.raises(IsADirectoryError, match="not a regular file"):
        fastdicom.dcmread(str(root))
    with pytest.raises(ValueError):
        fastdicom.dcmread(str(root) + "/a\0b")
    t = fastdicom.scan([str(root), str(root) + "/a\0b"], tags=["PatientID"])
    assert "ValueError" in t.column("error_type").to_pylist()
    lim = fastdicom.Limits()
    assert lim.max_depth == 64
    for name in ("max_inflated_bytes", "decode_budget", "max_elements"):
        assert getattr(lim, name) > 0


def test_file_changed_error(tmp_path):
    big = write_ct_series(tmp_path / "big", n_slices=1, rows=64, columns=64)[0]
    assert big.stat().st_size > 8192
    p = tmp_path / "chg.dcm"
    p.write_bytes(big.read_bytes())
    ds = fastdicom.dcmread(str(p))
    p.write_bytes(big.read_bytes()[:-100])
    with pytest.raises(fastdicom.FileChangedError):       # detected before reading again
        ds.pixel_array
    # a file of at most 8 KiB is read whole: nothing is read again
    small = write_ct_series(tmp_path / "small", n_slices=1, rows=16, columns=16)[0]
    assert small.stat().st_size <= 8192
    q = tmp_path / "small.dcm"
    q.write_bytes(small.read_bytes())
    ds = fastdicom.dcmread(str(q))
    q.write_bytes(b"")
    assert ds.pixel_array.shape == (16, 16)


# ---------------------------------------------------------------------------- Performance

def test_readme_perf_block_matches_report():
    """The figures between the perf markers are docs/bench/report.md's, verbatim."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import readme_perf
    finally:
        sys.path.pop(0)
    text = README.read_text()
    block = text.split(readme_perf.START, 1)[1].split(readme_perf.END, 1)[0]
    report = (ROOT / "docs" / "bench" / "report.md").read_text()
    assert block.strip() == readme_perf.section(report).strip()
