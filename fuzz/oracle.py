"""The "full decoding" oracle shared by the fuzz harnesses and the mutation/property tests.

:func:`exercise` reads a buffer with :func:`fastdicom.dcmread`, decodes every value of every
element recursively (file meta included), renders the data set, exports DICOM JSON and decodes
the pixel data when present.  Bad input may raise :class:`fastdicom.DicomError` (caught here);
anything else escapes and is a bug.  Parts of the library still being written
(``fastdicom.json``, ``fastdicom.pixels.pixel_array``) are skipped while they are missing.
"""
from __future__ import annotations

import importlib
import importlib.util
import warnings
from typing import Optional

import numpy as np

import fastdicom
from fastdicom.errors import DicomError


def _has_pixels() -> bool:
    try:
        pixels = importlib.import_module("fastdicom.pixels")
    except ImportError:
        return False
    return callable(getattr(pixels, "pixel_array", None))


def _has_json() -> bool:
    return importlib.util.find_spec("fastdicom.json") is not None


HAVE_PIXELS = _has_pixels()
HAVE_JSON = _has_json()


def walk(ds, depth: int = 0) -> int:
    """Decode every value below ``ds``; return the number of elements visited."""
    n = 0
    for elem in ds:
        n += 1
        value = elem.value
        elem.VM
        repr(elem)
        if elem.VR == "SQ" and isinstance(value, list):
            # an SQ whose bytes are not a sequence falls back to text/bytes (pydicom's rule)
            for item in value:
                if isinstance(item, fastdicom.Dataset):
                    n += walk(item, depth + 1)
    return n


def exercise(data, *, validation: str = "warn", pixels: bool = True, json: bool = True,
             force: bool = True):
    """Run ``data`` through dcmread + full decoding; returns the Dataset or the DicomError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = fastdicom.dcmread(data, force=force, validation=validation)
            ds.preamble_kind
            walk(ds)
            if ds.file_meta is not None:
                walk(ds.file_meta)
            if json and HAVE_JSON:
                ds.to_json_dict()
            if pixels and HAVE_PIXELS and 0x7FE00010 in ds:
                ds.pixel_array
            return ds
        except DicomError as exc:
            return exc


def exercise_file(path, *, validation: str = "warn"):
    """:func:`exercise` through ``dcmread(path)`` and ``fastdicom.open(path)`` (header from
    a pread prefix, lazy map) and, for pixel data, every frame read both ways (new array and
    view).  The result must agree with a full read of the same bytes: the same error class or
    the same data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = fastdicom.dcmread(path, force=True, validation=validation)
            walk(ds)
            if HAVE_PIXELS and 0x7FE00010 in ds:
                ds.pixel_array
        except DicomError:
            pass
        try:
            # the header-only read (one C call for a clean header, else the general reader)
            walk(fastdicom.dcmread(path, stop_before_pixels=True, validation=validation))
        except DicomError:
            pass
        try:
            with fastdicom.open(path, force=True, validation=validation) as f:
                ds = f.dataset
                walk(ds)
                if HAVE_JSON:
                    ds.to_json_dict()
                if HAVE_PIXELS and 0x7FE00010 in ds:
                    n = ds.num_frames
                    for k in (0, n - 1):
                        ds.frame(k)
                        f.frame(k)
                return ds
        except DicomError as exc:
            return exc


def exercise_layers(path):
    """The layers above the reader on one file: a batch scan (one row, whatever the bytes),
    find_series + load_series (zero-filling what cannot be read) and read_dicomdir.  Each
    gives a result or a DicomError."""
    from fastdicom.batch import scan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = scan([path])
        if table.num_rows != 1:
            raise AssertionError(f"scan gave {table.num_rows} rows for one file")
        try:
            for stack in fastdicom.find_series(path):
                for rescale in (False, True):
                    vol = fastdicom.load_series(stack, errors="skip", rescale=rescale)
                    if not np.isfinite(vol.affine).all():
                        raise AssertionError(f"affine not finite: {vol.affine}")
        except DicomError:
            pass
        try:
            fastdicom.read_dicomdir(path)
        except DicomError:
            pass


# ------------------------------------------------------------------ the nogil walks' oracle

def outcome(fn, *args):
    """``fn(*args)``, or the class of the DicomError or OSError it raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args)
        except (DicomError, OSError) as exc:
            return type(exc)


def general_row(path, plan=None) -> dict:
    """The row :func:`fastdicom.scan` (or a job with ``plan``: ingest and dask check
    deflated Pixel Data) gives for ``path`` through its per-file general reader."""
    from fastdicom import batch
    plan = plan or batch._scan_plan(tuple(batch.DEFAULT_TAGS), False)
    row = batch.read_header_row(str(path), plan.tag_list, check_deflated=plan.check_deflated)
    return batch._scan_table(plan, [str(path)], False, rows=[row]).to_pylist()[0]


def remote_row(path, plan) -> Optional[dict]:
    """The row fastdicom.dask gives for the same bytes read through fsspec (``memory://``):
    prefix reads of growing size into the per-file reader.  None without fsspec."""
    try:
        import fsspec
    except ImportError:
        return None
    from pathlib import Path
    from fastdicom import batch
    from fastdicom import dask as fd_dask
    fs = fsspec.filesystem("memory")
    url = f"/fastdicom-walks/{Path(path).name}"
    fs.pipe(url, Path(path).read_bytes())
    try:
        row = fd_dask._read_remote(fs, url, plan)
        return batch._decode_rows_from_buffers(plan, [url], [row]).to_pylist()[0]
    finally:
        fs.rm(url)


_COMPANY: dict = {}


def company_file(tags) -> str:
    """A file whose element of each of ``tags`` (text and number columns) carries another
    explicit VR (UT): scanned beside it, every such column of the chunk is decoded in Python
    (``batch._slow_column``), whatever the other files hold.  Written once per process."""
    import os
    import struct
    import tempfile
    from fastdicom import batch
    key = (os.getpid(), tuple(tags))
    if key in _COMPANY:
        return _COMPANY[key]
    ts = b"1.2.840.10008.1.2.1\0"
    meta = b"\2\0\x10\0UI" + struct.pack("<H", len(ts)) + ts
    body = b""
    for spec in sorted(batch._specs(tuple(tags)), key=lambda s: s.tag):
        if (spec.tag >> 16) <= 2 or spec.vr == "SQ" or spec.tag >= 0x7FE00000 or \
                spec.value_type == batch.pa.binary():
            continue
        body += struct.pack("<HH", spec.tag >> 16, spec.tag & 0xFFFF) + b"UT\0\0" + \
            struct.pack("<I", 2) + b"9 "
    data = b"\0" * 128 + b"DICM" + b"\2\0\0\0UL\4\0" + struct.pack("<I", len(meta)) + \
        meta + body
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    path = os.path.join(folder, f"fastdicom-fuzz-walk-company-{os.getpid()}.dcm")
    with open(path, "wb") as f:
        f.write(data)
    _COMPANY[key] = path
    return path


def walks_agree(path) -> bool:
    """Assert (AssertionError) that the nogil header walks read the file ``path`` as the
    general reader does, and that its row does not depend on the files scanned with it
    (beside :func:`company_file`, its columns are decoded in Python): scan's walk (with
    scan's plan, and with the plan of ingest and
    dask, which checks deflated Pixel Data) against scan's per-file general reader, the dask
    reader's prefix reads against scan's walk, and the series walk
    (``fastdicom._series.scan_headers``, with the frame-count check find_series applies to
    its headers) against :func:`fastdicom.series.scan_instance`.
    Returns True when the series walk took the file itself (did not leave it to the general
    reader)."""
    import dataclasses
    from fastdicom import batch, _series
    from fastdicom.series import InstanceHeader, _finish_walked_header, scan_instance
    tags = tuple(batch.DEFAULT_TAGS)
    path = str(path)
    fast_row = outcome(lambda p: batch.scan([p], tags=tags).to_pylist()[0], path)
    general = outcome(general_row, path)
    if fast_row != general:
        raise AssertionError(f"scan: walk {fast_row} != general reader {general} ({path})")
    company = outcome(lambda p: batch.scan([p, company_file(tags)], tags=tags).to_pylist()[0],
                      path)
    if company != fast_row:
        raise AssertionError(f"scan beside a file decoded in Python: {company} != alone"
                             f" {fast_row} ({path})")
    checked = batch._Plan(tags)
    fast_row = outcome(lambda p: batch._scan_table(checked, [p], False).to_pylist()[0], path)
    general = outcome(general_row, path, checked)
    if fast_row != general:
        raise AssertionError(f"ingest plan: walk {fast_row} != general reader {general}"
                             f" ({path})")
    remote = remote_row(path, checked)
    if remote is not None:
        mine = {k: v for k, v in fast_row.items() if k not in ("path", "mtime_ns")}
        theirs = {k: v for k, v in remote.items() if k not in ("path", "mtime_ns")}
        if mine != theirs:
            raise AssertionError(f"dask reader: {theirs} != scan's walk {mine} ({path})")
    general = outcome(scan_instance, path)
    fast = _series.scan_headers([path], InstanceHeader)[0]
    if fast is False:
        return False
    if fast is not None:
        # what find_series makes of a walked header: its frame count checked against the
        # pixel bytes present (the walk itself does not)
        fast = outcome(_finish_walked_header, fast)
    if isinstance(fast, InstanceHeader) and isinstance(general, InstanceHeader):
        if dataclasses.asdict(fast) != dataclasses.asdict(general):
            raise AssertionError(f"series walk {fast} != general reader {general} ({path})")
    elif fast is not general:       # None (no pixel data) or the same error class
        raise AssertionError(f"series walk {fast} != general reader {general} ({path})")
    return True
