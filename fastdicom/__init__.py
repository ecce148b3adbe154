"""fastdicom: zero-copy, Cython-accelerated DICOM parsing into numpy, Arrow and SQL."""
# first: `fastdicom ingest` answers a signal during its start-up with its JSON line
from ._early import install as _install_early
_install_early()
del _install_early
from ._version import __version__
from .errors import (DicomError, DicomWarning, EncapsulationError, FileChangedError,
                     InvalidDicomError, LimitExceededError, Limits, MalformedElementError,
                     MissingCodecError, NestingTooDeepError, PixelDataError, RLEDecodeError,
                     SeriesError, TruncatedError, UnsafePathError,
                     UnsupportedTransferSyntaxError)
from .dataset import DataElement, Dataset, FileMetaDataset, Sequence
from .filereader import DicomFile, dcmread, open_file as open
from .values import MultiValue
from .series import (SeriesInfo, Volume, Volume4D, find_series, load_series,
                     load_series_4d)
from .dicomdir import read_dicomdir

__all__ = [
    "__version__", "dcmread", "open", "DicomFile", "Dataset", "DataElement", "Sequence",
    "FileMetaDataset", "MultiValue", "Limits", "DicomError", "DicomWarning",
    "InvalidDicomError", "MalformedElementError", "TruncatedError", "NestingTooDeepError",
    "LimitExceededError", "UnsupportedTransferSyntaxError", "PixelDataError",
    "EncapsulationError", "RLEDecodeError", "MissingCodecError", "SeriesError",
    "UnsafePathError", "FileChangedError",
    "find_series", "load_series", "load_series_4d", "SeriesInfo", "Volume", "Volume4D",
    "read_dicomdir",
    "scan", "scan_batches", "DEFAULT_TAGS", "ingest",
]

_LAZY = {"scan": "batch", "scan_batches": "batch", "DEFAULT_TAGS": "batch"}


def __getattr__(name):
    # the batch/ingest layers import pyarrow: load them on first use only
    import importlib
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name == "ingest":  # a callable module: fastdicom.ingest(paths, db, ...)
        return importlib.import_module(".ingest", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
