#!/usr/bin/env bash
# Run a transient design sweep (benchmarks/transient_sweep.py) on one GPU: every group of the
# spec as its own process, all at once, each under its own time limit; results and logs under
# $OUT. From the project root, on the device machine (which has torch, numpy, xarray,
# matplotlib and pyyaml; the sweep needs nothing else):
#   bash benchmarks/sweep_gpu.sh benchmarks/sweeps/transient_design.yaml 420
# Try it on the CPU first with a tiny spec: DEVICE=cpu bash benchmarks/sweep_gpu.sh tiny.yaml 5
set -u
SPEC=$1; LIMIT=${2:-420}
OUT=${OUT:-/tmp/sweep-out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
T0=$(date +%s)
nvidia-smi -L 2>/dev/null | tee "$OUT/device.txt"
groups=$(python3 -c "import yaml,sys; print(' '.join(g['name'] for g in yaml.safe_load(open(sys.argv[1]))['groups']))" "$SPEC")
pids=""
for g in $groups; do
  timeout $(( LIMIT + 90 )) python3 benchmarks/transient_sweep.py "$SPEC" --out "$OUT" --group "$g" \
    --time-limit "$LIMIT" --tf32 ${DEVICE:+--device $DEVICE} > "$OUT/log_$g.txt" 2>&1 &
  pids="$pids $!"
done
for p in $pids; do wait "$p"; echo "pid $p exit $?"; done
echo "training done after $(( $(date +%s) - T0 )) s"
tail -n 3 "$OUT"/log_*.txt
python3 benchmarks/transient_sweep.py "$SPEC" --out "$OUT" --summarize > "$OUT/summary.txt" 2>&1
echo "summary rc=$? after $(( $(date +%s) - T0 )) s"
grep -A 100 "per design" "$OUT/summary.txt"
