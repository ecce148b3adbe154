"""atheris harness: pixel decoding (native, RLE, encapsulated).

Three kinds of input, chosen by the first byte:
* 0 mod 4: a whole DICOM file -> dcmread, then every frame through fastdicom.pixels
  (pixel_array, frame(i), encapsulated_frame(i)) when that module provides them;
* 2 mod 4: a whole DICOM file in a memfd, read through ``fastdicom.open`` (header from a pread
  prefix, lazy map; the prefix sizes are shrunk so small inputs take that path) and through a
  full read: both must give the same data set (or the same error class) and the same frames;
* odd: a raw RLE frame -> fastdicom.pixels._rle.rle_decode_frame with rows/columns/samples/bits
  taken from the next bytes (also into a preallocated buffer).
Any exception other than fastdicom.DicomError is a finding, and so is a disagreement.
"""
import json
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
# small prefixes, so that fuzz-sized files take fastdicom.open's prefix path
from fastdicom import filereader  # noqa: E402
filereader._PREFIX_CHUNKS = (160, 620, 1100)


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


def _outcome(fn):
    try:
        return fn()
    except DicomError as exc:
        return type(exc).__name__


def _json_text(ds) -> str:
    out = _outcome(ds.to_json_dict)
    return out if isinstance(out, str) else json.dumps(out, sort_keys=True, default=repr)


def _file(data: bytes) -> None:
    fd = os.memfd_create("fuzz")
    try:
        os.write(fd, data)
        path = f"/proc/self/fd/{fd}"
        full = _outcome(lambda: fastdicom.dcmread(path, mode="read", force=True))
        try:
            f = fastdicom.open(path, force=True)
        except DicomError as exc:
            assert isinstance(full, str) and full == type(exc).__name__, (full, exc)
            return
        with f:
            assert not isinstance(full, str), full
            # compared as text: NaN values (FD/FL) are never equal as floats
            assert _json_text(f.dataset) == _json_text(full)
            if 0x7FE00010 in full and oracle.HAVE_PIXELS:
                a = _outcome(lambda: full.frame(0))
                b = _outcome(lambda: f.dataset.frame(0))
                assert type(a) is type(b), (a, b)
                if not isinstance(a, str):
                    assert np.array_equal(a, b)
    finally:
        os.close(fd)


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if data[0] & 1:
                _rle_frame(data[1:])
            elif data[0] & 2:
                _file(data[1:])
            else:
                _dicom(data[1:])
        except DicomError:
            pass


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
