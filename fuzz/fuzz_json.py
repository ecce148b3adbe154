"""atheris harness: dcmread + DICOM JSON export (``ds.to_json_dict()`` and ``json.dumps``).

Any exception other than fastdicom.DicomError is a finding.  While fastdicom.json is not
written yet the harness only decodes values (so it still runs).
"""
import json
import os
import sys
import warnings

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
with atheris.instrument_imports(include=["fastdicom", "oracle"]):
    import oracle
    import fastdicom
    from fastdicom.errors import DicomError
    if oracle.HAVE_JSON:
        import fastdicom.json  # noqa: F401  (instrumented)


def TestOneInput(data: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = fastdicom.dcmread(data, force=True)
            if oracle.HAVE_JSON:
                out = ds.to_json_dict(bulk_data_threshold=64 if len(data) & 1 else 1 << 20)
                json.dumps(out, allow_nan=True)
            else:
                oracle.walk(ds)
        except DicomError:
            pass


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
