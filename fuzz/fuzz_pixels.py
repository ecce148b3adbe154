"""atheris harness: pixel decoding (native, RLE, encapsulated).

Two kinds of input, chosen by the first byte:
* even: a whole DICOM file -> dcmread, then every frame through fastdicom.pixels (pixel_array,
  frame(i), encapsulated_frame(i)) when that module provides them;
* odd: a raw RLE frame -> fastdicom.pixels._rle.rle_decode_frame with rows/columns/samples/bits
  taken from the next bytes (also into a preallocated buffer).
Any exception other than fastdicom.DicomError is a finding.
"""
import os
import sys
import warnings

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
with atheris.instrument_imports(include=["fastdicom", "oracle"]):
    import numpy as np
    import oracle
    import fastdicom
    from fastdicom.errors import DicomError
    from fastdicom.pixels import _rle
    if oracle.HAVE_PIXELS:
        import fastdicom.pixels as pixels

BITS = (8, 16, 32, 1, 12, 64, 0, 24)


def _dicom(data: bytes) -> None:
    ds = fastdicom.dcmread(data, force=True)
    if 0x7FE00010 not in ds or not oracle.HAVE_PIXELS:
        oracle.walk(ds)
        return
    n = pixels.num_frames(ds)
    ds.pixel_array
    for i in range(min(int(n), 4)):
        ds.frame(i)
        if ds[0x7FE00010].flags & 32:
            ds.encapsulated_frame(i)


def _rle_frame(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    rows = fdp.ConsumeIntInRange(0, 64)
    cols = fdp.ConsumeIntInRange(0, 64)
    spp = fdp.ConsumeIntInRange(0, 4)
    bits = BITS[fdp.ConsumeIntInRange(0, len(BITS) - 1)]
    signed = fdp.ConsumeIntInRange(0, 1)
    mode = ("warn", "raise", "ignore")[fdp.ConsumeIntInRange(0, 2)]
    src = fdp.ConsumeBytes(fdp.remaining_bytes())
    _rle.rle_decode_frame(src, rows, cols, spp, bits, signed, validation=mode)
    nbytes = rows * cols * spp * max(1, bits // 8)
    out = np.zeros(nbytes, dtype=np.uint8)
    _rle.rle_decode_frame_into(src, out, rows, cols, spp, bits, validation=mode)


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if data[0] & 1:
                _rle_frame(data[1:])
            else:
                _dicom(data[1:])
        except DicomError:
            pass


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
