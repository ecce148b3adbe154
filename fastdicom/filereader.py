"""dcmread / open: preamble, file meta, transfer syntax, deflate, buffer ownership.

``mode="mmap"`` (the default for paths) maps the file with POSIX ``mmap()`` when a view or a
value past the header needs it; the header is read from a ``pread`` prefix, and native pixel
data copied into a new array (``pixel_array``, frames) is read with ``pread``, so a header and
its pixels cost two reads and no page faults.  ``dcmread`` closes the descriptor after the
header (the file is opened again, and checked to have its size and mtime at open, when it is
needed); :class:`DicomFile` (``fastdicom.open``) keeps it until ``close()``.
Residual risk: if another process truncates a mapped file, touching the lost pages raises
SIGBUS, which kills the interpreter.  fastdicom checks the file size at open
and again before each frame access, but cannot close the window between that check and the
copy.  Use ``mode="read"`` (an owned buffer filled with ``pread``) for files on storage that
others may modify; header-only reads (``stop_before_pixels``/``specific_tags``), batch scans and
ingestion always read with ``pread``.
"""
from __future__ import annotations

import os

from typing import Iterable, Optional

from . import _batch
from . import _dictionary as _dict
from . import tags as _tags
from .values import ALL_VRS as _ALL_VRS
from ._scan import (MappedFile, read_file, read_header_prefix, scan as _scan,
                    _set_plain_syntaxes)
from .dataset import Context, Dataset, F_ODD, DEFER_SQ_BYTES
from .errors import (DicomError, warn_caller, FileChangedError, InvalidDicomError,
                     LimitExceededError, Limits, MalformedElementError, TruncatedError,
                     check_validation, checked_limits, report, status_error)

__all__ = ["dcmread", "open_file", "DicomFile", "read_buffer", "HEADER_CHUNK"]

HEADER_CHUNK = 8192
_VALIDATION_MODES = frozenset(("raise", "warn", "ignore"))
_META_END = 0x0002FFFF
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"
_DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95")


# VRs with a reserved field and a 32-bit length in explicit VR (PS3.5 7.1.2); the other
# VRs of PS3.5 Table 6.2-1 have a 16-bit length
_LONG_VRS = frozenset((b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                       b"UR", b"UT", b"UV"))
_SHORT_VRS = frozenset(v.encode() for v in _ALL_VRS) - _LONG_VRS


def element_header(head: bytes, explicit: bool, little: bool) -> Optional[tuple]:
    """(tag, header length, value length) of the element whose first bytes are ``head`` (up
    to 12), read as the scanner reads it: an unknown VR in explicit VR data is read as
    implicit VR.  None when ``head`` is too short."""
    if len(head) < 8:
        return None
    order = "little" if little else "big"
    tag = (int.from_bytes(head[0:2], order) << 16) | int.from_bytes(head[2:4], order)
    if explicit and (tag >> 16) != 0xFFFE:
        vr = bytes(head[4:6])
        if vr in _LONG_VRS:
            if len(head) < 12:
                return None
            return tag, 12, int.from_bytes(head[8:12], order)
        if vr in _SHORT_VRS:
            return tag, 8, int.from_bytes(head[6:8], order)
    return tag, 8, int.from_bytes(head[4:8], order)


def _preamble_kind(preamble: Optional[bytes]) -> str:
    if not preamble:
        return "none"
    if preamble[:2] == b"MZ":
        return "pe"
    if preamble[:4] == b"\x7fELF":
        return "elf"
    if preamble[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if preamble.count(0) == len(preamble):
        return "zero"
    return "other"


def _looks_explicit(buf, pos: int) -> bool:
    return len(buf) - pos >= 6 and 0x40 < buf[pos + 4] < 0x5B and 0x40 < buf[pos + 5] < 0x5B


def _check_status(index, path, inflated=False):
    if index.status != 0:
        raise status_error(index.status, path=path, offset=index.error_offset,
                           tag=index.error_tag, inflated=inflated)


def _inflate(data, start: int, limits: Limits, path, keep_partial: bool = False):
    """Inflate a deflated body once, bounded by ``limits.max_inflated_bytes``, into one bytes
    object grown in place (:func:`fastdicom._batch.inflate_bytes`: the peak memory is about
    the inflated size, not twice it).  A raw deflate stream is the standard's; a
    zlib-wrapped one is read too.

    ``keep_partial``: return ``(output, error)`` -- on a corrupt or cut stream the output
    inflated before the damage (as a streaming inflater has it) and the error it would raise
    (None when the stream is sound)."""
    budget = limits.max_inflated_bytes
    compressed = memoryview(data)[start:]
    for wbits in (-15, 15):
        try:
            out, status = _batch.inflate_bytes(compressed, budget, wbits)
        except MemoryError:
            # within the limit, but more than this process can hold (the default allows
            # 4 GiB): the limit's error, not the interpreter's
            raise LimitExceededError(
                "deflated data set: out of memory inflating it (limits.max_inflated_bytes "
                f"is {budget})", path=path, offset=start) from None
        if status == _batch.INFLATE_OVER:
            raise LimitExceededError(
                f"deflated data set inflates beyond limits.max_inflated_bytes ({budget})",
                path=path, offset=start)
        if status == _batch.INFLATE_CORRUPT:
            if keep_partial and wbits == -15 and out:
                return out, MalformedElementError("deflate stream is corrupt", path=path,
                                                  offset=start)
            continue
        if status == _batch.INFLATE_CUT and wbits == -15:
            error = TruncatedError("deflate stream ends before its final block", path=path,
                                   offset=start)
            if keep_partial:
                return out, error
            raise error
        return (out, None) if keep_partial else out
    raise MalformedElementError("deflate stream is corrupt", path=path, offset=start)


#: the message of the InvalidDicomError for a file without preamble + DICM (force reads it)
NO_PREAMBLE = "no 128-byte preamble followed by 'DICM' (use force=True to read anyway)"


def _parse_header(buf, path, force: bool, validation: str, limits: Limits) -> tuple:
    """The preamble and file meta group of ``buf``: ``(preamble, meta_index, body_start,
    transfer_syntax, explicit, little, deflated, ts_guessed)`` (the data set's encoding)."""
    n = len(buf)
    if n >= 132 and (buf.startswith(b"DICM", 128) if type(buf) is bytes
                     else buf[128:132] == b"DICM"):
        preamble = bytes(buf[:128])
        pos = 132
    elif n >= 4 and buf[:4] == b"DICM":
        preamble = None
        pos = 4
    else:
        if not force:
            if n == 0:
                raise InvalidDicomError("empty file", path=path, offset=0)
            raise InvalidDicomError(NO_PREAMBLE, path=path, offset=min(n, 128))
        preamble = None
        pos = 0
    meta_start = pos
    meta = ts = None
    # file meta group: always explicit VR little endian (pydicom detects implicit, with a warning)
    if n - pos >= 8 and buf[pos] == 0x02 and buf[pos + 1] == 0x00:
        explicit_meta = 0x40 < buf[pos + 4] < 0x5B and 0x40 < buf[pos + 5] < 0x5B
        if not explicit_meta:
            report(validation, MalformedElementError(
                "file meta information is encoded with implicit VR", path=path, offset=pos,
                tag=0x00020000 | (buf[pos + 2] | buf[pos + 3] << 8)))
        meta = _scan(buf, pos, explicit=explicit_meta, little_endian=True, stop_tag=_META_END,
                     stop_below=0x00020000,
                     max_depth=limits.max_depth, max_elements=limits.max_elements,
                     allow_clip=False)
        if meta.status:
            _check_status(meta, path)
        body, declared, gl_offset, actual, ts = meta.meta_summary()
        if declared >= 0 and declared != actual:
            report(validation, MalformedElementError(
                f"file meta group length says {declared} bytes, found {actual}",
                path=path, offset=gl_offset, tag=0x00020000))
        pos = body
    if ts is None or ts == "":
        if meta is not None:
            # lenient: guessed from the body (ds.transfer_syntax_guessed) with a warning
            from .errors import UnsupportedTransferSyntaxError
            report(validation, UnsupportedTransferSyntaxError(
                "file meta has no Transfer Syntax UID; guessing it from the data set",
                path=path, offset=meta_start, tag=0x00020010))
        explicit, little = _guess_encoding(buf, pos)
        return preamble, meta, pos, ts, explicit, little, False, True
    # unknown syntax: headers are explicit VR little endian (PS3.5 A.4); pixel decoding
    # raises UnsupportedTransferSyntaxError later
    explicit, little = _TS_ENCODING.get(ts, _EXPLICIT_LE_ENCODING)
    return preamble, meta, pos, ts, explicit, little, ts in _DEFLATED, False


_EXPLICIT_LE_ENCODING = (True, True)


#: (explicit VR, little endian) of each known transfer syntax
_TS_ENCODING = {ts: (bool(info["explicit_vr"]), bool(info["little_endian"]))
                for ts, info in _dict.TRANSFER_SYNTAXES.items()}
_TS_ENCODING[_IMPLICIT_LE] = (False, True)
_TS_ENCODING[_EXPLICIT_BE] = (True, False)


_set_plain_syntaxes({ts: enc for ts, enc in _TS_ENCODING.items() if ts not in _DEFLATED})


def _read_clean_header(data: bytes, size: int, path: str, stop_before_pixels: bool,
                       validation: str, limits: Optional[Limits]) -> Optional[Dataset]:
    """The data set of a header prefix in the common case (see
    :func:`fastdicom._scan.read_header_prefix`) in one C call, or None: the general
    :func:`read_buffer` then reads it (and warns or raises as the file deserves)."""
    if validation not in _VALIDATION_MODES:
        check_validation(validation)
    limits = checked_limits(limits)
    if data.startswith((b"MZ", b"\x7fELF")):
        return None           # the general path warns about the executable preamble
    found = read_header_prefix(data, len(data) >= size, 0xFFFFFFFF, stop_before_pixels,
                               limits.max_depth, limits.max_elements, validation != "raise",
                               DEFER_SQ_BYTES)
    if found is None:
        return None
    meta_index, _start, ts, explicit, little, index = found
    ctx = Context(data, path, validation, limits, False, None, data[:128], little,
                  not explicit, ts)
    ds = Dataset._from_index(index, -1, ctx)
    d = ds.__dict__
    d["_meta_src"] = (meta_index, ctx)
    d["transfer_syntax_guessed"] = False
    return ds


def _guess_encoding(buf, pos: int):
    """Explicit/implicit and endianness of a body without a transfer syntax, from its
    first element (pydicom's approach)."""
    if len(buf) - pos < 8:
        return True, True
    explicit = _looks_explicit(buf, pos)
    group_le = buf[pos] | (buf[pos + 1] << 8)
    group_be = (buf[pos] << 8) | buf[pos + 1]
    little = not (group_be <= 0x0008 < group_le) and not (group_le > 0x00FF and group_be <= 0x00FF)
    return explicit, little


def read_buffer(buf, *, path=None, stop_before_pixels: bool = False,
                specific_tags: Optional[Iterable] = None, force: bool = False,
                validation: str = "warn", limits: Optional[Limits] = None,
                owner=None, partial_size: int = -1, whole=None,
                deflated_tail: str = "check") -> Dataset:
    """Read a data set from any object with the buffer protocol (zero-copy).

    ``partial_size`` >= 0 says ``buf`` holds only the first bytes of a file of that size:
    a :class:`TruncatedError` at the end of ``buf`` then means "read more".

    ``whole`` (with ``partial_size``): the whole file, e.g. a lazy :class:`MappedFile`.  The
    prefix ``buf`` must then hold every element but the value of a last, defined-length pixel
    element ending exactly at the end of the file; that value is read from ``whole`` when
    asked for.  Anything else (or anything a strict read would report) raises ``_NeedMore``
    or a DicomError, and the caller reads ``whole`` itself.

    ``deflated_tail="ignore"`` (with ``stop_before_pixels``): a deflated stream that is
    corrupt or cut short behind the header of the Pixel Data element is not an error (the
    batch scan's header-only rows; the stream is inflated as far as it goes).
    """
    if validation not in _VALIDATION_MODES:
        check_validation(validation)
    ctx_validation = validation
    if whole is not None:
        validation = "raise"  # a prefix attempt: anything lenient is left to the full read
    limits = checked_limits(limits)
    if type(buf) is not bytes:
        if not isinstance(buf, memoryview):
            buf = memoryview(buf)
        if buf.format != "B" or buf.ndim != 1:
            # the bytes of a buffer of other items (uint16, a 2-D array...): offsets count
            # bytes
            buf = buf.cast("B") if buf.c_contiguous else memoryview(buf.tobytes())
    (preamble, meta_index, start, transfer_syntax, explicit, little, deflated,
     ts_guessed) = _parse_header(buf, path, force, validation, limits)
    stop_tag = 0xFFFFFFFF
    only = None
    if specific_tags is not None:
        only = {_tags.parse_tag(t) for t in specific_tags}
        only.add(0x00080005)
        stop_tag = max(only)
    data = buf
    inflated = False
    tail_error = None
    if deflated:
        if partial_size >= 0:
            raise _NeedMore()
        if deflated_tail == "ignore" and stop_before_pixels:
            data, tail_error = _inflate(buf, start, limits, path, keep_partial=True)
        else:
            data, tail_error = _inflate(buf, start, limits, path), None
        start = 0
        inflated = True
    if len(data) - start >= 6 and not ts_guessed:
        # a body whose VR encoding contradicts the transfer syntax is detected and read
        found_explicit = 0x40 < data[start + 4] < 0x5B and 0x40 < data[start + 5] < 0x5B
        if found_explicit != explicit and not (data[start] == 0xFE and data[start + 1] == 0xFF):
            report(validation, MalformedElementError(
                f"transfer syntax says {'explicit' if explicit else 'implicit'} VR, data is "
                f"{'explicit' if found_explicit else 'implicit'} VR; reading it as found",
                path=path, offset=start))
            explicit = found_explicit
    index = _scan(data, start, explicit=explicit, little_endian=little, stop_tag=stop_tag,
                  stop_before_pixels=stop_before_pixels, max_depth=limits.max_depth,
                  max_elements=limits.max_elements, allow_clip=partial_size < 0,
                  lenient_vr=validation != "raise", defer_sq_bytes=DEFER_SQ_BYTES,
                  virtual_size=partial_size if whole is not None else -1)
    if inflated and tail_error is not None:
        # the damage is behind the header only if the scan reached a whole Pixel Data
        # element header in the bytes inflated before it
        stop = index.stop_offset
        if index.status != 0 or stop < 0 or index.n_clipped or \
                element_header(bytes(data[stop:stop + 12]), explicit, little) is None:
            raise tail_error
    if whole is not None:
        if (index.status != 0 or index.virtual_end != partial_size or inflated
                or index.n_clipped or index.trailing):
            raise _NeedMore()
        index.attach_file(whole)
        data = whole  # the context's buffer: the whole file, mapped on first buffer export
    if index.status != 0:
        if partial_size >= 0 and len(buf) < partial_size and index.status in (1, 11):
            raise _NeedMore()
        _check_status(index, path, inflated)
    if whole is None and partial_size >= 0 and len(buf) < partial_size and \
            index.stop_offset < 0:
        # the scan ran to the end of the bytes read (at an element boundary, or with fewer
        # bytes left than an element header): the data set may go on past them
        raise _NeedMore()
    ctx = Context(data, path, ctx_validation, limits, inflated, owner, preamble, little,
                  not explicit, transfer_syntax)
    if index.n_clipped or index.trailing or index.n_vr_retries or index.n_odd:
        _report_leniency(index, ctx, partial_size >= 0 and len(buf) < partial_size)
    ds = Dataset._from_index(index, -1, ctx)
    d = ds.__dict__
    if only is not None:
        d["_only"] = only
    # the file meta Dataset is built on first access of ds.file_meta
    d["_meta_src"] = (meta_index, ctx if not inflated else
                      Context(buf, path, validation, limits, False, owner))
    d["transfer_syntax_guessed"] = ts_guessed
    if preamble is not None and preamble.startswith((b"MZ", b"\x7fELF")):
        kind = d["preamble_kind"] = _preamble_kind(preamble)
        if ctx_validation != "ignore":
            warn_caller(f"the preamble holds an executable ({kind.upper()}) "
                        "header (CVE-2019-11687 polyglot)" + (f" in {path!r}" if path else ""))
    return ds


def _report_leniency(index, ctx: Context, partial: bool) -> None:
    mode = ctx.validation
    if mode == "ignore":
        return
    if index.n_clipped:
        report(mode, TruncatedError("the last element runs past the end of the data; "
                                    "its value is cut short", path=ctx.path,
                                    offset=index.error_offset, tag=index.error_tag,
                                    inflated=ctx.inflated))
    if index.trailing and not partial:
        # fewer than 8 bytes left: an element header cut short by the end of the data
        report(mode, TruncatedError(f"{index.trailing} trailing bytes after the last "
                                    "element ignored (an element header cut short)",
                                    path=ctx.path, offset=index.end - index.trailing,
                                    inflated=ctx.inflated))
    if index.n_vr_retries:
        report(mode, MalformedElementError(f"{index.n_vr_retries} element(s) with invalid VR "
                                           "bytes read as implicit VR", path=ctx.path,
                                           inflated=ctx.inflated))
    if index.n_odd:
        entries = index.to_numpy()
        odd = entries[(entries["flags"] & F_ODD) != 0]
        odd = odd[(odd["tag"] != 0x7FE00010)]
        if len(odd):
            report(mode, MalformedElementError(
                f"{len(odd)} element(s) with odd value length", path=ctx.path,
                offset=int(odd["header_offset"][0]), tag=int(odd["tag"][0]),
                inflated=ctx.inflated))


class _NeedMore(Exception):
    pass


HEADER_PREAD_MAX = 64 << 20


def _read_header_only(path, **kwargs) -> Dataset:
    chunk = HEADER_CHUNK
    while True:
        if chunk > HEADER_PREAD_MAX:
            # the header holds huge values (e.g. GiB-sized private OB before the pixel data):
            # map the file rather than copy it into memory
            mapped = MappedFile(path)
            return read_buffer(mapped, path=path, owner=mapped, **kwargs)
        data, size, mtime = read_file(path, chunk)
        if len(data) >= size:
            return read_buffer(data, path=path, **kwargs)
        try:
            return read_buffer(data, path=path, partial_size=size, **kwargs)
        except _NeedMore:
            chunk *= 8
        except DicomError as exc:
            if isinstance(exc, InvalidDicomError):
                raise
            # an error at the end of a partial buffer may be an artefact of the cut
            chunk *= 8


_PREFIX_CHUNKS = (HEADER_CHUNK, 64 << 10)


def _read_prefix(mf: MappedFile, kwargs: dict) -> Optional[Dataset]:
    """The data set of a lazily mapped file read from a pread prefix, when everything but
    the value of its last (pixel) element fits in one; None when the file needs a full read."""
    size = mf.size
    for chunk in _PREFIX_CHUNKS:
        if chunk >= size or chunk < 132:   # a prefix must hold the preamble and 'DICM'
            return None
        try:
            return read_buffer(mf.pread(0, chunk), owner=mf, partial_size=size, whole=mf,
                               **kwargs)
        except _NeedMore:
            continue
        except InvalidDicomError:
            return None  # the full read reports it, as configured
        except DicomError:
            continue     # maybe an artefact of the cut: a longer prefix, else the full read
    return None


def dcmread(fp, *, stop_before_pixels: bool = False, specific_tags: Optional[Iterable] = None,
            force: bool = False, mode: str = "mmap", validation: str = "warn",
            limits: Optional[Limits] = None, defer_size=None) -> Dataset:
    """Read a DICOM data set from a path, bytes-like object or binary file object.

    ``mode`` ("mmap" or "read") applies to paths; header-only reads (``stop_before_pixels``
    or ``specific_tags``) always use ``pread`` of the first bytes, extended when needed.
    Values are decoded lazily.  Raises a :class:`~fastdicom.errors.DicomError` on bad input.
    """
    if type(fp) is str and (stop_before_pixels or specific_tags is not None):
        # the hot header-only path: one small pread, no keyword dict
        data, size, _ = read_file(fp, HEADER_CHUNK)
        if specific_tags is None and not force:
            ds = _read_clean_header(data, size, fp, stop_before_pixels, validation, limits)
            if ds is not None:
                return ds
        if len(data) >= size:
            return read_buffer(data, path=fp, stop_before_pixels=stop_before_pixels,
                               specific_tags=specific_tags, force=force,
                               validation=validation, limits=limits)
        try:
            return read_buffer(data, path=fp, stop_before_pixels=stop_before_pixels,
                               specific_tags=specific_tags, force=force,
                               validation=validation, limits=limits, partial_size=size)
        except _NeedMore:
            pass
        except DicomError as exc:
            if isinstance(exc, InvalidDicomError):
                raise
    kwargs = dict(stop_before_pixels=stop_before_pixels, specific_tags=specific_tags,
                  force=force, validation=validation, limits=limits)
    if isinstance(fp, (str, os.PathLike)):
        path = os.fspath(fp)
        if stop_before_pixels or specific_tags is not None:
            return _read_header_only(path, **kwargs)
        if mode == "mmap":
            # the header from a pread prefix, and the descriptor closed at once: the file
            # is opened again (and checked unchanged) only to read pixel data with pread or
            # to map it for a value past the prefix -- no map and no page faults for the
            # common header + pixel_array, and no descriptor held per Dataset
            mapped = MappedFile(path, lazy=True)
            try:
                if mapped.size <= HEADER_CHUNK:   # a small file: read whole, never mapped
                    return read_buffer(mapped.pread(0, mapped.size), path=path, **kwargs)
                ds = _read_prefix(mapped, dict(kwargs, path=path))
                if ds is None:
                    ds = read_buffer(mapped, path=path, owner=mapped, **kwargs)
            finally:
                mapped.close()
            return ds
        if mode != "read":
            raise ValueError(f"mode must be 'mmap' or 'read', not {mode!r}")
        data, size, mtime = read_file(path)
        if len(data) != size:
            raise FileChangedError(f"file size changed while reading ({size} -> {len(data)})",
                                   path=path)
        return read_buffer(data, path=path, **kwargs)
    if isinstance(fp, (bytes, bytearray, memoryview)):
        return read_buffer(fp if not isinstance(fp, bytearray) else bytes(fp), **kwargs)
    if hasattr(fp, "read"):
        import io
        if isinstance(fp, io.TextIOBase):     # its read() would decode the bytes as text
            raise TypeError("file object must be opened in binary mode")
        name = getattr(fp, "name", None)
        data = fp.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("file object must be opened in binary mode")
        return read_buffer(bytes(data), path=name if isinstance(name, str) else None, **kwargs)
    # any other object with the buffer protocol
    try:
        view = memoryview(fp)
    except TypeError:
        raise TypeError("dcmread reads a path, a bytes-like object or a binary file object, "
                        f"not {type(fp).__name__}") from None
    return read_buffer(view, **kwargs)


class DicomFile:
    """An open DICOM file: owns the buffer (a memory map by default) and its data set.

    In ``mmap`` mode the descriptor stays open until :meth:`close`; the header is read with
    ``pread`` and the file is mapped on first need (a view, a value past the header).
    ``close()`` closes the descriptor and drops the file's reference; views handed out keep
    the map alive.
    """

    def __init__(self, path, *, mode: str = "mmap", validation: str = "warn",
                 limits: Optional[Limits] = None, force: bool = False):
        self.path = os.fspath(path)
        self.mode = mode
        kwargs = dict(path=self.path, validation=validation, limits=limits, force=force)
        if mode == "mmap":
            # the descriptor stays open until close(); the map is made only when a view or
            # a value past the header needs it
            self._buffer = mf = MappedFile(self.path, lazy=True)
            self.size = mf.size
            self.mtime_ns = mf.mtime_ns
            try:
                self.dataset = _read_prefix(mf, kwargs)
                if self.dataset is None:
                    self.dataset = read_buffer(mf, owner=mf, **kwargs)
            except BaseException:
                # (the error's traceback holds this half-built object: not its descriptor)
                self._buffer = None
                mf.close()
                raise
            return
        elif mode == "read":
            self._buffer, self.size, self.mtime_ns = read_file(self.path)
            if len(self._buffer) != self.size:
                raise FileChangedError("file size changed while reading", path=self.path)
        else:
            raise ValueError(f"mode must be 'mmap' or 'read', not {mode!r}")
        self.dataset = read_buffer(self._buffer, owner=self._buffer, **kwargs)

    def check_unchanged(self) -> None:
        """Raise FileChangedError if the file on disk is now smaller than when opened."""
        if self._buffer is None:
            raise ValueError("DicomFile is closed")
        if self.mode == "mmap" and not self._buffer.check():
            raise FileChangedError("file was truncated or removed since it was mapped",
                                   path=self.path)

    @property
    def buffer(self):
        if self._buffer is None:
            raise ValueError("DicomFile is closed")
        return self._buffer

    @property
    def num_frames(self) -> int:
        from .pixels import num_frames
        return num_frames(self.dataset)

    def frame(self, index: int, *, as_rgb: bool = True):
        """Frame ``index``: a read-only numpy view on the file where the layout allows
        (``as_rgb=False``: YBR frames as stored, as :meth:`Dataset.frame` gives them)."""
        from .pixels import frame_view
        self.check_unchanged()
        view = frame_view(self.dataset, index, as_rgb=as_rgb)
        if self.mode == "mmap" and not view.flags.writeable:
            # a view on the map: have the kernel read its pages ahead in one request (the map
            # is MADV_RANDOM, so a cold view would otherwise fault in page by page)
            self._buffer.willneed_at(view.__array_interface__["data"][0], view.nbytes)
        return view

    def encapsulated_frame(self, index: int):
        from .pixels import encapsulated_frame
        self.check_unchanged()
        return encapsulated_frame(self.dataset, index)

    @property
    def pixel_array(self):
        self.check_unchanged()
        return self.dataset.pixel_array

    def close(self) -> None:
        """Close the file's descriptor and drop this object's reference to the map; views
        handed out, and the data set (values not decoded yet are read from the map), keep
        it alive."""
        ds = getattr(self, "dataset", None)
        if ds is not None:
            ds.__dict__["_pixel_cache"] = None
        if isinstance(self._buffer, MappedFile):
            self._buffer.close()  # the descriptor; the map lives while views hold it
        self._buffer = None

    def __enter__(self) -> "DicomFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_file(path, *, mode: str = "mmap", validation: str = "warn",
              limits: Optional[Limits] = None, force: bool = False) -> DicomFile:
    """Open ``path`` as a :class:`DicomFile` (a context manager owning the map)."""
    return DicomFile(path, mode=mode, validation=validation, limits=limits, force=force)
