"""Peers: the readers users would pick instead of fastdicom, each optional.

Every peer is imported lazily; :func:`available` returns ``(True, version)`` or
``(False, "missing: <reason>")`` so a report names every peer it could not run.
Each helper opens its file afresh on every call (no reader object is reused across calls).
"""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["PEERS", "available", "versions", "HEADER_KEYWORDS",
           "pydicom_header", "pydicom_pixel_array", "pydicom_load_series", "pydicom_scan",
           "dicomsdl_header", "dicomsdl_pixels", "dicomsdl_load_series", "dicomsdl_scan",
           "gdcm_scan", "pylibjpeg_rle_decode", "sitk_load_series", "dcm2niix_convert"]

HEADER_KEYWORDS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                   "Modality", "InstanceNumber", "ImagePositionPatient", "Rows")

#: peer name -> (import name, distribution name for the version)
PEERS = {
    "pydicom": ("pydicom", "pydicom"),
    "pylibjpeg-rle": ("rle", "pylibjpeg-rle"),
    "dicomsdl": ("dicomsdl", "dicomsdl"),
    "gdcm": ("gdcm", "python-gdcm"),
    "SimpleITK": ("SimpleITK", "SimpleITK"),
    "dcm2niix": (None, "dcm2niix"),
}


@lru_cache(maxsize=None)
def available(name: str) -> tuple[bool, str]:
    """``(True, version)`` if the peer can run here, else ``(False, "missing: reason")``."""
    import importlib.metadata as md
    module, dist = PEERS[name]
    if name == "dcm2niix":
        exe = _dcm2niix_exe()
        if exe is None:
            return False, "missing: dcm2niix executable not found (pip install dcm2niix)"
        try:
            out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
            text = (out.stdout + out.stderr).strip().splitlines()
            version = next((w for line in text for w in line.split() if w.startswith("v1.")),
                           "unknown")
        except (OSError, subprocess.SubprocessError) as exc:
            return False, f"missing: dcm2niix does not run ({exc})"
        return True, version
    try:
        importlib.import_module(module)
    except Exception as exc:
        return False, f"missing: import {module} failed ({type(exc).__name__}: {exc})"
    try:
        return True, md.version(dist)
    except md.PackageNotFoundError:
        return True, "unknown"


def versions() -> dict[str, str]:
    """Version (or missing reason) of every peer and helper library."""
    import importlib.metadata as md
    out = {name: available(name)[1] for name in PEERS}
    for dist in ("numpy", "pylibjpeg", "pylibjpeg-libjpeg", "pylibjpeg-openjpeg", "pyjpegls",
                 "imagecodecs", "pyarrow", "matplotlib", "pytest-benchmark"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "missing"
    return out


# ---------------------------------------------------------------------------------- pydicom

def pydicom_header(path: Any) -> tuple:
    """pydicom: dcmread(stop_before_pixels=True) and read the 8 header values."""
    import pydicom
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return (ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
            ds.Modality, ds.InstanceNumber, ds.ImagePositionPatient, ds.Rows)


def pydicom_pixel_array(path: Any) -> np.ndarray:
    import pydicom
    return pydicom.dcmread(path).pixel_array


def pydicom_scan(paths: Sequence[Any], keywords: Sequence[str] = HEADER_KEYWORDS) -> list:
    import pydicom
    out = []
    for p in paths:
        ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=list(keywords))
        out.append([ds.get(k) for k in keywords])
    return out


def _slice_key(ipp: Sequence[float], iop: Sequence[float]) -> float:
    r = np.asarray(iop[:3], float)
    c = np.asarray(iop[3:6], float)
    return float(np.dot(np.cross(r, c), np.asarray(ipp, float)))


def pydicom_load_series(paths: Sequence[Any]) -> np.ndarray:
    """The typical pydicom loader: dcmread each file, sort by position along the normal, stack."""
    import pydicom
    dss = [pydicom.dcmread(p) for p in paths]
    dss.sort(key=lambda d: _slice_key(d.ImagePositionPatient, d.ImageOrientationPatient))
    return np.stack([d.pixel_array for d in dss])


# --------------------------------------------------------------------------------- dicomsdl

def dicomsdl_header(path: Any) -> tuple:
    import dicomsdl
    ds = dicomsdl.open(str(path), 0x7FE00000)
    return (ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
            ds.Modality, ds.InstanceNumber, ds.ImagePositionPatient, ds.Rows)


def dicomsdl_pixels(path: Any) -> np.ndarray:
    import dicomsdl
    ds = dicomsdl.open(str(path))
    return ds.pixelData(storedvalue=True)


def dicomsdl_scan(paths: Sequence[Any], keywords: Sequence[str] = HEADER_KEYWORDS) -> list:
    import dicomsdl
    out = []
    for p in paths:
        ds = dicomsdl.open(str(p), 0x7FE00000)
        out.append([ds[k] for k in keywords])
    return out


def dicomsdl_load_series(paths: Sequence[Any]) -> np.ndarray:
    """dicomsdl: open each file, sort by position, copy each frame into a preallocated array."""
    import dicomsdl
    dss = [dicomsdl.open(str(p)) for p in paths]
    dss.sort(key=lambda d: _slice_key(d.ImagePositionPatient, d.ImageOrientationPatient))
    info = dss[0].getPixelDataInfo()
    out = np.empty((len(dss), info["Rows"], info["Cols"]), dtype=np.dtype(info["dtype"]))
    for i, d in enumerate(dss):
        d.copyFrameData(0, out[i])
    return out


# ------------------------------------------------------------------------------------- gdcm

_GDCM_TAGS = {"PatientID": (0x0010, 0x0020), "StudyInstanceUID": (0x0020, 0x000D),
              "SeriesInstanceUID": (0x0020, 0x000E), "SOPInstanceUID": (0x0008, 0x0018),
              "Modality": (0x0008, 0x0060), "InstanceNumber": (0x0020, 0x0013),
              "ImagePositionPatient": (0x0020, 0x0032), "Rows": (0x0028, 0x0010)}


def gdcm_scan(paths: Sequence[Any], keywords: Sequence[str] = HEADER_KEYWORDS) -> list:
    """python-gdcm ``gdcm.Scanner`` reading the same tags (values as GDCM's strings)."""
    import gdcm
    scanner = gdcm.Scanner()
    tags = [gdcm.Tag(*_GDCM_TAGS[k]) for k in keywords]
    for t in tags:
        scanner.AddTag(t)
    names = [str(p) for p in paths]
    if not scanner.Scan(names):
        raise RuntimeError("gdcm.Scanner failed")
    return [[scanner.GetValue(n, t) for t in tags] for n in names]


# ------------------------------------------------------------------------------ pylibjpeg-rle

def pylibjpeg_rle_decode(src: Any, rows: int, columns: int, bits_allocated: int,
                         dtype: Any) -> np.ndarray:
    """pylibjpeg-rle's frame decoder (Rust) on one RLE frame; returns the frame array."""
    from rle.utils import decode_frame
    out = decode_frame(src, rows * columns, bits_allocated, "<")
    return np.frombuffer(out, dtype=np.dtype(dtype).newbyteorder("<")).reshape(rows, columns)


# -------------------------------------------------------------------------------- SimpleITK

def sitk_load_series(directory: Any) -> np.ndarray:
    """SimpleITK: find the series files (GDCM), ImageSeriesReader.Execute, to numpy."""
    import SimpleITK as sitk
    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(directory))
    reader.SetFileNames(names)
    image = reader.Execute()
    return sitk.GetArrayFromImage(image)


# ---------------------------------------------------------------------------------- dcm2niix

def _dcm2niix_exe() -> str | None:
    import sys
    here = Path(sys.executable).parent / "dcm2niix"
    if here.exists():
        return str(here)
    return shutil.which("dcm2niix")


def dcm2niix_convert(directory: Any, workdir: Any = None) -> int:
    """dcm2niix as a subprocess (uncompressed NIfTI, no sidecar) into a fresh temporary
    folder; returns the size of the NIfTI written (the folder is removed afterwards)."""
    exe = _dcm2niix_exe()
    if exe is None:
        raise RuntimeError("dcm2niix not installed")
    out = tempfile.mkdtemp(prefix="fdbench-dcm2niix-", dir=workdir)
    try:
        subprocess.run([exe, "-z", "n", "-b", "n", "-v", "0", "-f", "vol", "-o", out,
                        str(directory)], check=True, capture_output=True, timeout=600)
        files = [f for f in os.listdir(out) if f.endswith(".nii")]
        if not files:
            raise RuntimeError("dcm2niix wrote no NIfTI")
        return sum(os.path.getsize(os.path.join(out, f)) for f in files)
    finally:
        shutil.rmtree(out, ignore_errors=True)
