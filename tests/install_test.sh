#!/usr/bin/env bash
# Installs a build into a fresh prefix and uses what landed there, as a user
# would: the CLI, a C++ program compiled against the headers and library via
# pkg-config, and the Python module.
# Usage: install_test.sh BUILD_DIR FIXTURE_DIR [PYTHON PYTHON_SUBDIR]
set -euo pipefail
build="$1" fixture="$2" python="${3:-}" python_dir="${4:-}"
prefix="$(mktemp -d)"
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null

"$prefix/bin/moss-codec" info --model "$fixture" >/dev/null

cat > "$prefix/example.cpp" <<'CPP'
#include <moss_codec/codec.h>
#include <cstdio>
int main(int argc, char** argv) {
  auto codec = moss::Codec::load(argv[1]);
  moss::Tensor audio({1, 1, 40}, std::vector<float>(40, 0.25f));
  auto enc = codec->encode(audio);
  auto dec = codec->decode(enc.codes);
  std::printf("%lld frames -> %lld samples\n", (long long)enc.code_lengths[0], (long long)dec.audio_lengths[0]);
  return dec.audio_lengths[0] == enc.code_lengths[0] * codec->config().downsample_rate ? 0 : 1;
}
CPP
pcdir="$(dirname "$(find "$prefix" -name mosscodec.pc)")"
# shellcheck disable=SC2046
g++ -std=c++20 "$prefix/example.cpp" -o "$prefix/example" $(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs mosscodec)
"$prefix/example" "$fixture"

if [ -n "$python" ]; then
  PYTHONPATH="$prefix/$python_dir" PYTHONDONTWRITEBYTECODE=1 "$python" -c "
import sys, moss_codec
assert moss_codec.__file__.startswith('$prefix'), moss_codec.__file__
codec = moss_codec.Codec.load(sys.argv[1])
print(codec)
" "$fixture"
fi
echo "install into a fresh prefix: ok"
