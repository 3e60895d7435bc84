#!/bin/sh
# Everything that needs a GPU, in one script for a lent device machine:
#   sh tests/gpu/run.sh      (from the repository root)
# Builds with CUDA, reports the devices, runs the whole test suite (CPU-vs-CUDA op tests
# run instead of skipping where a GPU exists) and the benchmarks' GPU parts.
set -eu
nvidia-smi -L || true
sh scripts/deps.sh --check || sh scripts/deps.sh
make -j"$(nproc)" CUDA=1 all
make -j"$(nproc)" CUDA=1 test
