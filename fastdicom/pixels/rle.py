"""RLE Lossless (PS3.5 Annex G): decode a frame to an array or into a buffer, encode a frame.

The work happens in the Cython module :mod:`fastdicom.pixels._rle` (decoding releases the
GIL); this module is the stable import path.
"""
from fastdicom.pixels._rle import (
    MAX_FRAME_BYTES,
    rle_check_frame,
    rle_decode_frame,
    rle_decode_frame_into,
    rle_encode_frame,
)

__all__ = ["MAX_FRAME_BYTES", "rle_check_frame", "rle_decode_frame", "rle_decode_frame_into",
           "rle_encode_frame"]
