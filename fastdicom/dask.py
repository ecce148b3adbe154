"""Dask integration: header tables of many files as a ``dask.dataframe.DataFrame``.

``read_headers(paths_or_glob, tags, files_per_partition=...)`` lists the files once on the
client, then builds the frame with ``dd.from_map`` over batches of paths; each partition is
one :func:`fastdicom.batch.scan` of its batch (same schema, same rows: a symlink not
followed, a fifo or a missing path is an error row there as in ``scan``), so it runs on any
worker (everything passed to the workers pickles: lists of paths and a small callable
object).  One difference, so that the rows index as :func:`fastdicom.ingest.ingest` would:
a deflated data set is inflated to its end, as ``ingest`` does (``scan`` stops at the
Pixel Data), and one damaged behind its Pixel Data header is an error row.
Local paths use the nogil pread scanner; other fsspec URLs (``s3://``, ``gs://``,
``memory://``...) read the first bytes of each file through fsspec (extended when needed)
and parse them with :func:`fastdicom.filereader.read_buffer`.

Cluster ingestion recipe (each partition → Parquet, then index)::

    import dask.distributed, fastdicom.dask
    client = dask.distributed.Client("scheduler:8786")
    df = fastdicom.dask.read_headers("s3://bucket/landing/**/*.dcm", files_per_partition=5000)
    df.to_parquet("s3://bucket/headers/", write_index=False)   # one part per partition
    # then, on one machine, index those rows without reading the files again:
    #   fastdicom.ingest.ingest_tables("headers/", "index.sqlite")
    #   fastdicom ingest --from-parquet headers/ --db index.sqlite
    # (same ledger, states and counts as `fastdicom ingest`; a re-run over new parts skips
    # rows whose path, size and mtime_ns are indexed already), or load the parts into your
    # warehouse.

Spark and Ray use the same Arrow batches (:func:`fastdicom.batch.scan_batches`)::

    # Spark: a DataFrame of paths → header rows, one Arrow batch in, one out
    schema = fastdicom.batch.schema(tags)          # convert with pyspark's from_arrow_schema
    def headers(batches):
        for b in batches:
            yield from fastdicom.batch.scan_batches(b.column("path").to_pylist(), tags)
    spark_df = paths_df.mapInArrow(headers, spark_schema)

    # Ray Data: batch_format="pyarrow"
    ds = ray.data.from_items([{"path": p} for p in paths])
    ds = ds.map_batches(lambda t: fastdicom.batch.scan(t["path"].to_pylist(), tags),
                        batch_format="pyarrow", batch_size=2000)
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import pyarrow as pa

from .batch import (DEFAULT_TAGS, _Plan, _override_errors, _scan_chunk, _tag_tuple, schema,
                    walk_rows)
from .errors import Limits, checked_limits

__all__ = ["read_headers", "ScanPartition"]

_FIRST_READ = 16384


def _is_url(p: str) -> bool:
    return "://" in p and not p.startswith("file://")


class ScanPartition:
    """The picklable callable run per partition: scan one batch of paths to pandas."""

    def __init__(self, tags: Sequence, storage_options: Optional[dict] = None,
                 protocol: Optional[str] = None, force: bool = False,
                 limits: Optional[Limits] = None):
        self.tags = _tag_tuple(tags)
        self.limits = checked_limits(limits)
        self.storage_options = storage_options or {}
        self.protocol = protocol
        self.force = bool(force)

    def table(self, paths: list) -> pa.Table:
        """``paths``: local paths, or ``(path, walk error or None)`` pairs from the walk
        (an error row without a read: a symlink not followed, a fifo, a missing path)."""
        plan = _Plan(self.tags, force=self.force, limits=self.limits)
        if self.protocol is None:
            items = [p if isinstance(p, tuple) else (p, None) for p in paths]
            batches = _scan_chunk(plan, [p for p, _ in items], True)
            pre = [err for _, err in items]
            if any(pre):
                batches = _override_errors(batches, pre)
            return pa.Table.from_batches(batches, schema=plan.schema)
        return _scan_fsspec(plan, self.protocol, self.storage_options, list(paths))

    def __call__(self, paths: list):
        return self.table(paths).to_pandas(types_mapper=_types_mapper)


def _types_mapper(t):
    import pandas as pd
    if t == pa.string():
        return pd.StringDtype()
    if t == pa.int64():
        return pd.Int64Dtype()
    if t == pa.uint64():
        return pd.UInt64Dtype()
    if t == pa.float64():
        return pd.Float64Dtype()
    if pa.types.is_list(t) or t == pa.binary():
        # an object column of arrays (or of bytes) would be turned into text by dask's
        # string conversion (bytes that are not UTF-8 fail): list and binary columns stay
        # Arrow-backed (elements are Python lists, bytes)
        return pd.ArrowDtype(t)
    return None


def _scan_fsspec(plan, protocol, storage_options, paths) -> pa.Table:
    """Header rows of files on any fsspec filesystem, through the Python reader."""
    import fsspec
    from .batch import _decode_rows_from_buffers
    fs = fsspec.filesystem(protocol, **storage_options)
    rows = []
    for p in paths:
        rows.append(_read_remote(fs, p, plan))
    return _decode_rows_from_buffers(plan, paths, rows)


def _read_remote(fs, path, plan):
    import errno
    from .batch import _row_from_buffer
    from .errors import DicomError
    try:
        info = fs.info(path)
        size = int(info.get("size") or 0)
        mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
        mtime_ns = _mtime_ns(mtime)
        n = _FIRST_READ
        while True:
            with fs.open(path, "rb") as fh:
                data = fh.read(n)
            row = _row_from_buffer(data, path, size, mtime_ns, plan)
            if row is not None:
                return row
            n *= 8
    except (OSError, DicomError, ValueError) as exc:
        from .batch import _err_row
        if isinstance(exc, FileNotFoundError) and exc.strerror is None:
            # (fsspec raises FileNotFoundError(path): the message a local scan has)
            exc = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return {"size": None, "mtime_ns": None, "error": _err_row(exc), "values": {},
                "little": True, "ts": None, "pixel_offset": None, "pixel_length": None,
                "deflated": False}


def _mtime_ns(m) -> Optional[int]:
    if m is None:
        return None
    if hasattr(m, "timestamp"):
        return int(m.timestamp() * 1e9)
    try:
        return int(float(m) * 1e9)
    except (TypeError, ValueError):
        return None


def _list_paths(paths_or_glob, storage_options):
    import fsspec
    if isinstance(paths_or_glob, (str, bytes, os.PathLike)):
        items = [os.fsdecode(paths_or_glob)]
    else:
        items = [os.fsdecode(p) for p in paths_or_glob]
    urls = [p for p in items if _is_url(p)]
    protocols = {p.split("://", 1)[0] for p in urls}
    if urls and (len(urls) < len(items) or len(protocols) > 1):
        # (a local path would be looked for on the URLs' filesystem, one filesystem for all)
        local = [p for p in items if not _is_url(p)]
        raise ValueError("read_headers: give local paths or URLs of one filesystem, not a "
                         "mix: " + ", ".join(sorted(protocols) + ["local"] * bool(local)))
    if not urls:
        local = [p[7:] if p.startswith("file://") else p for p in items]
        # every entry of the walk, as scan() has it: the files, and the error rows of
        # symlinks, fifos and missing paths (a cluster ingest accounts for them too)
        # (a plain path for a file to scan: no tuple per file)
        return None, [p if err is None else (p, err) for p, err in walk_rows(local)]
    protocol = urls[0].split("://", 1)[0]
    fs = fsspec.filesystem(protocol, **(storage_options or {}))
    out = []
    for p in items:
        if any(c in p for c in "*?[") and not fs.exists(p):
            # (a name with glob characters that exists is taken literally, as scan() does)
            found = sorted(fs.glob(p))
        elif fs.isdir(p):
            found = sorted(f for f in fs.find(p))
        else:
            found = [p]
        for f in found:
            out.append(f if "://" in f else f"{protocol}://{f.lstrip('/')}"
                       if protocol != "memory" else f"memory://{f}" if not f.startswith("/")
                       else f"memory://{f}")
    return protocol, out


def read_headers(paths_or_glob, tags: Sequence = DEFAULT_TAGS, *,
                 files_per_partition: int = 2000, storage_options: Optional[dict] = None,
                 force: bool = False, limits: Optional[Limits] = None):
    """A ``dask.dataframe.DataFrame`` of header rows (the :func:`fastdicom.batch.scan`
    schema) for files, directories, globs or fsspec URLs, ``files_per_partition`` files per
    partition.  ``force`` and ``limits`` as in :func:`fastdicom.batch.scan`."""
    import dask.dataframe as dd
    protocol, paths = _list_paths(paths_or_glob, storage_options)
    if files_per_partition < 1:
        raise ValueError("files_per_partition must be >= 1")
    batches = [paths[i:i + files_per_partition] for i in range(0, len(paths),
                                                                files_per_partition)]
    func = ScanPartition(tags, storage_options, protocol, force, limits)
    # (func.tags: the tags read once; an iterator given as ``tags`` is empty the second time)
    meta = schema(func.tags).empty_table().to_pandas(types_mapper=_types_mapper)
    if not batches:
        return dd.from_pandas(meta, npartitions=1)
    return dd.from_map(func, batches, meta=meta, label="fastdicom-headers",
                       enforce_metadata=False)
