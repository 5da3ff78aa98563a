#!/usr/bin/env bash
# Open the waves of the last `fusemax sim ... --waves DIR` run (recorded in build/waves/last)
# in GTKWave with its generated layout, or in Surfer; prints the command when neither is installed.
#   scripts/waves.sh          the last run
#   scripts/waves.sh DIR      another --waves directory
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${FUSEMAX_BUILD_DIR:-$root/build}"
dir="${1:-}"
if [[ -z "$dir" ]]; then
  if [[ ! -f "$build/waves/last" ]]; then
    echo "no waves run recorded in $build/waves/last; run: fusemax sim ... --waves DIR" >&2
    exit 1
  fi
  dir="$(cat "$build/waves/last")"
fi
dump=""
for f in dump.fst dump.vcd; do
  if [[ -f "$dir/$f" ]]; then dump="$f"; break; fi
done
if [[ -z "$dump" ]]; then
  echo "no dump.fst or dump.vcd in $dir" >&2
  exit 1
fi
# the layout and its filter files use paths relative to DIR: run the viewer there
if command -v gtkwave >/dev/null 2>&1; then
  cd "$dir" && exec gtkwave "$dump" waves.gtkw
elif command -v surfer >/dev/null 2>&1; then
  echo "gtkwave not found; opening $dir/$dump in Surfer (it does not read the .gtkw layout)" >&2
  cd "$dir" && exec surfer "$dump"
else
  echo "gtkwave is not installed (Debian: apt-get install gtkwave; or Surfer). To open the waves:"
  echo "  cd $(printf '%q' "$dir") && gtkwave $dump waves.gtkw"
fi
