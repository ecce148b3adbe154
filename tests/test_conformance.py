"""Element-level and DICOM JSON conformance with pydicom 3 over the shared corpus."""
import json
import math
import warnings

import pytest

import fastdicom
from _data import require_shared
from conformance import EXPECTED_DIFFERENCES, compare_file, corpus_files

pytest.importorskip("pydicom")

# fastdicom differs from pydicom here, and fastdicom is right (or pydicom reads nothing).
# Each entry counts as a mismatch in every reported figure.
EXPECTED_DIFFERENCES.update({
    # (0040,A170) written with VR CS in an implicit VR file: fastdicom keeps the text value;
    # pydicom builds a one-item sequence out of the text bytes.
    "dcm4che/test-data/Tag-0040-A170-VR-CS.dcm": "SQ-tagged element holding text",
    # Undefined-length sequence/fragments cut by EOF: pydicom returns an empty data set (it
    # drops everything read so far); fastdicom keeps every complete element with a warning.
    "fo-dicom/Tests/GH1339.dcm": "EOF inside an undefined-length sequence",
    "pydicom-data/emri_small_jpeg_2k_lossless_too_short.dcm": "EOF inside the pixel fragments",
})


def _files():
    return [p for p in corpus_files()] if corpus_files.__module__ else []


def test_corpus_matches_pydicom():
    shared = require_shared()
    corpus = shared / "corpus"
    files = sorted(p for p in corpus.rglob("*") if p.is_file() and p.name != "MANIFEST.tsv")
    assert len(files) > 500
    results = {}
    for path in files:
        rel = str(path.relative_to(corpus))
        status, diffs = compare_file(path)
        results[rel] = (status, diffs)
    readable = {k: v for k, v in results.items() if v[0] in ("match", "mismatch", "fastdicom-fails")}
    matched = [k for k, v in readable.items() if v[0] == "match" and k not in EXPECTED_DIFFERENCES]
    unexpected = {k: v for k, v in readable.items()
                  if v[0] != "match" and k not in EXPECTED_DIFFERENCES}
    rate = len(matched) / len(readable)
    print(f"element-level match: {len(matched)}/{len(readable)} = {rate:.2%}")
    assert not unexpected, unexpected
    assert rate >= 0.99
    # files pydicom rejects: fastdicom must give a DicomError (never another exception)
    for k, (status, _) in results.items():
        if status == "pydicom-fails":
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = fastdicom.dcmread(corpus / k, force=True)
                    ds.to_json_dict()
            except fastdicom.DicomError:
                pass


def _norm(x):
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if isinstance(x, dict):
        return {k: _norm(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_norm(v) for v in x]
    return x


def test_json_matches_oracles():
    shared = require_shared()
    corpus = shared / "corpus"
    oracles = shared / "oracles" / "metadata"
    ok, bad = 0, []
    for path in sorted(p for p in corpus.rglob("*") if p.is_file() and p.name != "MANIFEST.tsv"):
        rel = str(path.relative_to(corpus))
        oracle_path = oracles / (rel.replace("/", "__") + ".json")
        if not oracle_path.exists():
            continue
        oracle = json.loads(oracle_path.read_text())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = fastdicom.dcmread(path, force=oracle["read_with_force"])
            got = ds.to_json_dict(1024, lambda e: "BULK")
            meta = ds.file_meta.to_json_dict(1024, lambda e: "BULK")
        if _norm(got) == _norm(oracle["dataset"]) and _norm(meta) == _norm(oracle["file_meta"]):
            ok += 1
        elif rel not in EXPECTED_DIFFERENCES:
            bad.append(rel)
    print(f"DICOM JSON match: {ok} files; unexpected differences: {bad}")
    assert not bad
    assert ok >= 540
