"""Dask: read_headers on a 2-process LocalCluster and over fsspec's memory:// filesystem."""
from __future__ import annotations

import io
import pickle

import pytest

from fastdicom import testing
from fastdicom.batch import scan

dd = pytest.importorskip("dask.dataframe")


def pd_na():
    import pandas as pd
    return pd.NA


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask")
    testing.write_mixed_set(root / "m", 20)
    testing.write_junk(root / "junk")
    return root


def _check_index_from_parts(tree, tmp_path):
    """The index built from the cluster's Parquet parts equals the one ingest builds."""
    import sqlite3
    from fastdicom.ingest import ingest, ingest_tables
    r = ingest_tables(tmp_path / "parts", tmp_path / "parts.sqlite")
    ref = ingest([tree], tmp_path / "ref.sqlite", workers=1)
    assert r.counts() == ref.counts() and r.files == 28 and r.indexed >= 20

    def rows(db):
        con = sqlite3.connect(db)
        try:
            return (con.execute("SELECT * FROM instances ORDER BY 1").fetchall(),
                    con.execute("SELECT path, state FROM files ORDER BY 1").fetchall())
        finally:
            con.close()
    assert rows(tmp_path / "parts.sqlite") == rows(tmp_path / "ref.sqlite")


def test_local_cluster_two_processes(tree, tmp_path):
    distributed = pytest.importorskip("distributed")
    from fastdicom.dask import read_headers, ScanPartition
    pickle.loads(pickle.dumps(ScanPartition(["Rows"])))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        df = read_headers(str(tree), ["SOPInstanceUID", "Rows", "PixelSpacing"],
                          files_per_partition=5)
        assert df.npartitions == 6
        pdf = df.compute()
        # the cluster recipe: each partition to Parquet (written by the workers), then index
        full = read_headers(str(tree), files_per_partition=5)
        full.to_parquet(str(tmp_path / "parts"), write_index=False)
    _check_index_from_parts(tree, tmp_path)
    ref = scan(tree, ["SOPInstanceUID", "Rows", "PixelSpacing"]).to_pandas()
    assert len(pdf) == len(ref) == 28
    assert sorted(pdf["SOPInstanceUID"].dropna()) == sorted(ref["SOPInstanceUID"].dropna())
    assert int(pdf["error_type"].notna().sum()) == 6
    # multi-valued columns come back as lists of numbers (not their text)
    ours = {u: v for u, v in zip(pdf["SOPInstanceUID"], pdf["PixelSpacing"]) if u is not pd_na()}
    theirs = {u: v for u, v in zip(ref["SOPInstanceUID"], ref["PixelSpacing"]) if u is not None}
    checked = 0
    for u, v in theirs.items():
        if v is None:
            continue
        assert [float(x) for x in ours[u]] == [float(x) for x in v], u
        checked += 1
    assert checked >= 10


def test_memory_filesystem(tree):
    fsspec = pytest.importorskip("fsspec")
    from fastdicom.dask import read_headers
    fs = fsspec.filesystem("memory")
    local = sorted(p for p in (tree / "m").iterdir())
    for p in local:
        with fs.open(f"/dicom/{p.name}", "wb") as fh:
            fh.write(p.read_bytes())
    junk = tree / "junk" / "junk_text.txt"
    with fs.open("/dicom/zz_text.txt", "wb") as fh:
        fh.write(junk.read_bytes())
    df = read_headers("memory:///dicom/*", ["SOPInstanceUID", "Rows", "PatientName"],
                      files_per_partition=8)
    pdf = df.compute(scheduler="sync")
    ref = scan(local, ["SOPInstanceUID", "Rows", "PatientName"]).to_pandas()
    assert len(pdf) == 21
    assert list(pdf["SOPInstanceUID"][:20]) == list(ref["SOPInstanceUID"])
    assert list(pdf["Rows"][:20]) == list(ref["Rows"])
    assert list(pdf["PatientName"][:20]) == list(ref["PatientName"])
    assert list(pdf["pixel_length"][:20]) == list(ref["pixel_length"])
    assert pdf["error_type"].iloc[20] == "InvalidDicomError"


def test_force_local_and_memory(tmp_path):
    """``force`` reaches the partitions: raw data sets (no preamble) are read, locally and
    through fsspec, with the values of a local forced scan; text still fails."""
    fsspec = pytest.importorskip("fsspec")
    from fastdicom.dask import read_headers, ScanPartition
    els = testing.ct_instance_elements(rows=8, columns=8, private=False)
    local = []
    for k, ts in enumerate((testing.IMPLICIT_LE, testing.EXPLICIT_LE, testing.EXPLICIT_BE)):
        p = tmp_path / f"raw{k}.dcm"
        testing.write_file(p, els, transfer_syntax=ts, preamble=None, write_meta=False)
        local.append(p)
    text = tmp_path / "zz.txt"
    text.write_bytes(b"plain text, not DICOM\n" * 10)
    local.append(text)
    tags = ["SOPInstanceUID", "Rows", "PatientName", "PixelSpacing"]
    assert pickle.loads(pickle.dumps(ScanPartition(tags, force=True))).force
    ref = scan(local, tags, force=True).to_pandas()
    assert ref["error_type"].isna().sum() == 3
    fs = fsspec.filesystem("memory")
    for p in local:
        with fs.open(f"/forced/{p.name}", "wb") as fh:
            fh.write(p.read_bytes())
    for src in (str(tmp_path), "memory:///forced/*"):
        plain = read_headers(src, tags, files_per_partition=2).compute(scheduler="sync")
        assert list(plain["error_type"]) == ["InvalidDicomError"] * 4, src
        pdf = read_headers(src, tags, files_per_partition=2, force=True).compute(
            scheduler="sync")
        assert list(pdf["SOPInstanceUID"][:3]) == list(ref["SOPInstanceUID"][:3]), src
        assert list(pdf["Rows"][:3]) == [8, 8, 8]
        assert list(pdf["PatientName"][:3]) == list(ref["PatientName"][:3])
        assert [list(x) for x in pdf["PixelSpacing"][:3]] == \
            [list(x) for x in ref["PixelSpacing"][:3]]
        assert pdf["error_type"].iloc[3] == "InvalidDicomError"


def test_walk_errors_are_rows_as_in_scan(tmp_path):
    """A symlink not followed, a fifo and a missing path are error rows of read_headers, as
    they are of scan(), so the index built from the parts accounts for them."""
    import os
    import dask
    from fastdicom.dask import read_headers
    from fastdicom.ingest import ingest, ingest_tables
    root = tmp_path / "t"
    testing.write_ct_series(root, 3, 8, 8)
    first = sorted(root.iterdir())[0]
    os.symlink(first, root / "link.dcm")
    os.mkfifo(root / "fifo.dcm")
    inputs = [str(root), str(tmp_path / "missing.dcm")]
    with dask.config.set(scheduler="synchronous"):
        got = read_headers(inputs, ["Rows"], files_per_partition=2).compute()
        read_headers(inputs, files_per_partition=2).to_parquet(str(tmp_path / "parts"),
                                                               write_index=False)
    ref = scan(inputs, ["Rows"])
    assert list(got["path"]) == ref.column("path").to_pylist()
    assert [None if e is pd_na() else e for e in got["error_type"]] == \
        ref.column("error_type").to_pylist() == \
        [None, None, None, "IsADirectoryError", "SymlinkSkipped", "FileNotFoundError"]
    r = ingest_tables(tmp_path / "parts", tmp_path / "parts.sqlite")
    want = ingest(inputs, tmp_path / "ref.sqlite", workers=1)
    assert r.counts() == want.counts()
    assert (r.files, r.indexed, r.skipped, r.failed) == (6, 3, 2, 1)


def test_binary_columns_keep_their_bytes(tmp_path):
    # binary columns (OB/OW/UN tags) became text: bytes that are not UTF-8 raised
    # UnicodeDecodeError at compute; now they stay bytes, as in scan's table
    from fastdicom.dask import read_headers
    p = tmp_path / "d.dcm"
    value = b"\xff\xfe\x00abc\x80\x01"
    testing.write_file(p, [(0x00080018, "UI", "1.2"), (0x00420011, "OB", value)])
    tags = ["SOPInstanceUID", "EncapsulatedDocument"]
    pdf = read_headers([str(p)], tags).compute(scheduler="sync")
    assert pdf["EncapsulatedDocument"].tolist() == [value]
    assert scan([p], tags).column("EncapsulatedDocument").to_pylist() == [value]


def test_bytes_paths_mixed_inputs_and_missing_files(tree, tmp_path):
    """bytes paths raised TypeError; a list mixing a local folder and a memory:// URL looked
    for the folder on the memory filesystem (one FileNotFoundError row for 20 files); a
    missing file over fsspec had its path as the message instead of the OS's."""
    fsspec = pytest.importorskip("fsspec")
    import os
    from fastdicom.dask import read_headers
    folder = tree / "m"
    tags = ["SOPInstanceUID"]
    as_str = read_headers([str(folder)], tags).compute(scheduler="sync")
    as_bytes = read_headers([os.fsencode(folder)], tags).compute(scheduler="sync")
    assert as_bytes.equals(as_str) and len(as_str) == 20
    assert read_headers(os.fsencode(folder), tags).compute(scheduler="sync").equals(as_str)
    fs = fsspec.filesystem("memory")
    with fs.open("/mixed/a.dcm", "wb") as fh:
        fh.write(next(folder.iterdir()).read_bytes())
    for mixed in ([str(folder), "memory:///mixed/a.dcm"],
                  ["memory:///mixed/a.dcm", "file:///nope.dcm"],
                  ["memory:///mixed/a.dcm", "s3://bucket/a.dcm"]):
        with pytest.raises(ValueError, match="not a mix"):
            read_headers(mixed, tags)
    gone = read_headers(["memory:///mixed/nope.dcm"], tags).compute(scheduler="sync")
    local = scan([str(tmp_path / "nope.dcm")], tags)
    assert list(gone["error_type"]) == local.column("error_type").to_pylist()
    assert list(gone["error_message"]) == local.column("error_message").to_pylist() == \
        ["No such file or directory"]


def test_memory_url_whose_name_has_glob_characters_is_taken_literally():
    """An existing memory:// file named "br[1].dcm" got no row (the URL was taken for a
    glob, whose class did not match the name); scan() takes such a local name literally."""
    fsspec = pytest.importorskip("fsspec")
    from fastdicom.dask import read_headers
    fs = fsspec.filesystem("memory")
    buffer = io.BytesIO()
    testing.write_file(buffer, [(0x00080018, "UI", "1.2.9")])
    with fs.open("/literal/br[1].dcm", "wb") as fh:
        fh.write(buffer.getvalue())
    pdf = read_headers("memory:///literal/br[1].dcm", ["SOPInstanceUID"]).compute(
        scheduler="sync")
    assert list(pdf["SOPInstanceUID"]) == ["1.2.9"]
    assert list(pdf["error_type"].isna()) == [True]


def test_tags_given_as_an_iterator_are_in_the_meta_too(tmp_path):
    """The partitions read the iterator; the meta then had no tag columns, and
    ``df["PatientID"]`` raised KeyError (scan takes an iterator of tags)."""
    from fastdicom.dask import read_headers
    testing.write_file(tmp_path / "a.dcm", [(0x00100020, "LO", "P1"), (0x00280010, "US", 4)])
    df = read_headers(tmp_path, (t for t in ["PatientID", "Rows"]), files_per_partition=1)
    assert list(df.columns) == scan(tmp_path, ["PatientID", "Rows"]).column_names
    assert df["PatientID"].compute(scheduler="sync").tolist() == ["P1"]
    assert df["Rows"].compute(scheduler="sync").tolist() == [4]
