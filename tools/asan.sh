#!/usr/bin/env bash
# Build fastdicom's Cython extensions with gcc ASan+UBSan in a separate copy of the tree and
# run the test suite against them.
#   tools/asan.sh [pytest args...]        e.g. tools/asan.sh tests/test_bad_input.py -x
# Env: PYTHON (default .venv/bin/python), ASAN_DIR (default build/asan), FASTDICOM_SANITIZE
# (default address,undefined).  PYTHONMALLOC=malloc is required: without it ASan misses
# over-reads of small bytes objects living in pymalloc arenas (RELIABILITY.md §3).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo "$SRC/.venv/bin/python" || command -v python3 )}
DEST=${ASAN_DIR:-$SRC/build/asan}
export FASTDICOM_SANITIZE=${FASTDICOM_SANITIZE:-address,undefined}

echo "== copying the tree to $DEST"
rm -rf "$DEST"
mkdir -p "$DEST"
tar -C "$SRC" --exclude='./.venv' --exclude='./build' --exclude='./.git' --exclude='*.so' \
    --exclude='*.c' --exclude='__pycache__' --exclude='./fuzz/work' \
    --exclude='./fastdicom/build' -cf - . | tar -C "$DEST" -xf -

# the tests find the shared test data at <repo>/../shared/data: point the copy's parent there
if [ -d "$(dirname "$SRC")/shared" ] && [ ! -e "$(dirname "$DEST")/shared" ]; then
    ln -s "$(dirname "$SRC")/shared" "$(dirname "$DEST")/shared"
fi

echo "== building the extensions with -fsanitize=$FASTDICOM_SANITIZE"
( cd "$DEST" && CC=${CC:-gcc} "$PY" setup.py build_ext --inplace -j 2 >build.log 2>&1 ) || {
    tail -30 "$DEST/build.log"; echo "asan build failed" >&2; exit 2; }

LIBASAN=$(gcc -print-file-name=libasan.so)
LIBUBSAN=$(gcc -print-file-name=libubsan.so)
export PYTHONMALLOC=malloc
# reports also go to files: pytest captures fd 2, so a report printed there would be lost
# when the sanitizer ends the process
REPORTS="$DEST/sanitizer-reports"
mkdir -p "$REPORTS"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:halt_on_error=1:print_stacktrace=1:log_path=$REPORTS/asan}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:log_path=$REPORTS/ubsan}
export LD_PRELOAD="$LIBASAN:$LIBUBSAN"
export PYTHONPATH="$DEST"
cd "$DEST"

echo "== checking that the sanitized extensions are the ones imported"
"$PY" - <<'PY'
import glob, importlib, os, subprocess, sys
dest = os.environ["PYTHONPATH"]
mods = sorted({p[len(dest) + 1:].split(".")[0].replace("/", ".")
               for p in glob.glob(os.path.join(dest, "fastdicom", "**", "*.so"), recursive=True)})
if not mods:
    sys.exit("no extension modules were built")
for name in mods:
    mod = importlib.import_module(name)
    path = os.path.realpath(mod.__file__)
    if not path.startswith(os.path.realpath(dest)):
        sys.exit(f"{name} imported from {path}, not from the sanitized build in {dest}")
    syms = subprocess.run(["nm", "-D", path], capture_output=True, text=True).stdout
    if "__asan_" not in syms or "__ubsan_" not in syms:
        sys.exit(f"{name} ({path}) is not instrumented with ASan+UBSan")
    print(f"  {name}: {path} (ASan+UBSan)")
PY

echo "== running the test suite under ASan+UBSan"
rc=0
"$PY" -m pytest -q -p no:cacheprovider "${@:-tests}" || rc=$?
if compgen -G "$REPORTS/*" >/dev/null; then
    echo "== sanitizer reports:" >&2
    cat "$REPORTS"/* >&2
    exit 1
fi
exit $rc
