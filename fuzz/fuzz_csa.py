"""atheris harness: the Siemens CSA header reader and the mosaic layout drawn from it.

Any exception other than fastdicom.DicomError is a finding; so is a layout whose tiles do not
fit the mosaic, or a count past ``MAX_IMAGES``.
"""
import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
with atheris.instrument_imports(include=["fastdicom"]):
    from fastdicom.errors import DicomError
    from fastdicom.siemens import MAX_IMAGES, mosaic_layout, read_csa


def TestOneInput(data: bytes) -> None:
    try:
        csa = read_csa(data)
    except DicomError:
        return
    rows, cols = 64 + len(data) % 7 * 32, 64 + len(data) % 5 * 32
    try:
        lay = mosaic_layout(csa, rows, cols, (1.5, -2.0, 30.0), (1, 0, 0, 0, 0.6, -0.8),
                            ("0.9", 1.1), 2.5, images=len(data) % 100 or None)
    except DicomError:
        return
    assert 1 <= lay.images <= MAX_IMAGES
    assert lay.grid * lay.tile_rows == rows and lay.grid * lay.tile_columns == cols
    assert lay.grid ** 2 >= lay.images and lay.positions.shape == (lay.images, 3)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
