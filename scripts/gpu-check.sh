#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and its driver: run chapter 5 for real and print what each
# container saw. Containers get `device=0`, `all`, and none; each lists its /dev/nvidia* nodes
# and runs `nvidia-smi -L` (the host's root filesystem is used as the container's root, so the
# host's glibc and nvidia-smi are there; the container still gets a fresh /dev with only its GPUs
# and a devices cgroup that refuses the rest).
#
#   sudo scripts/gpu-check.sh            # builds ch05-gpu with cargo
#   sudo scripts/gpu-check.sh BINARY     # uses a prebuilt ch05-gpu
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then echo "gpu-check: needs root (device nodes, cgroups, mounts)"; exit 1; fi
if ! ls /dev/nvidia[0-9]* >/dev/null 2>&1; then echo "gpu-check: no /dev/nvidia[0-9]* here: this is for a machine with an NVIDIA GPU"; exit 1; fi

bin=${1:-}
if [ -z "$bin" ]; then
    cargo build --release -q -p ch05-gpu || exit 1
    bin=target/release/ch05-gpu
fi

echo "== host"
nvidia-smi -L
failures=0
check() {
    local label=$1 gpus=$2 expect=$3
    echo
    echo "== container with --gpus $gpus (expect $expect GPU line(s) from nvidia-smi -L)"
    out=$("$bin" --gpus "$gpus" --rootfs / -- sh -c 'echo "/dev: $(ls /dev | grep nvidia | tr "\n" " ")"; echo "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES"; nvidia-smi -L 2>&1' 2>&1)
    echo "$out"
    got=$(printf '%s\n' "$out" | grep -c '^GPU [0-9]')
    if [ "$got" -eq "$expect" ]; then echo "-- $label: ok"; else echo "-- $label: FAILED (saw $got)"; failures=$((failures + 1)); fi
}
check "one GPU" '"device=0"' 1
check "all GPUs" all "$(nvidia-smi -L | grep -c '^GPU')"
check "no GPU (driver only)" none 0
echo
if [ "$failures" -eq 0 ]; then echo "gpu-check: all containers saw what they were given"; else echo "gpu-check: $failures check(s) failed"; exit 1; fi
