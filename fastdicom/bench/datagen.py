"""Cached, deterministic synthetic benchmark data on disk.

Everything is written by :mod:`fastdicom.testing` (no third-party writer) into a cache folder,
``$FASTDICOM_BENCH_DIR`` or ``~/.cache/fastdicom-bench`` by default.  Each data set lives in its
own sub-folder named after its parameters and the generator version; a ``manifest.json`` is
written last (after an atomic rename of the whole folder), so an interrupted generation is never
mistaken for a complete one.  The same parameters always give the same bytes.

Sizes come from :func:`bench_size` (``$FASTDICOM_BENCH_SIZE``, default ``"tiny"`` for CI) or
from the ``--size`` flag of ``fastdicom bench``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = [
    "DATAGEN_VERSION", "MiB", "GiB", "SLICE_ROWS", "SLICE_BYTES", "cache_dir", "parse_size",
    "format_size", "bench_size", "Plan", "DataSet", "ct_instance", "ct_series", "series_subset",
    "multiframe", "encoded_series", "mixed_set", "header_set",
]

DATAGEN_VERSION = 1
MiB = 1 << 20
GiB = 1 << 30
SLICE_ROWS = 512
SLICE_BYTES = SLICE_ROWS * SLICE_ROWS * 2  # one 512x512 16-bit frame
TINY = 4 * MiB

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000 ** 2, "mb": 1000 ** 2,
          "g": 1000 ** 3, "gb": 1000 ** 3, "t": 1000 ** 4, "tb": 1000 ** 4,
          "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def cache_dir() -> Path:
    """The cache folder: ``$FASTDICOM_BENCH_DIR`` or ``~/.cache/fastdicom-bench``."""
    env = os.environ.get("FASTDICOM_BENCH_DIR")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "fastdicom-bench"
    base.mkdir(parents=True, exist_ok=True)
    return base


def parse_size(text: Any) -> int:
    """``"1GiB"``, ``"512MiB"``, ``"2G"`` (decimal), ``"tiny"`` or an int → bytes."""
    if isinstance(text, (int, float)):
        return int(text)
    s = str(text).strip().lower().replace(" ", "")
    if s in ("", "tiny", "ci"):
        return TINY
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)([a-z]*)", s)
    if not m or m.group(2) not in _UNITS:
        raise ValueError(f"not a size: {text!r} (use e.g. 64MiB, 1GiB, 2G)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def format_size(n: float) -> str:
    """Bytes as a short binary-unit string (``"1 GiB"``, ``"64 MiB"``, ``"12.3 KiB"``)."""
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= scale:
            v = n / scale
            return f"{v:.0f} {unit}" if abs(v - round(v)) < 0.05 else f"{v:.1f} {unit}"
    return f"{int(n)} B"


def bench_size() -> int:
    """The series size asked for by ``$FASTDICOM_BENCH_SIZE`` (default: tiny, for CI)."""
    return parse_size(os.environ.get("FASTDICOM_BENCH_SIZE", "tiny"))


@dataclass(frozen=True)
class Plan:
    """How big each benchmark data set is, derived from one size (the CT series size)."""

    size: int = TINY
    quick: bool = False

    @property
    def tiny(self) -> bool:
        return self.size < 64 * MiB

    @property
    def series_slices(self) -> int:
        """Slices of the 512x512 int16 CT series (2,048 for 1 GiB)."""
        return max(4, self.size // SLICE_BYTES)

    @property
    def multiframe_frames(self) -> int:
        """Frames of the main multi-frame file: 1,024 (512 MiB) unless --size is smaller."""
        return int(min(1024, max(8, self.size // SLICE_BYTES)))

    @property
    def independence_frames(self) -> tuple[int, int]:
        """Frame counts of the small/large files of the size-independence check (128 MiB/1 GiB)."""
        if self.tiny:
            return (8, 64)
        large = int(min(2048, self.size // SLICE_BYTES))
        return (min(256, large // 8 or 1), large)

    @property
    def scaling_slices(self) -> list[int]:
        """Series sizes of the scaling plot: 64 MiB, doubling, up to the full size."""
        full = self.series_slices
        if self.tiny:
            return sorted({max(1, full // 4), max(1, full // 2), full})
        out, n = [], 128
        while n < full:
            out.append(n)
            n *= 2
        out.append(full)
        return out

    @property
    def ingest_files(self) -> int:
        """Tiny instances for the ingest rate (large enough that per-job costs amortize)."""
        return 64 if self.tiny else (4000 if self.quick else 20000)

    @property
    def rss_files(self) -> tuple[int, int]:
        """Tiny instances of the two jobs whose peak RSS is compared (issue 6: 20k, 200k)."""
        return (64, 640) if self.tiny else ((2000, 20000) if self.quick else (20000, 200000))

    @property
    def header_files(self) -> int:
        """Instances for the per-file header benchmarks (scan / mixed set)."""
        return 64 if self.tiny else (512 if self.quick else 2000)


@dataclass
class DataSet:
    """A generated data set: its folder, its files (in a meaningful order) and metadata."""

    root: Path
    paths: list[Path]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return int(sum(p.stat().st_size for p in self.paths))


def _cached(key: str, build: Callable[[Path], dict[str, Any]]) -> DataSet:
    """Return the cached data set ``key``, building it (atomically) when absent."""
    root = cache_dir() / f"v{DATAGEN_VERSION}" / key
    manifest = root / "manifest.json"
    if not manifest.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = root.parent / f".{key}.tmp-{os.getpid()}-{time.monotonic_ns()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            # Data files live in data/ so that a folder handed to a loader holds only DICOM.
            (tmp / "data").mkdir()
            meta = build(tmp / "data")
            meta["paths"] = [str(Path(p).relative_to(tmp)) for p in meta["paths"]]
            (tmp / "manifest.json").write_text(json.dumps(meta, indent=1))
            try:
                os.rename(tmp, root)
            except OSError:
                # Another process finished first: use theirs.
                if not manifest.exists():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    meta = json.loads(manifest.read_text())
    paths = [root / p for p in meta.pop("paths")]
    return DataSet(root / "data", paths, meta)


def _native_pixel_offsets(paths: list[Path], pixel_bytes: int) -> list[int]:
    """Pixel Data is the last element of the files we write: value offset = size - bytes."""
    return [p.stat().st_size - pixel_bytes for p in paths]


def ct_instance() -> DataSet:
    """One 512x512 int16 CT instance (explicit VR LE) with realistic header; meta: pixel_offset."""
    def build(tmp: Path) -> dict[str, Any]:
        from fastdicom import testing
        paths = testing.write_ct_series(tmp, 1, SLICE_ROWS, SLICE_ROWS, shuffle_names=False,
                                        seed=7, file_prefix="CT")
        return {"paths": paths, "rows": SLICE_ROWS, "columns": SLICE_ROWS, "dtype": "int16",
                "pixel_offsets": _native_pixel_offsets(paths, SLICE_BYTES)}
    return _cached("ct-instance-512", build)


def ct_series(n_slices: int) -> DataSet:
    """A 512x512 int16 CT series of ``n_slices`` files (shuffled names), paths in slice order."""
    def build(tmp: Path) -> dict[str, Any]:
        from fastdicom import testing
        paths = testing.write_ct_series(tmp, n_slices, SLICE_ROWS, SLICE_ROWS, seed=11)
        return {"paths": paths, "rows": SLICE_ROWS, "columns": SLICE_ROWS, "dtype": "int16",
                "pixel_offsets": _native_pixel_offsets(paths, SLICE_BYTES)}
    return _cached(f"ct-series-{n_slices}-512", build)


def series_subset(full: DataSet, n_slices: int) -> DataSet:
    """The first ``n_slices`` slices of ``full`` as a folder of hard links (a valid series)."""
    if n_slices >= len(full.paths):
        return full

    def build(tmp: Path) -> dict[str, Any]:
        paths = []
        for p in full.paths[:n_slices]:
            q = tmp / p.name
            try:
                os.link(p, q)
            except OSError:
                shutil.copyfile(p, q)
            paths.append(q)
        return {"paths": paths, "rows": full.meta["rows"], "columns": full.meta["columns"],
                "dtype": full.meta["dtype"], "pixel_offsets": full.meta["pixel_offsets"][:n_slices]}
    return _cached(f"{full.root.parent.name}-first-{n_slices}", build)


def multiframe(n_frames: int, rows: int = SLICE_ROWS, columns: int = SLICE_ROWS) -> DataSet:
    """A native uint16 multi-frame file; meta: pixel_offset, frame_bytes, n_frames."""
    def build(tmp: Path) -> dict[str, Any]:
        from fastdicom import testing
        path = testing.write_multiframe(tmp / "MF.dcm", n_frames, rows, columns,
                                        dtype=np.uint16, seed=3)
        frame_bytes = rows * columns * 2
        total = frame_bytes * n_frames
        return {"paths": [path], "rows": rows, "columns": columns, "dtype": "uint16",
                "n_frames": n_frames, "frame_bytes": frame_bytes,
                "pixel_offset": path.stat().st_size - total - (total % 2)}
    return _cached(f"mf-{n_frames}-{rows}x{columns}-u16", build)


_TS_NAMES = {"rle": "1.2.840.10008.1.2.5", "jpegls": "1.2.840.10008.1.2.4.80",
             "j2k": "1.2.840.10008.1.2.4.90", "jpeg-sv1": "1.2.840.10008.1.2.4.70"}


def encoded_series(codec: str, n_slices: int) -> DataSet:
    """512x512 int16 CT instances in an encapsulated syntax (``rle``, ``jpegls``, ``j2k``,
    ``jpeg-sv1``); meta: transfer_syntax and ``frames`` (file-relative (offset, length) of each
    file's single fragment, so decoders can be fed the same bytes)."""
    ts = _TS_NAMES[codec]

    def build(tmp: Path) -> dict[str, Any]:
        from fastdicom import testing
        paths = testing.write_ct_series(tmp, n_slices, SLICE_ROWS, SLICE_ROWS, seed=13,
                                        transfer_syntax=ts, shuffle_names=False,
                                        file_prefix=codec.upper().replace("-", ""))
        return {"paths": paths, "rows": SLICE_ROWS, "columns": SLICE_ROWS, "dtype": "int16",
                "transfer_syntax": ts, "frames": [_single_fragment(p) for p in paths]}
    return _cached(f"enc-{codec}-{n_slices}-512", build)


def _single_fragment(path: Path) -> list[int]:
    """(offset, length) of the first fragment after the Basic Offset Table item."""
    data = path.read_bytes()
    pos = data.rindex(b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff") + 12
    if data[pos:pos + 4] != b"\xfe\xff\x00\xe0":
        raise RuntimeError(f"{path}: unexpected encapsulation layout")
    bot_len = int.from_bytes(data[pos + 4:pos + 8], "little")
    pos += 8 + bot_len
    frag_len = int.from_bytes(data[pos + 4:pos + 8], "little")
    return [pos + 8, frag_len]


def mixed_set(n: int) -> DataSet:
    """``n`` small instances over six transfer syntaxes (see ``testing.write_mixed_set``)."""
    def build(tmp: Path) -> dict[str, Any]:
        from fastdicom import testing
        return {"paths": testing.write_mixed_set(tmp, n, seed=5)}
    return _cached(f"mixed-{n}", build)


def header_set(n: int) -> DataSet:
    """``n`` 512x512 CT instances (a series) for per-file header benchmarks."""
    return ct_series(n)


def tiny_series(n: int) -> DataSet:
    """``n`` 16x16 CT instances in series folders of 200 (ingest rate, peak-RSS checks)."""
    def build(tmp: Path) -> dict[str, Any]:
        from fastdicom import testing
        paths: list = []
        for s in range(0, n, 200):
            paths += testing.write_ct_series(tmp / f"s{s // 200:04d}", min(200, n - s), 16, 16,
                                             seed=s // 200)
        return {"paths": paths}
    return _cached(f"tiny-{n}", build)
