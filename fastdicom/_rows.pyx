# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Row-wise JSON objects from Arrow columns, in C (the ``attributes`` text of the index).

``json_objects(keys, arrays)`` returns, for each row, exactly the text
``json.dumps({k: v, ...}, sort_keys=False, ensure_ascii=False)`` gives for the row's values
(keys in the order given): strings escaped as the json module escapes them, integers in
decimal, floats as ``repr`` (``NaN``/``Infinity`` as the json module writes them), lists as
``[a, b]``, nulls as ``null``.  Columns are Arrow arrays of string, int64, float64 or lists of
those; anything else raises TypeError (the caller then encodes in Python).
"""
from libc.stdint cimport uint8_t, int32_t, int64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy
from libc.math cimport isnan, isinf
from cpython.mem cimport PyMem_Free
from cpython.unicode cimport PyUnicode_DecodeUTF8

cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags,
                                int* ptype) except NULL
    int Py_DTSF_ADD_DOT_0

cdef enum Kind:
    K_STR = 0
    K_INT = 1
    K_FLOAT = 2

cdef struct Out:
    char* buf
    Py_ssize_t n
    Py_ssize_t cap

cdef int grow(Out* o, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap
    cdef char* nb
    if o.n + extra <= o.cap:
        return 0
    cap = o.cap * 2 if o.cap else 65536
    while cap < o.n + extra:
        cap *= 2
    nb = <char*>realloc(o.buf, cap)
    if nb == NULL:
        raise MemoryError()
    o.buf = nb
    o.cap = cap
    return 0

cdef int put(Out* o, const char* s, Py_ssize_t k) except -1:
    grow(o, k)
    memcpy(o.buf + o.n, s, k)
    o.n += k
    return 0

cdef const char* HEX = b"0123456789abcdef"
# the json module's two-character escapes of control characters (\b \t \n \f \r); the
# others are written \u00XX
cdef char SHORT_ESC[32]
for _c in range(32):
    SHORT_ESC[_c] = 0
SHORT_ESC[8] = 98
SHORT_ESC[9] = 116
SHORT_ESC[10] = 110
SHORT_ESC[12] = 102
SHORT_ESC[13] = 114

cdef int put_str(Out* o, const uint8_t* s, Py_ssize_t k) except -1:
    cdef Py_ssize_t i
    cdef uint8_t c
    grow(o, 6 * k + 2)
    o.buf[o.n] = 34
    o.n += 1
    for i in range(k):
        c = s[i]
        if c == 34 or c == 92:
            o.buf[o.n] = 92
            o.buf[o.n + 1] = c
            o.n += 2
        elif c < 0x20:
            o.buf[o.n] = 92
            if SHORT_ESC[c]:
                o.buf[o.n + 1] = SHORT_ESC[c]
                o.n += 2
            else:
                memcpy(o.buf + o.n + 1, b"u00", 3)
                o.buf[o.n + 4] = HEX[c >> 4]
                o.buf[o.n + 5] = HEX[c & 15]
                o.n += 6
        else:
            o.buf[o.n] = <char>c
            o.n += 1
    o.buf[o.n] = 34
    o.n += 1
    return 0

cdef int put_int(Out* o, int64_t v) except -1:
    cdef char tmp[24]
    cdef int k = 0, j
    cdef bint neg = v < 0
    cdef unsigned long long u = <unsigned long long>(-(v + 1)) + 1 if neg else <unsigned long long>v
    if u == 0:
        return put(o, b"0", 1)
    while u:
        tmp[k] = <char>(48 + u % 10)
        u //= 10
        k += 1
    grow(o, k + 1)
    if neg:
        o.buf[o.n] = 45
        o.n += 1
    for j in range(k):
        o.buf[o.n + j] = tmp[k - 1 - j]
    o.n += k
    return 0

cdef int put_float(Out* o, double v) except -1:
    cdef char* s
    cdef Py_ssize_t k
    if isnan(v):
        return put(o, b"NaN", 3)
    if isinf(v):
        return put(o, b"Infinity", 8) if v > 0 else put(o, b"-Infinity", 9)
    s = PyOS_double_to_string(v, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    try:
        k = 0
        while s[k]:
            k += 1
        put(o, s, k)
    finally:
        PyMem_Free(s)
    return 0


cdef class _Col:
    """Pointers into one Arrow array (and its child for lists)."""
    cdef int kind
    cdef bint is_list
    cdef const uint8_t* valid
    cdef int64_t off
    cdef const int32_t* loffs      # list offsets
    cdef const uint8_t* cvalid     # child validity
    cdef int64_t coff              # child offset
    cdef const int32_t* soffs      # string offsets (of the values array)
    cdef const uint8_t* data
    cdef list keep                 # the buffers, alive while used

    cdef bint is_valid(self, int64_t i) noexcept:
        i += self.off
        return self.valid == NULL or (self.valid[i >> 3] >> (i & 7)) & 1

    cdef bint child_valid(self, int64_t j) noexcept:
        return self.cvalid == NULL or (self.cvalid[j >> 3] >> (j & 7)) & 1

    cdef int put_value(self, Out* o, int64_t j) except -1:
        """Value at raw buffer index j of the values (the child's, for lists)."""
        cdef int64_t a, b
        if self.kind == K_STR:
            a = self.soffs[j]
            b = self.soffs[j + 1]
            return put_str(o, self.data + a, b - a)
        if self.kind == K_INT:
            return put_int(o, (<const int64_t*>self.data)[j])
        return put_float(o, (<const double*>self.data)[j])


cdef const uint8_t* _ptr(object buf, list keep):
    cdef const uint8_t[::1] v
    if buf is None:
        return NULL
    v = memoryview(buf).cast("B")
    keep.append(v)
    if v.shape[0] == 0:
        return <const uint8_t*>b""
    return &v[0]


cdef _Col _column(object arr):
    import pyarrow as pa
    cdef _Col c = _Col()
    c.keep = []
    t = arr.type
    bufs = arr.buffers()
    c.off = arr.offset
    c.valid = _ptr(bufs[0], c.keep) if arr.null_count else NULL
    values_type = t
    if pa.types.is_list(t):
        # list offsets (at this array's offset) index the values array, which has its own
        # offset into its buffers
        c.is_list = True
        c.loffs = <const int32_t*>_ptr(bufs[1], c.keep)
        child = arr.values
        values_type = t.value_type
        c.coff = child.offset
        cbufs = child.buffers()
        c.cvalid = _ptr(cbufs[0], c.keep) if child.null_count else NULL
        rest = cbufs[1:]
    else:
        c.is_list = False
        c.cvalid = NULL
        c.coff = 0
        rest = bufs[1:]
    if values_type == pa.string():
        c.kind = K_STR
        c.soffs = <const int32_t*>_ptr(rest[0], c.keep)
        c.data = _ptr(rest[1], c.keep)
    elif values_type == pa.int64():
        c.kind = K_INT
        c.data = _ptr(rest[0], c.keep)
    elif values_type == pa.float64():
        c.kind = K_FLOAT
        c.data = _ptr(rest[0], c.keep)
    else:
        raise TypeError(f"json_objects: unsupported column type {t}")
    if c.data == NULL:
        c.data = <const uint8_t*>b""
    return c


def json_objects(list keys, list arrays):
    """The JSON object text of every row (see the module docstring); a list of str."""
    cdef int64_t n = len(arrays[0]) if arrays else 0
    cdef int64_t i, j, a, b
    cdef Py_ssize_t k, nk = len(keys), start
    cdef Out o
    cdef list cols = [_column(arr) for arr in arrays]
    cdef list heads = []
    cdef bytes head
    cdef _Col c
    cdef list out = []
    for k in range(nk):
        heads.append((("{" if k == 0 else ", ") + _json_key(keys[k]) + ": ").encode())
        if len(arrays[k]) != n:
            raise ValueError("json_objects: columns of different lengths")
    o.buf = NULL
    o.n = 0
    o.cap = 0
    try:
        for i in range(n):
            o.n = 0
            if nk == 0:
                put(&o, b"{}", 2)
            for k in range(nk):
                head = heads[k]
                put(&o, head, len(head))
                c = cols[k]
                if not c.is_valid(i):
                    put(&o, b"null", 4)
                elif not c.is_list:
                    c.put_value(&o, i + c.off)
                else:
                    a = c.loffs[i + c.off]
                    b = c.loffs[i + c.off + 1]
                    put(&o, b"[", 1)
                    for j in range(a, b):
                        if j > a:
                            put(&o, b", ", 2)
                        if c.child_valid(j + c.coff):
                            c.put_value(&o, j + c.coff)
                        else:
                            put(&o, b"null", 4)
                    put(&o, b"]", 1)
            if nk:
                put(&o, b"}", 1)
            out.append(PyUnicode_DecodeUTF8(o.buf, o.n, NULL))
    finally:
        free(o.buf)
    return out


def _json_key(key):
    import json
    return json.dumps(key, ensure_ascii=False)
