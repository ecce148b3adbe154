"""fastdicom: zero-copy, Cython-accelerated DICOM parsing into numpy, Arrow and SQL."""
from ._version import __version__
from .errors import (DicomError, DicomWarning, EncapsulationError, FileChangedError,
                     InvalidDicomError, LimitExceededError, Limits, MalformedElementError,
                     MissingCodecError, NestingTooDeepError, PixelDataError, RLEDecodeError,
                     SeriesError, TruncatedError, UnsafePathError,
                     UnsupportedTransferSyntaxError)
from .dataset import DataElement, Dataset, FileMetaDataset, Sequence
from .filereader import DicomFile, dcmread, open_file as open
from .values import MultiValue
from .series import SeriesInfo, Volume, find_series, load_series
from .dicomdir import read_dicomdir

__all__ = [
    "__version__", "dcmread", "open", "DicomFile", "Dataset", "DataElement", "Sequence",
    "FileMetaDataset", "MultiValue", "Limits", "DicomError", "DicomWarning",
    "InvalidDicomError", "MalformedElementError", "TruncatedError", "NestingTooDeepError",
    "LimitExceededError", "UnsupportedTransferSyntaxError", "PixelDataError",
    "EncapsulationError", "RLEDecodeError", "MissingCodecError", "SeriesError",
    "UnsafePathError", "FileChangedError",
    "find_series", "load_series", "SeriesInfo", "Volume", "read_dicomdir",
]
