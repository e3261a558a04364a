"""Unlearning Workbench: the headless core.

Project store, run records, job engine, registry, typed configs, artifacts and the CLI.  Importing
this package never imports Qt or torch.
"""

__version__ = "0.1.0"
