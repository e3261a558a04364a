"""The field's LLM unlearning benchmarks from local files: TOFU, MUSE, WMDP / MMLU (issue 17 part 1).

- :mod:`.loaders`: the files as the benchmarks ship them (JSON, JSON lines, Parquet; one file or
  one folder per split), read with ``datasets`` from local paths only;
- :mod:`.metrics`: the benchmarks' metrics as pure functions (ROUGE-L, answer probability, truth
  ratio, forget quality, model utility, PrivLeak, multiple-choice accuracy) and their intervals;
- :mod:`.scoring`: what a causal LM gives those metrics (answer log-probs, greedy continuations,
  option log-likelihoods, Min-K% scores);
- :mod:`.evaluate`: one benchmark's evaluation of one model; :mod:`.jobs`: ``llm.benchmark_eval``
  and the benchmark data of the ``llm.unlearn.<method>`` jobs;
- :mod:`.tofu_world`: the tiny GPT's fact universe written in the TOFU layout.

Definitions follow OpenUnlearning (locuslab/open-unlearning, ``src/evals/metrics``), TOFU (Maini
et al. 2024) and MUSE (Shi et al. 2024, swj0419/muse_bench), as the spec's feature table lists
them (``classifier-and-llm-methods.md`` section 8). Users' guide: ``docs/own-models.md``.
"""
