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


# ------------------------------------------------------------------------------------------
# rescale / window values that are not one number

def _mono_file(tmp_path, extra, name="m.dcm"):
    pixels = (np.arange(12, dtype="<u2") * 300).reshape(3, 4)
    els = [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"), (0x00080018, "UI", "1.2.3.4"),
           (0x00280002, "US", 1), (0x00280004, "CS", "MONOCHROME2"), (0x00280010, "US", 3),
           (0x00280011, "US", 4), (0x00280100, "US", 16), (0x00280101, "US", 12),
           (0x00280102, "US", 11), (0x00280103, "US", 0)] + list(extra)
    path = tmp_path / name
    testing.write_file(path, els + [(0x7FE00010, "OW", pixels.tobytes())])
    return path


def _data_range(tmp_path):
    """What a file with no rescale and no window renders as: its data range."""
    return render(_mono_file(tmp_path, [], name="plain.dcm"))


@pytest.mark.parametrize("extra,message,decodes", [
    ([(0x00281052, "DS", "0"), (0x00281053, "DS", ["1", "2"])],
     "Rescale Slope must hold one value, found 2", True),
    ([(0x00281052, "DS", ["-1024", "5"]), (0x00281053, "DS", "1")],
     "Rescale Intercept must hold one value, found 2", True),
    ([(0x00281052, "DS", "0"), (0x00281053, "DS", b"abc ")], "Rescale Slope is not a number",
     False),
    ([(0x00281050, "DS", b"abc "), (0x00281051, "DS", "100")],
     "Window Center is not a number", False),
    ([(0x00281050, "DS", "40"), (0x00281051, "DS", b"1e999 ")],
     "Window Width is not a finite number", True),
    ([(0x00281050, "DS", ["x", "40"]), (0x00281051, "DS", ["400", "80"])],
     "Window Center is not a number", False),
    # an unreadable rescale also voids the window, which is in rescaled units
    ([(0x00281052, "DS", "0"), (0x00281053, "DS", ["1", "2"]), (0x00281050, "DS", "40"),
      (0x00281051, "DS", "80")], "Rescale Slope", True),
])
def test_render_ignores_values_that_are_not_one_number(tmp_path, extra, message, decodes):
    import fastdicom
    from fastdicom.errors import DicomWarning, PixelDataError
    path = _mono_file(tmp_path, extra)
    with pytest.warns(DicomWarning, match=message):
        image = render(fastdicom.dcmread(path))
    np.testing.assert_array_equal(image, _data_range(tmp_path))
    if decodes:
        # values read under validation="raise" (several numbers, infinity): the finding is
        # raised (text that is no number fails earlier, when the value is read)
        with pytest.raises(PixelDataError, match=message):
            render(fastdicom.dcmread(path, validation="raise"))


def test_render_cli_with_unreadable_window(tmp_path):
    imagecodecs = pytest.importorskip("imagecodecs")
    from fastdicom.cli import main
    from fastdicom.errors import DicomWarning
    path = _mono_file(tmp_path, [(0x00281050, "DS", b"abc "), (0x00281051, "DS", "100")])
    out = tmp_path / "o.png"
    with pytest.warns(DicomWarning):
        assert main(["render", str(path), "-o", str(out)]) == 0
    np.testing.assert_array_equal(imagecodecs.png_decode(out.read_bytes()),
                                  _data_range(tmp_path))


@pytest.mark.parametrize("window", [["nan", "400"], ["40", "inf"], ["40", "-5"], ["40", "0"]])
def test_render_cli_refuses_unusable_windows(tmp_path, window, capsys):
    # nan/inf windows wrote an all-black PNG and a width <= 0 a threshold image, exit 0
    from fastdicom.cli import main
    path = testing.write_ct_series(tmp_path / "ct", n_slices=1, rows=8, columns=8)[0]
    out = tmp_path / "o.png"
    try:
        rc = main(["render", str(path), "-o", str(out), "--window", *window])
    except SystemExit as exc:       # (argparse's usage error)
        rc = exc.code
    assert rc == 2 and not out.exists()
    assert "--window" in capsys.readouterr().err


@pytest.mark.parametrize("center", ["-1e3", "-.5E1", "-100"])
def test_render_cli_takes_negative_centres_in_any_float_form(tmp_path, center):
    # argparse knows "-100" as a negative number but took "-1e3" for an option: a usage
    # error ("expected 2 arguments") for a window centre written with an exponent
    imagecodecs = pytest.importorskip("imagecodecs")
    from fastdicom.cli import main
    path = testing.write_ct_series(tmp_path / "ct", n_slices=1, rows=8, columns=8)[0]
    out = tmp_path / "o.png"
    assert main(["render", str(path), "--window", center, "400", "-o", str(out)]) == 0
    np.testing.assert_array_equal(imagecodecs.png_decode(out.read_bytes()),
                                  render(path, window=(float(center), 400)))


def test_render_cli_names_a_negative_infinite_centre(tmp_path, capsys):
    from fastdicom.cli import main
    path = testing.write_ct_series(tmp_path / "ct", n_slices=1, rows=8, columns=8)[0]
    assert main(["render", str(path), "--window", "-inf", "400"]) == 2
    assert "not a finite number: '-inf'" in capsys.readouterr().err


def test_render_cli_of_an_unsupported_voi_lut_depth_exits_1_without_traceback(tmp_path,
                                                                             capsys):
    # a VOI LUT of 9-bit entries raised NotImplementedError (as pydicom does) out of render
    from fastdicom.cli import main
    p = tmp_path / "voi.dcm"
    testing.write_file(p, [
        (0x00080018, "UI", "1.2"), (0x00280002, "US", 1), (0x00280004, "CS", "MONOCHROME2"),
        (0x00280010, "US", 2), (0x00280011, "US", 2), (0x00280100, "US", 16),
        (0x00280101, "US", 12), (0x00280102, "US", 11), (0x00280103, "US", 0),
        (0x00283010, "SQ", [[(0x00283002, "US", [4, 0, 9]), (0x00283006, "US", [1, 2, 3, 4])]]),
        (0x7FE00010, "OW", bytes(8))])
    out = tmp_path / "o.png"
    assert main(["render", str(p), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "bits per LUT entry" in err and "Traceback" not in err and not out.exists()


def _header_offset(raw: bytes, tag: int, vr: str) -> int:
    import struct
    header = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    assert raw.count(header) == 1
    return raw.find(header)


def test_render_lut_errors_name_the_file_offset_and_tag(tmp_path):
    # the LUT and window errors of a render carried no file, offset or tag
    from fastdicom.errors import PixelDataError
    path = _mono_file(tmp_path, [(0x00283000, "SQ", [[(0x00283002, "US", [10, 0, 16]),
                                                      (0x00283006, "US", [1, 2, 3])]])])
    with pytest.raises(PixelDataError, match="holds 3 entries") as info:
        render(path)
    err = info.value
    assert err.tag == 0x00283006 and err.path == str(path)
    assert err.offset == _header_offset(path.read_bytes(), 0x00283006, "US")


def test_render_cli_names_the_unsupported_lut_descriptor(tmp_path, capsys):
    from fastdicom.cli import main
    path = _mono_file(tmp_path, [(0x00283010, "SQ", [[(0x00283002, "US", [4, 0, 9]),
                                                      (0x00283006, "US", [1, 2, 3, 4])]])])
    out = tmp_path / "o.png"
    assert main(["render", str(path), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    offset = _header_offset(path.read_bytes(), 0x00283002, "US")
    assert "bits per LUT entry" in err and "Traceback" not in err and not out.exists()
    assert f"offset {offset}" in err and "tag (0028,3002)" in err and str(path) in err
    assert len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------
# enhanced multi-frame: each frame's rescale and window come from its functional groups

_PVT, _FRAME_VOI = 0x00289145, 0x00289132
_SHARED, _PER_FRAME = 0x52009229, 0x52009230


def _rescale(slope, intercept):
    return [(0x00281052, "DS", str(intercept)), (0x00281053, "DS", str(slope))]


def _window(center, width):
    return [(0x00281050, "DS", str(center)), (0x00281051, "DS", str(width))]


def _frames_file(path, frames, extra):
    pixels = np.stack(frames).astype("<u2")
    els = [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.2.1"), (0x00080018, "UI", "1.2.3.5"),
           (0x00280002, "US", 1), (0x00280004, "CS", "MONOCHROME2"),
           (0x00280008, "IS", str(len(frames))), (0x00280010, "US", pixels.shape[1]),
           (0x00280011, "US", pixels.shape[2]), (0x00280100, "US", 16),
           (0x00280101, "US", 12), (0x00280102, "US", 11), (0x00280103, "US", 0)]
    testing.write_file(path, sorted(els + list(extra))
                       + [(0x7FE00010, "OW", pixels.tobytes())])
    return path


def test_render_takes_each_frames_rescale_and_window_from_its_functional_groups(tmp_path):
    """PS3.3 C.7.6.16.2.9/10: an enhanced image keeps Rescale and Window in its functional
    groups (per frame, else shared), not at the top level.  Each frame renders as the same
    pixels do with those values at the top level of a single-frame file, and the frames'
    own windows differ."""
    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 4096, size=(6, 5)) for _ in range(3)]
    shared = [(_PVT, "SQ", [_rescale(1, -1024)]), (_FRAME_VOI, "SQ", [_window(49, 102)])]
    per_frame = [[(_FRAME_VOI, "SQ", [_window(40, 400)])],
                 [(_PVT, "SQ", [_rescale(2, -2000)]), (_FRAME_VOI, "SQ", [_window(300, 1500)])],
                 []]                                       # frame 2: the shared groups alone
    path = _frames_file(tmp_path / "enh.dcm", frames,
                        [(_SHARED, "SQ", [shared]), (_PER_FRAME, "SQ", per_frame)])
    top_level = [_rescale(1, -1024) + _window(40, 400),
                 _rescale(2, -2000) + _window(300, 1500),
                 _rescale(1, -1024) + _window(49, 102)]
    images = []
    for i, frame in enumerate(frames):
        flat = _frames_file(tmp_path / f"flat{i}.dcm", [frame], top_level[i])
        image = render(path, frame=i)
        np.testing.assert_array_equal(image, render(flat))
        images.append(image)
    np.testing.assert_array_equal(render(path, frame=-1), images[2])
    import fastdicom
    from fastdicom.pixels.lut import to_display_uint8
    ds = fastdicom.dcmread(path)
    for i in (1, -2):
        np.testing.assert_array_equal(to_display_uint8(ds.pixel_array, ds, frame=i), images[1])
    # LINEAR window (PS3.3 C.11.2.1.2.1) by hand, on frame 2's HU values
    hu = frames[2] - 1024.0
    c, w = 49 - 0.5, 102 - 1
    expected = np.where(hu <= c - w / 2, 0,
                        np.where(hu > c + w / 2, 255, ((hu - c) / w + 0.5) * 255))
    np.testing.assert_array_equal(images[2], np.rint(expected).astype(np.uint8))
    # the per-frame functional groups take precedence over a top-level window too
    with_top = _frames_file(tmp_path / "top.dcm", frames,
                            [(_SHARED, "SQ", [shared]), (_PER_FRAME, "SQ", per_frame)]
                            + _window(2000, 10))
    np.testing.assert_array_equal(render(with_top, frame=0), images[0])


def test_render_counts_an_empty_modality_lut_item_as_none_as_an_empty_voi_lut_item(tmp_path):
    """A Modality LUT item whose (Type 1) LUT Descriptor and LUT Data are empty stopped the
    render ("a LUT descriptor needs 3 values"), while the same empty VOI LUT item counted as
    no LUT: both count as none, and the rescale and window still apply."""
    empty = [[(0x00283002, "US", b""), (0x00283006, "US", b"")]]
    rescale_window = _rescale(2, -100) + _window(1500, 2000)
    plain = render(_mono_file(tmp_path, rescale_window, name="plain.dcm"))
    for extra in ([(0x00283000, "SQ", empty)], [(0x00283010, "SQ", empty)],
                  [(0x00283000, "SQ", empty), (0x00283010, "SQ", empty)]):
        path = _mono_file(tmp_path, sorted(rescale_window + extra), name="empty.dcm")
        np.testing.assert_array_equal(render(path), plain)
    assert len(np.unique(plain)) > 2          # the window is applied, not the data range
