#!/usr/bin/env bash
# Profiles load-test cells one at a time: the contender alone, healthy scenario, saturation (32 workers).
#   cpu:      dotnet-trace, CPU sampling (SampleProfiler), attached for $TRACE_S s to the measured phase
#   alloc:    dotnet-trace, GC AllocationTick with stacks, same, in a separate cell (its stack walks would
#             otherwise show in the CPU samples)
#   counters: dotnet-counters (the System.Runtime EventCounters: GC, allocation rate, thread pool, contention, timers) attached for $TRACE_S s to
#             the measured phase of a separate cell; this cell is untraced, so its harness line gives the CPU and
#             allocation per request to scale by
#   perf:     perf record -g (on-CPU samples, 999 Hz, kernel included) for $TRACE_S s, the cell run with
#             DOTNET_PerfMapEnabled=1 (JIT symbols), DOTNET_EnableWriteXorExecute=0 (else perf cannot map the
#             code) and DOTNET_ReadyToRun=0 (framework code JIT-compiled, so it has symbols too); writes the
#             text of perf script
# Usage: benchmarks/MeshClient.TraceAnalysis/profile-cells.sh OUTDIR "mesh raw factory" [cpu|alloc|counters|perf|all]
# Needs: dotnet build -c Release benchmarks/MeshClient.LoadTest; dotnet tool install -g dotnet-trace dotnet-counters.
set -euo pipefail
OUT=${1:?out dir}; CONTENDERS=${2:-"mesh raw factory"}; MODE=${3:-both}
TRACE_S=${TRACE_S:-15}
export PATH="$PATH:$HOME/.dotnet/tools"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DLL="$ROOT/benchmarks/MeshClient.LoadTest/bin/Release/net10.0/MeshClient.LoadTest.dll"
mkdir -p "$OUT"
# CPU: the sample profiler (every thread's stack, about every ms); Loader (0x8) + JIT (0x10) name the methods.
CPU_PROVIDERS="Microsoft-DotNETCore-SampleProfiler,Microsoft-Windows-DotNETRuntime:0x18:4"
# Allocations: .NET 10 AllocationSampled (keyword 0x80000000000, a Poisson process with a mean of 100 KB between
# samples: unbiased per type, unlike AllocationTick) with stacks; Loader (0x8) + JIT (0x10) name the methods.
ALLOC_PROVIDERS="Microsoft-Windows-DotNETRuntime:0x80000000018:4"

one() { # contender tool
  local c=$1 tool=$2 log="$OUT/$1-$2.log"
  local env=()
  [ "$tool" = perf ] && env=(DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 DOTNET_ReadyToRun=0)
  # The cell measures a bit longer than the tool listens, so the tool's window lies inside the measured phase.
  env "${env[@]}" timeout 120 dotnet "$DLL" --scenario healthy --contenders "$c" --shapes sat --duration $((TRACE_S + 3))s \
    --warmup 3s --process-warmup 2s --announce --no-files > "$log" 2>&1 &
  local run=$!
  local pid=""
  for _ in $(seq 1 600); do
    pid=$(grep -o 'measuring .* (pid [0-9]*)' "$log" 2>/dev/null | grep -o '[0-9]*)$' | tr -d ')' || true)
    [ -n "$pid" ] && break
    sleep 0.1
  done
  [ -n "$pid" ] || { echo "no measuring line for $c"; kill "$run"; return 1; }
  if [ "$tool" = cpu ] || [ "$tool" = alloc ]; then
    local providers=$CPU_PROVIDERS; [ "$tool" = alloc ] && providers=$ALLOC_PROVIDERS
    timeout 90 dotnet-trace collect -p "$pid" --providers "$providers" --duration "00:00:00:$(printf %02d "$TRACE_S")" \
      -o "$OUT/$c-$tool.nettrace" > "$OUT/$c-$tool-dotnet-trace.out" 2>&1 || echo "dotnet-trace failed for $c"
  elif [ "$tool" = perf ]; then
    timeout 60 perf record -F 999 -g -p "$pid" -o "$OUT/$c.perf.data" -- sleep "$TRACE_S" > "$OUT/$c-perf-record.out" 2>&1 || echo "perf record failed for $c"
  else
    timeout 90 dotnet-counters collect -p "$pid" --counters 'EventCounters\System.Runtime' --refresh-interval 1 --format csv \
      -o "$OUT/$c-counters.csv" --duration "00:00:00:$(printf %02d "$TRACE_S")" > "$OUT/$c-dotnet-counters.out" 2>&1 || echo "dotnet-counters failed for $c"
  fi
  wait "$run" || true
  if [ "$tool" = perf ] && [ -f "$OUT/$c.perf.data" ]; then
    perf script -i "$OUT/$c.perf.data" > "$OUT/$c.perf.txt" 2> /dev/null || echo "perf script failed for $c"
  fi
  echo "$c $tool: $(grep -E "^  $c " "$log" || echo 'no result line')"
}

for c in $CONTENDERS; do
  case $MODE in
    cpu|alloc|counters|perf) one "$c" "$MODE" ;;
    *) one "$c" counters; one "$c" cpu; one "$c" alloc; one "$c" perf ;;
  esac
done
