"""Write the seed corpus of the fuzz harnesses (generated at run time, never committed).

Usage: python fuzz/make_seeds.py [--pixels | --csa] OUTDIR  -- writes small valid (and a few
odd) DICOM files covering every native transfer syntax, nested defined/undefined-length
sequences, private tags, ISO 2022 text, multi-frame native pixels, RLE and encapsulated data
with BOT/EOT; ``--pixels``: the pixel harness's frames; ``--csa``: Siemens CSA headers.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

from fastdicom import testing as T

SOP = "1.2.840.10008.5.1.4.1.1.7"


def _base(uid_seed: str) -> list:
    return [
        (0x00080016, "UI", SOP),
        (0x00080018, "UI", T.uid_from(uid_seed)),
        (0x00080060, "CS", "OT"),
        (0x00100010, "PN", "Doe^John"),
        (0x00100020, "LO", "ID" + uid_seed),
        (0x00181050, "DS", ["1.5", "2"]),
        (0x00200013, "IS", "7"),
    ]


def _image(rows: int, cols: int, frames: int = 1, bits: int = 16, spp: int = 1) -> list:
    els = [
        (0x00280002, "US", spp),
        (0x00280004, "CS", "MONOCHROME2" if spp == 1 else "RGB"),
        (0x00280010, "US", rows),
        (0x00280011, "US", cols),
        (0x00280100, "US", bits),
        (0x00280101, "US", bits),
        (0x00280102, "US", bits - 1),
        (0x00280103, "US", 0),
    ]
    if spp == 3:
        els.append((0x00280006, "US", 0))
    if frames > 1:
        els.append((0x00280008, "IS", str(frames)))
    return els


def _frames(rows, cols, frames, bits, spp, seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.uint8 if bits == 8 else np.uint16
    shape = (frames, rows, cols) if spp == 1 else (frames, rows, cols, spp)
    arr = rng.integers(0, 200 if bits == 8 else 4000, size=shape).astype(dtype)
    # runs so RLE has something to replicate
    if spp == 1:
        arr[..., : cols // 2] = arr[..., :1]
    else:
        arr[:, :, : cols // 2, :] = arr[:, :, :1, :]
    return arr


def _write(elements, ts, **kw) -> bytes:
    buf = io.BytesIO()
    T.write_file(buf, elements, transfer_syntax=ts, **kw)
    return buf.getvalue()


def seeds() -> dict:
    out = {}
    seq = [(0x00081110, "SQ", [[(0x00081150, "UI", SOP), (0x00081155, "UI", T.uid_from("r"))],
                               [(0x00081150, "UI", SOP),
                                (0x00400275, "SQ", [[(0x00400007, "LO", "nested")]])]])]
    private = [(0x00090010, "LO", "ACME 1.0"), (0x00091001, "LO", "private text"),
               (0x00091002, "OB", b"\x01\x02\x03\x04")]
    misc = [(0x00200032, "DS", ["-1.5", "2.25", "3"]), (0x00091003, "UN", b"\x00" * 6),
            (0x00080008, "CS", ["ORIGINAL", "PRIMARY"]), (0x00080020, "DA", "20240101"),
            (0x00080030, "TM", "101010.5"), (0x00209165, "AT", [0x00100010, 0x00100020]),
            (0x00181310, "US", [0, 8, 8, 0]), (0x00282000, "OB", b"\x00\x01"),
            (0x00186011, "SQ", [[(0x00186012, "US", 1), (0x0018602C, "FD", 0.5),
                                  (0x00186014, "SS", -3), (0x00186018, "UL", 4),
                                  (0x00186024, "FL", 1.25)]])]
    for name, ts in (("implicit", T.IMPLICIT_LE), ("explicit", T.EXPLICIT_LE),
                     ("bigendian", T.EXPLICIT_BE), ("deflated", T.DEFLATED_LE)):
        rows, cols = 8, 6
        px = _frames(rows, cols, 1, 16, 1)
        els = _base(name) + seq + private + misc + _image(rows, cols) + [(0x7FE00010, "OW", px[0])]
        out[f"{name}.dcm"] = _write(els, ts)
        out[f"{name}_undef_sq.dcm"] = _write(els, ts, undefined_length_sequences=True)
    # multi-frame native, 8-bit RGB
    px = _frames(4, 4, 3, 8, 3)
    out["rgb_multiframe.dcm"] = _write(_base("rgb") + _image(4, 4, 3, 8, 3)
                                       + [(0x7FE00010, "OB", px.tobytes())], T.EXPLICIT_LE)
    px = _frames(5, 3, 2, 16, 1)
    out["mono_multiframe.dcm"] = _write(_base("mf") + _image(5, 3, 2, 16, 1)
                                        + [(0x7FE00010, "OW", px.tobytes())], T.EXPLICIT_LE)
    # 1-bit
    out["bits1.dcm"] = _write(_base("b1") + [
        (0x00280002, "US", 1), (0x00280004, "CS", "MONOCHROME2"), (0x00280010, "US", 4),
        (0x00280011, "US", 4), (0x00280100, "US", 1), (0x00280101, "US", 1),
        (0x00280102, "US", 0), (0x00280103, "US", 0), (0x7FE00010, "OB", b"\xa5\x5a")],
        T.EXPLICIT_LE)
    # encapsulated: RLE and uncompressed-encapsulated, with BOT / EOT / several fragments
    rle = T.builtin_frame_encoder(T.RLE_LOSSLESS)
    for bits, spp in ((8, 1), (16, 1), (8, 3)):
        arr = _frames(6, 5, 2, bits, spp)
        if rle is not None:
            frames = [rle(a) for a in arr]
            for table in ("empty", "bot", "eot"):
                out[f"rle_{bits}_{spp}_{table}.dcm"] = _write(
                    _base("rle") + _image(6, 5, 2, bits, spp) + [(0x7FE00010, "OB", frames)],
                    T.RLE_LOSSLESS, offset_table=table)
        frames = [a.tobytes() for a in arr]
        out[f"encap_{bits}_{spp}.dcm"] = _write(
            _base("enc") + _image(6, 5, 2, bits, spp) + [(0x7FE00010, "OB", frames)],
            T.ENCAPSULATED_UNCOMPRESSED, offset_table="bot", fragments_per_frame=2)
    jpeg = T.builtin_frame_encoder(T.JPEG_BASELINE, 8)
    if jpeg is not None:
        arr = _frames(8, 8, 1, 8, 1)
        out["jpeg_baseline.dcm"] = _write(_base("jpg") + _image(8, 8, 1, 8, 1)
                                          + [(0x7FE00010, "OB", [jpeg(arr[0])])], T.JPEG_BASELINE)
    # the lossless codecs of imagecodecs (corrupt lossless JPEG crashed its lj92 / jpegsof3
    # decoders, and a garbage JPEG 2000 width made openjpeg allocate gigabytes)
    for ts, bits in ((T.JPEG_LOSSLESS_SV1, 16), (T.JPEG_LS_LOSSLESS, 16),
                     (T.JPEG_2000_LOSSLESS, 16)):
        enc = T.builtin_frame_encoder(ts, bits)
        if enc is None:
            continue
        arr = _frames(16, 12, 1, bits, 1)
        out[f"lossless_{ts}.dcm"] = _write(_base("ll") + _image(16, 12, 1, bits, 1)
                                           + [(0x7FE00010, "OB", [enc(arr[0])])], ts)
    # ISO 2022 text
    out["iso2022.dcm"] = _write(_base("jp")[:3] + [
        (0x00080005, "CS", ["", "ISO 2022 IR 87"]),
        (0x00100010, "PN", b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B")], T.EXPLICIT_LE)
    # no meta, raw implicit data set (force=True reads it)
    out["raw_implicit.dcm"] = T.encode_dataset(_base("raw"), explicit=False)
    return out


def pixel_seeds() -> dict:
    """Seeds of fuzz_pixels.py: b"\\x00" + a DICOM file (read from bytes), b"\\x02" + the same
    file (read through fastdicom.open from a memfd), or b"\\x01" + parameters + RLE frame."""
    files = seeds()
    out = {name: b"\x00" + data for name, data in files.items()}
    out.update({"open_" + name: b"\x02" + data for name, data in files.items()})
    rle = T.builtin_frame_encoder(T.RLE_LOSSLESS)
    if rle is not None:
        for k, (bits, spp) in enumerate(((8, 1), (16, 1), (8, 3), (32, 1))):
            arr = _frames(8, 8, 1, 8 if bits == 8 else 16, spp, seed=k)[0]
            if bits == 32:
                arr = arr.astype(np.uint32) * 65537
            params = bytes([8, 8, spp, (8, 16, 32).index(bits), 0, k % 3])
            out[f"rle_frame_{bits}_{spp}.bin"] = b"\x01" + params + rle(arr)
    return out


def csa_seeds() -> dict:
    """Siemens CSA image headers (SV10) as a mosaic has them, and some near misses."""
    normal = ["0.00000000", "0.10799", "-0.99415"]
    full = {"AcquisitionMatrixText": ["64p*64"], "NumberOfImagesInMosaic": ["35"],
            "SliceNormalVector": normal, "ImaCoilString": ["HEA;HEP"], "B_value": ["1000"]}
    out = {"csa_full.bin": T.csa_header_bytes(full),
           "csa_count_only.bin": T.csa_header_bytes({"NumberOfImagesInMosaic": ["16"]}),
           "csa_normal_only.bin": T.csa_header_bytes({"SliceNormalVector": normal}),
           "csa_text.bin": T.csa_header_bytes({"SequenceName": ["*epfid2d1_64"]}),
           "csa_empty_entry.bin": T.csa_header_bytes({"Empty": [], "NumberOfImagesInMosaic":
                                                      ["1"], "SliceNormalVector": ["0", "0",
                                                                                    "1"]})}
    out["csa_cut.bin"] = out["csa_full.bin"][:300]
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pixels = "--pixels" in argv
    csa = "--csa" in argv
    argv = [a for a in argv if a not in ("--pixels", "--csa")]
    outdir = Path(argv[0] if argv else "fuzz/corpus")
    outdir.mkdir(parents=True, exist_ok=True)
    made = pixel_seeds() if pixels else csa_seeds() if csa else seeds()
    for name, data in made.items():
        (outdir / name).write_bytes(data)
    print(f"{len(made)} seeds in {outdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
