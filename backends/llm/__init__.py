"""Causal language models: a synthetic fact universe, the built-in tiny GPT, unlearning (GA,
GradDiff, NPO, SimNPO, RMU), evaluation and MIAs, SKeB probing and attention-sink maps.

Nothing here imports Qt or ``ui``; heavy libraries are imported inside the functions that need
them where a module must stay light (configs, the plugin).
"""
