#!/usr/bin/env bash
# Tier-0 regression gate: user-space instructions per request of this
# commit against its parent, both measured here, in this run, under
# callgrind (so a different CPU model cannot move the comparison). Fails
# when this commit needs more than LIMIT percent (default 2) more.
#
# What is counted: examples/request_cost.rs, the CPU work of one routed
# request (parse, route with an l5d-dtab override through the comparison
# config, both head rewrites) without the IO. That count repeats exactly;
# the whole proxy under callgrind varies by a few percent between runs
# (its event loop retries a read that finds no data yet a different number
# of times), too much for a 2% gate. `loadtest/compare.py` reports the
# whole proxy's figure.
#
# Also prints the figure beside the committed baseline
# (loadtest/tier0-baseline.txt), so slow creep across commits shows.
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${N1:-5000}
N2=${N2:-15000}
LIMIT=${LIMIT:-2}
work=$(mktemp -d)
cleanup() {
  git worktree remove --force "$work/parent" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

count() { # binary [env...] -> instructions per request
  local bin=$1; shift
  local a b
  a=$(env "$@" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$N1" 2>&1 >/dev/null | grep -o "Collected : [0-9]*" | grep -o "[0-9]*")
  b=$(env "$@" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$N2" 2>&1 >/dev/null | grep -o "Collected : [0-9]*" | grep -o "[0-9]*")
  echo $(( (b - a) / (N2 - N1) ))
}

cargo build -q --release --example request_cost
cp target/release/examples/request_cost "$work/current"
cur=$(count "$work/current")
cur_plain=$(count "$work/current" OVERRIDE=0)
base=$(awk '$1 == "request_cost" {print $2}' loadtest/tier0-baseline.txt 2>/dev/null || true)
echo "tier 0: $cur instructions per routed request with an l5d-dtab override ($cur_plain without: the override costs $(awk -v a="$cur" -v b="$cur_plain" 'BEGIN {printf "%.1f", (a - b) * 100 / b}')%)"
if [ -n "$base" ]; then
  echo "tier 0: committed baseline $base ($(awk -v a="$cur" -v b="$base" 'BEGIN {printf "%+.1f", (a - b) * 100 / b}')%)"
fi

parent=$(git rev-parse -q --verify 'HEAD~1^{commit}' 2>/dev/null || true)
if [ -z "$parent" ]; then
  echo "tier 0: no parent commit here (a shallow clone?); nothing to compare against"
  exit 0
fi
git worktree add -q --detach "$work/parent" "$parent"
if [ ! -f "$work/parent/examples/request_cost.rs" ]; then
  echo "tier 0: the parent ($(git rev-parse --short "$parent")) has no request_cost; nothing to compare against"
  exit 0
fi
# A target directory of its own. Cargo names a workspace member's
# artifacts by its path within the workspace, so the parent built into
# `target` would overwrite this checkout's library under the same name,
# newer than these sources: later builds here would call it fresh and
# link the parent's code (it did: a comparison run after the gate measured
# the parent's proxy). The directory stays between runs, so only the first
# run here builds the dependencies again.
cargo build -q --release --example request_cost --manifest-path "$work/parent/Cargo.toml" --target-dir target/tier0-parent
cp target/tier0-parent/release/examples/request_cost "$work/parent-bin"
par=$(count "$work/parent-bin")
echo "tier 0: parent $(git rev-parse --short "$parent"): $par; this commit: $cur ($(awk -v a="$cur" -v b="$par" 'BEGIN {printf "%+.2f", (a - b) * 100 / b}')%)"
if awk -v a="$cur" -v b="$par" -v l="$LIMIT" 'BEGIN {exit !(a > b * (1 + l / 100))}'; then
  echo "tier 0: FAIL: more than $LIMIT% more instructions per request than the parent" >&2
  exit 1
fi
echo "tier 0: ok (limit +$LIMIT%)"
