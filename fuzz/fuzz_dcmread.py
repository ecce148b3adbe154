"""atheris harness: dcmread + full value decoding of every element (recursively).

Run: python fuzz/fuzz_dcmread.py CORPUS_DIR -max_total_time=60  (see tools/fuzz.sh)
Any exception other than fastdicom.DicomError is a finding.
"""
import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
with atheris.instrument_imports(include=["fastdicom", "oracle"]):
    import oracle

MODES = ("warn", "raise", "ignore")


def TestOneInput(data: bytes) -> None:
    # the validation mode comes from the length so the bytes stay a plain file
    oracle.exercise(data, validation=MODES[len(data) % 3], pixels=False, json=False)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
