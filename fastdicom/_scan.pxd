# The contract between the scanner and other Cython modules.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, int64_t, uint64_t

# Status codes returned by the nogil hot loop; fastdicom.errors maps them to exceptions.
cdef enum Status:
    ST_OK = 0
    ST_TRUNCATED = 1          # a header or value runs past the end of the buffer
    ST_MALFORMED = 2          # a structural rule is broken
    ST_UNDEFINED_LENGTH = 3   # 0xFFFFFFFF on a VR that cannot have it
    ST_BAD_VR = 4             # explicit VR bytes are not two upper-case letters
    ST_WRONG_ITEM_TAG = 5     # something other than an item/delimiter inside a sequence
    ST_STRAY_DELIMITER = 6    # an item/sequence delimiter where none is open
    ST_TOO_DEEP = 7           # nesting over limits.max_depth
    ST_TOO_MANY = 8           # element count over limits.max_elements
    ST_NO_MEMORY = 9
    ST_BAD_FRAGMENT = 10      # encapsulated pixel data: an item that is not a fragment
    ST_EOF_IN_SEQUENCE = 11   # undefined-length sequence/item without delimiter at EOF

# Entry flags
cdef enum EntryFlags:
    F_UNDEFINED = 1       # the element/item had undefined length in the file
    F_UN_SQ = 2           # UN with undefined length, parsed as an implicit VR LE sequence
    F_ODD = 4             # odd value length
    F_ITEM = 8            # an item (FFFE,E000) of a sequence
    F_FRAGMENT = 16       # a fragment item of encapsulated pixel data
    F_ENCAPSULATED = 32   # encapsulated pixel data (fragments follow as children)
    F_CLIPPED = 64        # value ran past the end of the data and was clipped (lenient)
    F_IMPLICIT = 128      # element was read with implicit VR (VR from the dictionary)
    F_BIG_ENDIAN = 256    # value is big endian
    F_SQ_BLOB = 512       # defined-length value that may hold a sequence not scanned yet

ctypedef struct Entry:
    uint32_t tag
    uint16_t vr           # two ASCII bytes, first in the high byte; 0 = implicit, look it up
    uint16_t flags
    int64_t header_offset # offset of the first byte of the tag
    int64_t value_offset
    int64_t length        # value length; for undefined-length items/sequences the bytes up to the delimiter
    int32_t parent        # index of the enclosing item (or sequence, for items/fragments); -1 at the root
    int32_t depth
    int32_t next          # index of the next sibling (one past the last descendant)
    int32_t _pad
