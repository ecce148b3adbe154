"""Element-level comparison of fastdicom with pydicom 3 (test helper, also run as a script)."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CORPUS = SHARED / "corpus"

# Files where fastdicom and pydicom differ and fastdicom is right (or both are defensible).
# Every entry counts as a mismatch in reported figures.
EXPECTED_DIFFERENCES: dict[str, str] = {}


def _norm(value, vr):
    import pydicom
    from pydicom.valuerep import PersonName as PydPN
    from fastdicom.charset import PersonName as FdPN
    if isinstance(value, (PydPN, FdPN)):
        return str(value)
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_norm(v, vr) for v in value]
    if isinstance(value, float):
        return "nan" if math.isnan(value) else float(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    return value


def compare_datasets(fd, pd, where="", out=None, depth=0):
    """List of differences between a fastdicom and a pydicom data set (recursive)."""
    out = [] if out is None else out
    pd_tags = [int(e.tag) for e in pd]
    fd_tags = [e.tag for e in fd]
    if pd_tags != fd_tags:
        missing = sorted(set(pd_tags) - set(fd_tags))
        extra = sorted(set(fd_tags) - set(pd_tags))
        out.append(f"{where}: tags differ: missing {[hex(t) for t in missing][:5]} extra {[hex(t) for t in extra][:5]}")
    for pe in pd:
        tag = int(pe.tag)
        if tag not in fd:
            continue
        fe = fd[tag]
        loc = f"{where}({tag >> 16:04X},{tag & 0xFFFF:04X})"
        if fe.VR != pe.VR:
            out.append(f"{loc}: VR {fe.VR} != {pe.VR}")
            continue
        if pe.VR == "SQ":
            if len(fe.value) != len(pe.value):
                out.append(f"{loc}: {len(fe.value)} items != {len(pe.value)}")
                continue
            for n, (fi, pi) in enumerate(zip(fe.value, pe.value)):
                compare_datasets(fi, pi, f"{loc}[{n}]", out, depth + 1)
            continue
        pv = pe.value
        fv = fe.value
        if _norm(fv, pe.VR) != _norm(pv, pe.VR):
            out.append(f"{loc} {pe.VR}: value differs: {str(fv)[:60]!r} != {str(pv)[:60]!r}")
    return out


def _touch(ds, depth=0):
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _touch(item, depth + 1)
        else:
            elem.value


def compare_file(path):
    """(status, differences): status in 'match', 'mismatch', 'pydicom-fails', 'both-fail',
    'fastdicom-fails'."""
    import pydicom
    import fastdicom
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        force = False
        try:
            pd = pydicom.dcmread(path)
        except Exception:
            try:
                pd = pydicom.dcmread(path, force=True)
                force = True
            except Exception as exc:  # pydicom rejects the file
                try:
                    fastdicom.dcmread(path, force=True)
                except fastdicom.DicomError:
                    return "both-fail", []
                return "pydicom-fails", [repr(exc)[:200]]
        if len(pd) == 0 and len(pd.file_meta) == 0:
            return "pydicom-fails", ["pydicom read no elements"]
        try:
            _touch(pd.file_meta)
            _touch(pd)
        except RecursionError:
            return "pydicom-fails", ["RecursionError in pydicom"]
        except Exception as exc:  # pydicom reads the file but cannot decode its elements
            return "pydicom-fails", [f"pydicom cannot decode: {exc!r}"[:200]]
        try:
            fd = fastdicom.dcmread(path, force=force)
        except fastdicom.DicomError as exc:
            return "fastdicom-fails", [repr(exc)[:300]]
        try:
            diffs = compare_datasets(fd.file_meta, pd.file_meta, "meta")
            diffs += compare_datasets(fd, pd, "")
        except RecursionError:
            return "pydicom-fails", ["RecursionError in pydicom"]
    return ("match" if not diffs else "mismatch"), diffs


def corpus_files():
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "MANIFEST.tsv")


if __name__ == "__main__":
    import collections
    import sys
    counts = collections.Counter()
    for p in corpus_files():
        status, diffs = compare_file(p)
        counts[status] += 1
        if status != "match":
            print(status, p.relative_to(CORPUS), *diffs[:3], sep="\n    ")
    print(counts)
