#!/usr/bin/env bash
# GPU workstation check: run the quick profile's heavy rules on the CPU and on CUDA, print their
# times side by side, and check that both devices give the same eigenvalues and the same
# trajectory statistics (tolerances: benchmarks/compare_devices.py).
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]                  # default benchmarks/out/gpu_check
#   CONFIG=/abs/my-quick.yaml CORES=16 bash benchmarks/gpu_check.sh
#   GPU_DEVICE=cpu bash benchmarks/gpu_check.sh             # self-test without a GPU (CPU twice)
#
# Needs the data of the quick profile (MNIST: downloaded, or data.mnist.local_dir in CONFIG).
# Three Snakemake working directories under OUT_DIR, same config (CONFIG + gpu_check.yaml, which
# switches the trajectory to the torch engine so that it can run on the GPU at all):
#   cpu/        data, training, diffusion spectra, trajectories: device=cpu
#   gpu/        copy of cpu/; diffusion spectra (from cpu/'s snapshots: same weights) and the
#               trajectories recomputed with device=cuda
#   gpu_train/  copy of cpu/; training rerun with device=cuda (times only: other weights)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=$(realpath -m "${1:-benchmarks/out/gpu_check}")
CONFIG=$(realpath "${CONFIG:-config/quick.yaml}")
CORES=${CORES:-$(nproc)}
GPU_DEVICE=${GPU_DEVICE:-cuda}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
SNAKEMAKE=${SNAKEMAKE:-$REPO/.venv/bin/snakemake}

if [ "$GPU_DEVICE" = cuda ] && ! "$PYTHON" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
    echo "gpu_check: torch sees no CUDA device here; run it on a GPU machine" \
         "(or GPU_DEVICE=cpu to test this script)" >&2
    exit 2
fi

mkdir -p "$OUT/cpu"
# the Snakefile reads config/config.yaml relative to its working directory
rm -rf "$OUT/cpu/config" && cp -r "$REPO/config" "$OUT/cpu/config"
OVERLAY="$OUT/gpu_check.yaml"
cat >"$OVERLAY" <<YAML
# written by benchmarks/gpu_check.sh: the torch engine runs the trajectory on \`device\`
trajectory:
  engine: torch
YAML

smk() {  # smk WORKDIR DEVICE [snakemake args...]
    local work=$1 device=$2
    shift 2
    "$SNAKEMAKE" --snakefile "$REPO/Snakefile" --directory "$work" \
        --configfile "$CONFIG" "$OVERLAY" --config "device=$device" \
        --cores "$CORES" --resources gpu=1 --quiet rules "$@"
}

HEAVY=(--until diffusion_spectrum trajectory_table)
echo "== CPU: everything up to the spectra and the trajectory statistics ($OUT/cpu)"
smk "$OUT/cpu" cpu "${HEAVY[@]}"

echo "== $GPU_DEVICE: spectra from the CPU snapshots, trajectories ($OUT/gpu)"
rm -rf "$OUT/gpu" && cp -a "$OUT/cpu" "$OUT/gpu"
smk "$OUT/gpu" "$GPU_DEVICE" "${HEAVY[@]}" --rerun-triggers mtime input \
    --forcerun diffusion_spectrum trajectory_train

echo "== $GPU_DEVICE: training ($OUT/gpu_train)"
rm -rf "$OUT/gpu_train" && cp -a "$OUT/cpu" "$OUT/gpu_train"
smk "$OUT/gpu_train" "$GPU_DEVICE" --until train --rerun-triggers mtime input --forcerun train

echo "== comparison (device of the second column: $GPU_DEVICE)"
"$PYTHON" "$REPO/benchmarks/compare_devices.py" "$OUT/cpu" "$OUT/gpu" --train-dir "$OUT/gpu_train"
