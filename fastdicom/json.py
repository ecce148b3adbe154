"""The DICOM JSON model (PS3.18 Annex F.2) of a data set, as pydicom 3 produces it."""
from __future__ import annotations

import base64
import math
from typing import Any, Callable, Optional

_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW",
                         "US or SS or OW"})
_INT_VRS = frozenset({"IS", "SL", "SS", "SV", "UL", "US", "UV", "US or SS"})
_FLOAT_VRS = frozenset({"DS", "FD", "FL"})


def _is_empty(value, vr: str) -> bool:
    if vr == "SQ":
        return not value
    if value is None:
        return True
    if isinstance(value, (str, bytes)):
        return len(value) == 0
    if isinstance(value, (list, tuple)):
        return len(value) == 0
    if hasattr(value, "components"):  # PersonName
        return not str(value)
    return False


def _number(value, kind):
    if value is None or value == "":
        return None if kind is not str else value
    try:
        number = float(value) if kind is float else int(value)
    except (TypeError, ValueError, OverflowError):
        return str(value)  # a malformed IS/DS kept as text in lenient mode
    if kind is float and not math.isfinite(number):
        return str(value)  # "inf"/"nan"/"1E999": no JSON number (json.dumps would write NaN)
    return number


def element_to_json(elem, bulk_data_threshold: int,
                    handler: Optional[Callable[[Any], str]]) -> dict:
    """The JSON model of an element that is not a sequence (see dataset_to_json_dict)."""
    vr = elem.VR
    out: dict[str, Any] = {"vr": vr}
    value = elem.value
    if vr in _BINARY_VRS:
        if not _is_empty(value, vr):
            if handler is not None and len(value) > (bulk_data_threshold // 4) * 3:
                out["BulkDataURI"] = handler(elem)
            else:
                try:
                    # (straight from the value's buffer: bytes() of it was one more copy)
                    data = value if isinstance(value, (bytes, bytearray, memoryview)) \
                        else bytes(value)
                    out["InlineBinary"] = base64.b64encode(data).decode("ascii")
                except MemoryError:
                    # a value the process cannot hold three times over (a deflated data set
                    # that inflates to gigabytes): the limit's error, naming the element
                    from .errors import LimitExceededError
                    raise LimitExceededError(
                        f"a {len(value)}-byte {vr} value is too large to inline as base64 "
                        "(pass a bulk_data_element_handler)",
                        offset=elem.header_offset if elem.header_offset >= 0 else None,
                        tag=elem.tag) from None
        return out
    if _is_empty(value, vr):
        return out
    values = list(value) if isinstance(value, list) else [value]
    if vr == "PN":
        items = []
        for v in values:
            comps = getattr(v, "components", None)
            if comps is None:
                comps = tuple(str(v).split("="))
            entry = {"Alphabetic": comps[0] if comps else ""}
            if len(comps) > 1:
                entry["Ideographic"] = comps[1]
            if len(comps) > 2:
                entry["Phonetic"] = comps[2]
            items.append(entry)
        out["Value"] = items
        return out
    if vr == "AT":
        out["Value"] = [format(int(v), "08X") for v in values]
        return out
    if vr in _INT_VRS or vr in _FLOAT_VRS:
        if any(isinstance(v, (bytes, bytearray)) for v in values):
            # a binary number of a wrong length, kept as bytes: no JSON number (pydicom
            # raises too; suppress_invalid_tags leaves the element out)
            from .errors import MalformedElementError
            raise MalformedElementError(f"value of {len(value)} bytes is not a whole number "
                                        f"of {vr} values", offset=getattr(elem, "header_offset",
                                                                          None), tag=elem.tag)
    if vr in _INT_VRS:
        values = [_number(v, int) for v in values]
    elif vr in _FLOAT_VRS:
        values = [_number(v, float) for v in values]
    out["Value"] = values
    return out


def dataset_to_json_dict(ds, bulk_data_threshold: int = 1024,
                         bulk_data_element_handler: Optional[Callable[[Any], str]] = None,
                         suppress_invalid_tags: bool = False) -> dict:
    """The JSON model of ``ds``: iterative, the dict of each sequence item placed first and
    filled when its turn comes, so no recursion however deep the items nest."""
    from .errors import DicomError
    result: dict = {}
    work = [(ds, result)]
    while work:
        item, out = work.pop()
        for elem in item:
            key = f"{elem.tag:08X}"
            try:
                value = elem.value if elem.VR == "SQ" else None
                if isinstance(value, list):
                    children = [{} for _ in value]
                    work.extend(reversed(list(zip(value, children))))
                    out[key] = {"vr": "SQ", "Value": children}
                else:
                    out[key] = element_to_json(elem, bulk_data_threshold,
                                               bulk_data_element_handler)
            except DicomError as exc:
                if not suppress_invalid_tags:
                    filename = getattr(item, "filename", None)
                    raise exc.with_context(
                        path=filename if isinstance(filename, str) else None)
    return result
