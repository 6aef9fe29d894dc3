#!/usr/bin/env bash
# One training run on a lent GPU machine: the command of a device call, from the repository
# root there. The call carries what `make gpu-pack` made here: carry=["var/gpu-pack", ".whl"].
# MINUTES (default 7) is the run's whole budget; the fp16 pieces, run.json and log.txt land
# in $OUT. Extra arguments go to `python3 -m workbench.training.accelerated`.
set -euo pipefail
# The loader processes hand their batches over through shared memory: give it room.
mount -o remount,size=48G /dev/shm 2>/dev/null || true
df -h /dev/shm | tail -1 || true
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
# The machine has PyTorch, OpenCV and NumPy; of the project's needs only facenet-pytorch travels.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
python3 -m workbench.training.accelerated --pack var/gpu-pack --out "$OUT" \
    --minutes "${MINUTES:-7}" "$@" 2>&1 | tee "$OUT/log.txt"
