"""Dask: read_headers on a 2-process LocalCluster and over fsspec's memory:// filesystem."""
from __future__ import annotations

import pickle

import pytest

from fastdicom import testing
from fastdicom.batch import scan

dd = pytest.importorskip("dask.dataframe")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask")
    testing.write_mixed_set(root / "m", 20)
    testing.write_junk(root / "junk")
    return root


def test_local_cluster_two_processes(tree):
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
    ref = scan(tree, ["SOPInstanceUID", "Rows", "PixelSpacing"]).to_pandas()
    assert len(pdf) == len(ref) == 28
    assert sorted(pdf["SOPInstanceUID"].dropna()) == sorted(ref["SOPInstanceUID"].dropna())
    assert int(pdf["error_type"].notna().sum()) == 6


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
