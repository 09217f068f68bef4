#!/usr/bin/env bash
# Everything to measure on a machine with a GPU, in one call (about 9.5 minutes), all output under $OUT:
#   1. installs the workflow stack from wheels in .whl/ when the machine lacks it
#      (make them first where pip reaches the index: benchmarks/fetch_wheels.sh .whl);
#   2. python benchmarks/gpu_check.py: environment, step table, profile, LLC, paper_slice (<= 8 min);
#   3. python benchmarks/precision_curves.py at the paper shape: fp32 vs TF32 / bf16 OOD loss curves.
# Each step has its own time limit; one failing does not stop the next.
#
#   OUT=/tmp/out benchmarks/gpu_run.sh              # on the GPU machine, from the project root
#   SMOKE=1 OUT=/tmp/out benchmarks/gpu_run.sh      # the same on a CPU at a tiny size (about a minute)
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/benchmarks/out}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
start=$(date +%s)
say() { echo "[gpu_run t+$(( $(date +%s) - start ))s] $*" | tee -a "$OUT/gpu_run.log"; }
smoke=${SMOKE:+--smoke}

if ! "$PYTHON" -c "import snakemake, zarr, jsonschema" 2>/dev/null; then
  if compgen -G ".whl/*.whl" > /dev/null; then
    say "installing $(ls .whl/*.whl | wc -l) wheels from .whl/ into /tmp/site"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
      >> "$OUT/gpu_run.log" 2>&1 || say "wheel install FAILED (see gpu_run.log)"
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PATH=/tmp/site/bin:$PATH
  else
    say "snakemake/zarr missing and no .whl/: the paper_slice part will be skipped (benchmarks/fetch_wheels.sh .whl)"
  fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{ nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"; } | tee -a "$OUT/gpu_run.log"

budget=${GPU_CHECK_BUDGET_S:-$([[ -n ${SMOKE:-} ]] && echo 55 || echo 450)}
say "gpu_check (budget $budget s)"
timeout $(( budget + 40 )) "$PYTHON" benchmarks/gpu_check.py $smoke --budget-s "$budget" \
  --out "$OUT/gpu_check.md" > "$OUT/gpu_check.log" 2>&1
say "gpu_check exit $? ($OUT/gpu_check.md)"

say "precision_curves"
if [[ -n ${SMOKE:-} ]]; then curves_args=(--smoke); else curves_args=(--experiment paper_slice --M 64 --steps 2000); fi
timeout 110 "$PYTHON" benchmarks/precision_curves.py "${curves_args[@]}" --out "$OUT/precision_curves.md" \
  > "$OUT/precision_curves.log" 2>&1
say "precision_curves exit $? ($OUT/precision_curves.md)"
say "done"
