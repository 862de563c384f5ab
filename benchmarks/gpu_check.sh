#!/usr/bin/env bash
# The GPU check of issue "Cost you can read and scale you can trust": on one H100, in at most 8 minutes,
#   1. `skelssl bench` of the paper-size NTU-60 recipe of each method (Hi-TRS, ISC, MAMP,
#      Motion-Transformer) in bf16 (beside the naive plug-in step) and in fp32;
#   2. N-UCLA prepared with the ctrgcn pipeline into a temporary store, benched with the MAMP recipe;
#   3. a short full-size MAMP pre-training on it (configs/mamp/nucla_xview.yaml, trainer.max_steps
#      sized to the time left), then `skelssl eval linear` and `skelssl eval knn`.
# JSON under OUTDIR: bench-*.json, pretrain.json, linear/ and knn/results.json, and summary.json (every
# phase with its command, status, seconds and JSON row); each phase's output in OUTDIR/logs/.
#
#   benchmarks/gpu_check.sh OUTDIR [--tiny] [--nucla PATH] [--budget SECONDS]
#
# --tiny runs the same phases on the CPU at tiny sizes (a minute or two): run it before a GPU is lent.
# N-UCLA is read from shared/data/nw_ucla/all_sqe in or beside the checkout, or --nucla PATH (../shared
# does not travel to a device machine: copy all_sqe, 39 MB, into an ignored folder of the checkout and
# carry it). On the device tool, which returns at most 8 files, archive the folder:
#   benchmarks/gpu_check.sh /tmp/gc --nucla .nucla/all_sqe; tar -czf $OUT/gpu_check.tar.gz -C /tmp gc
# Python: $PYTHON, else the checkout's .venv, else python3 (skelssl is run from src/, not installed).
# A preflight checks that it imports torch (with CUDA), lightning_fabric, safetensors, sklearn, yaml, tqdm.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: benchmarks/gpu_check.sh OUTDIR [--tiny] [--nucla PATH] [--budget SECONDS]" >&2
    exit 2
fi
python="${PYTHON:-}"
if [ -z "$python" ]; then
    if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python="python3"; fi
fi
exec "$python" "$here/gpu_check.py" "$@"
