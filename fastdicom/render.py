"""Render a frame for display: modality LUT -> VOI (window) -> MONOCHROME1 inversion -> uint8,
and write it as PNG (imagecodecs, else Pillow).  ``fastdicom render FILE [--frame N]
[-o out.png] [--window C W]``."""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence, Union

import numpy as np

from fastdicom.errors import DicomError, MissingCodecError

__all__ = ["render", "write_png", "register_cli"]


def render(path_or_ds, frame: int = 0, window: Optional[Sequence[float]] = None) -> np.ndarray:
    """Frame ``frame`` of a file or data set as displayable uint8 pixels: (rows, cols) for
    monochrome, (rows, cols, 3) for colour.  The rescale and window of an enhanced
    multi-frame image are the frame's own, from its functional groups."""
    from fastdicom.pixels import get_frame, pixel_info
    from fastdicom.pixels.lut import frame_transforms, to_display_uint8
    if isinstance(path_or_ds, (str, os.PathLike)):
        from fastdicom import dcmread
        ds = dcmread(path_or_ds)
    else:
        ds = path_or_ds
    arr = get_frame(ds, frame)          # (an IndexError for a frame the file lacks)
    index = frame + pixel_info(ds).frames if frame < 0 else frame
    win = None if window is None else (float(window[0]), float(window[1]))
    out = to_display_uint8(arr, frame_transforms(ds, index), window=win)
    return np.ascontiguousarray(out, dtype=np.uint8)


def write_png(image: np.ndarray, path: Union[str, os.PathLike]) -> None:
    """Write a uint8 image (rows, cols) or (rows, cols, 3) as PNG."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    try:
        import imagecodecs
        data = imagecodecs.png_encode(image)
    except ImportError:
        try:
            from PIL import Image
        except ImportError:
            raise MissingCodecError('writing PNG needs imagecodecs or Pillow: '
                                    'pip install "fastdicom[codecs]"') from None
        Image.fromarray(image).save(os.fspath(path), format="PNG")
        return
    with open(path, "wb") as fh:
        fh.write(data)


def _cmd_render(args) -> int:
    window = tuple(args.window) if args.window else None
    if window is not None and window[1] <= 0:
        print(f"fastdicom render: error: argument --window: WIDTH must be positive: "
              f"{window[1]:g}", file=sys.stderr)
        return 2
    try:
        image = render(args.file, frame=args.frame, window=window)
    except IndexError as exc:           # --frame past the file's frames
        print(f"fastdicom render: {args.file}: --frame {args.frame}: {exc}", file=sys.stderr)
        return 1
    except NotImplementedError as exc:
        if isinstance(exc, DicomError):
            # (an unsupported LUT entry depth): the command's one-line error, which names
            # the file, the element's offset and its tag
            raise
        print(f"fastdicom render: {args.file}: {exc}", file=sys.stderr)
        return 1
    out = args.output or (os.path.splitext(os.path.basename(args.file))[0]
                          + (f"_{args.frame}" if args.frame else "") + ".png")
    try:
        write_png(image, out)
    except OSError as exc:
        # (a full disk or a file that takes no data: the OS's message does not name it)
        print(f"fastdicom render: {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _finite(text: str) -> float:
    """A --window number: finite (nan or inf windows made an all-black image)."""
    import argparse
    import math
    text = text.strip()     # (a negative number comes with a leading space: fastdicom.cli)
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def register_cli(subparsers) -> None:
    """Add ``render`` to the ``fastdicom`` command."""
    parser = subparsers.add_parser("render", help="render a frame to PNG")
    parser.add_argument("file")
    parser.add_argument("--frame", type=int, default=0,
                        help="frame index (default 0; negative counts from the last, -1 is "
                             "the last frame)")
    parser.add_argument("-o", "--output", default=None,
                        help="PNG to write (default: FILE's name with .png)")
    parser.add_argument("--window", type=_finite, nargs=2, metavar=("CENTER", "WIDTH"),
                        default=None, help="window centre and width")
    parser.set_defaults(func=_cmd_render)
