#!/usr/bin/env bash
# GPU check of the fused kernels and the MuJoCo Warp backend, in one run on an H100/H200 machine: build a fresh
# virtual environment, install the project, check that torch sees the GPU and that triton imports, run the
# fused-kernel tests (including the full-size comparisons that only run on CUDA) and the GPU benchmark, then the
# Warp benchmark (agreement with C MuJoCo on the GPU, control steps/s up to 4,096 environments, HEPi PPO end to
# end), and write everything to one results file.
#
# Usage: bash benchmarks/gpu_check.sh [--quick]
# Environment (all optional):
#   PYTHON           interpreter for the venv (default python3; 3.10+)
#   VENV             venv directory (default $TMPDIR/geomanip-gpu-venv, outside the tree so lint skips it)
#   TORCH_SPEC       torch requirement (default torch==2.13.0; it must be a CUDA build, see below)
#   TORCH_INDEX_URL  extra index for CUDA wheels, e.g. https://download.pytorch.org/whl/cu128
#   PIP_ARGS         extra pip arguments (e.g. --no-index --find-links /wheels on an offline machine)
#   SYSTEM_SITE=1    let the venv see the machine's own packages (a preinstalled CUDA torch and its triton
#                    then satisfy the requirements, and pip installs only what is missing)
#   OUT              results file (default benchmarks/results/gpu_<date>_<host>.txt)
# --quick runs small benchmark sizes (a smoke run of the script itself, a few minutes).
set -uo pipefail
cd "$(dirname "$0")/.."

QUICK=0
[[ "${1:-}" == "--quick" ]] && QUICK=1
PYTHON=${PYTHON:-python3}
VENV=${VENV:-${TMPDIR:-/tmp}/geomanip-gpu-venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
OUT=${OUT:-benchmarks/results/gpu_$(date -u +%Y%m%dT%H%M%SZ)_$(hostname -s).txt}
mkdir -p "$(dirname "$OUT")"
# Everything from here on goes to the terminal and to $OUT.
exec > >(tee "$OUT") 2>&1

step() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
fail() { printf '\nGPU CHECK FAILED: %s\nResults so far: %s\n' "$1" "$OUT"; exit 1; }

step "machine"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi not found"
"$PYTHON" --version

step "virtual environment $VENV"
"$PYTHON" -m venv ${SYSTEM_SITE:+--system-site-packages} "$VENV" || fail "could not create the venv with $PYTHON"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip ${PIP_ARGS:-} || fail "pip upgrade"
# The README pins the CPU build for laptops and CI; here torch must be a CUDA build. With TORCH_INDEX_URL set, pip
# looks there too (the CUDA wheels of a version are published on PyTorch's index).
python -m pip install --quiet ${PIP_ARGS:-} ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC" \
    || fail "could not install $TORCH_SPEC"
python -m pip install --quiet ${PIP_ARGS:-} -e ".[test]" || fail "could not install the project with the test extra"

step "torch and triton"
python - <<'EOF' || fail "torch cannot use the GPU or triton does not import (see above)"
import sys
import torch
print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, cuda available {torch.cuda.is_available()}")
ok = True
if not torch.cuda.is_available():
    ok = False
    print("PROBLEM: torch.cuda.is_available() is False.", "This torch is a CPU build: set TORCH_INDEX_URL to a CUDA "
          "wheel index (or TORCH_SPEC to a CUDA build) and rerun." if torch.version.cuda is None else
          "torch is a CUDA build but sees no GPU: check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES.")
else:
    print("GPU:", torch.cuda.get_device_name(0))
try:
    import triton
    print("triton", triton.__version__)
except Exception as err:
    ok = False
    print(f"PROBLEM: triton does not import ({type(err).__name__}: {err}); the fused kernels need it")
sys.exit(0 if ok else 1)
EOF

step "fused-kernel tests on the GPU (full-size comparisons included)"
python -m pytest -q -rs tests/kernels/test_fused.py || fail "fused-kernel tests"
step "all kernel tests on this machine"
python -m pytest -q -rs tests/kernels || fail "kernel tests"

step "benchmark"
if [[ $QUICK == 1 ]]; then
    python -m benchmarks.kernels --device cuda --quick --end-to-end || fail "benchmark"
else
    # The PyG table at the CPU sizes, then the GPU table (10k/200k and 100k/2M, hidden 64 and 128) and the
    # end-to-end rows.
    python -m benchmarks.kernels --device cuda --end-to-end || fail "benchmark"
fi

step "MuJoCo Warp backend: agreement with C MuJoCo, control steps/s by environments, HEPi PPO end to end"
if [[ $QUICK == 1 ]]; then
    python -m benchmarks.warp_envs --device cuda --num-envs 1 256 --ppo-steps 65536 --ppo-envs 1024 \
        || fail "Warp benchmark"
else
    python -m benchmarks.warp_envs --device cuda --num-envs 1 16 256 1024 4096 --steps 50 --agree-envs 64 \
        --ppo-steps 1048576 --ppo-envs 1024 || fail "Warp benchmark"
fi

step "done"
echo "GPU CHECK PASSED. Results: $OUT"
