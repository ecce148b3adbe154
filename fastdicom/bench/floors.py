"""Raw floors: the same system calls a reader must make, issued from plain Python.

Each floor opens the file, reads exactly the bytes the measured reader claims to read into
memory that Python owns (``os.pread`` into a new ``bytes`` or ``os.preadv`` straight into a
numpy array — i.e. ``readinto``), and closes it.  No parsing.  A reader's time divided by its
floor's time is the "ratio to the floor": 1.0 means the reader costs nothing on top of the I/O.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

__all__ = ["read_prefix", "read_prefixes", "read_range", "read_range_into", "read_slices_into",
           "read_whole"]

_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def read_prefix(path: "os.PathLike[str] | str", nbytes: int = 8192) -> bytes:
    """open + pread of the first ``nbytes`` + close (the header-read floor)."""
    fd = os.open(path, _FLAGS)
    try:
        return os.pread(fd, nbytes, 0)
    finally:
        os.close(fd)


def read_prefixes(paths: Sequence["os.PathLike[str] | str"], nbytes: int = 8192) -> int:
    """:func:`read_prefix` over many files; returns the bytes read."""
    total = 0
    for p in paths:
        total += len(read_prefix(p, nbytes))
    return total


def read_range(path: "os.PathLike[str] | str", offset: int, nbytes: int) -> bytes:
    """open + pread of ``nbytes`` at ``offset`` + close, into a new bytes object."""
    fd = os.open(path, _FLAGS)
    try:
        return os.pread(fd, nbytes, offset)
    finally:
        os.close(fd)


def read_range_into(path: "os.PathLike[str] | str", offset: int, out: np.ndarray) -> int:
    """open + preadv (readinto) of ``out.nbytes`` at ``offset`` straight into ``out`` + close."""
    view = memoryview(out).cast("B")
    fd = os.open(path, _FLAGS)
    try:
        got = 0
        while got < len(view):
            n = os.preadv(fd, [view[got:]], offset + got)
            if n <= 0:
                raise EOFError(f"{path}: file shorter than expected")
            got += n
        return got
    finally:
        os.close(fd)


def read_slices_into(paths: Sequence["os.PathLike[str] | str"], offsets: Sequence[int],
                     out: np.ndarray) -> np.ndarray:
    """The series floor: per file open + readinto its slice of a preallocated array + close."""
    for i, (p, off) in enumerate(zip(paths, offsets)):
        read_range_into(p, off, out[i])
    return out


def read_whole(path: "os.PathLike[str] | str") -> bytes:
    """open + fstat + pread of the whole file + close."""
    fd = os.open(path, _FLAGS)
    try:
        return os.pread(fd, os.fstat(fd).st_size, 0)
    finally:
        os.close(fd)
