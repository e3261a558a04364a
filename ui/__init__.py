"""The PySide6 desktop shell of Unlearning Workbench.

It reaches jobs only through :mod:`workbench.registry` and :mod:`workbench.jobs`; it never imports
``backends`` or ``torch`` (job entry functions import torch on worker threads when a job runs).
Importing the package applies :func:`ui._pyside_fix.guard_bool_refcount` (a PySide6 emit bug).
"""

from ui._pyside_fix import guard_bool_refcount

guard_bool_refcount()
