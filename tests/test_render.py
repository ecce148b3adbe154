"""fastdicom.render: phantom -> uint8 -> PNG."""
from __future__ import annotations

import numpy as np
import pytest

from fastdicom import testing
from fastdicom.render import render, write_png


def test_render_ct_phantom_png(tmp_path):
    imagecodecs = pytest.importorskip("imagecodecs")
    path = testing.write_ct_series(tmp_path / "ct", n_slices=1, rows=64, columns=48)[0]
    image = render(path)
    assert image.dtype == np.uint8 and image.shape == (64, 48)
    assert image.min() < 20 and image.max() > 200   # a sensible range: air to bone
    out = tmp_path / "ct.png"
    write_png(image, out)
    decoded = imagecodecs.png_decode(out.read_bytes())
    assert decoded.shape == (64, 48)
    np.testing.assert_array_equal(decoded, image)


def test_render_window_and_cli(tmp_path):
    imagecodecs = pytest.importorskip("imagecodecs")
    from fastdicom.cli import main
    path = testing.write_ct_series(tmp_path / "ct", n_slices=1, rows=32, columns=32)[0]
    narrow = render(path, window=(40, 80))
    wide = render(path, window=(40, 4000))
    assert not np.array_equal(narrow, wide)
    out = tmp_path / "o.png"
    assert main(["render", str(path), "-o", str(out), "--window", "40", "400"]) == 0
    # a frame past the file's: one line and exit 1, no traceback, no file
    bad = tmp_path / "bad.png"
    assert main(["render", str(path), "-o", str(bad), "--frame", "3"]) == 1
    assert not bad.exists()
    np.testing.assert_array_equal(imagecodecs.png_decode(out.read_bytes()),
                                  render(path, window=(40, 400)))


def test_render_multiframe_frame(tmp_path):
    path = testing.write_multiframe(tmp_path / "mf.dcm", 3, 16, 12, fill="ramp")
    a, b = render(path, frame=0), render(path, frame=2)
    assert a.shape == b.shape == (16, 12)
