"""Dataset, DataElement and Sequence over an :class:`~fastdicom._scan.ElementIndex`.

Values are decoded lazily, on first access, and cached.  The vocabulary is pydicom's:
``ds.PatientID``, ``ds["PatientID"]``, ``ds[0x00100020]``, ``ds[(0x0010, 0x0020)]``, ``in``,
``len``, iteration in tag order, ``ds.get``, ``ds.file_meta``.
"""
from __future__ import annotations

import itertools
import struct
import weakref
from typing import Any, Iterator, Optional

from . import _dictionary as _dict
from . import tags as _tags
from ._scan import scan as _scan, MISSING as _MISSING, KeywordAttribute
from .errors import (DicomError, warn_caller, Limits, DEFAULT_LIMITS, status_error,
                     NestingTooDeepError, LimitExceededError, MalformedElementError,
                     TruncatedError, report)
from .values import (decode_value, empty_value, MultiValue, NUMBER_FORMATS,
                     LUT_DESCRIPTOR_TAGS, unsigned_entries)

_NUMBER_SIZES = {vr: struct.calcsize("<" + f) for vr, f in NUMBER_FORMATS.items()}
_CHARSET_VR_SET = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})

_KEYWORD_TO_TAG = _dict.KEYWORD_TO_TAG
_ELEMENTS = _dict.ELEMENTS

F_UNDEFINED = 1
F_UN_SQ = 2
F_ODD = 4
F_ITEM = 8
F_FRAGMENT = 16
F_ENCAPSULATED = 32
F_CLIPPED = 64
F_IMPLICIT = 128
F_BIG_ENDIAN = 256
F_SQ_BLOB = 512

_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_CHARSET_CACHE: dict = {}
# defined-length sequences of at least this many bytes are indexed on first access
DEFER_SQ_BYTES = 65536
_FRESH = {"_encodings": None, "_tags_cache": None, "_pixel_cache": None}
_LATIN1_CHARSETS = (["iso8859"], ["latin_1"], ("iso8859",), ("latin_1",))
_wref = weakref.ref


class _Gone:
    pass


# the parent reference of a data set rebuilt from its recipe whose parent is gone too
_DEAD_REF = _wref(_Gone())


class _Recipe:
    """What rebuilds a data set as it was read, for an element or item that outlives it: its
    element index, item and context, its parent's recipe and its depth base.  Once the data
    set is changed (an element set, deleted or given a new value) it is ``pinned`` here: its
    elements and items then keep it itself, changes included (a reference cycle, freed by the
    cyclic collector, as a changed data set is no longer what its file holds)."""

    __slots__ = ("index", "item", "ctx", "parent", "base", "pinned", "revived")

    def __init__(self, index, item, ctx, parent, base):
        self.index = index
        self.item = item
        self.ctx = ctx
        self.parent = parent
        self.base = base
        self.pinned = None
        self.revived = None     # (a weakref to the last data set rebuilt, shared while alive)


def _register_latin1_terms() -> None:
    """Tell the C keyword fast path which single Specific Character Set terms (and whether a
    missing element) make ``_charset() in _LATIN1_CHARSETS``: it then need not ask."""
    from ._scan import _set_latin1_terms
    from .charset import convert_encodings
    terms = [t for t in _dict.CHARACTER_SETS
             if t and "\\" not in t and convert_encodings(t) in _LATIN1_CHARSETS]
    _set_latin1_terms(terms, convert_encodings(None) in _LATIN1_CHARSETS)


_ASCII_SPLIT_VRS = frozenset({"UI", "CS", "DA", "TM", "DT", "AS"})


class Context:
    """What every Dataset of one file shares: the buffer, its owner and the read options."""

    __slots__ = ("buffer", "path", "validation", "limits", "inflated", "owner", "preamble",
                 "is_little_endian", "is_implicit_VR", "transfer_syntax", "__weakref__")

    def __init__(self, buffer, path=None, validation="warn", limits: Limits = DEFAULT_LIMITS,
                 inflated=False, owner=None, preamble=None, is_little_endian=True,
                 is_implicit_VR=False, transfer_syntax=None):
        self.buffer = buffer
        self.path = path
        self.validation = validation
        self.limits = limits
        self.inflated = inflated
        self.owner = owner
        self.preamble = preamble
        self.is_little_endian = is_little_endian
        self.is_implicit_VR = is_implicit_VR
        self.transfer_syntax = transfer_syntax


class DataElement:
    """One element: ``tag``, ``VR``, ``VM``, ``value``, ``keyword``, ``name``, ``offset``
    (of the value, in the file or the inflated stream) and ``length`` (of the value)."""

    # An element refers to its data set weakly (``_dataset``: a weakref, or None) and keeps
    # the data set's recipe (``_origin``: a _Recipe), so that data set, elements and
    # sequence items form no reference cycle: a data set and its buffer are freed as soon as
    # the last reference goes, not when the cyclic collector runs.  An element that outlives
    # its data set still decodes, through the data set rebuilt from the recipe (or kept by
    # it, once changed).
    __slots__ = ("tag", "VR", "offset", "length", "header_offset", "flags", "_value",
                 "_loaded", "_dataset", "_index_pos", "_origin", "_creator")

    def __init__(self, tag: int, VR: str, value: Any = None, *, offset: int = -1,
                 length: int = 0, header_offset: int = -1, flags: int = 0,
                 dataset: "Dataset | None" = None, index_pos: int = -1, loaded: bool = True):
        self.tag = _tags.parse_tag(tag) if not isinstance(tag, int) else tag
        self.VR = VR
        self.offset = offset
        self.length = length
        self.header_offset = header_offset
        self.flags = flags
        self._value = value
        self._loaded = loaded
        self._dataset = None if dataset is None else _wref(dataset)
        self._origin = None if dataset is None else dataset._recipe()
        self._index_pos = index_pos

    def __reduce_ex__(self, protocol):
        # (copy, deepcopy and pickle) the value decoded, without the buffer it came from
        value = self.value
        if isinstance(value, memoryview):
            value = value.tobytes()
        # (a private element keeps its creator, for its name, as pydicom's does)
        creator = self._private_creator() if self.tag & 0x00010000 else None
        return (_element_from_state, (self.tag, self.VR, value, self.length, self.flags,
                                      creator))

    def _private_creator(self) -> Optional[str]:
        ds = self._owner()
        creator = ds._private_creator(self.tag) if ds is not None else None
        return creator if creator is not None else getattr(self, "_creator", None)

    def _owner(self) -> "Dataset | None":
        """The data set the element was read from (rebuilt if it is gone), or the one it
        was added to, or None."""
        ref = self._dataset
        ds = None if ref is None else ref()
        if ds is None and self._origin is not None:
            ds = _revive(self._origin)
        return ds

    @property
    def value(self) -> Any:
        if not self._loaded:
            self._value = self._owner()._decode(self)
            self._loaded = True
        return self._value

    @value.setter
    def value(self, new) -> None:
        self._value = new
        self._loaded = True
        ref = self._dataset
        ds = None if ref is None else ref()
        if ds is not None:
            ds._pin()
            # the cached ``ds.<Keyword>`` value and pixel description of the data set, and
            # of its shallow copies (which share the element), are stale
            family = ds.__dict__.get("_family")
            keyword = _tags.keyword_for_tag(self.tag)
            for member in (ds,) if family is None else [m() for m in family]:
                if member is not None:
                    d = member.__dict__
                    d.pop(keyword, None)
                    d["_pixel_cache"] = None
                    if self.tag == 0x00080005:
                        member._charset_changed()

    @property
    def raw_value(self) -> bytes:
        """The undecoded value bytes (a copy)."""
        origin = self._origin
        if origin is None or origin.index is None or self._index_pos < 0:
            raise ValueError("element was not read from a buffer")
        return origin.index.value(self._index_pos)

    @property
    def VM(self) -> int:
        value = self.value
        if value is None or (isinstance(value, (str, bytes)) and value == "" or value == b""):
            return 0
        if hasattr(value, "components") and not str(value):
            return 0            # an empty PersonName (not a str), as pydicom counts it
        if self.VR == "SQ":
            return 1
        if isinstance(value, (list, tuple)):
            return len(value)
        return 1

    @property
    def keyword(self) -> str:
        return _tags.keyword_for_tag(self.tag)

    @property
    def name(self) -> str:
        if _tags.is_private(self.tag):
            creator = self._private_creator()
            if creator is not None:
                entry = _tags.private_dictionary_entry(self.tag, creator)
                if entry is not None:
                    return f"[{entry[2]}]"
        return _tags.dictionary_name(self.tag)

    @property
    def is_private(self) -> bool:
        return bool((self.tag >> 16) & 1)

    @property
    def is_undefined_length(self) -> bool:
        return bool(self.flags & F_UNDEFINED)

    def __eq__(self, other) -> bool:
        if not isinstance(other, DataElement):
            return NotImplemented
        return _elements_equal([(self, other)])

    def __repr__(self) -> str:
        return f"({self.tag >> 16:04X},{self.tag & 0xFFFF:04X}) {self.VR} {self.keyword or self.name}: {self.repval}"

    @property
    def repval(self) -> str:
        if self.VR == "SQ":
            return f"<Sequence, length {len(self.value)}>"
        if self.VR in ("OB", "OW", "OD", "OF", "OL", "OV", "UN") or self.length > 256:
            return f"Array of {self.length} bytes"
        return repr(self.value)


_new_element = object.__new__
_PIXELS = None


def _pixels():
    """fastdicom.pixels, imported on first use (it pulls in the codec registry)."""
    global _PIXELS
    if _PIXELS is None:
        from . import pixels
        _PIXELS = pixels
    return _PIXELS


class Sequence(list):
    """A list of Datasets (the items of an SQ element)."""

    def __repr__(self) -> str:
        return f"<Sequence, length {len(self)}>"


class Dataset:
    """A data set, lazily decoded from an element index."""

    def __init__(self, *args, **kwargs):
        # Dataset() with no arguments makes an empty, writable data set (as in pydicom)
        d = self.__dict__
        d["_index"] = None
        d["_item"] = -1
        d["_ctx"] = Context(b"")
        d["_parent"] = None
        d["_elements"] = {}
        d["_encodings"] = None
        d["_tags_cache"] = None
        d["_file_meta"] = None
        d["_pixel_cache"] = None

    @classmethod
    def _from_index(cls, index, item: int, ctx: Context, parent: "Dataset | None" = None):
        self = cls.__new__(cls)
        d = self.__dict__
        d.update(_FRESH)
        d["_index"] = index
        d["_item"] = item
        d["_ctx"] = ctx
        d["_elements"] = {}
        if parent is None:
            d["_parent"] = None
        else:
            # weakly (the parent holds its items): with the parent's recipe to rebuild it
            # from, should the item outlive it
            d["_parent"] = _wref(parent)
            d["_parent_recipe"] = parent._recipe()
            # depths in ``index`` count from the level its data set starts at: an item of a
            # sequence scanned on first access keeps that base for the sequences below it
            base = parent.__dict__.get("_depth_base", 0)
            if base and parent.__dict__["_index"] is index:
                d["_depth_base"] = base
        return self

    def _recipe(self) -> _Recipe:
        """What rebuilds this data set as read (see _Recipe)."""
        d = self.__dict__
        recipe = d.get("_recipe_t")
        if recipe is None:
            recipe = d["_recipe_t"] = _Recipe(d["_index"], d["_item"], d["_ctx"],
                                              d.get("_parent_recipe"),
                                              d.get("_depth_base", 0))
        return recipe

    def _pin(self) -> None:
        """This data set was changed: what outlives it keeps it, not a rebuilt copy."""
        self._recipe().pinned = self

    def _up(self) -> "Dataset | None":
        """The data set holding this one as a sequence item (rebuilt if it is gone), or None."""
        d = self.__dict__
        ref = d["_parent"]
        if ref is None:
            return None
        parent = ref()
        if parent is None:
            parent = d.get("_parent_kept")
            if parent is None:
                recipe = d.get("_parent_recipe")
                if recipe is None:
                    return None
                # (kept: it refers to none of this data set's objects)
                parent = d["_parent_kept"] = _revive(recipe)
        return parent

    # -- element access -------------------------------------------------------------------
    def _element(self, tag: int) -> Optional[DataElement]:
        elems = self.__dict__["_elements"]
        elem = elems.get(tag)
        if elem is not None:
            return elem
        i = self._find(tag)
        if i < 0:
            return None
        elem = self._make_element(i)
        elems[tag] = elem
        return elem

    def _find(self, tag: int) -> int:
        """The index entry of this level's element ``tag`` (the first, if repeated), or -1.
        Once the level's tags are listed (iteration), a dict answers: a search per tag
        made iterating quadratic (100,000 elements: 30 s)."""
        d = self.__dict__
        index = d["_index"]
        if index is None:
            return -1
        positions = d.get("_positions")
        if positions is not None:
            return positions.get(tag, -1)
        return index.find(tag, d["_item"])

    def _make_element(self, i: int) -> DataElement:
        tag, vr, flags, voff, length, hoff = self.__dict__["_index"].info(i)
        if vr == "" or " " in vr or vr == "UN" or flags & F_UN_SQ:
            vr = self._resolve_vr(tag, vr, flags, length)
        elem = _new_element(DataElement)
        elem.tag = tag
        elem.VR = vr
        elem.offset = voff
        elem.length = length
        elem.header_offset = hoff
        elem.flags = flags
        elem._value = None
        elem._loaded = False
        elem._dataset = _wref(self)
        elem._origin = self.__dict__.get("_recipe_t") or self._recipe()
        elem._index_pos = i
        if vr == "SQ" and flags & F_SQ_BLOB:
            # decide now whether the value really holds items, so VR "SQ" always means a
            # Sequence of Datasets (else it becomes UN bytes, with a warning)
            elem._value = self._decode_sq_blob(elem)
            elem._loaded = True
        return elem

    def _resolve_vr(self, tag: int, vr: str, flags: int, length: int) -> str:
        if vr == "SQ":
            return vr
        if vr == "" or (vr == "UN" and not flags & F_UN_SQ):
            if tag & 0x00010000:  # private group
                entry_vr = self._private_vr(tag)
                if entry_vr is None:
                    return "UN" if vr == "" or vr == "UN" else vr
                vr = entry_vr
            else:
                entry = _ELEMENTS.get(tag)
                if entry is not None:
                    dvr = entry[0]
                elif (tag & 0xFFFF) == 0:
                    dvr = "UL"
                else:
                    dvr = _tags.dictionary_vr(tag)
                if dvr is None or dvr == "NONE":
                    return "UN"
                if vr == "UN" and length >= 0xFFFF:
                    return "UN"
                vr = dvr
        if flags & F_UN_SQ:
            return "SQ"
        if " or " in vr:
            vr = self._ambiguous_vr(tag, vr, flags)
        return vr

    def _private_vr(self, tag: int) -> Optional[str]:
        element = tag & 0xFFFF
        if 0x0010 <= element <= 0x00FF:
            return "LO"
        if element < 0x0100:
            return None
        creator = self._private_creator(tag)
        if not creator:
            return None
        entry = _tags.private_dictionary_entry(tag, creator)
        if entry is None:
            return None
        vr = entry[0]
        if " or " in vr:
            vr = self._ambiguous_vr(tag, vr, 0)
        return vr

    def _private_creator(self, tag: int) -> Optional[str]:
        if (tag & 0xFFFF) < 0x0100:
            return None
        creator_tag = (tag & 0xFFFF0000) | ((tag >> 8) & 0xFF)
        elem = self._element(creator_tag)
        if elem is None:
            return None
        value = elem.value
        if isinstance(value, list):
            value = value[0] if value else ""
        return value if isinstance(value, str) else None

    def _lookup_up(self, keyword_tag: int):
        ds = self
        while ds is not None:
            elem = ds._element(keyword_tag)
            if elem is not None:
                return elem.value
            ds = ds._up()
        return None

    def _ambiguous_vr(self, tag: int, vr: str, flags: int) -> str:
        # the rules pydicom's correct_ambiguous_vr applies
        if vr == "US or SS" or vr == "US or SS or OW":
            if tag == 0x7FE00010:
                return "OW"
            pr = self._lookup_up(0x00280103)
            if pr is None:
                return "US"
            return "SS" if pr == 1 else "US"
        if vr == "OB or OW":
            if tag == 0x7FE00010:
                if flags & F_ENCAPSULATED:
                    return "OB"
                bits = self._lookup_up(0x00280100)
                if bits is not None and isinstance(bits, int) and bits > 8:
                    return "OW"
                if self.__dict__["_ctx"].is_implicit_VR:
                    return "OW"
                return "OB"
            if (tag >> 16) & 0xFF00 == 0x6000 and (tag & 0xFFFF) == 0x3000:
                return "OW" if self.__dict__["_ctx"].is_implicit_VR else "OB"
            return vr
        if vr == "US or OW":
            # LUT Data: US when the LUT Descriptor of its item declares one entry, else OW
            # (pydicom 3; PS3.3 C.11.1.1.1)
            desc = self._element(0x00283002) if tag == 0x00283006 else None
            value = desc.value if desc is not None else None
            first = value[0] if isinstance(value, list) and value else value
            return "US" if first == 1 or desc is None else "OW"
        return vr  # left ambiguous, as pydicom does

    def _decode(self, elem: DataElement) -> Any:
        index = self.__dict__["_index"]
        ctx: Context = self.__dict__["_ctx"]
        i = elem._index_pos
        vr = elem.VR
        flags = elem.flags
        if elem.flags & F_CLIPPED:
            report(ctx.validation, TruncatedError(
                "value runs past the end of the data; using the bytes present",
                path=ctx.path, offset=elem.header_offset, tag=elem.tag))
        if vr == "SQ":
            if flags & F_SQ_BLOB:
                return self._decode_sq_blob(elem)
            return Sequence(Dataset._from_index(index, item, ctx, self)
                            for item in index.children(i))
        if elem.length == 0:
            return empty_value(vr)
        if vr in _ASCII_SPLIT_VRS and not flags & F_CLIPPED:
            text = index.text(i)
            if vr == "UI":      # each UID without surrounding whitespace (pydicom's UID())
                if "\\" not in text:
                    return text.strip()
                return MultiValue(t.strip() for t in text.split("\\"))
            if "\\" not in text:
                return text
            return MultiValue(text.split("\\"))
        raw = index.value(i)
        size = _NUMBER_SIZES.get(vr)
        if size is not None and len(raw) % size:
            # (pydicom raises; its retry as text would turn the value into a string)
            report(ctx.validation, MalformedElementError(
                f"value length {len(raw)} is not a multiple of {size} bytes (VR {vr}); the "
                "value is left as bytes", path=ctx.path, offset=elem.header_offset,
                tag=elem.tag))
            return raw
        little = not flags & F_BIG_ENDIAN
        if vr == "SS" and elem.tag in LUT_DESCRIPTOR_TAGS:
            # (implicit VR too, where pydicom 3 leaves the count negative)
            return unsigned_entries(decode_value(vr, raw, little_endian=little))
        try:
            encodings = self._charset() if vr in _CHARSET_VR_SET else None
            if ctx.validation != "warn":
                return decode_value(vr, raw, little_endian=little, encodings=encodings,
                                    validation=ctx.validation)
            try:
                return decode_value(vr, raw, little_endian=little, encodings=encodings,
                                    validation="raise")
            except DicomError as exc:
                # the warning names the element; the value is the lenient decoding's
                report("warn", exc.with_context(path=ctx.path, offset=elem.header_offset,
                                                tag=elem.tag))
                return decode_value(vr, raw, little_endian=little, encodings=encodings,
                                    validation="ignore")
        except DicomError as exc:
            raise exc.with_context(path=ctx.path, offset=elem.header_offset, tag=elem.tag)

    def _decode_sq_blob(self, elem: DataElement) -> Sequence:
        """A defined-length value scanned on first access: a large sequence the scan deferred,
        or a value whose VR resolved to SQ after the scan (implicit VR private sequences, UN
        for known sequence tags)."""
        ctx: Context = self.__dict__["_ctx"]
        index = self.__dict__["_index"]
        start, end = elem.offset, elem.offset + elem.length
        little = not elem.flags & F_BIG_ENDIAN
        depth = self.__dict__.get("_depth_base", 0) + index.depth(elem._index_pos)
        remaining = ctx.limits.max_depth - depth
        if remaining < 1:
            raise NestingTooDeepError("sequence nesting deeper than limits.max_depth",
                                      path=ctx.path, offset=elem.header_offset, tag=elem.tag,
                                      inflated=ctx.inflated)
        # explicit data sets detect implicit VR items per item (pydicom's rule).  The scan
        # of the value counts its items as level 1: they are level depth + 1 here
        sub = _scan(ctx.buffer, start, end, explicit=not elem.flags & F_IMPLICIT,
                    little_endian=little, max_depth=remaining,
                    max_elements=ctx.limits.max_elements, allow_clip=ctx.validation != "raise",
                    as_sequence=True, defer_sq_bytes=DEFER_SQ_BYTES)
        if sub.status != 0:
            error = status_error(sub.status, path=ctx.path, offset=sub.error_offset,
                                 tag=sub.error_tag, inflated=ctx.inflated)
            declared_sq = not elem.flags & F_IMPLICIT and index.info(elem._index_pos)[1] == "SQ"
            if ctx.validation == "raise" or declared_sq or \
                    isinstance(error, (NestingTooDeepError, LimitExceededError)):
                raise error
            if ctx.validation == "warn":
                warn_caller(f"value of VR SQ is not a sequence; kept as UN bytes "
                            f"({error})")
            # not a sequence after all: keep the bytes as UN (so VR "SQ" always means items)
            elem.VR = "UN"
            return index.value(elem._index_pos)
        if sub.n_clipped or sub.trailing or sub.n_vr_retries or sub.n_odd:
            # (what the file's scan reports for the rest of the data set)
            from .filereader import _report_leniency
            _report_leniency(sub, ctx, False)
        items = Sequence()
        for item in sub.children(-1):
            ds = Dataset._from_index(sub, item, ctx, self)
            ds.__dict__["_depth_base"] = depth
            items.append(ds)
        return items

    def _charset(self) -> list:
        """The encodings of this level's text: its own Specific Character Set, else the
        nearest parent's (iterative: no recursion however deep the items nest)."""
        enc = self.__dict__["_encodings"]
        if enc is not None:
            return enc
        inheriting = []
        ds = self
        while True:
            enc = ds._own_charset()
            if enc is not None:
                break
            inheriting.append(ds)
            ds = ds._up()
            if ds is None:
                from .charset import convert_encodings
                enc = convert_encodings(None)
                break
        for level in inheriting:
            level.__dict__["_encodings"] = enc
        return enc

    def _own_charset(self) -> Optional[list]:
        """This level's encodings (cached), from its own Specific Character Set or, at the
        top, the default; None when it has none and inherits its parent's."""
        d = self.__dict__
        enc = d["_encodings"]
        if enc is not None:
            return enc
        visible = self._visible(0x00080005)
        if d["_index"] is not None and not d["_elements"] and visible:
            # common case: read the term straight from the index (cached per distinct value)
            raw = d["_index"].fast_value(0x00080005, d["_item"], True)
            if raw is _MISSING or (isinstance(raw, str) and raw in _dict.CHARACTER_SETS):
                if raw is _MISSING and d["_parent"] is not None:
                    return None
                key = None if raw is _MISSING else raw
                enc = _CHARSET_CACHE.get(key)
                if enc is None:
                    from .charset import convert_encodings
                    enc = _CHARSET_CACHE[key] = convert_encodings(key)
                d["_encodings"] = enc
                return enc
        elem = self._element(0x00080005) if visible else None
        if elem is None and d["_parent"] is not None:
            return None
        from .charset import convert_encodings
        if elem is None:
            enc = convert_encodings(None)
        else:
            # decode the defined terms as CS whatever VR the file gave the element (a
            # charset-dependent VR here would need the charset to decode itself)
            origin = elem._origin
            if elem._index_pos >= 0 and origin is not None and origin.index is not None \
                    and not elem._loaded:
                raw = origin.index.value(elem._index_pos)
                text = raw.decode("latin-1").rstrip(" \x00")
                value = [t.strip() for t in text.split("\\")] if "\\" in text else text.strip()
            else:
                value = elem.value
            if not isinstance(value, (str, list)):
                value = None
            enc = convert_encodings(value, validation=d["_ctx"].validation)
        d["_encodings"] = enc
        return enc

    def _all_tags(self) -> list:
        cached = self.__dict__["_tags_cache"]
        if cached is None:
            index = self.__dict__["_index"]
            tags = set()
            if index is not None:
                item = self.__dict__["_item"]
                # {tag: first entry} (reversed: the first of repeated tags is kept)
                positions = dict(zip(reversed(index.child_tags(item)),
                                     reversed(index.children(item))))
                positions.pop(0xFFFEE000, None)
                self.__dict__["_positions"] = positions
                tags.update(positions)
            tags.update(self.__dict__["_elements"])
            cached = sorted(tags)
            self.__dict__["_tags_cache"] = cached
        return cached

    # -- pydicom vocabulary -----------------------------------------------------------------
    def _keyword_value(self, name: str, tag: int) -> Any:
        """``ds.<Keyword>`` when the C fast path (KeywordAttribute) cannot answer."""
        d = self.__dict__
        if d.get("_latin1") is None and d["_index"] is not None:
            d["_latin1"] = self._charset() in _LATIN1_CHARSETS
            return getattr(self, name)  # now the fast path can answer
        elem = self._element(tag) if self._visible(tag) else None
        if elem is None:
            raise AttributeError(f"{type(self).__name__!s} object has no attribute {name!r}")
        value = elem.value
        if tag not in _PIXEL_TAGS:
            d[name] = value  # later reads are plain attribute lookups
        return value

    def __getattr__(self, name: str) -> Any:
        # only reached for names that are not DICOM keywords (those are descriptors)
        raise AttributeError(f"{type(self).__name__!s} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        tag = _KEYWORD_TO_TAG.get(name)
        if tag is None:
            if name[0].isupper() and name not in type(self).__dict__:
                warn_caller(f"{name!r} is not a DICOM keyword; set as a plain attribute")
            object.__setattr__(self, name, value)
            return
        vr = _tags.dictionary_vr(tag) or "UN"
        if " or " in vr:
            vr = self._ambiguous_vr(tag, vr, 0)
        self[tag] = DataElement(tag, vr, value)

    def __delattr__(self, name: str) -> None:
        tag = _KEYWORD_TO_TAG.get(name)
        if tag is None:
            object.__delattr__(self, name)
            return
        del self[tag]

    def add(self, elem: DataElement) -> None:
        """Add (or replace) ``elem`` under its tag, as pydicom's ``Dataset.add``."""
        self[elem.tag] = elem

    def add_new(self, tag, VR: str, value: Any) -> None:
        """Add (or replace) the element ``tag`` with ``VR`` and ``value``, as pydicom's
        ``Dataset.add_new``."""
        tag = _tags.parse_tag(tag)
        self[tag] = DataElement(tag, VR, value)

    def __setitem__(self, key, elem: DataElement) -> None:
        tag = _tags.parse_tag(key)
        if not isinstance(elem, DataElement):
            raise TypeError("Dataset items must be DataElement instances")
        if elem.tag != tag:
            raise ValueError("the key does not match the element's tag")
        d = self.__dict__
        d["_elements"][tag] = elem
        if elem._origin is None:
            # an element made in memory belongs to the first data set it is added to (a
            # later ``elem.value = ...`` clears the caches below); one read from a buffer
            # keeps the data set it decodes with
            elem._dataset = _wref(self)
            elem._origin = self._recipe()
        self._pin()
        deleted = d.get("_deleted")
        if deleted:
            deleted.discard(tag)    # set again after a del: visible again
        only = d.get("_only")
        if only is not None and tag not in only:
            d["_only"] = only | {tag}   # read with specific_tags: a tag set is one of them
        d["_tags_cache"] = None
        d["_pixel_cache"] = None    # (pixel description and frame table follow the change)
        d.pop(_tags.keyword_for_tag(tag), None)
        if tag == 0x00080005:
            self._charset_changed()

    def _charset_changed(self) -> None:
        # values not decoded yet follow the new Specific Character Set
        self._pin()
        self.__dict__["_encodings"] = None
        self.__dict__.pop("_latin1", None)

    def __delitem__(self, key) -> None:
        tag = _tags.parse_tag(key)
        if self._element(tag) is None:
            raise KeyError(key)
        self._pin()
        # mask the element: a deleted marker
        self.__dict__["_elements"][tag] = None
        self.__dict__["_elements"].pop(tag)
        if self._find(tag) >= 0:
            self.__dict__.setdefault("_deleted", set()).add(tag)
        self.__dict__["_tags_cache"] = None
        self.__dict__["_pixel_cache"] = None
        self.__dict__.pop(_tags.keyword_for_tag(tag), None)
        if tag == 0x00080005:
            self._charset_changed()

    def _visible(self, tag: int) -> bool:
        d = self.__dict__
        only = d.get("_only")
        if only is not None and tag not in only:
            # (elements read for the data set's own use, e.g. Bits Allocated to resolve an
            # ambiguous VR or a private creator, are cached but not part of it)
            return False
        deleted = d.get("_deleted")
        return not deleted or tag not in deleted

    def __getitem__(self, key) -> DataElement:
        if isinstance(key, slice):
            return self._slice(key)
        if type(key) is int and 0 <= key <= 0xFFFFFFFF:
            tag = key
        else:
            try:
                tag = _tags.parse_tag(key)
            except (KeyError, ValueError, TypeError) as exc:
                # (not a tag: a KeyError, as pydicom raises it)
                raise KeyError(key) from exc
        elem = self._element(tag) if self._visible(tag) else None
        if elem is None:
            raise KeyError(key)
        return elem

    def get_item(self, key) -> DataElement:
        return self[key]

    def get(self, key, default: Any = None) -> Any:
        """For a keyword: the value, or ``default``; for a tag: the DataElement, or ``default``."""
        if isinstance(key, str) and key in _KEYWORD_TO_TAG:
            try:
                return getattr(self, key)
            except AttributeError:
                return default
        try:
            return self[key]
        except (KeyError, ValueError):
            return default

    def __contains__(self, key) -> bool:
        if isinstance(key, str):
            tag = _KEYWORD_TO_TAG.get(key)
            if tag is None:
                try:
                    tag = _tags.parse_tag(key)
                except (KeyError, ValueError, TypeError):
                    return False
        elif type(key) is int:
            if not 0 <= key <= 0xFFFFFFFF:
                return False
            tag = key
        else:
            try:
                tag = _tags.parse_tag(key)
            except (KeyError, ValueError, TypeError):
                return False
        d = self.__dict__
        if tag in d["_elements"]:
            return self._visible(tag)
        if d["_index"] is None or not self._visible(tag):
            return False
        return self._find(tag) >= 0  # no DataElement built just to answer

    def __len__(self) -> int:
        return sum(1 for t in self._all_tags() if self._visible(t))

    def __iter__(self) -> Iterator[DataElement]:
        for tag in self._all_tags():
            if self._visible(tag):
                elem = self._element(tag)
                if elem is not None:
                    yield elem

    def keys(self):
        return [t for t in self._all_tags() if self._visible(t)]

    def values(self):
        return list(self)

    def items(self):
        return [(e.tag, e) for e in self]

    def elements(self) -> Iterator[DataElement]:
        return iter(self)

    def dir(self, *filters: str) -> list:
        """The keywords of this level's elements, sorted; with ``filters``, only those holding
        one of them (case-insensitive), as pydicom's ``Dataset.dir``."""
        names = sorted(kw for kw in map(_tags.keyword_for_tag, self.keys()) if kw)
        if filters:
            low = [f.lower() for f in filters]
            names = [n for n in names if any(f in n.lower() for f in low)]
        return names

    def iterall(self) -> Iterator[DataElement]:
        """Every element, depth first into the items of sequences (pydicom's ``iterall``);
        iterative, so no recursion however deep the items nest."""
        stack = [iter(self)]
        while stack:
            elem = next(stack[-1], None)
            if elem is None:
                stack.pop()
                continue
            yield elem
            value = elem.value if elem.VR == "SQ" else None
            if isinstance(value, list):
                stack.append(itertools.chain.from_iterable(
                    item for item in value if isinstance(item, Dataset)))

    def data_element(self, name: str) -> Optional[DataElement]:
        """The element of keyword ``name``, or None (pydicom's ``data_element``)."""
        tag = _KEYWORD_TO_TAG.get(name)
        if tag is None or tag not in self:
            return None
        return self[tag]

    def group_dataset(self, group: int) -> "Dataset":
        """A new Dataset of this level's elements of ``group`` (pydicom's
        ``group_dataset``)."""
        return self._slice(slice(group << 16, (group + 1) << 16))

    def _slice(self, s: slice) -> "Dataset":
        """``ds[start:stop:step]``: a new Dataset of the elements whose tags lie in
        [start, stop), every ``step``-th of them, as pydicom slices (the elements are shared:
        they decode with their own data set's character set).  A step slices the list of the
        tags as pydicom does: ``tags[i:j:step]``, with ``i`` and ``j`` the places of ``start``
        and ``stop`` in it (a negative step from a start below the stop: nothing; a step
        of 0: ValueError)."""
        from bisect import bisect_left
        tags = self.keys()
        i = None if s.start is None else bisect_left(tags, _tags.parse_tag(s.start))
        j = None if s.stop is None else bisect_left(tags, _tags.parse_tag(s.stop))
        if i is None and j is not None:
            chosen = tags[:j][::s.step]     # (pydicom: the tags below stop, then the step)
        else:
            chosen = tags[i:j:s.step]
        out = Dataset()
        for tag in chosen:
            elem = self._element(tag)
            if elem is not None:
                out.__dict__["_elements"][tag] = elem
        return out

    def __dir__(self):
        names = [n for n in super().__dir__() if n not in _KEYWORD_TO_TAG]
        return names + self.dir()

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other) -> bool:
        if not isinstance(other, Dataset):
            return NotImplemented
        return _datasets_equal(self, other)

    __hash__ = None  # mutable, like pydicom's Dataset

    def __copy__(self) -> "Dataset":
        """A shallow copy, as pydicom's: a new data set over the same elements and buffer
        (adding or deleting elements in one does not change the other)."""
        for _elem in self:
            pass        # every element built first, so the two share them all
        new = type(self).__new__(type(self))
        family = self.__dict__.get("_family")
        if family is None:
            family = self.__dict__["_family"] = [_wref(self)]
        # (a value set through either clears the caches of both; copies gone are dropped)
        family[:] = [m for m in family if m() is not None] + [_wref(new)]
        d = new.__dict__
        d.update(self.__dict__)
        d["_elements"] = dict(d["_elements"])
        d.pop("_recipe_t", None)    # (its own: a change to it pins it, not the original)
        d.pop("_parent_kept", None)
        if d.get("_deleted"):
            d["_deleted"] = set(d["_deleted"])
        d["_tags_cache"] = None
        d["_pixel_cache"] = None
        return new

    def __reduce_ex__(self, protocol):
        """``copy.deepcopy`` and ``pickle``: the visible elements with their
        values decoded (items recursively), the file meta, the read options and the plain
        attributes; not the buffer, so the copy holds no file open and needs none."""
        d = self.__dict__
        ctx: Context = d["_ctx"]
        options = (ctx.path, ctx.validation, ctx.limits, ctx.inflated, ctx.preamble,
                   ctx.is_little_endian, ctx.is_implicit_VR, ctx.transfer_syntax)
        extras = {k: v for k, v in d.items()
                  if not k.startswith("_") and k not in _KEYWORD_TO_TAG}
        return (_dataset_from_state, (type(self), list(self), self.file_meta, options, extras))

    def private_block(self, group: int, private_creator: str, create: bool = False) -> "PrivateBlock":
        """The private block of ``group`` reserved by ``private_creator`` (pydicom's API);
        with ``create``, a creator not found is added in the first free slot (a KeyError
        when all 240 are taken)."""
        if not private_creator:
            raise ValueError("the private creator must have a value")
        if not 0 < group <= 0xFFFF or not group & 1:
            raise ValueError("private blocks live in odd groups")
        free = None
        for slot in range(0x10, 0x100):
            tag = (group << 16) | slot
            elem = self._element(tag) if self._visible(tag) else None
            if elem is None:
                if free is None:
                    free = slot
                continue
            if elem.value == private_creator:     # (a multi-valued creator: no match)
                return PrivateBlock(self, group, slot, private_creator)
        if not create:
            raise KeyError(f"private creator {private_creator!r} not found in group "
                           f"{group:04X}")
        if free is None:
            raise KeyError(f"no free private block left in group {group:04X}")
        self.add_new((group << 16) | free, "LO", private_creator)
        return PrivateBlock(self, group, free, private_creator)

    @property
    def file_meta(self) -> "Optional[FileMetaDataset]":
        """The file meta information group (built on first access)."""
        d = self.__dict__
        fm = d.get("_file_meta")
        if fm is None:
            src = d.get("_meta_src")
            if src is not None:
                index, ctx = src
                fm = d["_file_meta"] = FileMetaDataset._from_index(index, -1, ctx)
        return fm

    @file_meta.setter
    def file_meta(self, value) -> None:
        self.__dict__["_file_meta"] = value

    @property
    def is_little_endian(self) -> bool:
        return self.__dict__["_ctx"].is_little_endian

    @property
    def is_implicit_VR(self) -> bool:
        return self.__dict__["_ctx"].is_implicit_VR

    @property
    def filename(self):
        return self.__dict__["_ctx"].path

    @property
    def preamble(self):
        return self.__dict__["_ctx"].preamble

    @property
    def preamble_kind(self) -> str:
        """What the 128-byte preamble holds: "none", "zero", "pe", "elf", "tiff" or "other"
        (an executable header makes the file a CVE-2019-11687 polyglot)."""
        kind = self.__dict__.get("preamble_kind")
        if kind is None:
            from .filereader import _preamble_kind
            kind = _preamble_kind(self.__dict__["_ctx"].preamble)
        return kind

    def walk(self, callback, recursive: bool = True) -> None:
        """``callback(dataset, element)`` for each element, depth first into the items of
        sequences when ``recursive`` (iterative: no recursion however deep they nest)."""
        stack = [(self, iter(self))]
        while stack:
            ds, elements = stack[-1]
            elem = next(elements, None)
            if elem is None:
                stack.pop()
                continue
            callback(ds, elem)
            if recursive and elem.VR == "SQ" and elem.tag in ds:   # (not deleted by it)
                items = [item for item in elem.value if isinstance(item, Dataset)]
                for item in reversed(items):
                    stack.append((item, iter(item)))

    def __repr__(self) -> str:
        return self._pretty(0, depth=None)

    def _pretty(self, indent: int, depth) -> str:
        # iterative: no recursion however deep the items nest
        lines = []
        work = [(indent, self)]
        while work:
            level, entry = work.pop()
            if isinstance(entry, str):
                lines.append(entry)
                continue
            pending = []
            for elem in entry:
                pending.append((level, "  " * level + repr(elem)))
                if elem.VR == "SQ" and (depth is None or level < depth):
                    for n, item in enumerate(elem.value, 1):
                        pending.append((level + 1, "  " * (level + 1) + f"---------- item {n}"))
                        pending.append((level + 1, item))
            work.extend(reversed(pending))
        return "\n".join(line for line in lines if line)

    # -- conversions ------------------------------------------------------------------------
    def to_json_dict(self, bulk_data_threshold: int = 1024, bulk_data_element_handler=None,
                     suppress_invalid_tags: bool = False) -> dict:
        """The DICOM JSON model (PS3.18 F.2) of this data set."""
        from .json import dataset_to_json_dict
        return dataset_to_json_dict(self, bulk_data_threshold, bulk_data_element_handler,
                                    suppress_invalid_tags)

    def to_json(self, bulk_data_threshold: int = 1024, bulk_data_element_handler=None,
                dump_handler=None, suppress_invalid_tags: bool = False) -> str:
        import json
        data = self.to_json_dict(bulk_data_threshold, bulk_data_element_handler,
                                 suppress_invalid_tags)
        return dump_handler(data) if dump_handler else json.dumps(data, sort_keys=True)

    def to_pydicom(self):
        """The same data set as a ``pydicom.Dataset`` (requires pydicom)."""
        from .compat import to_pydicom
        return to_pydicom(self)

    # -- pixels (fastdicom.pixels) ----------------------------------------------------------
    @property
    def pixel_array(self):
        from .pixels import pixel_array
        return pixel_array(self)

    def frame(self, index: int, **kwargs):
        """Frame ``index`` as a new array (native data of a mapped file is read with pread)."""
        return _pixels().get_frame(self, index, **kwargs)

    def iter_frames(self, indices=None, **kwargs):
        from .pixels import iter_frames
        return iter_frames(self, indices, **kwargs)

    def encapsulated_frame(self, index: int):
        return _pixels().encapsulated_frame(self, index)

    @property
    def num_frames(self) -> int:
        from .pixels import num_frames
        return num_frames(self)


class FileMetaDataset(Dataset):
    """The file meta information group (0002,xxxx)."""


class PrivateBlock:
    """Access to the elements of one private creator's block (pydicom's API)."""

    def __init__(self, dataset: Dataset, group: int, slot: int, creator: str):
        self.dataset = dataset
        self.group = group
        self.block_start = slot << 8
        self.private_creator = creator

    def get_tag(self, element_offset: int) -> int:
        if not 0 <= element_offset <= 0xFF:
            raise ValueError("element offset must be 0..0xFF")
        return (self.group << 16) | self.block_start | element_offset

    def __getitem__(self, element_offset: int) -> DataElement:
        return self.dataset[self.get_tag(element_offset)]

    def __contains__(self, element_offset: int) -> bool:
        return self.get_tag(element_offset) in self.dataset

    def __delitem__(self, element_offset: int) -> None:
        del self.dataset[self.get_tag(element_offset)]

    def add_new(self, element_offset: int, VR: str, value: Any) -> None:
        """Add (or replace) the element at ``element_offset`` of the block."""
        self.dataset.add_new(self.get_tag(element_offset), VR, value)

    def __iter__(self):
        lo = (self.group << 16) | self.block_start
        for elem in self.dataset:
            if lo <= elem.tag <= lo + 0xFF:
                yield elem


def _element_from_state(tag, VR, value, length, flags, creator=None) -> DataElement:
    # a value held in memory: no offsets into a buffer
    elem = DataElement(tag, VR, value, length=length, flags=flags & ~F_SQ_BLOB)
    if creator is not None:
        elem._creator = creator
    return elem


def _dataset_from_state(cls, elements, file_meta, options, extras) -> Dataset:
    ds = cls.__new__(cls)
    Dataset.__init__(ds)
    d = ds.__dict__
    path, validation, limits, inflated, preamble, little, implicit, ts = options
    d["_ctx"] = Context(b"", path=path, validation=validation, limits=limits,
                        inflated=inflated, preamble=preamble, is_little_endian=little,
                        is_implicit_VR=implicit, transfer_syntax=ts)
    ds._pin()   # (made in memory: its elements keep it)
    recipe = ds._recipe()
    for elem in elements:
        d["_elements"][elem.tag] = elem
        if elem._origin is None:
            elem._dataset = _wref(ds)
            elem._origin = recipe
        if elem.VR == "SQ" and isinstance(elem._value, list):
            for item in elem._value:
                if isinstance(item, Dataset) and item.__dict__.get("_parent") is None:
                    # the items' parent, for what they look up there (character set, Pixel
                    # Representation of an ambiguous VR)
                    item.__dict__["_parent"] = _wref(ds)
                    item.__dict__["_parent_recipe"] = recipe
    d["_file_meta"] = file_meta
    d.update(extras)
    return ds


def _elements_equal(pairs) -> bool:
    """Whether each pair of elements has the same tag, VR and value, the items of sequences
    compared element by element (iterative: no recursion however deep they nest)."""
    stack = list(pairs)
    while stack:
        a, b = stack.pop()
        if a.tag != b.tag or a.VR != b.VR:
            return False
        va, vb = a.value, b.value
        if a.VR == "SQ" and isinstance(va, list) and isinstance(vb, list):
            if len(va) != len(vb):
                return False
            for x, y in zip(va, vb):
                if isinstance(x, Dataset) and isinstance(y, Dataset):
                    ex, ey = list(x), list(y)
                    if len(ex) != len(ey):
                        return False
                    stack.extend(zip(ex, ey))
                elif x != y:
                    return False
        elif va != vb:
            return False
    return True


def _datasets_equal(a: Dataset, b: Dataset) -> bool:
    ea, eb = list(a), list(b)
    return len(ea) == len(eb) and _elements_equal(zip(ea, eb))


def _revive(recipe) -> Dataset:
    """A data set rebuilt from its recipe (see ``Dataset._recipe``), for an element or item
    that outlived the data set it was read from."""
    if recipe.pinned is not None:
        return recipe.pinned
    ds = recipe.revived() if recipe.revived is not None else None
    if ds is not None:
        return ds
    ds = Dataset._from_index(recipe.index, recipe.item, recipe.ctx)
    recipe.revived = _wref(ds)
    d = ds.__dict__
    if recipe.parent is not None:
        d["_parent"] = _DEAD_REF
        d["_parent_recipe"] = recipe.parent
    if recipe.base:
        d["_depth_base"] = recipe.base
    d["_recipe_t"] = recipe
    return ds


def _install_keyword_attributes() -> None:
    for keyword, tag in _KEYWORD_TO_TAG.items():
        if keyword.isidentifier() and keyword not in Dataset.__dict__:
            setattr(Dataset, keyword, KeywordAttribute(tag, keyword))


_install_keyword_attributes()


_register_latin1_terms()
