# cython: language_level=3
"""nogil helpers for :mod:`fastdicom.series`.

* :func:`scan_headers` -- per file: open, pread of a small window, walk of the root data set
  (sequences skipped without decoding), decoding of just the values that grouping, sorting
  and stacking need, and the Pixel Data value offset/length.  The whole chunk of files is
  processed without the GIL; the GIL is taken once at the end to build the header objects.
  Anything unusual (no Part 10 meta, a transfer syntax other than implicit/explicit VR little
  endian, functional groups, a non-ASCII description, a number Python would parse differently,
  a malformed or truncated header...) is reported as "fallback" for that file, and the caller
  scans it with the general (slower, fully validated) path.
* :func:`read_slices` -- per file: open + fstat (size check) + pread of one frame straight
  into its row of the destination array (+ optional sign extension), nogil for the whole chunk.
  The first read of a chunk only takes what the page cache holds (``preadv2(RWF_NOWAIT)``);
  on a miss the files ahead are announced to the kernel (``posix_fadvise(WILLNEED)``, a
  bounded window) so a cold disk sees a deep queue rather than one request at a time.
  Files in one folder are opened with ``openat`` on a cached folder descriptor.

All input is untrusted: every read is bounds-checked against the bytes actually read.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int8_t, int16_t, int32_t, int64_t, INT64_MIN
from libc.stdlib cimport malloc, free, realloc, strtod
from libc.string cimport memcpy, memcmp, memset
from libc.errno cimport errno, EINTR, EAGAIN
from libc.math cimport isfinite, NAN
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from fastdicom._cursor cimport (rd16, rd32, rdtag, is_upper, is_long_vr, is_known_vr,
                                     pread_full, pread,
                                     close, c_open, c_openat, fstat, stat_t, timespec_t,
                                     O_RDONLY, O_CLOEXEC, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY)

cdef extern from *:
    """
    #include <errno.h>
    #include <fcntl.h>
    #include <sys/uio.h>
    #ifndef O_PATH
    #define O_PATH 0            /* then the folder is opened O_RDONLY | O_DIRECTORY */
    #endif
    /* A read that only copies what is already in the page cache: the full count when the
       data is cached, else -1/EAGAIN or a short count (Linux >= 4.14); -1/ENOSYS elsewhere. */
    static ssize_t fd_pread_nowait(int fd, void* buf, size_t n, long off) {
    #if defined(__linux__) && defined(RWF_NOWAIT)
        struct iovec iov;
        iov.iov_base = buf;
        iov.iov_len = n;
        return preadv2(fd, &iov, 1, off, RWF_NOWAIT);
    #else
        (void)fd; (void)buf; (void)n; (void)off;
        errno = ENOSYS;
        return -1;
    #endif
    }
    /* Ask the kernel to start reading a range in the background. */
    static void fd_willneed(int fd, long off, long len) {
    #if defined(POSIX_FADV_WILLNEED)
        (void)posix_fadvise(fd, off, len, POSIX_FADV_WILLNEED);
    #else
        (void)fd; (void)off; (void)len;
    #endif
    }
    """
    int O_PATH
    ssize_t fd_pread_nowait(int fd, void* buf, size_t n, long off) nogil
    void fd_willneed(int fd, long off, long len) nogil


# ---------------------------------------------------------------------------------------------
# result layout

cdef enum:
    ST_FAST = 0
    ST_FALLBACK = 1
    ST_NOIMAGE = 2

# integer fields (INT64_MIN = missing)
cdef enum:
    I_ROWS = 0
    I_COLS
    I_SAMPLES
    I_BITS_ALLOC
    I_BITS_STORED
    I_PIXREP
    I_PLANAR
    I_NFRAMES
    I_SERIES_NUMBER
    I_INSTANCE
    I_ACQUISITION
    I_ECHO_NUMBER
    I_TEMPORAL
    NI

# float fields (NaN = missing)
cdef enum:
    F_THICK = 0
    F_SBS
    F_ECHO_TIME
    F_TRIGGER
    F_SLOPE
    F_INTERCEPT
    F_BVALUE
    F_POS            # 3
    F_ORI = 10       # 6
    F_SPC = 16       # 2
    NF = 18

# vector presence flags
cdef enum:
    V_POS = 0
    V_ORI
    V_SPC
    NV

# string fields (offset/length into the per-file pool)
cdef enum:
    S_IMAGE_TYPE = 0
    S_SOP_CLASS
    S_SOP
    S_MODALITY
    S_DESCRIPTION
    S_STUDY
    S_SERIES
    S_FOR
    S_PHOTOMETRIC
    S_TS
    NS

# what each wanted tag is
cdef enum:
    K_STR = 0
    K_US
    K_IS
    K_DS
    K_FD
    K_VEC
    K_FG            # functional groups: fallback

cdef enum:
    POOL = 1024
    NTAGS = 35
    MAX_VALUE = 1024
    WINDOW = 4096
    MAX_DEPTH = 32

cdef int64_t PREFETCH_BYTES = 64 << 20

cdef struct Out:
    int status
    int64_t size
    int64_t ival[NI]
    double fval[NF]
    int vec_ok[NV]
    int32_t soff[NS]
    int32_t slen[NS]
    int32_t pool_used
    char pool[POOL]
    int little
    uint32_t pixel_tag
    int64_t pixel_offset
    int64_t pixel_length

# sorted tag table: tag, kind, field index, (vector length)
cdef uint32_t TAGS[NTAGS]
cdef int KIND[NTAGS]
cdef int FIELD[NTAGS]
cdef int VLEN[NTAGS]

cdef uint16_t VR_UN = 0x554E
# the dictionary's VR of each wanted tag as an explicit VR is stored ("US": 0x5553; 0: none)
cdef uint16_t VRX[NTAGS]


cdef void _def(int j, uint32_t tag, int kind, int field, int vlen):
    TAGS[j] = tag
    KIND[j] = kind
    FIELD[j] = field
    VLEN[j] = vlen

_def(0, 0x00080008u, K_STR, S_IMAGE_TYPE, 0)
_def(1, 0x00080016u, K_STR, S_SOP_CLASS, 0)
_def(2, 0x00080018u, K_STR, S_SOP, 0)
_def(3, 0x00080060u, K_STR, S_MODALITY, 0)
_def(4, 0x0008103Eu, K_STR, S_DESCRIPTION, 0)
_def(5, 0x00180050u, K_DS, F_THICK, 0)
_def(6, 0x00180081u, K_DS, F_ECHO_TIME, 0)
_def(7, 0x00180086u, K_IS, I_ECHO_NUMBER, 0)
_def(8, 0x00180088u, K_DS, F_SBS, 0)
_def(9, 0x00181060u, K_DS, F_TRIGGER, 0)
_def(10, 0x00189087u, K_FD, F_BVALUE, 0)
_def(11, 0x0020000Du, K_STR, S_STUDY, 0)
_def(12, 0x0020000Eu, K_STR, S_SERIES, 0)
_def(13, 0x00200011u, K_IS, I_SERIES_NUMBER, 0)
_def(14, 0x00200012u, K_IS, I_ACQUISITION, 0)
_def(15, 0x00200013u, K_IS, I_INSTANCE, 0)
_def(16, 0x00200032u, K_VEC, F_POS, 3)
_def(17, 0x00200037u, K_VEC, F_ORI, 6)
_def(18, 0x00200052u, K_STR, S_FOR, 0)
_def(19, 0x00200100u, K_IS, I_TEMPORAL, 0)
_def(20, 0x00280002u, K_US, I_SAMPLES, 0)
_def(21, 0x00280004u, K_STR, S_PHOTOMETRIC, 0)
_def(22, 0x00280006u, K_US, I_PLANAR, 0)
_def(23, 0x00280008u, K_IS, I_NFRAMES, 0)
_def(24, 0x00280010u, K_US, I_ROWS, 0)
_def(25, 0x00280011u, K_US, I_COLS, 0)
_def(26, 0x00280030u, K_VEC, F_SPC, 2)
_def(27, 0x00280100u, K_US, I_BITS_ALLOC, 0)
_def(28, 0x00280101u, K_US, I_BITS_STORED, 0)
_def(29, 0x00280103u, K_US, I_PIXREP, 0)
_def(30, 0x00281052u, K_DS, F_INTERCEPT, 0)
_def(31, 0x00281053u, K_DS, F_SLOPE, 0)
_def(32, 0x00283000u, K_FG, 0, 0)     # Modality LUT Sequence: the Python reader notes it
# Grid Frame Offset Vector (RT Dose): any number of values, read by the Python reader
_def(33, 0x3004000Cu, K_FG, 0, 0)
_def(34, 0x52009229u, K_FG, 0, 0)
# (5200,9230) is matched separately (it sorts after 0x52009229 and is the same kind)


def _fill_vrs():
    from fastdicom.batch import _vr_code
    from fastdicom.tags import dictionary_vr
    for j in range(NTAGS):
        VRX[j] = _vr_code(dictionary_vr(TAGS[j]) or "")


_fill_vrs()

cdef uint32_t UNDEF = 0xFFFFFFFFu

# ---------------------------------------------------------------------------------------------
# a window of the file

cdef struct Src:
    int fd
    int64_t size
    int64_t base        # file offset of buf[0]
    int64_t have        # valid bytes in buf
    uint8_t* buf
    int64_t cap
    int max_depth       # sequence nesting walked here (deeper: the general path judges)


cdef struct DirCache:
    int fd              # the folder of the last path (O_PATH), or -1
    const char* dir     # points into that path (kept alive by the caller)
    Py_ssize_t len      # length of the folder part, -1 when none is cached

cdef int open_file(DirCache* dc, const char* path, Py_ssize_t plen) noexcept nogil:
    """open(path, O_RDONLY) through a cached descriptor of its folder (openat on the base
    name): consecutive files of one folder skip the walk over the folder's path.
    O_NONBLOCK: a fifo must not block the open (reads of regular files ignore the flag)."""
    cdef Py_ssize_t k = plen - 1
    cdef char tmp[4096]
    while k >= 0 and path[k] != 47:
        k -= 1
    if k <= 0 or k >= 4096 or k == plen - 1:
        return c_open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    if dc.len != k or memcmp(dc.dir, path, k) != 0:
        if dc.fd >= 0:
            close(dc.fd)
        memcpy(tmp, path, k)
        tmp[k] = 0
        dc.fd = c_open(tmp, O_PATH | O_DIRECTORY | O_CLOEXEC)
        dc.dir = path
        dc.len = k if dc.fd >= 0 else -1
        if dc.fd < 0:
            return c_open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    return c_openat(dc.fd, path + k + 1, O_RDONLY | O_CLOEXEC | O_NONBLOCK)

cdef inline void close_dir(DirCache* dc) noexcept nogil:
    if dc.fd >= 0:
        close(dc.fd)
    dc.fd = -1
    dc.len = -1

cdef const uint8_t* need(Src* s, int64_t pos, int64_t n) noexcept nogil:
    """Pointer to file bytes [pos, pos+n), reading a new window when needed; NULL if the
    file is shorter or a read fails."""
    cdef int64_t want, got = 0
    cdef uint8_t* grown
    if pos < 0 or n < 0 or pos + n > s.size:
        return NULL
    if pos >= s.base and pos + n <= s.base + s.have:
        return s.buf + (pos - s.base)
    want = n if n > WINDOW else WINDOW
    if pos + want > s.size:
        want = s.size - pos
    if want > s.cap:
        grown = <uint8_t*>realloc(s.buf, want)
        if grown == NULL:
            return NULL
        s.buf = grown
        s.cap = want
    if pread_full(s.fd, s.buf, want, pos, &got) != 0 or got < n:
        s.have = 0
        return NULL
    s.base = pos
    s.have = got
    return s.buf


cdef int elem_header(Src* s, int64_t pos, bint explicit, uint32_t* tag, uint16_t* vr,
                     uint32_t* length, int64_t* hdr) noexcept nogil:
    """0 ok, -1 malformed/truncated."""
    cdef const uint8_t* p = need(s, pos, 8)
    if p == NULL:
        return -1
    tag[0] = rdtag(p, True)
    if (tag[0] >> 16) == 0xFFFEu or not explicit:
        vr[0] = 0
        length[0] = rd32(p + 4, True)
        hdr[0] = 8
        return 0
    vr[0] = <uint16_t>((p[4] << 8) | p[5])
    if not is_known_vr(vr[0]):
        return -1       # the general reader reads an unknown VR as implicit VR: it judges
    if is_long_vr(p[4], p[5]):
        p = need(s, pos, 12)
        if p == NULL:
            return -1
        length[0] = rd32(p + 8, True)
        hdr[0] = 12
    else:
        length[0] = rd16(p + 6, True)
        hdr[0] = 8
    return 0

cdef uint16_t VR_SQ = (83 << 8) | 81

include "_dict_sq.pxi"
include "_sqwalk.pxi"


cdef inline int find_tag(uint32_t tag) noexcept nogil:
    cdef int lo = 0, hi = NTAGS - 1, mid
    if tag == 0x52009230u:
        return NTAGS - 1
    while lo <= hi:
        mid = (lo + hi) >> 1
        if TAGS[mid] == tag:
            return mid
        if TAGS[mid] < tag:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1

# ---------------------------------------------------------------------------------------------
# value decoding (nogil)

cdef inline bint is_pad(uint8_t c) noexcept nogil:
    return c == 32 or c == 0

cdef inline bint is_space(uint8_t c) noexcept nogil:
    """Whether ``c`` is a byte Python's ``str.strip()`` strips from latin-1 text: space,
    \\t \\n \\v \\f \\r, the separators 0x1C-0x1F, NEL (0x85) and NBSP (0xA0)."""
    return c == 32 or 9 <= c <= 13 or 28 <= c <= 31 or c == 0x85 or c == 0xA0

cdef inline void strip_ui(const uint8_t* p, int64_t* a, int64_t* b) noexcept nogil:
    """The bounds of a UI value as the Dataset (and pydicom's UID()) reads it: trailing spaces
    and NULs off, then surrounding whitespace (``str.strip()`` of the latin-1 text)."""
    while b[0] > a[0] and is_pad(p[b[0] - 1]):
        b[0] -= 1
    while b[0] > a[0] and is_space(p[b[0] - 1]):
        b[0] -= 1
    while a[0] < b[0] and is_space(p[a[0]]):
        a[0] += 1

cdef int parse_number(const uint8_t* p, int64_t n, double* out) noexcept nogil:
    """Strict decimal (what both Python's float() and strtod read the same way, correctly
    rounded).  Surrounding spaces allowed.  1 ok, 0 empty, -1 anything else."""
    cdef int64_t a = 0, b = n, i
    cdef char tmp[72]
    cdef char* end
    cdef int digits = 0, edigits = 0
    cdef bint dot = False, exp = False
    while a < b and (p[a] == 32 or p[a] == 0):
        a += 1
    while b > a and (p[b - 1] == 32 or p[b - 1] == 0):
        b -= 1
    if a == b:
        return 0
    if b - a > 64:
        return -1
    i = a
    if p[i] == 43 or p[i] == 45:
        i += 1
    while i < b:
        if 48 <= p[i] <= 57:
            if exp:
                edigits += 1
            else:
                digits += 1
        elif p[i] == 46 and not dot and not exp:
            dot = True
        elif (p[i] == 101 or p[i] == 69) and not exp and digits > 0:
            exp = True
            if i + 1 < b and (p[i + 1] == 43 or p[i + 1] == 45):
                i += 1
        else:
            return -1
        i += 1
    if digits == 0 or (exp and edigits == 0):
        return -1
    memcpy(tmp, p + a, b - a)
    tmp[b - a] = 0
    out[0] = strtod(tmp, &end)
    if end != tmp + (b - a):
        return -1
    return 1

cdef inline bint is_uid_field(int field) noexcept nogil:
    return field == S_SOP_CLASS or field == S_SOP or field == S_STUDY or field == S_SERIES \
        or field == S_FOR or field == S_TS

cdef int put_string(Out* o, int field, const uint8_t* p, int64_t n) noexcept nogil:
    """Store the value stripped of spaces and NULs at both ends (latin-1 decoded later); a
    UID as the Dataset reads it (:func:`strip_ui`)."""
    cdef int64_t a = 0, b = n
    if is_uid_field(field):
        strip_ui(p, &a, &b)
    else:
        while a < b and is_pad(p[a]):
            a += 1
        while b > a and is_pad(p[b - 1]):
            b -= 1
    if o.pool_used + (b - a) > POOL:
        return -1
    memcpy(o.pool + o.pool_used, p + a, b - a)
    o.soff[field] = o.pool_used
    o.slen[field] = <int32_t>(b - a)
    o.pool_used += <int32_t>(b - a)
    return 0

cdef int decode_value(Out* o, int j, const uint8_t* p, int64_t n) noexcept nogil:
    """0 ok, -1 fallback."""
    cdef int kind = KIND[j], field = FIELD[j], r, count, k
    cdef int64_t i, start, a, b
    cdef double v
    cdef double vals[6]
    cdef bint bad
    if kind == K_STR:
        if put_string(o, field, p, n) != 0:
            return -1
        if field == S_DESCRIPTION:
            # decoded with the character set by the general path; only plain ASCII here
            for i in range(o.slen[field]):
                if not (32 <= <uint8_t>o.pool[o.soff[field] + i] <= 126):
                    return -1
        return 0
    if kind == K_US:
        if n >= 2:
            o.ival[field] = rd16(p, True)
        return 0
    if kind == K_FD:
        if n >= 8:
            memcpy(&v, p, 8)    # little endian host and file (x86-64/aarch64)
            if isfinite(v):
                o.fval[field] = v
        return 0
    if kind == K_FG:
        return -1
    if kind == K_IS or kind == K_DS:
        # first value of a multi-valued string
        i = 0
        while i < n and p[i] != 92:
            i += 1
        r = parse_number(p, i, &v)
        if r < 0:
            return -1
        if r == 0:
            return 0
        if not isfinite(v):
            return -1
        if kind == K_IS:
            if v > 9.0e15 or v < -9.0e15:
                return -1
            o.ival[field] = <int64_t>v      # truncation toward zero, as int(float(s))
        else:
            o.fval[field] = v
        return 0
    # K_VEC: the whole value stripped, split on backslashes, exactly VLEN values, all finite
    a = 0
    b = n
    while a < b and is_pad(p[a]):
        a += 1
    while b > a and is_pad(p[b - 1]):
        b -= 1
    count = 0
    bad = False
    start = a
    i = a
    while i <= b:
        if i == b or p[i] == 92:
            if count >= VLEN[j]:
                bad = True
                break
            # float() strips surrounding whitespace; only spaces are accepted here
            r = parse_number(p + start, i - start, &vals[count])
            if r < 0:
                # could be something Python's float() accepts (e.g. "1_0", "inf"): fallback
                return -1
            if r == 0 or not isfinite(vals[count]):
                bad = True
                break
            count += 1
            start = i + 1
        i += 1
    if not bad and count == VLEN[j]:
        for k in range(count):
            o.fval[field + k] = vals[k]
        if field == F_POS:
            o.vec_ok[V_POS] = 1
        elif field == F_ORI:
            o.vec_ok[V_ORI] = 1
        else:
            o.vec_ok[V_SPC] = 1
    return 0

# ---------------------------------------------------------------------------------------------
# one file

cdef int scan_one(const char* path, Py_ssize_t plen, DirCache* dc, Src* s, Out* o) noexcept nogil:
    cdef stat_t sb
    cdef const uint8_t* p
    cdef int64_t pos, hdr, ts_len = 0, ts_start
    cdef uint32_t tag, length, last = 0
    cdef uint16_t vr
    cdef bint explicit
    cdef int j, k, result
    cdef char ts[72]
    for k in range(NI):
        o.ival[k] = INT64_MIN
    for k in range(NF):
        o.fval[k] = NAN
    for k in range(NV):
        o.vec_ok[k] = 0
    for k in range(NS):
        o.soff[k] = 0
        o.slen[k] = -1
    o.pool_used = 0
    o.little = 1
    o.pixel_tag = 0
    o.pixel_offset = -1
    o.pixel_length = 0
    o.size = -1
    if path == NULL:
        return ST_FALLBACK
    s.fd = open_file(dc, path, plen)
    if s.fd < 0:
        return ST_FALLBACK
    s.base = 0
    s.have = 0
    result = ST_FALLBACK
    if fstat(s.fd, &sb) != 0 or (sb.st_mode & 0o170000) != 0o100000:
        close(s.fd)
        return ST_FALLBACK
    s.size = sb.st_size
    o.size = sb.st_size
    while True:     # one pass; "break" = fallback
        p = need(s, 128, 4)
        if p == NULL or memcmp(p, b"DICM", 4) != 0:
            break
        # file meta information: explicit VR little endian, group 0002
        pos = 132
        while True:
            p = need(s, pos, 8)
            if p == NULL:
                break
            if rd16(p, True) != 0x0002:
                break
            if elem_header(s, pos, True, &tag, &vr, &length, &hdr) != 0 or length == UNDEF \
                    or sq_value(s, pos + hdr, tag, vr, length, s.size, True, True, 1,
                                s.max_depth) != 0:
                p = NULL
                break
            if tag == 0x00020010u:
                if length > 64:
                    p = NULL
                    break
                p = need(s, pos + hdr, length)
                if p == NULL:
                    break
                # the UID as the general path reads it (surrounding whitespace too)
                ts_start = 0
                ts_len = length
                strip_ui(p, &ts_start, &ts_len)
                ts_len -= ts_start
                memcpy(ts, p + ts_start, ts_len)
            pos += hdr + length
        if p == NULL:
            break
        if ts_len == 17 and memcmp(ts, b"1.2.840.10008.1.2", 17) == 0:
            explicit = False
        elif ts_len == 19 and memcmp(ts, b"1.2.840.10008.1.2.1", 19) == 0:
            explicit = True
        else:
            break
        if put_string(o, S_TS, <const uint8_t*>ts, ts_len) != 0:
            break
        # the body's first element must agree with the transfer syntax's VR encoding (the
        # general reader, like pydicom, follows the bytes when they disagree)
        if pos + 6 <= s.size:
            p = need(s, pos, 6)
            if p == NULL:
                break
            if (is_upper(p[4]) and is_upper(p[5])) != explicit and rd16(p, True) != 0xFFFEu:
                break
        # the data set, root level
        while True:
            if pos >= s.size:
                result = ST_NOIMAGE
                break
            if elem_header(s, pos, explicit, &tag, &vr, &length, &hdr) != 0:
                break
            if tag <= last:
                break       # out of order (a damaged tag): the general path reads it whole
            last = tag
            if tag == 0x7FE00010u or tag == 0x7FE00008u or tag == 0x7FE00009u:
                o.pixel_tag = tag
                o.pixel_offset = pos + hdr
                o.pixel_length = length
                result = ST_FAST if length != UNDEF and tag == 0x7FE00010u else ST_FALLBACK
                break
            if (tag >> 16) == 0xFFFEu:
                break
            if tag > 0x7FE00010u:
                # no image if this is the last element (padding, a signature); anything
                # after it means a damaged tag ahead of the rest, and a value past the end
                # of the file may hide anything: the general path judges
                if length != UNDEF and pos + hdr + <int64_t>length == s.size:
                    result = ST_NOIMAGE
                break
            pos += hdr
            if length != UNDEF and <int64_t>length > s.size - pos:
                break           # past the end of the file: the general reader judges
            if length != UNDEF and sq_value(s, pos, tag, vr, length, s.size, explicit, True, 1,
                                            s.max_depth) != 0:
                break           # a sequence the general reader would refuse or read otherwise
            j = find_tag(tag)
            if j >= 0:
                if length == UNDEF or length > MAX_VALUE:
                    break           # functional groups, or absurd: the general path judges
                if vr != 0 and vr != VR_UN and VRX[j] != 0 and vr != VRX[j]:
                    break           # another VR than the dictionary's (Rows as IS text, a
                                    # UID as LO...): the general path reads it with that VR
                else:
                    p = need(s, pos, length)
                    if p == NULL:
                        break
                    if decode_value(o, j, p, length) != 0:
                        break
            if length == UNDEF:
                if explicit and vr != VR_SQ:
                    break
                if sq_items(s, pos, -1, s.size, explicit, True, 1, s.max_depth, &pos) != 0:
                    break
            else:
                pos += length
        break
    close(s.fd)
    return result


cdef object _text(Out* o, int field):
    if o.slen[field] < 0:
        return ""
    return (<char*>o.pool)[o.soff[field]:o.soff[field] + o.slen[field]].decode("latin-1")


cdef object _int(Out* o, int field):
    return None if o.ival[field] == INT64_MIN else o.ival[field]


cdef object _flt(Out* o, int field):
    return None if o.fval[field] != o.fval[field] else o.fval[field]


def scan_headers(list paths, cls, bint objects=True, int max_depth=MAX_DEPTH):
    """Header-scan ``paths`` (str); returns a list with, per path, an instance of ``cls``
    (attributes set through its ``__dict__``), None (a DICOM file with no Pixel Data) or
    False (use the general path).  ``objects=False`` returns only the per-file status codes
    (0 fast, 1 general path, 2 no image), for timing the nogil part.  Sequences nested
    deeper than ``max_depth`` (at most 32 here) leave the file to the general path."""
    cdef Py_ssize_t n = len(paths), i
    cdef list encoded = []
    cdef const char** cpaths = <const char**>malloc(max(n, 1) * sizeof(char*))
    cdef Py_ssize_t* lens = <Py_ssize_t*>malloc(max(n, 1) * sizeof(Py_ssize_t))
    cdef DirCache dc
    cdef Out* outs = <Out*>malloc(max(n, 1) * sizeof(Out))
    cdef Src src
    cdef Out* o
    cdef list result = []
    cdef dict d
    cdef object h, slope, icpt, it, bs, pos, ori, spc, path, nf
    dc.fd = -1
    dc.len = -1
    dc.dir = NULL
    src.buf = <uint8_t*>malloc(WINDOW)
    src.cap = WINDOW
    src.max_depth = max_depth if 0 < max_depth < MAX_DEPTH else MAX_DEPTH
    if cpaths == NULL or outs == NULL or lens == NULL or src.buf == NULL:
        free(cpaths)
        free(outs)
        free(lens)
        free(src.buf)
        raise MemoryError()
    try:
        for i in range(n):
            b = (<str?>paths[i]).encode("utf-8", "surrogateescape")
            encoded.append(b)
            cpaths[i] = NULL if b"\0" in b else PyBytes_AS_STRING(b)
            lens[i] = PyBytes_GET_SIZE(b)
        with nogil:
            for i in range(n):
                outs[i].status = scan_one(cpaths[i], lens[i], &dc, &src, &outs[i])
            close_dir(&dc)
        if not objects:
            return [outs[i].status for i in range(n)]
        new = object.__new__
        for i in range(n):
            o = &outs[i]
            if o.status == ST_NOIMAGE:
                result.append(None)
                continue
            if o.status != ST_FAST:
                result.append(False)
                continue
            path = paths[i]
            slope = _flt(o, F_SLOPE)
            icpt = _flt(o, F_INTERCEPT)
            it = _text(o, S_IMAGE_TYPE)
            bs = _int(o, I_BITS_STORED)
            ba = _int(o, I_BITS_ALLOC) or 0
            nf = _int(o, I_NFRAMES)
            pos = (o.fval[F_POS], o.fval[F_POS + 1], o.fval[F_POS + 2]) if o.vec_ok[V_POS] \
                else None
            ori = (o.fval[F_ORI], o.fval[F_ORI + 1], o.fval[F_ORI + 2], o.fval[F_ORI + 3],
                   o.fval[F_ORI + 4], o.fval[F_ORI + 5]) if o.vec_ok[V_ORI] else None
            spc = (o.fval[F_SPC], o.fval[F_SPC + 1]) if o.vec_ok[V_SPC] else None
            d = {
                "path": path,
                "study_uid": _text(o, S_STUDY),
                "series_uid": _text(o, S_SERIES),
                "sop_uid": _text(o, S_SOP),
                "sop_class": _text(o, S_SOP_CLASS),
                "modality": _text(o, S_MODALITY),
                "description": _text(o, S_DESCRIPTION),
                "series_number": _int(o, I_SERIES_NUMBER),
                "frame_of_reference": _text(o, S_FOR),
                "rows": _int(o, I_ROWS) or 0,
                "columns": _int(o, I_COLS) or 0,
                "samples": _int(o, I_SAMPLES) or 1,
                "bits_allocated": ba,
                "bits_stored": bs or ba,
                "pixel_representation": _int(o, I_PIXREP) or 0,
                "photometric": _text(o, S_PHOTOMETRIC),
                "planar_configuration": _int(o, I_PLANAR) or 0,
                "n_frames": max(1, nf or 1),
                "position": pos,
                "orientation": ori,
                "spacing": spc,
                "slice_thickness": _flt(o, F_THICK),
                "spacing_between_slices": _flt(o, F_SBS),
                "instance_number": _int(o, I_INSTANCE),
                "acquisition_number": _int(o, I_ACQUISITION),
                "echo_number": _int(o, I_ECHO_NUMBER),
                "echo_time": _flt(o, F_ECHO_TIME),
                "temporal_position": _int(o, I_TEMPORAL),
                "trigger_time": _flt(o, F_TRIGGER),
                "b_value": _flt(o, F_BVALUE),
                "image_type": tuple(it.split("\\")) if it else (),
                "slope": slope if slope is not None else 1.0,
                "intercept": icpt if icpt is not None else 0.0,
                "has_rescale": slope is not None or icpt is not None,
                "transfer_syntax": _text(o, S_TS),
                "little_endian": True,
                "pixel_tag": o.pixel_tag,
                "pixel_offset": o.pixel_offset,
                "pixel_length": o.pixel_length,
                "encapsulated": False,
                "file_size": o.size,
                "frames": None,
            }
            h = new(cls)
            h.__dict__ = d
            result.append(h)
    finally:
        free(src.buf)
        free(cpaths)
        free(lens)
        free(outs)
    return result


# ---------------------------------------------------------------------------------------------
# pixel reads

cdef struct ReadState:
    bint try_nowait     # probe the page cache first (until a miss or no support)
    bint cold           # a miss was seen: prefetch ahead from now on

cdef int64_t read_one(const char* path, Py_ssize_t plen, DirCache* dc, uint8_t* dst,
                      int64_t nbytes, int64_t offset, int64_t expect_size, int itemsize,
                      int shift, bint is_signed, ReadState* st, bint* missed) noexcept nogil:
    """Bytes read (>= 0), -1 size changed, or -(1000 + errno).  With ``st.try_nowait`` the
    read first takes only what is in the page cache; on a miss it sets ``missed`` and
    returns -2 with the file left unread (the caller starts prefetching, then calls again)."""
    cdef int fd = open_file(dc, path, plen)
    cdef stat_t sb
    cdef int64_t got = 0, k, m
    cdef ssize_t r
    cdef int err
    cdef int16_t* p16
    cdef int32_t* p32
    cdef int8_t* p8
    if fd < 0:
        return -(1000 + errno)
    if fstat(fd, &sb) != 0:
        err = errno
        close(fd)
        return -(1000 + err)
    if expect_size >= 0 and sb.st_size != expect_size:
        close(fd)
        return -1
    if st.try_nowait and nbytes > 0:
        r = fd_pread_nowait(fd, dst, <size_t>nbytes, <long>offset)
        if r != nbytes:
            if r < 0 and errno != EAGAIN:
                st.try_nowait = False       # not supported here: plain reads
            elif r >= 0 and offset + r >= sb.st_size:
                pass                        # end of file: reported below as a short read
            else:
                close(fd)
                missed[0] = True
                return -2
        got = r if r > 0 else 0
    if got < nbytes:
        err = pread_full(fd, dst + got, nbytes - got, offset + got, &m)
        got += m
        if err:
            close(fd)
            return -(1000 + err)
    close(fd)
    if shift > 0 and got == nbytes and not is_signed:
        # unsigned: the bits above High Bit are not part of the sample
        if itemsize == 2:
            p16 = <int16_t*>dst
            m = nbytes // 2
            for k in range(m):
                p16[k] = <int16_t>((<uint16_t>p16[k]) & (<uint16_t>0xFFFF >> shift))
        elif itemsize == 4:
            p32 = <int32_t*>dst
            m = nbytes // 4
            for k in range(m):
                p32[k] = <int32_t>((<uint32_t>p32[k]) & (<uint32_t>0xFFFFFFFF >> shift))
        elif itemsize == 1:
            p8 = <int8_t*>dst
            for k in range(nbytes):
                p8[k] = <int8_t>((<uint8_t>p8[k]) & (<uint8_t>0xFF >> shift))
    elif shift > 0 and got == nbytes:
        if itemsize == 2:
            p16 = <int16_t*>dst
            m = nbytes // 2
            for k in range(m):
                p16[k] = <int16_t>(<int16_t>(<uint16_t>p16[k] << shift) >> shift)
        elif itemsize == 4:
            p32 = <int32_t*>dst
            m = nbytes // 4
            for k in range(m):
                p32[k] = <int32_t>(<int32_t>(<uint32_t>p32[k] << shift) >> shift)
        elif itemsize == 1:
            p8 = <int8_t*>dst
            for k in range(nbytes):
                p8[k] = <int8_t>(<int8_t>(<uint8_t>p8[k] << shift) >> shift)
    return got


cdef void prefetch(const char* path, Py_ssize_t plen, DirCache* dc, int64_t offset,
                   int64_t nbytes) noexcept nogil:
    cdef int fd = open_file(dc, path, plen)
    if fd >= 0:
        fd_willneed(fd, <long>offset, <long>nbytes)
        close(fd)


def read_slices(list paths, const int64_t[::1] offsets, const int64_t[::1] sizes,
                uint8_t[:, ::1] dest, Py_ssize_t start, Py_ssize_t stop,
                int64_t[::1] result, int itemsize=1, int shift=0, bint prefetch_on_miss=True,
                bint signed=True):
    """For k in [start, stop): read ``dest.shape[1]`` bytes of ``paths[k]`` (bytes) at
    ``offsets[k]`` into ``dest[k]`` (nogil), checking the file size against ``sizes[k]``
    (-1: unchecked) and sign-extending ``itemsize``-byte samples by ``shift`` bits (with
    ``signed=False``: clearing their top ``shift`` bits).
    ``result[k]`` = bytes read, -1 when the size differs, -(1000 + errno) on an OS error."""
    cdef Py_ssize_t n = len(paths), k
    cdef int64_t nbytes = dest.shape[1]
    if stop > n or stop > dest.shape[0] or stop > offsets.shape[0] or \
            stop > sizes.shape[0] or stop > result.shape[0] or start < 0:
        raise ValueError("read_slices: index out of range")
    if itemsize not in (1, 2, 4) or shift < 0 or shift >= itemsize * 8:
        raise ValueError("read_slices: bad itemsize/shift")
    if nbytes % itemsize:
        raise ValueError("read_slices: row size not a multiple of the item size")
    cdef const char** cpaths = <const char**>malloc(max(stop - start, 1) * sizeof(char*))
    cdef Py_ssize_t* lens = <Py_ssize_t*>malloc(max(stop - start, 1) * sizeof(Py_ssize_t))
    cdef DirCache dc
    cdef ReadState st
    cdef Py_ssize_t depth, ahead
    cdef int64_t r
    cdef bint missed
    dc.fd = -1
    dc.len = -1
    dc.dir = NULL
    if cpaths == NULL or lens == NULL:
        free(cpaths)
        free(lens)
        raise MemoryError()
    try:
        for k in range(start, stop):
            b = <bytes?>paths[k]
            if b"\0" in b:
                raise ValueError("embedded null byte in a path")
            cpaths[k - start] = PyBytes_AS_STRING(b)
            lens[k - start] = PyBytes_GET_SIZE(b)
        if nbytes == 0:
            return
        # Warm page cache: each file is read once, straight into its row.  On the first
        # cache miss, the kernel is asked to read the next files in the background
        # (posix_fadvise WILLNEED, a window of about PREFETCH_BYTES ahead) so that the disk
        # sees a deep queue instead of one synchronous request at a time.
        depth = PREFETCH_BYTES // nbytes
        if depth < 2:
            depth = 2
        if depth > 512:
            depth = 512
        st.try_nowait = prefetch_on_miss
        st.cold = False
        ahead = start
        with nogil:
            for k in range(start, stop):
                if st.cold:
                    while ahead < stop and ahead <= k + depth:
                        if ahead > k:
                            prefetch(cpaths[ahead - start], lens[ahead - start], &dc,
                                     offsets[ahead], nbytes)
                        ahead += 1
                missed = False
                r = read_one(cpaths[k - start], lens[k - start], &dc, &dest[k, 0],
                             nbytes, offsets[k], sizes[k], itemsize, shift, signed, &st, &missed)
                if missed:
                    st.cold = True
                    st.try_nowait = False
                    ahead = k + 1
                    while ahead < stop and ahead <= k + depth:
                        prefetch(cpaths[ahead - start], lens[ahead - start], &dc,
                                 offsets[ahead], nbytes)
                        ahead += 1
                    r = read_one(cpaths[k - start], lens[k - start], &dc, &dest[k, 0],
                                 nbytes, offsets[k], sizes[k], itemsize, shift, signed, &st, &missed)
                result[k] = r
            close_dir(&dc)
    finally:
        free(cpaths)
        free(lens)
