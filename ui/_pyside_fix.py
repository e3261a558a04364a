"""Work around a PySide6 reference-count bug that crashes long sessions on CPython 3.11.

In PySide6 6.12 ``SignalInstance.emit()`` returns ``True`` without taking a reference to it, so
every emit (ours and pyqtgraph's) lowers ``True``'s reference count by one.  On CPython < 3.12,
where ``True`` is not immortal, a long job's few hundred thousand emits drive it to zero and the
interpreter aborts ("bool_dealloc: deallocating True").  :func:`guard_bool_refcount` detects the
leak with one probe emit and, only if it is there, gives ``True`` a reserve of references large
enough never to run out.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["guard_bool_refcount", "emit_leaks_true"]

_RESERVE = 1 << 40
_guarded = False


def emit_leaks_true() -> bool:
    """Whether one ``emit()`` lowers ``True``'s reference count (the PySide6 bug)."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(4):
        probe.ping.emit()
    return sys.getrefcount(True) < before - 1


def guard_bool_refcount() -> bool:
    """Add a reserve of references to ``True`` when emits leak them; returns True if it did."""
    global _guarded
    if _guarded or sys.version_info >= (3, 12) or not emit_leaks_true():
        return False
    refcnt = ctypes.c_ssize_t.from_address(id(True))  # ob_refcnt is PyObject's first field
    refcnt.value += _RESERVE
    _guarded = True
    return True
