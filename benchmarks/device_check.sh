#!/usr/bin/env bash
# The device check of issue 27 (fits on several devices), for a lent GPU
# machine: one NVIDIA H200 with JAX (and PyTorch), but no Keras and no
# TensorFlow, and no registry to install them from. It runs on JAX.
#
# Prepare on the development machine, once, in the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 \
#       --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#       -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0
# (2.9 MB; Keras' other needs, and scikit-learn, are on the machine.)
# Run there with the device tool, carrying .whl:
#   bash benchmarks/device_check.sh
# About 4 minutes (each step has its own time limit, 7 minutes in all):
# 1. benchmarks/gpu.py --rows devices: MobileNetV2 fine-tuning by sktransfer
#    on the GPU, on one device and under keras.distribution.DataParallel
#    over every visible GPU (one here: the row of two GPUs says it was
#    skipped), with the difference of their predictions;
# 2. tests/test_devices.py's JAX checks on the machine's CPUs (2 forced host
#    devices, and a job of 2 processes), under its newer JAX.
# The results land in $OUT: gpu_devices.md, gpu.log and tests.log.
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" KERAS_BACKEND=jax TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/device_check}"
mkdir -p "$OUT"
nvidia-smi -L
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
timeout 300 python3 benchmarks/gpu.py --rows devices --output "$OUT/gpu_devices.md" 2>&1 \
    | tee "$OUT/gpu.log"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_devices.py -k "jax or hosts" \
    2>&1 | tee "$OUT/tests.log"
