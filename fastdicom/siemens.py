"""Siemens private headers: the CSA header and what a mosaic needs from it.

Siemens MR scanners keep acquisition details in two private OB elements of group 0029,
reserved by the creator ``SIEMENS CSA HEADER``: the *image* header (element offset 0x10) and
the *series* header (0x20).  Since syngo MR B (2003) both are in the "SV10" layout read here:

* ``"SV10"``, 4 bytes, then ``uint32`` number of entries, ``uint32`` (77);
* per entry: a 64-byte NUL-padded name, ``int32`` VM, a 4-byte VR, ``int32`` SyngoDT,
  ``int32`` number of items, ``int32`` (77 or 205);
* per item: four ``int32`` of which the second is the value's length, then the value (text,
  NUL-padded) and padding to a multiple of 4 bytes.

All integers are little endian.  Every count and length is checked against the bytes
present; the older CSA1 layout (no "SV10" mark) is not read.

A *mosaic* (ImageType MOSAIC) stores the slices of one volume as tiles of one image, in a
square grid of ``ceil(sqrt(n))`` tiles a side, filled row by row; ``n`` is the image header's
NumberOfImagesInMosaic.  The tiles are ordered along the image header's SliceNormalVector,
and ImagePositionPatient is that of the whole mosaic's first pixel: each tile's position
follows from it (:func:`mosaic_layout`).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .errors import DicomError, MalformedElementError
from .series import _num    # (the series reader's number of a DS/IS-like value or list)

__all__ = ["read_csa", "csa_image_header", "MosaicLayout", "mosaic_layout"]

CSA_CREATOR = "SIEMENS CSA HEADER"
MR_CREATOR = "SIEMENS MR HEADER"
#: entries and items per entry accepted in one header (real headers hold ~100 entries)
MAX_ENTRIES = 1000
MAX_ITEMS = 1000
#: images accepted in one mosaic (NumberOfImagesInMosaic is a US in Siemens' MR header)
MAX_IMAGES = 65535

_ENTRY = struct.Struct("<64si4s3i")
_ITEM = struct.Struct("<4i")


def read_csa(data: Any) -> dict:
    """``{name: [item text, ...]}`` of a CSA header in the SV10 layout (empty items dropped).

    Raises :class:`~fastdicom.errors.MalformedElementError` when the bytes are not such a
    header or a count or length runs past them."""
    try:
        if isinstance(data, str):   # (an element read with a text VR)
            raise TypeError
        buf = memoryview(data).cast("B")
    except TypeError:
        raise MalformedElementError(f"a CSA header is bytes, not {type(data).__name__}") \
            from None
    size = len(buf)
    if size < 16 or bytes(buf[:4]) != b"SV10":
        raise MalformedElementError("not a CSA header in the SV10 layout")
    n_entries = struct.unpack_from("<I", buf, 8)[0]
    if not 0 < n_entries <= MAX_ENTRIES:
        raise MalformedElementError(f"CSA header declares {n_entries} entries "
                                    f"(1..{MAX_ENTRIES} accepted)", offset=8)
    out: dict = {}
    pos = 16
    for _ in range(n_entries):
        if pos + _ENTRY.size > size:
            raise MalformedElementError("CSA header entry runs past its end", offset=pos)
        name, _vm, _vr, _dt, n_items, _mark = _ENTRY.unpack_from(buf, pos)
        if not 0 <= n_items <= MAX_ITEMS:
            raise MalformedElementError(f"CSA entry declares {n_items} items "
                                        f"(0..{MAX_ITEMS} accepted)", offset=pos + 76)
        pos += _ENTRY.size
        items = []
        for _ in range(n_items):
            if pos + _ITEM.size > size:
                raise MalformedElementError("CSA item runs past the header's end", offset=pos)
            length = _ITEM.unpack_from(buf, pos)[1]
            pos += _ITEM.size
            if length < 0 or pos + length > size:
                raise MalformedElementError(f"CSA item of {length} bytes runs past the "
                                            f"header's end ({size} bytes)", offset=pos - 12)
            text = bytes(buf[pos:pos + length]).split(b"\0", 1)[0].decode("latin-1").strip()
            if text:
                items.append(text)
            pos += length + (-length % 4)
        key = name.split(b"\0", 1)[0].decode("latin-1")
        out[key] = items
    return out


def csa_image_header(ds: Any) -> Optional[dict]:
    """The CSA image header of a data set as :func:`read_csa` reads it; None when absent."""
    try:
        value = ds.private_block(0x0029, CSA_CREATOR)[0x10].value
    except (KeyError, ValueError):
        return None
    return read_csa(value) if value else None


@dataclass(frozen=True)
class MosaicLayout:
    """How one mosaic image holds its slices (see :func:`mosaic_layout`)."""

    images: int                  # NumberOfImagesInMosaic
    grid: int                    # tiles per side of the mosaic
    tile_rows: int
    tile_columns: int
    positions: np.ndarray        # (images, 3): ImagePositionPatient of each tile, in order

    def tile(self, mosaic: np.ndarray, k: int) -> np.ndarray:
        """A view of tile ``k`` of a (rows, columns[, samples]) mosaic image."""
        r, c = divmod(k, self.grid)
        return mosaic[r * self.tile_rows:(r + 1) * self.tile_rows,
                      c * self.tile_columns:(c + 1) * self.tile_columns]


def mosaic_layout(csa: dict, rows: int, columns: int, position: Any, orientation: Any,
                  spacing: Any, slice_spacing: Optional[float],
                  images: Optional[int] = None) -> MosaicLayout:
    """The tiles of a mosaic of ``rows`` x ``columns`` whose first pixel is at ``position``.

    ``csa`` is its image header (:func:`read_csa`); ``images`` (Siemens' MR header's
    NumberOfImagesInMosaic) is used when the CSA header lacks the count.  ``orientation`` is
    ImageOrientationPatient (row then column cosines), ``spacing`` PixelSpacing (between rows,
    between columns), ``slice_spacing`` the distance between slices (SpacingBetweenSlices, or
    SliceThickness).  Tile ``k`` lies ``k * slice_spacing`` along the CSA SliceNormalVector
    from tile 0; tile 0 is centred where the mosaic is, shifted by half the difference of the
    mosaic's and a tile's size (ImagePositionPatient is the mosaic's first pixel).  Raises
    :class:`~fastdicom.errors.DicomError` naming what is missing or inconsistent."""
    n = _num(csa.get("NumberOfImagesInMosaic", []), int) or images
    if not n or n < 1:
        raise DicomError("no NumberOfImagesInMosaic in the Siemens headers")
    if n > MAX_IMAGES:
        raise DicomError(f"NumberOfImagesInMosaic {n} is more than the {MAX_IMAGES} accepted")
    grid = math.isqrt(n - 1) + 1
    if rows < grid or columns < grid or rows % grid or columns % grid:
        raise DicomError(f"a mosaic of {rows}x{columns} pixels cannot hold {n} images in a "
                         f"{grid}x{grid} grid")
    if position is None or orientation is None or spacing is None:
        raise DicomError("the mosaic has no ImagePositionPatient, ImageOrientationPatient "
                         "or PixelSpacing")
    try:
        spacing = [float(v) for v in spacing]
    except (TypeError, ValueError):
        spacing = []
    if len(spacing) != 2 or not all(math.isfinite(v) and v > 0 for v in spacing):
        raise DicomError("the mosaic's PixelSpacing is not two positive numbers")
    if not slice_spacing or not math.isfinite(slice_spacing) or slice_spacing <= 0:
        raise DicomError("the mosaic has no positive SpacingBetweenSlices or SliceThickness")
    normal_items = csa.get("SliceNormalVector", [])
    try:
        csa_normal = np.array([float(v) for v in normal_items], float)
    except ValueError:
        csa_normal = np.empty(0)
    if csa_normal.shape != (3,) or not np.all(np.isfinite(csa_normal)):
        raise DicomError("no SliceNormalVector (3 numbers) in the CSA image header")
    row_dir = np.asarray(orientation[:3], float)
    col_dir = np.asarray(orientation[3:6], float)
    origin = np.asarray(position, float)
    if row_dir.shape != (3,) or col_dir.shape != (3,) or origin.shape != (3,) or \
            not (np.all(np.isfinite(row_dir)) and np.all(np.isfinite(col_dir)) and
                 np.all(np.isfinite(origin))):
        raise DicomError("the mosaic's ImagePositionPatient or ImageOrientationPatient is "
                         "not finite numbers")
    normal = np.cross(row_dir, col_dir)
    length = float(np.linalg.norm(normal)) * float(np.linalg.norm(csa_normal))
    dot = float(csa_normal @ normal) / length if length > 0 else 0.0
    if not abs(abs(dot) - 1.0) <= 1e-3:
        raise DicomError("the CSA SliceNormalVector is not normal to the image plane")
    # the orientation's normal, with the CSA's sign (the slices' order)
    step = normal / np.linalg.norm(normal) * (1.0 if dot > 0 else -1.0) * float(slice_spacing)
    tile_rows, tile_columns = rows // grid, columns // grid
    first = (origin
             + col_dir * spacing[0] * (rows - tile_rows) / 2
             + row_dir * spacing[1] * (columns - tile_columns) / 2)
    positions = first + np.arange(n)[:, None] * step
    return MosaicLayout(images=n, grid=grid, tile_rows=tile_rows, tile_columns=tile_columns,
                        positions=positions)
