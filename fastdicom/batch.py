"""Batch header scan: many files → one typed :class:`pyarrow.Table`, on a thread pool.

``scan(paths, tags)`` reads only header bytes (a small ``pread``, extended when needed) of
every file, walks to Pixel Data in nogil Cython (:mod:`fastdicom._batch`) and decodes the raw
values of the requested tags to Arrow columns in vectorised form.  Files the fast path does not
handle (no preamble, implicit-VR meta, contradictory encodings, truncated or malformed
headers, an unknown VR, anything doubtful inside a sequence...) are read with the full Python
reader, which gives the same lenient results and the same errors as :func:`fastdicom.dcmread`
(a test mutates files to check that both paths give one row).  Pixels are never read; files
are never mapped.  Two differences from ``dcmread``: a file cut short -- a header element or
the Pixel Data value running past the end of the file, which ``dcmread`` reads with a
:class:`~fastdicom.DicomWarning` -- is an error row (``TruncatedError``); and the Pixel Data of
a deflated file is not inflated, so a deflate stream damaged behind the Pixel Data header gives
a row without an error (``ingest`` and :mod:`fastdicom.dask` check it and record the file as
failed).

Schema (fixed for a given ``tags`` list, see :func:`schema`):

=================  =============================================================================
``path``           string: the path as given / walked (undecodable bytes as ``\\udcXX`` escapes
                   are replaced by U+FFFD here; :mod:`fastdicom.ingest` keeps them losslessly)
``size``           int64: file size from ``fstat`` at open
``mtime_ns``       int64
one per keyword    typed from the data dictionary: US/SS/UL/SL/SV/IS/AT → int64,
                   UV → uint64 (its values reach 2**64 - 1), FL/FD/DS → float64, text VRs
                   → string (DA/TM/DT/PN in their DICOM form, trailing padding removed, PN
                   decoded with Specific Character Set),
                   OB/OW/UN/... → binary.  ``list<...>`` when the dictionary VM allows more
                   than one value.  Absent or empty values are null (an empty text value of a
                   single-valued text column is ``""``); a value of padding alone (spaces,
                   NULs) is empty; a number that does not fit its type is null, and so
                   is DS/IS text outside PS3.5's forms (``0x10``, ``1_000``, ``inf``; IS
                   ``1.5``) and a float (FD/FL) in an integer column that is no integer;
                   a single-valued number column holds the first of several values, a
                   single-valued text column the whole text (``"A\\B"``, only its ends
                   stripped); UI values lose surrounding whitespace (tab, newline... as
                   pydicom's UID() strips them; of a UI list, each value: whitespace alone
                   is no value), and so do AE values (with the NULs among it); UR
                   values lose trailing whitespace and NULs, PN values their empty trailing
                   component groups (``"A^B ="`` is ``"A^B "``); an element with another
                   explicit VR than the dictionary's is read with its own (DS/IS text in
                   a text column: the text; any text in a number column: by PS3.5's DS/IS
                   forms), except a binary VR (US, FD, OB...) on a text tag: its bytes are
                   read as the dictionary's text.  A row does not depend on the files scanned
                   with it (a value of more than 512 MiB of one file is a
                   ``LimitExceededError`` row: Arrow's int32 offsets).  A "US or SS" tag read
                   without a VR follows PixelRepresentation.  A tag
                   without a keyword is named ``x<tag>`` (``x00091001``), and so is a
                   repeating-group tag past the group its keyword names (``x60020010``).
``transfer_syntax`` string
``pixel_offset``   int64: file offset of the Pixel Data value (null when absent or deflated)
``pixel_length``   int64: its value length (for encapsulated data: bytes up to the sequence
                   delimiter)
``num_frames``     int64: NumberOfFrames (null when negative), else 1 when Pixel Data is
                   present, else null
``error_type``     string: exception class name (``InvalidDicomError``, ``TruncatedError``,
                   ``FileChangedError``, ``PermissionError``...) or null
``error_message``  string: the message (never element values)
``error_offset``   int64: byte offset in the file of the element at fault, or null
``error_tag``      int64: its tag as ``group << 16 | element`` (e.g. 0x00100010), or null
=================  =============================================================================

Rows with an error carry ``path``, ``size``/``mtime_ns`` when known, and nulls elsewhere.

Performance notes.  One nogil call per chunk of files (:func:`fastdicom._batch.extract`)
opens, reads and walks every file *and* turns the raw values into the buffers of the final
Arrow arrays (text stripped and transcoded from ISO_IR 6/100/192 to UTF-8, DS/IS parsed,
binary numbers byte-swapped, lists split); Python only wraps those buffers, so threads scale.
Columns holding anything outside that fast grammar (other character sets, escapes, odd
numbers...) are decoded by the generic Python code, with the same results.  A long explicit
list of paths is opened directly (``O_NOFOLLOW | O_NONBLOCK``, no ``lstat`` per file); a
slice of it that turns out to hold directories, symlinks, special files or globs is walked
instead, in place.  :func:`scan` does not inflate the Pixel Data of deflated files to check
that it is complete (it only reads headers); :mod:`fastdicom.ingest` does.
"""
from __future__ import annotations

import errno as _errno
import fnmatch as _fnmatch
import itertools
import math
import operator
import os
import re
import threading
import stat as _stat
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import Iterator, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import _batch
from ._stop import stops_as_themselves
from . import tags as _tags
from .errors import (DEFAULT_LIMITS, DicomError, FileChangedError, Limits, TruncatedError,
                     checked_limits)

__all__ = ["DEFAULT_TAGS", "scan", "scan_batches", "schema", "iter_files", "WalkEntry",
           "read_header_row"]

#: The tags :func:`scan` reads by default: identity, hierarchy, geometry and pixel layout.
DEFAULT_TAGS: tuple[str, ...] = (
    "SpecificCharacterSet", "ImageType", "SOPClassUID", "SOPInstanceUID", "StudyDate",
    "SeriesDate", "StudyTime", "AccessionNumber", "Modality", "Manufacturer",
    "StudyDescription", "SeriesDescription", "PatientName", "PatientID", "IssuerOfPatientID",
    "PatientBirthDate", "PatientSex", "BodyPartExamined", "SliceThickness",
    "StudyInstanceUID", "SeriesInstanceUID", "StudyID", "SeriesNumber", "InstanceNumber",
    "ImagePositionPatient", "ImageOrientationPatient", "FrameOfReferenceUID",
    "SliceLocation", "SamplesPerPixel", "PhotometricInterpretation", "NumberOfFrames",
    "Rows", "Columns", "PixelSpacing", "BitsAllocated", "BitsStored", "PixelRepresentation",
    "WindowCenter", "WindowWidth", "RescaleIntercept", "RescaleSlope",
)

_TS_TAG = 0x00020010
_CHARSET_TAG = 0x00080005
_FRAMES_TAG = 0x00280008
_INT_VRS = frozenset({"US", "SS", "UL", "SL", "SV", "UV", "IS", "AT"})
_FLOAT_VRS = frozenset({"FL", "FD", "DS"})
_BIN_FMT = {"US": "u2", "SS": "i2", "UL": "u4", "SL": "i4", "SV": "i8", "UV": "u8",
            "FL": "f4", "FD": "f8"}
_BYTES_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})
_BOTH_STRIP = frozenset({"AE", "DS", "IS", "UI"})   # values padded on both sides
# what Python's str.strip() strips of ASCII: a UI value is read as pydicom's (and the Dataset's)
# UID() keeps it, the whole value without trailing spaces and NULs and then each value without
# its surrounding whitespace (a NUL is not whitespace there).  The vectorised path sees ASCII
# UI values only (anything beyond is decoded by _py_value, where str.strip() also takes the
# latin-1 NEL and NBSP off)
_UI_SPACE = " \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"
DEFAULT_BATCH_FILES = 2048
_CHUNK_FILES = 1024
# the most paths of one folder's regular files the walk hands over at once
_RUN_FILES = 4096


class _Spec:
    __slots__ = ("keyword", "tag", "vr", "multi", "type", "value_type")

    def __init__(self, keyword, tag, vr, multi):
        self.keyword, self.tag, self.vr, self.multi = keyword, tag, vr, multi
        base = vr.split(" or ")[0] if vr else "UN"
        if vr and " or " in vr and vr.startswith("OB"):
            base = "OB"
        if base == "UV":
            t = pa.uint64()       # values up to 2**64 - 1 (int64 would wrap them)
        elif base in _INT_VRS:
            t = pa.int64()
        elif base in _FLOAT_VRS:
            t = pa.float64()
        elif base in _BYTES_VRS:
            t = pa.binary()
            self.multi = multi = False
        else:
            t = pa.string()
        self.value_type = t
        self.type = pa.list_(t) if multi else t


@lru_cache(maxsize=256)
def _specs(tags: tuple) -> tuple:
    out = []
    seen = set()
    for t in tags:
        if isinstance(t, str) and _tags.tag_for_keyword(t) is not None:
            tag = _tags.tag_for_keyword(t)
        else:
            tag = _tags.parse_tag(t)
        keyword = _tags.keyword_for_tag(tag)
        if not keyword or _tags.tag_for_keyword(keyword) != tag:
            # no keyword, or the keyword of a repeating group (60xx,0010 are all OverlayRows)
            # that names its first group only: the other groups' columns must not share it
            keyword = f"x{tag:08X}"
        if tag in seen:
            continue
        seen.add(tag)
        vr = _tags.dictionary_vr(tag)
        if vr is None:
            # a public group length (gggg,0000) is UL (PS3.5 7.2), as the Dataset reads it
            vr = "UL" if (tag & 0xFFFF) == 0 and not tag & 0x10000 else "UN"
        if vr == "SQ":
            raise ValueError(f"{keyword}: sequences cannot be scanned into a column")
        if tag >= 0x7FE00008:
            # (the scan stops at the first of Float, Double Float and Pixel Data: a column
            # for one of them, or a later tag, would always be null)
            raise ValueError(f"{keyword}: the pixel data and the tags after it (from "
                             "(7FE0,0008) on) are not scanned (see pixel_offset / "
                             "pixel_length)")
        vm = _tags.dictionary_vm(tag) or "1"
        out.append(_Spec(keyword, tag, vr, vm != "1"))
    return tuple(out)


def _tag_tuple(tags) -> tuple:
    """``tags`` as a tuple the caches take (a tag given as a ``[group, element]`` list as
    a tuple)."""
    return tuple(tuple(t) if isinstance(t, list) else t for t in tags)


def schema(tags: Sequence = DEFAULT_TAGS) -> pa.Schema:
    """The Arrow schema :func:`scan` returns for ``tags``."""
    return _schema(_tag_tuple(tags))


@lru_cache(maxsize=256)
def _schema(tags: tuple) -> pa.Schema:
    fields = [pa.field("path", pa.string()), pa.field("size", pa.int64()),
              pa.field("mtime_ns", pa.int64())]
    fields += [pa.field(s.keyword, s.type) for s in _specs(tuple(tags))]
    fields += [pa.field("transfer_syntax", pa.string()), pa.field("pixel_offset", pa.int64()),
               pa.field("pixel_length", pa.int64()), pa.field("num_frames", pa.int64()),
               pa.field("error_type", pa.string()), pa.field("error_message", pa.string()),
               pa.field("error_offset", pa.int64()), pa.field("error_tag", pa.int64())]
    return pa.schema(fields)


# ----------------------------------------------------------------------------- walking

class WalkEntry:
    """One path found by :func:`iter_files`: ``kind`` is ``"file"``, ``"symlink"``,
    ``"special"`` (fifo, socket, device) or ``"error"`` (with ``error``, an OSError)."""
    __slots__ = ("path", "kind", "error", "is_dir", "key", "listed")

    def __init__(self, path, kind, error=None, is_dir=False, listed=False):
        self.path, self.kind, self.error, self.is_dir = path, kind, error, is_dir
        self.key = None
        # "file" taken on trust for a path given in a long list (no lstat): the scan's
        # open(O_NOFOLLOW) + fstat tell otherwise, and the consumer then walks it
        self.listed = listed

    def __repr__(self):
        return f"WalkEntry({self.path!r}, {self.kind!r})"


def _has_magic(s: str) -> bool:
    return "*" in s or "?" in s or "[" in s


def iter_files(paths, *, follow_symlinks: bool = False) -> Iterator[WalkEntry]:
    """Walk files, directories (recursively, sorted, with ``os.scandir``) and globs.

    Symlinks are reported as ``"symlink"`` and not followed unless ``follow_symlinks``
    (then directories are visited once per (dev, ino), so loops end).  Unreadable directories
    give an ``"error"`` entry with ``is_dir=True``.  A path given explicitly that is a symlink
    is followed only with ``follow_symlinks``.
    """
    return _entries(_iter_runs(paths, follow_symlinks))


def _entries(items) -> Iterator[WalkEntry]:
    """The walk entries of the items of :func:`_iter_runs` (a run of files: one each)."""
    for item in items:
        if type(item) is list:
            for p in item:
                yield WalkEntry(p, "file")
        else:
            yield item


def _iter_runs(paths, follow_symlinks: bool, visited: Optional[set] = None):
    """:func:`iter_files`' walk, in its order, with each run of consecutive regular files of a
    folder as one list of their paths (at most ``_RUN_FILES``) and every other entry as a
    :class:`WalkEntry`: the scan takes a folder's files in bulk, without an object and a
    trip through the generators for each.  ``visited``: the (dev, ino) of the folders walked
    already, shared by the walks of one scan (a folder given twice is walked once, however
    the inputs are cut into chunks)."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    if visited is None:
        visited = set()
    for p in paths:
        p = os.fspath(p)
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        try:
            st = os.lstat(p)
        except (OSError, ValueError) as exc:    # ValueError: a NUL byte in the path
            if _has_magic(p):
                for g in _glob_roots(p, follow_symlinks):
                    yield from _walk_one_runs(g, follow_symlinks, visited)
                continue
            yield WalkEntry(p, "error", exc)
            continue
        yield from _walk_one_runs(p, follow_symlinks, visited, st)


def iglob(pattern: str, follow_symlinks: bool = False) -> Iterator[str]:
    """The paths ``glob.iglob(pattern, recursive=True)`` yields (same names, same hidden-name
    rule, ``**`` for zero or more folders), except that a folder matched by a component with
    glob characters is entered only when it is not a symlink, or with ``follow_symlinks``
    (then each folder once per (dev, ino) and ``**``: under a link to ``..`` it ends).  A folder
    named literally in the pattern is entered as given, as it is in a path."""
    parts = pattern.split("/")
    k = next((i for i, c in enumerate(parts) if _has_magic(c)), None)
    if k is None:
        if os.path.lexists(pattern):
            yield pattern
        return
    # the folder before the first component with glob characters, spelled as given
    prefix = "/" if parts[:k] == [""] else "/".join(parts[:k])
    if prefix and not os.path.isdir(prefix):
        return
    yield from _iglob(prefix, [c for c in parts[k:] if c], pattern.endswith("/"),
                      follow_symlinks)


def _iglob(base: str, parts: list, trailing: bool, follow: bool):
    if not parts:
        if trailing:
            if os.path.isdir(base):
                yield base if base.endswith("/") else base + "/"
        elif os.path.lexists(base):
            yield base
        return
    part, rest = parts[0], parts[1:]
    if not _has_magic(part):
        path = os.path.join(base, part)
        if rest or trailing:
            if os.path.isdir(path):
                yield from _iglob(path, rest, trailing, follow)
        elif os.path.lexists(path):
            yield path
        return
    if part == "**":
        for folder in _subfolders(base, follow):
            if rest or trailing:
                yield from _iglob(folder, rest, trailing, follow)
            else:
                yield from _all_below(folder, base, follow)
        return
    hidden_ok = part.startswith(".")
    for name, is_dir in _listdir(base, follow, dirs_only=bool(rest or trailing)):
        if (hidden_ok or not name.startswith(".")) and _fnmatch.fnmatchcase(name, part):
            yield from _iglob(os.path.join(base, name), rest, trailing, follow)


def _listdir(base: str, follow: bool, dirs_only: bool) -> list:
    """(name, is a folder to enter) of the entries of ``base`` (none when it cannot be
    listed); with ``dirs_only`` only the folders, a symlink to one only with ``follow``."""
    out = []
    try:
        with os.scandir(base or ".") as it:
            for e in it:
                try:
                    is_dir = e.is_dir(follow_symlinks=follow)
                except OSError:
                    is_dir = False
                if is_dir or not dirs_only:
                    out.append((e.name, is_dir))
    except (OSError, ValueError):
        pass
    return out


def _subfolders(base: str, follow: bool) -> Iterator[str]:
    """``base`` (spelled as glob spells ``**``'s zero folders) and the folders below it that
    are not hidden, depth first: ``**``'s matches.  With ``follow``, each folder once per
    (dev, ino).  (A stack, not recursion: a tree may be deeper than Python's stack.)"""
    visited: set = set()
    stack = [base]
    while stack:
        folder = stack.pop()
        if follow:
            try:
                st = os.stat(folder or ".")
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in visited:
                continue
            visited.add(key)
        yield folder
        names = sorted(name for name, _ in _listdir(folder, follow, dirs_only=True)
                       if not name.startswith("."))
        stack.extend(os.path.join(folder, name) for name in reversed(names))


def _all_below(folder: str, base: str, follow: bool) -> Iterator[str]:
    """The matches of a last ``**`` at ``folder``: ``folder`` itself with a trailing
    separator when it is ``base`` (glob's zero folders), else ``folder``, and its entries
    that are not folders and not hidden."""
    if folder == base:
        if folder:
            yield folder if folder.endswith("/") else folder + "/"
    else:
        yield folder
    for name, is_dir in _listdir(folder, follow, dirs_only=False):
        if not is_dir and not name.startswith("."):
            yield os.path.join(folder, name)


def _glob_roots(pattern: str, follow_symlinks: bool = False) -> list:
    """The matches of ``pattern`` (:func:`iglob`, sorted) without those inside a matched
    folder: that folder's walk yields them (``d/**/*`` matches ``d/a`` and ``d/a/x.dcm``;
    each file once, as a walk of ``d`` gives it)."""
    folders: set = set()
    out = []
    for g in sorted(iglob(pattern, follow_symlinks)):
        parent, inside = g.rstrip("/") or "/", False
        while True:
            up = os.path.dirname(parent)
            if up == parent or not up:
                break
            if up in folders:
                inside = True
                break
            parent = up
        if inside:
            continue
        try:
            if _stat.S_ISDIR(os.lstat(g).st_mode):
                folders.add(g.rstrip("/") or "/")      # ("d/**" matches "d/" itself)
        except OSError:
            pass
        out.append(g)
    return out


def _walk_one(p, follow, visited, st=None) -> Iterator[WalkEntry]:
    """The walk entries of one path (a folder: its tree)."""
    return _entries(_walk_one_runs(p, follow, visited, st))


def _walk_one_runs(p, follow, visited, st=None):
    if st is None:
        try:
            st = os.lstat(p)
        except (OSError, ValueError) as exc:
            yield WalkEntry(p, "error", exc)
            return
    if _stat.S_ISREG(st.st_mode):
        yield WalkEntry(p, "file")
        return
    if _stat.S_ISLNK(st.st_mode):
        if not follow:
            yield WalkEntry(p, "symlink")
            return
        try:
            st = os.stat(p)
        except (OSError, ValueError) as exc:
            yield WalkEntry(p, "error", exc)
            return
    if _stat.S_ISDIR(st.st_mode):
        yield from _walk_dir_runs(p, follow, visited, (st.st_dev, st.st_ino))
    elif _stat.S_ISREG(st.st_mode):
        yield WalkEntry(p, "file")
    else:
        yield WalkEntry(p, "special")


def _dir_listing(d: str) -> tuple:
    """The names in folder ``d``, sorted, and the kind of each entry that is not a regular
    file (``d`` folder, ``l`` symlink, ``s`` other, or the OSError met asking).  A folder
    of 200,000 files costs a str per name, not a DirEntry with its path."""
    names: list = []
    other: dict = {}
    with os.scandir(d) as it:
        for e in it:
            name = e.name
            names.append(name)
            try:
                if e.is_file(follow_symlinks=False):
                    continue        # (the common case, one call: d_type, no system call)
                if e.is_symlink():
                    other[name] = "l"
                elif e.is_dir(follow_symlinks=False):
                    other[name] = "d"
                else:
                    other[name] = "s"
            except OSError as exc:
                other[name] = exc
    names.sort()
    return names, other


def _walk_dir_runs(top, follow, visited, key):
    """The runs of folder ``top`` (its (dev, ino): ``key``) unless ``visited`` (the folders
    given before it) holds it.  With ``follow``, each folder of this walk once (links may
    loop); the folders below ``top`` do not go into ``visited``: a subfolder given too is
    walked again, as it is without ``follow``."""
    if key in visited:
        return
    visited.add(key)
    if follow:
        visited = {key}             # (this walk's own)
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            names, other = _dir_listing(d)
        except OSError as exc:
            yield WalkEntry(d, "error", exc, is_dir=True)
            continue
        prefix = d if d.endswith("/") else d + "/"      # os.path.join(d, name)
        subdirs = []
        if not other:       # files alone: in runs, without a look at each name
            for k in range(0, len(names), _RUN_FILES):
                yield [prefix + name for name in names[k:k + _RUN_FILES]]
            continue
        run: list = []
        for name in names:
            path = prefix + name
            k = other.get(name)
            if k is None:
                run.append(path)
                if len(run) >= _RUN_FILES:
                    yield run
                    run = []
                continue
            if run:
                yield run
                run = []
            if k == "d":
                if follow:
                    try:
                        st = os.lstat(path)
                    except OSError as exc:
                        yield WalkEntry(path, "error", exc)
                        continue
                    dk = (st.st_dev, st.st_ino)
                    if dk in visited:
                        continue
                    visited.add(dk)
                subdirs.append(path)
            elif k == "l":
                if not follow:
                    yield WalkEntry(path, "symlink")
                    continue
                try:
                    st = os.stat(path)
                except OSError as exc:   # dangling link or loop
                    yield WalkEntry(path, "error", exc)
                    continue
                if _stat.S_ISDIR(st.st_mode):
                    dk = (st.st_dev, st.st_ino)
                    if dk not in visited:
                        visited.add(dk)
                        subdirs.append(path)
                elif _stat.S_ISREG(st.st_mode):
                    yield WalkEntry(path, "file")
                else:
                    yield WalkEntry(path, "special")
            elif k == "s":
                yield WalkEntry(path, "special")
            else:                       # the OSError met listing it
                yield WalkEntry(path, "error", k)
        if run:
            yield run
        del names
        stack.extend(reversed(subdirs))


# ----------------------------------------------------------------------------- per-file fallback

def _exc_text(exc: BaseException) -> str:
    """The message of an error without the path (``strerror`` of an OSError)."""
    return getattr(exc, "strerror", None) or str(exc)


def _err_row(exc: BaseException):
    if isinstance(exc, DicomError):
        msg = exc.message
        return type(exc).__name__, msg, exc.offset, exc.tag
    if isinstance(exc, OSError):
        return type(exc).__name__, _exc_text(exc), None, None
    return type(exc).__name__, str(exc), None, None


def _empty_row():
    return {"size": None, "mtime_ns": None, "error": None, "values": {}, "little": True,
            "ts": None, "pixel_offset": None, "pixel_length": None, "deflated": False}


class _NeedMoreBytes(Exception):
    pass


def _check_forced_start(data, path):
    """With ``force``, a file without preamble + ``DICM`` is read only when it starts with
    a tag of group 0000 (command sets: little endian only), 0002, 0004 or 0008 and element
    below 0100, as raw data sets and ACR-NEMA files do: a video or an archive is not read as
    far as a garbage length says."""
    from .errors import InvalidDicomError
    if len(data) >= 132 and data[128:132] == b"DICM" or data[:4] == b"DICM":
        return
    if not len(data):
        raise InvalidDicomError("empty file", path=path, offset=0)
    if len(data) >= 8:
        for g, e, groups in (((data[1] << 8) | data[0], (data[3] << 8) | data[2], (0, 2, 4, 8)),
                             ((data[0] << 8) | data[1], (data[2] << 8) | data[3], (2, 4, 8))):
            if g in groups and e < 0x100:
                return
    raise InvalidDicomError(
        "no 128-byte preamble followed by 'DICM', and the first bytes are not a tag of"
        " group 0000, 0002, 0004 or 0008", path=path, offset=0)


def _parse_buffer(row, data, path, size, tag_list, find_pixels, get, force=False,
                  check_deflated=True, limits=None):
    """Fill ``row`` from the first bytes ``data`` of a file of ``size`` bytes; raises
    _NeedMoreBytes when more bytes are needed, DicomError on bad data."""
    from .filereader import _NeedMore, read_buffer
    from .errors import InvalidDicomError
    partial = len(data) < size
    if force:
        _check_forced_start(data, path)
    try:
        # validation="ignore": no warnings to silence (catch_warnings is not thread-safe)
        ds = read_buffer(data, path=path, stop_before_pixels=True, force=force,
                         validation="ignore", partial_size=size if partial else -1,
                         deflated_tail="check" if check_deflated else "ignore", limits=limits)
    except _NeedMore:
        raise _NeedMoreBytes() from None
    except DicomError as exc:
        if not partial or isinstance(exc, InvalidDicomError):
            raise
        raise _NeedMoreBytes() from None
    ctx = ds._ctx
    index = ds._index
    if index.n_clipped:
        raise TruncatedError("the last element runs past the end of the file",
                             path=path, offset=index.error_offset,
                             tag=index.error_tag or None)
    row["little"] = ctx.is_little_endian
    row["ts"] = ctx.transfer_syntax
    row["deflated"] = bool(ctx.inflated)
    meta_index = getattr(ds.file_meta, "_index", None)
    vals = row["values"]
    for tag in tag_list:
        # a file meta tag is read from the meta group, or else from the data set, where a
        # misplaced one is read as the nogil walk reads it (in the data set's byte order)
        idx = meta_index if (tag >> 16) == 2 else index
        i = -1 if idx is None else idx.find(tag, -1)
        if i < 0 and idx is not index:
            idx = index
            i = index.find(tag, -1)
        if i < 0:
            continue
        info = idx.info(i)
        if info[2] & 1:     # undefined length: not a plain value
            continue
        vals[tag] = (info[1], idx.value(i), idx is index and not ctx.is_little_endian)
    if find_pixels and index.stop_offset >= 0:
        _pixel_info(row, ctx, index, path, size, get, check_deflated)


def read_header_row(path, tag_list: Sequence[int], *, nofollow: bool = False,
                    find_pixels: bool = True, force: bool = False,
                    check_deflated: bool = True, limits: Optional[Limits] = None):
    """Read one file with the full Python reader; return a dict with ``values``
    ``{tag: (vr, raw bytes, big endian)}``, ``little``, ``ts``, ``size``, ``mtime_ns``, pixel
    info, or an ``error`` tuple ``(type, message, offset, tag)``."""
    from .filereader import HEADER_CHUNK
    row = _empty_row()
    chunk = HEADER_CHUNK

    def get(off, n):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK |
                     (os.O_NOFOLLOW if nofollow else 0))
        try:
            return os.pread(fd, n, off)
        finally:
            os.close(fd)
    try:
        while True:
            data, size, mtime, changed = _batch.read_checked(path, chunk, nofollow)
            row["size"], row["mtime_ns"] = size, mtime
            if changed:
                raise FileChangedError("file changed while it was read", path=path)
            try:
                _parse_buffer(row, data, path, size, tag_list, find_pixels, get, force,
                              check_deflated, limits)
                break
            except _NeedMoreBytes:
                row["values"] = {}
                chunk *= 8
    except (DicomError, OSError) as exc:
        row["error"] = _err_row(exc)
    return row


def _row_from_buffer(data, path, size, mtime_ns, plan):
    """A row from the first bytes of a (remote) file, or None when more bytes are needed."""
    row = _empty_row()
    row["size"], row["mtime_ns"] = size, mtime_ns

    def get(off, n):
        if off + n > len(data) and len(data) < size:
            raise _NeedMoreBytes()
        return bytes(data[off:off + n])
    try:
        _parse_buffer(row, data, path, size, plan.tag_list, plan.find_pixels, get, plan.force,
                      plan.check_deflated, plan.limits)
    except _NeedMoreBytes:
        return None
    except DicomError as exc:
        row["error"] = _err_row(exc)
    return row


def _decode_rows_from_buffers(plan, paths, rows):
    return _scan_table(plan, list(paths), False, rows=rows)


def _pixel_info(row, ctx, index, path, size, get_file, check_deflated=True):
    import struct
    hdr_off = index.stop_offset
    little = ctx.is_little_endian
    explicit = not ctx.is_implicit_VR
    e = "<" if little else ">"
    buf = ctx.buffer
    if ctx.inflated:
        def get(off, n):
            return bytes(buf[off:off + n])
        total = len(buf)
    else:
        get = get_file
        total = size
    from .filereader import element_header
    parsed = element_header(get(hdr_off, 12), explicit, little)
    if parsed is None:
        raise TruncatedError("Pixel Data header runs past the end of the file",
                             path=path, offset=hdr_off, tag=0x7FE00010)
    _, hdr_len, length = parsed
    start = hdr_off + hdr_len
    row["pixel_offset"] = None if ctx.inflated else start
    if length != 0xFFFFFFFF:
        # (check_deflated=False: the nogil walk does not inflate a deflated file's pixels to
        # check them; neither does this reader, so that both give one row)
        if length > total - start and (check_deflated or not ctx.inflated):
            raise TruncatedError(f"Pixel Data value of {length} bytes runs past the end of the "
                                 f"file ({total - start} bytes left)", path=path,
                                 offset=hdr_off, tag=0x7FE00010)
        row["pixel_length"] = length
        return
    pos = start
    for _ in range(10_000_000):
        item = get(pos, 8)
        if len(item) < 8:
            raise TruncatedError("encapsulated Pixel Data ends without a sequence delimiter",
                                 path=path, offset=pos, tag=0x7FE00010)
        tag = (struct.unpack(e + "H", item[:2])[0] << 16) | struct.unpack(e + "H", item[2:4])[0]
        ilen = struct.unpack(e + "I", item[4:8])[0]
        if tag == 0xFFFEE0DD:
            row["pixel_length"] = pos - start
            return
        if tag != 0xFFFEE000 or ilen == 0xFFFFFFFF or ilen > total - pos - 8:
            from .errors import EncapsulationError
            raise EncapsulationError("invalid item in encapsulated Pixel Data", path=path,
                                     offset=pos, tag=0x7FE00010)
        pos += 8 + ilen


# ----------------------------------------------------------------------------- decoding

def _display_path(p) -> str:
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    try:
        p.encode("utf-8")
        return p
    except UnicodeEncodeError:
        return p.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@lru_cache(maxsize=256)
def _encodings(raw: Optional[bytes]) -> tuple:
    from . import charset
    return tuple(charset.convert_encodings(raw or None, validation="ignore"))


def _py_value(spec: _Spec, vr: str, raw: bytes, big: bool, cs: Optional[bytes]):
    """Decode one raw value to a Python value fitting the column type (generic, slow path)."""
    from .values import TEXT_VRS, decode_value, LUT_DESCRIPTOR_TAGS, unsigned_entries
    from .charset import PersonName
    if not raw:
        if spec.type == pa.string():
            return ""
        return None
    if spec.value_type == pa.binary():
        return raw
    # UN (or no VR) on a tag the dictionary knows is read with the dictionary's VR, as the
    # Dataset and pydicom read it: padding stripped, multiple values split
    v = vr if vr and vr != "UN" else spec.vr
    if spec.value_type == pa.string() and v not in TEXT_VRS and v not in ("DS", "IS"):
        # a text tag whose VR was damaged into a binary one (US, FD, AT...): its bytes are
        # read as the dictionary's text (a string column holds no number; documented)
        v = spec.vr
    if " or " in v:
        v = v.split(" or ")[0]
    if (v in ("DS", "IS") or v in TEXT_VRS) and spec.value_type != pa.string():
        # the text as the vectorised path reads it (_number: PS3.5's DS/IS forms), not
        # decode_value's IS or DSfloat (int() of DSfloat("1.5") is 1), nor Python's int() of
        # another text VR's value (which takes "1_0", "\t12", "inf" and full-width digits)
        texts = raw.decode("latin-1").split("\\")
        if not spec.multi:
            return _number(texts[0], spec.value_type)
        if len(texts) == 1 and not texts[0].strip(" \x00"):
            return None       # padding alone: no value (``"\\"``: two empty values)
        return [_number(t, spec.value_type) for t in texts]
    if v == "PN" and spec.value_type == pa.string():
        # by the vectorised path's rules (_finish_text, _pn_groups): each value without its
        # padding, then without its empty trailing component groups ("A^B =" is "A^B ")
        text = _decode_whole(v, raw, cs)
        if not spec.multi:
            return _text_ends(v, text)
        values = [_text_ends(v, t) for t in text.rstrip(" \x00").split("\\")]
        return None if not text.rstrip(" \x00") or values == [""] else values
    if v in ("DS", "IS") and spec.value_type == pa.string():
        # the text, as the general reader's DSfloat and IS keep it (decode_value would read
        # a byte beyond ASCII by another VR's rules, e.g. b"1\xff" as the US 65329)
        val = [t.strip(" \x00") for t in raw.decode("latin-1").rstrip(" \x00").split("\\")]
        val = val[0] if len(val) == 1 else val
    else:
        try:
            val = decode_value(v, raw, little_endian=not big, encodings=list(_encodings(cs)),
                               validation="ignore")
        except (ValueError, UnicodeError, LookupError):
            return None
        if v in _BIN_FMT and isinstance(val, (str, bytes)):
            # binary numbers of a length that is no multiple of their size (kept as they are
            # by decode_value): no value, in a list column too (it was [None])
            return None
        if v == "SS" and spec.tag in LUT_DESCRIPTOR_TAGS:
            val = unsigned_entries(val)     # the number of entries is unsigned (as dcmread)
    items = list(val) if isinstance(val, list) else [val]
    if len(items) > 1 and not spec.multi and spec.value_type == pa.string():
        # several values in a single-valued text column: the whole text, only its ends
        # stripped, as the vectorised path and the nogil finisher keep it
        return _text_ends(v, _decode_whole(v, raw, cs))
    ui = spec.vr == "UI"
    if spec.multi and len(items) == 1 and not isinstance(items[0], (int, float)) and \
            not ui and not str(items[0]).strip(" \x00"):
        return None       # padding alone: no value (as the vectorised path reads it)
    out = []
    for x in items:
        if isinstance(x, PersonName):
            x = str(x)
        if pa.types.is_integer(spec.value_type):
            if isinstance(x, float) and not x.is_integer():
                x = None    # a fraction, an infinity or NaN (FD/FL/DS): no integer
            try:
                x = int(x) if x != "" and x is not None else None
            except (TypeError, ValueError):
                x = None
            lo, hi = (0, 1 << 64) if spec.value_type == pa.uint64() else (-1 << 63, 1 << 63)
            if x is not None and not lo <= x < hi:
                x = None
        elif spec.value_type == pa.float64():
            try:
                x = float(x) if x != "" else None
            except (TypeError, ValueError):
                x = None
        elif spec.value_type == pa.string():
            if isinstance(x, bytes):
                x = x.decode("latin-1")
            # each value's padding, as the vectorised path strips it (_strip); a value
            # decoded as UI already is (decode_value strips it as pydicom's UID() does),
            # and one of an element with another VR is read with that VR's rules, as the
            # general reader reads it
            if ui or v != spec.vr:
                x = str(x)
            else:
                x = _text_ends(spec.vr, str(x))
        out.append(x)
    if spec.multi:
        if ui and out == [""]:
            return None   # padding or whitespace alone: no value (as _finish_text reads it)
        return out
    return out[0] if out else None


def _decode_whole(vr: str, raw: bytes, cs: Optional[bytes]) -> str:
    """A text value decoded whole, its values not split (Specific Character Set ``cs`` for
    the VRs it applies to, else latin-1 as the general reader decodes them)."""
    if vr not in _CHARSET_VRS:
        return raw.decode("latin-1")
    from .charset import decode_bytes
    encs = _encodings(cs)
    if b"\x1b" not in raw and len(encs) == 1:
        return raw.decode(encs[0], "replace")
    # (a PN value too: its empty component groups are dropped after its padding is stripped,
    # by the caller, as the vectorised path does)
    return decode_bytes(raw, list(encs), validation="ignore")


def _strip_nul_space(text: str, both: bool) -> str:
    """``text`` without the whitespace (``str.strip()``'s) and NULs at its end (``both``: and
    at its start), in any order ("A \\t\\0" is "A")."""
    while True:
        out = text.strip().strip("\x00") if both else text.rstrip().rstrip("\x00")
        if out == text:
            return out
        text = out


def _text_ends(vr: str, text: str) -> str:
    """``text`` without the padding at its ends, by the rule of its VR: what :func:`_strip`
    (with :func:`_pn_groups` for PN) and the nogil finisher's ``strip_value`` do to a whole
    value (tests/test_scan_company.py holds the three together)."""
    if vr == "UI":
        return text.rstrip(" \x00").strip()
    if vr == "AE":
        return _strip_nul_space(text, True)
    if vr == "UR":
        return _strip_nul_space(text, False)
    if vr == "PN":
        # (and its empty trailing component groups, as _pn_groups)
        return text.rstrip(" \x00").rstrip("=")
    return text.strip(" \x00") if vr in _BOTH_STRIP else text.rstrip(" \x00")


def _pyarrow_binary(offsets: np.ndarray, data: bytes, present: np.ndarray) -> pa.Array:
    n = len(present)
    validity = pa.py_buffer(np.packbits(present, bitorder="little").tobytes())
    return pa.Array.from_buffers(pa.binary(), n, [validity, pa.py_buffer(offsets),
                                                  pa.py_buffer(data)])


def _strip(arr: pa.Array, vr: str) -> pa.Array:
    """Each value of ``arr`` without its padding (a UI value's trailing spaces and NULs are
    taken off the whole value first, in :func:`_finish_text`)."""
    if vr == "UI":
        return pc.utf8_trim(arr, characters=_UI_SPACE)
    if vr == "AE":
        # (whitespace and NULs, in any order: an AE value's surrounding ones)
        return pc.utf8_trim(arr, characters=_UI_SPACE + "\x00")
    if vr == "UR":
        # (and a UR value's trailing ones)
        return pc.utf8_rtrim(arr, characters=_UI_SPACE + "\x00")
    if vr in _BOTH_STRIP:
        return pc.utf8_trim(arr, characters=" \x00")
    return pc.utf8_rtrim(arr, characters=" \x00")


def _decode_column(spec: _Spec, col, big: np.ndarray, charsets: list, n: int,
                   pixrep: Optional[np.ndarray] = None) -> pa.Array:
    """The Arrow array of one column from its raw values; ``pixrep`` (PixelRepresentation
    per row, -1 where absent) resolves a "US or SS" VR read without one (implicit VR)."""
    offsets, data, vrs, present = col
    vr = spec.vr
    if (spec.tag >> 16) == 2:
        big = np.zeros(n, bool)
    if " or " in vr or vr == "AT" or vr == "UN" and spec.value_type != pa.binary():
        return _slow_column(spec, col, big, charsets, n, pixrep)
    if _other_vr(vrs, present, vr):
        # an element with another explicit VR (Rows as IS text or SS, a UID as LO...) is read
        # with that VR, as the general reader reads it: value by value
        return _slow_column(spec, col, big, charsets, n)
    lengths = np.diff(offsets)
    if spec.value_type == pa.binary():
        # an empty value is no value (null), as pydicom reads it and as _py_value reads it
        return _pyarrow_binary(offsets, data, present & (lengths > 0))
    try:
        if vr in _BIN_FMT:
            return _binary_numbers(spec, offsets, data, present, lengths, big, n)
        u8 = np.frombuffer(data, np.uint8)
        special = (u8 >= 0x80) | (u8 == 0x1B) if len(u8) else None
        if special is not None and special.any():
            if vr not in _CHARSET_VRS:
                return _slow_column(spec, col, big, charsets, n)
            rows_non_ascii = np.unique(np.searchsorted(offsets, np.nonzero(special)[0],
                                                       "right") - 1)
            return _charset_column(spec, col, charsets, rows_non_ascii, n)
        arr = _pyarrow_binary(offsets, data, present).cast(pa.string())
        return _finish_text(spec, arr, present)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return _slow_column(spec, col, big, charsets, n)


def _vr_code(vr: str) -> int:
    """The code of a VR as the walk stores an explicit one (``"UI"``: 0x5549); 0 for none
    or a choice of several (``"US or SS"``)."""
    return (ord(vr[0]) << 8) | ord(vr[1]) if len(vr) == 2 else 0


_VR_UN = _vr_code("UN")


def _other_vr(vrs: np.ndarray, present: np.ndarray, vr: str) -> bool:
    """Whether a present element of a column of dictionary VR ``vr`` carries another explicit
    VR (implicit VR: 0, and UN, are read with the dictionary's)."""
    code = _vr_code(vr)
    return bool(code) and bool(((vrs != 0) & (vrs != code) & (vrs != _VR_UN) & present).any())


def _finish_text(spec, arr, present):
    vr = spec.vr
    if vr == "UI":
        # the whole value's trailing padding, before its values lose their whitespace
        arr = pc.utf8_rtrim(arr, characters=" \x00")
    if spec.multi:
        # a value of padding alone holds no value (as an empty one), not one empty value
        kept = _int64_values(pc.utf8_length(_strip(arr, vr)), 0)
        empty = present & (kept == 0)
        lists = pc.split_pattern(arr, "\\")
        flat = _strip(lists.flatten(), vr)
        if spec.value_type != pa.string():
            flat = _to_number(flat, spec.value_type)
        return pa.ListArray.from_arrays(lists.offsets, flat, mask=_bool_array(~present | empty))
    arr = _strip(arr, vr)
    if spec.value_type != pa.string():
        return _to_number(arr, spec.value_type)
    return arr


# the text forms of DS and IS (PS3.5 table 6.2-1: digits, a sign, a decimal point, an
# exponent); Python's int() and float() and Arrow's casts accept more ("0x10", "1_000",
# "inf", non-ASCII digits), which a typed column reads as no value, as pydicom finds it invalid
_DECIMAL_TEXT = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
_INTEGER_TEXT = r"[+-]?[0-9]+"
_DECIMAL_RE = re.compile(_DECIMAL_TEXT)
_INTEGER_RE = re.compile(_INTEGER_TEXT)


def _to_number(arr: pa.Array, typ) -> pa.Array:
    arr = pc.if_else(pc.equal(pc.utf8_length(arr), _ZERO_INT32), _NULL_TEXT, arr)
    pattern = "^" + (_DECIMAL_TEXT if typ == pa.float64() else _INTEGER_TEXT) + "$"
    if pc.all(pc.match_substring_regex(arr, pattern)).as_py() is not False:
        try:
            out = arr.cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        else:
            if typ == pa.float64() and pc.any(pc.is_inf(out)).as_py():
                # a decimal past the double's range ("1e400") does not fit its type
                out = pc.if_else(pc.is_inf(out), pa.scalar(None, pa.float64()), out)
            return out
    return _array_of([None if s is None else _number(s, typ) for s in arr.to_pylist()], typ)


_INT_RANGE = {pa.int64(): (-1 << 63, 1 << 63), pa.uint64(): (0, 1 << 64)}


def _number(s: str, typ):
    """The number of DS or IS text ``s`` as ``typ`` (float64, int64 or uint64), or None:
    integers exactly (not through a double), an integral decimal or exponent form too
    ("1e3"), the first of several values ("1\\2" in a single-valued column, as a binary
    number's first value), and None for what is not such text or does not fit the type."""
    s = s.split("\\", 1)[0].strip(" \x00")
    if typ == pa.float64():
        f = float(s) if _DECIMAL_RE.fullmatch(s) else None
        return f if f is not None and math.isfinite(f) else None     # ("1e400": no double)
    try:
        if _INTEGER_RE.fullmatch(s):
            v = int(s)
        elif _DECIMAL_RE.fullmatch(s):
            f = float(s)
            if not f.is_integer():
                return None
            v = int(f)
        else:
            return None
    except ValueError:          # past int()'s 4300 digits
        return None
    lo, hi = _INT_RANGE[typ]
    return v if lo <= v < hi else None


def _binary_numbers(spec, offsets, data, present, lengths, big, n):
    dt = np.dtype("<" + _BIN_FMT[spec.vr])
    w = dt.itemsize
    if np.any(lengths % w):
        raise ValueError("length not a multiple of the value size")
    vals = np.frombuffer(data, dt)
    if big.any():
        counts = lengths // w
        swap = np.repeat(big, counts)
        if swap.any():
            vals = vals.copy()
            vals[swap] = vals[swap].byteswap()
    target = np.float64 if spec.value_type == pa.float64() else \
        np.uint64 if spec.value_type == pa.uint64() else np.int64
    vals = vals.astype(target)
    if spec.multi:
        return pa.ListArray.from_arrays(_number_array(offsets // w, pa.int32()),
                                        _number_array(vals, spec.value_type),
                                        mask=_bool_array(~present | (lengths == 0)))
    counts = lengths // w
    ok = present & (counts >= 1)
    firsts = (offsets[:-1] // w)[ok]
    out = np.zeros(n, target)
    out[ok] = vals[firsts]
    return _number_array(out, spec.value_type, ~ok)


def _charset_column(spec, col, charsets, rows_non_ascii, n):
    offsets, data, vrs, present = col
    arr = _pyarrow_binary(offsets, data, present)
    out = arr.to_pylist()
    for i in rows_non_ascii.tolist():
        raw = out[i]
        if raw is not None:
            out[i] = _decode_whole(spec.vr, raw, charsets[i])
    for i in range(n):
        v = out[i]
        if isinstance(v, bytes):
            out[i] = v.decode("ascii")
    return _finish_text(spec, _array_of(out, pa.string()), present)


def _slow_column(spec, col, big, charsets, n, pixrep=None):
    offsets, data, vrs, present = col
    out = [None] * n
    for i in range(n):
        if present[i]:
            raw = data[offsets[i]:offsets[i + 1]]
            v = vrs[i]
            # (UN, as no VR: the dictionary's, and a "US or SS" one resolved below)
            vr = chr(v >> 8) + chr(v & 0xFF) if v and v != _VR_UN else spec.vr
            if vr.startswith("US or SS"):
                # as the Dataset resolves it (pydicom's rule): SS when PixelRepresentation is 1
                vr = "SS" if pixrep is not None and pixrep[i] == 1 else "US"
            out[i] = _py_value(spec, vr, raw, bool(big[i]), charsets[i])
    return _array_or_convert(out, spec.type)


# ----------------------------------------------------------------------------- chunks

def _kind(spec: _Spec) -> tuple:
    """(kind, params) of the nogil column finisher in :mod:`fastdicom._batch` for ``spec``;
    mirrors the choices of :func:`_decode_column` (raw kinds are decoded in Python)."""
    vr = spec.vr
    params = (1 if vr in _BOTH_STRIP else 0) | (256 if (spec.tag >> 16) == 2 else 0) | \
        (512 if vr in _CHARSET_VRS else 0)
    if " or " in vr or vr == "AT" or vr == "UN" or spec.value_type == pa.binary():
        return _batch.KIND_RAW, 0
    if vr in _BIN_FMT:
        params |= _batch.BIN_FORMATS[vr] << 4
        return (_batch.KIND_BINLIST if spec.multi else _batch.KIND_BIN), params
    if spec.value_type == pa.string():
        return (_batch.KIND_STRLIST if spec.multi else _batch.KIND_STR), params
    if spec.value_type == pa.int64():
        return (_batch.KIND_INTLIST if spec.multi else _batch.KIND_INT), params
    if spec.value_type == pa.float64():
        return (_batch.KIND_FLOATLIST if spec.multi else _batch.KIND_FLOAT), params
    return _batch.KIND_RAW, 0


_TS_SPEC = _Spec("TransferSyntaxUID", _TS_TAG, "UI", False)
_FRAMES_SPEC = _Spec("NumberOfFrames", _FRAMES_TAG, "IS", False)
_CHARSET_SPEC = _Spec("SpecificCharacterSet", _CHARSET_TAG, "CS", True)
_PIXREP_TAG = 0x00280103
_PIXREP_SPEC = _Spec("PixelRepresentation", _PIXREP_TAG, "US", False)


class _Plan:
    def __init__(self, tags, find_pixels=True, check_deflated=True, force=False, limits=None):
        self.force = bool(force)
        self.limits = checked_limits(limits)
        tags = _tag_tuple(tags)
        self.specs = _specs(tags)
        self.schema = schema(tags)
        internal = {s.tag for s in self.specs} | {_TS_TAG, _CHARSET_TAG, _FRAMES_TAG}
        # a "US or SS" tag is read with PixelRepresentation when its file has no VR
        self.pixrep = any(s.vr.startswith("US or SS") for s in self.specs)
        if self.pixrep:
            internal.add(_PIXREP_TAG)
        self.tag_list = sorted(internal)
        self.tag_array = np.array(self.tag_list, np.uint32)
        self.pos = {t: i for i, t in enumerate(self.tag_list)}
        self.stop_tag = max(self.tag_list)
        self.find_pixels = find_pixels
        self.check_deflated = check_deflated
        by_tag = {_TS_TAG: _TS_SPEC, _FRAMES_TAG: _FRAMES_SPEC, _CHARSET_TAG: _CHARSET_SPEC,
                  _PIXREP_TAG: _PIXREP_SPEC}
        by_tag.update({s.tag: s for s in self.specs})
        kp = [_kind(by_tag[t]) for t in self.tag_list]
        self.kinds = np.array([k for k, _ in kp], np.uint8)
        self.params = np.array([q for _, q in kp], np.int32)
        self.dict_vrs = np.array([_vr_code(by_tag[t].vr) for t in self.tag_list], np.uint16)
        self.fields = [(s, self.pos[s.tag], kp[self.pos[s.tag]][0]) for s in self.specs]


def checked_workers(workers, name: str = "workers") -> int:
    """A ``workers`` argument given (not None): an int of at least 1, else ValueError (0 is
    not taken for "the default"); ``name``: the argument's name, for another count."""
    try:
        n = operator.index(workers)         # (an int, a numpy integer)
    except TypeError:
        n = 0
    if isinstance(workers, bool) or n < 1:
        raise ValueError(f"{name} must be an int >= 1, not {workers!r}")
    return n


@lru_cache(maxsize=64)
def _scan_plan(tags: tuple, force: bool, limits: Limits = DEFAULT_LIMITS) -> _Plan:
    """The plan of :func:`scan_batches` (plans are not changed once made)."""
    return _Plan(tags, check_deflated=False, force=force, limits=limits)


_ERRNO_CLASS = {_errno.ENOENT: FileNotFoundError, _errno.EACCES: PermissionError,
                _errno.EPERM: PermissionError, _errno.ELOOP: OSError,
                _errno.EISDIR: IsADirectoryError}


def _all_fallback(plan, n):
    nt = len(plan.tag_list)
    return {"status": np.full(n, _batch.STATUS_FALLBACK, np.int32),
            "errno": np.zeros(n, np.int32), "size": np.full(n, -1, np.int64),
            "mtime_ns": np.zeros(n, np.int64), "flags": np.zeros(n, np.int32),
            "pixel_header": np.full(n, -1, np.int64), "pixel_offset": np.full(n, -1, np.int64),
            "pixel_length": np.full(n, -1, np.int64), "err_offset": np.full(n, -1, np.int64),
            "columns": [(np.zeros(n + 1, np.int32), b"", np.zeros(n, np.uint16),
                         np.zeros(n, bool)) for _ in range(nt)]}


def _record_status(st, r, i, err_type, err_msg, err_off, err_tag) -> None:
    """The one place a per-file status of the nogil reader becomes an error row."""
    if st == _batch.STATUS_OS_ERROR:
        e = int(r["errno"][i])
        if e == _batch.ERRNO_NUL_IN_PATH:
            err_type[i], err_msg[i] = "ValueError", "embedded null byte"
        else:
            err_type[i], err_msg[i] = _ERRNO_CLASS.get(e, OSError).__name__, os.strerror(e)
    elif st == _batch.STATUS_NOT_REGULAR:
        err_type[i], err_msg[i] = "IsADirectoryError", "not a regular file"
    elif st == _batch.STATUS_CHANGED:
        err_type[i], err_msg[i] = "FileChangedError", "file changed while it was read"
    elif st == _batch.STATUS_PIXEL_TRUNCATED:
        # (a native value only; the general reader's words, see _pixel_info)
        err_type[i] = "TruncatedError"
        start = int(r["pixel_offset"][i])
        err_msg[i] = (f"Pixel Data value of {int(r['pixel_length'][i])} bytes runs past the end"
                      f" of the file ({int(r['size'][i]) - start} bytes left)")
        err_off[i], err_tag[i] = int(r["err_offset"][i]), 0x7FE00010


def _extract(plan: _Plan, paths: list, nofollow: bool, header_bytes: int = 8192) -> dict:
    """The nogil part of a chunk's scan: the raw and finished columns of ``paths``
    (:func:`fastdicom._batch.extract`), for :func:`_assemble`."""
    return _batch.extract(paths, plan.tag_array, stop_tag=plan.stop_tag,
                          find_pixels=plan.find_pixels, nofollow=nofollow,
                          header_bytes=header_bytes, kinds=plan.kinds, params=plan.params,
                          check_deflated=plan.check_deflated, arena_max=_ARENA_LIMIT,
                          dict_vrs=plan.dict_vrs,
                          max_depth=plan.limits.max_depth,
                          max_inflated=plan.limits.max_inflated_bytes)


def _scan_chunk(plan: _Plan, paths: list, nofollow: bool, header_bytes: int = 8192,
                rows: Optional[list] = None) -> list:
    """Scan ``paths`` into RecordBatches of ``plan.schema``, their rows in order (one batch,
    or more: see :func:`_assemble_all`).  With ``rows`` (from :func:`_row_from_buffer`),
    only assemble those."""
    r = _extract(plan, paths, nofollow, header_bytes) if rows is None \
        else _all_fallback(plan, len(paths))
    return _assemble_all(plan, paths, nofollow, r, rows, header_bytes)


def _scan_table(plan: _Plan, paths: list, nofollow: bool, **kwargs) -> pa.Table:
    """:func:`_scan_chunk` as one Table."""
    return pa.Table.from_batches(_scan_chunk(plan, paths, nofollow, **kwargs),
                                 schema=plan.schema)


class _ChunkTooLarge(Exception):
    """The values of one tag in a chunk pass ``_ARENA_LIMIT`` bytes together, though no
    file's do alone (see :func:`_assemble_all`)."""


def _assemble_all(plan: _Plan, paths: list, nofollow: bool, r: dict,
                  rows: Optional[list] = None, header_bytes: int = 8192) -> list:
    """The RecordBatches of a chunk (:func:`_assemble`): one, or, when the values of one tag
    in the chunk pass ``_ARENA_LIMIT`` bytes together (the int32 offsets of one Arrow
    array), those of its halves, scanned again: a row does not depend on the files scanned
    with it.  Only a file whose own values pass the limit is an error row."""
    try:
        return [_assemble(plan, paths, nofollow, r, rows)]
    except _ChunkTooLarge:
        half = len(paths) // 2
        return [b for part in (slice(0, half), slice(half, None))
                for b in _scan_chunk(plan, paths[part], nofollow, header_bytes,
                                     None if rows is None else rows[part])]


def _assemble(plan: _Plan, paths: list, nofollow: bool, r: dict,
              rows: Optional[list] = None):
    """The RecordBatch of a chunk from :func:`_extract`'s result ``r`` (holding the GIL:
    Arrow arrays, error rows, and the per-file Python reader for the files the nogil reader
    left to it)."""
    n = len(paths)
    if rows is None and n and not (r["status"] == _batch.STATUS_FALLBACK).any():
        return _fast_batch(plan, paths, r, n)
    status = r["status"]
    columns = list(r["columns"])
    size = r["size"].copy()
    mtime = r["mtime_ns"].copy()
    flags = r["flags"]
    pix_o = r["pixel_offset"].copy()
    pix_l = r["pixel_length"].copy()
    err_type: list = [None] * n
    err_msg: list = [None] * n
    err_off: list = [None] * n
    err_tag: list = [None] * n
    bad = np.nonzero(status != 0)[0]
    fallback_rows = {}
    for i in bad.tolist():
        st = status[i]
        path = paths[i]
        if st == _batch.STATUS_FALLBACK:
            fallback_rows[i] = rows[i] if rows is not None else read_header_row(
                path, plan.tag_list, nofollow=nofollow, find_pixels=plan.find_pixels,
                force=plan.force, check_deflated=plan.check_deflated, limits=plan.limits)
            continue
        _record_status(st, r, i, err_type, err_msg, err_off, err_tag)
        pix_o[i] = pix_l[i] = -1
    big = (flags & 1) == 0
    big &= status == 0
    pix_o[(flags & _batch.FLAG_DEFLATED) != 0] = -1
    if fallback_rows:
        _refuse_oversized(plan, columns, fallback_rows, n)
        columns = _patch_columns(plan, columns, fallback_rows, n)
        big = big.copy()
        for i, row in fallback_rows.items():
            if row["size"] is not None:
                size[i] = row["size"]
                mtime[i] = row["mtime_ns"]
            if row["error"] is not None:
                err_type[i], err_msg[i], err_off[i], err_tag[i] = row["error"]
                pix_o[i] = pix_l[i] = -1
                continue
            big[i] = not row["little"]
            pix_o[i] = row["pixel_offset"] if row["pixel_offset"] is not None else -1
            pix_l[i] = row["pixel_length"] if row["pixel_length"] is not None else -1
    # per-row character sets
    cs_col = columns[plan.pos[_CHARSET_TAG]]
    cs_off, cs_data, _, cs_present = cs_col
    if cs_present.any():
        charsets = [cs_data[cs_off[i]:cs_off[i + 1]] if cs_present[i] else None
                    for i in range(n)]
    else:
        charsets = [None] * n
    arrays = [_path_array(paths, r),
              _int64_array(size, size < 0), _int64_array(mtime, size < 0)]
    pixrep = None
    if plan.pixrep:
        pixrep = _int64_values(_decode_column(_PIXREP_SPEC, columns[plan.pos[_PIXREP_TAG]], big,
                                              charsets, n), -1)
    for spec in plan.specs:
        arrays.append(_pn_groups(spec, _decode_column(spec, columns[plan.pos[spec.tag]], big,
                                                      charsets, n, pixrep)))
    ts_spec = _Spec("TransferSyntaxUID", _TS_TAG, "UI", False)
    ts = _decode_column(ts_spec, columns[plan.pos[_TS_TAG]], big, charsets, n)
    fr_spec = _Spec("NumberOfFrames", _FRAMES_TAG, "IS", False)
    frames = _frames(_decode_column(fr_spec, columns[plan.pos[_FRAMES_TAG]], big, charsets, n),
                     pix_l)
    ok = np.array([t is None for t in err_type])
    arrays += [ts, _int64_array(pix_o, pix_o < 0), _int64_array(pix_l, pix_l < 0),
               _int64_array(frames, (frames < 0) | ~ok),
               _array_of(err_type, pa.string()), _array_of(err_msg, pa.string()),
               _array_of(err_off, pa.int64()), _array_of(err_tag, pa.int64())]
    return pa.RecordBatch.from_arrays(arrays, schema=plan.schema)


def _any_ends_with_equals(arr: pa.Array) -> bool:
    """Whether a value of string array ``arr`` ends with "=" (from its buffers: the compute
    kernels' call overhead was a visible share of a chunk's assembly)."""
    bufs = arr.buffers()
    if arr.type != pa.string() or bufs[1] is None or bufs[2] is None:
        return bool(pc.any(pc.ends_with(arr, "=")).as_py())
    offs = np.frombuffer(bufs[1], np.int32, count=len(arr) + 1, offset=4 * arr.offset)
    data = np.frombuffer(bufs[2], np.uint8)
    ends = offs[1:][offs[1:] > offs[:-1]]
    return bool(len(ends)) and bool((data[ends - 1] == 0x3D).any())


def _pn_groups(spec: _Spec, arr: pa.Array) -> pa.Array:
    """A PN column without empty trailing component groups ("A^B=C=" is "A^B=C"), as
    pydicom's and the Dataset's PersonName give it."""
    if spec.vr != "PN":
        return arr
    values = arr.values if spec.multi else arr
    if len(values) == 0 or not _any_ends_with_equals(values):
        return arr
    values = pc.replace_substring_regex(values, "=+$", "")
    if spec.multi:
        # a value of empty groups alone ("=", "==") holds no name: no value, as an empty one
        # (the Dataset's PersonName has VM 0), not one empty value
        offsets = arr.offsets
        offs = np.frombuffer(offsets.buffers()[1], np.int32, count=len(offsets),
                             offset=4 * offsets.offset)
        single = np.diff(offs) == 1
        blank = np.zeros(len(arr), bool)
        if single.any():
            blank[single] = _string_lengths(values)[offs[:-1][single]] == 0
        mask = pa.array(~_valid_mask(arr) | blank)
        return pa.ListArray.from_arrays(arr.offsets, values, mask=mask)
    return values


def _frames(fr: pa.Array, pix_l: np.ndarray) -> np.ndarray:
    """The ``num_frames`` values (-1 for null) from the NumberOfFrames column ``fr``: 1 when
    it is absent and Pixel Data is present; null when its value is negative (invalid)."""
    absent = ~_valid_mask(fr)
    frames = _int64_values(fr, -1)
    return np.where(absent, np.where(pix_l >= 0, 1, -1), np.where(frames >= 0, frames, -1))


def _from_decoded(spec: _Spec, kind: int, d: tuple, n: int) -> pa.Array:
    """The Arrow array of one column from the buffers of the nogil finisher."""
    _, valid, loff, vals, data, coff, cvalid, nchild = d
    vb = pa.py_buffer(valid)
    vt = spec.value_type
    if kind == _batch.KIND_STR:
        return pa.Array.from_buffers(pa.string(), n, [vb, pa.py_buffer(loff),
                                                     pa.py_buffer(data)])
    if kind in (_batch.KIND_INT, _batch.KIND_FLOAT, _batch.KIND_BIN):
        return pa.Array.from_buffers(vt, n, [vb, pa.py_buffer(vals)])
    if kind == _batch.KIND_STRLIST:
        child = pa.Array.from_buffers(pa.string(), nchild, [None, pa.py_buffer(coff),
                                                           pa.py_buffer(data)])
    else:
        cv = pa.py_buffer(cvalid) if (cvalid and kind != _batch.KIND_BINLIST) else None
        child = pa.Array.from_buffers(vt, nchild, [cv, pa.py_buffer(vals)])
    return pa.Array.from_buffers(spec.type, n, [vb, pa.py_buffer(loff)], children=[child])


# Arrays are made from their buffers here, never with ``pa.array``, ``pa.scalar``,
# ``fill_null(value)`` or ``to_numpy``: those ask pyarrow's pandas shim about their input, and
# the shim imports pandas when it is installed (240 ms and 48 MB on this VM, once per process,
# in a job that never uses pandas).

_NUMPY_OF = {pa.int64(): np.int64, pa.uint64(): np.uint64, pa.float64(): np.float64,
             pa.int32(): np.int32}


def _validity(null) -> tuple:
    """(validity buffer or None, null count) of a boolean null mask (or None)."""
    if null is None:
        return None, 0
    null = np.asarray(null, bool)
    k = int(np.count_nonzero(null))
    if not k:
        return None, 0
    return pa.py_buffer(np.packbits(~null, bitorder="little")), k


def _number_array(values: np.ndarray, typ, null: Optional[np.ndarray] = None) -> pa.Array:
    """An Arrow array of type ``typ`` (int64, uint64, float64 or int32) over the numpy
    ``values`` (null where ``null`` is True)."""
    values = np.ascontiguousarray(values, dtype=_NUMPY_OF[typ])
    vb, k = _validity(null)
    return pa.Array.from_buffers(typ, len(values), [vb, pa.py_buffer(values)], null_count=k)


def _int64_array(values: np.ndarray, null: Optional[np.ndarray] = None) -> pa.Array:
    """An Arrow int64 array over ``values`` (null where ``null`` is True)."""
    return _number_array(values, pa.int64(), null)


def _bool_array(values: np.ndarray) -> pa.Array:
    """An Arrow bool array of the numpy ``values`` (no nulls)."""
    values = np.asarray(values, bool)
    return pa.Array.from_buffers(pa.bool_(), len(values),
                                 [None, pa.py_buffer(np.packbits(values, bitorder="little"))])


def _array_of(values: list, typ) -> pa.Array:
    """``pa.array(values, typ)`` for a list of Python values (None: null) of the types of
    the scan's schema: string, binary, int64, uint64, float64 and lists of those."""
    n = len(values)
    null = [v is None for v in values]
    vb, k = _validity(null)
    if k == n:
        return pa.nulls(n, typ)
    if pa.types.is_list(typ):
        if not all(isinstance(v, (list, tuple)) for v in values if v is not None):
            raise TypeError(f"a value of a {typ} column is not a list")
        lengths = np.fromiter((0 if v is None else len(v) for v in values), np.int64, n)
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(lengths, out=offsets[1:])
        child = _array_of([x for v in values if v is not None for x in v], typ.value_type)
        return pa.Array.from_buffers(typ, n, [vb, pa.py_buffer(offsets)], null_count=k,
                                     children=[child])
    if typ == pa.string() or typ == pa.binary():
        if typ == pa.string():      # (str only: AttributeError for anything else)
            raw = [b"" if v is None else v.encode("utf-8") for v in values]
        else:
            raw = [b"" if v is None else bytes(v) for v in values]
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(np.fromiter(map(len, raw), np.int64, n), out=offsets[1:])
        if offsets[-1] >= 1 << 31:
            raise OverflowError("more than 2 GiB of text in one column of a batch")
        return pa.Array.from_buffers(typ, n, [vb, pa.py_buffer(offsets.astype(np.int32)),
                                              pa.py_buffer(b"".join(raw))], null_count=k)
    if typ in _NUMPY_OF:
        kinds = (int, float, np.integer, np.floating) if typ == pa.float64() else \
            (int, np.integer)
        if not all(isinstance(v, kinds) and not isinstance(v, bool)
                   for v in values if v is not None):
            raise TypeError(f"a value of a {typ} column is not a number of that type")
        if typ == pa.float64() and any(isinstance(v, int) and abs(v) > 1 << 53
                                       for v in values):
            raise ValueError("an integer a float64 does not hold exactly")  # (as pa.array)
        out = np.array([0 if v is None else v for v in values], _NUMPY_OF[typ])
        return pa.Array.from_buffers(typ, n, [vb, pa.py_buffer(out)], null_count=k)
    raise TypeError(f"no Arrow array of {typ} made here")


def _array_or_convert(values: list, typ) -> pa.Array:
    """:func:`_array_of`, or ``pa.array`` for values not of the column's type (it converts
    them, or raises its own error, as before)."""
    try:
        return _array_of(values, typ)
    except (TypeError, ValueError, OverflowError, AttributeError):
        return pa.array(values, typ)


# scalars for compute kernels, taken from arrays (see the note above)
_NULL_TEXT = pa.nulls(1, pa.string())[0]
_ZERO_INT32 = _number_array(np.zeros(1, np.int32), pa.int32())[0]


def _int64_values(arr: pa.Array, fill: int) -> np.ndarray:
    """The values of an integer Arrow array as int64 numpy, ``fill`` where null (read from
    its buffers)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.int64():
        arr = arr.cast(pa.int64())
    n, data = len(arr), arr.buffers()[1]
    if data is None:
        return np.full(n, fill, np.int64)
    values = np.frombuffer(data, np.int64, count=n, offset=8 * arr.offset).copy()
    if arr.null_count:
        values[~_valid_mask(arr)] = fill
    return values


def _valid_mask(arr: pa.Array) -> np.ndarray:
    """True where ``arr`` is not null (from its validity bitmap)."""
    n, off = len(arr), arr.offset
    if arr.null_count == 0:
        return np.ones(n, bool)
    validity = arr.buffers()[0]
    if arr.null_count == n or validity is None:
        return np.zeros(n, bool)
    bits = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")
    return bits[off:off + n].astype(bool)


def _string_lengths(arr: pa.Array) -> np.ndarray:
    """The UTF-8 byte length of every value of a string array (0 where null)."""
    if arr.type != pa.string():       # e.g. large_string: the compute kernel
        import pyarrow.compute as pc
        return _int64_values(pc.binary_length(arr).cast(pa.int64()), 0)
    n, off = len(arr), arr.offset
    offsets = arr.buffers()[1]
    if offsets is None or n == 0:
        return np.zeros(n, np.int64)
    o = np.frombuffer(offsets, np.int32, count=n + 1, offset=4 * off)
    return np.diff(o).astype(np.int64) * _valid_mask(arr)


def _path_array(paths: list, r: dict) -> pa.Array:
    """The ``path`` column: the UTF-8 text :func:`fastdicom._batch.extract` made of the paths,
    else their display form (see :func:`_display_path`)."""
    if r.get("path_data") is not None:
        return pa.Array.from_buffers(pa.string(), len(paths), [
            None, pa.py_buffer(r["path_offsets"]), pa.py_buffer(r["path_data"])])
    try:
        return _array_of(paths, pa.string())
    except (UnicodeError, TypeError, AttributeError):
        return _array_of([_display_path(p) for p in paths], pa.string())


def _fast_batch(plan: _Plan, paths: list, r: dict, n: int):
    """The RecordBatch of a chunk without fallback rows: columns from the nogil finisher,
    odd or raw ones decoded from their raw values."""
    status = r["status"]
    flags = r["flags"]
    columns = r["columns"]
    decoded = r["decoded"]
    ok = status == 0
    size = r["size"]
    mtime = r["mtime_ns"]
    pix_o = r["pixel_offset"]
    pix_l = r["pixel_length"]
    err_type = err_msg = None
    err_off: list = [None] * n
    err_tag: list = [None] * n
    if not ok.all():
        err_type = [None] * n
        err_msg = [None] * n
        pix_o = pix_o.copy()
        pix_l = pix_l.copy()
        for i in np.nonzero(~ok)[0].tolist():
            st = status[i]
            _record_status(st, r, i, err_type, err_msg, err_off, err_tag)
            pix_o[i] = pix_l[i] = -1
    deflated = (flags & _batch.FLAG_DEFLATED) != 0
    if deflated.any():
        pix_o = pix_o.copy()
        pix_o[deflated] = -1
    big = None
    charsets = None
    pixrep = None

    def column(spec, j, kind):
        nonlocal big, charsets, pixrep
        d = decoded[j]
        if d is not None and not d[0]:
            return _from_decoded(spec, kind, d, n)
        if big is None:
            big = ((flags & 1) == 0) & ok
            cs_off, cs_data, _, cs_present = columns[plan.pos[_CHARSET_TAG]]
            charsets = [cs_data[cs_off[i]:cs_off[i + 1]] if cs_present[i] else None
                        for i in range(n)] if cs_present.any() else [None] * n
        if plan.pixrep and pixrep is None and spec.vr.startswith("US or SS"):
            jp = plan.pos[_PIXREP_TAG]
            pixrep = _int64_values(column(_PIXREP_SPEC, jp, plan.kinds[jp]), -1)
        return _decode_column(spec, columns[j], big, charsets, n, pixrep)

    path_array = _path_array(paths, r)
    bad_size = size < 0
    arrays = [path_array, _int64_array(size, bad_size), _int64_array(mtime, bad_size)]
    try:
        for spec, j, kind in plan.fields:
            arrays.append(_pn_groups(spec, column(spec, j, kind)))
        ts = column(_TS_SPEC, plan.pos[_TS_TAG], plan.kinds[plan.pos[_TS_TAG]])
        fr = column(_FRAMES_SPEC, plan.pos[_FRAMES_TAG], plan.kinds[plan.pos[_FRAMES_TAG]])
    finally:
        # (column calls itself, so its closure holds it: a cycle that kept the chunk's raw
        # columns alive until the garbage collector ran, and memory grew with the files)
        column = None   # noqa: F841
    frames = _frames(fr, pix_l)
    if err_type is None:
        et = em = pa.nulls(n, pa.string())
        eo = eg = pa.nulls(n, pa.int64())
    else:
        et, em = _array_of(err_type, pa.string()), _array_of(err_msg, pa.string())
        eo, eg = _array_of(err_off, pa.int64()), _array_of(err_tag, pa.int64())
    arrays += [ts, _int64_array(pix_o, pix_o < 0), _int64_array(pix_l, pix_l < 0),
               _int64_array(frames, (frames < 0) | ~ok), et, em, eo, eg]
    return pa.RecordBatch.from_arrays(arrays, schema=plan.schema)


# most bytes of one tag's raw values in a chunk (a setting for tests; at most the C limit)
_ARENA_LIMIT = _batch.ARENA_LIMIT


def _refuse_oversized(plan, columns, rows: dict, n: int) -> None:
    """Fallback rows (the nogil reader leaves a file whose values would not fit to the
    general one) whose values would carry a column of the chunk past ``_ARENA_LIMIT``
    bytes (the int32 offsets of its Arrow array): in a chunk of one file, an error row;
    in a larger chunk, :class:`_ChunkTooLarge` (it is scanned again in halves)."""
    totals = [len(c[1]) for c in columns]
    for i in sorted(rows):
        row = rows[i]
        if row["error"] is not None:
            continue
        grown = list(totals)
        for j, tag in enumerate(plan.tag_list):
            v = row["values"].get(tag)
            if v is None:
                continue
            grown[j] += len(v[1])
            if grown[j] > _ARENA_LIMIT:
                if n > 1:
                    raise _ChunkTooLarge()
                row["error"] = ("LimitExceededError",
                                f"the value of ({tag >> 16:04X},{tag & 0xFFFF:04X}) is "
                                f"{len(v[1]):,} bytes: more than {_ARENA_LIMIT:,} bytes "
                                "for one column", None, tag)
                break
        else:
            totals = grown


def _patch_columns(plan, columns, rows: dict, n: int):
    """The raw columns with the values of fallback rows inserted (their slots are empty)."""
    out = []
    order = sorted(rows)
    for j, tag in enumerate(plan.tag_list):
        offsets, data, vrs, present = columns[j]
        inserts = []
        for i in order:
            row = rows[i]
            v = row["values"].get(tag) if row["error"] is None else None
            if v is not None:
                inserts.append((i, v[0], v[1]))
        if not inserts:
            out.append(columns[j])
            continue
        extra = np.zeros(n + 1, np.int64)
        new_vrs = np.array(vrs, copy=True)
        new_present = np.array(present, copy=True)
        pieces = []
        prev = 0
        for i, vr, raw in inserts:
            cut = int(offsets[i])
            pieces.append(data[prev:cut])
            pieces.append(raw)
            prev = cut
            extra[i + 1] += len(raw)
            new_present[i] = True
            new_vrs[i] = ((ord(vr[0]) << 8) | ord(vr[1])) if len(vr) == 2 else 0
        pieces.append(data[prev:])
        new_off = offsets.astype(np.int64) + np.cumsum(extra)
        out.append((new_off.astype(np.int32), b"".join(pieces), new_vrs, new_present))
    return out


def walk_rows(paths, follow_symlinks: bool = False) -> Iterator[tuple]:
    """``(path, None)`` for each file the walk of ``paths`` finds to scan, and
    ``(path, (error_type, message))`` for each entry that becomes an error row without a
    read (a symlink not followed, a fifo or device, a missing path): every input is
    accounted for, as in :func:`scan`."""
    for e in iter_files(paths, follow_symlinks=follow_symlinks):
        yield e.path, _entry_error(e, follow_symlinks)


_SKIPPED = "SymlinkSkipped"       # the error_type of a symlink not followed


def _entry_error(e: WalkEntry, follow_symlinks: bool) -> Optional[tuple]:
    """``None`` for a walk entry to scan, else the ``(error_type, message)`` of its row (a
    symlink not followed, a fifo or device, a path that could not be listed)."""
    if e.kind == "file" or (e.kind == "symlink" and follow_symlinks):
        return None
    if e.kind == "symlink":
        return _SKIPPED, "symbolic link not followed"
    if e.kind == "special":
        return "IsADirectoryError", "not a regular file"
    exc = e.error
    return type(exc).__name__, _exc_text(exc)


def _walk_chunks(paths, follow_symlinks: bool, size: int,
                 visited: Optional[set] = None) -> Iterator[tuple]:
    """The rows of :func:`walk_rows` in chunks of at most ``size``: ``(paths, errors)``,
    ``errors`` mapping the index in the chunk of each error row to its ``(error_type,
    message)`` (runs of a folder's files are taken in slices, not one by one)."""
    plain: list = []
    errs: dict = {}
    for item in _iter_runs(paths, follow_symlinks, visited):
        if type(item) is list:
            k = 0
            while k < len(item):
                take = item[k:k + size - len(plain)]
                plain += take
                k += len(take)
                if len(plain) >= size:
                    yield plain, errs
                    plain, errs = [], {}
            continue
        err = _entry_error(item, follow_symlinks)
        if err is not None:
            errs[len(plain)] = err
        plain.append(item.path)
        if len(plain) >= size:
            yield plain, errs
            plain, errs = [], {}
    if plain:
        yield plain, errs


@stops_as_themselves
def scan_batches(paths, tags: Sequence = DEFAULT_TAGS, *, workers: Optional[int] = None,
                 errors: str = "record", batch_size: int = DEFAULT_BATCH_FILES,
                 follow_symlinks: bool = False, force: bool = False,
                 limits: Optional[Limits] = None) -> Iterator[pa.RecordBatch]:
    """Like :func:`scan`, yielding :class:`pyarrow.RecordBatch` es of at most ``batch_size``
    rows in input order; memory stays bounded: at most 4 × ``workers`` chunks of at most
    ``min(batch_size, 1024)`` files are in flight (one worker: one chunk of at most
    ``min(batch_size, 4096)`` files)."""
    if errors not in ("record", "raise"):
        raise ValueError("errors must be 'record' or 'raise'")
    plan = _scan_plan(_tag_tuple(tags), bool(force), checked_limits(limits))
    workers = min(os.cpu_count() or 1, 8) if workers is None else checked_workers(workers)
    nofollow = not follow_symlinks
    batch_size = checked_workers(batch_size, "batch_size")
    # the folders walked so far, by every walk of this scan (the walk of the inputs, or of
    # the slices of a long list that hold a folder): the rows do not depend on the chunks
    visited: set = set()

    def _walk_entries(src, size):
        return _walk_chunks(src, follow_symlinks, size, visited)

    # a long explicit list of paths is scanned without a walk (see work_listed); a short
    # one (e.g. a few directories) is walked.  pathlib paths count as their text.
    listed = False
    if isinstance(paths, (list, tuple)) and len(paths) > 64:
        # (one pass over the list when it holds only str, the common case)
        listed = all(type(p) is str for p in paths)
        if not listed and all(isinstance(p, (str, os.PathLike)) for p in paths):
            text = [os.fspath(p) for p in paths]
            if all(type(p) is str for p in text):
                paths = text
                listed = True

    # A scanning thread runs only the nogil read of a chunk (_extract); the batch is
    # assembled (Arrow arrays, error rows, the per-file Python reader's rows) by the
    # consumer, so the threads of a pool do not take turns at the GIL for it.
    def work(chunk):
        plain, errs = chunk
        return errs, plain, _extract(plan, plain, nofollow)

    def work_listed(plain):
        return None, plain, _extract(plan, plain, nofollow)

    def finish(res):
        errs, plain, r = res
        batches = _assemble_all(plan, plain, nofollow, r)
        if errs is not None:        # a chunk of a walk: its rows that are errors already
            if errs:
                batches = _override_errors(batches, [errs.get(i) for i in range(len(plain))])
            return batches
        # A slice of an explicit list of paths, scanned straight away without a walk (no
        # lstat per file): open(O_NOFOLLOW) + fstat tell symlinks, directories and
        # specials apart, and a slice holding any of those (or a glob) is redone with
        # the walk.
        k = 0
        for batch in batches:
            if batch.column("error_type").null_count != batch.num_rows:
                et = batch.column("error_type").to_pylist()
                for p, e in zip(plain[k:], et):
                    if e is None:
                        continue
                    if e in ("IsADirectoryError", "OSError") or (e == "FileNotFoundError"
                                                                  and _has_magic(p)):
                        return _Redo(plain)     # walked lazily here, in order
            k += batch.num_rows
        return batches

    # chunks of a walk, and of a list of files (spread evenly over the workers); a list of
    # directories is walked in chunks of a walk, not in 64-file slices of its length
    # (one worker: larger chunks, as nothing runs beside it; a chunk costs ~0.2 ms besides
    # its files, the Arrow arrays of its columns: 1,200 small files in one chunk instead of
    # two, 7.1-7.3 us/file against 7.4-7.5)
    chunk_size = walk_chunk = max(1, min(batch_size, _CHUNK_FILES if workers > 1
                                         else 4 * _CHUNK_FILES))
    if workers > 1:
        walk_chunk = max(1, min(walk_chunk, _CHUNK_FILES // 2))
        chunk_size = max(64, min(chunk_size, -(-len(paths) // workers))) if listed \
            else walk_chunk
    # A list of files: the calling thread scans too, beside workers - 1 pool threads (see
    # _bounded_map), with 4 chunks per worker in flight (with 2, the pool thread ran out of
    # chunks while the caller scanned one: 20,000 files, 1.68-1.74x one worker against
    # 1.89-1.91x).  A walk: the calling thread walks (Python, holding the GIL), and a pool
    # of ``workers`` threads scans.
    helped = listed and workers > 1
    pool = None

    def run(fn, chunks):
        if pool is None:
            return (fn(c) for c in chunks)
        return _bounded_map(pool, fn, chunks, (4 if helped else 2) * workers, help=helped)

    def merged(results):
        # chunks never exceed batch_size rows: no re-batching, no copies
        for res in results:
            batches = finish(res)
            if isinstance(batches, _Redo):
                yield from merged(run(work, _walk_entries(batches.paths, walk_chunk)))
                continue
            for b in batches:
                if errors == "raise":
                    _raise_first(b)
                if b.num_rows > batch_size:
                    for k in range(0, b.num_rows, batch_size):
                        yield b.slice(k, batch_size)
                else:
                    yield b

    if listed:
        fn = work_listed
        chunks = (list(paths[k:k + chunk_size]) for k in range(0, len(paths), chunk_size))
    else:
        fn = work
        chunks = _walk_entries(paths, walk_chunk)
    transient = None
    if workers > 1:
        threads = workers - 1 if helped else workers
        if workers <= _POOLED_MAX:
            pool = _scan_pool(threads)
        else:   # an unusual count: its threads end with the scan, not kept for the next
            pool = transient = ThreadPoolExecutor(threads, thread_name_prefix="fastdicom-scan")
    try:
        yield from merged(run(fn, chunks))
    finally:
        if transient is not None:
            transient.shutdown(wait=False, cancel_futures=True)


_POOLS: dict = {}
_POOLS_LOCK = threading.Lock()
# pools of at most this many threads are kept for the process; larger ones live for one scan
_POOLED_MAX = max(8, 2 * (os.cpu_count() or 1))


def _scan_pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``workers`` scan threads, made once: a scan does not pay for
    starting threads, and they start warm (tasks never wait on other tasks of the pool).
    The threads of a pool that has one for every CPU the process may run on are pinned, one
    per CPU (see :func:`pinned_cpus`)."""
    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            cpus = pinned_cpus(workers)
            pool = _POOLS[workers] = ThreadPoolExecutor(
                workers, thread_name_prefix=f"fastdicom-scan{workers}",
                initializer=None if cpus is None else _pin_thread,
                initargs=() if cpus is None else (cpus, itertools.count()))
        return pool


def _forget_pools() -> None:
    """In a forked child: the threads of the parent's pools did not come along (a task
    submitted to them would wait forever); new pools are made on demand."""
    global _POOLS_LOCK
    _POOLS.clear()
    _POOLS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def pinned_cpus(threads: int) -> Optional[list]:
    """The CPUs to pin ``threads`` worker threads to (the k-th thread to
    ``cpus[k % len(cpus)]``), or None to leave them to the scheduler.

    Threads woken together from a pool were seen (Linux 6.x guest, 2 vCPUs) to land and stay
    on one CPU for the whole of a short scan while the other was idle: a 2-worker scan of
    2,000 files then ran no faster than 1 worker in half of the rounds.  Pinned, every round
    scaled.  Pinning is only done when the pool has a thread for every CPU in the affinity
    mask of the calling thread (the one that makes the pool; then one thread per CPU is what
    the scheduler would aim for anyway): with fewer threads than CPUs, other processes may be
    on the CPUs we would pick.  ``FASTDICOM_PIN_THREADS=0`` turns it off."""
    if os.environ.get("FASTDICOM_PIN_THREADS", "1") == "0" or \
            not hasattr(os, "sched_setaffinity"):
        return None
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except OSError:
        return None
    if len(cpus) < 2 or threads < len(cpus):
        return None
    return cpus


def _pin_thread(cpus: list, counter) -> None:
    """Thread initializer: pin the calling thread to the next CPU of ``cpus``."""
    try:
        os.sched_setaffinity(0, {cpus[next(counter) % len(cpus)]})
    except OSError:       # a CPU taken away since: stay unpinned
        pass


class _Redo:
    """A slice of listed paths holding directories, symlinks, specials or globs."""
    __slots__ = ("paths",)

    def __init__(self, paths):
        self.paths = paths


def _bounded_map(pool, fn, items, depth, help=False):
    """``fn`` over ``items`` on ``pool``, results in order, at most ``depth`` in flight.  With
    ``help``, the calling thread is a worker too: rather than wait for a result, it runs an
    item no pool thread has started (the awaited one, else the newest).  So a pool of N - 1
    threads and the caller keep N CPUs busy with no thread more than that to wake and place
    (and none that sits on a CPU a worker needs)."""
    from collections import deque
    q = deque()        # [future, item], in the order of the items

    def run_here(entry):
        if not entry[0].cancel():      # started (or done) meanwhile
            return False
        done = Future()
        try:
            done.set_result(fn(entry[1]))
        except Exception as exc:       # kept for its turn, as the pool would
            done.set_exception(exc)
        entry[0] = done
        return True

    def head():
        while help and not q[0][0].done():
            if not (run_here(q[0]) or any(run_here(q[k]) for k in range(len(q) - 1, 0, -1))):
                break                  # every item is running: wait
        return q.popleft()[0].result()

    for it in items:
        q.append([pool.submit(fn, it), it])
        if len(q) >= depth:
            yield head()
    while q:
        yield head()


def _rebatch(batches, size):
    table = pa.Table.from_batches(batches)
    for b in table.to_batches(max_chunksize=size):
        yield b


def _override_errors(batches: list, pre: list) -> list:
    """``batches`` (the rows of ``pre`` in order) with the errors of the walk (``pre[i]``:
    (type, message) or None) in place of the scan's own."""
    out, k = [], 0
    for batch in batches:
        part = pre[k:k + batch.num_rows]
        out.append(_override_batch_errors(batch, part) if any(part) else batch)
        k += batch.num_rows
    return out


def _override_batch_errors(batch, pre):
    """``batch`` with the errors of the walk (``pre[i]``: (type, message) or None) in place
    of the scan's own (no offset or tag: they are not errors of the file's contents)."""
    cols = {n: batch.column(n).to_pylist() for n in
            ("error_type", "error_message", "error_offset", "error_tag")}
    for i, err in enumerate(pre):
        if err:
            cols["error_type"][i], cols["error_message"][i] = err
            cols["error_offset"][i] = cols["error_tag"][i] = None
    arrays = list(batch.columns)
    for name, values in cols.items():
        j = batch.schema.get_field_index(name)
        arrays[j] = _array_of(values, batch.schema.field(j).type)
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


def _raise_first(batch):
    """Raise the error of the first failed row of ``batch``, with its path, offset and
    tag.  A symlink not followed is no error (the caller's policy): its row stays."""
    et = batch.column("error_type")
    if et.null_count == len(et):
        return
    i = next((k for k, v in enumerate(et.to_pylist()) if v is not None and v != _SKIPPED),
             None)
    if i is None:
        return
    name = et[i].as_py()
    msg = batch.column("error_message")[i].as_py()
    path = batch.column("path")[i].as_py()
    from . import errors as _e
    cls = getattr(_e, name, None)
    if isinstance(cls, type) and issubclass(cls, DicomError):
        raise cls(msg, path=path, offset=batch.column("error_offset")[i].as_py(),
                  tag=batch.column("error_tag")[i].as_py())
    import builtins
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, OSError):
        # as open() raises it: errno (found from its message), strerror and filename
        code = _errno_of(msg)
        if code is not None:
            raise cls(code, msg, path)
        raise cls(f"{msg}: {path!r}")
    if isinstance(cls, type) and issubclass(cls, ValueError):
        raise cls(f"{msg}: {path!r}")     # e.g. a NUL in the path
    raise OSError(f"{name}: {msg}: {path!r}")


@lru_cache(maxsize=1)
def _errno_texts() -> dict:
    return {os.strerror(code): code for code in sorted(_errno.errorcode, reverse=True)}


def _errno_of(message: Optional[str]) -> Optional[int]:
    """The errno whose ``os.strerror`` text ``message`` is (an error row keeps the text)."""
    return _errno_texts().get(message) if message else None


@stops_as_themselves
def scan(paths, tags: Sequence = DEFAULT_TAGS, *, workers: Optional[int] = None,
         errors: str = "record", follow_symlinks: bool = False,
         force: bool = False, limits: Optional[Limits] = None) -> pa.Table:
    """Scan the headers of ``paths`` (files, directories walked recursively, globs) into a
    :class:`pyarrow.Table` with the schema described in the module docstring.

    ``workers`` threads (default: the CPU count, at most 8) run the nogil per-file scan (for a
    list of files, the calling thread and ``workers - 1`` pool threads; for a walk, the
    calling thread walks and ``workers`` pool threads scan).
    ``errors="record"`` keeps a row per failing file with ``error_type``/``error_message``;
    ``"raise"`` raises the first error.  Symlinks are not followed unless
    ``follow_symlinks``: skipped ones get ``error_type="SymlinkSkipped"``, which is no
    error (``"raise"`` keeps their rows too).
    A folder given twice (or, with ``follow_symlinks``, reached again through a link in one
    input's walk) is walked once; otherwise each input is walked on its own: a file under two
    inputs (listed twice, in two globs, in a folder and in its subfolder, both given) has a
    row for each, with or without ``follow_symlinks``.
    ``force`` also reads files without the 128-byte preamble and ``DICM`` (raw data sets,
    ACR-NEMA), as ``dcmread(force=True)`` does, when their first tag is of group 0000, 0002,
    0004 or 0008; other files still fail with ``InvalidDicomError``.
    ``limits`` (a :class:`~fastdicom.Limits`, default ``DEFAULT_LIMITS``) bounds what a file
    may make the scan do, as in :func:`fastdicom.dcmread`: the sequence nesting
    (``max_depth``) and the inflated size of a deflated data set (``max_inflated_bytes``);
    a file past them gets an error row.
    """
    tags = _tag_tuple(tags)     # (read twice: an iterator would be empty the second time)
    batches = list(scan_batches(paths, tags, workers=workers, errors=errors,
                                follow_symlinks=follow_symlinks, force=force, limits=limits))
    return pa.Table.from_batches(batches, schema=schema(tags))
