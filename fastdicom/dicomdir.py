"""DICOMDIR (Media Storage Directory) reading with safe resolution of Referenced File IDs.

:func:`read_dicomdir` returns a :class:`DicomDir`: its directory records (flat, in file
order, with the PATIENT > STUDY > SERIES > IMAGE hierarchy rebuilt from the record offsets
when they are consistent) and the referenced files resolved to paths under the DICOMDIR's
folder.  Every Referenced File ID component must match ``[A-Z0-9_]{1,8}`` (PS3.10 8.2);
a path that is absolute, uses ``..``, or resolves (through symlinks) outside the folder
raises :class:`~fastdicom.errors.UnsafePathError`.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from .dataset import Sequence
from .errors import DicomError, MalformedElementError, UnsafePathError

__all__ = ["DicomDir", "DirectoryRecord", "read_dicomdir", "resolve_file_id", "is_dicomdir"]

logger = logging.getLogger("fastdicom")

MEDIA_STORAGE_DIRECTORY_STORAGE = "1.2.840.10008.1.3.10"
_DIRECTORY_RECORD_SEQUENCE = 0x00041220
_COMPONENT = re.compile(r"[A-Z0-9_]{1,8}\Z")
_LENIENT_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}\Z")


@dataclass(eq=False)
class DirectoryRecord:
    """One directory record: its type, referenced file (if any) and the record's data set."""

    record_type: str
    dataset: Any
    offset: int
    file_id: Optional[tuple] = None
    path: Optional[Path] = None
    parent: Optional["DirectoryRecord"] = None
    children: list = field(default_factory=list)

    def get(self, keyword: str, default: Any = None) -> Any:
        return self.dataset.get(keyword, default)

    def __repr__(self) -> str:
        ref = f" {'/'.join(self.file_id)}" if self.file_id else ""
        return f"<DirectoryRecord {self.record_type}{ref} @{self.offset}>"


@dataclass(eq=False)
class DicomDir:
    """A read DICOMDIR: ``records`` (file order), ``roots`` (top-level records), ``root``."""

    path: Path
    root: Path
    dataset: Any
    records: list
    roots: list

    @property
    def paths(self) -> list:
        """Resolved paths of every referenced file (file order, no duplicates)."""
        seen, out = set(), []
        for r in self.records:
            if r.path is not None and r.path not in seen:
                seen.add(r.path)
                out.append(r.path)
        return out

    def walk(self) -> Iterator[DirectoryRecord]:
        """Depth-first over the hierarchy (falls back to file order when it is flat)."""
        stack = list(reversed(self.roots))
        while stack:
            r = stack.pop()
            yield r
            stack.extend(reversed(r.children))

    def __len__(self) -> int:
        return len(self.records)


def _components(value: Any) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii", "replace")
    if isinstance(value, str):
        parts = value.split("\\")
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        parts = list(value)
    else:
        # a value read with a damaged, non-text VR (numbers, a sequence): no file ID
        raise TypeError(f"Referenced File ID is not text ({type(value).__name__})")
    return tuple(p.strip(" \0") for p in parts)


def resolve_file_id(root: Any, file_id: Any, *, strict: bool = True,
                    dicomdir_path: Any = None) -> Path:
    """Resolve a Referenced File ID (components) under ``root``; raise UnsafePathError.

    Each component must match ``[A-Z0-9_]{1,8}`` (``strict``) or, when not strict, be a plain
    file name (letters, digits, ``_ . -``, not ``.``/``..``).  The resolved real path (symlinks
    followed) must stay inside ``root``.  On a case-sensitive file system a component that does
    not exist as written is matched case-insensitively in its folder.
    """
    where = None if dicomdir_path is None else os.fspath(dicomdir_path)
    try:
        comps = _components(file_id)
    except TypeError as exc:
        raise UnsafePathError(str(exc), path=where, tag=0x00041500) from None
    if not comps:
        raise UnsafePathError("empty Referenced File ID", path=where, tag=0x00041500)
    pattern = _COMPONENT if strict else _LENIENT_COMPONENT
    for c in comps:
        if c in ("", ".", "..") or "/" in c or "\\" in c or "\0" in c or os.sep in c \
                or not pattern.match(c):
            raise UnsafePathError(
                "Referenced File ID component is not a plain name of 1-8 characters "
                "A-Z 0-9 _" if strict else "Referenced File ID component is not a plain name",
                path=where, tag=0x00041500)
    root_real = os.path.realpath(os.fspath(root))
    current = root_real
    for c in comps:
        candidate = os.path.join(current, c)
        if not os.path.lexists(candidate) and os.path.isdir(current):
            try:
                matches = [n for n in os.listdir(current) if n.upper() == c.upper()]
            except OSError:
                matches = []
            if len(matches) == 1:
                candidate = os.path.join(current, matches[0])
        current = candidate
    real = os.path.realpath(current)
    try:
        inside = os.path.commonpath([root_real, real]) == root_real
    except ValueError:
        inside = False
    if not inside or real == root_real:
        raise UnsafePathError("Referenced File ID resolves outside the DICOMDIR's folder",
                              path=where, tag=0x00041500)
    return Path(real)


def is_dicomdir(path: Any) -> bool:
    """True when ``path`` is a file named DICOMDIR or whose header says Media Storage Directory."""
    p = Path(path)
    if p.name.upper() == "DICOMDIR":
        return True
    try:
        from .filereader import dcmread
        ds = dcmread(p, specific_tags=[0x00020002], stop_before_pixels=True)
        sop = ds.file_meta.get("MediaStorageSOPClassUID")
        return str(sop or "") == MEDIA_STORAGE_DIRECTORY_STORAGE
    except (DicomError, OSError):
        return False


def read_dicomdir(path: Any, *, strict: bool = True, validation: str = "warn") -> DicomDir:
    """Read a DICOMDIR: its records, their hierarchy and the referenced files' resolved paths.

    Raises :class:`UnsafePathError` when a Referenced File ID would leave the DICOMDIR's folder
    (absolute, ``..``, a symlink pointing out) or has a component that is not ``[A-Z0-9_]{1,8}``
    (``strict=False`` accepts any plain file name).  Records whose offsets are inconsistent are
    kept, in file order, as roots.
    """
    from .filereader import dcmread

    path = Path(path)
    root = path.resolve().parent
    ds = dcmread(path, mode="read", validation=validation)
    seq = ds.get("DirectoryRecordSequence")
    if seq is None:
        seq = []
    elif not isinstance(seq, Sequence):
        el = ds[0x00041220]
        raise MalformedElementError(f"DirectoryRecordSequence has VR {el.VR}, not SQ",
                                    path=str(path), offset=el.header_offset, tag=0x00041220)
    records: list = []
    by_offset: dict = {}
    for item in seq:
        # (the item's own index: a sequence of 64 KiB or more is indexed on its own, on first
        # access, and its items' positions are in that index, not the data set's)
        index = item.__dict__.get("_index")
        item_pos = getattr(item, "_item", -1)
        offset = int(index.info(item_pos)[5]) if index is not None and item_pos is not None \
            and item_pos >= 0 else -1
        rtype = str(item.get("DirectoryRecordType", "") or "").strip()
        file_id = item.get("ReferencedFileID")
        rec = DirectoryRecord(rtype, item, offset)
        if file_id not in (None, "", []):
            try:
                rec.file_id = _components(file_id)
            except TypeError as exc:
                el = item[0x00041500]
                raise MalformedElementError(f"{exc}: VR {el.VR}", path=str(path),
                                            offset=el.header_offset, tag=0x00041500) from None
            try:
                rec.path = resolve_file_id(root, rec.file_id, strict=strict,
                                           dicomdir_path=path)
            except UnsafePathError as exc:
                # where the record's Referenced File ID is in the DICOMDIR
                raise exc.with_context(offset=item[0x00041500].header_offset) from None
        records.append(rec)
        if offset >= 0:
            by_offset[offset] = rec

    roots = _link(ds, records, by_offset)
    return DicomDir(path=path, root=root, dataset=ds, records=records, roots=roots)


def _offset(dataset: Any, keyword: str) -> int:
    v = dataset.get(keyword)
    try:
        return int(v) if v is not None else 0
    except (TypeError, ValueError):
        return 0


def _link(ds: Any, records: list, by_offset: dict) -> list:
    """Rebuild the hierarchy from the record offsets; flat (all roots) when inconsistent."""
    first = _offset(ds, "OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity")
    if not records or first not in by_offset:
        return list(records)
    visited: set = set()
    roots: list = []

    def chain(start: int, parent: Optional[DirectoryRecord]) -> Optional[list]:
        out = []
        off = start
        while off:
            rec = by_offset.get(off)
            if rec is None or id(rec) in visited:
                return None
            visited.add(id(rec))
            rec.parent = parent
            out.append(rec)
            off = _offset(rec.dataset, "OffsetOfTheNextDirectoryRecord")
        return out

    # iterative depth-first linking (no recursion on hostile nesting)
    top = chain(first, None)
    if top is None:
        return list(records)
    roots = top
    pending = list(top)
    while pending:
        rec = pending.pop()
        lower = _offset(rec.dataset, "OffsetOfReferencedLowerLevelDirectoryEntity")
        if lower:
            kids = chain(lower, rec)
            if kids is None:
                for r in records:
                    r.parent = None
                    r.children = []
                return list(records)
            rec.children = kids
            pending.extend(kids)
    # records not reachable from the root chain are kept as extra roots
    for r in records:
        if id(r) not in visited:
            roots.append(r)
    return roots
