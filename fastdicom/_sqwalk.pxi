# Cython include shared by the fast header walks of _batch.pyx (scan) and _series.pyx
# (load_series): the structure check of the sequence values they pass over.
#
# Include it after the module's ``Src`` struct, its ``need(Src*, pos, n)`` (pointer to bytes
# [pos, pos + n) or NULL), ``UNDEF`` and ``_dict_sq.pxi`` (``dict_is_sq``).
#
# The rule: a fast walk must never accept a file that the general reader
# (fastdicom._scan.scan_core, as dcmread runs it) refuses, or read it differently.  The
# general reader scans every sequence it meets except defined-length ones of
# ``dataset.DEFER_SQ_BYTES`` or more (those on first access), so a sequence the fast walk
# does not look into could hide an item that makes dcmread fail.  These functions follow the
# general reader's rules where it reads a structure one way (SQ from the dictionary in
# implicit VR, an implicit VR item inside explicit VR data, the blob rule for a
# dictionary SQ whose value is no list of items) and give up (-1: the caller falls back to the
# general reader, which then judges) wherever it tolerates or refuses something: a delimiter
# inside a defined-length container, a value past its container, an unknown VR, encapsulated
# pixel data inside an item, nesting at the depth limit, a truncated structure.

cdef enum:
    # == fastdicom.dataset.DEFER_SQ_BYTES (a test checks)
    SQ_DEFER_BYTES = 65536

SQ_CHECK_DEFER_BYTES = SQ_DEFER_BYTES


cdef int sq_items(Src* s, int64_t pos, int64_t end, int64_t limit, bint explicit, bint le,
                  int depth, int max_depth, int64_t* out) noexcept nogil:
    """The items of a sequence value starting at ``pos`` and ending at ``end`` (defined
    length) or at its delimiter (``end`` = -1); ``limit`` is the size of the data (-1:
    unknown).  0 with the position after the value in ``out``, or -1."""
    cdef const uint8_t* p
    cdef uint32_t tag, length
    cdef int64_t item_end
    if depth >= max_depth:
        return -1
    while True:
        if end >= 0 and pos == end:
            out[0] = pos
            return 0
        if end >= 0 and end - pos < 8:
            return -1
        p = need(s, pos, 8)
        if p == NULL:
            return -1
        tag = rdtag(p, le)
        length = rd32(p + 4, le)
        if tag == 0xFFFEE0DDu and end < 0:
            out[0] = pos + 8
            return 0
        if tag != 0xFFFEE000u:
            return -1
        pos += 8
        item_end = -1
        if length != UNDEF:
            item_end = pos + <int64_t>length
            if (end >= 0 and item_end > end) or (limit >= 0 and item_end > limit):
                return -1
        if sq_elements(s, pos, item_end, limit, explicit, le, depth, max_depth, &pos) != 0:
            return -1


cdef int sq_value(Src* s, int64_t pos, uint32_t tag, uint16_t vr, uint32_t length,
                  int64_t limit, bint explicit, bint le, int depth, int max_depth) noexcept nogil:
    """A defined-length value at ``pos`` (inside the data): 0 when it is not a sequence the
    general reader scans at once, or is one whose structure it reads the same way; -1
    otherwise.  ``vr`` is the explicit VR (unused in implicit VR)."""
    cdef const uint8_t* p
    cdef int64_t after
    if explicit:
        if vr != 0x5351:                # SQ
            return 0
    elif not dict_is_sq(tag):
        return 0
    if length >= SQ_DEFER_BYTES:
        return 0
    if not explicit and length >= 8:
        # the general reader keeps a dictionary SQ that is no list of items as a blob
        p = need(s, pos, 4)
        if p == NULL:
            return -1
        if rdtag(p, le) != 0xFFFEE000u:
            return 0
    return sq_items(s, pos, pos + <int64_t>length, limit, explicit, le, depth, max_depth,
                    &after)


cdef int sq_elements(Src* s, int64_t pos, int64_t end, int64_t limit, bint explicit, bint le,
                     int depth, int max_depth, int64_t* out) noexcept nogil:
    """The elements of an item starting at ``pos``, up to ``end`` or its delimiter."""
    cdef const uint8_t* p
    cdef uint32_t tag, length
    cdef uint16_t vr = 0
    cdef int64_t vend
    cdef bint sq
    # an item of an explicit VR data set may be encoded with implicit VR: the general reader
    # decides from the VR bytes of its first element
    if explicit and (end - pos >= 6 if end >= 0 else True):
        p = need(s, pos, 6)
        if p != NULL and rd16(p, le) != 0xFFFEu and not (is_upper(p[4]) and is_upper(p[5])):
            explicit = False
    while True:
        if end >= 0 and pos == end:
            out[0] = pos
            return 0
        if end >= 0 and end - pos < 8:
            return -1
        p = need(s, pos, 8)
        if p == NULL:
            return -1
        tag = rdtag(p, le)
        if (tag >> 16) == 0xFFFEu:
            if tag == 0xFFFEE00Du and end < 0:
                out[0] = pos + 8
                return 0
            return -1
        if explicit:
            vr = <uint16_t>((p[4] << 8) | p[5])
            if not is_known_vr(vr):
                return -1
            if is_long_vr(p[4], p[5]):
                if end >= 0 and end - pos < 12:
                    return -1
                p = need(s, pos, 12)
                if p == NULL:
                    return -1
                length = rd32(p + 8, le)
                pos += 12
            else:
                length = rd16(p + 6, le)
                pos += 8
            sq = vr == 0x5351
        else:
            length = rd32(p + 4, le)
            pos += 8
            sq = dict_is_sq(tag)
        if length == UNDEF:
            if tag == 0x7FE00010u and not sq:
                return -1               # encapsulated pixel data in an item (an icon)
            if explicit and not sq and vr != 0x554E:
                return -1               # only SQ and UN may have undefined length
            if sq_items(s, pos, -1, limit, explicit, le, depth + 1, max_depth, &pos) != 0:
                return -1
            continue
        vend = pos + <int64_t>length
        if (end >= 0 and vend > end) or (limit >= 0 and vend > limit):
            return -1
        if sq_value(s, pos, tag, vr, length, limit, explicit, le, depth + 1, max_depth) != 0:
            return -1
        pos = vend
