#!/usr/bin/env bash
# One full HED-VGG16 layer and one full EfficientNet-Lite0 layer with the `full` profile's settings
# (galleries.yml), through the Ray executor on one GPU: prints units/s per layer and projects the whole
# `full` plan. TensorFlow galleries are skipped, with the reason printed, where TensorFlow is absent.
#
#   benchmarks/gpu_gallery.sh                          # a GPU machine: under 6 minutes on one H200
#   benchmarks/gpu_gallery.sh --smoke --device cpu     # the same path on a CPU: few units and steps
#
# Options go to `python benchmarks/bench_gallery.py gpu` (--budget SECONDS per layer, default 120).
# Figures: printed, and in ${OUT:-benchmarks/out}/bench_gallery_gpu.json. Needs torch, featgen's model
# packages and Ray (`pip install 'featgen[ray]'`, or ray on PYTHONPATH); installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
export RAY_USAGE_STATS_ENABLED=0
PY="${PYTHON:-$(command -v python3 || command -v python)}"
if ! "$PY" -c "import ray" 2>/dev/null; then
  echo "gpu_gallery: Ray is not importable: pip install 'featgen[ray]', or put ray on PYTHONPATH" >&2
  exit 2
fi
exec "$PY" benchmarks/bench_gallery.py gpu "$@"
