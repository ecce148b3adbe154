"""Siemens CSA headers and mosaics: hand-built CSA bytes, nibabel as the independent oracle
of the unpacked slices (pixels and positions)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastdicom.errors import DicomError, MalformedElementError
from fastdicom.series import find_series, load_series
from fastdicom.siemens import read_csa
from fastdicom.testing import csa_header_bytes, ct_instance_elements, write_file

MOSAIC_TYPE = ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]


def mosaic_elements(*, images: int, tile: tuple, orientation: tuple, position: tuple,
                    normal_sign: float, spacing=(0.9, 1.1), slice_spacing=2.5,
                    acquisition: int = 1, csa: bytes = None, seed="mosaic"):
    """A mosaic of ``images`` tiles of ``tile`` (rows, columns), each tile's pixels telling
    its index; the CSA slice normal is ``normal_sign`` times row x column."""
    grid = int(np.ceil(np.sqrt(images)))
    rows, cols = grid * tile[0], grid * tile[1]
    pixels = np.zeros((rows, cols), np.int16)
    rng = np.random.default_rng(images)
    for k in range(images):
        r, c = divmod(k, grid)
        pixels[r * tile[0]:(r + 1) * tile[0], c * tile[1]:(c + 1) * tile[1]] = \
            k * 100 + rng.integers(0, 100, tile)
    normal = np.cross(orientation[:3], orientation[3:]) * normal_sign
    if csa is None:
        csa = csa_header_bytes({"AcquisitionMatrixText": ["%dp*%d" % tile],
                         "NumberOfImagesInMosaic": [str(images)],
                         "SliceNormalVector": ["%.8f" % v for v in normal]})
    els = ct_instance_elements(rows=rows, columns=cols, index=acquisition, n_slices=1,
                               series_seed=seed, study_seed="study-" + seed,
                               orientation=orientation, position=position, spacing=spacing,
                               slice_thickness=2.0, pixel_array=pixels, private=False)
    els = [(t, v, MOSAIC_TYPE if t == 0x00080008 else x) for t, v, x in els]
    els += [(0x00180088, "DS", slice_spacing), (0x00200012, "IS", str(acquisition)),
            (0x00290010, "LO", "SIEMENS CSA HEADER"), (0x00291010, "OB", csa)]
    return sorted(els, key=lambda e: e[0]), pixels


OBLIQUE = (0.9950042, 0.0998334, 0.0, -0.0099667, 0.0993347, -0.9950042)


def test_csa_bytes_read_as_nibabel_reads_them():
    csareader = pytest.importorskip("nibabel.nicom.csareader")
    data = csa_header_bytes({"NumberOfImagesInMosaic": ["35"],
                      "SliceNormalVector": ["0.0", "0.10799", "0.99415"],
                      "ImaCoilString": ["HEA;HEP"], "Empty": []})
    ours = read_csa(data)
    ref = csareader.read(data)["tags"]
    assert set(ours) == set(ref)
    assert ours["ImaCoilString"] == ref["ImaCoilString"]["items"] == ["HEA;HEP"]
    assert ours["Empty"] == ref["Empty"]["items"] == []
    for name in ("NumberOfImagesInMosaic", "SliceNormalVector"):
        assert [float(x) for x in ours[name]] == ref[name]["items"]


@pytest.mark.parametrize("normal_sign", [1.0, -1.0])
@pytest.mark.parametrize("images,tile", [(5, (4, 6)), (9, (3, 3)), (1, (8, 8))])
def test_mosaic_unpacked_as_nibabel_does(tmp_path, normal_sign, images, tile):
    pydicom = pytest.importorskip("pydicom")
    dw = pytest.importorskip("nibabel.nicom.dicomwrappers")
    els, _ = mosaic_elements(images=images, tile=tile, orientation=OBLIQUE,
                             position=(-80.5, 12.25, 40.0), normal_sign=normal_sign)
    path = tmp_path / "mosaic.dcm"
    write_file(path, els)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # nibabel's "experimental" warning
        wrapper = dw.wrapper_from_data(pydicom.dcmread(path))
        assert wrapper.is_mosaic
        ref = np.transpose(wrapper.get_unscaled_data(), (2, 0, 1))  # (tile, row, column)
        ref_first = np.asarray(wrapper.image_position, float)
        ref_step = np.asarray(wrapper.slice_normal, float) * float(wrapper.voxel_sizes[2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # an unpacked mosaic raises no warning
        (info,) = find_series(tmp_path)
        vol = load_series(info)
    assert info.mosaic is not None and info.issues == []
    assert info.shape == vol.array.shape == (images,) + tile
    # slices ascend along row x column (the module's convention) whatever the CSA's sign
    normal = np.cross(OBLIQUE[:3], OBLIQUE[3:])
    proj = vol.positions @ normal
    assert np.all(np.diff(proj) > 0)
    assert vol.frame_indices.tolist() == (list(range(images)) if normal_sign > 0
                                          else list(range(images))[::-1])
    for k, t in enumerate(vol.frame_indices.tolist()):
        np.testing.assert_array_equal(vol.array[k], ref[t])
        nib_pos = ref_first + t * ref_step
        np.testing.assert_allclose(vol.index_to_lps((k, 0, 0)), nib_pos, atol=1e-4)
        np.testing.assert_allclose(vol.positions[k], nib_pos, atol=1e-4)
    # the affine's row and column axes are the image's, with its pixel spacing
    np.testing.assert_allclose(vol.affine[:3, 1], np.asarray(OBLIQUE[3:]) * 0.9, atol=1e-6)
    np.testing.assert_allclose(vol.affine[:3, 2], np.asarray(OBLIQUE[:3]) * 1.1, atol=1e-6)
    assert vol.spacing[0] == pytest.approx(2.5)      # SpacingBetweenSlices
    assert [str(p) for p in vol.paths] == [str(path)] * images


def test_mosaic_rescale_out_and_run(tmp_path):
    # an fMRI run: 3 mosaics at one position, one acquisition each -> 3 unpacked stacks
    pixels = []
    for a in range(3):
        els, px = mosaic_elements(images=4, tile=(5, 5), orientation=(1, 0, 0, 0, 1, 0),
                                  position=(0, 0, 0), normal_sign=1.0, acquisition=a + 1,
                                  seed="run")
        write_file(tmp_path / f"R{a}.dcm", els)
        pixels.append(px)
    with pytest.warns(match="splits into 3 stacks by acquisition") as rec:
        stacks = find_series(tmp_path)
    assert not [w for w in rec if "mosaic" in str(w.message)]
    assert len(stacks) == 3 and all(s.mosaic is not None for s in stacks)
    for s in stacks:
        a = [f"R{a}.dcm" for a in range(3)].index(s.paths[0].name)
        out = np.full(s.shape, np.nan, np.float64)
        vol = load_series(s, rescale=True, dtype=np.float64, out=out)
        assert vol.array is out
        for k in range(4):
            r, c = divmod(k, 2)
            np.testing.assert_array_equal(out[k], pixels[a][r * 5:r * 5 + 5, c * 5:c * 5 + 5]
                                          - 1024.0)
        with pytest.raises(ValueError, match="shape"):
            load_series(s, out=np.empty((1, 10, 10), np.int16))


@pytest.mark.parametrize("csa,reason", [
    (b"", "no Siemens CSA image header"),
    (b"SV10\x04\x03\x02\x01\xff\xff\x00\x00M\x00\x00\x00", "65535 entries"),
    (csa_header_bytes({"NumberOfImagesInMosaic": ["4"]}), "SliceNormalVector"),
    (csa_header_bytes({"SliceNormalVector": ["0", "0", "1"]}), "NumberOfImagesInMosaic"),
    (csa_header_bytes({"NumberOfImagesInMosaic": ["17"], "SliceNormalVector": ["0", "0", "1"]}),
     "cannot hold 17 images in a 5x5 grid"),
    (csa_header_bytes({"NumberOfImagesInMosaic": ["4"], "SliceNormalVector": ["1", "0", "0"]}),
     "not normal"),
    (csa_header_bytes({"NumberOfImagesInMosaic": ["4"],
                       "SliceNormalVector": ["0", "0", "1"]})[:-40], "past"),
])
def test_mosaic_that_cannot_be_unpacked_is_loaded_as_stored(tmp_path, csa, reason):
    els, pixels = mosaic_elements(images=4, tile=(6, 6), orientation=(1, 0, 0, 0, 1, 0),
                                  position=(0, 0, 0), normal_sign=1.0, csa=csa)
    write_file(tmp_path / "m.dcm", els)
    with pytest.warns(match="not unpacked") as rec:
        (info,) = find_series(tmp_path)
    assert sum("mosaic" in str(w.message) for w in rec) == 1
    assert info.mosaic is None
    (issue,) = [i for i in info.issues if "mosaic" in i]
    assert reason in issue
    vol = load_series(info)
    assert vol.array.shape == (1, 12, 12)
    np.testing.assert_array_equal(vol.array[0], pixels)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 600), st.integers(0, 255))
def test_read_csa_never_reads_past_its_bytes(noise, where, byte):
    good = bytearray(csa_header_bytes({"NumberOfImagesInMosaic": ["16"],
                                "SliceNormalVector": ["0", "0", "1"]}))
    good[min(where, len(good) - 1)] = byte
    for data in (bytes(good), b"SV10" + noise, bytes(good[:where])):
        try:
            out = read_csa(data)
        except MalformedElementError:
            continue
        assert isinstance(out, dict)
        assert all(len(v) <= 1000 for v in out.values())


def test_mosaic_layout_errors_are_dicom_errors():
    from fastdicom.siemens import mosaic_layout
    with pytest.raises(DicomError, match="no positive SpacingBetweenSlices"):
        mosaic_layout({"NumberOfImagesInMosaic": ["4"], "SliceNormalVector": ["0", "0", "1"]},
                      8, 8, (0, 0, 0), (1, 0, 0, 0, 1, 0), (1, 1), None)
    lay = mosaic_layout({"SliceNormalVector": ["0", "0", "-1"]}, 8, 8, (0, 0, 0),
                        (1, 0, 0, 0, 1, 0), (1, 1), 3.0, images=3)
    assert (lay.images, lay.grid, lay.tile_rows, lay.tile_columns) == (3, 2, 4, 4)
    # tile 0 centred where the mosaic is: shifted by half the size difference (2 pixels)
    np.testing.assert_allclose(lay.positions, [[2, 2, 0], [2, 2, -3], [2, 2, -6]])


def test_stack_of_mosaics_and_plain_images_is_not_unpacked(tmp_path):
    els, _ = mosaic_elements(images=4, tile=(6, 6), orientation=(1, 0, 0, 0, 1, 0),
                             position=(0, 0, 0), normal_sign=1.0, acquisition=1, seed="mix")
    write_file(tmp_path / "a.dcm", els)
    plain, _ = mosaic_elements(images=4, tile=(6, 6), orientation=(1, 0, 0, 0, 1, 0),
                               position=(0, 0, 5), normal_sign=1.0, acquisition=1, seed="mix")
    plain = [(t, v, ["ORIGINAL", "PRIMARY", "M", "ND"] if t == 0x00080008 else x)
             for t, v, x in plain]
    write_file(tmp_path / "b.dcm", [e if e[0] != 0x00080018 else (e[0], e[1], "1.2.3.9")
                                    for e in plain])
    with pytest.warns(match="not unpacked"):
        (info,) = find_series(tmp_path)
    assert info.mosaic is None and info.shape == (2, 12, 12)
    assert any("some of its files are not mosaics" in i for i in info.issues)


def test_csa_element_read_as_text_is_not_unpacked(tmp_path):
    # an explicit VR file whose CSA element says LO: its value is text, not a CSA header
    els, _ = mosaic_elements(images=4, tile=(6, 6), orientation=(1, 0, 0, 0, 1, 0),
                             position=(0, 0, 0), normal_sign=1.0)
    els = [(t, "LO", "SV10 not a header") if t == 0x00291010 else (t, v, x) for t, v, x in els]
    write_file(tmp_path / "m.dcm", els)
    with pytest.warns(match="not unpacked"):
        (info,) = find_series(tmp_path)
    assert info.mosaic is None
    assert any("bytes, not str" in i for i in info.issues), info.issues
    with pytest.raises(MalformedElementError, match="not list"):
        read_csa([1, 2])


def test_fmri_run_of_mosaics_loads_as_4d_in_acquisition_order(tmp_path):
    # 4 mosaics of 4 tiles, written under names that are not in acquisition order
    pixels = {}
    for name, a in zip("wxyz", (3, 1, 4, 2)):
        els, px = mosaic_elements(images=4, tile=(5, 6), orientation=(1, 0, 0, 0, 1, 0),
                                  position=(0, 0, 0), normal_sign=1.0, acquisition=a,
                                  seed="fmri")
        write_file(tmp_path / f"{name}.dcm", els)
        pixels[a] = px
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stacks = find_series(tmp_path)
    from fastdicom import load_series_4d
    vol = load_series_4d(stacks)
    assert vol.array.shape == (4, 4, 5, 6) and vol.varying == ("acquisition_number",)
    assert [lab["acquisition_number"] for lab in vol.labels] == [1, 2, 3, 4]
    for t in range(4):
        for k in range(4):      # tile k is slice k here (normal along +z, tiles row-major)
            r, c = divmod(k, 2)
            np.testing.assert_array_equal(vol.array[t, k],
                                          pixels[t + 1][r * 5:r * 5 + 5, c * 6:c * 6 + 6])
    assert [v.paths[0].name for v in vol.volumes] == ["x.dcm", "z.dcm", "w.dcm", "y.dcm"]
