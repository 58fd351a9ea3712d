#!/usr/bin/env bash
# The x86-64 binary on a CPU older than the one building it. qemu's user-mode
# emulator reports that CPU's CPUID, so every run-time dispatch takes the path
# such a machine would: the few-row and elementwise kernels, the probe's clones
# and oneDNN's JIT (AVX2 for Haswell, its reference code for qemu64).
# Checks, under the emulated CPU:
# - every fixture folder passes against the reference;
# - with `packed`: a packed checkpoint (written natively, in the AVX-512
#   blocked layout that the emulated CPU has no kernel for) is unpacked at
#   load and gives bit for bit the plain checkpoint's codes and audio, offline
#   and streamed. Exits 77 (skipped) after the fixtures where the build
#   machine itself cannot pack (no AVX-512).
# Usage: portable_cpus.sh MOSS_CODEC QEMU CPU FIXTURES_DIR [packed SMALL_CONFIG]
set -euo pipefail
cli="$1" qemu="$2" cpu="$3" fixtures="$4" packed="${5:-}" small_config="${6:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# -cpu MODEL alone makes qemu warn about each system feature TCG lacks.
case "$cpu" in
  Haswell) model="Haswell,-pcid,-x2apic,-tsc-deadline,-hle,-invpcid,-rtm" ;;
  *) model="$cpu" ;;
esac
emulated() { "$qemu" -cpu "$model" "$cli" "$@"; }

dirs=()
for d in "$fixtures"/*/; do [ -f "$d/cases.json" ] && dirs+=("$d"); done
[ "${#dirs[@]}" -gt 0 ] || { echo "no fixture folders under $fixtures" >&2; exit 1; }
emulated check-fixtures "${dirs[@]}"
[ "$packed" = packed ] || { echo "portable on $cpu: fixtures pass"; exit 0; }

# A checkpoint whose transformer matrices (256 x 256 and up) are big enough for
# oneDNN's matmul, hence packable (the widths of wide_small_config() in
# tests/test_util.h); 2.05 s of audio: a partial last frame.
python3 - "$small_config" "$work/wide.json" "$work/a.wav" <<'PY'
import json, math, struct, sys, wave
cfg = json.load(open(sys.argv[1]))
for part in ("encoder_kwargs", "decoder_kwargs"):
    for m in cfg[part]:
        if m["module_type"] == "Transformer":
            m.update(d_model=256, dim_feedforward=1024, num_layers=1)
json.dump(cfg, open(sys.argv[2], "w"))
n = int(2.05 * cfg["sampling_rate"])
w = wave.open(sys.argv[3], "wb")
w.setnchannels(1), w.setsampwidth(2), w.setframerate(cfg["sampling_rate"])
w.writeframes(struct.pack("<%dh" % n, *(int(9000 * math.sin(0.01 * i * (1 + i / n))) for i in range(n))))
PY
"$cli" init-random --config "$work/wide.json" -o "$work/plain" >/dev/null
if ! "$cli" pack --model "$work/plain" -o "$work/packed" >/dev/null 2>"$work/pack.err"; then
  cat "$work/pack.err" >&2
  grep -q "no matrix is packed" "$work/pack.err" || exit 1
  echo "portable on $cpu: fixtures pass; this machine cannot write a packed checkpoint, so that part is skipped"
  exit 77
fi
# The plain encode also shows that the dispatch really is the emulated CPU's:
# oneDNN names the ISA it chose.
verbose="$(ONEDNN_VERBOSE=1 emulated encode "$work/a.wav" -o "$work/plain.npy" --model "$work/plain" -q 2>&1)"
isa="$(grep -o 'isa:.*' <<<"$verbose" || true)"
echo "oneDNN's matmul under $cpu: ${isa:-none seen}"
case "$isa" in
  *AVX-512* | "") echo "oneDNN did not run, or ran AVX-512 code, under $cpu" >&2; exit 1 ;;
esac
emulated encode "$work/a.wav" -o "$work/packed.npy" --model "$work/packed" -q
for m in plain packed; do
  emulated decode "$work/plain.npy" -o "$work/$m.raw" --model "$work/$m" -q
  emulated decode "$work/plain.npy" -o "$work/$m-stream.raw" --stream --chunk-frames 3 --model "$work/$m" -q
done
cmp "$work/plain.npy" "$work/packed.npy"
cmp "$work/plain.raw" "$work/packed.raw"
cmp "$work/plain-stream.raw" "$work/packed-stream.raw"
echo "portable on $cpu: fixtures pass; packed checkpoint unpacked, identical codes and audio"
