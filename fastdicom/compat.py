"""Conversion to pydicom (optional dependency) for everything fastdicom does not do."""
from __future__ import annotations


def _value(elem):
    from .charset import PersonName
    from .values import DSfloat, IS
    value = elem.value
    if elem.VR == "SQ" and isinstance(value, list):
        return [to_pydicom(item) for item in value]

    def one(v):
        if isinstance(v, PersonName):
            return str(v)
        if isinstance(v, (DSfloat, IS)):
            return str(v)
        return v
    if isinstance(value, list):
        return [one(v) for v in value]
    return one(value)


def to_pydicom(ds):
    """A ``pydicom.Dataset`` (or ``FileDataset`` for a file) with the same elements."""
    try:
        import pydicom
        from pydicom.dataset import Dataset as PydicomDataset, FileMetaDataset
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("to_pydicom() needs pydicom: pip install pydicom") from exc
    out = PydicomDataset()
    for elem in ds:
        out.add_new(elem.tag, elem.VR, _value(elem))
    meta = getattr(ds, "file_meta", None)
    if meta is not None and len(meta):
        fm = FileMetaDataset()
        for elem in meta:
            fm.add_new(elem.tag, elem.VR, _value(elem))
        out.file_meta = fm
    return out
