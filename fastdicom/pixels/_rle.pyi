from os import PathLike
from typing import Literal, Optional, Union

import numpy as np
from numpy.typing import NDArray

_Buffer = Union[bytes, bytearray, memoryview, np.ndarray]
_Validation = Literal["raise", "warn", "ignore"]

MAX_FRAME_BYTES: int

def rle_check_frame(
    head: _Buffer,
    length: int,
    rows: int,
    columns: int,
    samples_per_pixel: int,
    bits_allocated: int,
    *,
    offset: Optional[int] = None,
    path: Union[str, PathLike[str], None] = None,
) -> None: ...

def rle_decode_frame(
    src: _Buffer,
    rows: int,
    columns: int,
    samples_per_pixel: int,
    bits_allocated: int,
    pixel_representation: int = 0,
    *,
    offset: Optional[int] = None,
    path: Union[str, PathLike[str], None] = None,
    validation: _Validation = "warn",
) -> NDArray[np.integer]: ...

def rle_decode_frame_into(
    src: _Buffer,
    out: _Buffer,
    rows: int,
    columns: int,
    samples_per_pixel: int,
    bits_allocated: int,
    *,
    offset: Optional[int] = None,
    path: Union[str, PathLike[str], None] = None,
    validation: _Validation = "warn",
) -> None: ...

def rle_encode_frame(arr: NDArray[np.integer]) -> bytes: ...
