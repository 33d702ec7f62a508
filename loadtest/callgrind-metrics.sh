#!/usr/bin/env bash
# User-space instructions per request of one Switchyard shard, with metrics
# on and off, counted by callgrind. Each run proxies N1 and then N2
# keep-alive requests through a fresh proxy and upstream; the difference
# cancels start-up and shutdown: (I(N2) - I(N1)) / (N2 - N1). Runs
# alternate between the configurations, ROUNDS times, and the median of
# each is reported. Proxy, upstream and client share CPU 0 (CPU=...): across
# CPUs, whether a read the proxy makes right after writing finds the answer
# or parks for it is a race, and single runs varied by 5-10%.
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${N1:-2000}
N2=${N2:-6000}
ROUNDS=${ROUNDS:-3}
CPU=${CPU:-0}
cargo build -q --release --bin switchyard --example keepalive_client
work=$(mktemp -d)
trap 'rm -rf "$work"; kill $(jobs -p) 2>/dev/null || true' EXIT

count() { # metrics(true|false) requests -> instructions
  rm -f "$work/up.port"
  taskset -c "$CPU" python3 loadtest/upstream.py "$work/up.port" &
  local upid=$!
  while [ ! -s "$work/up.port" ]; do sleep 0.05; done
  local up port
  up=$(cat "$work/up.port")
  port=$((20000 + RANDOM % 20000))
  cat > "$work/cfg.yaml" <<YAML
runtime: {shards: 1, driver: epoll}
telemetry: {metrics: $1}
routers:
- protocol: http
  label: bench
  dtab: /svc => /\$/inet/127.0.0.1/$up;
  servers: [{port: $port}]
YAML
  rm -f "$work/vg.log"
  taskset -c "$CPU" valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
    target/release/switchyard run --config "$work/cfg.yaml" 2>"$work/vg.log" &
  local pid=$!
  until grep -q "listening on" "$work/vg.log" 2>/dev/null; do sleep 0.2; done
  taskset -c "$CPU" target/release/examples/keepalive_client "127.0.0.1:$port" "$2"
  kill -TERM $pid
  wait $pid || true
  kill $upid 2>/dev/null || true
  wait $upid 2>/dev/null || true
  grep -o "Collected : [0-9]*" "$work/vg.log" | grep -o "[0-9]*"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: > "$work/on"; : > "$work/off"
for _ in $(seq "$ROUNDS"); do
  for m in true false; do
    a=$(count $m "$N1"); b=$(count $m "$N2")
    echo $(( (b - a) / (N2 - N1) )) >> "$work/$([ $m = true ] && echo on || echo off)"
  done
done
on=$(median < "$work/on"); off=$(median < "$work/off")
echo "instructions per request: metrics on $on, off $off (runs: on $(tr '\n' ' ' < "$work/on")/ off $(tr '\n' ' ' < "$work/off"))"
awk -v on="$on" -v off="$off" 'BEGIN { printf "metrics cost: %.1f%% of the per-request instructions\n", (on - off) * 100 / off }'
