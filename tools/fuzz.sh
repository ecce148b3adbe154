#!/usr/bin/env bash
# Run each atheris harness of fuzz/ for SECONDS (default 60) on a freshly generated seed corpus.
#   tools/fuzz.sh [SECONDS] [HARNESS...]      e.g. tools/fuzz.sh 300 dcmread json
# Env: PYTHON (default .venv/bin/python or python3), FUZZ_WORKDIR (default fuzz/work),
#      FUZZ_JOBS (harnesses run in parallel, default 1),
#      FUZZ_NATIVE=1 (also instrument the Cython extensions: a copy of the tree is built with
#      clang-14 -fsanitize=address,fuzzer-no-link in build/fuzz-native and run with atheris'
#      asan_with_fuzzer.so preloaded; needs `apt-get install clang-14 libclang-rt-14-dev`),
#      FUZZ_CONTINUE=1 (restart after a finding until SECONDS are used up, keeping the corpus;
#      findings are listed by their exception line in $FUZZ_WORKDIR/<harness>.findings).
# Exits non-zero if any harness reports a finding; crash inputs go to $FUZZ_WORKDIR/artifacts/.
set -u
cd "$(dirname "$0")/.."
SECONDS_PER=${1:-60}
shift || true
HARNESSES=("$@")
[ ${#HARNESSES[@]} -eq 0 ] && HARNESSES=(dcmread pixels json walk csa)
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
PY=$(realpath -s "$(command -v "$PY")")
WORK=${FUZZ_WORKDIR:-fuzz/work}
JOBS=${FUZZ_JOBS:-1}
SRC=$PWD
export PYTHONPATH="$SRC${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$WORK/artifacts"
RUN_PATH=$SRC
PRELOAD=
if [ "${FUZZ_NATIVE:-0}" = 1 ]; then
    NATIVE=$SRC/build/fuzz-native
    rm -rf "$NATIVE"; mkdir -p "$NATIVE"
    tar -C "$SRC" --exclude='./.venv' --exclude='./build' --exclude='./.git' --exclude='*.so' \
        --exclude='*.c' --exclude='__pycache__' --exclude='./fuzz/work' \
        --exclude='./fastdicom/build' -cf - . | tar -C "$NATIVE" -xf -
    ( cd "$NATIVE" && FASTDICOM_SANITIZE=address,fuzzer-no-link CC=clang-14 \
        LDSHARED="clang-14 -shared" "$PY" setup.py build_ext --inplace -j 2 >build.log 2>&1 ) \
        || { tail -20 "$NATIVE/build.log"; echo "native fuzz build failed" >&2; exit 2; }
    SITE=$("$PY" -c 'import atheris, os; print(os.path.dirname(os.path.dirname(atheris.__file__)))')
    RUN_PATH=$NATIVE
    PRELOAD=$SITE/asan_with_fuzzer.so
fi

run_one() {
    local name=$1 corpus="$WORK/corpus_$1" log="$WORK/$1.log"
    mkdir -p "$corpus"
    if [ "$name" = pixels ] || [ "$name" = csa ]; then
        "$PY" fuzz/make_seeds.py "--$name" "$corpus" >/dev/null
    else
        "$PY" fuzz/make_seeds.py "$corpus" >/dev/null
    fi
    local deadline=$(( $(date +%s) + SECONDS_PER )) left rc total=0 runs=0
    : >"$WORK/$name.findings"
    : >"$log"
    while :; do
        left=$(( deadline - $(date +%s) ))
        [ "$left" -le 0 ] && break
        PYTHONPATH="$RUN_PATH" LD_PRELOAD="$PRELOAD" PYTHONMALLOC=${PRELOAD:+malloc} \
        ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1} \
        "$PY" "$RUN_PATH/fuzz/fuzz_$name.py" "$corpus" -max_total_time="$left" -timeout=10 \
            -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 \
            -artifact_prefix="$WORK/artifacts/$name-" >"$log.run" 2>&1
        rc=$?
        runs=$((runs + 1))
        cat "$log.run" >>"$log"
        total=$(( total + $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log.run" | grep -o '[0-9]*$' || echo 0) ))
        if ! grep -q 'INITED' "$log.run"; then
            echo "harness failed to start" >>"$WORK/$name.findings"
            tail -5 "$log.run" >&2
            break
        fi
        if [ "$rc" -ne 0 ]; then
            if grep -q 'Uncaught Python exception' "$log.run"; then
                grep -A1 'Uncaught Python exception' "$log.run" | tail -1 | cut -c1-60
            else
                grep -o 'ERROR: libFuzzer: [a-z-]*' "$log.run" | head -1
            fi >>"$WORK/$name.findings"
        fi
        [ "$rc" -eq 0 ] || [ "${FUZZ_CONTINUE:-0}" = 1 ] || break
    done
    rm -f "$log.run"
    [ -s "$WORK/$name.findings" ] && rc=1 || rc=0
    local cov execs rate
    # atheris registers Python coverage counters dynamically: the "cov:" figure of libFuzzer's
    # status lines is the number of covered edges and must be non-zero
    cov=$(grep -o ' cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    execs=$total
    rate=$(( total / (SECONDS_PER > 0 ? SECONDS_PER : 1) ))
    local native
    native=$(grep -o 'Loaded [0-9]* modules *([0-9]* inline 8-bit counters)' "$log" | head -1 | grep -o '[0-9]* inline' | grep -o '[0-9]*')
    echo "fuzz_$name: rc=$rc native_counters=${native:-0} coverage_edges=${cov:-0} executions=$execs exec_per_s~$rate runs=$runs findings=$(sort -u "$WORK/$name.findings" | grep -c .) log=$log"
    sort "$WORK/$name.findings" | uniq -c | sed "s/^/fuzz_$name finding: /"
    if [ "${cov:-0}" -eq 0 ]; then
        echo "fuzz_$name: no coverage counters (harness not instrumented?)" >&2
        return 1
    fi
    return $rc
}

status=0
pids=()
for h in "${HARNESSES[@]}"; do
    if [ "$JOBS" -gt 1 ]; then
        run_one "$h" & pids+=($!)
        while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 1; done
    else
        run_one "$h" || status=1
    fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
