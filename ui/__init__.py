"""The PySide6 desktop shell of Unlearning Workbench.

It reaches jobs only through :mod:`workbench.registry` and :mod:`workbench.jobs`; it never imports
``backends`` or ``torch`` (job entry functions import torch on worker threads when a job runs).
"""
