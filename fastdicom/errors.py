"""The one exception hierarchy of fastdicom, plus warnings, validation modes and limits.

Every error raised on bad input derives from :class:`DicomError` (a ``ValueError``) and carries
``.path`` (str or None), ``.offset`` (int or None) and ``.tag`` (int ``0xGGGGEEEE`` or None).
Messages never quote element values.

``.offset`` is the byte offset, in the file, of the first byte at fault: the offending
element's tag; for a fault inside a value, the tag of the item at fault or of the frame's first
fragment (encapsulated pixel data), or the frame's first byte (native pixel data).  With
``.inflated`` it counts from the first byte of a deflated file's inflated data set, and
``str()`` says so.
"""
from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from typing import Optional

__all__ = [
    "DicomError", "InvalidDicomError", "MalformedElementError", "TruncatedError",
    "NestingTooDeepError", "LimitExceededError", "UnsupportedTransferSyntaxError",
    "PixelDataError", "EncapsulationError", "RLEDecodeError", "MissingCodecError",
    "SeriesError", "UnsafePathError", "FileChangedError", "DicomWarning", "Limits",
    "VALIDATION_MODES", "check_validation", "report", "warn_caller",
]


class DicomError(ValueError):
    """Base of every error fastdicom raises on bad input."""

    def __init__(self, message: str = "", *, path: Optional[str] = None,
                 offset: Optional[int] = None, tag: Optional[int] = None,
                 inflated: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.offset = offset
        self.tag = tag
        self.inflated = inflated

    def __str__(self) -> str:
        parts = [self.message]
        where = []
        if self.path is not None:
            where.append(f"file {self.path!r}")
        if self.offset is not None:
            where.append(f"offset {self.offset}" + (" (inflated stream)" if self.inflated else ""))
        if self.tag is not None:
            where.append(f"tag ({self.tag >> 16:04X},{self.tag & 0xFFFF:04X})")
        if where:
            parts.append("[" + ", ".join(where) + "]")
        return " ".join(parts)

    def with_context(self, *, path=None, offset=None, tag=None) -> "DicomError":
        """Fill in context that is not set yet; returns self."""
        if self.path is None and path is not None:
            self.path = str(path)
        if self.offset is None and offset is not None:
            self.offset = offset
        if self.tag is None and tag is not None:
            self.tag = tag
        return self


class InvalidDicomError(DicomError):
    """Not DICOM: no preamble + 'DICM' (and ``force`` not given), or nothing parseable."""


class MalformedElementError(DicomError):
    """A structural rule is broken at ``.offset``/``.tag``."""


class TruncatedError(DicomError):
    """A length runs past the end of the data."""


class NestingTooDeepError(DicomError):
    """Sequence nesting deeper than ``Limits.max_depth``."""


class LimitExceededError(DicomError):
    """A configured limit (inflated size, decode budget, element count...) was exceeded."""


class UnsupportedTransferSyntaxError(DicomError, NotImplementedError):
    """The transfer syntax is unknown or cannot be handled."""


class PixelDataError(DicomError):
    """Pixel data inconsistent with the header or with the bytes present."""


class EncapsulationError(PixelDataError):
    """Basic/Extended Offset Table or fragments invalid."""


class RLEDecodeError(PixelDataError):
    """RLE Lossless data invalid."""


class MissingCodecError(PixelDataError, ImportError):
    """No decoder is installed for this transfer syntax; the message names the extra."""


class SeriesError(DicomError):
    """An inconsistent or ambiguous series."""


class UnsafePathError(DicomError):
    """A path taken from the data would leave its root (DICOMDIR ReferencedFileID)."""


class FileChangedError(DicomError):
    """The file changed size or mtime while it was being read."""


class DicomWarning(UserWarning):
    """A lenient recovery made in ``validation="warn"`` mode."""


VALIDATION_MODES = ("raise", "warn", "ignore")


def check_validation(mode: str) -> str:
    if mode not in VALIDATION_MODES:
        raise ValueError(f"validation must be one of {VALIDATION_MODES}, not {mode!r}")
    return mode


def report(mode: str, error: DicomError) -> None:
    """Apply a validation mode to a recoverable non-conformance (a warning names the
    caller's line, see :func:`warn_caller`)."""
    if mode == "raise":
        try:
            raise error
        finally:
            # (else this frame, the error and its traceback form a cycle holding every
            # caller's locals, e.g. a data set and its mapped file, until the collector runs)
            del error
    if mode == "warn":
        warn_caller(str(error))


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_caller(message: str, category: Optional[type] = None) -> None:
    """Warn, attributed to the first caller outside fastdicom (the user's line), however
    deep in the package the warning is raised and whatever wraps the public function."""
    frame = sys._getframe(1)
    level = 2   # stacklevel 1 would name this function, 2 its caller (``frame``)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category or DicomWarning, stacklevel=level)


# what the readers can take: the scan's C int counts, a nesting stack allocated up front
# (max_depth), sizes in 64-bit arithmetic
_LIMITS_MAX = {"max_depth": 1_000_000, "max_elements": 0x7FFFFFFF,
               "max_inflated_bytes": 1 << 48, "decode_budget": 1 << 48}


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to untrusted input.  Defaults no real file reaches.

    max_depth: deepest sequence nesting (items within sequences) accepted.
    max_inflated_bytes: largest inflated size of a Deflated Explicit VR LE data set.
    decode_budget: largest decoded pixel buffer (bytes) a single call may allocate.
    max_elements: most elements (all levels) one data set may hold.
    """
    max_depth: int = 64
    max_inflated_bytes: int = 4 << 30
    decode_budget: int = 8 << 30
    max_elements: int = 10_000_000

    def __post_init__(self) -> None:
        import numbers
        for name in ("max_depth", "max_inflated_bytes", "decode_budget", "max_elements"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                # (a string or float here would fail only when a file is read)
                raise TypeError(f"Limits.{name} must be an int, not {type(value).__name__}")
            value = int(value)
            if value <= 0:
                raise ValueError(f"Limits.{name} must be positive")
            if value > _LIMITS_MAX[name]:
                raise ValueError(f"Limits.{name} must be at most {_LIMITS_MAX[name]}")
            object.__setattr__(self, name, value)


DEFAULT_LIMITS = Limits()


def checked_limits(limits) -> Limits:
    """``limits`` as given to a reader: None is :data:`DEFAULT_LIMITS`; anything other than
    a :class:`Limits` is a TypeError."""
    if limits is None:
        return DEFAULT_LIMITS
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a fastdicom.Limits, not {type(limits).__name__}")
    return limits


# Status codes of fastdicom._scan (kept in step with _scan.pxd) and the one place that maps
# them to exceptions.
ST_OK = 0
_STATUS = {
    1: (TruncatedError, "a length runs past the end of the data"),
    2: (MalformedElementError, "malformed data set structure"),
    3: (MalformedElementError, "undefined length (0xFFFFFFFF) on an element whose VR cannot have it"),
    4: (MalformedElementError, "explicit VR expected: VR bytes are not two upper-case letters"),
    5: (MalformedElementError, "expected an item (FFFE,E000) or sequence delimiter inside a sequence"),
    6: (MalformedElementError, "item or sequence delimiter outside an open item or sequence"),
    7: (NestingTooDeepError, "sequence nesting deeper than limits.max_depth"),
    8: (LimitExceededError, "more elements than limits.max_elements"),
    9: (LimitExceededError, "out of memory while indexing elements"),
    10: (EncapsulationError, "encapsulated pixel data: expected a fragment item (FFFE,E000) or delimiter"),
    11: (TruncatedError, "undefined-length sequence or item without a delimiter before the end of the data"),
}


def status_error(status: int, *, path=None, offset=None, tag=None, inflated: bool = False) -> DicomError:
    """The exception for a scanner status code, with its context."""
    cls, message = _STATUS.get(status, (DicomError, f"scanner status {status}"))
    if offset is not None and offset < 0:
        offset = None
    return cls(message, path=path, offset=offset, tag=tag or None, inflated=inflated)
