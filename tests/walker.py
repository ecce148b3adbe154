"""A tiny pure-Python element walker: the independent oracle for the Cython scanner.

Handles explicit/implicit VR, both endiannesses, defined/undefined lengths, items and
encapsulated fragments; SQ detection in implicit VR through a caller-given set of tags.
"""
import struct

LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
ITEM, ITEM_DELIM, SEQ_DELIM = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


def walk(buf, pos=0, end=None, explicit=True, little=True, sq_tags=frozenset()):
    """List of (tag, vr, value_offset, length, depth) in file order (items as tag ITEM)."""
    out = []
    end = len(buf) if end is None else end
    e = "<" if little else ">"

    def tag_at(p):
        g, el = struct.unpack_from(e + "HH", buf, p)
        return (g << 16) | el

    def dataset(p, stop, depth, undefined):
        while p < stop:
            tag = tag_at(p)
            if tag == ITEM_DELIM and undefined:
                return p + 8
            if explicit:
                vr = bytes(buf[p + 4:p + 6])
                if vr in LONG_VRS:
                    length = struct.unpack_from(e + "I", buf, p + 8)[0]
                    hdr = 12
                else:
                    length = struct.unpack_from(e + "H", buf, p + 6)[0]
                    hdr = 8
                vr = vr.decode()
            else:
                length = struct.unpack_from(e + "I", buf, p + 4)[0]
                hdr = 8
                vr = "SQ" if tag in sq_tags or length == 0xFFFFFFFF and tag != 0x7FE00010 else ""
            voff = p + hdr
            if length == 0xFFFFFFFF and tag == 0x7FE00010:
                out.append((tag, vr, voff, None, depth))
                idx = len(out) - 1
                q = voff
                while True:
                    t = tag_at(q)
                    ln = struct.unpack_from("<I", buf, q + 4)[0]
                    if t == SEQ_DELIM:
                        break
                    out.append((ITEM, "", q + 8, ln, depth + 1))
                    q += 8 + ln
                out[idx] = (tag, vr, voff, q - voff, depth)
                p = q + 8
                continue
            if vr == "SQ" or (vr == "UN" and length == 0xFFFFFFFF):
                out.append((tag, vr, voff, None, depth))
                idx = len(out) - 1
                q = sequence(voff, voff + length if length != 0xFFFFFFFF else end,
                             depth + 1, length == 0xFFFFFFFF)
                seq_len = (q - 8 - voff) if length == 0xFFFFFFFF else length
                out[idx] = (tag, vr, voff, seq_len, depth)
                p = q
                continue
            out.append((tag, vr, voff, length, depth))
            p = voff + length
        return p

    def sequence(p, stop, depth, undefined):
        while p < stop:
            tag = tag_at(p)
            length = struct.unpack_from(e + "I", buf, p + 4)[0]
            if tag == SEQ_DELIM:
                return p + 8
            assert tag == ITEM
            out.append((ITEM, "", p + 8, None, depth))
            idx = len(out) - 1
            if length == 0xFFFFFFFF:
                q = dataset(p + 8, stop, depth, True)
                out[idx] = (ITEM, "", p + 8, q - 8 - (p + 8), depth)
            else:
                q = dataset(p + 8, p + 8 + length, depth, False)
                out[idx] = (ITEM, "", p + 8, length, depth)
            p = q
        return p

    dataset(pos, end, 0, False)
    return out
