"""Conversion to pydicom (optional dependency) for everything fastdicom does not do."""
from __future__ import annotations


def _value(elem):
    from .charset import PersonName
    from .values import DSfloat, IS
    value = elem.value
    if isinstance(value, list) and _is_sequence(elem):
        return [_items(item) for item in value]

    def one(v):
        if isinstance(v, PersonName):
            return str(v)
        if isinstance(v, (DSfloat, IS)):
            return str(v)
        return v
    if isinstance(value, list):
        return [one(v) for v in value]
    return one(value)


def _is_sequence(elem) -> bool:
    from .dataset import Dataset
    value = elem.value
    return elem.VR == "SQ" or (isinstance(value, list) and bool(value) and
                               all(isinstance(v, Dataset) for v in value))


def _element(elem):
    """The pydicom DataElement of ``elem``.  An element read as a sequence has VR SQ (an UN
    element holding one, as pydicom reads it).  A value pydicom's constructors refuse (DS or
    IS text that is not a number, kept as text on reading; UN bytes of a tag the dictionary
    calls a sequence) is made from its bytes or text the way pydicom's reader makes it."""
    from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
    from pydicom.tag import Tag
    vr = "SQ" if _is_sequence(elem) else elem.VR
    value = _value(elem)
    try:
        return DataElement(elem.tag, vr, value)
    except (ValueError, TypeError, OverflowError):
        if isinstance(value, (bytes, bytearray)):
            raw = bytes(value)
        elif vr in ("DS", "IS"):
            texts = value if isinstance(value, list) else [value]
            raw = "\\".join("" if t is None else str(t) for t in texts).encode("latin-1",
                                                                              "replace")
        else:
            raise
    if len(raw) % 2:
        raw += b" " if vr in ("DS", "IS") else b"\0"
    return convert_raw_data_element(RawDataElement(Tag(elem.tag), vr, len(raw), raw, 0, False,
                                                   True))


def _items(ds):
    from pydicom.dataset import Dataset as PydicomDataset
    out = PydicomDataset()
    for elem in ds:
        out.add(_element(elem))
    return out


def to_pydicom(ds):
    """A ``pydicom.Dataset``, or a ``pydicom.FileDataset`` for a data set read from a file or
    buffer (with its file meta, preamble and encoding), holding the same elements."""
    try:
        from pydicom.dataset import FileDataset, FileMetaDataset
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("to_pydicom() needs pydicom: pip install pydicom") from exc
    out = _items(ds)
    meta = getattr(ds, "file_meta", None)
    fm = None
    if meta is not None and len(meta):
        fm = FileMetaDataset()
        for elem in meta:
            fm.add(_element(elem))
    d = ds.__dict__
    if d.get("_index") is None or d.get("_parent") is not None:
        # made in memory, or an item of a sequence: no file
        if fm is not None:
            out.file_meta = fm
        return out
    filename = ds.filename if isinstance(ds.filename, str) else ""
    fds = FileDataset(filename, out, preamble=ds.preamble, file_meta=fm or FileMetaDataset(),
                      is_implicit_VR=ds.is_implicit_VR, is_little_endian=ds.is_little_endian)
    return fds
