"""UIDs and transfer-syntax properties over the generated dictionary.

Transfer-syntax properties are data-driven (``TRANSFER_SYNTAXES`` in
:mod:`fastdicom._dictionary`, assigned from PS3.5), not hard-coded lists, so
they differ from pydicom 3.0.2 for a few rarely-seen syntaxes:

* JPIP referenced (…4.94/95/204/205), MIME (…6.1), XML (…6.2) and SMPTE
  ST 2110 (…7.x) carry no encapsulated pixel data: ``is_encapsulated`` /
  ``is_compressed`` are ``False`` (pydicom: ``True``);
* the "…Deflate" JPIP syntaxes are ``is_deflated`` (pydicom: ``False``);
* Papyrus 3 Implicit VR Little Endian (1.2.840.10008.1.20, retired) is
  implicit VR and not compressed (pydicom: explicit, compressed);
* JPEG XL (…4.110-112) and Deflated Image Frame Compression (…8.1) are known
  transfer syntaxes (absent from pydicom 3.0.2's UID table);
* the GE private syntax 1.2.840.113619.5.2 (implicit VR little endian with
  big-endian pixel data) is a known transfer syntax.
"""
from __future__ import annotations

from dataclasses import dataclass

from ._dictionary import TRANSFER_SYNTAXES, UIDS

__all__ = [
    "UID",
    "TransferSyntaxInfo",
    "transfer_syntax_info",
    "ImplicitVRLittleEndian",
    "ExplicitVRLittleEndian",
    "DeflatedExplicitVRLittleEndian",
    "ExplicitVRBigEndian",
    "RLELossless",
    "JPEGBaseline8Bit",
    "JPEGExtended12Bit",
    "JPEGLossless",
    "JPEGLosslessSV1",
    "JPEGLSLossless",
    "JPEGLSNearLossless",
    "JPEG2000Lossless",
    "JPEG2000",
    "HTJ2KLossless",
    "HTJ2KLosslessRPCL",
    "HTJ2K",
    "JPEGXLLossless",
    "JPEGXLJPEGRecompression",
    "JPEGXL",
]


@dataclass(frozen=True, slots=True)
class TransferSyntaxInfo:
    uid: str
    name: str
    explicit_vr: bool
    little_endian: bool
    deflated: bool
    encapsulated: bool
    codec: str
    lossy: str
    retired: bool
    private: bool


def _make_info(uid: str) -> TransferSyntaxInfo:
    p = TRANSFER_SYNTAXES[uid]
    return TransferSyntaxInfo(
        uid=uid, name=p["name"], explicit_vr=p["explicit_vr"], little_endian=p["little_endian"],
        deflated=p["deflated"], encapsulated=p["encapsulated"], codec=p["codec"],
        lossy=p["lossy"], retired=p["retired"], private=p["private"],
    )


_TS_INFO: dict[str, TransferSyntaxInfo] = {uid: _make_info(uid) for uid in TRANSFER_SYNTAXES}


def transfer_syntax_info(uid: str) -> TransferSyntaxInfo | None:
    """Properties of a known transfer syntax (surrounding whitespace and
    trailing NUL padding ignored), else ``None``."""
    info = _TS_INFO.get(uid)
    if info is None and isinstance(uid, str):
        info = _TS_INFO.get(uid.strip(" \x00"))
    return info


class UID(str):
    """A UID string with dictionary-backed properties.

    Leading/trailing spaces and NUL padding are stripped on construction.
    Transfer-syntax properties raise ``ValueError`` for UIDs that are not a
    known transfer syntax (as pydicom does).
    """

    __slots__ = ()

    def __new__(cls, val: str) -> "UID":
        if not isinstance(val, str):
            raise TypeError("A UID must be created from a string")
        return super().__new__(cls, val.strip(" \x00"))

    # -- dictionary --------------------------------------------------------
    @property
    def name(self) -> str:
        """Dictionary name, or the UID itself when unknown."""
        entry = UIDS.get(self)
        if entry is not None:
            return entry[1]
        ts = TRANSFER_SYNTAXES.get(self)
        if ts is not None:
            return ts["name"]
        return str(self)

    @property
    def keyword(self) -> str:
        entry = UIDS.get(self)
        if entry is not None:
            return entry[0]
        ts = TRANSFER_SYNTAXES.get(self)
        return ts["keyword"] if ts is not None else ""

    @property
    def type(self) -> str:
        entry = UIDS.get(self)
        if entry is not None:
            return entry[2]
        return "Transfer Syntax" if self in TRANSFER_SYNTAXES else ""

    @property
    def info(self) -> str:
        entry = UIDS.get(self)
        return entry[3] if entry is not None else ""

    @property
    def is_retired(self) -> bool:
        entry = UIDS.get(self)
        if entry is not None:
            return entry[4]
        ts = TRANSFER_SYNTAXES.get(self)
        return bool(ts["retired"]) if ts is not None else False

    @property
    def is_private(self) -> bool:
        """Not under the DICOM root ``1.2.840.10008``."""
        return not (self == "1.2.840.10008" or self.startswith("1.2.840.10008."))

    # -- transfer syntax -----------------------------------------------------
    @property
    def is_transfer_syntax(self) -> bool:
        return self in _TS_INFO

    def _ts(self) -> TransferSyntaxInfo:
        info = _TS_INFO.get(self)
        if info is None:
            raise ValueError(f"UID {str(self)!r} is not a known transfer syntax")
        return info

    @property
    def transfer_syntax(self) -> TransferSyntaxInfo:
        return self._ts()

    @property
    def is_little_endian(self) -> bool:
        return self._ts().little_endian

    @property
    def is_implicit_VR(self) -> bool:
        return not self._ts().explicit_vr

    @property
    def is_deflated(self) -> bool:
        return self._ts().deflated

    @property
    def is_encapsulated(self) -> bool:
        return self._ts().encapsulated

    @property
    def is_compressed(self) -> bool:
        """Same as :attr:`is_encapsulated` (pixel data in fragments)."""
        return self._ts().encapsulated

    def __repr__(self) -> str:
        return f"UID({str(self)!r})"


ImplicitVRLittleEndian = UID("1.2.840.10008.1.2")
ExplicitVRLittleEndian = UID("1.2.840.10008.1.2.1")
DeflatedExplicitVRLittleEndian = UID("1.2.840.10008.1.2.1.99")
ExplicitVRBigEndian = UID("1.2.840.10008.1.2.2")
JPEGBaseline8Bit = UID("1.2.840.10008.1.2.4.50")
JPEGExtended12Bit = UID("1.2.840.10008.1.2.4.51")
JPEGLossless = UID("1.2.840.10008.1.2.4.57")
JPEGLosslessSV1 = UID("1.2.840.10008.1.2.4.70")
JPEGLSLossless = UID("1.2.840.10008.1.2.4.80")
JPEGLSNearLossless = UID("1.2.840.10008.1.2.4.81")
JPEG2000Lossless = UID("1.2.840.10008.1.2.4.90")
JPEG2000 = UID("1.2.840.10008.1.2.4.91")
JPEGXLLossless = UID("1.2.840.10008.1.2.4.110")
JPEGXLJPEGRecompression = UID("1.2.840.10008.1.2.4.111")
JPEGXL = UID("1.2.840.10008.1.2.4.112")
HTJ2KLossless = UID("1.2.840.10008.1.2.4.201")
HTJ2KLosslessRPCL = UID("1.2.840.10008.1.2.4.202")
HTJ2K = UID("1.2.840.10008.1.2.4.203")
RLELossless = UID("1.2.840.10008.1.2.5")
