#!/usr/bin/env bash
# How proxied keep-alive throughput scales with the shard count.
#
# Needs a machine with at least 4 + UPSTREAMS + LOADGEN_CPUS cores (a
# 16-core one by default). Cores are split so no role shares one:
#   proxy shards  cpus 0..S-1 (S from SHARDS, at most 4)
#   upstreams     the next UPSTREAMS cpus (one `switchyard demo-app world`
#                 each; the dtab spreads requests over all of them)
#   load          the rest (`switchyard-load`, closed loop)
# For each shard count it measures the upstreams directly (spread over
# them the same way) and through the proxy, and prints requests per second
# and the ratio to one shard. Uses prebuilt binaries (BIN, LOAD), so it can
# run where nothing can be built. Every process it starts is stopped on
# exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/switchyard}
LOAD=${LOAD:-target/release/switchyard-load}
SHARDS=${SHARDS:-"1 2 4"}
UPSTREAMS=${UPSTREAMS:-4}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-5}
cpus=$(nproc)
up_first=${PROXY_CPUS:-4}
load_first=$((up_first + UPSTREAMS))
if [ -z "${LOAD_CPUS:-}" ] && [ "$cpus" -le "$load_first" ]; then
  echo "needs more than $load_first cpus (have $cpus)" >&2
  exit 2
fi
# LOAD_CPUS overrides (a smoke test on a small machine; figures are then
# meaningless).
load_cpus=${LOAD_CPUS:-"$load_first-$((cpus - 1))"}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2
  exit 1
}

rps() { # target -> requests per second
  taskset -c "$load_cpus" "$LOAD" "$1" -c "$CONNECTIONS" -d "$DURATION" --warmup 1 --host bench --json |
    python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["errors"]==0 and d["non_2xx"]==0, d; print(round(d["rps"]))'
}

union=""
for i in $(seq 0 $((UPSTREAMS - 1))); do
  port=$((9100 + i))
  taskset -c $((up_first + i)) "$BIN" demo-app world --listen "127.0.0.1:$port" >/dev/null 2>&1 &
  pids+=($!)
  wait_port "$port"
  union="$union${union:+ & }/\$/inet/127.0.0.1/$port"
done

echo "cpus $cpus, upstreams $UPSTREAMS, connections $CONNECTIONS, ${DURATION}s a run"
direct=$(rps 127.0.0.1:9100)
echo "direct to one upstream: $direct rps"
base=""
for s in $SHARDS; do
  cat >"$work/cfg.yaml" <<YAML
runtime: {shards: $s}
routers:
- protocol: http
  label: bench
  dtab: /svc => $union;
  servers: [{port: 4140}]
YAML
  taskset -c "0-$((s - 1))" "$BIN" run --config "$work/cfg.yaml" 2>"$work/log" &
  pid=$!
  pids+=($pid)
  wait_port 4140
  driver=$(grep -o 'driver=[a-z_]*' "$work/log" | head -1 || true)
  r=$(rps 127.0.0.1:4140)
  base=${base:-$r}
  python3 -c "print(f'shards $s: $r rps, {$r/$base:.2f}x one shard ($driver)')"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done
