"""A seeded, bounded mutation run: corrupted files through dcmread + full value decoding +
to_json_dict + pixel_array, each chunk in a SUBPROCESS (a crash shows as a signal, a hang as a
timeout) with its address space capped by RLIMIT_AS.

Mutations: bit flips, byte overwrites, truncations, length-field patches (0, odd, huge,
0xFFFFFFFF, +-small), tag patches to item/delimiter tags, nesting bombs, insertions/deletions,
bad offset tables (BOT/EOT entries) and RLE header patches.

Size: ``FASTDICOM_MUTATION_N`` files (default 300: a few seconds); the seed is
``FASTDICOM_MUTATION_SEED`` (default 0).  ``python tests/test_mutation.py N`` runs it standalone
and prints the numbers.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
N_DEFAULT = 300
CHUNK = 100
HANG_SECONDS = 5.0
AS_LIMIT = (4 << 30) + (1 << 30)   # 5 GiB: an allocation beyond 4 GiB fails in the child

ITEM_TAGS = (b"\xfe\xff\x00\xe0", b"\xfe\xff\x0d\xe0", b"\xfe\xff\xdd\xe0")
LENGTHS = (0, 1, 3, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 0xFFFFFFFE,
           0xFFFFFFFF)


def seeds() -> list[bytes]:
    sys.path.insert(0, str(ROOT / "fuzz"))
    try:
        import make_seeds
    finally:
        sys.path.pop(0)
    return [v for _, v in sorted(make_seeds.seeds().items())]


def _element_offsets(data: bytes) -> list[int]:
    """Header offsets of the elements of a valid explicit/implicit file (via the scanner)."""
    import fastdicom
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = fastdicom.dcmread(data, force=True)
        arr = ds._index.to_numpy()
        if ds._ctx.inflated:
            return []
        offs = [int(x) for x in arr["header_offset"]]
        if ds.file_meta is not None and ds.file_meta._index is not None:
            offs += [int(x) for x in ds.file_meta._index.to_numpy()["header_offset"]]
        return offs
    except Exception:
        return []


_KINDS = ("bitflip", "bytes", "truncate", "length", "length", "tag", "nest", "insert", "delete",
          "offset_table", "rle_header", "vr")
# VRs a damaged header may carry: the same header layout as SQ (OB, UN, UT ...) or another one
VRS = (b"SQ", b"OB", b"UN", b"UT", b"OW", b"OF", b"US", b"SS", b"FD", b"DS", b"IS", b"AT",
       b"CS", b"PN", b"DA", b"\x00\x00", b"ZZ")


def mutate(data: bytes, offsets: list[int], rng: random.Random,
           multi: bool = True) -> tuple[str, bytes]:
    """One mutation; "multi" applies three single ones (never "multi" again: no recursion)."""
    b = bytearray(data)
    kind = rng.choice(_KINDS + (("multi",) if multi else ()))
    if kind == "bitflip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    elif kind == "truncate":
        b = b[: rng.randrange(len(b))]
    elif kind == "length" and offsets:
        off = rng.choice(offsets)
        value = rng.choice(LENGTHS + (rng.randrange(1 << 32),))
        # explicit short (offset+6, 2 bytes), explicit long (offset+8) or implicit (offset+4)
        where = rng.choice((4, 6, 8))
        size = 2 if where == 6 else 4
        if off + where + size <= len(b):
            b[off + where: off + where + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    elif kind == "tag" and offsets:
        off = rng.choice(offsets)
        if off + 4 <= len(b):
            b[off: off + 4] = rng.choice(ITEM_TAGS + (b"\x00\x00\x00\x00", b"\xe0\x7f\x10\x00"))
    elif kind == "nest":
        depth = rng.choice((65, 200, 5000))
        unit = b"\x08\x00\x10\x11SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
        pos = rng.choice(offsets) if offsets else len(b)
        b[pos:pos] = unit * depth
    elif kind == "insert":
        pos = rng.randrange(len(b) + 1)
        b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == "delete":
        pos = rng.randrange(len(b))
        del b[pos: pos + rng.randint(1, 16)]
    elif kind == "offset_table":
        # patch a 4- or 8-byte value just after an item tag (BOT/EOT entries, fragment lengths)
        hits = [i for i in range(len(b) - 16) if b[i:i + 4] == b"\xfe\xff\x00\xe0"]
        if hits:
            i = rng.choice(hits) + rng.choice((4, 8, 12))
            v = rng.choice(LENGTHS + (rng.randrange(1 << 32),))
            b[i:i + 4] = v.to_bytes(4, "little")
        eot = data.find(b"\xe0\x7f\x01\x00OV")
        if eot >= 0 and rng.random() < 0.5:
            i = eot + 12 + 8 * rng.randrange(2)
            b[i:i + 8] = rng.choice((2**64 - 1, 2**63, 1 << 32, 7, 0)).to_bytes(8, "little")
    elif kind == "rle_header":
        hits = [i for i in range(len(b) - 72) if b[i:i + 4] == b"\xfe\xff\x00\xe0"]
        if hits:
            i = rng.choice(hits) + 8
            j = i + 4 * rng.randrange(16)
            b[j:j + 4] = rng.choice((0, 1, 2, 3, 15, 16, 64, 63, 0xFFFFFFFF, rng.randrange(512))).to_bytes(4, "little")
    elif kind == "vr" and offsets:
        # another VR in an explicit element header (a no-op on implicit files' values)
        off = rng.choice(offsets)
        if off + 6 <= len(b):
            b[off + 4: off + 6] = rng.choice(VRS)
    elif kind == "multi":
        for _ in range(3):
            kind2, out = mutate(bytes(b), offsets, rng, multi=False)
            b = bytearray(out) if out else b
    else:   # a kind that needs element offsets, on a file without them: one bit flip
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    if not b:
        b = bytearray(data[:1])
    return kind, bytes(b)


CHILD = r"""
import json, os, resource, sys, time, warnings
limit = int(sys.argv[2])
if limit > 0:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.path.insert(0, os.path.join(sys.argv[3], "fuzz"))
import oracle
from fastdicom.errors import DicomError
paths = open(sys.argv[1]).read().split("\n")
slowest = 0.0
for p in paths:
    if not p:
        continue
    # progress marker first: if this file hangs or crashes the parent knows which one
    sys.stdout.write("BEGIN " + p + "\n"); sys.stdout.flush()
    t0 = time.perf_counter()
    data = open(p, "rb").read()
    try:
        result = oracle.exercise(data)
        outcome = "error:" + type(result).__name__ if isinstance(result, DicomError) else "ok"
        oracle.exercise_file(p)   # the same bytes through dcmread(path) and fastdicom.open
        oracle.exercise_layers(p) # scan, find_series/load_series, read_dicomdir
    except MemoryError:
        outcome = "MEMORY"
    except BaseException as exc:
        import traceback
        outcome = "BUG:" + type(exc).__name__ + ":" + traceback.format_exc().replace("\n", "|")[-1500:]
    dt = time.perf_counter() - t0
    sys.stdout.write("END " + json.dumps([p, outcome, dt]) + "\n"); sys.stdout.flush()
"""


def run_mutations(n: int, seed: int = 0, workdir: Path | None = None, *,
                  chunk: int = CHUNK, hang_seconds: float = HANG_SECONDS) -> dict:
    rng = random.Random(seed)
    base = seeds()
    offsets = [_element_offsets(s) for s in base]
    own = workdir is None
    tmp = tempfile.TemporaryDirectory() if own else None
    work = Path(tmp.name) if own else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, int] = {}
    files = []
    for k in range(n):
        j = rng.randrange(len(base))
        kind, data = mutate(base[j], offsets[j], rng)
        kinds[kind] = kinds.get(kind, 0) + 1
        p = work / f"m{k:06d}_{kind}.dcm"
        p.write_bytes(data)
        files.append(p)
    stats = {"files": n, "kinds": kinds, "ok": 0, "dicom_errors": 0, "bugs": [], "crashes": [],
             "hangs": [], "memory": [], "slowest": 0.0, "errors_by_class": {}}
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore")
    i = 0
    while i < len(files):
        batch = files[i:i + chunk]
        listing = work / f"chunk{i:06d}.txt"
        listing.write_text("\n".join(str(p) for p in batch))
        # ASan reserves terabytes of shadow address space: no RLIMIT_AS under it
        limit = 0 if "libasan" in os.environ.get("LD_PRELOAD", "") else AS_LIMIT
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(listing), str(limit), str(ROOT)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        budget = hang_seconds * len(batch) + 30
        try:
            out, err = proc.communicate(timeout=budget)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        done = set()
        current = None
        for line in out.splitlines():
            if line.startswith("BEGIN "):
                current = line[6:]
            elif line.startswith("END "):
                p, outcome, dt = json.loads(line[4:])
                done.add(p)
                current = None
                stats["slowest"] = max(stats["slowest"], dt)
                if dt > hang_seconds:
                    stats["hangs"].append((p, dt))
                if outcome == "ok":
                    stats["ok"] += 1
                elif outcome.startswith("error:"):
                    stats["dicom_errors"] += 1
                    cls = outcome[6:]
                    stats["errors_by_class"][cls] = stats["errors_by_class"].get(cls, 0) + 1
                elif outcome == "MEMORY":
                    stats["memory"].append(p)
                else:
                    stats["bugs"].append((p, outcome))
        if current is not None:
            # the child died (signal) or hung inside this file
            if proc.returncode is not None and proc.returncode < 0 and proc.returncode != -9:
                stats["crashes"].append((current, proc.returncode, err[-2000:]))
            else:
                stats["hangs"].append((current, budget))
            done.add(current)
        # continue after the culprit
        consumed = 0
        for p in batch:
            if str(p) in done:
                consumed += 1
            else:
                break
        i += max(consumed, 1)
    if own:
        # keep the failing inputs for the report
        keep = [x[0] for x in stats["bugs"] + stats["crashes"] + stats["hangs"]] + stats["memory"]
        if keep:
            dest = Path(tempfile.mkdtemp(prefix="fastdicom-mutation-"))
            for p in keep:
                try:
                    (dest / Path(p).name).write_bytes(Path(p).read_bytes())
                except OSError:
                    pass
            stats["kept_in"] = str(dest)
        tmp.cleanup()
    return stats


def test_mutation_run():
    n = int(os.environ.get("FASTDICOM_MUTATION_N", N_DEFAULT))
    seed = int(os.environ.get("FASTDICOM_MUTATION_SEED", 0))
    stats = run_mutations(n, seed)
    summary = {k: v for k, v in stats.items() if k not in ("bugs",)}
    assert not stats["crashes"], summary
    assert not stats["hangs"], summary
    assert not stats["memory"], summary
    assert not stats["bugs"], stats["bugs"][:5]
    assert stats["ok"] + stats["dicom_errors"] == n


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else N_DEFAULT
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    t0 = time.time()
    stats = run_mutations(n, seed)
    stats["seconds"] = round(time.time() - t0, 1)
    bugs = stats.pop("bugs")
    print(json.dumps(stats, indent=1, default=str))
    import re
    sigs = {}
    for p, outcome in bugs:
        frames = re.findall(r'File "[^"]*?(fastdicom/[^"]+)", line (\d+)', outcome)
        where = f"{frames[-1][0]}:{frames[-1][1]}" if frames else "?"
        exc = outcome[4:].split(":", 1)[0]
        sigs.setdefault(f"{exc} at {where}", []).append(p)
    print(f"bugs: {len(bugs)} in {len(sigs)} signatures")
    for sig, ps in sorted(sigs.items(), key=lambda x: -len(x[1])):
        print(f"  {len(ps):5d}  {sig[:200]}  e.g. {Path(ps[0]).name}")
