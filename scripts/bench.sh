#!/usr/bin/env bash
# Benchmarks the models on this machine and prints tables: batched
# throughput of the service's pipeline against the ONNX Runtime session
# alone (same threads, same process), effective GFLOP/s from the manifest's
# counted FLOPs, the stage breakdown for one AP pelvis DICOM file (fixed
# crops; and as the service reads it, at the phantom's size and at a
# detector's), and ONNX Runtime's thread spinning on and off. Each for
# hip-000 and, beside it, a full-size ResNet-50 at 224 px with random
# weights (written to .cache/bench/resnet50 by scripts/resnet50-bench.py
# with Debian's PyTorch; not committed), so that the pipeline's share shows
# for the model size a hospital would bring. BENCHTIME (default 5s) sets
# each benchmark's duration.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh ort torch
mkdir -p .cache
resnet=$PWD/.cache/bench/resnet50
# (a folder written before the localiser was copied beside it is written again)
[ -f "$resnet/manifest.json" ] && [ -f "$resnet/localiser.onnx" ] || /usr/bin/python3 scripts/resnet50-bench.py "$resnet"
ORTHOTRIAGE_BENCH_MODEL_DIR=$resnet go test ./inference/models -run '^$' -bench . -benchtime "${BENCHTIME:-5s}" -timeout 30m |
  tee .cache/bench.txt | grep -E '^(goos|goarch|cpu|Benchmark)' >&2
awk '
function metric(name,   i) { for (i = 3; i < NF; i++) if ($(i+1) == name) return $i; return "" }
/^BenchmarkThroughput\/model=/ {
  m = $1; sub(/^BenchmarkThroughput\/model=/, "", m); sub(/\/batch=.*/, "", m)
  n = $1; sub(/.*\/batch=/, "", n); sub(/-[0-9]+$/, "", n); key = m " " n; rows[++nr] = key
  raw[key] = metric("raw-crops/s"); pipe[key] = metric("pipeline-crops/s"); ratio[key] = metric("ratio")
  rawg[key] = metric("raw-GFLOP/s"); pipeg[key] = metric("pipeline-GFLOP/s")
}
/^BenchmarkStages\/model=/ {
  split($1, a, /[=]/); m = a[2]; sub(/-[0-9]+$/, "", m); stages[++ns] = m
  d[m] = metric("decode-ms"); p[m] = metric("preprocess-ms"); f[m] = metric("infer-ms"); q[m] = metric("postprocess-ms")
}
/^BenchmarkServiceStages\/model=/ {
  s = $1; sub(/^BenchmarkServiceStages\/model=/, "", s); sub(/-[0-9]+$/, "", s); sub(/\//, " ", s); sizes[++nsz] = s
  sd[s] = metric("decode-ms"); spp[s] = metric("pre+post-ms"); snet[s] = metric("networks-ms"); snon[s] = metric("non-infer-%")
}
/^BenchmarkSpinning\// {
  split($1, a, /[=]/); s = a[2]; sub(/-[0-9]+$/, "", s); spins[++nsp] = s
  run[s] = metric("run-ms"); cpu[s] = metric("cpu-ms/run")
}
END {
  printf "\nthroughput (crops/s; one radiograph = 2 crops; raw and pipeline interleaved)\n"
  printf "%-16s %-6s %12s %12s %8s %14s %14s\n", "model", "batch", "raw ORT", "pipeline", "ratio", "raw GFLOP/s", "pipe GFLOP/s"
  for (i = 1; i <= nr; i++) { k = rows[i]; split(k, kk, " ")
    printf "%-16s %-6d %12.1f %12.1f %8.2f %14.1f %14.1f\n", kk[1], kk[2], raw[k], pipe[k], ratio[k], rawg[k], pipeg[k] }
  printf "\none AP pelvis DICOM, per stage (ms)\n"
  printf "%-16s %8s %11s %10s %12s %8s %18s\n", "model", "decode", "preprocess", "inference", "postprocess", "total", "outside inference"
  for (i = 1; i <= ns; i++) { m = stages[i]; t = d[m] + p[m] + f[m] + q[m]
    printf "%-16s %8.2f %11.2f %10.2f %12.2f %8.2f %17.1f%%\n", m, d[m], p[m], f[m], q[m], t, 100 * (d[m] + p[m] + q[m]) / t }
  printf "\none AP pelvis as the service reads it (gate, hip-000 localiser, upright crops, classifier, thumbnails; ms)\n"
  printf "%-16s %-10s %8s %20s %10s %18s\n", "model", "image", "decode", "rest outside nets", "networks", "outside inference"
  for (i = 1; i <= nsz; i++) { s = sizes[i]; split(s, ss, " ")
    printf "%-16s %-10s %8.2f %20.2f %10.2f %17.1f%%\n", ss[1], ss[2], sd[s], spp[s], snet[s], snon[s] }
  printf "\nhip-000, one radiograph at a time with 5 ms idle between runs\n"
  printf "%-10s %10s %14s\n", "spinning", "run ms", "CPU ms / run"
  for (i = 1; i <= nsp; i++) { s = spins[i]; printf "%-10s %10.2f %14.2f\n", s, run[s], cpu[s] }
}' .cache/bench.txt
