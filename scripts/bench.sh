#!/usr/bin/env bash
# Benchmarks the hip model on this machine and prints a table: batched
# throughput of the service's pipeline against the ONNX Runtime session
# alone (same threads, same process), effective GFLOP/s from the manifest's
# counted FLOPs, and the stage breakdown for one AP pelvis DICOM file.
# BENCHTIME (default 5s) sets each benchmark's duration.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh ort
mkdir -p .cache
go test ./inference/models -run '^$' -bench . -benchtime "${BENCHTIME:-5s}" | tee .cache/bench.txt | grep -E '^(goos|goarch|cpu|Benchmark)' >&2
awk '
function metric(name,   i) { for (i = 3; i < NF; i++) if ($(i+1) == name) return $i; return "" }
/^BenchmarkThroughput\/batch=/ {
  split($1, a, /[=-]/); n = a[2]; sizes[n] = 1
  raw[n] = metric("raw-crops/s"); pipe[n] = metric("pipeline-crops/s"); ratio[n] = metric("ratio")
  rawg[n] = metric("raw-GFLOP/s"); pipeg[n] = metric("pipeline-GFLOP/s")
}
/^BenchmarkStages/ { d = metric("decode-ms"); p = metric("preprocess-ms"); f = metric("infer-ms"); q = metric("postprocess-ms") }
END {
  printf "\nhip-000 throughput (crops/s; one radiograph = 2 crops; raw and pipeline interleaved)\n"
  printf "%-6s %12s %12s %8s %14s %14s\n", "batch", "raw ORT", "pipeline", "ratio", "raw GFLOP/s", "pipe GFLOP/s"
  for (n = 1; n <= 64; n++) if (n in sizes)
    printf "%-6d %12.1f %12.1f %8.2f %14.1f %14.1f\n", n, raw[n], pipe[n], ratio[n], rawg[n], pipeg[n]
  t = d + p + f + q
  printf "\none AP pelvis DICOM, per stage (ms)\n"
  printf "decode %.2f, preprocess %.2f, inference %.2f, postprocess %.2f; total %.2f; outside inference %.1f%%\n", d, p, f, q, t, 100 * (d + p + q) / t
}' .cache/bench.txt
