# cython: language_level=3
# distutils: libraries = z
"""Per-file header extraction for batch scans, in one nogil call per chunk of files.

For each path: open (optionally ``O_NOFOLLOW``), ``fstat``, ``pread`` a small header window,
walk the file meta group and the top-level elements of the data set up to Pixel Data (or
``stop_tag`` when pixel information is not wanted), copy the raw value bytes of the requested
tags into one growing arena per tag, locate Pixel Data (value offset and length; fragment
items of encapsulated data are walked with small preads), ``fstat`` again and compare size and
mtime.  Deflated data sets are inflated incrementally (zlib, nogil), only as far as needed.

Anything unusual (no preamble + ``DICM``, implicit-VR file meta, a missing transfer syntax, a
body whose VR encoding contradicts it, invalid VR bytes, truncation, structural errors) gives
status ``FALLBACK``: the caller then reads that file with the full Python reader, which
produces the exact error or the lenient result.  So this fast path never decides an error on
its own except I/O errors and files that changed while read.

Every length read from the file is checked against the file size (or the inflated bytes)
before it is used; nesting depth and item counts are bounded.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int16_t, int32_t, int64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memcmp, memset, strrchr
from libc.errno cimport errno, EINTR
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from fastdicom._cursor cimport (rd16, rd32, rdtag, is_upper, is_long_vr, is_known_vr,
                                     pread_full, pread,
                                open_regular, c_path,
                                     close, c_open, c_openat, fstat, stat_t, timespec_t,
                                     O_RDONLY, O_CLOEXEC, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY)

import numpy as np

cdef extern from "<fcntl.h>" nogil:
    int O_PATH

cdef extern from "<zlib.h>" nogil:
    ctypedef struct z_stream:
        const uint8_t* next_in
        unsigned int avail_in
        uint8_t* next_out
        unsigned int avail_out
        void* zalloc
        void* zfree
        void* opaque
    int inflateInit2(z_stream* strm, int windowBits)
    int inflate(z_stream* strm, int flush)
    int inflateEnd(z_stream* strm)
    int inflateReset(z_stream* strm)
    int Z_OK
    int Z_STREAM_END
    int Z_NO_FLUSH
    int Z_BUF_ERROR

# per-file status
cdef enum:
    R_OK = 0
    R_FALLBACK = 1      # read this file with the Python reader
    R_OS_ERROR = 2      # open/fstat/pread failed; errno in err_errno
    R_NOT_REGULAR = 3
    R_CHANGED = 4       # size or mtime differ between the fstat before and after reading
    R_PIXEL_TRUNCATED = 5

STATUS_OK = R_OK
STATUS_FALLBACK = R_FALLBACK
STATUS_OS_ERROR = R_OS_ERROR
cdef enum:
    E_NUL_IN_PATH = -1
#: the ``errno`` of a path holding a NUL byte (never opened: the C string would name another
#: file)
ERRNO_NUL_IN_PATH = E_NUL_IN_PATH
STATUS_NOT_REGULAR = R_NOT_REGULAR
STATUS_CHANGED = R_CHANGED
STATUS_PIXEL_TRUNCATED = R_PIXEL_TRUNCATED

# flags per file
FLAG_LITTLE = 1
FLAG_EXPLICIT = 2
FLAG_DEFLATED = 4
FLAG_ENCAPSULATED = 8
FLAG_PIXELS = 16

cdef uint32_t UNDEF = 0xFFFFFFFFu
cdef uint32_t TAG_ITEM = 0xFFFEE000u
cdef uint32_t TAG_ITEM_DELIM = 0xFFFEE00Du
cdef uint32_t TAG_SEQ_DELIM = 0xFFFEE0DDu
cdef uint32_t TAG_PIXEL_DATA = 0x7FE00010u
cdef int64_t CHUNK = 65536
# The first read of a file larger than ``header_bytes`` is shorter when the previous file of
# the chunk needed at most SMALL_READ - SLACK bytes before its Pixel Data value (files of a
# series have headers of about one size): those bytes + SLACK, rounded up to whole KiB (a
# 1.2 KiB header: 2 KiB), less to copy per file.  A miss reads the rest of ``header_bytes``
# next, one pread more than a first read of ``header_bytes``.
cdef int64_t SMALL_READ = 4096
cdef int64_t SLACK = 512
cdef int MAX_ITEMS = 10000000
# most bytes of one tag's raw values in a chunk: their offsets, and those of the decoded text
# (at most 3 bytes of UTF-8 per byte), must fit the int32 offsets of an Arrow array
cdef int64_t ARENA_MAX = 0x1FFFFFFF
ARENA_LIMIT = ARENA_MAX

# walker outcomes
cdef enum:
    W_OK = 0
    W_FALLBACK = 1
    W_IO = 2
    W_PIXEL_TRUNC = 3


cdef struct Arena:
    char* data
    int64_t length
    int64_t cap


cdef struct Src:
    int fd
    int dirfd             # the directory of the previous path (see open_in_dir), or -1
    size_t dirlen
    char dirname[4096]
    int64_t fsize
    int64_t window        # bytes per pread when a new window is needed
    int64_t window_after  # the window of the preads after the next one
    int64_t hi            # the end of the furthest file bytes the walk asked for
    int64_t hdr_hi        # hi when the fragment walk of encapsulated Pixel Data began, or -1
    int64_t first_read    # the first read of the next large file, or 0 (see SMALL_READ)
    uint8_t* buf          # file window [base, base + have)
    int64_t cap
    int64_t base
    int64_t have
    int io_errno
    # deflate mode: positions address the inflated stream
    bint inflating
    z_stream zs
    bint z_open
    bint z_end
    uint8_t* zin
    int64_t comp_pos
    uint8_t* out
    int64_t out_have
    int64_t out_cap
    int64_t max_inflated




cdef const uint8_t* file_window(Src* s, int64_t pos, int64_t n) noexcept nogil:
    """Pointer to file bytes [pos, pos+n), reading a new window when needed; NULL when the
    file has fewer bytes (or on an I/O error, with s.io_errno set)."""
    cdef int64_t want, got = 0
    cdef uint8_t* grown
    cdef int err
    if pos >= s.base and pos + n <= s.base + s.have:
        if pos + n > s.hi:
            s.hi = pos + n
        return s.buf + (pos - s.base)
    if pos < 0 or n < 0 or n > s.fsize or pos > s.fsize - n:
        return NULL
    # sequential header walks read 64 KiB windows; the walk over the items of encapsulated
    # Pixel Data jumps from header to header, so it reads small windows (not the pixels)
    want = n if n > s.window else s.window
    if want > s.fsize - pos:
        want = s.fsize - pos
    if want > s.cap:
        grown = <uint8_t*>realloc(s.buf, <size_t>want)
        if grown == NULL:
            s.io_errno = 12
            return NULL
        s.buf = grown
        s.cap = want
    err = pread_full(s.fd, s.buf, want, pos, &got)
    s.base = pos
    s.have = got
    s.window = s.window_after
    if err:
        s.io_errno = err
        s.have = 0
        return NULL
    if got < n:
        return NULL
    if pos + n > s.hi:
        s.hi = pos + n
    return s.buf + (pos - s.base)


cdef int feed_input(Src* s) noexcept nogil:
    """The next compressed bytes for the inflater; 0 ok, -1 at the end of the file or on a
    read error (``s.io_errno``)."""
    cdef int64_t got = 0
    cdef int err
    if s.comp_pos >= s.fsize:
        return -1     # compressed data ended before the deflate stream did
    if s.base <= s.comp_pos < s.base + s.have:
        # compressed bytes already read with the header window (the window is not touched
        # while inflating): no second read
        got = s.base + s.have - s.comp_pos
        s.zs.next_in = s.buf + (s.comp_pos - s.base)
    else:
        err = pread_full(s.fd, s.zin, CHUNK if CHUNK < s.fsize - s.comp_pos
                         else s.fsize - s.comp_pos, s.comp_pos, &got)
        if err or got == 0:
            s.io_errno = err
            return -1
        s.zs.next_in = s.zin
    s.zs.avail_in = <unsigned int>got
    s.comp_pos += got
    return 0


cdef int inflate_more(Src* s, int64_t need) noexcept nogil:
    """Inflate until s.out_have >= need or the stream ends; 0 ok, -1 error/limit."""
    cdef int64_t newcap, step
    cdef uint8_t* grown
    cdef int zr
    while s.out_have < need and not s.z_end:
        if s.zs.avail_in == 0 and feed_input(s) != 0:
            return -1
        if s.out_cap - s.out_have < CHUNK:
            newcap = s.out_cap * 2 if s.out_cap > 0 else 4 * CHUNK
            if newcap > s.max_inflated + CHUNK:
                newcap = s.max_inflated + CHUNK
            if newcap <= s.out_have:
                return -1     # over the inflated-size limit
            grown = <uint8_t*>realloc(s.out, <size_t>newcap)
            if grown == NULL:
                return -1
            s.out = grown
            s.out_cap = newcap
        s.zs.next_out = s.out + s.out_have
        # inflate only about as far as needed (header elements, not the pixels behind them):
        # 1 KiB past the first need, then a quarter of what is out (at least 256 bytes), so
        # reaching the Pixel Data element of a ~1 KiB header inflates ~250 bytes of pixels
        # (with 1 KiB each time, 1 KiB: ~0.5 us more per file), and a long header is
        # inflated in few calls
        step = need - s.out_have + (1024 if s.out_have == 0 else
                                    256 if s.out_have < 1024 else s.out_have >> 2)
        if step > s.out_cap - s.out_have:
            step = s.out_cap - s.out_have
        s.zs.avail_out = <unsigned int>step
        zr = inflate(&s.zs, Z_NO_FLUSH)
        s.out_have += step - s.zs.avail_out
        if zr == Z_STREAM_END:
            s.z_end = True
        elif zr != Z_OK and zr != Z_BUF_ERROR:
            return -1
        if s.out_have > s.max_inflated:
            return -1
    return 0


cdef int drain_inflate(Src* s) noexcept nogil:
    """Inflate the rest of the stream into a scratch buffer (the walk is done with the
    output), as the general reader inflates the whole data set: 0 when it ends within the
    size limit, -1 when it is corrupt, cut short or too large (the general reader judges)."""
    cdef uint8_t* scratch
    cdef int64_t total = s.out_have
    cdef int zr
    if s.z_end:
        return 0
    scratch = <uint8_t*>malloc(<size_t>CHUNK)
    if scratch == NULL:
        return -1
    try:
        while not s.z_end:
            if s.zs.avail_in == 0 and feed_input(s) != 0:
                return -1
            s.zs.next_out = scratch
            s.zs.avail_out = <unsigned int>CHUNK
            zr = inflate(&s.zs, Z_NO_FLUSH)
            total += CHUNK - s.zs.avail_out
            if zr == Z_STREAM_END:
                s.z_end = True
            elif zr != Z_OK and zr != Z_BUF_ERROR:
                return -1
            if total > s.max_inflated:
                return -1
        return 0
    finally:
        free(scratch)


cdef inline const uint8_t* need(Src* s, int64_t pos, int64_t n) noexcept nogil:
    if not s.inflating:
        if pos >= s.base and n >= 0 and pos + n <= s.base + s.have:
            if pos + n > s.hi:
                s.hi = pos + n
            return s.buf + (pos - s.base)       # the common case, inlined
        return file_window(s, pos, n)
    if pos < 0 or n < 0:
        return NULL
    if pos + n > s.out_have:
        if inflate_more(s, pos + n) != 0 or pos + n > s.out_have:
            return NULL
    return s.out + pos


cdef inline bint at_end(Src* s, int64_t pos) noexcept nogil:
    if not s.inflating:
        return pos >= s.fsize
    if pos < s.out_have:
        return False
    inflate_more(s, pos + 1)
    return pos >= s.out_have


cdef struct Walk:
    const uint32_t* tags
    int ntags
    int row
    Arena* arenas
    uint16_t* vrs          # [row * ntags + j]
    uint8_t* present       # [row * ntags + j]
    uint32_t stop_tag
    bint find_pixels
    int max_depth
    int64_t arena_max      # most bytes of one tag's values in the chunk (<= ARENA_MAX)
    int64_t pixel_header
    int64_t pixel_offset
    int64_t pixel_length
    bint encapsulated
    bint check_deflated


cdef inline int find_tag(Walk* w, uint32_t tag) noexcept nogil:
    cdef int lo = 0, hi = w.ntags - 1, mid
    while lo <= hi:
        mid = (lo + hi) >> 1
        if w.tags[mid] == tag:
            return mid
        if w.tags[mid] < tag:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1


cdef int store(Walk* w, Src* s, int j, uint16_t vr, int64_t pos, int64_t length) noexcept nogil:
    cdef const uint8_t* p
    cdef Arena* a = &w.arenas[j]
    cdef int64_t newcap
    cdef char* grown
    cdef int64_t k = <int64_t>w.row * w.ntags + j
    if w.present[k]:
        return W_OK          # a repeated tag: the first one counts
    if length > 0:
        # a chunk's values of one tag are addressed by int32 offsets (those of the Arrow
        # array they become): a value that would carry them past 2 GiB is not stored here;
        # the general reader takes the file (checked before any read of the value)
        if length > w.arena_max - a.length:
            return W_FALLBACK
        p = need(s, pos, length)
        if p == NULL:
            return W_IO if s.io_errno else W_FALLBACK
        if a.length + length > a.cap:
            newcap = a.cap * 2 if a.cap > 0 else 4096
            while newcap < a.length + length:
                newcap *= 2
            grown = <char*>realloc(a.data, <size_t>newcap)
            if grown == NULL:
                return W_FALLBACK
            a.data = grown
            a.cap = newcap
        if length > 0:
            memcpy(a.data + a.length, p, <size_t>length)
        a.length += length
    w.present[k] = 1
    w.vrs[k] = vr
    return W_OK




cdef int element_header(Src* s, int64_t pos, bint explicit, bint le, uint32_t* tag,
                        uint16_t* vr, uint32_t* length, int64_t* hdr) noexcept nogil:
    cdef const uint8_t* p = need(s, pos, 8)
    if p == NULL:
        return W_IO if s.io_errno else W_FALLBACK
    tag[0] = rdtag(p, le)
    if (tag[0] >> 16) == 0xFFFE:
        vr[0] = 0
        length[0] = rd32(p + 4, le)
        hdr[0] = 8
        return W_OK
    if explicit:
        vr[0] = (<uint16_t>p[4] << 8) | p[5]
        if not is_known_vr(vr[0]):
            return W_FALLBACK       # the general reader reads an unknown VR as implicit VR
        if is_long_vr(p[4], p[5]):
            p = need(s, pos, 12)
            if p == NULL:
                return W_IO if s.io_errno else W_FALLBACK
            length[0] = rd32(p + 8, le)
            hdr[0] = 12
        else:
            length[0] = rd16(p + 6, le)
            hdr[0] = 8
    else:
        vr[0] = 0
        length[0] = rd32(p + 4, le)
        hdr[0] = 8
    return W_OK


include "_dict_sq.pxi"
include "_sqwalk.pxi"


cdef int skip_value(Walk* w, Src* s, int64_t* ppos, int64_t hdr, uint32_t tag, uint16_t vr,
                    uint32_t length, bint explicit, bint le) noexcept nogil:
    """Past the value of the root element at ``ppos``, checking the structure of a sequence
    value (see _sqwalk.pxi)."""
    cdef int64_t pos = ppos[0] + hdr
    cdef int64_t limit = -1 if s.inflating else s.fsize
    cdef int r
    if length == UNDEF:
        if explicit and vr != 0x5351 and vr != 0x554E:   # only SQ and UN may have it
            return W_FALLBACK
        r = sq_items(s, pos, -1, limit, explicit, le, 1, w.max_depth, ppos)
    else:
        if limit >= 0 and <int64_t>length > limit - pos:
            return W_FALLBACK
        if limit < 0 and length > 0 and at_end(s, pos + length - 1):
            # past the end of the inflated data set
            return W_IO if s.io_errno else W_FALLBACK
        r = sq_value(s, pos, tag, vr, length, limit, explicit, le, 1, w.max_depth)
        ppos[0] = pos + length
    if r != 0:
        return W_IO if s.io_errno else W_FALLBACK
    return W_OK


cdef int pixel_extent(Walk* w, Src* s, int64_t pos, int64_t hdr, uint32_t length, bint le) noexcept nogil:
    """Pixel Data at ``pos``: record where its value lies; walk fragment items if encapsulated."""
    cdef int64_t start = pos + hdr, p2
    cdef const uint8_t* p
    cdef uint32_t tag, ilen
    cdef int items = 0
    w.pixel_header = pos
    w.pixel_offset = start
    if length != UNDEF:
        w.pixel_length = length
        if s.inflating:
            # (cut short: the general reader words the error with the inflated size)
            if w.check_deflated and length > 0 and at_end(s, start + length - 1):
                return W_FALLBACK
        elif <int64_t>length > s.fsize - start:
            return W_PIXEL_TRUNC
        return W_OK
    w.encapsulated = True
    p2 = start
    s.hdr_hi = s.hi if s.hi > start else start
    s.window = 512
    s.window_after = 512
    while True:
        p = need(s, p2, 8)
        if p == NULL:
            # cut short: the general reader tells which item (and whether it is an
            # encapsulation error or a truncation)
            return W_IO if s.io_errno else W_FALLBACK
        tag = rdtag(p, le)
        ilen = rd32(p + 4, le)
        if tag == TAG_SEQ_DELIM:
            w.pixel_length = p2 - start
            return W_OK
        if tag != TAG_ITEM or ilen == UNDEF:
            return W_FALLBACK
        items += 1
        if items > MAX_ITEMS:
            return W_FALLBACK
        p2 += 8
        if not s.inflating and <int64_t>ilen > s.fsize - p2:
            return W_FALLBACK
        p2 += ilen


cdef int walk_top(Walk* w, Src* s, int64_t* ppos, bint explicit, bint le, bint meta) noexcept nogil:
    """Walk top-level elements from ppos; in ``meta`` mode stop at the first non-0002 group."""
    cdef int64_t pos = ppos[0], hdr, start
    cdef uint32_t tag, length, last = 0
    cdef uint16_t vr
    cdef int r, j
    cdef const uint8_t* p
    while True:
        if at_end(s, pos):
            if s.io_errno:
                return W_IO
            ppos[0] = pos
            return W_OK
        if meta:
            p = need(s, pos, 4)
            if p == NULL:
                return W_IO if s.io_errno else W_FALLBACK
            if rd16(p, True) != 0x0002:
                ppos[0] = pos
                return W_OK
        r = element_header(s, pos, explicit, le, &tag, &vr, &length, &hdr)
        if r != W_OK:
            return r
        if (tag >> 16) == 0xFFFE:
            return W_FALLBACK
        # out of order (a damaged tag): a stop below would miss the elements after it; the
        # general reader takes the data set whole
        if tag <= last:
            return W_FALLBACK
        last = tag
        if tag == TAG_PIXEL_DATA or tag == 0x7FE00008u or tag == 0x7FE00009u:
            # (Float / Double Float Pixel Data too: the general reader stops at any of them)
            if w.find_pixels:
                r = pixel_extent(w, s, pos, hdr, length, le)
            ppos[0] = pos
            return r if w.find_pixels else W_OK
        if tag > w.stop_tag and not w.find_pixels:
            ppos[0] = pos
            return W_OK
        if tag > TAG_PIXEL_DATA:
            # no Pixel Data: fine if this is the last element (trailing padding, a
            # signature); anything after it means a damaged tag ahead of the rest, and a
            # value past the end of the file is the general reader's to judge (truncation)
            if s.inflating or length == UNDEF or pos + hdr + <int64_t>length != s.fsize:
                return W_FALLBACK
            ppos[0] = pos
            return W_OK
        j = find_tag(w, tag)
        start = pos + hdr
        r = skip_value(w, s, &pos, hdr, tag, vr, length, explicit, le)
        if r == W_OK and j >= 0 and length != UNDEF:
            r = store(w, s, j, vr, start, length)
        if r != W_OK:
            return r


cdef int open_in_dir(Src* s, const char* path, int flags) noexcept nogil:
    """open(path, flags), as openat() on a descriptor of its directory kept while the next
    paths share it (files of one folder come together), so the kernel walks only the last
    component.  Any failure on that route falls back to open(path) for the exact errno."""
    cdef const char* slash = strrchr(path, 47)
    cdef size_t dlen
    cdef int fd
    if slash == NULL or slash == path or slash[1] == 0:
        return c_open(path, flags)
    dlen = <size_t>(slash - path)
    if not (s.dirfd >= 0 and dlen == s.dirlen and memcmp(path, s.dirname, dlen) == 0):
        if s.dirfd >= 0:
            close(s.dirfd)
            s.dirfd = -1
        if dlen >= sizeof(s.dirname):
            return c_open(path, flags)
        memcpy(s.dirname, path, dlen)
        s.dirname[dlen] = 0
        s.dirfd = c_open(s.dirname, O_PATH | O_DIRECTORY | O_CLOEXEC)
        s.dirlen = dlen
        if s.dirfd < 0:
            return c_open(path, flags)
    fd = c_openat(s.dirfd, slash + 1, flags)
    if fd < 0:
        return c_open(path, flags)
    return fd


cdef int process_file(Walk* w, Src* s, const char* path, bint nofollow, int64_t header_bytes,
                      int64_t* size, int64_t* mtime, int* err_errno, int* flags,
                      int64_t* err_offset) noexcept nogil:
    cdef stat_t sb, sb2
    cdef int64_t got = 0, pos, want
    cdef const uint8_t* p
    cdef int r, res, err
    cdef const uint8_t* ts
    cdef int64_t tslen, tsb
    cdef bint explicit, le
    cdef int tsj, zr
    cdef uint32_t TS_TAG = 0x00020010u
    cdef uint8_t* grown
    # O_NONBLOCK: a fifo given as a path must not block the open (regular files ignore it)
    s.fd = open_in_dir(s, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK |
                       (O_NOFOLLOW if nofollow else 0))
    if s.fd < 0:
        err_errno[0] = errno
        return R_OS_ERROR
    if fstat(s.fd, &sb) != 0:
        err_errno[0] = errno
        close(s.fd)
        return R_OS_ERROR
    size[0] = sb.st_size
    mtime[0] = <int64_t>sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec
    if (sb.st_mode & 0o170000) != 0o100000:
        close(s.fd)
        return R_NOT_REGULAR
    s.fsize = sb.st_size
    s.window = s.window_after = CHUNK
    s.hi = 0
    s.hdr_hi = -1
    s.io_errno = 0
    s.inflating = False
    s.z_end = False
    s.out_have = 0
    s.base = 0
    s.have = 0
    want = header_bytes
    if s.first_read > 0 and s.fsize > header_bytes and header_bytes > s.first_read:
        want = s.first_read
        s.window = header_bytes - want
    if want > s.fsize:
        want = s.fsize
    if want > s.cap:
        grown = <uint8_t*>realloc(s.buf, <size_t>want)
        if grown == NULL:
            err_errno[0] = 12
            close(s.fd)
            return R_OS_ERROR
        s.buf = grown
        s.cap = want
    err = pread_full(s.fd, s.buf, want, 0, &got)
    if err:
        err_errno[0] = err
        close(s.fd)
        return R_OS_ERROR
    s.have = got
    res = R_FALLBACK
    # preamble + DICM + explicit VR LE file meta
    p = need(s, 0, 140)
    if p != NULL and memcmp(p + 128, b"DICM", 4) == 0 and p[132] == 0x02 and p[133] == 0 \
            and is_upper(p[136]) and is_upper(p[137]):
        pos = 132
        r = walk_top(w, s, &pos, True, True, True)
        tsj = find_tag(w, TS_TAG)
        if r == W_OK and tsj >= 0 and w.present[<int64_t>w.row * w.ntags + tsj]:
            res = R_OK
        elif r == W_IO:
            res = R_OS_ERROR
        if res == R_OK:
            res = R_FALLBACK
            # the caller passes in err_offset the TS arena's length before this row
            tslen = err_offset[0]
            ts = <const uint8_t*>w.arenas[tsj].data + tslen
            tslen = w.arenas[tsj].length - tslen
            # the UID as the general reader reads it (surrounding whitespace too)
            tsb = 0
            strip_ui(ts, &tsb, &tslen, True)
            ts += tsb
            tslen -= tsb
            explicit = True
            le = True
            if tslen == 17 and memcmp(ts, b"1.2.840.10008.1.2", 17) == 0:
                explicit = False
            elif tslen == 19 and memcmp(ts, b"1.2.840.10008.1.2.2", 19) == 0:
                le = False
            elif (tslen == 22 and memcmp(ts, b"1.2.840.10008.1.2.1.99", 22) == 0) or \
                    (tslen == 22 and memcmp(ts, b"1.2.840.10008.1.2.4.95", 22) == 0):
                s.inflating = True
            elif tslen == 0:
                explicit = False
                le = False
                res = -1
            if res != -1:
                if s.inflating:
                    # one inflate state per extract() call, reset for each file
                    if s.z_open:
                        zr = inflateReset(&s.zs)
                    else:
                        memset(&s.zs, 0, sizeof(z_stream))
                        zr = inflateInit2(&s.zs, -15)
                    if zr == Z_OK:
                        s.z_open = True
                        s.comp_pos = pos
                        s.zs.avail_in = 0
                        if s.zin == NULL:
                            s.zin = <uint8_t*>malloc(<size_t>CHUNK)
                        pos = 0
                    else:
                        res = -1
            if res != -1:
                # the body's first element must agree with the transfer syntax's VR encoding
                if not at_end(s, pos):
                    p = need(s, pos, 6)
                    if p == NULL:
                        res = -1
                    elif (is_upper(p[4]) and is_upper(p[5])) != explicit and \
                            not (p[0] == 0xFE and p[1] == 0xFF):
                        res = -1
                if res != -1:
                    r = walk_top(w, s, &pos, explicit, le, False)
                    if r == W_OK and s.inflating and (w.check_deflated or w.pixel_offset < 0) \
                            and drain_inflate(s) != 0:
                        # the rest of the deflated stream is corrupt, cut short or too large
                        # (check_deflated=False: unless the walk ended at Pixel Data, whose
                        # value is not inflated; the general reader then ignores that tail)
                        r = W_IO if s.io_errno else W_FALLBACK
                    if r == W_OK:
                        res = R_OK
                    elif r == W_PIXEL_TRUNC:
                        res = R_PIXEL_TRUNCATED
                        err_offset[0] = w.pixel_header
                    elif r == W_IO:
                        res = R_OS_ERROR
                    else:
                        res = R_FALLBACK
                else:
                    res = R_FALLBACK
            else:
                res = R_FALLBACK
            flags[0] = (1 if le else 0) | (2 if explicit else 0) | (4 if s.inflating else 0) | \
                (8 if w.encapsulated else 0) | (16 if w.pixel_offset >= 0 else 0)
    elif p == NULL and s.io_errno:
        res = R_OS_ERROR
    if res == R_OS_ERROR:
        err_errno[0] = s.io_errno
    elif not s.inflating:
        # (a deflated file teaches nothing: its walk reads the inflated stream)
        want = (s.hdr_hi if s.hdr_hi >= 0 else s.hi) + SLACK
        s.first_read = (want + 1023) & ~(<int64_t>1023) if want <= SMALL_READ else 0
    if fstat(s.fd, &sb2) == 0:
        if sb2.st_size != sb.st_size or sb2.st_mtim.tv_sec != sb.st_mtim.tv_sec or \
                sb2.st_mtim.tv_nsec != sb.st_mtim.tv_nsec:
            res = R_CHANGED
    close(s.fd)
    return res

# ----------------------------------------------------------------------------- column finishing
# After the per-file loop (still without the GIL), each requested tag's raw values are turned
# into the buffers of its final Arrow array, so Python only wraps them.  A column whose data
# does not fit the strict fast grammar (non-ASCII text, numbers outside [+-]digits[.digits]
# [e[+-]digits], binary lengths not a multiple of the value size...) is marked ``odd`` and
# decoded by the generic Python code from its raw values instead.

cdef extern from "<stdlib.h>" nogil:
    double strtod(const char* s, char** end)

cdef enum:
    K_RAW = 0
    K_STR = 1
    K_STRLIST = 2
    K_INT = 3
    K_FLOAT = 4
    K_INTLIST = 5
    K_FLOATLIST = 6
    K_BIN = 7
    K_BINLIST = 8

KIND_RAW = K_RAW
KIND_STR = K_STR
KIND_STRLIST = K_STRLIST
KIND_INT = K_INT
KIND_FLOAT = K_FLOAT
KIND_INTLIST = K_INTLIST
KIND_FLOATLIST = K_FLOATLIST
KIND_BIN = K_BIN
KIND_BINLIST = K_BINLIST
#: binary formats for KIND_BIN / KIND_BINLIST (param bits 4..7)
BIN_FORMATS = {"US": 1, "SS": 2, "UL": 3, "SL": 4, "SV": 5, "UV": 6, "FL": 7, "FD": 8}
cdef enum:
    VR_UI = 0x5549      # the explicit VRs "UI", "UN", "AE" and "UR" as the walk stores them
    VR_UN = 0x554E
    VR_AE = 0x4145
    VR_UR = 0x5552


cdef struct ColOut:
    int kind
    bint strip_both
    int fmt
    bint grp2
    bint charset_vr
    bint ui
    bint ae
    bint ur
    uint16_t dict_vr   # the dictionary's VR ("UI" as 0x5549; 0: none or several)
    bint odd
    int64_t nchild
    Arena valid        # row validity bitmap
    Arena loff         # int32 offsets (string offsets or list offsets), n + 1
    Arena vals         # int64/float64 per row (scalars) or per child (numeric lists)
    Arena data         # string bytes (text kinds)
    Arena coff         # int32 child string offsets (STRLIST)
    Arena cvalid       # child validity bitmap (numeric lists)


cdef int reserve(Arena* a, int64_t extra) noexcept nogil:
    cdef int64_t newcap
    cdef char* grown
    if a.length + extra <= a.cap:
        return 0
    newcap = a.cap * 2 if a.cap > 0 else 4096
    while newcap < a.length + extra:
        newcap *= 2
    grown = <char*>realloc(a.data, <size_t>newcap)
    if grown == NULL:
        return -1
    a.data = grown
    a.cap = newcap
    return 0


cdef inline int put_i32(Arena* a, int32_t v) noexcept nogil:
    if reserve(a, 4) != 0:
        return -1
    memcpy(a.data + a.length, &v, 4)
    a.length += 4
    return 0


cdef inline int put_8(Arena* a, const void* v) noexcept nogil:
    if reserve(a, 8) != 0:
        return -1
    memcpy(a.data + a.length, v, 8)
    a.length += 8
    return 0


cdef inline int set_bit(Arena* a, int64_t k, bint on) noexcept nogil:
    """Bit ``k`` of bitmap ``a`` (grown and zero-filled as needed)."""
    cdef int64_t nb = (k >> 3) + 1
    if nb > a.length:
        if reserve(a, nb - a.length) != 0:
            return -1
        memset(a.data + a.length, 0, <size_t>(nb - a.length))
        a.length = nb
    if on:
        a.data[k >> 3] = <char>(<uint8_t>a.data[k >> 3] | (1 << (k & 7)))
    return 0


cdef inline void strip(const uint8_t* p, int64_t* b, int64_t* e, bint both) noexcept nogil:
    while e[0] > b[0] and (p[e[0] - 1] == 0x20 or p[e[0] - 1] == 0):
        e[0] -= 1
    if both:
        while b[0] < e[0] and (p[b[0]] == 0x20 or p[b[0]] == 0):
            b[0] += 1


cdef inline bint is_space(uint8_t c) noexcept nogil:
    """Whether ``c`` is an ASCII byte Python's ``str.strip()`` strips: space, \\t \\n \\v
    \\f \\r and the separators 0x1C-0x1F.  (Of latin-1 text it strips NEL 0x85 and NBSP
    0xA0 too: a value holding any byte beyond ASCII is left to the Python decoding, which
    strips those, as it reads the whole column, whatever the file.)"""
    return c == 0x20 or 0x09 <= c <= 0x0D or 0x1C <= c <= 0x1F


cdef inline void strip_ui(const uint8_t* p, int64_t* b, int64_t* e, bint last) noexcept nogil:
    """The bounds of one UI value as pydicom (and the Dataset) reads it: the whole value
    loses its trailing spaces and NULs (``last``: this is its last value, or the whole), then
    each value its surrounding whitespace (``UID()``: ``str.strip()`` of the latin-1 text,
    its ASCII part here, see :func:`is_space`; a NUL is not whitespace there)."""
    if last:
        strip(p, b, e, False)
    strip_space(p, b, e)


cdef inline void strip_space(const uint8_t* p, int64_t* b, int64_t* e) noexcept nogil:
    """Without surrounding whitespace (``str.strip()``, see :func:`is_space`)."""
    while e[0] > b[0] and is_space(p[e[0] - 1]):
        e[0] -= 1
    while b[0] < e[0] and is_space(p[b[0]]):
        b[0] += 1


cdef inline void strip_ae(const uint8_t* p, int64_t* b, int64_t* e) noexcept nogil:
    """The bounds of one AE value: without the whitespace (see :func:`is_space`) and NULs
    around it, in any order."""
    while e[0] > b[0] and (is_space(p[e[0] - 1]) or p[e[0] - 1] == 0):
        e[0] -= 1
    while b[0] < e[0] and (is_space(p[b[0]]) or p[b[0]] == 0):
        b[0] += 1


cdef inline void strip_ur(const uint8_t* p, int64_t* b, int64_t* e) noexcept nogil:
    """The bounds of a UR value: without its trailing whitespace and NULs, in any order."""
    while e[0] > b[0] and (is_space(p[e[0] - 1]) or p[e[0] - 1] == 0):
        e[0] -= 1


cdef inline void strip_value(ColOut* c, const uint8_t* p, int64_t* b, int64_t* e, bint last,
                             bint both) noexcept nogil:
    """The bounds of one value of column ``c`` without its padding, by its VR's rule
    (``last``: the last value of the element, or the whole; ``both``: the other VRs' leading
    spaces and NULs too)."""
    if c.ui:
        strip_ui(p, b, e, last)
    elif c.ae:
        strip_ae(p, b, e)
    elif c.ur:
        strip_ur(p, b, e)
    else:
        strip(p, b, e, both)


cdef inline bint has_special(const uint8_t* p, int64_t b, int64_t e) noexcept nogil:
    cdef int64_t k
    for k in range(b, e):
        if p[k] >= 0x80 or p[k] == 0x1B:
            return True
    return False


cdef enum:
    CS_LATIN1 = 0      # no / empty Specific Character Set, ISO_IR 6 or ISO_IR 100
    CS_UTF8 = 1        # ISO_IR 192
    CS_OTHER = 2       # anything else: non-ASCII values are decoded in Python


cdef inline bint utf8_valid(const uint8_t* p, int64_t b, int64_t e) noexcept nogil:
    """Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF)."""
    cdef int64_t k = b
    cdef uint8_t c
    cdef uint32_t cp
    cdef int m, t
    while k < e:
        c = p[k]
        if c < 0x80:
            k += 1
            continue
        if 0xC2 <= c <= 0xDF:
            m = 1
            cp = c & 0x1F
        elif 0xE0 <= c <= 0xEF:
            m = 2
            cp = c & 0x0F
        elif 0xF0 <= c <= 0xF4:
            m = 3
            cp = c & 0x07
        else:
            return False
        if k + m >= e:
            return False
        for t in range(1, m + 1):
            if (p[k + t] & 0xC0) != 0x80:
                return False
            cp = (cp << 6) | (p[k + t] & 0x3F)
        if m == 2 and (cp < 0x800 or 0xD800 <= cp <= 0xDFFF):
            return False
        if m == 3 and (cp < 0x10000 or cp > 0x10FFFF):
            return False
        k += m + 1
    return True


cdef int append_text(Arena* out, const uint8_t* p, int64_t b, int64_t e, int cls,
                     bint charset_vr) noexcept nogil:
    """Append value bytes [b, e) as UTF-8: 0 ok, 1 Python must decode it, -1 no memory."""
    cdef int64_t k, extra = 0
    cdef uint8_t c
    cdef char* q
    for k in range(b, e):
        c = p[k]
        if c == 0x1B:
            return 1
        if c >= 0x80:
            extra += 1
    if extra and (not charset_vr or cls == CS_OTHER):
        return 1
    if extra and cls == CS_UTF8:
        if not utf8_valid(p, b, e):
            return 1
        extra = 0
    if reserve(out, e - b + extra) != 0:
        return -1
    q = out.data + out.length
    if not extra:
        if e > b:  # memcpy with a NULL pointer is undefined even for 0 bytes
            memcpy(q, p + b, <size_t>(e - b))
    else:
        for k in range(b, e):
            c = p[k]
            if c < 0x80:
                q[0] = <char>c
                q += 1
            else:
                q[0] = <char>(0xC0 | (c >> 6))
                q[1] = <char>(0x80 | (c & 0x3F))
                q += 2
    out.length += e - b + extra
    return 0


cdef void charset_classes(uint8_t* cls, const uint8_t* raw, const int32_t* offs,
                          const uint8_t* present, int ntags, int j, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef int64_t b, e
    for i in range(n):
        cls[i] = CS_LATIN1
        if j < 0 or not present[<int64_t>i * ntags + j]:
            continue
        b = offs[i]
        e = offs[i + 1]
        # as the general reader reads the value (split_character_set): without its trailing
        # spaces and NULs, then without its whitespace (the UI rule; a leading NUL stays: an
        # unknown term)
        strip_ui(raw, &b, &e, True)
        if e == b:
            continue
        if (e - b == 10 and memcmp(raw + b, b"ISO_IR 100", 10) == 0) or \
                (e - b == 8 and memcmp(raw + b, b"ISO_IR 6", 8) == 0):
            cls[i] = CS_LATIN1
        elif e - b == 10 and memcmp(raw + b, b"ISO_IR 192", 10) == 0:
            cls[i] = CS_UTF8
        else:
            cls[i] = CS_OTHER


cdef bint parse_int(const uint8_t* p, int64_t n, int64_t* out) noexcept nogil:
    """Strict ``-?[0-9]{1,18}``."""
    cdef int64_t k = 0, v = 0
    cdef bint neg = False
    if n > 0 and p[0] == b'-':
        neg = True
        k = 1
    if n - k < 1 or n - k > 18:
        return False
    while k < n:
        if p[k] < b'0' or p[k] > b'9':
            return False
        v = v * 10 + (p[k] - 48)
        k += 1
    out[0] = -v if neg else v
    return True


cdef double POW10[23]
POW10[:] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
            1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22]


cdef bint parse_float(const uint8_t* p, int64_t n, double* out) noexcept nogil:
    """Strict ``[+-]?(d+(.d*)?|.d+)([eE][+-]?d+)?`` (at most 63 characters).

    Plain decimals of at most 15 digits are m / 10**f with both exact in a double, so one
    division rounds correctly (the same value as strtod); anything else goes to strtod."""
    cdef char buf[64]
    cdef char* end
    cdef int64_t k = 0, digits = 0, frac = 0
    cdef uint64_t m = 0
    cdef bint neg = False
    if n < 1 or n > 63:
        return False
    if p[k] == b'+' or p[k] == b'-':
        neg = p[k] == b'-'
        k += 1
    while k < n and b'0' <= p[k] <= b'9':
        if digits < 19:
            m = m * 10 + (p[k] - 48)
        k += 1
        digits += 1
    if k < n and p[k] == b'.':
        k += 1
        while k < n and b'0' <= p[k] <= b'9':
            if digits < 19:
                m = m * 10 + (p[k] - 48)
            k += 1
            digits += 1
            frac += 1
    if digits == 0:
        return False
    if k == n and digits <= 15 and frac <= 22:
        out[0] = (<double>m) / POW10[frac]
        if neg:
            out[0] = -out[0]
        return True
    if k < n and (p[k] == b'e' or p[k] == b'E'):
        k += 1
        if k < n and (p[k] == b'+' or p[k] == b'-'):
            k += 1
        if k >= n or not (b'0' <= p[k] <= b'9'):
            return False
        while k < n and b'0' <= p[k] <= b'9':
            k += 1
    if k != n:
        return False
    memcpy(buf, p, <size_t>n)
    buf[n] = 0
    out[0] = strtod(buf, &end)
    # (a decimal past the double's range, "1e400", is no number: strtod gives an infinity)
    return end == buf + n and out[0] - out[0] == 0


cdef inline bint read_bin(const uint8_t* p, int fmt, bint big, int64_t* iv,
                          double* fv) noexcept nogil:
    """One binary value; returns True when it is a float."""
    cdef uint8_t t[8]
    cdef int w, k
    cdef uint16_t u16
    cdef uint32_t u32
    cdef uint64_t u64
    cdef float f32
    w = 2 if fmt <= 2 else (4 if fmt <= 4 or fmt == 7 else 8)
    if big:
        for k in range(w):
            t[k] = p[w - 1 - k]
    else:
        memcpy(t, p, <size_t>w)
    if fmt == 1:
        memcpy(&u16, t, 2)
        iv[0] = u16
    elif fmt == 2:
        memcpy(&u16, t, 2)
        iv[0] = <int16_t>u16
    elif fmt == 3:
        memcpy(&u32, t, 4)
        iv[0] = u32
    elif fmt == 4:
        memcpy(&u32, t, 4)
        iv[0] = <int32_t>u32
    elif fmt == 5 or fmt == 6:
        memcpy(&u64, t, 8)
        iv[0] = <int64_t>u64
    elif fmt == 7:
        memcpy(&f32, t, 4)
        fv[0] = f32
        return True
    else:
        memcpy(fv, t, 8)
        return True
    return False


cdef inline int bin_width(int fmt) noexcept nogil:
    return 2 if fmt <= 2 else (4 if fmt <= 4 or fmt == 7 else 8)


cdef int finish_column(ColOut* c, const uint8_t* raw, const int32_t* offs, const uint8_t* present,
                       int ntags, int j, Py_ssize_t n, const int32_t* status,
                       const int32_t* flags, const uint8_t* cls,
                       const uint16_t* vrs) noexcept nogil:
    """Fill ``c`` from the raw values of one tag; sets ``c.odd`` when Python must decode it
    (also when an element carries an explicit VR other than the dictionary's: the general
    reader reads it with that VR, e.g. Rows written as IS text or SS, a UID written as LO)."""
    cdef Py_ssize_t i
    cdef int64_t b, e, ib, ie, k, w, cnt
    cdef uint16_t fvr
    cdef bint pres, big, isf
    cdef int64_t iv = 0
    cdef double fv = 0.0
    cdef int kind = c.kind
    cdef int r
    if put_i32(&c.loff, 0) != 0:
        return -1
    if kind == K_STRLIST and put_i32(&c.coff, 0) != 0:
        return -1
    if set_bit(&c.valid, n - 1 if n > 0 else 0, False) != 0:
        return -1
    for i in range(n):
        pres = present[<int64_t>i * ntags + j] != 0
        if pres and c.dict_vr != 0 and vrs != NULL:
            fvr = vrs[<int64_t>i * ntags + j]
            if fvr != 0 and fvr != c.dict_vr and fvr != VR_UN:
                c.odd = True
                return 0
        b = offs[i]
        e = offs[i + 1]
        big = (not c.grp2) and status[i] == R_OK and (flags[i] & 1) == 0
        if kind == K_STR:
            if pres:
                strip_value(c, raw, &b, &e, True, c.strip_both)
                r = append_text(&c.data, raw, b, e, cls[i], c.charset_vr)
                if r != 0:
                    c.odd = True
                    return r if r < 0 else 0
                set_bit(&c.valid, i, True)
            if put_i32(&c.loff, <int32_t>c.data.length) != 0:
                return -1
        elif kind == K_INT or kind == K_FLOAT:
            if pres:
                strip(raw, &b, &e, True)
                if e > b:
                    if kind == K_INT:
                        if not parse_int(raw + b, e - b, &iv):
                            c.odd = True
                            return 0
                    elif not parse_float(raw + b, e - b, <double*>&iv):
                        c.odd = True
                        return 0
                    set_bit(&c.valid, i, True)
                else:
                    iv = 0
            else:
                iv = 0
            if not pres:
                iv = 0
            if put_8(&c.vals, &iv) != 0:
                return -1
        elif kind == K_STRLIST or kind == K_INTLIST or kind == K_FLOATLIST:
            # a value of padding alone holds no value (null, as an empty one)
            ib = b
            ie = e
            strip_value(c, raw, &ib, &ie, True, True)
            if pres and ie > ib:
                set_bit(&c.valid, i, True)
                ib = b
                while True:
                    ie = ib
                    while ie < e and raw[ie] != 0x5C:
                        ie += 1
                    k = ie        # end of this item, before stripping
                    b = ib
                    strip_value(c, raw, &ib, &ie, k >= e, c.strip_both or kind != K_STRLIST)
                    if kind == K_STRLIST:
                        r = append_text(&c.data, raw, ib, ie, cls[i], c.charset_vr)
                        if r != 0:
                            c.odd = True
                            return r if r < 0 else 0
                        if put_i32(&c.coff, <int32_t>c.data.length) != 0:
                            return -1
                    else:
                        iv = 0
                        if ie > ib:
                            if kind == K_INTLIST:
                                if not parse_int(raw + ib, ie - ib, &iv):
                                    c.odd = True
                                    return 0
                            elif not parse_float(raw + ib, ie - ib, <double*>&iv):
                                c.odd = True
                                return 0
                            if set_bit(&c.cvalid, c.nchild, True) != 0:
                                return -1
                        elif set_bit(&c.cvalid, c.nchild, False) != 0:
                            return -1
                        if put_8(&c.vals, &iv) != 0:
                            return -1
                    c.nchild += 1
                    if k >= e:
                        break
                    ib = k + 1
            if put_i32(&c.loff, <int32_t>c.nchild) != 0:
                return -1
        elif kind == K_BIN or kind == K_BINLIST:
            w = bin_width(c.fmt)
            if pres and (e - b) % w != 0:
                c.odd = True
                return 0
            cnt = (e - b) // w if pres else 0
            if kind == K_BIN:
                iv = 0
                if cnt >= 1:
                    isf = read_bin(raw + b, c.fmt, big, &iv, <double*>&iv)
                    set_bit(&c.valid, i, True)
                if put_8(&c.vals, &iv) != 0:
                    return -1
            else:
                if cnt >= 1:
                    set_bit(&c.valid, i, True)
                    for k in range(cnt):
                        iv = 0
                        isf = read_bin(raw + b + k * w, c.fmt, big, &iv, <double*>&iv)
                        if put_8(&c.vals, &iv) != 0:
                            return -1
                    c.nchild += cnt
                if put_i32(&c.loff, <int32_t>c.nchild) != 0:
                    return -1
    return 0


cdef object arena_bytes(Arena* a):
    if a.length <= 0:
        return b""
    return PyBytes_FromStringAndSize(a.data, a.length)


def extract(list paths, const uint32_t[::1] tags, *, uint32_t stop_tag=0xFFFFFFFF,
            bint find_pixels=True, bint nofollow=False, int64_t header_bytes=8192,
            int max_depth=64, int64_t max_inflated=1 << 30, kinds=None, params=None,
            bint check_deflated=True, int64_t arena_max=ARENA_MAX, dict_vrs=None):
    """Extract the raw values of ``tags`` (sorted, must include (0002,0010)) from each path.

    Returns a dict of numpy arrays: ``status``, ``errno``, ``size``, ``mtime_ns``, ``flags``,
    ``pixel_header``, ``pixel_offset``, ``pixel_length``, ``err_offset``; and ``columns``:
    one ``(offsets int32[n+1], data bytes, vr uint16[n], present bool[n])`` per tag;
    ``path_offsets`` (int32[n+1]) and ``path_data``: the paths as UTF-8 (None unless every
    path is a str of valid Unicode).

    With ``kinds`` (uint8 per tag, ``KIND_*``) and ``params`` (int32 per tag: bit 0 strip
    leading padding too, bits 4-7 the ``BIN_FORMATS`` code, bit 8 the tag is in group 0002,
    bit 9 text decoded with Specific Character Set (ISO_IR 6/100 and 192 are done here)),
    ``decoded`` holds per tag None (raw kind) or a tuple ``(odd, valid, offsets, values, data,
    child_offsets, child_valid, nchild)`` of bytes: the buffers of the final Arrow array
    (``odd`` True: use the raw values instead).  ``dict_vrs`` (uint16 per tag, 0 for none)
    are the dictionary's VR codes: a UI column's values are stripped as pydicom reads them,
    and a column with an element of another explicit VR is left odd.  ``check_deflated=False``
    does not inflate the Pixel Data of deflated files to check that it is complete.  A file whose value
    would carry its tag's values in this chunk past ``arena_max`` bytes (at most
    ``ARENA_LIMIT``) is left to the general reader (status ``STATUS_FALLBACK``).
    Runs without the GIL from the first open to the last close, column finishing included.
    """
    cdef Py_ssize_t n = len(paths), i
    cdef int nt = tags.shape[0], j, tsj = -1
    cdef list encoded = []
    cdef const char** cpaths = <const char**>malloc((n + 1) * sizeof(char*))
    cdef Arena* arenas = <Arena*>malloc((nt + 1) * sizeof(Arena))
    status = np.zeros(n, np.int32)
    errnos = np.zeros(n, np.int32)
    sizes = np.full(n, -1, np.int64)
    mtimes = np.zeros(n, np.int64)
    flags = np.zeros(n, np.int32)
    pix_h = np.full(n, -1, np.int64)
    pix_o = np.full(n, -1, np.int64)
    pix_l = np.full(n, -1, np.int64)
    err_off = np.full(n, -1, np.int64)
    vrs = np.zeros((n, nt), np.uint16)
    present = np.zeros((n, nt), np.uint8)
    offsets = np.zeros((nt, n + 1), np.int32)
    cdef int32_t[::1] c_status = status
    cdef int32_t[::1] c_errno = errnos
    cdef int64_t[::1] c_size = sizes
    cdef int64_t[::1] c_mtime = mtimes
    cdef int32_t[::1] c_flags = flags
    cdef int64_t[::1] c_ph = pix_h
    cdef int64_t[::1] c_po = pix_o
    cdef int64_t[::1] c_pl = pix_l
    cdef int64_t[::1] c_eo = err_off
    cdef uint16_t[:, ::1] c_vrs = vrs
    cdef uint8_t[:, ::1] c_present = present
    cdef int32_t[:, ::1] c_offsets = offsets
    cdef Walk w
    cdef Src s
    cdef int res, fl, en
    cdef int64_t sz, mt, eo
    cdef ColOut* cols = <ColOut*>malloc((nt + 1) * sizeof(ColOut))
    cdef uint8_t* cls = <uint8_t*>malloc(n + 1)
    cdef int csj
    cdef const uint8_t* c_present_p
    cdef int32_t* c_status_p
    cdef int32_t* c_flags_p
    cdef int32_t* c_offsets_p
    if cpaths == NULL or arenas == NULL or cols == NULL or cls == NULL:
        free(cpaths)
        free(arenas)
        free(cols)
        free(cls)
        raise MemoryError()
    memset(cols, 0, (nt + 1) * sizeof(ColOut))
    if kinds is not None:
        for j in range(nt):
            cols[j].kind = int(kinds[j])
            pv = int(params[j])
            cols[j].strip_both = (pv & 1) != 0
            cols[j].fmt = (pv >> 4) & 15
            cols[j].grp2 = (pv & 256) != 0
            cols[j].charset_vr = (pv & 512) != 0
            if dict_vrs is not None:
                cols[j].dict_vr = <uint16_t>int(dict_vrs[j])
            # a UI, AE and UR column's values are stripped as pydicom reads them (strip_ui,
            # strip_ae, strip_ur)
            cols[j].ui = cols[j].dict_vr == VR_UI
            cols[j].ae = cols[j].dict_vr == VR_AE
            cols[j].ur = cols[j].dict_vr == VR_UR
    # the paths' UTF-8 text is also the data of the batch's ``path`` column (an Arrow
    # string array), when every path is a str that is valid Unicode
    cdef bint paths_utf8 = True
    cdef int64_t path_bytes = 0
    for i in range(n):
        p = paths[i]
        if isinstance(p, bytes):
            b = p
            paths_utf8 = False
        else:
            try:
                b = (<str>p).encode("utf-8")
            except UnicodeEncodeError:        # lone surrogates: undecodable bytes
                b = (<str>p).encode("utf-8", "surrogateescape")
                paths_utf8 = False
        encoded.append(b)
        # a NUL byte would cut the C string short: another file's name (ERRNO_NUL_IN_PATH)
        cpaths[i] = NULL if b"\0" in <bytes>b else <const char*>(<bytes>b)
        path_bytes += len(<bytes>b)
    path_offsets = path_data = None
    if paths_utf8 and path_bytes < 0x7FFFFFFF:
        path_offsets = np.zeros(n + 1, np.int32)
        if n:
            np.cumsum([len(<bytes>b) for b in encoded], out=path_offsets[1:])
        path_data = b"".join(encoded)
    for j in range(nt):
        arenas[j].data = NULL
        arenas[j].length = 0
        arenas[j].cap = 0
        if tags[j] == 0x00020010u:
            tsj = j
        if j > 0 and tags[j] <= tags[j - 1]:
            free(cpaths)
            free(arenas)
            free(cols)
            free(cls)
            raise ValueError("tags must be sorted and unique")
    if tsj < 0:
        free(cpaths)
        free(arenas)
        free(cols)
        free(cls)
        raise ValueError("tags must include (0002,0010) Transfer Syntax UID")
    memset(&s, 0, sizeof(Src))
    s.dirfd = -1
    s.max_inflated = max_inflated
    w.tags = &tags[0] if nt > 0 else NULL
    w.ntags = nt
    w.arenas = arenas
    w.vrs = &c_vrs[0, 0] if n > 0 and nt > 0 else NULL
    w.present = &c_present[0, 0] if n > 0 and nt > 0 else NULL
    w.stop_tag = stop_tag
    w.find_pixels = find_pixels
    w.max_depth = max_depth
    w.arena_max = min(max(arena_max, 0), ARENA_MAX)
    w.check_deflated = check_deflated
    c_present_p = &c_present[0, 0] if n > 0 and nt > 0 else NULL
    c_status_p = &c_status[0] if n > 0 else NULL
    c_flags_p = &c_flags[0] if n > 0 else NULL
    c_offsets_p = &c_offsets[0, 0] if nt > 0 else NULL
    try:
        with nogil:
            for i in range(n):
                w.row = <int>i
                w.pixel_header = -1
                w.pixel_offset = -1
                w.pixel_length = -1
                w.encapsulated = False
                sz = -1
                mt = 0
                en = 0
                fl = 0
                eo = arenas[tsj].length     # mark of the TS arena for this row
                if cpaths[i] == NULL:
                    res = R_OS_ERROR
                    en = E_NUL_IN_PATH
                else:
                    res = process_file(&w, &s, cpaths[i], nofollow, header_bytes, &sz, &mt,
                                       &en, &fl, &eo)
                c_status[i] = res
                c_errno[i] = en
                c_size[i] = sz
                c_mtime[i] = mt
                c_flags[i] = fl
                if res == R_OK or res == R_PIXEL_TRUNCATED:
                    c_ph[i] = w.pixel_header
                    c_po[i] = w.pixel_offset
                    c_pl[i] = w.pixel_length
                if res == R_PIXEL_TRUNCATED:
                    c_eo[i] = eo
                for j in range(nt):
                    if res != R_OK:
                        arenas[j].length = c_offsets[j, i]   # roll back this row's values
                        c_present[i, j] = 0
                    c_offsets[j, i + 1] = <int32_t>arenas[j].length
            if n > 0 and kinds is not None:
                csj = -1
                for j in range(nt):
                    if tags[j] == 0x00080005u:
                        csj = j
                charset_classes(cls, <const uint8_t*>(arenas[csj].data if csj >= 0 else NULL),
                                c_offsets_p + <int64_t>(csj if csj >= 0 else 0) * (n + 1),
                                c_present_p, nt, csj, n)
                for j in range(nt):
                    if cols[j].kind != K_RAW:
                        if finish_column(&cols[j], <const uint8_t*>arenas[j].data,
                                         c_offsets_p + <int64_t>j * (n + 1), c_present_p, nt,
                                         j, n, c_status_p, c_flags_p, cls,
                                         w.vrs) != 0:
                            cols[j].odd = True
        decoded = []
        for j in range(nt):
            if cols[j].kind == K_RAW or n == 0:
                decoded.append(None)
            elif cols[j].odd:
                decoded.append((True, None, None, None, None, None, None, 0))
            else:
                decoded.append((False, arena_bytes(&cols[j].valid), arena_bytes(&cols[j].loff),
                                arena_bytes(&cols[j].vals), arena_bytes(&cols[j].data),
                                arena_bytes(&cols[j].coff), arena_bytes(&cols[j].cvalid),
                                cols[j].nchild))
        columns = []
        for j in range(nt):
            data = PyBytes_FromStringAndSize(arenas[j].data, arenas[j].length) \
                if arenas[j].length > 0 else b""
            columns.append((offsets[j], data, vrs[:, j], present[:, j].view(np.bool_)))
    finally:
        for j in range(nt):
            free(arenas[j].data)
            free(cols[j].valid.data)
            free(cols[j].loff.data)
            free(cols[j].vals.data)
            free(cols[j].data.data)
            free(cols[j].coff.data)
            free(cols[j].cvalid.data)
        free(cols)
        free(cls)
        free(arenas)
        free(cpaths)
        if s.z_open:
            inflateEnd(&s.zs)
        if s.dirfd >= 0:
            close(s.dirfd)
        free(s.buf)
        free(s.zin)
        free(s.out)
    return {"status": status, "errno": errnos, "size": sizes, "mtime_ns": mtimes,
            "flags": flags, "pixel_header": pix_h, "pixel_offset": pix_o,
            "pixel_length": pix_l, "err_offset": err_off, "columns": columns,
            "decoded": decoded, "path_offsets": path_offsets, "path_data": path_data}


def read_checked(path, int64_t max_bytes=-1, bint nofollow=False):
    """open + fstat + pread(max_bytes, all when -1) + fstat: ``(data, size, mtime_ns, changed)``.

    ``changed`` is True when size or mtime differ between the two fstat calls (or the file
    returned fewer bytes than its size said).
    """
    cdef bytes bpath = c_path(path)
    cdef int fd, err = 0
    cdef stat_t sb, sb2
    cdef int64_t want, got = 0
    cdef bint changed = False
    cdef uint8_t* dst
    fd = open_regular(bpath, O_NOFOLLOW if nofollow else 0, &sb, path)
    try:
        want = sb.st_size if (max_bytes < 0 or max_bytes > sb.st_size) else max_bytes
        out = PyBytes_FromStringAndSize(NULL, want)
        dst = <uint8_t*>PyBytes_AS_STRING(out)
        with nogil:
            err = pread_full(fd, dst, want, 0, &got)
            if fstat(fd, &sb2) == 0:
                changed = (sb2.st_size != sb.st_size or sb2.st_mtim.tv_sec != sb.st_mtim.tv_sec
                           or sb2.st_mtim.tv_nsec != sb.st_mtim.tv_nsec)
        if err:
            import os
            raise OSError(err, os.strerror(err), path)
        if got < want:
            out = out[:got]
            changed = True
        return out, <int64_t>sb.st_size, <int64_t>sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec, changed
    finally:
        close(fd)


from cpython.object cimport PyObject
from cpython.ref cimport Py_XDECREF

cdef extern from "Python.h":
    int _PyBytes_Resize(PyObject** pv, Py_ssize_t newsize) except -1
    PyObject* new_bytes "PyBytes_FromStringAndSize"(const char* v, Py_ssize_t n) except NULL
    char* bytes_data "PyBytes_AS_STRING"(PyObject* o)

#: inflate_bytes statuses
INFLATE_OK = 0          # the stream ended (bytes after it are ignored)
INFLATE_CUT = 1         # the input ended before the stream's final block
INFLATE_CORRUPT = 2     # zlib found the stream damaged
INFLATE_OVER = 3        # more than ``budget`` bytes


def inflate_bytes(const uint8_t[::1] data, int64_t budget, int wbits=-15):
    """Inflate ``data`` (raw deflate with ``wbits=-15``, zlib-wrapped with 15) into one bytes
    object: ``(output, status)``.  The output grows in place (a resize of a large block is a
    ``mremap``, not a copy), so the peak memory is about the inflated size -- not twice it, as
    with zlib.decompressobj, whose blocks are joined at the end.  At most ``budget`` bytes are
    kept: ``INFLATE_OVER`` when the stream holds more.  On ``INFLATE_CUT`` or
    ``INFLATE_CORRUPT`` the output is what was inflated before the end or the damage."""
    cdef z_stream zs
    cdef int zr = Z_OK, status = INFLATE_CUT
    cdef int64_t have = 0, cap, in_pos = 0, n_in = data.shape[0], step
    cdef unsigned int chunk_in
    cdef PyObject* outp = NULL
    cdef uint8_t* base
    if budget < 0:
        raise ValueError("budget must be >= 0")
    # a first guess from the compressed size (grown by doubling: each resize is an mremap)
    cap = n_in * 2 + 65536
    if cap > budget + 1:
        cap = budget + 1
    memset(&zs, 0, sizeof(z_stream))
    if inflateInit2(&zs, wbits) != Z_OK:
        raise MemoryError("zlib inflateInit2 failed")
    try:
        outp = new_bytes(NULL, cap)
        while True:
            if have == cap:
                if cap > budget:
                    status = INFLATE_OVER
                    break
                cap = cap * 2 if cap * 2 <= budget + 1 else budget + 1
                _PyBytes_Resize(&outp, cap)
            base = <uint8_t*>bytes_data(outp)
            with nogil:
                while have < cap:
                    if zs.avail_in == 0:
                        if in_pos >= n_in:
                            break
                        chunk_in = <unsigned int>(n_in - in_pos if n_in - in_pos < 0x40000000
                                                  else 0x40000000)
                        zs.next_in = &data[in_pos]
                        zs.avail_in = chunk_in
                        in_pos += chunk_in
                    step = cap - have if cap - have < 0x40000000 else 0x40000000
                    zs.next_out = base + have
                    zs.avail_out = <unsigned int>step
                    zr = inflate(&zs, Z_NO_FLUSH)
                    have += step - zs.avail_out
                    if zr != Z_OK:
                        break
            if zr == Z_STREAM_END:
                status = INFLATE_OK
                break
            if zr != Z_OK and zr != Z_BUF_ERROR:
                status = INFLATE_CORRUPT
                break
            if zs.avail_in == 0 and in_pos >= n_in and have < cap:
                status = INFLATE_CUT
                break
        if have > budget:
            have = budget
            status = INFLATE_OVER
        _PyBytes_Resize(&outp, have)
        out = <object>outp
        return out, status
    finally:
        inflateEnd(&zs)
        Py_XDECREF(outp)
