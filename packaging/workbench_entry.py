"""The bundle's entry point (PyInstaller runs this file as ``__main__``): the ``workbench`` CLI.

``multiprocessing.freeze_support()`` comes first: the GUI runs heavy jobs in a *spawn* child
process (``workbench.worker``), which in a frozen app is this same executable started with
multiprocessing's arguments; freeze_support runs the child there and exits.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from workbench.cli import main

    sys.exit(main())
