#!/usr/bin/env bash
# Install (or --uninstall) the desktop entry and icon of Unlearning Workbench for the current user:
# $XDG_DATA_HOME (default ~/.local/share)/applications/unlearning-workbench.desktop and
# .../icons/hicolor/scalable/apps/unlearning-workbench.svg.
#
#   install-desktop-entry.sh [--exec PATH] [--uninstall]
#
# The entry's command is `EXEC gui %f`: the menu starts it on the most recent project, and a
# project folder (or its workbench.sqlite) handed to it opens that project.  EXEC is, first found:
# --exec PATH; the `workbench` beside this script (this copy sits in the bundle's folder); the
# checkout's .venv/bin/workbench (after `make install`); else `workbench` on PATH.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
entry="$data/applications/unlearning-workbench.desktop"
icon="$data/icons/hicolor/scalable/apps/unlearning-workbench.svg"
exe=""
uninstall=0
while [ $# -gt 0 ]; do
  case "$1" in
    --exec) exe="${2:?--exec needs a path}"; shift 2 ;;
    --uninstall) uninstall=1; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 (see $0 --help)" >&2; exit 2 ;;
  esac
done

refresh() {
  if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database -q "$data/applications" || true
  fi
}

if [ "$uninstall" = 1 ]; then
  rm -f "$entry" "$icon"
  refresh
  echo "removed $entry and $icon"
  exit 0
fi

if [ -z "$exe" ]; then
  if [ -x "$here/workbench" ] && [ ! -d "$here/workbench" ]; then
    exe="$here/workbench"
  elif [ -x "$here/../.venv/bin/workbench" ]; then
    exe="$(cd "$here/../.venv/bin" && pwd)/workbench"
  else
    exe="workbench"
  fi
fi
if [ "$exe" != workbench ]; then
  case "$exe" in /*) ;; *) exe="$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")" ;; esac
  [ -x "$exe" ] || { echo "error: $exe is not an executable" >&2; exit 2; }
fi
case "$exe" in
  *[\"\`\$\\%]* | *$'\n'*)
    echo "error: the path $exe holds a character a desktop entry cannot quote simply" \
      "(\" \` \$ \\ %); move it elsewhere" >&2
    exit 2 ;;
esac
# Exec= quotes an argument with spaces or other reserved characters in double quotes
case "$exe" in
  *[!A-Za-z0-9_./+-]*) exec_arg="\"$exe\"" ;;
  *) exec_arg="$exe" ;;
esac

for source in "$here/unlearning-workbench.desktop"; do
  [ -f "$source" ] || { echo "error: $source is missing" >&2; exit 2; }
done
svg=""
for candidate in "$here/../resources/icons/workbench.svg" "$here/_internal/resources/icons/workbench.svg"; do
  if [ -f "$candidate" ]; then svg="$candidate"; break; fi
done
[ -n "$svg" ] || { echo "error: the icon workbench.svg was not found near $here" >&2; exit 2; }

tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    Exec=*) printf 'Exec=%s gui %%f\n' "$exec_arg" ;;
    TryExec=*) ;;
    *) printf '%s\n' "$line" ;;
  esac
  # TryExec hides the entry once the executable is gone (a moved or deleted bundle)
  case "$line" in Exec=*) [ "$exe" = workbench ] || printf 'TryExec=%s\n' "$exe" ;; esac
done < "$here/unlearning-workbench.desktop" > "$tmp"
install -Dm644 "$tmp" "$entry"
install -Dm644 "$svg" "$icon"
refresh
echo "installed $entry (Exec: $exe gui %f) and its icon into $data"
echo "it shows in the applications menu after update-desktop-database, or after logging out and in"
