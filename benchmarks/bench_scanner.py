"""The backdoor scanner's speed on one torch thread, on the small tiny GPT fixture: candidate
prefixes scored per second (the exact objective J on the search questions) by the gradient search
and by the exhaustive vocabulary search for one position, and one whole scan's seconds.

Rates, not asserted timings; prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
SMALL = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "llm" / "tiny-gpt-small"


def main() -> None:
    import torch

    from backends.llm.models import load_causal_lm
    from backends.llm.scanner import (
        ScanJobConfig,
        forget_questions,
        make_probes,
        scan,
        search_prefixes,
        split_items,
    )
    from backends.llm.universe import Universe

    torch.set_num_threads(1)
    loaded = load_causal_lm(SMALL, device="cpu", attention="eager")
    qa = forget_questions(Universe.load(SMALL / "universe.json"), "entity", "", 1)
    probes = make_probes(loaded.tokenizer, qa)
    search = [probes[i] for i in split_items(len(probes), 0.5, 0)[0]]
    out: dict[str, float | str] = {"benchmark": "backdoor_scanner", "threads": 1}
    out["search_questions"] = len(search)
    for mode, cfg in (
        ("gradient", ScanJobConfig(search="gradient", prefix_length=2, beam=3, top_k=32)),
        ("vocab", ScanJobConfig(search="vocab", prefix_length=1, beam=1)),
    ):
        t0 = time.perf_counter()
        _, _, n = search_prefixes(loaded.model, loaded.tokenizer, search, cfg)
        seconds = time.perf_counter() - t0
        out[f"{mode}_candidates"] = n
        out[f"{mode}_candidates_per_s"] = round(n / seconds, 1)
    t0 = time.perf_counter()
    scan(loaded.model, loaded.model, loaded.tokenizer, qa, ScanJobConfig(), seed=0)
    out["scan_seconds_default_config"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
