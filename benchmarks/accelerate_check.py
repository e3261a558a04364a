"""Issue 18 part 4 on a lent GPU machine: one LLM unlearning run through ``accelerate launch``.

Runs NPO (the shared loop of ``backends/llm/methods/common.py``) on the tiny GPT's fact universe
with N processes, N = the machine's GPU count (``--gpus`` to choose):

- N > 1: the user's command, ``workbench run CONFIG --project P --gpus N``, which relaunches
  itself as ``python -m accelerate.commands.launch --multi_gpu --num_processes N ...``
  (:func:`workbench.accelerate_launch.job_command`);
- N = 1: ``python -m accelerate.commands.launch --num_processes 1 --num_machines 1 -m
  workbench.cli run ...`` (the same accelerate entry, one process);
- ``--cpu-processes N`` (any machine, to try the script): N CPU processes over gloo
  (``ACCELERATE_USE_CPU=true`` with ``--multi_gpu``, which is what starts N processes on a CPU).

Then the same config in one plain process (``python -m workbench.cli run``) as the reference,
unless ``--no-reference``. Prints each command, its wall time, the run's headline metrics, the
loop's log lines and the largest relative difference from the reference (DDP averages the ranks'
shard gradients: equal to the one-process step up to float rounding). Reported, never asserted.

``--size gpt2`` (default on a GPU) trains a GPT-2-small-sized random-weight model (12 layers,
d = 768, 12 heads; the tiny GPT's 1,536-token vocabulary, tokenizer and universe, so the job's
recall and MIA evaluation run unchanged; ~86 M parameters); ``--size tiny`` the tiny GPT.

    python benchmarks/accelerate_check.py [--gpus N | --cpu-processes N] [--size tiny|gpt2]
        [--epochs 1] [--batch-size 16] [--out bench-out/accelerate-check] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from workbench.accelerate_launch import CHILD_ENV, LAUNCH_MODULE, job_command  # noqa: E402
from workbench.paths import BUILTIN_MODELS  # noqa: E402

HEADLINE = ("forget_recall", "retain_recall", "paraphrase_recall", "retain_perplexity")
HEADLINE_MIA = ("loss_mia_auc", "min_k_mia_auc")


def gpt2_sized(folder: Path) -> Path:
    """A random-weight GPT-2-small-shaped model beside the tiny GPT's tokenizer and universe."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tiny = BUILTIN_MODELS / "tiny-gpt"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "universe.json"):
        shutil.copy2(tiny / name, folder / name)
    small = json.loads((tiny / "config.json").read_text())
    config = GPT2Config(
        vocab_size=small["vocab_size"],
        n_positions=small["n_positions"],
        n_embd=768,
        n_layer=12,
        n_head=12,
        bos_token_id=small["bos_token_id"],
        eos_token_id=small["eos_token_id"],
        pad_token_id=small["pad_token_id"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,  # no dropout: the ranks and the reference see the same function
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gpu_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run(cmd: list[str], env: dict[str, str]) -> tuple[int, float, str]:
    print("$ " + " ".join(cmd), flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    print(f"  exit {done.returncode} after {seconds:.1f} s", flush=True)
    if done.returncode != 0:
        print(done.stderr[-4000:], file=sys.stderr)
    return done.returncode, seconds, done.stderr


def summary(project: Path) -> dict[str, Any]:
    from workbench.store import Project

    with Project.open(project) as p:
        runs = p.runs()
        if len(runs) != 1:
            return {"runs": len(runs)}
        final = p.final_metrics(runs[0].id)
        logs = [x["message"] for x in p.logs(runs[0].id)]
        return {
            "runs": 1,
            "status": runs[0].status,
            "metrics": final,
            "loop": [m for m in logs if " epoch " in m or "process" in m],
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpus", type=int, help="processes, one per GPU (default: all GPUs)")
    ap.add_argument("--cpu-processes", type=int, help="N CPU processes over gloo instead")
    ap.add_argument("--size", choices=("tiny", "gpt2"), help="model (default gpt2 on a GPU)")
    ap.add_argument("--method", default="npo", help="llm.unlearn.<method> (default npo)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16, help="the global batch")
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "accelerate-check"))
    ap.add_argument("--no-reference", action="store_true", help="skip the one-process run")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)

    gpus = gpu_count()
    cpu = args.cpu_processes is not None
    if not cpu and gpus == 0:
        print("no CUDA GPU here: nothing to check (try --cpu-processes 2)")
        return 0
    n = args.cpu_processes if cpu else (args.gpus or gpus)
    size = args.size or ("tiny" if cpu else "gpt2")
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    model = str(gpt2_sized(out / "gpt2-random")) if size == "gpt2" else "tiny-gpt"
    config = {
        "device": "cpu" if cpu else "auto",
        "hops": 1,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "max_eval_items": 50,
        "privleak": False,  # a random-weight model has no retrained reference
        "n_bootstrap": 200,
    }
    cfg = out / "run.yaml"
    request = {"job": f"llm.unlearn.{args.method}", "seed": 0, "model": model, "config": config}
    cfg.write_text(json.dumps(request, indent=1))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    py = sys.executable
    inner = ["workbench.cli", "run", str(cfg), "--project", str(out / "launched"), "--quiet"]
    if cpu:
        cmd = job_command(inner, n, main_port=free_port(), available=n)
        env_launch = dict(env, ACCELERATE_USE_CPU="true", **{CHILD_ENV: "1"})
    elif n > 1:
        cmd = [py, "-m", *inner, "--gpus", str(n)]
        env_launch = env
    else:
        cmd = [py, "-m", LAUNCH_MODULE, "--num_processes", "1", "--num_machines", "1"]
        cmd += ["-m", *inner]
        env_launch = dict(env, **{CHILD_ENV: "1"})
    print(f"accelerate check: {n} process(es), model {size}, {args.method}, global batch "
          f"{args.batch_size}, {args.epochs} epoch(s)", flush=True)  # fmt: skip
    code, seconds, stderr = run(cmd, env_launch)
    launched = summary(out / "launched") if code == 0 else {}
    result: dict[str, Any] = {
        "processes": n,
        "cpu": cpu,
        "size": size,
        "method": args.method,
        "command": cmd,
        "launch_line": next((x for x in stderr.splitlines() if x.startswith("launching:")), ""),
        "exit": code,
        "seconds": seconds,
        "launched": launched,
    }
    if code == 0 and not args.no_reference:
        ref_inner = [*inner[:3], "--project", str(out / "one"), "--quiet"]
        ref_code, ref_seconds, _ = run([py, "-m", *ref_inner], env)
        result["reference"] = {"exit": ref_code, "seconds": ref_seconds}
        if ref_code == 0:
            one = summary(out / "one")
            result["reference"] |= one
            a, b = launched.get("metrics", {}), one.get("metrics", {})
            diffs = {k: abs(a[k] - b[k]) / max(abs(b[k]), 1e-12) for k in a if k in b}
            worst = max(diffs, key=lambda k: diffs[k]) if diffs else None
            result["max_rel_diff"] = [worst, diffs[worst]] if worst else None
    if result["launch_line"]:
        print(result["launch_line"])
    for key in (*HEADLINE, *HEADLINE_MIA):
        if key in launched.get("metrics", {}):
            ref = result.get("reference", {}).get("metrics", {}).get(key)
            alone = f"   (one process: {ref:.6g})" if ref is not None else ""
            print(f"  {key:20s} {launched['metrics'][key]:.6g}{alone}")
    for line in launched.get("loop", []):
        print(f"  log: {line}")
    if "max_rel_diff" in result:
        print(f"  largest relative difference from one process: {result['max_rel_diff']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
