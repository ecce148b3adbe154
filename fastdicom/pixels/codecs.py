"""Codec registry: transfer syntax -> frame decoder, and the post-processing pydicom applies.

RLE Lossless is decoded by :mod:`fastdicom.pixels._rle`; JPEG, JPEG-LS, JPEG 2000, HTJ2K and
JPEG XL by `imagecodecs <https://pypi.org/project/imagecodecs/>`_ (the ``codecs`` extra);
Deflated Image Frame Compression with :mod:`zlib`.  A missing decoder raises
:class:`~fastdicom.errors.MissingCodecError`; an unknown syntax
:class:`~fastdicom.errors.UnsupportedTransferSyntaxError`.

After decoding, each frame goes through the steps pydicom 3 applies, so the arrays match
``ds.pixel_array``: the decoded samples are read with the data set's Pixel Representation and
stored in the dtype Bits Allocated gives; JPEG 2000 (MONOCHROME) samples whose codestream
signedness differs from Pixel Representation and signed JPEG-LS samples are sign-corrected at
the codestream precision; other syntaxes clear (or sign-extend) the bits above Bits Stored;
YBR_FULL / YBR_FULL_422 become RGB unless ``as_rgb=False``.  As with pydicom's GDCM and
pylibjpeg plugins, JPEG frames are decoded without a colour transform (the YCbCr -> RGB
conversion is pydicom's own), and the colour space is conformed to the codestream first
(RGB component IDs -> RGB; a JFIF marker under a non-YBR interpretation -> YBR).
"""
from __future__ import annotations

import struct
import zlib
from typing import Callable, Optional

import numpy as np

from fastdicom.errors import (LimitExceededError, MissingCodecError, PixelDataError,
                              UnsupportedTransferSyntaxError)
from fastdicom.pixels.locator import PIXEL_DATA, PixelInfo, allocate, memory_error

__all__ = ["DECODERS", "decoder_for", "decode_frame", "check_encoded_frame",
           "SIZE_CHECKED_SYNTAXES", "correct_bits", "to_rgb", "jpeg_parameters",
           "j2k_parameters", "available"]

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS_P14 = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR = "1.2.840.10008.1.2.4.81"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"
J2K_PART2_LOSSLESS = "1.2.840.10008.1.2.4.92"
J2K_PART2 = "1.2.840.10008.1.2.4.93"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"
JPEG_XL_LOSSLESS = "1.2.840.10008.1.2.4.110"
JPEG_XL_RECOMPRESSION = "1.2.840.10008.1.2.4.111"
JPEG_XL = "1.2.840.10008.1.2.4.112"
RLE = "1.2.840.10008.1.2.5"
DEFLATED_IMAGE_FRAME = "1.2.840.10008.1.2.8.1"
ENCAPSULATED_UNCOMPRESSED = "1.2.840.10008.1.2.1.98"

JPEG_SYNTAXES = frozenset({JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS_P14, JPEG_LOSSLESS_SV1})
JPEG_LS_SYNTAXES = frozenset({JPEG_LS_LOSSLESS, JPEG_LS_NEAR})
J2K_SYNTAXES = frozenset({J2K_LOSSLESS, J2K, J2K_PART2_LOSSLESS, J2K_PART2, HTJ2K_LOSSLESS,
                          HTJ2K_RPCL, HTJ2K})
JPEG_XL_SYNTAXES = frozenset({JPEG_XL_LOSSLESS, JPEG_XL_RECOMPRESSION, JPEG_XL})

_INSTALL = 'pip install "fastdicom[codecs]"'


class FrameState:
    """What a decoder learns from one codestream (pydicom's runner options)."""
    __slots__ = ("photometric", "precision", "signed", "native", "validation", "path", "out",
                 "in_place", "offset")

    def __init__(self, photometric: str, validation: str = "warn", path=None,
                 out: Optional[np.ndarray] = None, offset: Optional[int] = None):
        self.photometric = photometric
        self.validation = validation
        self.path = path
        self.offset = offset  # of the frame's first fragment item: named by the warnings
        self.precision: Optional[int] = None
        self.signed: Optional[bool] = None
        self.native = False   # output is native-layout bytes (frame-level deflate/uncompressed)
        self.out = out        # the caller's frame array, which a decoder may decode into
        self.in_place = False  # the decoder wrote the final samples into ``out``


# ---------------------------------------------------------------------------------------------
# codestream parameters

_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}


def jpeg_parameters(src) -> dict:
    """Parameters of a JPEG / JPEG-LS codestream header: ``precision``, ``height``,
    ``width``, ``components``, ``component_ids``, ``app`` (marker -> bytes) — what pydicom's
    ``_get_jpg_parameters`` reports, plus the declared size.  The marker segments are walked
    up to the start of scan, however far that is (only their lengths are read)."""
    data = src if type(src) is bytes else bytes(src)
    out: dict = {"app": {}}
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return out
    pos = 2
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:          # fill byte
            pos += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 2 or pos + 2 + length > n:
            break
        if 0xE0 <= marker <= 0xEF:
            out["app"][marker] = data[pos + 4:pos + 2 + length]
        elif marker in _SOF_MARKERS and length >= 8 and "height" not in out:
            segment = data[pos + 4:pos + 2 + length]
            out["precision"] = segment[0]
            out["height"] = (segment[1] << 8) | segment[2]
            out["width"] = (segment[3] << 8) | segment[4]
            count = segment[5]
            out["components"] = count
            ids = [segment[6 + 3 * k] for k in range(count) if 6 + 3 * k < len(segment)]
            out["component_ids"] = ids
        elif marker == 0xDA:        # start of scan: header done
            break
        pos += 2 + length
    return out


def j2k_parameters(src) -> dict:
    """``precision`` and ``is_signed`` of the first component, ``width``, ``height`` and
    ``components`` from a JPEG 2000 SIZ marker (raw codestream or JP2 file)."""
    data = src if type(src) is bytes else bytes(src)
    start = 0
    if data[:4] != _SOC_SIZ:
        # a JP2 file: the codestream of its Contiguous Codestream box, the one the decoder
        # reads (not the first SOC SIZ found anywhere: one in an earlier box, an XML box say,
        # would pass the size check for the decoder to allocate from another)
        start = _box_content(data, _JP2_SIGNATURE, b"jp2c")
        if start < 0 or data[start:start + 4] != _SOC_SIZ:
            return {}
    if len(data) < start + 43:
        return {}
    xsiz, ysiz, xo, yo = struct.unpack_from(">IIII", data, start + 8)
    csiz = struct.unpack_from(">H", data, start + 40)[0]
    ssiz = data[start + 42]
    return {"precision": (ssiz & 0x7F) + 1, "is_signed": bool(ssiz & 0x80),
            "width": xsiz - xo if xsiz > xo else 0, "height": ysiz - yo if ysiz > yo else 0,
            "components": csiz}


_SOC_SIZ = b"\xff\x4f\xff\x51"
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_JXL_SIGNATURE = b"\x00\x00\x00\x0cJXL \r\n\x87\n"


def _box_content(data: bytes, signature: bytes, kind: bytes) -> int:
    """The offset of the content of the first top-level box of type ``kind`` in an ISO base
    media file (JP2, JPEG XL container) starting with ``signature``; -1 when there is none
    (every box length checked against the bytes present)."""
    if data[:len(signature)] != signature:
        return -1
    pos, n = 0, len(data)
    for _ in range(10_000):
        if pos + 8 > n:
            return -1
        size, box = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:                   # a 64-bit length follows
            if pos + 16 > n:
                return -1
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            head = 16
        elif size == 0:                 # the last box: to the end of the data
            size = n - pos
        if box == kind:
            return pos + head
        if size < head:
            return -1
        pos += size
    return -1


class _Bits:
    """Bits of a byte string, least significant first (the JPEG XL bit stream)."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.bit = data, 8 * pos

    def u(self, n: int) -> int:
        v = 0
        for k in range(n):
            byte = self.bit >> 3
            if byte >= len(self.data):
                raise ValueError("JPEG XL header cut short")
            v |= ((self.data[byte] >> (self.bit & 7)) & 1) << k
            self.bit += 1
        return v

    def size(self) -> int:      # U32(1 + u(9), 1 + u(13), 1 + u(18), 1 + u(30))
        return 1 + self.u((9, 13, 18, 30)[self.u(2)])


# width / height of the JPEG XL SizeHeader's ratio codes 1..7 (ISO/IEC 18181-1 D.2)
_JXL_RATIOS = ((1, 1), (12, 10), (4, 3), (3, 2), (16, 9), (5, 4), (2, 1))


def jpegxl_parameters(src) -> dict:
    """``width`` and ``height`` from the SizeHeader of a JPEG XL codestream (bare, or in the
    ``jxlc`` / first ``jxlp`` box of the container); {} when there is none."""
    data = src if type(src) is bytes else bytes(src)
    start = 0
    if data[:2] != b"\xff\x0a":
        start = _box_content(data, _JXL_SIGNATURE, b"jxlc")
        if start < 0:
            start = _box_content(data, _JXL_SIGNATURE, b"jxlp")
            start = start + 4 if start >= 0 else -1     # (a part index precedes it)
        if start < 0 or data[start:start + 2] != b"\xff\x0a":
            return {}
    bits = _Bits(data, start + 2)
    try:
        small = bits.u(1)
        height = 8 * (1 + bits.u(5)) if small else bits.size()
        ratio = bits.u(3)
        if ratio:
            num, den = _JXL_RATIOS[ratio - 1]
            width = height * num // den
        else:
            width = 8 * (1 + bits.u(5)) if small else bits.size()
    except ValueError:
        return {}
    return {"width": width, "height": height}


def _check_declared_size(params: dict, info: PixelInfo, ts: str, name: str) -> None:
    """Refuse a codestream whose header declares another size than the frame: its decoded
    samples could never make the frame (that is checked after decoding too), and a codec
    allocates its output from these numbers before it finds out (a garbage width of
    millions is a memory bomb).  A header we cannot find is refused the same way."""
    if "width" not in params:
        raise PixelDataError(f"{name} codestream has no frame header (SOF/SIZ) "
                             f"(transfer syntax {ts})", tag=info.tag)
    declared = params["width"] * params["height"] * params["components"]
    if declared != info.pixels_per_frame:
        raise PixelDataError(
            f"{name} codestream declares {params['height']} x {params['width']} x "
            f"{params['components']} samples, the header {info.rows} x {info.columns} x "
            f"{info.samples_per_pixel} (transfer syntax {ts})", tag=info.tag)


def _conform_colour(info: PixelInfo, state: FrameState, params: dict, ts: str) -> None:
    """pydicom's ``_conform_jpg_colorspace``: trust the codestream over the header."""
    if info.samples_per_pixel != 3:
        return
    pi = state.photometric
    if params.get("component_ids") in ([82, 71, 66], [114, 103, 98]):
        if pi != "RGB":
            state.photometric = "RGB"
        return
    cs = "YBR_FULL_422" if ts == JPEG_BASELINE else "YBR_FULL"
    for segment in params.get("app", {}).values():
        if segment.startswith(b"JFIF") and "YBR" not in pi:
            state.photometric = cs
            return


# ---------------------------------------------------------------------------------------------
# decoders: (src, info, state) -> ndarray of samples

def _imagecodecs(ts: str):
    try:
        import imagecodecs
    except ImportError:
        raise MissingCodecError(f"decoding transfer syntax {ts} needs imagecodecs: "
                                f"{_INSTALL}") from None
    return imagecodecs


# what a codec library raises on bad data (imagecodecs: RuntimeError subclasses; some checks
# raise ValueError); anything else is a bug of ours and propagates
_CODEC_ERRORS = (RuntimeError, ValueError, OverflowError)


def _codec_call(ts: str, name: str, func, src, **kwargs):
    try:
        return func(src, **kwargs)
    except _CODEC_ERRORS as exc:  # imagecodecs' *Error types derive from RuntimeError
        raise PixelDataError(f"{name} failed to decode a frame of transfer syntax {ts}: "
                             f"{type(exc).__name__}") from exc


def _need(module, attr: str, ts: str):
    func = getattr(module, attr, None)
    codec = getattr(module, attr.split("_")[0].upper(), None)
    if func is None or (codec is not None and not getattr(codec, "available", True)):
        raise MissingCodecError(f"decoding transfer syntax {ts} needs imagecodecs with "
                                f"{attr}: {_INSTALL}")
    return func


def _decode_jpeg(src, info: PixelInfo, state: FrameState):
    ts = info.transfer_syntax
    ic = _imagecodecs(ts)
    params = jpeg_parameters(src)
    _check_declared_size(params, info, ts, "JPEG")
    _conform_colour(info, state, params, ts)
    state.precision = params.get("precision")
    kwargs = {}
    if info.samples_per_pixel == 3:
        # decode without a colour transform, as pydicom's GDCM / libjpeg plugins do
        space = ic.JPEG8.CS.YCbCr if "YBR" in state.photometric else ic.JPEG8.CS.RGB
        kwargs = {"colorspace": space, "outcolorspace": space}
    # libjpeg-turbo (3.x: lossless too).  The lossless-only decoders imagecodecs also has
    # (ljpeg, jpegsof3) crash the interpreter on corrupt streams: not used.
    if getattr(ic, "jpeg8_decode", None) is None or not ic.JPEG8.available:
        raise MissingCodecError(f"decoding transfer syntax {ts} needs imagecodecs with "
                                f"jpeg8: {_INSTALL}")
    return _codec_call(ts, "JPEG", ic.jpeg8_decode, src, **kwargs)


def _decode_jpegls(src, info: PixelInfo, state: FrameState):
    ts = info.transfer_syntax
    ic = _imagecodecs(ts)
    params = jpeg_parameters(src)
    _check_declared_size(params, info, ts, "JPEG-LS")
    _conform_colour(info, state, params, ts)
    state.precision = params.get("precision")
    # CharLS needs the end-of-image marker and fails without it, but a stream cut short at
    # some points keeps it busy for seconds first (a 56-byte stream cut to 30: 4 s).  FFD9
    # cannot occur inside JPEG-LS scan data (a byte after FF has its high bit clear), so it is
    # looked for where pydicom looks for codestream ends: in the last 10 bytes (padding may
    # follow it).
    if b"\xff\xd9" not in bytes(memoryview(src)[-10:]):
        raise PixelDataError(f"JPEG-LS codestream has no end-of-image marker (cut short?) "
                             f"(transfer syntax {ts})", tag=info.tag)
    return _codec_call(ts, "JPEG-LS", _need(ic, "jpegls_decode", ts), src)


def _decode_j2k(src, info: PixelInfo, state: FrameState):
    ts = info.transfer_syntax
    ic = _imagecodecs(ts)
    params = j2k_parameters(src)
    _check_declared_size(params, info, ts, "JPEG 2000")
    state.precision = params.get("precision")
    state.signed = params.get("is_signed")
    if ts in (HTJ2K_LOSSLESS, HTJ2K_RPCL, HTJ2K) and not getattr(ic.JPEG2K, "available", True):
        func = _need(ic, "htj2k_decode", ts)
    else:
        func = _need(ic, "jpeg2k_decode", ts)
    arr = _codec_call(ts, "JPEG 2000", func, src)
    # openjpeg applies the inverse component transform: YBR_ICT / YBR_RCT come out RGB
    if state.photometric in ("YBR_ICT", "YBR_RCT"):
        state.photometric = "RGB"
    if state.signed is None:
        state.signed = arr.dtype.kind == "i"
    return arr


def _decode_jpegxl(src, info: PixelInfo, state: FrameState):
    ts = info.transfer_syntax
    ic = _imagecodecs(ts)
    params = jpegxl_parameters(src)
    if not params:
        raise PixelDataError(f"JPEG XL codestream has no size header (transfer syntax {ts})",
                             tag=info.tag)
    if (params["height"], params["width"]) != (info.rows, info.columns):
        # (libjxl allocates the image its header declares before anything can be checked)
        raise PixelDataError(
            f"JPEG XL codestream declares {params['height']} x {params['width']} pixels, the "
            f"header {info.rows} x {info.columns} (transfer syntax {ts})", tag=info.tag)
    arr = _codec_call(ts, "JPEG XL", _need(ic, "jpegxl_decode", ts), src)
    if info.samples_per_pixel == 3 and "YBR" in state.photometric:
        state.photometric = "RGB"   # libjxl returns RGB samples
    return arr


def _rle_target(out: Optional[np.ndarray], info: PixelInfo) -> Optional[np.ndarray]:
    """``out`` as the bytes the RLE decoder writes (little-endian samples of Bits Allocated,
    interleaved), or None when its layout differs."""
    if out is None or not out.flags.c_contiguous or not out.flags.writeable \
            or out.shape != info.frame_shape or out.dtype.kind not in "iu" \
            or out.dtype.itemsize * 8 != info.bits_allocated or out.dtype.str[0] not in "<|":
        return None
    return out.reshape(-1).view(np.uint8)


def _decode_rle(src, info: PixelInfo, state: FrameState):
    """Decode straight into the caller's array (or into the one array returned), checking
    the header and segment lengths before anything is allocated."""
    from fastdicom.pixels._rle import rle_check_frame, rle_decode_frame, rle_decode_frame_into
    if info.bits_allocated == 1:
        raise PixelDataError("RLE Lossless with Bits Allocated 1 is not supported",
                             tag=info.tag)
    if state.out is None:
        rle_check_frame(src, memoryview(src).nbytes, info.rows, info.columns,
                        info.samples_per_pixel, info.bits_allocated, path=state.path,
                        offset=state.offset)
        state.out = allocate(info.frame_shape, info.dtype, path=state.path, tag=info.tag)
    target = _rle_target(state.out, info)
    if target is None:      # an out of another layout: decode apart, decode_frame copies
        return rle_decode_frame(src, info.rows, info.columns, info.samples_per_pixel,
                                info.bits_allocated, info.pixel_representation,
                                path=state.path, offset=state.offset,
                                validation=state.validation)
    rle_decode_frame_into(src, target, info.rows, info.columns, info.samples_per_pixel,
                          info.bits_allocated, path=state.path, offset=state.offset,
                          validation=state.validation)
    state.in_place = True
    return state.out


#: syntaxes whose encoded frames :func:`check_encoded_frame` can bound before decoding
SIZE_CHECKED_SYNTAXES = frozenset({RLE})


def check_encoded_frame(head, length: int, info: PixelInfo) -> None:
    """Refuse, before anything is allocated for it, an encoded frame of ``length`` bytes
    (``head``: its first 64 bytes at least, or all of it) that cannot decode to the frame the
    header declares.  RLE Lossless: a segment of n bytes decodes to at most 128 * (n // 2)
    bytes (a 500-byte file cannot make 8 GiB); other syntaxes are checked when decoded."""
    if info.transfer_syntax in SIZE_CHECKED_SYNTAXES and info.bits_allocated != 1:
        from fastdicom.pixels._rle import rle_check_frame
        rle_check_frame(head, length, info.rows, info.columns, info.samples_per_pixel,
                        info.bits_allocated)


def _full_422_size(info: PixelInfo) -> Optional[int]:
    """For a YBR_FULL_422 native-layout frame, the size (even) it would have unsubsampled:
    a frame that large was almost certainly written as RGB / YBR_FULL (pydicom's rule for
    native data, PS3.3 C.7.6.3.1.2); None for other frames."""
    if info.photometric != "YBR_FULL_422" or info.bits_allocated == 1:
        return None
    full = info.frame_bytes // 2 * 3
    return full + full % 2


def _third_larger(info: PixelInfo, kind: str) -> PixelDataError:
    return PixelDataError(f"{kind} frame is a third larger than YBR_FULL_422 allows: the "
                          "Photometric Interpretation is probably RGB or YBR_FULL",
                          tag=info.tag)


def _decode_deflated_frame(src, info: PixelInfo, state: FrameState):
    expected = info.frame_bytes
    full = _full_422_size(info)
    inflater = zlib.decompressobj(-15)
    try:
        # inflate no more than one byte past what the frame may hold (a bomb stops there)
        out = inflater.decompress(src, (full if full is not None else expected) + 1)
    except zlib.error as exc:
        raise PixelDataError("Deflated Image Frame Compression: corrupt deflate stream",
                             tag=info.tag) from exc
    if full is not None and len(out) >= full:
        raise _third_larger(info, "deflated")
    if len(out) != expected and not (len(out) == expected + 1 and expected % 2):
        raise PixelDataError(f"deflated frame inflates to {len(out)} bytes or more, "
                             f"{expected} expected", tag=info.tag)
    state.native = True
    return out[:expected]


def _decode_uncompressed(src, info: PixelInfo, state: FrameState):
    expected = info.frame_bytes
    if len(src) < expected:
        raise PixelDataError(f"encapsulated uncompressed frame holds {len(src)} bytes, "
                             f"{expected} expected", tag=info.tag)
    full = _full_422_size(info)
    if full is not None and len(src) >= full:
        raise _third_larger(info, "encapsulated uncompressed")
    state.native = True
    return bytes(src[:expected])


Decoder = Callable[[object, PixelInfo, FrameState], object]

#: transfer syntax UID -> (name, decoder)
DECODERS: dict[str, tuple[str, Decoder]] = {}
for _ts in JPEG_SYNTAXES:
    DECODERS[_ts] = ("imagecodecs.jpeg8", _decode_jpeg)
for _ts in JPEG_LS_SYNTAXES:
    DECODERS[_ts] = ("imagecodecs.jpegls", _decode_jpegls)
for _ts in J2K_SYNTAXES:
    DECODERS[_ts] = ("imagecodecs.jpeg2k", _decode_j2k)
for _ts in JPEG_XL_SYNTAXES:
    DECODERS[_ts] = ("imagecodecs.jpegxl", _decode_jpegxl)
DECODERS[RLE] = ("fastdicom.rle", _decode_rle)
DECODERS[DEFLATED_IMAGE_FRAME] = ("zlib", _decode_deflated_frame)
DECODERS[ENCAPSULATED_UNCOMPRESSED] = ("native", _decode_uncompressed)


def decoder_for(ts: str) -> Decoder:
    entry = DECODERS.get(ts)
    if entry is None:
        raise UnsupportedTransferSyntaxError(f"no decoder for transfer syntax {ts}")
    return entry[1]


def available() -> dict[str, bool]:
    """Transfer syntax -> whether its decoder can run here."""
    try:
        import imagecodecs
    except ImportError:
        imagecodecs = None
    result = {}
    for ts, (name, _f) in DECODERS.items():
        if name.startswith("imagecodecs."):
            codec = name.split(".")[1].upper()
            result[ts] = imagecodecs is not None and bool(
                getattr(getattr(imagecodecs, codec, None), "available", False))
        else:
            result[ts] = True
    return result


# ---------------------------------------------------------------------------------------------
# post-processing (pydicom's order)

def correct_bits(arr: np.ndarray, shift: int) -> np.ndarray:
    """``(arr << shift) >> shift`` in place: clears (unsigned) or sign-extends (signed) the
    bits above ``itemsize*8 - shift``."""
    if shift > 0 and arr.dtype.kind in "iu":
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)
    return arr


def to_rgb(arr: np.ndarray, bits_stored: Optional[int] = None) -> np.ndarray:
    """YBR_FULL samples (..., 3) to RGB as pydicom does (uint8 via the Cython kernel).  Wider
    unsigned samples (pydicom converts 8-bit ones only) take their chroma offset and range
    from ``bits_stored`` (PS3.3 C.7.6.3.1.2), else from the sample type."""
    if arr.dtype == np.uint8:
        from fastdicom.pixels._color import ybr_full_to_rgb
        if arr.flags.c_contiguous and arr.flags.writeable:
            return ybr_full_to_rgb(arr, arr)
        return ybr_full_to_rgb(arr)
    # wider samples: pydicom's float32 arithmetic with an offset of half the range
    bits = arr.dtype.itemsize * 8
    kind = arr.dtype.kind
    if kind == "u" and bits_stored is not None and 0 < bits_stored < bits:
        bits = bits_stored
    ybr = arr.astype(np.float32)
    offset = np.float32(2 ** (bits - 1))
    ybr[..., 1:] -= offset
    matrix = np.asarray([[1.000, 1.000, 1.000],
                         [0.000, -0.114 * 1.772 / 0.587, 1.772],
                         [1.402, -0.299 * 1.402 / 0.587, 0.000]], dtype=np.float32)
    rgb = np.dot(ybr, matrix)
    rgb += np.float32(0.5)
    np.floor(rgb, out=rgb)
    lo, hi = (0, 2 ** bits - 1) if kind == "u" else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    np.clip(rgb, lo, hi, out=rgb)
    return rgb.astype(arr.dtype)


def _as_frame_shape(arr: np.ndarray, info: PixelInfo, ts: str) -> np.ndarray:
    rows, cols, spp = info.rows, info.columns, info.samples_per_pixel
    if arr.size != info.pixels_per_frame:
        raise PixelDataError(f"decoded frame has {arr.size} samples, the header declares "
                             f"{rows} x {cols} x {spp} = {info.pixels_per_frame} "
                             f"(transfer syntax {ts})", tag=info.tag)
    if spp == 1:
        return arr.reshape(rows, cols)
    if arr.shape == (spp, rows, cols) and arr.shape != (rows, cols, spp):
        return arr.transpose(1, 2, 0)       # planar output
    return arr.reshape(rows, cols, spp)


def decode_frame(src, info: PixelInfo, *, as_rgb: bool = True, path=None,
                 out: Optional[np.ndarray] = None, validation: str = "warn",
                 offset: Optional[int] = None) -> np.ndarray:
    """Decode one encoded frame to an array of ``info.frame_shape`` / ``info.dtype``.  Running
    out of memory for the decoded frame raises LimitExceededError.  ``offset`` (the file
    offset of the frame's first fragment item) is given to the errors the frame's bytes
    cause."""
    ts = info.transfer_syntax
    decoder = decoder_for(ts)
    state = FrameState(info.photometric, validation, path, out, offset)
    try:
        decoded = decoder(src, info, state)
    except MissingCodecError as exc:    # (not the bytes' fault: no offset)
        raise exc.with_context(path=path, tag=info.tag)
    except PixelDataError as exc:
        raise exc.with_context(path=path, offset=offset, tag=info.tag)
    except MemoryError:     # the codec's output buffer (inflated bytes, decoded image...)
        raise memory_error(info.decoded_frame_bytes, path=path, tag=info.tag) from None
    if state.native:
        from fastdicom.pixels.native import native_frame_from_bytes
        try:
            arr = native_frame_from_bytes(decoded, info, index=0, as_rgb=as_rgb)
        except LimitExceededError as exc:
            raise exc.with_context(path=path)
        except PixelDataError as exc:
            raise exc.with_context(path=path, offset=offset, tag=info.tag)
        if out is not None:
            out[...] = arr
            return out
        return arr
    if state.in_place:
        out = decoded       # the decoder wrote the samples into out, in out's dtype
    else:
        decoded = np.asarray(decoded)
        try:
            decoded = _as_frame_shape(decoded, info, ts)
        except PixelDataError as exc:
            raise exc.with_context(path=path, offset=offset)
        # read the decoded samples with the data set's signedness (pydicom reinterprets
        # bytes)
        if decoded.dtype.kind in "iu" and info.tag == PIXEL_DATA:
            kind = "ui"[info.pixel_representation]
            decoded = decoded.view(np.dtype(f"{kind}{decoded.dtype.itemsize}")
                                   .newbyteorder(decoded.dtype.byteorder if
                                                 decoded.dtype.byteorder in "<>" else "="))
        if out is None:
            out = allocate(info.frame_shape, info.dtype, path=path, tag=info.tag)
        out[...] = decoded
    if info.tag == PIXEL_DATA:
        itembits = out.dtype.itemsize * 8
        if ts in J2K_SYNTAXES:
            if state.photometric in ("MONOCHROME1", "MONOCHROME2"):
                precision = state.precision or info.bits_stored
                signed = info.pixel_representation if state.signed is None else int(state.signed)
                if signed != info.pixel_representation:
                    correct_bits(out, itembits - precision)
        elif ts in JPEG_LS_SYNTAXES:
            if info.pixel_representation == 1:
                correct_bits(out, itembits - (state.precision or info.bits_stored))
        elif info.bits_allocated > info.bits_stored:
            correct_bits(out, info.bits_allocated - info.bits_stored)
    if as_rgb and state.photometric in ("YBR_FULL", "YBR_FULL_422") and out.ndim == 3:
        converted = to_rgb(out, info.bits_stored)
        if converted is not out:
            out[...] = converted
    return out
