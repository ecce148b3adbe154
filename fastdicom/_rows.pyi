"""Type stubs of fastdicom._rows (Cython): the index's JSON cells and its C writer."""
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

FORCE_PYTHON: bool

def json_cells(arr: pa.Array) -> pa.LargeStringArray: ...
def sqlite_available() -> bool: ...
def sqlite_connection_ok(con: Any, db_path: str) -> bool: ...
def sqlite_insert_new(con: Any, db_path: str, instance_sql: str, ledger_sql: str,
                      keys: list[bytes], arrays: list[Any],
                      rows: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]: ...
