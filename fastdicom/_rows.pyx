# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The index's rows in C: JSON cells of Arrow columns and the SQLite writer of ingest.

``json_cells(arr)`` returns, for each value, exactly the text ``json.dumps(value,
ensure_ascii=False)`` gives (a list column's cells in the index): strings escaped as the json
module escapes them, integers in decimal, floats as ``repr`` (``NaN``/``Infinity`` as the
json module writes them), lists as ``[a, b]``, nulls inside a list as ``null``.  Columns are
Arrow arrays of string, int64, uint64, float64 or lists of those; anything else raises
TypeError (the caller then encodes in Python).
"""
from libc.stdint cimport uint8_t, int32_t, int64_t, uint64_t
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memset, strncpy, strlen
from libc.math cimport isnan, isinf
from cpython.mem cimport PyMem_Free
from cpython.object cimport PyObject
from libc.errno cimport errno
from fastdicom._cursor cimport stat_t, c_stat, c_lstat

cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags,
                                int* ptype) except NULL
    int Py_DTSF_ADD_DOT_0

cdef enum Kind:
    K_STR = 0
    K_INT = 1
    K_FLOAT = 2
    K_UINT = 3
    K_LSTR = 4      # large_string (int64 offsets): the JSON cells of json_cells
    K_BIN = 5       # binary: bound as a blob (the SQLite writer only)

cdef struct Out:
    char* buf
    Py_ssize_t n
    Py_ssize_t cap

# The encoder runs without the GIL (Out, ColC and the float cache are the call's own); it
# takes the GIL only for repr() of a float not in the cache.  Functions return -1 when
# memory runs out (the caller raises MemoryError).

cdef int grow(Out* o, Py_ssize_t extra) noexcept nogil:
    cdef Py_ssize_t cap
    cdef char* nb
    cap = o.cap * 2 if o.cap else 65536
    while cap < o.n + extra:
        cap *= 2
    nb = <char*>realloc(o.buf, cap)
    if nb == NULL:
        return -1
    o.buf = nb
    o.cap = cap
    return 0

cdef inline int reserve(Out* o, Py_ssize_t extra) noexcept nogil:
    if o.n + extra <= o.cap:
        return 0
    return grow(o, extra)

cdef inline int put(Out* o, const char* s, Py_ssize_t k) noexcept nogil:
    if reserve(o, k) < 0:
        return -1
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

cdef int put_str(Out* o, const uint8_t* s, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef uint8_t c
    cdef char* d
    if reserve(o, 6 * k + 2) < 0:
        return -1
    d = o.buf + o.n
    d[0] = 34
    d += 1
    i = 0
    while i < k:
        # a run of bytes that need no escape, copied at once
        j = i
        while j < k and s[j] >= 0x20 and s[j] != 34 and s[j] != 92:
            j += 1
        if j > i:
            memcpy(d, s + i, j - i)
            d += j - i
            i = j
            if i == k:
                break
        c = s[i]
        i += 1
        if c == 34 or c == 92:
            d[0] = 92
            d[1] = c
            d += 2
        elif SHORT_ESC[c]:
            d[0] = 92
            d[1] = SHORT_ESC[c]
            d += 2
        else:
            memcpy(d, b"\\u00", 4)
            d[4] = HEX[c >> 4]
            d[5] = HEX[c & 15]
            d += 6
    d[0] = 34
    o.n = (d + 1) - o.buf
    return 0

cdef int put_int(Out* o, int64_t v) noexcept nogil:
    cdef bint neg = v < 0
    return put_decimal(o, <unsigned long long>(-(v + 1)) + 1 if neg else <unsigned long long>v,
                       neg)


cdef int put_decimal(Out* o, unsigned long long u, bint neg) noexcept nogil:
    cdef char tmp[24]
    cdef int k = 0, j
    if u == 0:
        return put(o, b"0", 1)
    while u:
        tmp[k] = <char>(48 + u % 10)
        u //= 10
        k += 1
    if reserve(o, k + 1) < 0:
        return -1
    if neg:
        o.buf[o.n] = 45
        o.n += 1
    for j in range(k):
        o.buf[o.n + j] = tmp[k - 1 - j]
    o.n += k
    return 0

# repr() of recent doubles, direct-mapped by their bits: the values of a column repeat from
# row to row (orientation, spacing, windows, rescale), and repr is the costly part of a row
cdef struct FloatText:
    uint64_t bits
    int n               # 0: empty slot
    char text[32]

cdef enum:
    FLOAT_SLOTS = 512


cdef int float_repr(FloatText* slot, double v) noexcept with gil:
    """repr(v) into ``slot`` (-1: no memory, or a repr too long for the slot)."""
    cdef char* s
    cdef Py_ssize_t k = 0
    try:
        s = PyOS_double_to_string(v, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    except MemoryError:
        return -1
    while s[k]:
        k += 1
    if k < 32:
        memcpy(slot.text, s, k)
        slot.n = <int>k
    PyMem_Free(s)
    return 0 if k < 32 else -1


cdef int put_float(Out* o, FloatText* cache, double v) noexcept nogil:
    cdef uint64_t bits
    cdef FloatText* slot
    if isnan(v):
        return put(o, b"NaN", 3)
    if isinf(v):
        return put(o, b"Infinity", 8) if v > 0 else put(o, b"-Infinity", 9)
    memcpy(&bits, &v, 8)
    slot = &cache[((bits * 0x9E3779B97F4A7C15ULL) >> 55) & (FLOAT_SLOTS - 1)]
    if not (slot.n and slot.bits == bits):
        slot.n = 0
        if float_repr(slot, v) < 0:
            return -1
        slot.bits = bits
    return put(o, slot.text, slot.n)


# pointers into one Arrow array (and its child for lists)
cdef struct ColC:
    int kind
    bint is_list
    const uint8_t* valid
    int64_t off
    const int32_t* loffs      # list offsets
    const uint8_t* cvalid     # child validity
    int64_t coff              # child offset
    const int32_t* soffs      # string offsets (of the values array)
    const uint8_t* data


cdef inline bint bit_set(const uint8_t* bits, int64_t i) noexcept nogil:
    return bits == NULL or (bits[i >> 3] >> (i & 7)) & 1


cdef inline int put_value(Out* o, FloatText* cache, const ColC* c, int64_t j) noexcept nogil:
    """Value at raw buffer index j of the values (the child's, for lists)."""
    if c.kind == K_STR:
        return put_str(o, c.data + c.soffs[j], c.soffs[j + 1] - c.soffs[j])
    if c.kind == K_INT:
        return put_int(o, (<const int64_t*>c.data)[j])
    if c.kind == K_UINT:
        return put_decimal(o, (<const uint64_t*>c.data)[j], False)
    return put_float(o, cache, (<const double*>c.data)[j])


cdef const uint8_t* _ptr(object buf, list keep):
    cdef const uint8_t[::1] v
    if buf is None:
        return NULL
    v = memoryview(buf).cast("B")
    keep.append(v)
    if v.shape[0] == 0:
        return <const uint8_t*>b""
    return &v[0]


cdef int _column(object arr, ColC* c, list keep, bint binary_ok=False) except -1:
    import pyarrow as pa
    t = arr.type
    bufs = arr.buffers()
    c.off = arr.offset
    c.valid = _ptr(bufs[0], keep) if arr.null_count else NULL
    values_type = t
    if pa.types.is_list(t):
        # list offsets (at this array's offset) index the values array, which has its own
        # offset into its buffers
        c.is_list = True
        c.loffs = <const int32_t*>_ptr(bufs[1], keep)
        child = arr.values
        values_type = t.value_type
        c.coff = child.offset
        cbufs = child.buffers()
        c.cvalid = _ptr(cbufs[0], keep) if child.null_count else NULL
        rest = cbufs[1:]
    else:
        c.is_list = False
        c.loffs = NULL
        c.cvalid = NULL
        c.coff = 0
        rest = bufs[1:]
    c.soffs = NULL
    if values_type == pa.string():
        c.kind = K_STR
        c.soffs = <const int32_t*>_ptr(rest[0], keep)
        c.data = _ptr(rest[1], keep)
    elif binary_ok and not c.is_list and values_type in (pa.large_string(), pa.binary()):
        c.kind = K_LSTR if values_type == pa.large_string() else K_BIN
        c.soffs = <const int32_t*>_ptr(rest[0], keep)
        c.data = _ptr(rest[1], keep)
    elif values_type == pa.int64():
        c.kind = K_INT
        c.data = _ptr(rest[0], keep)
    elif values_type == pa.uint64():        # UV
        c.kind = K_UINT
        c.data = _ptr(rest[0], keep)
    elif values_type == pa.float64():
        c.kind = K_FLOAT
        c.data = _ptr(rest[0], keep)
    else:
        raise TypeError(f"unsupported column type {t}")
    if c.data == NULL:
        c.data = <const uint8_t*>b""
    return 0


cdef int encode_cells(Out* o, FloatText* cache, const ColC* c, int64_t n, int64_t* off,
                      uint8_t* valid) noexcept nogil:
    cdef int64_t i, j, a, b
    for i in range(n):
        off[i] = o.n
        if not bit_set(c.valid, i + c.off):
            continue                    # a null row: no text, its validity bit stays 0
        valid[i >> 3] |= <uint8_t>(1 << (i & 7))
        if not c.is_list:
            if put_value(o, cache, c, i + c.off) < 0:
                return -1
            continue
        a = c.loffs[i + c.off]
        b = c.loffs[i + c.off + 1]
        if put(o, b"[", 1) < 0:
            return -1
        for j in range(a, b):
            if j > a and put(o, b", ", 2) < 0:
                return -1
            if bit_set(c.cvalid, j + c.coff):
                if put_value(o, cache, c, j + c.coff) < 0:
                    return -1
            elif put(o, b"null", 4) < 0:
                return -1
        if put(o, b"]", 1) < 0:
            return -1
    off[n] = o.n
    return 0


def json_cells(arr):
    """The JSON text of each value of one Arrow column (a list becomes ``[a, b]``, the text
    ``json.dumps(value, ensure_ascii=False)`` gives) as a ``large_string`` array, null where
    the column is null.  Encoded without the GIL; column types as the module docstring says."""
    import numpy as np
    import pyarrow as pa
    cdef int64_t n = len(arr)
    cdef Out o
    cdef ColC c
    cdef list keep = []
    cdef int rc
    offsets = np.empty(n + 1, np.int64)
    validity = np.zeros((n + 7) // 8, np.uint8)
    cdef int64_t[::1] off = offsets
    cdef uint8_t[::1] vb = validity
    cdef FloatText* cache = <FloatText*>calloc(FLOAT_SLOTS, sizeof(FloatText))
    o.buf = NULL
    o.n = 0
    o.cap = 0
    try:
        if cache == NULL:
            raise MemoryError()
        _column(arr, &c, keep)
        with nogil:
            rc = encode_cells(&o, cache, &c, n, &off[0], &vb[0] if n else NULL)
        if rc < 0:
            raise MemoryError()
        data = o.buf[:o.n] if o.n else b""
    finally:
        free(o.buf)
        free(cache)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data),
                                            pa.py_buffer(validity), arr.null_count)


# ----------------------------------------------------------------------------- SQLite rows
# The index's common case -- a batch of new files, parsed, with new SOPInstanceUIDs -- is
# written here: two prepared statements bound straight from the Arrow columns, the whole
# loop without the GIL (the sqlite3 module binds every parameter of every row holding it,
# which the scanning threads then wait for).  It runs on the connection of the caller's
# ``sqlite3.Connection`` (inside the caller's transaction) with the functions of the very
# SQLite library that module uses, found with dlsym; when either cannot be had safely,
# ``sqlite_available()`` is False and the caller binds in Python.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

cdef extern from "dlfcn.h" nogil:
    void* dlopen(const char* filename, int flags)
    void* dlsym(void* handle, const char* symbol)
    int RTLD_NOW
    int RTLD_NOLOAD

ctypedef void sqlite3
ctypedef void sqlite3_stmt
ctypedef int (*f_prepare)(sqlite3*, const char*, int, sqlite3_stmt**, const char**) noexcept nogil
ctypedef int (*f_bind_i64)(sqlite3_stmt*, int, int64_t) noexcept nogil
ctypedef int (*f_bind_double)(sqlite3_stmt*, int, double) noexcept nogil
ctypedef int (*f_bind_text)(sqlite3_stmt*, int, const char*, int, void*) noexcept nogil
ctypedef int (*f_bind_null)(sqlite3_stmt*, int) noexcept nogil
ctypedef int (*f_stmt)(sqlite3_stmt*) noexcept nogil
ctypedef int (*f_db)(sqlite3*) noexcept nogil
ctypedef const char* (*f_errmsg)(sqlite3*) noexcept nogil
ctypedef const char* (*f_filename)(sqlite3*, const char*) noexcept nogil
ctypedef void* (*f_db_mutex)(sqlite3*) noexcept nogil
ctypedef void (*f_mutex)(void*) noexcept nogil

cdef struct SqliteApi:
    f_prepare prepare_v2
    f_bind_i64 bind_int64
    f_bind_double bind_double
    f_bind_text bind_text
    f_bind_text bind_blob
    f_bind_null bind_null
    f_stmt step
    f_stmt reset
    f_stmt finalize
    f_db changes
    f_db total_changes
    f_errmsg errmsg
    f_filename db_filename
    f_db_mutex db_mutex
    f_mutex mutex_enter
    f_mutex mutex_leave

cdef SqliteApi API
cdef bint API_OK = False
cdef int SQLITE_OK = 0
cdef int SQLITE_DONE = 101


cdef void* _sym(void* h, const char* name):
    return dlsym(h, name) if h != NULL else NULL


cdef _load_api():
    global API_OK
    import sys
    if sys.implementation.name != "cpython":
        return
    try:
        import _sqlite3
        path = _sqlite3.__file__.encode()
    except (ImportError, AttributeError):
        return
    # the library the sqlite3 module is linked with (or the module itself, when SQLite is
    # linked in statically and its symbols are visible): never a second copy of SQLite
    cdef void* h = dlopen(path, RTLD_NOW | RTLD_NOLOAD)
    API.prepare_v2 = <f_prepare>_sym(h, b"sqlite3_prepare_v2")
    API.bind_int64 = <f_bind_i64>_sym(h, b"sqlite3_bind_int64")
    API.bind_double = <f_bind_double>_sym(h, b"sqlite3_bind_double")
    API.bind_text = <f_bind_text>_sym(h, b"sqlite3_bind_text")
    API.bind_blob = <f_bind_text>_sym(h, b"sqlite3_bind_blob")
    API.bind_null = <f_bind_null>_sym(h, b"sqlite3_bind_null")
    API.step = <f_stmt>_sym(h, b"sqlite3_step")
    API.reset = <f_stmt>_sym(h, b"sqlite3_reset")
    API.finalize = <f_stmt>_sym(h, b"sqlite3_finalize")
    API.changes = <f_db>_sym(h, b"sqlite3_changes")
    API.total_changes = <f_db>_sym(h, b"sqlite3_total_changes")
    API.errmsg = <f_errmsg>_sym(h, b"sqlite3_errmsg")
    API.db_filename = <f_filename>_sym(h, b"sqlite3_db_filename")
    API.db_mutex = <f_db_mutex>_sym(h, b"sqlite3_db_mutex")
    API.mutex_enter = <f_mutex>_sym(h, b"sqlite3_mutex_enter")
    API.mutex_leave = <f_mutex>_sym(h, b"sqlite3_mutex_leave")
    API_OK = (API.prepare_v2 != NULL and API.bind_int64 != NULL and API.bind_double != NULL
              and API.bind_text != NULL
              and API.bind_blob != NULL and API.bind_null != NULL and API.step != NULL
              and API.reset != NULL and API.finalize != NULL and API.changes != NULL
              and API.total_changes != NULL and API.errmsg != NULL
              and API.db_filename != NULL and API.db_mutex != NULL
              and API.mutex_enter != NULL and API.mutex_leave != NULL)

_load_api()

FORCE_PYTHON = False   # tests set this to exercise the caller's Python binding


def sqlite_available() -> bool:
    """True when :func:`sqlite_insert_new` can run (CPython, SQLite symbols found)."""
    return API_OK and not FORCE_PYTHON


cdef sqlite3* _handle(object con, str db_path) except NULL:
    """The ``sqlite3*`` of a CPython ``sqlite3.Connection`` (its first field since pysqlite;
    checked against the connection's own file name and change counter before use)."""
    import os
    import sqlite3 as _sq
    if not isinstance(con, _sq.Connection):
        raise TypeError("not a sqlite3.Connection")
    cdef sqlite3* db = (<sqlite3**>((<char*><PyObject*>con) + sizeof(PyObject)))[0]
    if db == NULL:
        raise ValueError("the connection is closed")
    changes = con.total_changes       # raises on a closed connection
    name = API.db_filename(db, b"main")
    if name == NULL or os.path.realpath(name.decode("utf-8", "surrogateescape")) != \
            os.path.realpath(db_path) or API.total_changes(db) != changes:
        raise RuntimeError("sqlite3.Connection layout not recognised")
    return db


def sqlite_connection_ok(con, str db_path) -> bool:
    """True when :func:`sqlite_insert_new` can run on ``con``, the open connection of the
    database file ``db_path`` (see :func:`sqlite_available`)."""
    if not sqlite_available():
        return False
    try:
        _handle(con, db_path)
    except (TypeError, ValueError, RuntimeError):
        return False
    return True


cdef struct Texts:
    const char** p
    int* n


cdef int _texts(list objs, Texts* t) except -1:
    cdef Py_ssize_t i, k = len(objs), size
    t.p = <const char**>malloc(max(k, 1) * sizeof(char*))
    t.n = <int*>malloc(max(k, 1) * sizeof(int))
    if t.p == NULL or t.n == NULL:
        raise MemoryError()
    for i in range(k):
        o = objs[i]
        if type(o) is not bytes:
            raise TypeError("expected bytes")
        t.p[i] = PyBytes_AS_STRING(o)
        size = PyBytes_GET_SIZE(o)
        if size > 0x7fffffff:
            raise ValueError("value too long for SQLite")
        t.n[i] = <int>size
    return 0


cdef struct Flat:
    # plain pointers of a non-list column, for the loop without the GIL
    int kind
    const uint8_t* valid
    int64_t off
    const int32_t* soffs
    const uint8_t* data


cdef Flat _flat(const ColC* c):
    cdef Flat f
    f.kind, f.valid, f.off, f.soffs, f.data = c.kind, c.valid, c.off, c.soffs, c.data
    return f


# SQLITE_TRANSIENT: SQLite copies the value (a text made here, in a local buffer)
cdef void* TRANSIENT = <void*><Py_ssize_t>-1


cdef inline int _bind_col(sqlite3_stmt* st, int pos, const Flat* c, int64_t i) noexcept nogil:
    cdef int64_t a, b, k = i + c.off
    cdef uint64_t u
    cdef char text[24]
    cdef int m
    if c.valid != NULL and not (c.valid[k >> 3] >> (k & 7)) & 1:
        return API.bind_null(st, pos)
    if c.kind == K_INT:
        return API.bind_int64(st, pos, (<const int64_t*>c.data)[k])
    if c.kind == K_FLOAT:
        return API.bind_double(st, pos, (<const double*>c.data)[k])
    if c.kind == K_UINT:
        u = (<const uint64_t*>c.data)[k]
        if u <= 0x7fffffffffffffffULL:
            return API.bind_int64(st, pos, <int64_t>u)
        # past SQLite's integers: its decimal text, exactly
        m = 0
        while u:
            text[23 - m] = <char>(48 + u % 10)
            u //= 10
            m += 1
        return API.bind_text(st, pos, &text[24 - m], m, TRANSIENT)
    if c.kind == K_LSTR:
        a = (<const int64_t*>c.soffs)[k]
        b = (<const int64_t*>c.soffs)[k + 1]
    else:
        a = c.soffs[k]
        b = c.soffs[k + 1]
    if c.kind == K_BIN:
        return API.bind_blob(st, pos, <const char*>(c.data + a), <int>(b - a), NULL)
    return API.bind_text(st, pos, <const char*>(c.data + a), <int>(b - a), NULL)


# the parameters of the two statements: a column of ``arrays`` by number, P_KEY the path
# key (a blob); the instance statement's parameters past these are the tag columns,
# ``arrays[FIXED:]`` in order
cdef enum:
    P_KEY = -1
    FIXED = 13
    INSTANCE_FIXED = 14
cdef int INSTANCE_PARAMS[14]
INSTANCE_PARAMS[:] = [2, P_KEY, 12, 0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11]
cdef int LEDGER_PARAMS[5]
LEDGER_PARAMS[:] = [P_KEY, 12, 0, 1, 2]


cdef int _bind_row(sqlite3_stmt* st, const int* params, int np_, const Flat* cols,
                   Py_ssize_t ntags, const char* key, int nkey, int64_t i) noexcept nogil:
    cdef int k, rc = SQLITE_OK
    cdef Py_ssize_t t
    for k in range(np_):
        if params[k] == P_KEY:
            rc = API.bind_blob(st, k + 1, key, nkey, NULL)
        else:
            rc = _bind_col(st, k + 1, &cols[params[k]], i)
        if rc != SQLITE_OK:
            return rc
    for t in range(ntags):
        rc = _bind_col(st, <int>(np_ + t + 1), &cols[FIXED + t], i)
        if rc != SQLITE_OK:
            return rc
    return SQLITE_OK


cdef int _run_stmt(sqlite3_stmt* st) noexcept nogil:
    """Step a bound statement to its end and reset it: SQLITE_OK or the error code."""
    cdef int rc = API.step(st)
    API.reset(st)
    return SQLITE_OK if rc == SQLITE_DONE else rc


cdef void _copy_errmsg(sqlite3* db, char* buf) noexcept nogil:
    """SQLite's message of the last error into ``buf`` (256 bytes), before the statements
    are finalized (which may replace it)."""
    cdef const char* err = API.errmsg(db)
    if err != NULL:
        strncpy(buf, err, 255)


cdef _raise_sqlite(const char* buf, int rc):
    import sqlite3 as _sq
    msg = buf[:strlen(buf)].decode("utf-8", "replace") or "SQLite error"
    raise _sq.OperationalError(f"{msg} (code {rc})")


def sqlite_insert_new(con, str db_path, str instance_sql, str ledger_sql, list keys,
                      list arrays, const int64_t[::1] rows):
    """Insert, for each batch row ``i`` in ``rows``, its instance row then (when inserted)
    its ledger row, inside the caller's open transaction, without the GIL.

    ``instance_sql`` takes (uid, path, display, size, mtime_ns, sop_class, series, study,
    transfer_syntax, rows, columns, frames, pixel_offset, pixel_length) then one parameter
    per tag column, and must do nothing on an existing SOPInstanceUID; ``ledger_sql`` takes
    (path, display, size, mtime_ns, uid).  ``arrays`` are the Arrow columns (size, mtime_ns,
    SOPInstanceUID, SOPClassUID, SeriesInstanceUID, StudyInstanceUID, transfer_syntax, Rows,
    Columns, num_frames, pixel_offset, pixel_length, display path) then the tag columns in
    the statement's order: string, large_string, binary (a blob), int64, uint64 (past
    2**63 - 1 as its decimal text), float64, never lists.  ``keys`` (bytes) are indexed like
    them.  Returns a uint8 array: 1 inserted, 0 the SOPInstanceUID was already indexed
    (nothing written for that file).
    """
    if not API_OK:
        raise RuntimeError("SQLite functions not available")
    cdef sqlite3* db = _handle(con, db_path)
    cdef Py_ssize_t n = len(keys), m = rows.shape[0], j, na = len(arrays)
    cdef int64_t i
    if na < FIXED or na - FIXED > 30000:
        raise ValueError("sqlite_insert_new: inconsistent inputs")
    cdef list keep = []
    cdef ColC c
    for j in range(m):
        if rows[j] < 0 or rows[j] >= n:
            raise IndexError("sqlite_insert_new: row out of range")
    cdef Flat* f = <Flat*>malloc(na * sizeof(Flat))
    if f == NULL:
        raise MemoryError()
    try:
        for j in range(na):
            _column(arrays[j], &c, keep, True)
            if c.is_list or len(arrays[j]) != n:
                raise TypeError("sqlite_insert_new: unsupported column")
            f[j] = _flat(&c)
        for j, kind in enumerate((K_INT, K_INT, K_STR, K_STR, K_STR, K_STR, K_STR, K_INT,
                                  K_INT, K_INT, K_INT, K_INT, K_STR)):
            if f[j].kind != kind:
                raise TypeError("sqlite_insert_new: unexpected column type")
        return _insert_rows(db, instance_sql, ledger_sql, keys, f, na - FIXED, rows)
    finally:
        free(f)


cdef _insert_rows(sqlite3* db, str instance_sql, str ledger_sql, list keys, const Flat* f,
                  Py_ssize_t ntags, const int64_t[::1] rows):
    import numpy as np
    cdef Py_ssize_t m = rows.shape[0], j
    cdef int64_t i
    cdef Texts tk
    tk.p = NULL
    tk.n = NULL
    cdef sqlite3_stmt* si = NULL
    cdef sqlite3_stmt* sl = NULL
    cdef bytes q_inst = instance_sql.encode(), q_led = ledger_sql.encode()
    cdef const char* qi = q_inst
    cdef const char* ql = q_led
    cdef int rc = SQLITE_OK
    cdef object out = np.zeros(m, np.uint8)
    cdef uint8_t[::1] res = out
    cdef char errbuf[256]
    cdef void* mx = NULL
    memset(errbuf, 0, sizeof(errbuf))
    try:
        _texts(keys, &tk)
        with nogil:
            # the connection's mutex held for the whole loop: each call below enters it
            # again without an atomic operation (NULL when SQLite runs without mutexes)
            mx = API.db_mutex(db)
            if mx != NULL:
                API.mutex_enter(mx)
            rc = API.prepare_v2(db, qi, -1, &si, NULL)
            if rc == SQLITE_OK:
                rc = API.prepare_v2(db, ql, -1, &sl, NULL)
            j = 0
            while rc == SQLITE_OK and j < m:
                i = rows[j]
                # every parameter is bound on every row: nothing stale from the last one
                rc = _bind_row(si, INSTANCE_PARAMS, INSTANCE_FIXED, f, ntags, tk.p[i],
                               tk.n[i], i)
                if rc != SQLITE_OK:
                    break
                rc = _run_stmt(si)
                if rc != SQLITE_OK:
                    break
                if API.changes(db) == 0:
                    j += 1          # the UID is indexed already: the caller places it
                    continue
                rc = _bind_row(sl, LEDGER_PARAMS, 5, f, 0, tk.p[i], tk.n[i], i)
                if rc != SQLITE_OK:
                    break
                rc = _run_stmt(sl)
                if rc != SQLITE_OK:
                    break
                res[j] = 1
                j += 1
            if rc != SQLITE_OK:
                _copy_errmsg(db, errbuf)
            if si != NULL:
                API.finalize(si)
            if sl != NULL:
                API.finalize(sl)
            if mx != NULL:
                API.mutex_leave(mx)
        if rc != SQLITE_OK:
            _raise_sqlite(errbuf, rc)
    finally:
        free(tk.p)
        free(tk.n)
    return out


def stat_paths(list keys, bint follow=True):
    """``(size, mtime_ns, errno)`` int64 arrays of ``stat`` (``lstat`` unless ``follow``) of
    each path in ``keys`` (bytes), without the GIL: errno 0 where it succeeded (then size and
    mtime_ns as ``os.stat`` gives them), else the call's errno (size and mtime_ns -1).  The
    re-run of an ingest stats every file the ledger holds."""
    import numpy as np
    cdef Py_ssize_t n = len(keys), i
    cdef Texts t
    t.p = NULL
    t.n = NULL
    size = np.full(n, -1, np.int64)
    mtime = np.full(n, -1, np.int64)
    err = np.zeros(n, np.int64)
    cdef int64_t[::1] vs = size
    cdef int64_t[::1] vm = mtime
    cdef int64_t[::1] ve = err
    cdef stat_t st
    cdef int rc
    try:
        _texts(keys, &t)
        for i in range(n):
            # (a NUL inside a path: the C string would name another file)
            if <Py_ssize_t>strlen(t.p[i]) != t.n[i]:
                raise ValueError("embedded null byte")
        with nogil:
            for i in range(n):
                rc = c_stat(t.p[i], &st) if follow else c_lstat(t.p[i], &st)
                if rc != 0:
                    ve[i] = errno if errno != 0 else 5
                    continue
                vs[i] = st.st_size
                vm[i] = <int64_t>st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec
    finally:
        free(t.p)
        free(t.n)
    return size, mtime, err


def sqlite_insert_keys(con, str db_path, str sql, list keys, const uint8_t[::1] flags):
    """Run ``sql`` (two parameters: a blob and an integer) once per ``keys[i]`` (bytes) with
    ``flags[i]``, inside the caller's open transaction, without the GIL: the ``executemany``
    of the ledger keys a job saw, which took a Python tuple per file on the writer thread."""
    if not API_OK:
        raise RuntimeError("SQLite functions not available")
    cdef sqlite3* db = _handle(con, db_path)
    cdef Py_ssize_t n = len(keys), i
    if flags.shape[0] != n:
        raise ValueError("sqlite_insert_keys: keys and flags differ in length")
    cdef Texts t
    t.p = NULL
    t.n = NULL
    cdef bytes q = sql.encode()
    cdef const char* qs = q
    cdef sqlite3_stmt* st = NULL
    cdef int rc = SQLITE_OK
    cdef char errbuf[256]
    memset(errbuf, 0, sizeof(errbuf))
    try:
        _texts(keys, &t)
        with nogil:
            rc = API.prepare_v2(db, qs, -1, &st, NULL)
            i = 0
            while rc == SQLITE_OK and i < n:
                rc = API.bind_blob(st, 1, t.p[i], t.n[i], NULL)
                if rc == SQLITE_OK:
                    rc = API.bind_int64(st, 2, flags[i])
                if rc == SQLITE_OK:
                    rc = _run_stmt(st)
                i += 1
            if rc != SQLITE_OK:
                _copy_errmsg(db, errbuf)
            if st != NULL:
                API.finalize(st)
        if rc != SQLITE_OK:
            _raise_sqlite(errbuf, rc)
    finally:
        free(t.p)
        free(t.n)
