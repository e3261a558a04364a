#!/usr/bin/env bash
# Build the one-folder desktop bundle dist/unlearning-workbench/ (its executable: workbench) with
# PyInstaller from packaging/workbench.spec.  About 10 minutes of CPU time (30 on a busy 2-core
# machine).
#
#   packaging/build.sh [PYINSTALLER ARGS...]     e.g. --clean to ignore the analysis cache
#
# PY (default .venv/bin/python) must have the project and pyinstaller installed (`make package`
# does both).  The bundle carries the torch build of that environment, which must be the CPU one
# (torch.version.cuda is None): a CUDA torch adds gigabytes of CUDA libraries.  ALLOW_CUDA_TORCH=1
# builds anyway.  The code bundled is this checkout's (PYTHONPATH), not an editable install's.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PY:-$root/.venv/bin/python}"
cd "$root"
if ! "$py" -c "import PyInstaller" 2>/dev/null; then
  echo "error: PyInstaller is not installed in $py: $py -m pip install pyinstaller==6.22.3" >&2
  exit 2
fi
cuda="$("$py" -c "import torch; print(torch.version.cuda or '')")"
if [ -n "$cuda" ] && [ "${ALLOW_CUDA_TORCH:-0}" != 1 ]; then
  echo "error: $py has a CUDA torch build (CUDA $cuda); the bundle carries the CPU one:" >&2
  echo "  $py -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" >&2
  echo "  (or ALLOW_CUDA_TORCH=1 $0 to bundle it anyway)" >&2
  exit 2
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
"$py" -m PyInstaller --noconfirm --log-level "${LOG_LEVEL:-WARN}" \
  --distpath "$root/dist" --workpath "$root/build/pyinstaller" "$@" packaging/workbench.spec
# beside the executable: the desktop entry, its installer (it points Exec at this bundle) and the
# user documentation
for file in packaging/unlearning-workbench.desktop packaging/install-desktop-entry.sh; do
  install -m "$([ -x "$file" ] && echo 755 || echo 644)" "$file" dist/unlearning-workbench/
done
install -m 644 docs/packaging.md dist/unlearning-workbench/README.md
echo "built $root/dist/unlearning-workbench ($(du -sh dist/unlearning-workbench | cut -f1));" \
  "run dist/unlearning-workbench/workbench --version"
