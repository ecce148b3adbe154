"""Group "read": a single 512x512 CT instance, header only (issue 3)."""
from __future__ import annotations

from typing import Any

from .. import datagen, floors, peers
from ..runner import Goal, Impl, Task
from . import ours, peer

KEYWORDS = peers.HEADER_KEYWORDS
REPEAT = 1000


def _normalise(values: Any) -> list[str]:
    out = []
    for v in values:
        if isinstance(v, (list, tuple)) or type(v).__name__ in ("MultiValue",):
            out.append("\\".join("%g" % float(x) for x in v))
        elif isinstance(v, float):
            out.append("%g" % v)
        else:
            out.append(str(v).strip())
    return out


def build(plan: datagen.Plan) -> list[Task]:
    data = datagen.ct_instance()
    path = data.paths[0]
    spath = str(path)
    tasks = []

    # --- dcmread(stop_before_pixels=True) + 8 header values -----------------------------------
    impls: list[Impl] = []
    missing: dict[str, str] = {}

    def fastdicom_header():
        from fastdicom import dcmread

        def run():
            ds = dcmread(spath, stop_before_pixels=True)
            return (ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                    ds.Modality, ds.InstanceNumber, ds.ImagePositionPatient, ds.Rows)
        return run

    ours(impls, missing, "fastdicom", fastdicom_header)
    impls.append(Impl("floor: open + pread 8 KiB + close", lambda: floors.read_prefix(spath),
                      kind="floor"))
    peer(impls, missing, "pydicom", "pydicom", lambda: peers.pydicom_header(spath))
    peer(impls, missing, "dicomsdl", "dicomsdl", lambda: peers.dicomsdl_header(spath))
    expected: dict[str, list[str]] = {}

    def check(label: str, value: Any) -> None:
        if label.startswith("floor"):
            if len(value) != min(8192, path.stat().st_size):
                raise AssertionError("floor read the wrong number of bytes")
            return
        got = _normalise(value)
        ref = expected.setdefault("ref", got)
        if got != ref:
            raise AssertionError(f"{label} read different header values: {got} != {ref}")

    tasks.append(Task(
        "read", "read: header + 8 values", "dcmread(path, stop_before_pixels=True) + 8 header "
        "values of a 512×512 CT instance", "file", 1, impls, nbytes=8192, files=[path],
        missing=missing, check=check,
        goals=[Goal("≤ 4× the raw floor", "fastdicom", "floor: open + pread 8 KiB + close", "<=",
                    4.0, issue=3),
               Goal("≥ 15× faster than pydicom", "pydicom", "fastdicom", ">=", 15.0, issue=3)]))

    # --- repeated ds.PatientID --------------------------------------------------------------
    impls = []
    missing = {}

    def fastdicom_attr():
        from fastdicom import dcmread
        ds = dcmread(spath, stop_before_pixels=True)
        ds.PatientID

        def run():
            for _ in range(REPEAT):
                ds.PatientID
            return ds.PatientID
        return run

    ours(impls, missing, "fastdicom", fastdicom_attr)

    class _Plain:
        __slots__ = ("PatientID",)

    plain = _Plain()
    plain.PatientID = "FDPAT000007"

    def floor_attr():
        for _ in range(REPEAT):
            plain.PatientID
        return plain.PatientID

    impls.append(Impl("floor: plain Python attribute", floor_attr, kind="floor"))

    def pydicom_attr():
        import pydicom
        ds = pydicom.dcmread(spath, stop_before_pixels=True)

        def run():
            for _ in range(REPEAT):
                ds.PatientID
            return ds.PatientID
        return run

    if peers.available("pydicom")[0]:
        impls.append(Impl("pydicom", pydicom_attr(), kind="peer", peer="pydicom"))
    else:
        missing["pydicom"] = peers.available("pydicom")[1]
    tasks.append(Task(
        "read", "read: repeated ds.PatientID", "repeated ds.PatientID on an open data set",
        "access", REPEAT, impls, missing=missing,
        goals=[Goal("≤ 0.3 µs per access", "fastdicom", None, "<=", 0.3e-6, issue=3)]))
    return tasks
