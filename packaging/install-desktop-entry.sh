#!/usr/bin/env bash
# Install the desktop entry and icon for the current user (after `make install`).
# The entry runs `workbench`, so put .venv/bin on PATH or edit Exec= to the full path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
install -Dm644 "$here/unlearning-workbench.desktop" "$data/applications/unlearning-workbench.desktop"
install -Dm644 "$here/../resources/icons/workbench.svg" "$data/icons/hicolor/scalable/apps/unlearning-workbench.svg"
echo "installed into $data (log out and in, or run update-desktop-database, to see it)"
