# cython: language_level=3
"""The element scanner: walks a DICOM data set in a buffer without copying and without the GIL.

``scan()`` produces an :class:`ElementIndex`: a flat array of entries (tag, VR, value offset,
value length, parent, depth, next sibling) covering the whole data set, nested sequences and
items of defined and undefined length, and encapsulated pixel data fragments.  The hot loop
returns a status code; :func:`fastdicom.errors.status_error` turns it into an exception.

Every length read from the data is checked against the bytes that remain before it is used
(as ``length > end - pos``, never ``pos + length > end``), nesting depth is bounded and every
loop iteration consumes at least 8 bytes, so no input can make it read out of bounds or loop
forever.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int16_t, int32_t, int64_t, uint64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memcmp
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.buffer cimport (PyBUF_WRITABLE, PyBUF_C_CONTIGUOUS, PyObject_GetBuffer,
                             PyBuffer_Release)
from cpython.unicode cimport PyUnicode_DecodeLatin1
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.float cimport PyFloat_AsDouble, PyFloat_FromString

cdef extern from "Python.h":
    ctypedef struct PyFloatObject:
        double ob_fval
    ctypedef struct PyMemberDef:
        const char* name
        int type
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    PyObject* PyType_GenericAlloc(PyTypeObject* t, Py_ssize_t n)

cdef extern from "structmember.h":
    int T_OBJECT_EX
from fastdicom._cursor cimport (rd16, rd32, rdtag, is_upper, is_long_vr, is_known_vr,
                                     pread_full, pread,
                                     open_regular, c_path,
                                     close, c_open, c_openat, fstat, stat_t, timespec_t,
                                     O_RDONLY, O_CLOEXEC, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY)

import numpy as np

include "_dict_sq.pxi"

cdef extern from "<sys/mman.h>" nogil:
    void* mmap(void* addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void* addr, size_t length)
    int madvise(void* addr, size_t length, int advice)
    int PROT_READ
    int MAP_SHARED
    int MADV_WILLNEED
    int MADV_SEQUENTIAL
    int MADV_RANDOM
    void* MAP_FAILED

from libc.errno cimport errno, EINTR

cdef extern from "<sys/uio.h>" nogil:
    cdef struct iovec:
        void* iov_base
        size_t iov_len
    ssize_t preadv(int fd, const iovec* iov, int iovcnt, long offset)


# ---------------------------------------------------------------------------------------------
# Byte readers

cdef inline uint16_t VRC(char a, char b) noexcept nogil:
    return <uint16_t>((<uint16_t><uint8_t>a << 8) | <uint8_t>b)

cdef uint16_t VR_SQ = VRC(b'S', b'Q')
cdef uint16_t VR_UN = VRC(b'U', b'N')
cdef uint16_t VR_OB = VRC(b'O', b'B')
cdef uint16_t VR_OW = VRC(b'O', b'W')

cdef inline bint is_long_vr_code(uint16_t vr) noexcept nogil:
    return is_long_vr(vr >> 8, vr & 0xFF)



cdef enum:
    K_ROOT = 0
    K_SEQ = 1
    K_ITEM = 2

cdef uint32_t UNDEF = 0xFFFFFFFFu
cdef uint32_t TAG_ITEM = 0xFFFEE000u
cdef uint32_t TAG_ITEM_DELIM = 0xFFFEE00Du
cdef uint32_t TAG_SEQ_DELIM = 0xFFFEE0DDu
cdef uint32_t TAG_PIXEL_DATA = 0x7FE00010u

cdef struct Frame:
    int kind
    int32_t entry
    int64_t end          # -1 when undefined length
    bint explicit
    bint little

cdef struct ScanState:
    Entry* entries
    int32_t n
    int32_t cap
    int32_t max_elements
    int64_t err_offset
    uint32_t err_tag
    int64_t stop_offset
    int64_t trailing
    int32_t n_clipped
    int32_t n_vr_retries
    int32_t n_odd
    int64_t vsize        # > 0: buf holds only the first bytes of data of this size
    int64_t virtual_end  # end of a root pixel element whose value lies past the buffer
    uint32_t root_last   # the last top-level tag so far
    bint root_unsorted   # a top-level tag came after a larger one


cdef inline int32_t add_entry(ScanState* st, uint32_t tag, uint16_t vr, uint16_t flags,
                              int64_t hdr, int64_t voff, int64_t length,
                              int32_t parent, int32_t depth) noexcept nogil:
    cdef Entry* grown
    cdef int32_t newcap
    if st.n >= st.max_elements:
        return -1
    if st.n >= st.cap:
        newcap = st.cap * 2 if st.cap else 64
        grown = <Entry*>realloc(st.entries, newcap * sizeof(Entry))
        if grown == NULL:
            return -2
        st.entries = grown
        st.cap = newcap
    cdef Entry* e = &st.entries[st.n]
    e.tag = tag
    e.vr = vr
    e.flags = flags
    e.header_offset = hdr
    e.value_offset = voff
    e.length = length
    e.parent = parent
    e.depth = depth
    e.next = st.n + 1
    e._pad = 0
    if parent < 0:
        if tag < st.root_last:
            st.root_unsorted = True
        st.root_last = tag
    st.n += 1
    return st.n - 1


cdef inline int fail(ScanState* st, int status, int64_t offset, uint32_t tag) noexcept nogil:
    st.err_offset = offset
    st.err_tag = tag
    return status


cdef int scan_fragments(ScanState* st, const uint8_t* buf, int64_t pos, int64_t end,
                        int32_t parent, int32_t depth, int64_t* out_pos, bint clip) noexcept nogil:
    """Walk the 8-byte item headers of encapsulated pixel data up to its sequence delimiter."""
    cdef uint32_t tag, length
    cdef int32_t idx
    while True:
        if end - pos < 8:
            if clip:
                # the data ends inside the fragments (lenient): keep the fragments present
                st.n_clipped += 1
                st.err_offset = pos
                st.err_tag = TAG_PIXEL_DATA
                st.trailing = end - pos
                out_pos[0] = end + 8
                return ST_OK
            return fail(st, ST_EOF_IN_SEQUENCE, pos, TAG_PIXEL_DATA)
        tag = rdtag(buf + pos, True)
        length = rd32(buf + pos + 4, True)
        if tag == TAG_SEQ_DELIM:
            out_pos[0] = pos + 8
            return ST_OK
        if tag != TAG_ITEM:
            return fail(st, ST_BAD_FRAGMENT, pos, tag)
        if length == UNDEF:
            return fail(st, ST_BAD_FRAGMENT, pos, tag)
        if <int64_t>length > end - pos - 8:
            if not clip:
                return fail(st, ST_TRUNCATED, pos, tag)
            length = <uint32_t>(end - pos - 8)
            st.n_clipped += 1
            st.err_offset = pos
            st.err_tag = tag
        idx = add_entry(st, tag, 0, F_FRAGMENT | (F_ODD if length & 1 else 0), pos, pos + 8,
                        length, parent, depth)
        if idx < 0:
            return fail(st, ST_TOO_MANY if idx == -1 else ST_NO_MEMORY, pos, tag)
        pos += 8 + <int64_t>length


cdef int scan_core(ScanState* st, const uint8_t* buf, int64_t start, int64_t end,
                   bint explicit, bint little, uint32_t stop_tag, uint32_t stop_below,
                   bint stop_before_pixels,
                   int32_t max_depth, bint allow_clip, bint lenient_vr, bint as_sequence,
                   int64_t defer_sq_bytes) noexcept nogil:
    cdef Frame* stack = <Frame*>malloc((2 * <size_t>max_depth + 4) * sizeof(Frame))
    if stack == NULL:
        return ST_NO_MEMORY
    cdef int sp = 0
    cdef int status = ST_OK
    cdef int64_t pos = start, hdr_len, limit, vend
    cdef uint32_t tag, length
    cdef uint16_t vr, flags
    cdef int32_t idx, parent, depth
    cdef int k
    cdef Frame* top
    cdef bint ex, le
    # a frame past depth_cap opens a level deeper than max_depth.  A sequence value scanned
    # alone (as_sequence) has its sequence frame at 0, where a data set's top-level sequence
    # is at 1: its cap is one lower, so that max_depth counts the same levels of items
    cdef int64_t depth_cap = 2 * <int64_t>max_depth + 2 - (1 if as_sequence else 0)
    stack[0].kind = K_SEQ if as_sequence else K_ROOT
    stack[0].entry = -1
    stack[0].end = end
    stack[0].explicit = explicit
    stack[0].little = little
    st.stop_offset = -1
    try:
        while True:
            top = &stack[sp]
            # close defined-length containers that are complete
            if top.end >= 0 and pos >= top.end:
                if sp == 0:
                    break
                if top.entry >= 0:
                    st.entries[top.entry].next = st.n
                sp -= 1
                continue
            limit = top.end if top.end >= 0 else end
            ex = top.explicit
            le = top.little
            if limit - pos < 8:
                if sp == 0:
                    st.trailing = limit - pos
                    break
                if allow_clip and limit == end:
                    # the data ends inside open sequences/items: close them all (lenient);
                    # the error points at the innermost sequence left open (unless a value
                    # or item cut short by the end was reported already)
                    st.trailing = limit - pos
                    st.n_clipped += 1
                    if st.n_clipped == 1:
                        st.err_offset = pos
                        st.err_tag = 0
                    for k in range(sp, 0, -1):
                        if st.n_clipped > 1:
                            break
                        if stack[k].kind == K_SEQ and stack[k].entry >= 0:
                            st.err_offset = st.entries[stack[k].entry].header_offset
                            st.err_tag = st.entries[stack[k].entry].tag
                            break
                    while sp > 0:
                        idx = stack[sp].entry
                        if idx >= 0:
                            if stack[sp].end < 0:
                                st.entries[idx].length = pos - st.entries[idx].value_offset
                            st.entries[idx].flags |= F_CLIPPED
                            st.entries[idx].next = st.n
                        sp -= 1
                    break
                if top.end < 0:
                    return fail(st, ST_EOF_IN_SEQUENCE, pos, 0)
                return fail(st, ST_TRUNCATED, pos, 0)
            tag = rdtag(buf + pos, le)
            parent = top.entry
            depth = (sp + 1) // 2
            if top.kind == K_SEQ:
                length = rd32(buf + pos + 4, le)
                if tag == TAG_ITEM:
                    if sp + 1 >= depth_cap:
                        return fail(st, ST_TOO_DEEP, pos, tag)
                    idx = add_entry(st, tag, 0, F_ITEM | (F_UNDEFINED if length == UNDEF else 0),
                                    pos, pos + 8, 0 if length == UNDEF else length, parent, depth)
                    if idx < 0:
                        return fail(st, ST_TOO_MANY if idx == -1 else ST_NO_MEMORY, pos, tag)
                    if length != UNDEF and <int64_t>length > limit - pos - 8:
                        if limit != end:
                            # runs past its defined-length sequence, not past the data
                            return fail(st, ST_MALFORMED, pos, tag)
                        if not allow_clip:
                            return fail(st, ST_TRUNCATED, pos, tag)
                        length = <uint32_t>(limit - pos - 8)
                        st.entries[idx].length = length
                        st.entries[idx].flags |= F_CLIPPED
                        st.n_clipped += 1
                        st.err_offset = pos
                        st.err_tag = tag
                    sp += 1
                    stack[sp].kind = K_ITEM
                    stack[sp].entry = idx
                    stack[sp].end = -1 if length == UNDEF else pos + 8 + <int64_t>length
                    stack[sp].explicit = ex
                    stack[sp].little = le
                    pos += 8
                    # pydicom's rule: an item of an explicit VR data set may be encoded with
                    # implicit VR (PS3.5 6.2.2); decide from its first element's VR bytes
                    if ex and limit - pos >= 6 and rd16(buf + pos, le) != 0xFFFE:
                        if not (0x40 < buf[pos + 4] < 0x5B and 0x40 < buf[pos + 5] < 0x5B):
                            stack[sp].explicit = False
                    continue
                if tag == TAG_SEQ_DELIM:
                    idx = top.entry
                    if top.end < 0:
                        st.entries[idx].length = pos - st.entries[idx].value_offset
                        pos += 8
                    else:
                        # a delimiter inside a defined-length sequence: tolerated, skip the rest
                        pos = top.end
                    if idx >= 0:
                        st.entries[idx].next = st.n
                    sp -= 1
                    if sp < 0:
                        break
                    continue
                return fail(st, ST_WRONG_ITEM_TAG, pos, tag)
            if (tag >> 16) == 0xFFFE:
                if top.kind == K_ITEM and tag == TAG_ITEM_DELIM:
                    idx = top.entry
                    if top.end < 0:
                        st.entries[idx].length = pos - st.entries[idx].value_offset
                    st.entries[idx].next = st.n
                    sp -= 1
                    pos += 8
                    if top.end >= 0:
                        # a delimiter inside a defined-length item: tolerated, skip the rest
                        pos = top.end
                    continue
                return fail(st, ST_STRAY_DELIMITER, pos, tag)
            if sp == 0:
                if tag > stop_tag or tag < stop_below:
                    st.stop_offset = pos
                    break
                if stop_before_pixels and (tag == 0x7FE00010 or tag == 0x7FE00008 or tag == 0x7FE00009):
                    st.stop_offset = pos
                    break
            # element header
            flags = 0
            if ex:
                vr = VRC(<char>buf[pos + 4], <char>buf[pos + 5])
                if not is_known_vr(vr):
                    if not lenient_vr:
                        return fail(st, ST_BAD_VR, pos, tag)
                    # bounded retry: read this one element as implicit VR
                    st.n_vr_retries += 1
                    vr = 0
                    flags |= F_IMPLICIT
                    length = rd32(buf + pos + 4, le)
                    hdr_len = 8
                elif is_long_vr_code(vr):
                    if limit - pos < 12:
                        return fail(st, ST_TRUNCATED, pos, tag)
                    length = rd32(buf + pos + 8, le)
                    hdr_len = 12
                else:
                    length = rd16(buf + pos + 6, le)
                    hdr_len = 8
            else:
                flags |= F_IMPLICIT
                length = rd32(buf + pos + 4, le)
                hdr_len = 8
                vr = VR_SQ if dict_is_sq(tag) else 0
            if not le:
                flags |= F_BIG_ENDIAN
            if length == UNDEF:
                if tag == TAG_PIXEL_DATA and vr != VR_SQ:
                    idx = add_entry(st, tag, vr, flags | F_UNDEFINED | F_ENCAPSULATED, pos,
                                    pos + hdr_len, 0, parent, depth)
                    if idx < 0:
                        return fail(st, ST_TOO_MANY if idx == -1 else ST_NO_MEMORY, pos, tag)
                    status = scan_fragments(st, buf, pos + hdr_len, limit, idx, depth + 1, &vend,
                                            allow_clip and limit == end)
                    if status != ST_OK:
                        return status
                    if vend > limit:  # fragments cut short by the end of the data (lenient)
                        vend = limit
                        st.entries[idx].length = vend - (pos + hdr_len)
                        st.entries[idx].flags |= F_CLIPPED
                    else:
                        st.entries[idx].length = vend - 8 - (pos + hdr_len)
                    st.entries[idx].next = st.n
                    pos = vend
                    continue
                if vr == VR_SQ or vr == 0 or vr == VR_UN:
                    if sp + 1 >= depth_cap:
                        return fail(st, ST_TOO_DEEP, pos, tag)
                    if vr == VR_UN:
                        flags |= F_UN_SQ
                    elif vr == 0:
                        vr = VR_SQ
                    idx = add_entry(st, tag, vr, flags | F_UNDEFINED, pos, pos + hdr_len, 0,
                                    parent, depth)
                    if idx < 0:
                        return fail(st, ST_TOO_MANY if idx == -1 else ST_NO_MEMORY, pos, tag)
                    sp += 1
                    stack[sp].kind = K_SEQ
                    stack[sp].entry = idx
                    stack[sp].end = -1
                    # UN of undefined length holds a sequence; its items are usually implicit
                    # VR little endian, which the per-item check detects
                    stack[sp].explicit = ex
                    stack[sp].little = le
                    pos += hdr_len
                    continue
                return fail(st, ST_UNDEFINED_LENGTH, pos, tag)
            if length & 1:
                flags |= F_ODD
                st.n_odd += 1
            if <int64_t>length > limit - pos - hdr_len:
                if limit - pos < hdr_len:
                    return fail(st, ST_TRUNCATED, pos, tag)
                if limit != end:
                    # runs past its defined-length item, not past the data
                    return fail(st, ST_MALFORMED, pos, tag)
                if (sp == 0 and st.vsize > 0 and vr != VR_SQ and <int64_t>length <= st.vsize - pos - hdr_len
                        and (tag == 0x7FE00010 or tag == 0x7FE00008 or tag == 0x7FE00009)):
                    # a prefix of a file: the pixel value lies past the bytes read; index it
                    # whole and stop (its value is read from the file when asked for)
                    if vr == 0 or vr == VR_UN:
                        flags |= F_SQ_BLOB
                    idx = add_entry(st, tag, vr, flags, pos, pos + hdr_len, length, parent,
                                    depth)
                    if idx < 0:
                        return fail(st, ST_TOO_MANY if idx == -1 else ST_NO_MEMORY, pos, tag)
                    st.virtual_end = pos + hdr_len + <int64_t>length
                    break
                if not allow_clip:
                    return fail(st, ST_TRUNCATED, pos, tag)
                # the last element of the data set runs past the end: keep what is there
                flags |= F_CLIPPED
                st.n_clipped += 1
                length = <uint32_t>(limit - pos - hdr_len)
                st.err_offset = pos
                st.err_tag = tag
            if vr == VR_SQ and (flags & F_IMPLICIT) and length >= 8 and rdtag(buf + pos + hdr_len, le) != TAG_ITEM:
                # the dictionary says SQ but the value is not a list of items: keep it as an
                # unscanned value (decoded lazily, with pydicom's fallbacks)
                vr = 0
            if vr == VR_SQ and defer_sq_bytes > 0 and <int64_t>length >= defer_sq_bytes:
                # a large defined-length sequence (e.g. per-frame functional groups): index
                # it when it is first accessed (pydicom also reads these lazily)
                idx = add_entry(st, tag, vr, flags | F_SQ_BLOB, pos, pos + hdr_len, length,
                                parent, depth)
                if idx < 0:
                    return fail(st, ST_TOO_MANY if idx == -1 else ST_NO_MEMORY, pos, tag)
                pos += hdr_len + <int64_t>length
                continue
            if vr == VR_SQ:
                if sp + 1 >= depth_cap:
                    return fail(st, ST_TOO_DEEP, pos, tag)
                idx = add_entry(st, tag, vr, flags, pos, pos + hdr_len, length, parent, depth)
                if idx < 0:
                    return fail(st, ST_TOO_MANY if idx == -1 else ST_NO_MEMORY, pos, tag)
                sp += 1
                stack[sp].kind = K_SEQ
                stack[sp].entry = idx
                stack[sp].end = pos + hdr_len + <int64_t>length
                stack[sp].explicit = ex
                stack[sp].little = le
                pos += hdr_len
                continue
            if vr == 0 or vr == VR_UN:
                flags |= F_SQ_BLOB
            idx = add_entry(st, tag, vr, flags, pos, pos + hdr_len, length, parent, depth)
            if idx < 0:
                return fail(st, ST_TOO_MANY if idx == -1 else ST_NO_MEMORY, pos, tag)
            pos += hdr_len + <int64_t>length
        return ST_OK
    finally:
        free(stack)


cdef inline void trim_text(const uint8_t* p, int64_t n, int64_t* start, int64_t* stop) noexcept:
    """[start, stop) of a text value without leading spaces and trailing spaces/NULs."""
    cdef int64_t m = n, k = 0
    while m > 0 and (p[m - 1] == 32 or p[m - 1] == 0):
        m -= 1
    while k < m and p[k] == 32:
        k += 1
    start[0] = k
    stop[0] = m


cdef dict _VR_STR = {}

MISSING = object()
SLOW = object()
_MULTI = None
_DS = None
_IS = None
cdef Py_ssize_t _DS_SLOT = -1     # byte offset of DSfloat's original_string slot
cdef object _FLOAT_NEW = float.__new__
cdef object _INT_NEW = int.__new__


cdef object _number(object ctor, str item):
    """``ctor(item)`` for the DS and IS types (a float / int that keeps its text), built
    without running their Python ``__new__``; anything but a plain number is left to it."""
    cdef double x
    cdef PyObject* o
    if ctor is _DS and _DS_SLOT > 0:
        # DSfloat: the float parsed as float() parses it, the instance allocated and its
        # one slot (original_string) set directly -- the generic float.__new__ and
        # setattr cost most of a DS value's first read (a position is three of them)
        try:
            x = PyFloat_AsDouble(PyFloat_FromString(item))
        except ValueError:
            return ctor(item)
        o = PyType_GenericAlloc(<PyTypeObject*>_DS, 0)   # DSfloat's tp_alloc
        if o == NULL:
            raise MemoryError()
        v = <object>o
        Py_DECREF(v)             # tp_alloc's reference, now held by v
        (<PyFloatObject*>o).ob_fval = x
        Py_INCREF(item)
        (<PyObject**>(<char*>o + _DS_SLOT))[0] = <PyObject*>item
        return v
    try:
        v = (_FLOAT_NEW if ctor is _DS else _INT_NEW)(ctor, item)
    except ValueError:
        return ctor(item)      # e.g. IS "1.0": the type's own rules (or its ValueError)
    v.original_string = item
    return v


# Specific Character Set terms whose text decodes as latin-1 (the fast path's SH/LO), and
# whether a data set without the element does: given by fastdicom.dataset
cdef object _LATIN1_TERMS = frozenset()
cdef bint _LATIN1_DEFAULT = False


def _set_latin1_terms(terms, bint default):
    """Called once by fastdicom.dataset (see ``Dataset._charset``)."""
    global _LATIN1_TERMS, _LATIN1_DEFAULT
    _LATIN1_TERMS = frozenset(terms)
    _LATIN1_DEFAULT = default


def _set_value_types(multi, ds_type, is_type):
    """Called once by fastdicom.values: the list type for VM > 1 and the DS/IS types."""
    global _MULTI, _DS, _IS, _DS_SLOT
    _MULTI = multi
    _DS = ds_type
    _IS = is_type
    _DS_SLOT = -1
    # the DS type: a float subclass whose only slot is ``original_string`` (values.DSfloat)
    descr = ds_type.__dict__.get("original_string")
    if (type(descr).__name__ == "member_descriptor" and ds_type.__base__ is float
            and ds_type.__slots__ == ("original_string",) and ds_type.__flags__ & (1 << 9)
            and (<PyMemberDescrObject*>descr).d_member.type == T_OBJECT_EX):
        _DS_SLOT = (<PyMemberDescrObject*>descr).d_member.offset


cdef class ElementIndex:
    """The flat element index of one scanned data set (see module docstring)."""
    cdef Entry* entries
    cdef readonly int32_t count
    cdef readonly object buffer
    cdef const uint8_t[::1] view
    cdef readonly int64_t start
    cdef readonly int64_t end
    cdef readonly bint explicit
    cdef readonly bint little_endian
    cdef readonly int status
    cdef readonly int64_t error_offset
    cdef readonly uint32_t error_tag
    cdef readonly int64_t stop_offset
    cdef readonly int64_t trailing
    cdef readonly int32_t n_clipped
    cdef readonly int32_t n_vr_retries
    cdef readonly int32_t n_odd
    cdef readonly int64_t virtual_end
    cdef object full     # the whole file (a lazy MappedFile) when ``buffer`` is a prefix
    cdef int root_order  # top-level tags as the scan added them: 1 ascending, 2 not

    def __dealloc__(self):
        free(self.entries)
        self.entries = NULL

    def __len__(self):
        return self.count

    cpdef int32_t find(self, uint32_t tag, int32_t parent=-1):
        """Index of the child element ``tag`` of ``parent`` (-1 = root), or -1."""
        if parent < -1 or parent >= self.count:
            return -1
        cdef int32_t i = parent + 1
        cdef int32_t stop = self.count if parent < 0 else self.entries[parent].next
        cdef Entry* e
        if parent < 0 and self.root_order == 1:
            # the usual case (the scan noted that the top-level tags ascend): the first tag
            # past ``tag`` ends the search
            while i < stop:
                e = &self.entries[i]
                if e.tag >= tag:
                    return i if e.tag == tag else -1
                i = e.next
            return -1
        while i < stop:
            e = &self.entries[i]
            if e.tag == tag:
                return i
            if e.tag > tag and (e.tag >> 16) != 0x0002:
                # children are in ascending tag order in a conforming file; check the rest
                # only when they are not
                break
            i = e.next
        # fall back to a full walk (files with unsorted tags)
        i = parent + 1
        while i < stop:
            if self.entries[i].tag == tag:
                return i
            i = self.entries[i].next
        return -1

    def children(self, int32_t parent=-1):
        """Indices of the direct children of ``parent`` (-1 = root) in file order."""
        cdef list out = []
        if parent < -1 or parent >= self.count:
            raise IndexError(parent)
        cdef int32_t i = parent + 1
        cdef int32_t stop = self.count if parent < 0 else self.entries[parent].next
        while i < stop:
            out.append(i)
            i = self.entries[i].next
        return out

    def child_extents(self, int32_t parent):
        """``(header_offsets, lengths)``: two int64 arrays over the direct children of
        ``parent`` in file order (the fragment items of an encapsulated Pixel Data element:
        16 bytes each, not an entry or a Python object each)."""
        if parent < 0 or parent >= self.count:
            raise IndexError(parent)
        cdef int32_t stop = self.entries[parent].next, i
        cdef Py_ssize_t n = 0, k = 0
        if stop <= parent or stop > self.count:
            stop = self.count
        i = parent + 1
        while i < stop:
            n += 1
            if self.entries[i].next <= i:
                break
            i = self.entries[i].next
        hoffs = np.empty(n, dtype=np.int64)
        lengths = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] h = hoffs
        cdef int64_t[::1] ln = lengths
        i = parent + 1
        while i < stop and k < n:
            h[k] = self.entries[i].header_offset
            ln[k] = self.entries[i].length
            k += 1
            if self.entries[i].next <= i:
                break
            i = self.entries[i].next
        return hoffs, lengths

    def child_tags(self, int32_t parent=-1):
        cdef list out = []
        if parent < -1 or parent >= self.count:
            raise IndexError(parent)
        cdef int32_t i = parent + 1
        cdef int32_t stop = self.count if parent < 0 else self.entries[parent].next
        while i < stop:
            out.append(self.entries[i].tag)
            i = self.entries[i].next
        return out

    def info(self, int32_t i):
        """(tag, vr str or '', flags, value_offset, length, header_offset) of entry i."""
        if i < 0 or i >= self.count:
            raise IndexError(i)
        cdef Entry* e = &self.entries[i]
        vr = _VR_STR.get(e.vr)
        if vr is None:
            vr = chr(e.vr >> 8) + chr(e.vr & 0xFF) if e.vr else ''
            _VR_STR[e.vr] = vr
        return (e.tag, vr, e.flags, e.value_offset, e.length, e.header_offset)

    def vr_mismatches(self, const uint32_t[::1] tags, const uint16_t[::1] codes):
        """The tags of ``tags`` whose root-level element carries an explicit VR other than
        ``codes[k]`` (as stored: "US" is 0x5553; 0 accepts any) and other than UN."""
        if codes.shape[0] != tags.shape[0]:
            raise ValueError("tags and codes differ in length")
        cdef list out = []
        cdef Py_ssize_t k
        cdef int32_t i
        cdef uint16_t v
        for k in range(tags.shape[0]):
            i = self.find(tags[k], -1)
            if i < 0:
                continue
            v = self.entries[i].vr
            if v != 0 and v != 0x554E and codes[k] != 0 and v != codes[k]:
                out.append(tags[k])
        return out

    cpdef uint32_t tag(self, int32_t i):
        if i < 0 or i >= self.count:
            raise IndexError(i)
        return self.entries[i].tag

    cdef const uint8_t* _value_ptr(self, int32_t i, int64_t* n) except? NULL:
        """Pointer to the value of entry i and its length, checked against the buffer."""
        if i < 0 or i >= self.count:
            raise IndexError(i)
        cdef Entry* e = &self.entries[i]
        n[0] = e.length
        if self.full is not None and e.value_offset + n[0] > self.view.shape[0]:
            self._widen()
        if e.value_offset < 0 or e.value_offset > self.view.shape[0] or n[0] > self.view.shape[0] - e.value_offset:
            raise IndexError(i)
        if n[0] == 0:
            return NULL
        return &self.view[0] + e.value_offset

    cdef int _widen(self) except -1:
        """Switch from the prefix the index was scanned on to the whole file (maps it)."""
        full = self.full
        self.view = full
        self.buffer = full
        self.full = None
        return 0

    def attach_file(self, full):
        """Declare ``full`` (an object with the buffer protocol, e.g. a lazy MappedFile)
        as the whole data this index was scanned a prefix of; values past the prefix are
        read from it, which is touched only then."""
        if len(full) < self.view.shape[0]:
            raise ValueError("the whole data is shorter than the prefix")
        self.full = full

    def value(self, int32_t i):
        """The raw value bytes of entry i (a copy)."""
        cdef int64_t n
        cdef const uint8_t* p = self._value_ptr(i, &n)
        return PyBytes_FromStringAndSize(<const char*>p, n)

    def fast_value(self, uint32_t tag, int32_t parent, int latin1_text):
        """The decoded value of child ``tag`` of ``parent`` for the common simple cases, in C.

        Returns ``MISSING`` when there is no such element and ``SLOW`` when the general
        Python decoder must handle it (empty, implicit VR, odd, clipped, multi-byte charsets,
        PN, bytes VRs...).  Values equal what :func:`fastdicom.values.decode_value` gives.
        """
        cdef int32_t i = self.find(tag, parent)
        if i < 0:
            return MISSING
        cdef Entry* e = &self.entries[i]
        if e.vr == 0 or e.length <= 0 or (e.flags & (F_CLIPPED | F_ODD | F_SQ_BLOB | F_UN_SQ | F_ENCAPSULATED)):
            return SLOW
        cdef int64_t n = e.length
        if e.value_offset < 0 or e.value_offset > self.view.shape[0] or n > self.view.shape[0] - e.value_offset:
            return SLOW
        cdef const uint8_t* p = &self.view[0] + e.value_offset
        cdef bint le = not (e.flags & F_BIG_ENDIAN)
        cdef uint16_t vr = e.vr
        cdef int64_t k, size, m
        cdef str text
        cdef list parts
        cdef uint32_t u32
        cdef uint64_t u64
        cdef float f32
        cdef double f64
        if vr == VRC(b'U', b'I') or vr == VRC(b'C', b'S') or vr == VRC(b'D', b'A') or vr == VRC(b'T', b'M') or vr == VRC(b'D', b'T') or vr == VRC(b'A', b'S'):
            m = n
            while m > 0 and (p[m - 1] == 32 or p[m - 1] == 0):
                m -= 1
            text = PyUnicode_DecodeLatin1(<const char*>p, m, NULL)
            if vr == VRC(b'U', b'I'):   # each UID without surrounding whitespace (pydicom)
                if "\\" in text:
                    return _MULTI([t.strip() for t in text.split("\\")])
                return text.strip()
            if "\\" in text:
                return _MULTI(text.split("\\"))
            return text
        if vr == VRC(b'S', b'H') or vr == VRC(b'L', b'O'):
            if latin1_text != 1:  # 0: another charset; -1: not known yet
                return SLOW
            for k in range(n):
                if p[k] == 0x1B:
                    return SLOW
            text = PyUnicode_DecodeLatin1(<const char*>p, n, NULL)
            if "\\" in text:
                return _MULTI([t.rstrip("\x00 ") for t in text.split("\\")])
            return text.rstrip("\x00 ")
        if vr == VRC(b'U', b'S') or vr == VRC(b'S', b'S'):
            if vr == VRC(b'S', b'S') and (tag == 0x00283002 or 0x00281101 <= tag <= 0x00281103):
                return SLOW     # a LUT descriptor: its number of entries is unsigned
            size = 2
        elif vr == VRC(b'U', b'L') or vr == VRC(b'S', b'L') or vr == VRC(b'F', b'L'):
            size = 4
        elif vr == VRC(b'F', b'D'):
            size = 8
        elif vr == VRC(b'I', b'S') or vr == VRC(b'D', b'S'):
            text = PyUnicode_DecodeLatin1(<const char*>p, n, NULL)
            if vr == VRC(b'D', b'S'):
                text = text.strip(" \x00")
                ctor = _DS
            else:
                text = text.rstrip(" \x00")
                ctor = _IS
            parts = []
            try:
                for item in text.split("\\"):
                    item = item.strip(" \x00")
                    parts.append(_number(ctor, item) if item else "")
            except ValueError:
                return SLOW
            if len(parts) == 1:
                return parts[0]
            return _MULTI(parts)
        else:
            return SLOW
        if n % size:
            return SLOW
        parts = []
        k = 0
        while k < n:
            if size == 2:
                u32 = rd16(p + k, le)
                if vr == VRC(b'S', b'S'):
                    parts.append(<int16_t>u32)
                else:
                    parts.append(u32)
            elif size == 4:
                u32 = rd32(p + k, le)
                if vr == VRC(b'U', b'L'):
                    parts.append(u32)
                elif vr == VRC(b'S', b'L'):
                    parts.append(<int32_t>u32)
                else:
                    memcpy(&f32, &u32, 4)
                    parts.append(f32)
            else:
                u64 = (<uint64_t>rd32(p + k + (0 if le else 4), le)) | ((<uint64_t>rd32(p + k + (4 if le else 0), le)) << 32)
                memcpy(&f64, &u64, 8)
                parts.append(f64)
            k += size
        if len(parts) == 1:
            return parts[0]
        return _MULTI(parts)

    cdef const uint8_t* _plain(self, int32_t parent, uint32_t tag, uint16_t vr, int64_t* n,
                               int* state, bint* le) noexcept:
        """The value of a plain child element (its VR or implicit, not clipped/odd/nested,
        inside the scanned bytes): state 1 and a pointer; 0 when absent; -1 otherwise."""
        cdef int32_t i = self.find(tag, parent)
        cdef Entry* e
        if i < 0:
            state[0] = 0
            return NULL
        e = &self.entries[i]
        state[0] = -1
        if (e.vr != 0 and e.vr != vr) or e.length <= 0 or (e.flags & (
                F_CLIPPED | F_ODD | F_UN_SQ | F_ENCAPSULATED | F_UNDEFINED)):
            return NULL
        if e.value_offset < 0 or e.value_offset > self.view.shape[0] or e.length > self.view.shape[0] - e.value_offset:
            return NULL
        n[0] = e.length
        le[0] = not (e.flags & F_BIG_ENDIAN)
        state[0] = 1
        return &self.view[0] + e.value_offset

    cdef int _us(self, int32_t parent, uint32_t tag, int64_t dflt, int64_t* out) noexcept:
        """A single US value (default when absent); -1 when not plain."""
        cdef int64_t n = 0
        cdef int state
        cdef bint le = True
        cdef const uint8_t* p = self._plain(parent, tag, VRC(b'U', b'S'), &n, &state, &le)
        if state == 0:
            out[0] = dflt
            return 0
        if state < 0 or n != 2:
            return -1
        out[0] = rd16(p, le)
        return 0

    def pixel_module(self, int32_t parent=-1):
        """The Image Pixel module of item ``parent`` decoded in C, for the plain case:
        ``(tag, entry, vr, flags, value_offset, length, header_offset, rows, columns,
        bits_allocated, samples, bits_stored, representation, planar, photometric, frames,
        frames_given)`` with the defaults pydicom assumes for absent optional values, or None
        when anything is not plain (the general Python path then decides and reports)."""
        cdef int32_t pos = -1, i
        cdef int64_t k, j
        cdef uint32_t ptags[3]
        ptags[0] = 0x7FE00010
        ptags[1] = 0x7FE00008
        ptags[2] = 0x7FE00009
        for k in range(3):
            i = self.find(ptags[k], parent)
            if i >= 0:
                if pos >= 0:
                    return None
                pos = i
        if pos < 0:
            return None
        cdef int64_t rows, columns, bits, samples, stored, representation, planar
        if (self._us(parent, 0x00280010, -1, &rows) or rows < 0
                or self._us(parent, 0x00280011, -1, &columns) or columns < 0
                or self._us(parent, 0x00280100, -1, &bits) or bits < 0
                or self._us(parent, 0x00280002, 1, &samples)
                or self._us(parent, 0x00280101, bits, &stored)
                or self._us(parent, 0x00280103, 0, &representation)
                or self._us(parent, 0x00280006, 0, &planar)):
            return None
        cdef int64_t n = 0, m, frames = 1
        cdef int state
        cdef bint le = True
        cdef const uint8_t* p = self._plain(parent, 0x00280004, VRC(b'C', b'S'), &n, &state, &le)
        cdef str photometric = "MONOCHROME2"
        if state < 0:
            return None
        if state == 1:
            trim_text(p, n, &k, &m)
            if k == m:
                return None
            for j in range(k, m):
                if p[j] == 0x5C or p[j] < 0x20 or p[j] > 0x7E:
                    return None
            photometric = PyUnicode_DecodeLatin1(<const char*>p + k, m - k, NULL)
        p = self._plain(parent, 0x00280008, VRC(b'I', b'S'), &n, &state, &le)
        if state < 0:
            return None
        if state == 1:
            trim_text(p, n, &k, &m)
            if k == m or m - k > 9:
                return None
            frames = 0
            for j in range(k, m):
                if not (0x30 <= p[j] <= 0x39):
                    return None
                frames = frames * 10 + (p[j] - 0x30)
            if frames < 1:
                return None
        cdef Entry* e = &self.entries[pos]
        vr = _VR_STR.get(e.vr)
        if vr is None:
            vr = chr(e.vr >> 8) + chr(e.vr & 0xFF) if e.vr else ''
            _VR_STR[e.vr] = vr
        return (e.tag, pos, vr, e.flags, e.value_offset, e.length, e.header_offset, rows,
                columns, bits, samples, stored, representation, planar, photometric, frames,
                state == 1)

    def meta_summary(self):
        """(body_start, group_length, group_length_offset, meta_bytes_after_it, transfer_syntax)
        of a scanned file meta group (-1 / None where absent)."""
        cdef int64_t body = self.stop_offset if self.stop_offset >= 0 else self.end
        cdef int64_t declared = -1, gl_offset = -1, actual = 0
        cdef int32_t i = self.find(0x00020000, -1), nxt
        cdef Entry* e
        if i >= 0:
            e = &self.entries[i]
            if e.length == 4 and e.value_offset >= 0 and e.value_offset <= self.view.shape[0] - 4:
                declared = rd32(&self.view[0] + e.value_offset, True)
                gl_offset = e.header_offset
                nxt = e.next
                actual = body - self.entries[nxt].header_offset if nxt < self.count else 0
        ts = None
        i = self.find(0x00020010, -1)
        if i >= 0:
            ts = self.text(i).strip()
        return body, declared, gl_offset, actual, ts

    def text(self, int32_t i):
        """The value of entry i as a latin-1 str with trailing spaces and NULs removed."""
        cdef int64_t n
        cdef const uint8_t* p = self._value_ptr(i, &n)
        while n > 0 and (p[n - 1] == 32 or p[n - 1] == 0):
            n -= 1
        return PyUnicode_DecodeLatin1(<const char*>p, n, NULL)

    def value_view(self, int32_t i):
        """A zero-copy memoryview of the value of entry i."""
        if i < 0 or i >= self.count:
            raise IndexError(i)
        cdef Entry* e = &self.entries[i]
        if self.full is not None and e.value_offset + e.length > self.view.shape[0]:
            self._widen()
        return memoryview(self.buffer)[e.value_offset:e.value_offset + e.length]

    def parent(self, int32_t i):
        return self.entries[i].parent

    def next(self, int32_t i):
        return self.entries[i].next

    def depth(self, int32_t i):
        return self.entries[i].depth

    def to_numpy(self):
        """The entries as a numpy structured array (a copy)."""
        arr = np.empty(self.count, dtype=ENTRY_DTYPE)
        cdef uint8_t[::1] raw = arr.view(np.uint8)
        if self.count:
            memcpy(&raw[0], self.entries, self.count * sizeof(Entry))
        return arr


ENTRY_DTYPE = np.dtype([("tag", "<u4"), ("vr", "<u2"), ("flags", "<u2"),
                        ("header_offset", "<i8"), ("value_offset", "<i8"), ("length", "<i8"),
                        ("parent", "<i4"), ("depth", "<i4"), ("next", "<i4"), ("_pad", "<i4")])
assert ENTRY_DTYPE.itemsize == sizeof(Entry)


def scan(buffer, Py_ssize_t start=0, Py_ssize_t end=-1, *, bint explicit=True, uint32_t stop_below=0,
         bint little_endian=True, uint32_t stop_tag=0xFFFFFFFF, bint stop_before_pixels=False,
         int max_depth=64, int max_elements=10_000_000, bint allow_clip=True,
         bint lenient_vr=True, bint as_sequence=False, int64_t defer_sq_bytes=0,
         int64_t virtual_size=-1):
    """Scan ``buffer[start:end]`` (any object with the buffer protocol) into an ElementIndex.

    Never raises for bad data: the result's ``status`` (0 = OK) and ``error_offset`` /
    ``error_tag`` say what went wrong; :func:`fastdicom.errors.status_error` maps them.

    ``virtual_size`` > ``len(buffer)`` says the buffer holds only the first bytes of data of
    that size: a root-level pixel element whose defined-length value runs past the buffer but
    not past ``virtual_size`` is indexed whole and ends the scan (``virtual_end``); see
    :meth:`ElementIndex.attach_file`.
    """
    return _scan_c(buffer, start, end, explicit, stop_below, little_endian, stop_tag,
                   stop_before_pixels, max_depth, max_elements, allow_clip, lenient_vr,
                   as_sequence, defer_sq_bytes, virtual_size)


cdef ElementIndex _scan_c(object buffer, Py_ssize_t start, Py_ssize_t end, bint explicit,
                          uint32_t stop_below, bint little_endian, uint32_t stop_tag,
                          bint stop_before_pixels, int max_depth, int max_elements,
                          bint allow_clip, bint lenient_vr, bint as_sequence,
                          int64_t defer_sq_bytes, int64_t virtual_size):
    cdef const uint8_t[::1] view
    cdef ElementIndex idx = ElementIndex.__new__(ElementIndex)
    cdef ScanState st
    cdef int status
    if isinstance(buffer, memoryview) and not buffer.c_contiguous:
        raise ValueError("buffer must be contiguous")
    view = buffer if not isinstance(buffer, bytearray) else memoryview(buffer).toreadonly()
    cdef Py_ssize_t n = view.shape[0]
    if end < 0 or end > n:
        end = n
    if start < 0:
        start = 0
    if start > end:
        start = end
    if max_depth < 1:
        max_depth = 1
    st.entries = NULL
    st.n = 0
    st.cap = 0
    st.max_elements = max_elements
    st.err_offset = -1
    st.err_tag = 0
    st.stop_offset = -1
    st.trailing = 0
    st.n_clipped = 0
    st.n_vr_retries = 0
    st.n_odd = 0
    st.vsize = virtual_size if (virtual_size > n and end == n) else 0
    st.virtual_end = -1
    st.root_last = 0
    st.root_unsorted = False
    cdef const uint8_t* p = &view[0] if n > 0 else NULL
    with nogil:
        if n > 0:
            status = scan_core(&st, p, start, end, explicit, little_endian, stop_tag,
                               stop_below, stop_before_pixels, max_depth, allow_clip, lenient_vr, as_sequence,
                               defer_sq_bytes)
        else:
            status = ST_OK
    idx.entries = st.entries
    idx.count = st.n
    idx.buffer = buffer
    idx.view = view
    idx.start = start
    idx.end = end
    idx.explicit = explicit
    idx.little_endian = little_endian
    idx.status = status
    idx.error_offset = st.err_offset
    idx.error_tag = st.err_tag
    idx.stop_offset = st.stop_offset
    idx.trailing = st.trailing
    idx.n_clipped = st.n_clipped
    idx.n_vr_retries = st.n_vr_retries
    idx.n_odd = st.n_odd
    idx.virtual_end = st.virtual_end
    idx.root_order = 2 if st.root_unsorted else 1
    return idx


# (transfer syntax UID -> (explicit VR, little endian)) of the syntaxes read_header_prefix
# takes: known and not deflated (given by fastdicom.filereader)
cdef dict _PLAIN_SYNTAXES = {}


def _set_plain_syntaxes(dict syntaxes):
    global _PLAIN_SYNTAXES
    _PLAIN_SYNTAXES = syntaxes


def read_header_prefix(bytes data, bint allow_clip, uint32_t stop_tag, bint stop_before_pixels,
                       int max_depth, int max_elements, bint lenient_vr,
                       int64_t defer_sq_bytes):
    """The common case of a file header in one call, for :func:`fastdicom.dcmread`: a
    128-byte preamble and ``DICM``, an explicit VR little endian file meta group whose group
    length (when present) is right, a Transfer Syntax UID that is known and not deflated,
    and a body that scans clean (status 0, nothing clipped, retried, odd or trailing) in the
    encoding it declares, up to a stop (``stop_tag``, Pixel Data) unless ``data`` is the
    whole file (``allow_clip``).  Returns ``(meta_index, body_start, transfer_syntax, explicit,
    little_endian, index)``, or None for anything else: the general reader then reads the
    data and reports what it finds.  The same indexes as the general path, without its
    Python steps."""
    cdef Py_ssize_t n = len(data)
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef ElementIndex meta, index
    cdef int64_t body
    if n < 140 or memcmp(p + 128, b"DICM", 4) != 0 or p[132] != 0x02 or p[133] != 0x00:
        return None
    if not (0x40 < p[136] < 0x5B and 0x40 < p[137] < 0x5B):
        return None
    meta = _scan_c(data, 132, -1, True, 0x00020000, True, 0x0002FFFF, False, max_depth,
                   max_elements, False, True, False, 0, -1)
    if meta.status != 0 or meta.n_clipped or meta.trailing or meta.n_vr_retries:
        return None
    body, declared, _, actual, ts = meta.meta_summary()
    if (declared >= 0 and declared != actual) or not ts:
        return None          # the general reader warns about the group length / guesses
    enc = _PLAIN_SYNTAXES.get(ts)
    if enc is None:
        return None
    explicit, little = enc
    if n - body >= 6:
        if (0x40 < p[body + 4] < 0x5B and 0x40 < p[body + 5] < 0x5B) != explicit and \
                not (p[body] == 0xFE and p[body + 1] == 0xFF):
            return None
    index = _scan_c(data, body, -1, explicit, 0, little, stop_tag, stop_before_pixels,
                    max_depth, max_elements, allow_clip, lenient_vr, False, defer_sq_bytes, -1)
    if index.status != 0 or index.n_clipped or index.trailing or index.n_vr_retries or \
            index.n_odd:
        return None
    if not allow_clip and index.stop_offset < 0:
        return None          # a prefix that ends at an element boundary: the data set may go on
    return meta, body, ts, explicit, little, index


# ---------------------------------------------------------------------------------------------
# File access: POSIX mmap with the descriptor closed at once, and pread into owned buffers

cdef class MappedFile:
    """A read-only POSIX memory map of a whole file.

    By default the file is mapped at once and the descriptor closed.  With ``lazy=True`` the
    descriptor stays open (until :meth:`close`) and the map is made on the first buffer
    export, so a reader that needs only a header prefix and one frame (:meth:`pread`,
    :meth:`pread_into`) never pays for the map and its page faults.

    The map is released when the last reference goes away (every numpy view or memoryview of
    it holds one), never under a live view.  A file truncated by another process while mapped
    raises SIGBUS on access to the lost pages: :meth:`check` compares the current size with the
    size at open; use ``mode="read"`` for files others may modify.
    """
    cdef void* addr
    cdef int fd
    cdef int readers          # preads in flight on the kept descriptor
    cdef bint want_close      # close() asked while readers > 0
    cdef readonly Py_ssize_t size
    cdef readonly int64_t mtime_ns
    cdef readonly object path
    cdef bytes bpath
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]
    cdef int exports

    def __cinit__(self, path, bint lazy=False):
        self.addr = NULL
        self.fd = -1
        self.readers = 0
        self.want_close = False
        self.size = 0
        self.path = path
        self.bpath = c_path(path)
        cdef stat_t sb
        cdef int fd = self._open_stat(&sb)
        try:
            self.size = sb.st_size
            self.mtime_ns = <int64_t>sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec
            if lazy:
                self.fd = fd
                fd = -1
            else:
                self._map_fd(fd)
        finally:
            if fd >= 0:
                close(fd)

    cdef int _map_fd(self, int fd) except -1:
        cdef void* a
        if self.size > 0:
            # with the GIL held: two threads exporting a lazy map at once must not both map
            a = mmap(NULL, <size_t>self.size, PROT_READ, MAP_SHARED, fd, 0)
            if a == MAP_FAILED:
                import os
                raise OSError(errno, os.strerror(errno), self.path)
            self.addr = a
            # no speculative readahead around page faults: touching the header of a
            # multi-GiB file must not read megabytes; ranges about to be read in full
            # (frames, fragments) are announced with advise_willneed()
            madvise(a, <size_t>self.size, MADV_RANDOM)
        return 0

    cdef int _open_stat(self, stat_t* sb) except -1:
        """Open the path read-only and fstat it; a regular file or OSError."""
        return open_regular(self.bpath, 0, sb, self.path)

    cdef int _open_checked(self) except -1:
        """The file opened again (a private descriptor), checked to be unchanged."""
        cdef stat_t sb
        cdef int fd = self._open_stat(&sb)
        if (sb.st_size != self.size
                or <int64_t>sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec != self.mtime_ns):
            close(fd)
            from fastdicom.errors import FileChangedError
            raise FileChangedError("file changed since it was opened", path=self.path)
        return fd

    cdef int _acquire_fd(self) except -1:
        """A descriptor to read with (GIL held): the kept one, counted as in use so that
        close() from another thread defers closing it (its number cannot be reused under a
        pread in flight), or a private one the caller releases."""
        if self.fd >= 0 and not self.want_close:
            self.readers += 1
            return self.fd
        return self._open_checked()

    cdef void _release_fd(self, int fd, bint shared) noexcept:
        if not shared:
            close(fd)
            return
        self.readers -= 1
        if self.readers == 0 and self.want_close:
            close(self.fd)
            self.fd = -1
            self.want_close = False

    cdef int _ensure_map(self) except -1:
        cdef int fd
        cdef bint shared
        cdef stat_t sb
        if self.addr != NULL or self.size == 0:
            return 0
        fd = self._acquire_fd()
        shared = fd == self.fd
        try:
            if fstat(fd, &sb) != 0 or sb.st_size < self.size:
                from fastdicom.errors import FileChangedError
                raise FileChangedError("file was truncated since it was opened", path=self.path)
            self._map_fd(fd)
        finally:
            self._release_fd(fd, shared)
        return 0

    cdef int _pread_checked(self, char* dst, int64_t n, int64_t offset,
                            int64_t* got) except -1:
        """pread ``n`` bytes at ``offset`` (nogil); got = -1 when the size changed."""
        cdef int fd = self._acquire_fd(), err = 0
        cdef bint shared = fd == self.fd
        cdef stat_t sb
        got[0] = 0
        with nogil:
            if fstat(fd, &sb) != 0:
                err = errno
            elif sb.st_size != self.size:
                got[0] = -1
            elif n > 0:
                err = pread_full(fd, dst, n, offset, got)
        self._release_fd(fd, shared)
        if err:
            import os
            raise OSError(err, os.strerror(err), self.path)
        return 0

    @property
    def mapped(self):
        """True once the file is mapped."""
        return self.addr != NULL

    def pread_into(self, dest, int64_t offset):
        """Read ``len(dest)`` bytes at ``offset`` into the writable buffer ``dest`` with pread
        (nogil): the open descriptor of a lazy map, else the file opened again.  Returns the
        bytes read, or -1 (nothing read) when the file's size is no longer the size at open.
        ``dest`` may be any writable C-contiguous buffer (e.g. a numpy array of any dtype)."""
        cdef Py_buffer buf
        cdef int64_t got = 0
        PyObject_GetBuffer(dest, &buf, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS)
        try:
            self._pread_checked(<char*>buf.buf, buf.len, offset, &got)
        finally:
            PyBuffer_Release(&buf)
        return got

    def pread(self, int64_t offset, Py_ssize_t length):
        """Up to ``length`` bytes at ``offset`` as a new bytes object (see :meth:`pread_into`)."""
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        if length > self.size - offset:
            length = max(0, self.size - offset)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, length)
        cdef int64_t got = 0
        self._pread_checked(PyBytes_AS_STRING(out), length, offset, &got)
        if got < 0:
            from fastdicom.errors import FileChangedError
            raise FileChangedError("file changed since it was opened", path=self.path)
        return out[:got] if got < length else out

    def close(self):
        """Close the descriptor of a lazy map (the map itself lives while referenced); with
        reads in flight on other threads, the last of them closes it."""
        if self.fd >= 0 and not self.want_close:
            if self.readers:
                self.want_close = True
            else:
                close(self.fd)
                self.fd = -1

    def __dealloc__(self):
        if self.addr != NULL:
            munmap(self.addr, <size_t>self.size)
            self.addr = NULL
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1

    def __len__(self):
        return self.size

    def check(self):
        """True when the file on disk still has the size it had at open."""
        import os
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return st.st_size >= self.size

    def advise_willneed(self, Py_ssize_t offset, Py_ssize_t length):
        cdef Py_ssize_t page = 4096
        cdef Py_ssize_t start = (offset // page) * page
        if self.addr == NULL or offset < 0 or length <= 0 or offset >= self.size:
            return
        if length > self.size - offset:
            length = self.size - offset
        madvise(<char*>self.addr + start, <size_t>(length + offset - start), MADV_WILLNEED)

    def willneed_at(self, Py_ssize_t address, Py_ssize_t length):
        """Start reading ``[address, address+length)`` (a range inside this map, e.g. a
        frame view about to be copied) ahead with MADV_WILLNEED; ignored outside the map."""
        cdef size_t base = <size_t>self.addr
        cdef size_t start, stop, page = 4096
        if self.addr == NULL or length <= 0:
            return
        if <size_t>address < base or <size_t>address >= base + <size_t>self.size:
            return
        if <size_t>length > base + <size_t>self.size - <size_t>address:
            length = <Py_ssize_t>(base + <size_t>self.size - <size_t>address)
        start = (<size_t>address // page) * page
        stop = <size_t>address + <size_t>length
        with nogil:
            madvise(<void*>start, stop - start, MADV_WILLNEED)

    def __getbuffer__(self, Py_buffer* view, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("MappedFile is read-only")
        self._ensure_map()
        self.shape[0] = self.size
        self.strides[0] = 1
        view.buf = self.addr if self.addr != NULL else <void*>b""
        view.obj = self
        view.len = self.size
        view.readonly = 1
        view.itemsize = 1
        view.format = "B"
        view.ndim = 1
        view.shape = self.shape
        view.strides = self.strides
        view.suboffsets = NULL
        view.internal = NULL
        self.exports += 1

    def __releasebuffer__(self, Py_buffer* view):
        self.exports -= 1




def read_file(path, Py_ssize_t max_bytes=-1, bint nofollow=False):
    """Read up to ``max_bytes`` (all when -1) of a file with pread into a new bytes object.

    Returns ``(data, size, mtime_ns)`` where ``size``/``mtime_ns`` come from fstat at open.
    """
    cdef bytes bpath = c_path(path)
    cdef int fd, err = 0
    cdef stat_t sb
    cdef int64_t size, want, got = 0
    cdef bytes out
    cdef char* dst
    fd = open_regular(bpath, O_NOFOLLOW if nofollow else 0, &sb, path)
    try:
        size = sb.st_size
        want = size if (max_bytes < 0 or max_bytes > size) else max_bytes
        out = PyBytes_FromStringAndSize(NULL, want)
        dst = PyBytes_AS_STRING(out)
        with nogil:
            err = pread_full(fd, dst, want, 0, &got)
        if err:
            import os
            raise OSError(err, os.strerror(err), path)
        if got < want:
            out = out[:got]
        return out, size, <int64_t>sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec
    finally:
        close(fd)


def pread_into(path, dest, int64_t offset, *, int64_t expect_size=-1):
    """Read ``len(dest)`` bytes of ``path`` at ``offset`` straight into the writable buffer
    ``dest`` (nogil, no intermediate copy).  Returns the number of bytes read.

    When ``expect_size`` >= 0 and the file's size differs, or ``path`` is no longer a
    regular file, returns -1 without reading.
    """
    cdef bytes bpath = c_path(path)
    cdef const char* cpath = bpath
    cdef uint8_t[::1] out = dest
    cdef int64_t n = out.shape[0], got = 0
    cdef int fd, err = 0
    cdef stat_t sb
    with nogil:
        # (O_NONBLOCK: a fifo put in the file's place must not block the open)
        fd = c_open(cpath, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd >= 0:
            if fstat(fd, &sb) != 0:
                err = errno
            elif (expect_size >= 0 and sb.st_size != expect_size) or \
                    (sb.st_mode & 0o170000) != 0o100000:
                got = -1
            elif n > 0:
                err = pread_full(fd, <char*>&out[0], n, offset, &got)
            close(fd)
        else:
            err = errno
    if err:
        import os
        raise OSError(err, os.strerror(err), path)
    return got


cdef class KeywordAttribute:
    """Non-data descriptor behind ``ds.<Keyword>`` on Dataset.

    The first access decodes the value (in C for the common simple VRs) and stores it in the
    instance dict, so later reads are plain attribute lookups; no AttributeError is raised and
    caught on the way, which is what makes ``__getattr__`` slow.
    """
    cdef readonly uint32_t tag
    cdef readonly str name
    cdef bint cache

    def __init__(self, uint32_t tag, str name):
        self.tag = tag
        self.name = name
        self.cache = not (tag == 0x7FE00010 or tag == 0x7FE00008 or tag == 0x7FE00009)

    def __get__(self, obj, objtype):
        if obj is None:
            return self
        cdef dict d = obj.__dict__
        cdef object index = d.get("_index")
        cdef object latin1 = d.get("_latin1")
        cdef object value, cs
        if (latin1 is None and index is not None and d.get("_parent") is None
                and d.get("_encodings") is None and not d.get("_elements")
                and "_deleted" not in d and "_only" not in d):
            # a root data set read from a file: its charset from the index, in the common
            # cases Dataset._charset decides the same way (the rest is left to it)
            cs = (<ElementIndex>index).fast_value(0x00080005, d["_item"], 1)
            if cs is MISSING:
                latin1 = _LATIN1_DEFAULT
            elif type(cs) is str and cs in _LATIN1_TERMS:
                latin1 = True
            if latin1 is not None:
                d["_latin1"] = latin1
        if (index is not None and self.tag not in <dict>d["_elements"]
                and "_only" not in d and "_deleted" not in d):
            value = (<ElementIndex>index).fast_value(
                self.tag, d["_item"], -1 if latin1 is None else (1 if latin1 is True else 0))
            if value is MISSING:
                raise AttributeError(f"{type(obj).__name__} object has no attribute {self.name!r}")
            if value is not SLOW:
                if self.cache:
                    d[self.name] = value
                return value
        return obj._keyword_value(self.name, self.tag)
