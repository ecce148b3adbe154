# cython: language_level=3
"""RLE Lossless (DICOM PS3.5 Annex G) frame decoder and encoder.

The decode kernel runs without the GIL and reports problems as a status code plus a small
info record; :func:`_raise_for_status` is the one place a status becomes an exception.
Every run is clipped to both the input left in its segment and the output left in the
segment's plane, so malformed data can never read or write out of bounds.
"""
from libc.stdint cimport uint8_t, uint32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

import numpy as np

from fastdicom.errors import (LimitExceededError, PixelDataError, RLEDecodeError,
                              check_validation, report)

# Status codes of the decode kernel.  Negative values are fatal.
cdef enum:
    RLE_OK = 0
    RLE_ERR_SHORT_HEADER = -1
    RLE_ERR_SEGMENT_COUNT = -2
    RLE_ERR_SEGMENT_MISMATCH = -3
    RLE_ERR_FIRST_OFFSET = -4
    RLE_ERR_OFFSET_ORDER = -5
    RLE_ERR_OFFSET_PAST_END = -6
    RLE_ERR_UNDERRUN = -7
    RLE_ERR_NO_MEMORY = -8
    RLE_ERR_SEGMENT_TOO_SHORT = -9

# Non-fatal findings, OR-ed into DecodeInfo.flags.
cdef enum:
    RLE_FLAG_OVERRUN = 1
    RLE_FLAG_UNUSED_OFFSETS = 2

cdef enum:
    RLE_HEADER_LENGTH = 64
    RLE_MAX_SEGMENTS = 15

# Largest decoded frame (bytes) accepted before any allocation, whatever the caller's budget.
MAX_FRAME_BYTES = 1 << 40

# Multi-segment frames up to this many bytes decode each segment contiguously into scratch
# memory and interleave afterwards (about twice as fast as strided writes); larger frames
# decode straight into the output so the extra memory stays bounded.
cdef Py_ssize_t _scratch_limit = 64 << 20


def _set_scratch_limit(Py_ssize_t limit):
    """Testing hook: change the scratch threshold; returns the previous value."""
    global _scratch_limit
    previous = _scratch_limit
    _scratch_limit = limit
    return previous
_PIXEL_DATA_TAG = 0x7FE00010

ctypedef struct DecodeInfo:
    int flags
    Py_ssize_t segment          # segment (0-based) the fatal status refers to
    Py_ssize_t value            # found value: count, offset or decoded length
    Py_ssize_t overrun_segment  # first segment with surplus data
    Py_ssize_t overrun_length   # its decoded length, surplus included


cdef inline uint32_t _read_u32le(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0]) | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef Py_ssize_t _decode_segment(const uint8_t* src, Py_ssize_t length, uint8_t* out,
                                Py_ssize_t count, Py_ssize_t stride,
                                Py_ssize_t* surplus) noexcept nogil:
    """PackBits-decode src[:length] into out[0], out[stride], ... out[(count-1)*stride].

    Returns the number of bytes written (<= count).  *surplus receives how many more bytes
    the segment would have produced past count.
    """
    cdef Py_ssize_t pos = 0, written = 0, run, take, k, extra = 0
    cdef uint8_t header, value
    cdef uint8_t* dst
    while pos < length and written < count:
        header = src[pos]
        pos += 1
        if header < 128:                      # literal run of header + 1 bytes
            run = header + 1
            if run > length - pos:
                run = length - pos
            take = run
            if take > count - written:
                extra += take - (count - written)
                take = count - written
            if stride == 1:
                memcpy(out + written, src + pos, <size_t>take)
            else:
                dst = out + written * stride
                for k in range(take):
                    dst[k * stride] = src[pos + k]
            written += take
            pos += run
        elif header > 128:                    # replicate next byte 257 - header times
            if pos >= length:
                break
            value = src[pos]
            pos += 1
            run = 257 - header
            if run > count - written:
                extra += run - (count - written)
                run = count - written
            if stride == 1:
                memset(out + written, value, <size_t>run)
            else:
                dst = out + written * stride
                for k in range(run):
                    dst[k * stride] = value
            written += run
        # header == 128 is a no-op
    # Count what the rest of the segment would still produce (no writes).
    while pos < length:
        header = src[pos]
        pos += 1
        if header < 128:
            run = header + 1
            if run > length - pos:
                run = length - pos
            extra += run
            pos += run
        elif header > 128:
            if pos >= length:
                break
            extra += 257 - header
            pos += 1
    surplus[0] = extra
    return written


cdef inline Py_ssize_t _segment_capacity(Py_ssize_t length) noexcept nogil:
    """Most bytes a segment of length bytes can decode to: a replicate run turns 2 bytes into
    at most 128, a literal run n + 2 bytes into n + 1, a no-op byte into none (PS3.5 G.3.1)."""
    return (length // 2) * 128


cdef int _check_header(const uint8_t* head, Py_ssize_t length, Py_ssize_t pixels,
                       int samples, int bytes_per_sample, uint32_t* offsets,
                       uint32_t* n_segments_out, DecodeInfo* info) noexcept nogil:
    """Validate the 64-byte header of a frame of length bytes (head: its first 64 bytes)
    and that every segment's bytes can decode to the pixels bytes it must produce, without
    decoding anything.  Fills offsets (RLE_MAX_SEGMENTS entries) and *n_segments_out.
    Returns RLE_OK or a negative status; fills info."""
    cdef uint32_t n_segments
    cdef int expected = samples * bytes_per_sample
    cdef int i
    cdef Py_ssize_t end
    info.flags = 0
    info.segment = -1
    info.value = 0
    info.overrun_segment = -1
    info.overrun_length = 0
    if length < RLE_HEADER_LENGTH:
        info.value = length
        return RLE_ERR_SHORT_HEADER
    n_segments = _read_u32le(head)
    if n_segments < 1 or n_segments > RLE_MAX_SEGMENTS:
        info.value = n_segments
        return RLE_ERR_SEGMENT_COUNT
    if n_segments != <uint32_t>expected:
        info.value = n_segments
        return RLE_ERR_SEGMENT_MISMATCH
    for i in range(RLE_MAX_SEGMENTS):
        offsets[i] = _read_u32le(head + 4 + 4 * i)
        if <uint32_t>i >= n_segments and offsets[i] != 0:
            info.flags |= RLE_FLAG_UNUSED_OFFSETS
    for i in range(<int>n_segments):
        info.segment = i
        info.value = offsets[i]
        if offsets[i] < RLE_HEADER_LENGTH:
            return RLE_ERR_FIRST_OFFSET
        if i > 0 and offsets[i] <= offsets[i - 1]:
            return RLE_ERR_OFFSET_ORDER
        if <Py_ssize_t>offsets[i] > length:
            return RLE_ERR_OFFSET_PAST_END
    # An underrun is fatal, so a segment too short to fill its plane even with the longest
    # runs is refused here, before anything is allocated or decoded.
    for i in range(<int>n_segments):
        end = offsets[i + 1] if i + 1 < <int>n_segments else length
        if _segment_capacity(end - offsets[i]) < pixels:
            info.segment = i
            info.value = end - offsets[i]
            return RLE_ERR_SEGMENT_TOO_SHORT
    info.segment = -1
    info.value = 0
    n_segments_out[0] = n_segments
    return RLE_OK


cdef int _decode_frame(const uint8_t* src, Py_ssize_t length, uint8_t* out,
                       Py_ssize_t pixels, int samples, int bytes_per_sample,
                       DecodeInfo* info) noexcept nogil:
    """Decode one RLE frame into out (pixels * samples * bytes_per_sample bytes, interleaved
    samples, little-endian).  Returns RLE_OK or a negative status; fills info."""
    cdef uint32_t offsets[RLE_MAX_SEGMENTS + 1]
    cdef uint32_t n_segments = 0
    cdef int expected = samples * bytes_per_sample
    cdef int i, sample, byte_index, status
    cdef Py_ssize_t start, end, written, surplus
    cdef Py_ssize_t stride = expected
    status = _check_header(src, length, pixels, samples, bytes_per_sample, offsets,
                           &n_segments, info)
    if status != RLE_OK:
        return status
    cdef int destination[RLE_MAX_SEGMENTS]
    for i in range(<int>n_segments):
        sample = i // bytes_per_sample
        byte_index = bytes_per_sample - 1 - (i % bytes_per_sample)   # MSB segment first
        destination[i] = sample * bytes_per_sample + byte_index
    cdef uint8_t* scratch = NULL
    cdef bint use_scratch = n_segments > 1 and pixels <= _scratch_limit // <Py_ssize_t>n_segments
    if use_scratch:
        scratch = <uint8_t*>malloc(<size_t>(pixels * n_segments))
        if scratch == NULL:
            return RLE_ERR_NO_MEMORY
    for i in range(<int>n_segments):
        start = offsets[i]
        end = offsets[i + 1] if i + 1 < <int>n_segments else length
        if use_scratch:
            written = _decode_segment(src + start, end - start, scratch + i * pixels,
                                      pixels, 1, &surplus)
        else:
            written = _decode_segment(src + start, end - start, out + destination[i],
                                      pixels, stride, &surplus)
        if written < pixels:
            free(scratch)
            info.segment = i
            info.value = written
            return RLE_ERR_UNDERRUN
        if surplus > 0 and info.overrun_segment < 0:
            info.flags |= RLE_FLAG_OVERRUN
            info.overrun_segment = i
            info.overrun_length = pixels + surplus
    if use_scratch:
        _interleave(scratch, out, pixels, <int>n_segments, destination)
        free(scratch)
    return RLE_OK


cdef void _interleave(const uint8_t* planes, uint8_t* out, Py_ssize_t pixels, int n_planes,
                      const int* destination) noexcept nogil:
    """out[p * n_planes + destination[i]] = planes[i * pixels + p] for every plane i."""
    cdef Py_ssize_t p
    cdef int i
    cdef const uint8_t* first = planes
    cdef const uint8_t* second = planes + pixels
    cdef const uint8_t* third = planes + 2 * pixels
    if n_planes == 2 and destination[0] == 1 and destination[1] == 0:   # one 16-bit sample
        for p in range(pixels):
            out[2 * p] = second[p]
            out[2 * p + 1] = first[p]
    elif n_planes == 3 and destination[0] == 0 and destination[1] == 1:  # 8-bit RGB/YBR
        for p in range(pixels):
            out[3 * p] = first[p]
            out[3 * p + 1] = second[p]
            out[3 * p + 2] = third[p]
    else:
        for i in range(n_planes):
            first = planes + i * pixels
            for p in range(pixels):
                out[p * n_planes + destination[i]] = first[p]


cdef _raise_for_status(int status, DecodeInfo info, Py_ssize_t pixels, int expected,
                      path, offset):
    """Map a fatal kernel status to its exception (the only place this happens)."""
    ctx = dict(path=path, offset=offset, tag=_PIXEL_DATA_TAG)
    if status == RLE_ERR_SHORT_HEADER:
        msg = f"RLE frame has {info.value} bytes, expected at least the 64-byte header"
    elif status == RLE_ERR_SEGMENT_COUNT:
        msg = f"RLE header declares {info.value} segments, expected 1 to 15"
    elif status == RLE_ERR_SEGMENT_MISMATCH:
        msg = (f"RLE header declares {info.value} segments, expected {expected} "
               "(samples per pixel x bytes per sample)")
    elif status == RLE_ERR_FIRST_OFFSET:
        msg = f"RLE segment {info.segment} offset is {info.value}, expected at least 64"
    elif status == RLE_ERR_OFFSET_ORDER:
        msg = (f"RLE segment {info.segment} offset {info.value} is not after the previous "
               "segment's offset")
    elif status == RLE_ERR_OFFSET_PAST_END:
        msg = f"RLE segment {info.segment} offset {info.value} is past the end of the frame"
    elif status == RLE_ERR_NO_MEMORY:
        raise LimitExceededError(f"out of memory allocating {pixels * expected} bytes of RLE "
                                 "decoding scratch space", **ctx)
    elif status == RLE_ERR_UNDERRUN:
        msg = (f"RLE segment {info.segment} decodes to {info.value} bytes, "
               f"expected {pixels}")
    elif status == RLE_ERR_SEGMENT_TOO_SHORT:
        msg = (f"RLE segment {info.segment} holds {info.value} bytes, which decode to at "
               f"most {_segment_capacity(info.value)} bytes, expected {pixels}")
    else:  # pragma: no cover - a status the kernel cannot return
        msg = f"RLE decoding failed with status {status}"
    raise RLEDecodeError(msg, **ctx)


def _as_bytes_view(buffer, bint writable):
    view = memoryview(buffer)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")        # TypeError for non-contiguous buffers: a caller bug
    if writable and view.readonly:
        raise ValueError("out must be a writable buffer")
    return view


def _frame_geometry(rows, columns, samples_per_pixel, bits_allocated, path, offset):
    """Validate the frame description; returns (pixels, bytes_per_sample, frame_bytes)."""
    ctx = dict(path=path, offset=offset, tag=_PIXEL_DATA_TAG)
    rows = int(rows)
    columns = int(columns)
    samples_per_pixel = int(samples_per_pixel)
    bits_allocated = int(bits_allocated)
    if bits_allocated not in (8, 16, 32, 64):
        raise PixelDataError(
            f"RLE Lossless decoding needs Bits Allocated 8, 16, 32 or 64, found {bits_allocated}",
            **ctx)
    if samples_per_pixel not in (1, 3):
        raise PixelDataError(
            f"Samples per Pixel must be 1 or 3, found {samples_per_pixel}", **ctx)
    if rows <= 0 or columns <= 0:
        raise PixelDataError(
            f"Rows and Columns must be positive, found {rows} x {columns}", **ctx)
    bytes_per_sample = bits_allocated // 8
    pixels = rows * columns
    frame_bytes = pixels * samples_per_pixel * bytes_per_sample
    if frame_bytes > MAX_FRAME_BYTES:
        raise PixelDataError(
            f"decoded frame would need {frame_bytes} bytes, more than the {MAX_FRAME_BYTES} "
            "bytes accepted", **ctx)
    return pixels, bytes_per_sample, frame_bytes


def rle_decode_frame_into(src, out, rows, columns, samples_per_pixel, bits_allocated, *,
                          offset=None, path=None, validation="warn"):
    """Decode one RLE Lossless frame into the writable buffer ``out``.

    ``out`` must hold exactly rows * columns * samples_per_pixel * bits_allocated / 8 bytes;
    it receives little-endian samples, interleaved (planar configuration 0).
    """
    check_validation(validation)
    pixels, bytes_per_sample, frame_bytes = _frame_geometry(
        rows, columns, samples_per_pixel, bits_allocated, path, offset)
    cdef const uint8_t[::1] source = _as_bytes_view(src, False)
    cdef uint8_t[::1] target = _as_bytes_view(out, True)
    if target.shape[0] != frame_bytes:
        raise ValueError(f"out holds {target.shape[0]} bytes, the frame needs {frame_bytes}")
    cdef DecodeInfo info
    cdef int status
    cdef Py_ssize_t c_pixels = pixels
    cdef int c_samples = samples_per_pixel
    cdef int c_bytes = bytes_per_sample
    cdef Py_ssize_t length = source.shape[0]
    cdef const uint8_t* src_ptr = &source[0] if length > 0 else NULL
    cdef uint8_t* out_ptr = &target[0]
    with nogil:
        status = _decode_frame(src_ptr, length, out_ptr, c_pixels, c_samples, c_bytes, &info)
    if status != RLE_OK:
        _raise_for_status(status, info, c_pixels, c_samples * c_bytes, path, offset)
    ctx = dict(path=path, offset=offset, tag=_PIXEL_DATA_TAG)
    if info.flags & RLE_FLAG_UNUSED_OFFSETS:
        report(validation, RLEDecodeError(
            "RLE header has non-zero offsets for unused segments", **ctx))
    if info.flags & RLE_FLAG_OVERRUN:
        report(validation, RLEDecodeError(
            f"RLE segment {info.overrun_segment} decodes to {info.overrun_length} bytes, "
            f"expected {c_pixels}; the surplus was discarded", **ctx))


def rle_check_frame(head, length, rows, columns, samples_per_pixel, bits_allocated, *,
                    offset=None, path=None):
    """Check, without decoding or allocating, that an RLE Lossless frame of ``length`` bytes
    whose first bytes are ``head`` (at least 64 of them, or the whole frame when shorter)
    has a valid header and segments long enough to fill the frame: a segment of n bytes
    decodes to at most 128 * (n // 2) bytes, and a segment that falls short of its plane is
    an error anyway.  Raises RLEDecodeError (PixelDataError for a bad geometry)."""
    pixels, bytes_per_sample, _ = _frame_geometry(
        rows, columns, samples_per_pixel, bits_allocated, path, offset)
    cdef const uint8_t[::1] source = _as_bytes_view(head, False)
    cdef Py_ssize_t c_length = int(length)
    if c_length < 0 or source.shape[0] < min(c_length, <Py_ssize_t>RLE_HEADER_LENGTH):
        raise ValueError("head must hold the frame's first 64 bytes (or all of a shorter "
                         "frame)")
    cdef uint32_t offsets[RLE_MAX_SEGMENTS]
    cdef uint32_t n_segments = 0
    cdef DecodeInfo info
    cdef Py_ssize_t c_pixels = pixels
    cdef int c_samples = samples_per_pixel
    cdef int c_bytes = bytes_per_sample
    cdef const uint8_t* head_ptr = &source[0] if source.shape[0] > 0 else NULL
    cdef int status = _check_header(head_ptr, c_length, c_pixels, c_samples, c_bytes,
                                    offsets, &n_segments, &info)
    if status != RLE_OK:
        _raise_for_status(status, info, c_pixels, c_samples * c_bytes, path, offset)


def rle_decode_frame(src, rows, columns, samples_per_pixel, bits_allocated,
                     pixel_representation=0, *, offset=None, path=None, validation="warn"):
    """Decode one RLE Lossless frame to a new array.

    Returns shape (rows, columns) or (rows, columns, samples_per_pixel), little-endian
    unsigned (pixel_representation 0) or signed (1) integers of bits_allocated bits.  The
    header and segment lengths are checked (:func:`rle_check_frame`) before the array is
    allocated.
    """
    check_validation(validation)
    _, _, frame_bytes = _frame_geometry(rows, columns, samples_per_pixel, bits_allocated,
                                        path, offset)
    source = _as_bytes_view(src, False)
    rle_check_frame(source, len(source), rows, columns, samples_per_pixel,
                    bits_allocated, offset=offset, path=path)
    kind = "i" if int(pixel_representation) == 1 else "u"
    dtype = np.dtype(f"<{kind}{int(bits_allocated) // 8}")
    if int(samples_per_pixel) == 1:
        shape = (int(rows), int(columns))
    else:
        shape = (int(rows), int(columns), int(samples_per_pixel))
    try:
        arr = np.empty(shape, dtype=dtype)
    except MemoryError:
        raise LimitExceededError(f"out of memory allocating {frame_bytes} bytes for a decoded "
                                 "RLE frame", path=path, offset=offset,
                                 tag=_PIXEL_DATA_TAG) from None
    rle_decode_frame_into(src, arr.reshape(-1).view(np.uint8), rows, columns,
                          samples_per_pixel, bits_allocated,
                          offset=offset, path=path, validation=validation)
    return arr


# ----------------------------------------------------------------------------- encoder

cdef inline Py_ssize_t _row_bound(Py_ssize_t count) noexcept nogil:
    """Most bytes _encode_row writes for count input bytes.

    Replicate runs (>= 3 bytes) cost 2 bytes; each literal costs its length + 1.  A literal
    ends at 128 bytes, at a replicate run or at the row's end, so literals number at most
    count // 128 + (replicate runs) + 1 and each replicate run saves at least one byte."""
    return count + count // 128 + 2


cdef Py_ssize_t _encode_row(const uint8_t* src, Py_ssize_t count, Py_ssize_t stride,
                            uint8_t* out) noexcept nogil:
    """PackBits-encode count bytes read at src[0], src[stride], ...; returns bytes written
    (at most _row_bound(count))."""
    cdef Py_ssize_t i = 0, j, run, n = 0, literal_length, k
    cdef uint8_t value
    while i < count:
        value = src[i * stride]
        run = 1
        while i + run < count and run < 128 and src[(i + run) * stride] == value:
            run += 1
        if run >= 3:
            out[n] = <uint8_t>(257 - run)
            out[n + 1] = value
            n += 2
            i += run
            continue
        # literal: extend until a run of three equal bytes starts, or 128 bytes
        j = i + 1
        while j < count and j - i < 128:
            if (j + 2 < count and src[j * stride] == src[(j + 1) * stride]
                    and src[j * stride] == src[(j + 2) * stride]):
                break
            j += 1
        literal_length = j - i
        out[n] = <uint8_t>(literal_length - 1)
        n += 1
        for k in range(literal_length):
            out[n + k] = src[(i + k) * stride]
        n += literal_length
        i = j
    return n


cdef Py_ssize_t _encode_frame(const uint8_t* src, Py_ssize_t rows, Py_ssize_t columns,
                              int samples, int bytes_per_sample, uint8_t* out,
                              Py_ssize_t capacity) noexcept nogil:
    """Encode an interleaved little-endian frame; returns the encoded length, or -1 if
    out (capacity bytes) would overflow."""
    cdef int n_segments = samples * bytes_per_sample
    cdef Py_ssize_t stride = n_segments
    cdef Py_ssize_t pos = RLE_HEADER_LENGTH, row
    cdef Py_ssize_t row_bound = _row_bound(columns)
    cdef int i, sample, byte_index
    cdef const uint8_t* plane
    if capacity < RLE_HEADER_LENGTH:
        return -1
    memset(out, 0, RLE_HEADER_LENGTH)
    out[0] = <uint8_t>n_segments
    for i in range(n_segments):
        out[4 + 4 * i] = <uint8_t>(pos & 0xFF)
        out[5 + 4 * i] = <uint8_t>((pos >> 8) & 0xFF)
        out[6 + 4 * i] = <uint8_t>((pos >> 16) & 0xFF)
        out[7 + 4 * i] = <uint8_t>((pos >> 24) & 0xFF)
        sample = i // bytes_per_sample
        byte_index = bytes_per_sample - 1 - (i % bytes_per_sample)
        plane = src + sample * bytes_per_sample + byte_index
        for row in range(rows):
            if capacity - pos < row_bound:
                return -1
            pos += _encode_row(plane + row * columns * stride, columns, stride, out + pos)
        if pos & 1:              # segments have even length
            if pos >= capacity:
                return -1
            out[pos] = 0
            pos += 1
    return pos


def rle_encode_frame(arr):
    """Encode a (rows, columns) or (rows, columns, samples) integer array as one RLE
    Lossless frame: the 64-byte header followed by the even-length PackBits segments."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "ui" or arr.dtype.itemsize not in (1, 2, 4, 8):
        raise TypeError(f"cannot RLE encode an array of dtype {arr.dtype}")
    if arr.ndim == 2:
        samples = 1
    elif arr.ndim == 3:
        samples = arr.shape[2]
    else:
        raise ValueError(f"expected a (rows, columns[, samples]) array, got shape {arr.shape}")
    rows, columns = arr.shape[0], arr.shape[1]
    bytes_per_sample = arr.dtype.itemsize
    if samples * bytes_per_sample > RLE_MAX_SEGMENTS:
        raise ValueError(f"{samples} samples of {bytes_per_sample} bytes need more than "
                         "the 15 segments RLE Lossless allows")
    if rows == 0 or columns == 0 or samples == 0:
        raise ValueError("cannot RLE encode an empty array")
    little = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).reshape(-1).view(np.uint8)
    cdef const uint8_t[::1] source = little
    n_segments = samples * bytes_per_sample
    total = RLE_HEADER_LENGTH + n_segments * (rows * _row_bound(columns) + 1)
    if total >= 1 << 32:
        raise ValueError("frame too large for the 32-bit RLE segment offsets")
    buffer = bytearray(total)
    cdef uint8_t[::1] target = buffer
    cdef Py_ssize_t c_rows = rows, c_columns = columns, written, capacity = total
    cdef int c_samples = samples, c_bytes = bytes_per_sample
    with nogil:
        written = _encode_frame(&source[0], c_rows, c_columns, c_samples, c_bytes,
                                &target[0], capacity)
    if written < 0:  # pragma: no cover - _row_bound is an upper bound
        raise RuntimeError("RLE encoder output buffer too small")
    return bytes(memoryview(buffer)[:written])
