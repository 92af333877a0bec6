#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and its driver: run chapter 5 for real and print what each
# container saw. Containers get `device=0`, `all`, and none (NVIDIA_VISIBLE_DEVICES=none: the
# driver's files but no GPU); each lists its /dev/nvidia* nodes and runs `nvidia-smi -L`. Then,
# where the host's python3 has PyTorch, a container given `device=0` computes on the GPU, and
# one given `device=0` makes a node for another GPU number and is refused by the devices cgroup.
# The host's root filesystem is the container's root, so the host's glibc, nvidia-smi and
# Python are there; the container still gets a fresh /dev with only its GPUs and a devices
# cgroup that refuses the rest.
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
host_gpus=$(nvidia-smi -L | grep -c '^GPU')
failures=0
pass() { echo "-- $1: ok"; }
fail() { echo "-- $1: FAILED ($2)"; failures=$((failures + 1)); }

# What a container sees: its GPU nodes, its environment, and nvidia-smi's list.
look='echo "/dev: $(ls /dev | grep nvidia | tr "\n" " ")"; echo "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-} NVIDIA_VISIBLE_DEVICES=${NVIDIA_VISIBLE_DEVICES:-}"; nvidia-smi -L 2>&1; echo "nvidia-smi exit: $?"'

# check LABEL EXPECTED_GPU_LINES COMMAND… (ch05-gpu and its GPU options; the rest is added)
check() {
    local label=$1 expect=$2
    shift 2
    echo
    echo "== container: $label (expect $expect GPU line(s) from nvidia-smi -L)"
    out=$("$@" --rootfs / -- sh -c "$look" 2>&1)
    status=$?
    echo "$out"
    got=$(printf '%s\n' "$out" | grep -c '^GPU [0-9]')
    if [ "$status" -ne 0 ]; then fail "$label" "ch05-gpu exited with $status"
    elif ! printf '%s\n' "$out" | grep -q '^nvidia-smi exit:'; then fail "$label" "nvidia-smi did not run"
    elif printf '%s\n' "$out" | grep -q '^nvidia-smi exit: 12[67]$'; then fail "$label" "nvidia-smi was not found or could not run in the container"
    elif [ "$got" -ne "$expect" ]; then fail "$label" "saw $got"
    else pass "$label"; fi
}
check '--gpus "device=0"' 1 "$bin" --gpus '"device=0"'
check '--gpus all' "$host_gpus" "$bin" --gpus all
check 'NVIDIA_VISIBLE_DEVICES=none (driver only)' 0 env NVIDIA_VISIBLE_DEVICES=none "$bin"

echo
echo "== container: --gpus \"device=0\" makes a node for GPU number 1 and opens it (expect EPERM)"
out=$("$bin" --gpus '"device=0"' --rootfs / -- sh -c 'mknod /dev/other-gpu c 195 1 && echo "mknod: made /dev/other-gpu (c 195:1)"; head -c1 /dev/other-gpu >/dev/null; (: </dev/nvidiactl) && echo "nvidiactl (c 195:255): opened"' 2>&1)
echo "$out"
if printf '%s\n' "$out" | grep -q 'other-gpu.*Operation not permitted' && printf '%s\n' "$out" | grep -q 'nvidiactl (c 195:255): opened'; then pass "devices cgroup"; else fail "devices cgroup" "expected EPERM for c 195:1 and nvidiactl open"; fi

python=$(command -v python3 || true)
if [ -n "$python" ] && "$python" -c 'import torch' 2>/dev/null; then
    echo
    echo "== container: --gpus \"device=0\" computes with CUDA (the host's PyTorch: $python)"
    out=$("$bin" --gpus '"device=0"' --rootfs / -- "$python" -c 'import torch; print("cuda devices:", torch.cuda.device_count()); print("device 0:", torch.cuda.get_device_name(0)); x = torch.arange(1, 1001, device="cuda", dtype=torch.float64); print("sum 1..1000 on the GPU:", int(x.sum().item()))' 2>&1)
    echo "$out"
    if printf '%s\n' "$out" | grep -q '^cuda devices: 1$' && printf '%s\n' "$out" | grep -q 'on the GPU: 500500$'; then pass "CUDA"; else fail "CUDA" "expected one device and 500500"; fi
else
    echo
    echo "(no python3 with PyTorch on this host: the CUDA container is skipped)"
fi

echo
if [ "$failures" -eq 0 ]; then echo "gpu-check: all containers saw what they were given"; else echo "gpu-check: $failures check(s) failed"; exit 1; fi
