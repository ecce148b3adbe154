#!/usr/bin/env python3
"""Generate fastdicom's data-dictionary tables from the shared JSON dictionary.

Usage (from the repository root)::

    python tools/gen_dictionary.py                  # reads ../shared/data/dictionary
    python tools/gen_dictionary.py --source DIR     # reads DIR/*.json
    python tools/gen_dictionary.py --out-dir DIR    # writes DIR/_dictionary.py, DIR/_dict_sq.pxi

Outputs (deterministic: sorted keys, ``repr`` literals, no timestamps):

* ``fastdicom/_dictionary.py`` - plain Python literals (ELEMENTS, MASKS,
  KEYWORD_TO_TAG, PRIVATE, PRIVATE_EXACT, PRIVATE_MASKS, UIDS,
  TRANSFER_SYNTAXES, CHARACTER_SETS); see the module docstring written below.
* ``fastdicom/_dict_sq.pxi`` - Cython include with a sorted C array of all
  public tags whose VR is exactly SQ and a nogil binary search ``dict_is_sq``.

The JSON inputs are data tables (see ../shared/data/dictionary/SOURCES.md and
the NOTICE file); this script only reshapes them.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT / ".." / "shared" / "data" / "dictionary"
DEFAULT_OUT = REPO_ROOT / "fastdicom"
REGEN_CMD = "python tools/gen_dictionary.py"

_HEX8 = re.compile(r"[0-9A-F]{8}")
_MASKED = re.compile(r"[0-9A-Fx]{8}")


def _vr_str(vrs: list[str]) -> str:
    """pydicom-style VR spelling: 'US or SS', 'OB or OW'; 'NONE' for items."""
    if not vrs:
        return "NONE"
    return " or ".join(vrs)


def _norm_tag(tag: str) -> str:
    """Upper-case hex digits, keep the lower-case 'x' wildcards."""
    return "".join(c if c == "x" else c.upper() for c in tag.strip())


def _mask_value(tag: str) -> tuple[int, int]:
    """'60xx3000' -> (mask=0xFF00FFFF, value=0x60003000)."""
    mask = int("".join("0" if c == "x" else "F" for c in tag), 16)
    value = int(tag.replace("x", "0"), 16)
    return mask, value


def _popcount(n: int) -> int:
    return bin(n).count("1")


def _load(source: Path, name: str):
    with open(source / name, encoding="utf-8") as fh:
        return json.load(fh)


def build_tables(source: Path) -> dict:
    elements = _load(source, "elements.json")
    private = _load(source, "private_elements.json")
    uids = _load(source, "uids.json")
    tsyntaxes = _load(source, "transfer_syntaxes.json")
    charsets = _load(source, "character_sets.json")

    # ---- public elements -------------------------------------------------
    exact: dict[int, tuple] = {}
    masks: list[tuple] = []
    for e in elements:
        tag = _norm_tag(e["tag"])
        entry = (_vr_str(e["vr"]), e["vm"], e["name"], bool(e["retired"]), e["keyword"])
        if _HEX8.fullmatch(tag):
            t = int(tag, 16)
            if t in exact:
                raise SystemExit(f"duplicate public tag {tag}")
            exact[t] = entry
        elif _MASKED.fullmatch(tag):
            mask, value = _mask_value(tag)
            masks.append((mask, value) + entry)
        else:
            raise SystemExit(f"unparseable public tag {e['tag']!r}")
    # More specific masks (more fixed bits) first, then by value for stability.
    masks.sort(key=lambda m: (-_popcount(m[0]), m[1], m[0]))

    kw_to_tag: dict[str, int] = {}
    for t in sorted(exact):
        kw = exact[t][4]
        if kw:  # 'Retired-blank' entries have an empty keyword
            if kw in kw_to_tag:
                raise SystemExit(f"duplicate keyword {kw}")
            kw_to_tag[kw] = t
    for m in masks:
        kw = m[6]
        if kw and kw not in kw_to_tag:
            kw_to_tag[kw] = m[1]

    # ---- private dictionaries -------------------------------------------
    # Tag spellings in private_elements.json (hex case normalised first):
    #   ggggxxee  block-relative (the usual form)  -> PRIVATE[creator][(g<<16)|ee]
    #   ggggeeee  explicit element number          -> PRIVATE_EXACT[creator][tag]
    #   ggxxxxee  wildcard group low byte + block  -> PRIVATE_MASKS (mask 0xFF0000FF)
    #   ggggeexx  wildcard *low* element byte      -> dropped (see below)
    # pydicom's get_private_entry tries exactly these three lookups in this
    # order (exact, block-relative, group-wildcard).  The 'ggggeexx' spellings
    # (GEMS_*_01 "Private Element Creator", BioPri3D) can never be reached by
    # that lookup and would wrongly swallow a whole block if treated as masks,
    # so they are left out and counted in the generated header.
    priv: dict[str, dict[int, tuple]] = {}
    priv_exact: dict[str, dict[int, tuple]] = {}
    priv_masks: dict[str, list[tuple]] = {}
    dropped: list[tuple[str, str]] = []
    for p in private:
        creator = p["creator"]
        tag = _norm_tag(p["tag"])
        entry = (_vr_str(p["vr"]), p["vm"], p["name"], bool(p["retired"]))
        if re.fullmatch(r"[0-9A-F]{4}xx[0-9A-F]{2}", tag):
            key = (int(tag[:4], 16) << 16) | int(tag[6:], 16)
            table = priv.setdefault(creator, {})
        elif _HEX8.fullmatch(tag):
            key = int(tag, 16)
            table = priv_exact.setdefault(creator, {})
        elif re.fullmatch(r"[0-9A-F]{2}xxxx[0-9A-F]{2}", tag):
            mask, value = _mask_value(tag)
            priv_masks.setdefault(creator, []).append((mask, value) + entry)
            continue
        elif re.fullmatch(r"[0-9A-F]{6}xx", tag):
            dropped.append((creator, tag))
            continue
        else:
            raise SystemExit(f"unparseable private tag {p['tag']!r} ({creator})")
        if key in table:
            raise SystemExit(f"duplicate private tag {tag} for {creator!r}")
        table[key] = entry
    for lst in priv_masks.values():
        lst.sort(key=lambda m: (-_popcount(m[0]), m[1], m[0]))

    # ---- UIDs, transfer syntaxes, character sets -------------------------
    uid_table = {}
    for u in uids:
        if u["uid"] in uid_table:
            raise SystemExit(f"duplicate UID {u['uid']}")
        uid_table[u["uid"]] = (u["keyword"], u["name"], u["type"], u["info"], bool(u["retired"]))

    ts_keys = ("keyword", "name", "explicit_vr", "little_endian", "deflated", "encapsulated",
               "codec", "lossy", "fragmentable", "retired", "private")
    ts_table = {}
    for t in tsyntaxes:
        ts_table[t["uid"]] = {k: t[k] for k in ts_keys}

    cs_table = {}
    for c in charsets:
        cs_table[c["defined_term"]] = {k: c[k] for k in sorted(c)}

    return {
        "ELEMENTS": exact,
        "MASKS": masks,
        "KEYWORD_TO_TAG": kw_to_tag,
        "PRIVATE": priv,
        "PRIVATE_EXACT": priv_exact,
        "PRIVATE_MASKS": priv_masks,
        "UIDS": uid_table,
        "TRANSFER_SYNTAXES": ts_table,
        "CHARACTER_SETS": cs_table,
        "_dropped_private": dropped,
    }


# ---------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------

def _h(t: int) -> str:
    return f"0x{t:08X}"


def _header(comment: str) -> list[str]:
    return [
        f"{comment} GENERATED by tools/gen_dictionary.py -- do not edit; regenerate with: {REGEN_CMD}",
    ]


def render_py(tb: dict) -> str:
    out = _header("#")
    dropped = tb["_dropped_private"]
    out += [
        '"""DICOM data dictionary tables (generated; see tools/gen_dictionary.py).',
        "",
        "Derived as data from ../shared/data/dictionary/*.json (pydicom 2024d tables,",
        "DCMTK 2026b additions, innolitics names; see NOTICE).",
        "",
        "ELEMENTS        {tag: (vr, vm, name, retired, keyword)}  exact public tags",
        "MASKS           ((mask, value, vr, vm, name, retired, keyword), ...)",
        "                repeating groups; match when tag & mask == value; most",
        "                specific mask first; only for non-private (even group) tags",
        "KEYWORD_TO_TAG  {keyword: tag}; mask keywords map to their base value",
        "PRIVATE         {creator: {(group << 16) | (element & 0xFF): (vr, vm, name, retired)}}",
        "PRIVATE_EXACT   {creator: {tag: (vr, vm, name, retired)}}  explicit element numbers",
        "PRIVATE_MASKS   {creator: ((mask, value, vr, vm, name, retired), ...)}",
        "                'ggxxxxee' spellings: mask 0xFF0000FF",
        "UIDS            {uid: (keyword, name, type, info, retired)}",
        "TRANSFER_SYNTAXES {uid: {keyword, name, explicit_vr, little_endian, deflated,",
        "                encapsulated, codec, lossy, fragmentable, retired, private}}",
        "CHARACTER_SETS  {defined_term: {all fields of character_sets.json}}",
        "",
        "VR strings use pydicom's spelling: 'US or SS', 'OB or OW', 'US or SS or OW',",
        "'NONE' for item / delimitation tags.",
        "",
        f"{len(dropped)} private entries spelled 'ggggeexx' (wildcard low element byte) are",
        "not included: pydicom's private lookup can never reach them:",
    ]
    for creator, tag in sorted(dropped):
        out.append(f"    {creator!r} {tag}")
    out += ['"""', ""]

    out.append("ELEMENTS = {")
    for t in sorted(tb["ELEMENTS"]):
        out.append(f"    {_h(t)}: {tb['ELEMENTS'][t]!r},")
    out += ["}", ""]

    out.append("MASKS = (")
    for m in tb["MASKS"]:
        out.append(f"    ({_h(m[0])}, {_h(m[1])}, {', '.join(repr(x) for x in m[2:])}),")
    out += [")", ""]

    out.append("KEYWORD_TO_TAG = {")
    for kw in sorted(tb["KEYWORD_TO_TAG"]):
        out.append(f"    {kw!r}: {_h(tb['KEYWORD_TO_TAG'][kw])},")
    out += ["}", ""]

    for name in ("PRIVATE", "PRIVATE_EXACT"):
        out.append(f"{name} = {{")
        for creator in sorted(tb[name]):
            out.append(f"    {creator!r}: {{")
            table = tb[name][creator]
            for k in sorted(table):
                out.append(f"        {_h(k)}: {table[k]!r},")
            out.append("    },")
        out += ["}", ""]

    out.append("PRIVATE_MASKS = {")
    for creator in sorted(tb["PRIVATE_MASKS"]):
        out.append(f"    {creator!r}: (")
        for m in tb["PRIVATE_MASKS"][creator]:
            out.append(f"        ({_h(m[0])}, {_h(m[1])}, {', '.join(repr(x) for x in m[2:])}),")
        out.append("    ),")
    out += ["}", ""]

    def _uid_key(u: str):
        return tuple(int(p) if p.isdigit() else -1 for p in u.split(".")), u

    out.append("UIDS = {")
    for u in sorted(tb["UIDS"], key=_uid_key):
        out.append(f"    {u!r}: {tb['UIDS'][u]!r},")
    out += ["}", ""]

    out.append("TRANSFER_SYNTAXES = {")
    for u in sorted(tb["TRANSFER_SYNTAXES"], key=_uid_key):
        out.append(f"    {u!r}: {tb['TRANSFER_SYNTAXES'][u]!r},")
    out += ["}", ""]

    out.append("CHARACTER_SETS = {")
    for term in sorted(tb["CHARACTER_SETS"]):
        out.append(f"    {term!r}: {tb['CHARACTER_SETS'][term]!r},")
    out += ["}", ""]
    return "\n".join(out)


#: dict_is_sq's filter: 2**16 bits, bit ``sq_hash(tag)`` set for each SQ tag (Fibonacci hashing)
_SQ_FILTER_BITS = 1 << 16
_SQ_HASH_MUL = 0x9E3779B1


def sq_hash(tag: int) -> int:
    """The filter bit of ``tag``: the top 16 bits of ``tag * 0x9E3779B1`` modulo 2**32."""
    return ((tag * _SQ_HASH_MUL) & 0xFFFFFFFF) >> 16


def render_pxi(tb: dict) -> str:
    sq = sorted(t for t, e in tb["ELEMENTS"].items() if e[0] == "SQ")
    sq_masks = [m for m in tb["MASKS"] if m[2] == "SQ"]
    out = _header("#")
    out += [
        "#",
        "# Cython include: is a *public* tag a sequence (VR exactly SQ) per the data dictionary?",
        "# Used by the nogil scanner for implicit-VR data.  Include once, near the top of a",
        "# module, AFTER:",
        "#     from libc.stdint cimport uint32_t",
        "# (this file cimports nothing itself).  Defines _SQ_TAGS, _N_SQ_TAGS (an enum",
        "# constant), _SQ_FILTER and dict_is_sq(); C symbols: fastdicom_dict_sq_tags and",
        "# fastdicom_dict_sq_filter.",
        "# Multi-VR entries (e.g. 'US or SS') are never SQ.  Repeating-group",
        "# (mask) entries with VR SQ are tested only for even (non-private) groups, like the",
        "# Python-level fastdicom.tags.dictionary_vr; private tags need the private dictionary.",
        "",
        "# The tables are static const C arrays (read-only data, no module-init cost),",
        "# declared through a verbatim C block because Cython cannot initialise const arrays.",
        "# Most elements of a data set are no sequence: a 65,536-bit filter (bit",
        "# ``sq_hash(tag)`` set for every SQ tag) turns them away with one load before the",
        "# binary search; about 2 % of other tags share a bit with an SQ tag and are searched.",
        "",
        "cdef enum:",
        f"    _N_SQ_TAGS = {len(sq)}",
        "",
        "cdef extern from *:",
        '    """',
        "    #include <stdint.h>",
        f"    static const uint32_t fastdicom_dict_sq_tags[{len(sq)}] = {{",
    ]
    for i in range(0, len(sq), 6):
        out.append("        " + ", ".join(f"{_h(t)}u" for t in sq[i:i + 6]) + ",")
    bits = [0] * (_SQ_FILTER_BITS // 64)
    for t in sq:
        h = sq_hash(t)
        bits[h >> 6] |= 1 << (h & 63)
    out += [
        "    };",
        f"    static const uint64_t fastdicom_dict_sq_filter[{len(bits)}] = {{",
    ]
    for i in range(0, len(bits), 4):
        out.append("        " + ", ".join(f"0x{b:016X}u" for b in bits[i:i + 4]) + ",")
    out += [
        "    };",
        '    """',
        f'    const uint32_t _SQ_TAGS "fastdicom_dict_sq_tags"[{len(sq)}]',
        f'    const unsigned long long _SQ_FILTER "fastdicom_dict_sq_filter"[{len(bits)}]',
        "",
        "",
        "cdef inline bint dict_is_sq(uint32_t tag) noexcept nogil:",
        "    cdef Py_ssize_t lo = 0",
        "    cdef Py_ssize_t hi = _N_SQ_TAGS",
        "    cdef Py_ssize_t mid",
        "    cdef uint32_t v",
        f"    cdef uint32_t h = <uint32_t>(tag * 0x{_SQ_HASH_MUL:08X}u) >> 16   # sq_hash()",
        "    if not ((_SQ_FILTER[h >> 6] >> (h & 63)) & 1):",
        "        hi = 0                  # no SQ tag has this bit: skip the search",
        "    while lo < hi:",
        "        mid = (lo + hi) >> 1",
        "        v = _SQ_TAGS[mid]",
        "        if v < tag:",
        "            lo = mid + 1",
        "        elif v > tag:",
        "            hi = mid",
        "        else:",
        "            return True",
    ]
    if sq_masks:
        out.append("    if (tag & 0x00010000u) == 0:  # repeating groups: public (even) groups only")
        for m in sq_masks:
            out.append(f"        if (tag & {_h(m[0])}u) == {_h(m[1])}u:  # {m[6]}")
            out.append("            return True")
    out += ["    return False", ""]
    return "\n".join(out)


def generate(source: Path, out_dir: Path) -> list[Path]:
    tb = build_tables(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("_dictionary.py", render_py(tb)), ("_dict_sq.pxi", render_pxi(tb))):
        path = out_dir / name
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                    help="directory holding elements.json etc. (default: ../shared/data/dictionary)")
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT,
                    help="where to write _dictionary.py and _dict_sq.pxi (default: fastdicom/)")
    args = ap.parse_args(argv)
    if not (args.source / "elements.json").is_file():
        print(f"error: {args.source}/elements.json not found", file=sys.stderr)
        return 2
    for p in generate(args.source, args.out_dir):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
