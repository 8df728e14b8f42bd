#!/usr/bin/env bash
# One-go check of the TensorRT path on a GPU machine (< 8 minutes). Run from the repository root.
#
#   scripts/gpu_check.sh [--out DIR] [--export BASE] [--cuda-only] [--dry-run]
#
# Steps, each writing into one folder (default runs/gpu-check/<UTC time>/):
#   1. environment report (environment.json): driver, GPUs, CUDA runtime, TensorRT and package versions;
#   2. CUDA-only tests (pytest -m cuda: cuda-bindings wrapper, pinned memory, graphs), no SKIPPED allowed;
#      then, where torch imports, GPU training (pytest -m torch_cuda tests/training/test_device.py);
#   3. TensorRT GPU tests (pytest -m "gpu and not pycuda" -rs), no SKIPPED allowed; -m pycuda if pycuda imports;
#   4. a reduced student trained briefly on synthetic data and exported (or --export BASE: BASE.onnx,
#      BASE.fp16.onnx, BASE.json made elsewhere), INT8-quantized on the CPU, FP16 and INT8 engines built;
#   5. both engines verified against ONNX Runtime FP32 (verify-*.json);
#   6. inspector bench at batch 1/4/8 with and without CUDA graphs (bench-*.json), and the mixed batch
#      order 1,4,1,3,4 replayed with and without graphs, outputs compared bit for bit (replay-*.json).
# --cuda-only runs steps 1-2 (a GPU and cuda-bindings, no TensorRT). --dry-run writes the environment report,
# prints what is missing and the steps it would run, and exits 0. Exit status: 0 all passed, 1 a step failed,
# 2 bad usage, 3 a requirement is missing.
set -u -o pipefail

OUT="runs/gpu-check/$(date -u +%Y%m%dT%H%M%SZ)"
EXPORT="" CUDA_ONLY=0 DRY_RUN=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="${2:?--out needs a folder}"; shift 2 ;;
        --export) EXPORT="${2:?--export needs a base path}"; shift 2 ;;
        --cuda-only) CUDA_ONLY=1; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if [ ! -f setup.cfg ] || [ ! -d inspector ]; then
    echo "gpu_check.sh: run it from the repository root (no setup.cfg/inspector here: $PWD)" >&2; exit 2
fi
if [ -n "$EXPORT" ] && [ ! -f "$EXPORT.onnx" ]; then
    echo "gpu_check.sh: --export $EXPORT: $EXPORT.onnx not found" >&2; exit 2
fi
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
STATUS=0
declare -a STEPS=()

step() {  # step NAME COMMAND...: run, log to $OUT/NAME.log, record pass/fail with seconds
    local name="$1"; shift
    local start=$SECONDS
    echo "== $name: $*"
    if "$@" > "$OUT/$name.log" 2>&1; then
        STEPS+=("{\"step\": \"$name\", \"passed\": true, \"seconds\": $((SECONDS - start))}")
        echo "   passed ($((SECONDS - start)) s)"
    else
        STEPS+=("{\"step\": \"$name\", \"passed\": false, \"seconds\": $((SECONDS - start))}")
        echo "   FAILED ($((SECONDS - start)) s): see $OUT/$name.log"; tail -n 15 "$OUT/$name.log" | sed 's/^/   | /'
        STATUS=1
    fi
}

no_skips() {  # no_skips LOG: pytest -rs lists every skip as "SKIPPED [n] ..."; on a GPU machine none is allowed
    if grep -q '^SKIPPED' "$1"; then
        echo "   FAILED: tests were skipped on a GPU machine:"; grep '^SKIPPED' "$1"; STATUS=1
    fi
}

pytest_gpu() {  # pytest_gpu NAME MARKEXPR FILES...
    local name="$1" expr="$2"; shift 2
    step "$name" "$PY" -m pytest -q -rs -p no:cacheprovider -m "$expr" --junitxml "$OUT/$name.xml" "$@"
    no_skips "$OUT/$name.log"
}

plan() {
    echo "steps:"
    echo "  1 environment report                         -> $OUT/environment.json"
    echo "  2 pytest -m cuda tests/backends (no SKIPPED)   -> $OUT/cuda-tests.log"
    echo "    pytest -m torch_cuda tests/training (GPU training, where torch imports; no SKIPPED) -> $OUT/torch-cuda-tests.log"
    [ "$CUDA_ONLY" = 1 ] && return
    echo "  3 pytest -m 'gpu and not pycuda' (no SKIPPED)  -> $OUT/gpu-tests.log"
    echo "  4 ${EXPORT:+use $EXPORT.onnx; }synth data, train + export reduced student, quantize, build fp16/int8"
    echo "  5 inspector verify fp16/int8 vs ONNX Runtime   -> $OUT/verify-*.json"
    echo "  6 inspector bench 1,4,8 +/- --cuda-graphs; replay 1,4,1,3,4 -> $OUT/bench-*.json, replay-*.json"
}

echo "gpu_check: results in $OUT"
ENV_ARGS=("$OUT/environment.json")
[ "$CUDA_ONLY" = 1 ] && ENV_ARGS+=(--cuda-only)
[ -n "$EXPORT" ] && ENV_ARGS+=(--have-export)
"$PY" scripts/gpu_env.py "${ENV_ARGS[@]}"
ENV_STATUS=$?
if [ "$DRY_RUN" = 1 ]; then
    plan
    [ "$ENV_STATUS" = 0 ] && echo "dry run: everything needed is here" \
                          || echo "dry run: the requirements marked MISSING are needed for a real run"
    exit 0
fi
if [ "$ENV_STATUS" != 0 ]; then
    echo "gpu_check.sh: a requirement is missing (listed above; report in $OUT/environment.json)" >&2; exit 3
fi

pytest_gpu cuda-tests cuda tests/backends
if "$PY" -c "import torch" 2>/dev/null; then  # GPU training (train.device cuda, AMP, channels-last)
    pytest_gpu torch-cuda-tests torch_cuda tests/training/test_device.py
fi
if [ "$CUDA_ONLY" = 0 ]; then
    pytest_gpu gpu-tests "gpu and not pycuda" tests/backends/test_tensorrt_gpu.py
    if "$PY" -c "import pycuda.driver" 2>/dev/null; then
        pytest_gpu pycuda-tests pycuda tests/backends/test_tensorrt_gpu.py
    fi

    DATA="$OUT/data" ENG="$OUT/engines"
    step synth inspector data synth --out "$DATA" --size 128 --train 48 --test-good 12 --test-defect 12 --force
    if [ -z "$EXPORT" ]; then
        step train inspector train --data "$DATA" --out "$OUT/run" --epochs 2 --time-budget 120 \
            --set "model.image_size=[128, 128]"
        step export inspector export "$OUT/run" --out "$OUT/export/rs"
        EXPORT="$OUT/export/rs"
    fi
    step quantize inspector quantize "$EXPORT.onnx" --calibration "$DATA" --max-images 48
    for p in fp16 int8; do
        step "build-$p" inspector build "$EXPORT.$p.onnx" --out "$ENG/rs.$p.plan" --max-batch 8 --workspace-mb 2048
        step "verify-$p" inspector verify "$ENG/rs.$p.plan" --reference "$EXPORT.onnx" --data "$DATA" \
            --report "$OUT/verify-$p.json"
        step "bench-$p" inspector bench "$ENG/rs.$p.plan" --batch 1,4,8 --duration 3 --warmup 10 \
            --json "$OUT/bench-$p.json"
        step "bench-$p-graphs" inspector bench "$ENG/rs.$p.plan" --batch 1,4,8 --duration 3 --warmup 10 \
            --cuda-graphs --json "$OUT/bench-$p-graphs.json"
        step "replay-$p" "$PY" scripts/gpu_replay.py "$ENG/rs.$p.plan" "$OUT/replay-$p.json" --order 1,4,1,3,4
    done
fi

{ echo "{\"passed\": $([ "$STATUS" = 0 ] && echo true || echo false), \"steps\": ["
  (IFS=,; echo "${STEPS[*]}"); echo "]}"; } > "$OUT/summary.json"
echo "gpu_check: $([ "$STATUS" = 0 ] && echo PASSED || echo FAILED) in ${SECONDS} s; summary $OUT/summary.json"
exit "$STATUS"
