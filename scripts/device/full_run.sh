#!/usr/bin/env bash
# The full experiment (configs/paper.yaml) on a lent GPU machine, in one call of the device tool.
# Carried (git-ignored): .whl/ (datasets, pydantic wheels for Python 3.12), .devcarry/cache/tasks (the 9
# normalised built-in tasks) and .devcarry/minilm-bf16 (minilm rounded to bf16 to fit the 64 MiB transfer).
# Usage there: bash scripts/device/full_run.sh RUN_SECONDS WORKERS
# Resuming in a later call (the machine comes back bare): copy the $OUT/paper-resume.tgz of the previous call
# to .devcarry/resume/paper-resume.tgz (git-ignored, carried). It holds store.jsonl, run.json, experiment.yaml
# and every job's metrics.json (a few MB, no models): finished target runs are reused; the 9 source models and
# the fusions are redone first (about a minute), then the run goes on.
set -uo pipefail
RUN_S=${1:-120}; WORKERS=${2:-12}; OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export BASEFUSE_CACHE=$PWD/.devcarry/cache
python3 - <<'PY' 2>&1 | tee "$OUT/versions.txt"
import torch, transformers, datasets
from transformers import AutoModel
print("torch", torch.__version__, "transformers", transformers.__version__, "datasets", datasets.__version__,
      torch.cuda.get_device_name() if torch.cuda.is_available() else "no cuda")
import shutil, pathlib
src = pathlib.Path(".devcarry/minilm-bf16")
m = AutoModel.from_pretrained(src, dtype=torch.float32)   # weights were bf16-rounded for transport
m.save_pretrained("/tmp/minilm")
for f in src.iterdir():
    if f.name not in ("model.safetensors", "config.json"):
        shutil.copy(f, "/tmp/minilm")
PY
sed "s|^base_model: minilm|base_model: /tmp/minilm|" src/basefuse/configs/paper.yaml > /tmp/paper.yaml
if [ -f .devcarry/resume/paper-resume.tgz ]; then
  mkdir -p runs/paper && tar xzf .devcarry/resume/paper-resume.tgz -C runs/paper
  echo "resumed: $(wc -l < runs/paper/store.jsonl) stored job results" | tee -a "$OUT/log.txt"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >> "$OUT/versions.txt"
echo "setup $(( $(date +%s) - t0 )) s" | tee -a "$OUT/log.txt"
timeout -s INT -k 20 "$RUN_S" python3 -m basefuse experiment /tmp/paper.yaml --out runs/paper \
  --executor process --workers "$WORKERS" --device cuda 2>&1 | tail -40 | tee -a "$OUT/log.txt"
echo "experiment stopped after $(( $(date +%s) - t0 )) s" | tee -a "$OUT/log.txt"
cp runs/paper/store.jsonl "$OUT/store_after_experiment.jsonl"
timeout -k 10 60 python3 benchmarks/jobs_throughput.py /tmp/paper.yaml runs/paper --jobs "$((2 * WORKERS))" \
  --sequential-jobs 4 --workers "$WORKERS" --device cuda --json "$OUT/throughput.json" 2>&1 | tail -12 \
  | tee -a "$OUT/log.txt"
# results.jsonl is derived from the plan and the store: rewrite it now (a killed run or benchmark may not
# have), then the report.
timeout 60 python3 - <<'PY' 2>&1 | tail -5 | tee -a "$OUT/log.txt"
from basefuse.experiments.config import load_experiment_config
from basefuse.experiments.runner import derive_results, make_plan
plan = make_plan(load_experiment_config("/tmp/paper.yaml"))
derive_results(plan, "runs/paper")
print("planned jobs", len(plan.jobs), "target runs", len(plan.runs))
PY
timeout 60 python3 -m basefuse report runs/paper 2>&1 | tail -30 | tee -a "$OUT/log.txt"
echo "total $(( $(date +%s) - t0 )) s" | tee -a "$OUT/log.txt"
# Only the small files travel back (the job folders hold models and tokenizers: too big for $OUT).
(cd runs/paper && cp store.jsonl results.jsonl run.json experiment.yaml "$OUT/"; tar czf "$OUT/report.tgz" report)
# what the next call needs to resume, made even when no report could be built yet
(cd runs/paper && tar czf "$OUT/paper-resume.tgz" store.jsonl run.json experiment.yaml $(ls jobs/*/metrics.json 2>/dev/null))
