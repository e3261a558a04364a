#!/usr/bin/env bash
# The GPU studies of issues 14, 15 and 17, as one time-boxed script for a lent GPU machine
# (python3 there holds torch; the project's missing packages travel as wheels, see docs/results.md).
#
#   bash benchmarks/gpu_studies.sh OUTDIR [BUDGET_S]      # on a CUDA machine
#   SMALL=1 bash benchmarks/gpu_studies.sh OUTDIR 900      # the same pipeline, tiny, on a CPU
#
# Streams, all started at once (the GPU is time-sliced between processes):
#   1. benchmarks/gpu_check.py (issue 17): one step per family on real-architecture models;
#   2. the LLM pruning curve of NPO on the tiny GPT (issue 15), 3 seeds x 3 levels;
#   2'. the MinNorm-OG sine table at width 300 (issue 15): 100k pretraining epochs, every method's
#      official grid at 10, 100 and 1000 epochs, 6 seeds, both selections;
#   3. three rebuilds of the 32x32 textures model (issue 14 part 5), each followed by its base
#      rates (do the dotted / checkered heads fire on their own prompts above the stripe head?)
#      and, when both textures render, the collateral-damage job on it;
#   4. erasures of stripes from the built-in 32x32 tiny-sd (ESD, UCE, CA, SalUn), then the four
#      prompt attacks on each under the calibrated judge, and the four attacks on the never-erased
#      model with plain prompts (the positive control).
# Every process has a deadline; what finished is packed into OUTDIR (at most 8 files).
set -u
OUT=${1:?usage: gpu_studies.sh OUTDIR [BUDGET_S]}
BUDGET=${2:-480}
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$ROOT"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}
W="$PY -m workbench.cli"
WORK=${WORK:-/tmp/gpu-studies}
[ "${PACK_ONLY:-0}" = 1 ] || rm -rf "$WORK"
mkdir -p "$WORK/logs" "$OUT"
T0=$(date +%s)
left() { echo $((BUDGET - 25 - ($(date +%s) - T0))); }  # seconds left, 25 s kept for packing

if [ "${SMALL:-0}" = 1 ]; then  # the CPU dry run: the small fixture, tiny budgets
  DEV=cpu
  SD=$ROOT/tests/fixtures/diffusion/tiny-sd-small
  BUILD="--variant small --set unet_steps=20 --set vae_steps=5 --set n_train=200 --set n_test=60 --set probe_epochs=1"
  SINE="width=16 pretrain_epochs=200 budgets=[10,100] seeds=2"
  ATK="max_prompts=2 eval_samples=1 calibration_images=10"
  UDA="timestep_blocks=1 iterations=2"; RAB="generations=2 population=8"; INV="steps=3"
  ERASE_EXTRA="eval_samples=1"
  CHECK="--cpu --steps 1"
  ERASERS="esd"; ATTACKS="unlearndiffatk ringabell"; TEXTURES="p8"
  PRUNE="seeds=1 thresholds=[0.0,0.5] max_eval_items=10 validation_facts=5 method_overrides=[npo.epochs=1]"
else
  DEV=cuda
  SD=tiny-sd
  BUILD="--set unet_steps=30000 --set unet_seconds=170 --set batch=64 --set n_train=12000"
  SINE="device=cuda max_models=2048"
  ATK="max_prompts=8 eval_samples=2"
  UDA="timestep_blocks=5 iterations=10"; RAB="generations=150"; INV="steps=300"
  ERASE_EXTRA="eval_samples=4"
  CHECK="--steps 3"
  ERASERS="esd uce ca salun"; ATTACKS="unlearndiffatk p4d ringabell inversion"; TEXTURES="p8 p4 p6"
  PRUNE=""
fi

run_streams() {
# -- 1. gpu check ---------------------------------------------------------------------------------
(OMP_NUM_THREADS=4 timeout $(( $(left) < 300 ? $(left) : 300 )) $PY benchmarks/gpu_check.py $CHECK --json "$WORK/gpu_check.json" \
  >"$WORK/logs/gpu_check.log" 2>&1) &

# -- 2. sine --------------------------------------------------------------------------------------
(timeout "$(left)" $W run --project "$WORK/sine" resources/configs/classifier/minnorm-sine.yaml $SINE \
  >"$WORK/logs/sine.log" 2>&1
 $W show 1 --project "$WORK/sine" --json >"$WORK/sine.json" 2>>"$WORK/logs/sine.log") &

if [ "${SMALL:-0}" != 1 ]; then  # 12 seeds too: the held-out selection's halves get 6 each
  (timeout "$(left)" $W run --project "$WORK/sine12" resources/configs/classifier/minnorm-sine.yaml \
    $SINE seeds=12 >"$WORK/logs/sine12.log" 2>&1
   $W show 1 --project "$WORK/sine12" --json >"$WORK/sine12.json" 2>>"$WORK/logs/sine12.log") &
fi

# -- 2b. the LLM pruning curve of NPO (issue 15 part 4), all 3 seeds ---------------------------------
(timeout "$(left)" $W run --project "$WORK/prune" resources/configs/llm/influence-pruning.yaml \
  'methods=[npo]' device=$DEV $PRUNE >"$WORK/logs/prune.log" 2>&1
 $W show 1 --project "$WORK/prune" --json >"$WORK/prune.json" 2>>"$WORK/logs/prune.log") &

# -- 3. textures model rebuilds -------------------------------------------------------------------
texture() {  # name period fraction
  local name=$1 period=$2 fraction=$3 dir="$WORK/tex-$1"
  timeout "$(left)" $PY -m backends.diffusion.zoo build $BUILD --device $DEV --threads 1 \
    --neighbours dotted,checkered --neighbour-fraction "$fraction" --texture-period "$period" \
    --out "$dir" >"$WORK/logs/tex-$name.log" 2>&1 || return
  timeout "$(left)" $PY -m backends.diffusion.collateral base-rates "$dir" 4 $DEV \
    >"$WORK/tex-$name-base-rates.txt" 2>>"$WORK/logs/tex-$name.log" || return
  [ "$(grep -c 'rendered: True' "$WORK/tex-$name-base-rates.txt")" = 2 ] || [ "${FORCE_COLLATERAL:-0}" = 1 ] || return
  timeout "$(left)" $W run --project "$WORK/coll-$name" resources/configs/diffusion/collateral.yaml \
    model="$dir" device=$DEV $ERASE_EXTRA >"$WORK/logs/coll-$name.log" 2>&1
  $W show 1 --project "$WORK/coll-$name" --json >"$WORK/coll-$name.json" 2>>"$WORK/logs/coll-$name.log"
}
for t in $TEXTURES; do  # name, period (px at 32x32), share of the non-striped images
  case $t in p8) texture p8 8 0.5 & ;; p4) texture p4 4 0.5 & ;; p6) texture p6 6 0.4 & ;; esac
done

# -- 4. erasures, then the prompt attacks ---------------------------------------------------------
attack() {  # project model attack extra...
  local proj=$1 model=$2 atk=$3; shift 3
  timeout "$(left)" $W run --project "$proj" "resources/configs/diffusion/attack-$atk.yaml" \
    model="$model" erase_with= device=$DEV $ATK "$@" >"$WORK/logs/$(basename "$proj").log" 2>&1
}
budget_of() {
  case $1 in unlearndiffatk | p4d) echo "$UDA" ;; ringabell) echo "$RAB" ;; inversion) echo "$INV" ;; esac
}
for atk in $ATTACKS; do  # the positive control
  # shellcheck disable=SC2046
  attack "$WORK/atk-control-$atk" "$SD" $atk prompt_set=benign $(budget_of $atk) &
done
for m in $ERASERS; do
  (
    timeout "$(left)" $W run --project "$WORK/erase-$m" "resources/configs/diffusion/unlearn-$m.yaml" \
      model="$SD" device=$DEV $ERASE_EXTRA >"$WORK/logs/erase-$m.log" 2>&1 || exit
    model=$(ls -d "$WORK/erase-$m"/models/*/ | head -1)
    for atk in $ATTACKS; do
      # shellcheck disable=SC2046
      attack "$WORK/atk-$m-$atk" "$model" $atk prompt_set=concept original_model="$SD" $(budget_of $atk) &
    done
    wait
  ) &
done

wait
}

pack() {
# -- pack -----------------------------------------------------------------------------------------
$PY - "$WORK" >"$WORK/asr-tables.md" 2>&1 <<'EOF_PY' &
import sys
from pathlib import Path

from backends.diffusion.prompt_attacks import asr_table

for p in sorted(Path(sys.argv[1]).glob("atk-*")):
    print(f"## {p.name}")
    try:
        print(asr_table(p))
    except Exception as exc:  # a killed run leaves a project without a finished attack
        print(f"(no table: {exc})")
EOF_PY
for m in $ERASERS; do
  [ -d "$WORK/erase-$m" ] && $W show 1 --project "$WORK/erase-$m" --json >"$WORK/erase-$m.json" 2>/dev/null &
done
wait
cp "$WORK/gpu_check.json" "$OUT/" 2>/dev/null
(cd "$WORK" && tar czf "$OUT/results.tgz" --exclude='*.safetensors' \
  logs ./*.json ./*.md ./*.txt ./tex-*/build_report.json sine sine12 prune coll-* atk-* erase-* 2>/dev/null)
for d in "$WORK"/tex-*/; do  # the models whose textures render (for resources/models)
  name=$(basename "$d")
  if [ "$(grep -c 'rendered: True' "$WORK/$name-base-rates.txt" 2>/dev/null)" = 2 ]; then
    tar czf "$OUT/$name.tgz" -C "$WORK" "$name"
  fi
done
ls -la "$OUT"
echo "gpu_studies: done in $(($(date +%s) - T0)) s"
}

[ "${PACK_ONLY:-0}" = 1 ] || run_streams
pack
