#!/usr/bin/env bash
# Runs the README's walk-through as a new user would: a fresh clone of this repository,
# then every command of the ```sh blocks between <!-- walkthrough:begin --> and
# <!-- walkthrough:end -->, pasted in order. A command that fails fails the run.
# Conventions, so that paste-able commands can run unattended:
#   - a line with --watch or -f (a command that runs until Ctrl-C) runs for 15 s;
#   - `kill %1` ends the daemon started with `npm start ... &`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
clone="$work/flowforge"

cleanup() {
  local status=$?
  # Whatever is still running from the walk-through, and the containers it made.
  for job in $(jobs -p); do kill -- "-$job" 2>/dev/null || true; done
  wait 2>/dev/null || true
  docker ps -aq --filter label=io.flowforge.instance=walkthrough | xargs -r docker rm -f >/dev/null 2>&1 || true
  if [ "$status" -ne 0 ] && [ -f "$clone/flowforge.log" ]; then
    echo "--- the daemon's log (last 30 lines):"
    tail -30 "$clone/flowforge.log"
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

git clone --quiet "$repo" "$clone"
cd "$clone"
# Job control, as in a terminal: a background job gets its own process group, so the
# README's `kill %1` stops the daemon and everything it runs, not only npm.
set -m
# The walk-through's daemon must not adopt or touch containers of anything else running on
# this engine (CI runs other suites before it): its own installation name.
export MANAGER_INSTANCE=walkthrough

mapfile -t commands < <(awk '
  /<!-- walkthrough:begin -->/ { on = 1; next }
  /<!-- walkthrough:end -->/ { on = 0; next }
  on && /^```sh/ { block = 1; next }
  on && /^```/ { block = 0; next }
  on && block && !/^[[:space:]]*(#|$)/ { print }
' README.md)
[ "${#commands[@]}" -gt 0 ] || { echo "walkthrough: no commands found in README.md" >&2; exit 1; }

for command in "${commands[@]}"; do
  echo "\$ $command"
  if [[ "$command" == *"--watch"* || "$command" =~ [[:space:]]-f([[:space:]]|$) ]]; then
    timeout 15 bash -c "$command" || true
    continue
  fi
  eval "$command"
done
echo "walkthrough: all ${#commands[@]} commands succeeded"
