"""The ``fastdicom`` command line (argparse subcommands).

Core subcommands live here (``dump``, ``demo``); other modules add theirs through a
``register_cli(subparsers)`` function (render, series/load, ingest/ls/export, bench).
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import sys

_PLUGIN_MODULES = ("fastdicom.render", "fastdicom.series", "fastdicom.ingest", "fastdicom.bench")


def _format_value(elem, width: int = 64) -> str:
    if elem.VR == "SQ":
        return f"<{len(elem.value)} item(s)>"
    if elem.VR in ("OB", "OW", "OD", "OF", "OL", "OV", "UN") or elem.length > 1024:
        return f"<{elem.length} bytes>"
    text = str(elem.value)
    return text if len(text) <= width else text[: width - 3] + "..."


def dump_text(ds, depth, out, indent: int = 0) -> None:
    for elem in ds:
        tag = f"({elem.tag >> 16:04X},{elem.tag & 0xFFFF:04X})"
        name = elem.keyword or elem.name
        pad = "  " * indent
        out.write(f"{pad}{tag} {elem.VR:<2} {name:<36} {_format_value(elem)}  # offset {elem.offset}\n")
        if elem.VR == "SQ" and isinstance(elem.value, list) and (depth is None or indent < depth):
            for n, item in enumerate(elem.value, 1):
                out.write(f"{pad}  (FFFE,E000) item {n}\n")
                dump_text(item, depth, out, indent + 2)


def _cmd_dump(args) -> int:
    from . import dcmread
    ds = dcmread(args.file, force=args.force, stop_before_pixels=args.no_pixels)
    # text a terminal or pipe in another encoding cannot show comes out escaped (\u00fc),
    # not as a UnicodeEncodeError (json.dump escapes it anyway)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    if args.format == "json":
        data = {"file_meta": ds.file_meta.to_json_dict(), "dataset": ds.to_json_dict()}
        json.dump(data, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(f"# file meta ({len(ds.file_meta)} elements)\n")
        dump_text(ds.file_meta, args.depth, sys.stdout)
        sys.stdout.write("# data set\n")
        dump_text(ds, args.depth, sys.stdout)
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(n_slices=args.slices, rows=args.rows, columns=args.columns,
                    directory=args.directory, keep=args.keep)


def _int_at_least(minimum: int):
    """An argparse type: a whole number >= ``minimum`` (else a usage error, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {value}")
        return value
    parse.__name__ = f"int >= {minimum}"
    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastdicom",
        description="Fast DICOM reading: dump headers, render frames, load series as volumes, "
                    "index folders into SQLite/Parquet and benchmark against other readers.",
        epilog="Run 'fastdicom COMMAND -h' for a command's options.  'fastdicom demo' runs "
               "every step on a generated study.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    dump = sub.add_parser("dump", help="list the elements of a DICOM file (dcmdump-like)")
    dump.add_argument("file")
    dump.add_argument("--format", choices=("text", "json"), default="text")
    dump.add_argument("--depth", type=_non_negative_int, default=None,
                      help="how deep into sequences to print (default: all)")
    dump.add_argument("--force", action="store_true", help="read files without preamble/meta")
    dump.add_argument("--no-pixels", action="store_true", help="stop before the pixel data")
    dump.set_defaults(func=_cmd_dump)
    demo = sub.add_parser("demo", help="generate a synthetic CT study, read, index and load it")
    demo.add_argument("--slices", type=_positive_int, default=200)
    demo.add_argument("--rows", type=_positive_int, default=512)
    demo.add_argument("--columns", type=_positive_int, default=512)
    demo.add_argument("--directory", default=None, help="where to write (default: a temp dir)")
    demo.add_argument("--keep", action="store_true", help="keep the generated files")
    demo.set_defaults(func=_cmd_demo)
    for name in _PLUGIN_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            logging.getLogger("fastdicom").debug("CLI plugin %s unavailable: %s", name, exc)
            continue
        register = getattr(module, "register_cli", None)
        if register is not None:
            register(sub)
    return parser


# options whose values are numbers, with their count: argparse takes a value such as
# "-1e3" or "-inf" for an option (it knows only "-1" and "-1.5" as negative numbers)
_NUMBER_OPTIONS = {"--window": 2}
_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|-(inf|infinity|nan)", re.I)


def _numbers_as_values(argv: list) -> list:
    """``argv`` with the negative numbers that follow a number option marked as values (a
    leading space, which ``float`` ignores)."""
    out = list(argv)
    for i, a in enumerate(argv):
        for j in range(i + 1, min(i + 1 + _NUMBER_OPTIONS.get(a, 0), len(out))):
            if _NUMBER.fullmatch(out[j]):
                out[j] = " " + out[j]
    return out


def parse_cli(parser, argv=None):
    """``parser.parse_args(argv)``, except that arguments a subcommand does not know are
    reported by that subcommand's parser (``ingest``'s ends with its JSON line), not by the
    top-level one."""
    argv = _numbers_as_values(sys.argv[1:] if argv is None else argv)
    args, extras = parser.parse_known_args(argv)
    if extras:
        (getattr(args, "usage_error", None) or parser).error(
            "unrecognized arguments: " + " ".join(extras))
    return args


def discard_stdout() -> None:
    """Point stdout at /dev/null: its reader went away (EPIPE), nothing more reaches it, and
    the interpreter's last flush must not fail (which would change the exit code)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parse_cli(parser, argv)
    except SystemExit as exc:
        return 2 if exc.code not in (0, None) else 0
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # warnings as one line each (not the file and source line the default shows)
    import warnings
    warnings.formatwarning = lambda message, category, *a, **k: \
        f"fastdicom: {category.__name__}: {message}\n"
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    from .errors import DicomError
    try:
        return int(args.func(args) or 0)
    except DicomError as exc:
        print(f"fastdicom: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader of stdout went away (``| head``): not an error
        discard_stdout()
        return 0
    except OSError as exc:
        print(f"fastdicom: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fastdicom: interrupted", file=sys.stderr)
        return 130
