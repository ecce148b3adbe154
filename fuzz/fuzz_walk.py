"""atheris harness: the nogil header walks against the general reader (a differential oracle).

The bytes are written to a file; scan's walk (fastdicom._batch), the dask reader's prefix
reads and the series walk (fastdicom._series) must read it exactly as the general reader does
(:func:`oracle.walks_agree`): the same row, the same error class, the same series header.  A
disagreement (AssertionError) or any exception other than fastdicom.DicomError / OSError is
a finding.  The walks are Cython: their own edges guide the fuzzer only in a FUZZ_NATIVE=1
build (tools/fuzz.sh); otherwise the Python layers' do.

Run: python fuzz/fuzz_walk.py CORPUS_DIR -max_total_time=60  (see tools/fuzz.sh)
"""
import glob
import os
import sys
import tempfile

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
with atheris.instrument_imports(include=["fastdicom", "oracle"]):
    import oracle

# one file per process, rewritten for each input (on a RAM disk when there is one).  libFuzzer
# ends the process without Python's exit handlers: the files of ended runs are removed here.
_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
_PATH = os.path.join(_DIR, f"fastdicom-fuzz-walk-{os.getpid()}.dcm")
for _old in glob.glob(os.path.join(_DIR, "fastdicom-fuzz-walk-*.dcm")):
    try:
        os.kill(int(_old.rsplit("-", 1)[1][:-4]), 0)
    except ProcessLookupError:
        os.unlink(_old)
    except (OSError, ValueError):
        pass


def TestOneInput(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    oracle.walks_agree(_PATH)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
