"""Model families: the science.  One sub-package per family plus ``common`` for what they share.

Nothing here imports Qt or ``ui``.  Each family exposes a light ``plugin`` module (no torch at import)
that registers its jobs, model kinds and datasets with :mod:`workbench.registry`.
"""
