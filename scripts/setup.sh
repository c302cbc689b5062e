#!/usr/bin/env bash
# Installs what orthotriage's demo and tests need, each part only when it is
# missing, so running it again is cheap. Downloads are cached in .cache/
# (git-ignored). Parts: ort (ONNX Runtime library), redis (Debian's
# redis-server), node (Debian's nodejs + npm when absent), fhirserver (the
# FHIR test server's npm packages), curl (for the demo), dcmtk (reference DICOM
# codecs for tests), gdcm (gdcmconv, JPEG 2000 test files), openjph (OpenJPH's
# ojph_compress/ojph_expand, HTJ2K test files), codecs (the DICOM codec
# libraries the binary links: GDCM's IJG JPEG builds, CharLS, OpenJPEG),
# orthanc (DICOMweb server for tests), web (the SMART app's npm packages and
# its build into web/dist, which the binary embeds), chromium (Debian's
# Chromium for the SMART app's browser tests), torch (PyTorch and onnx
# for `make train-hip`, not installed by default). No argument: all but torch.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_NPM_VERSION=1.24.1   # onnxruntime_go v1.27.0 targets the 1.24 C API
CACHE=.cache
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(codecs ort redis node fhirserver web curl dcmtk gdcm openjph orthanc chromium)

say() { echo "setup: $*" >&2; }

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ ! -f "$CACHE/.apt-updated" ]; then
    say "apt-get update"
    $sudo apt-get update -qq >&2
    mkdir -p "$CACHE" && touch "$CACHE/.apt-updated"
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
}

need_node() {
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
}

for part in "${parts[@]}"; do
  case "$part" in
  ort)
    lib="$CACHE/onnxruntime/libonnxruntime.so"
    if [ ! -e "$lib" ]; then
      need_node
      tgz="$CACHE/npm/onnxruntime-node-$ORT_NPM_VERSION.tgz"
      if [ ! -f "$tgz" ]; then
        say "downloading onnxruntime-node@$ORT_NPM_VERSION from the npm registry (about 85 MB, once)"
        mkdir -p "$CACHE/npm"
        npm pack --silent --pack-destination "$CACHE/npm" "onnxruntime-node@$ORT_NPM_VERSION" >/dev/null
      fi
      mkdir -p "$CACHE/onnxruntime"
      tar -xzf "$tgz" -C "$CACHE/onnxruntime" --strip-components=5 \
        package/bin/napi-v6/linux/x64/libonnxruntime.so.1
      ln -sf libonnxruntime.so.1 "$lib"
      say "ONNX Runtime library at $lib"
    fi
    ;;
  redis)
    command -v redis-server >/dev/null || apt_install redis-server
    ;;
  curl)
    command -v curl >/dev/null || apt_install curl ca-certificates
    ;;
  dcmtk)
    command -v dcmcjpeg >/dev/null || apt_install dcmtk
    ;;
  gdcm)
    # GDCM's gdcmconv writes the JPEG 2000 test files.
    command -v gdcmconv >/dev/null || apt_install libgdcm-tools
    ;;
  codecs)
    # Build and run time of the orthotriage binary (imaging/codec): headers
    # and libraries of libgdcm3.0 (libgdcmjpeg8/12/16), libcharls2, libopenjp2-7.
    [ -f /usr/include/gdcm-3.0/gdcmjpeg/8/jpeglib.h ] && [ -f /usr/include/charls/charls.h ] \
      && [ -f /usr/include/openjpeg-2.5/openjpeg.h ] \
      || apt_install libgdcm-dev libcharls-dev libopenjp2-7-dev
    ;;
  openjph)
    # OpenJPH's ojph_compress writes the HTJ2K test files, ojph_expand is their reference.
    command -v ojph_compress >/dev/null || apt_install openjph-tools
    ;;
  orthanc)
    # Debian's Orthanc with its DICOMweb plugin.
    # The tests start their own instances; the package's service is not used.
    [ -x /usr/sbin/Orthanc ] && [ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] \
      || apt_install orthanc orthanc-dicomweb
    ;;
  node)
    need_node
    ;;
  chromium)
    # Debian's Chromium, for the SMART app's browser tests (chromedp).
    command -v chromium >/dev/null || apt_install chromium
    ;;
  torch)
    # Training only (make train-hip, train-spine): Debian's PyTorch and onnx for /usr/bin/python3.
    /usr/bin/python3 -c "import torch, onnx, numpy" 2>/dev/null || apt_install python3-torch python3-onnx python3-numpy
    ;;
  sklearn)
    # Training only (make train-spine: LASSO, gradient-boosted trees, nomogram).
    /usr/bin/python3 -c "import sklearn" 2>/dev/null || apt_install python3-sklearn
    ;;
  fhirserver)
    dir=testdata/fhirserver
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
      need_node
      say "installing the FHIR test server's npm packages"
      npm ci --prefix "$dir" --silent --no-audit --no-fund --cache "$PWD/$CACHE/npm-cache" >&2
      touch "$dir/node_modules"
    fi
    ;;
  web)
    # The SMART app (web/src) bundled into web/dist, which the Go package
    # web embeds. npm ci runs when node_modules was not installed from the
    # current lock; the build when a source is newer than dist or dist is
    # missing.
    dir=web
    lock=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    stamp="$dir/node_modules/.orthotriage-lock.sha256"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$lock" ]; then
      need_node
      say "installing the SMART app's npm packages"
      npm ci --prefix "$dir" --silent --no-audit --no-fund --ignore-scripts --cache "$PWD/$CACHE/npm-cache" >&2
      echo "$lock" >"$stamp"
    fi
    if [ ! -f "$dir/dist/viewer.js" ] \
      || [ -n "$(find "$dir/src" "$dir/build.mjs" "$stamp" -newer "$dir/dist/viewer.js" -print -quit)" ]; then
      need_node
      say "building the SMART app into $dir/dist"
      (cd "$dir" && node build.mjs)
    fi
    ;;
  *)
    say "unknown part $part (want codecs, ort, redis, node, fhirserver, web, curl, dcmtk, gdcm, openjph, orthanc, chromium, torch or sklearn)"; exit 2
    ;;
  esac
done
