#pragma once
// What `moss-codec bench` and bench/moss_step_parts share: how they fill a
// stream before timing it, and how they summarize timings.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "moss_codec/config.h"

namespace moss::cli {

// The upper median (the middle element; of two, the later): 0 for none.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Frames of a first push that fill every attention window: the longest
// context of any module, at least one frame. Pushes timed after it are in
// the steady state.
inline int64_t window_filling_frames(const CodecConfig& cfg) {
  double context_s = cfg.context_duration;
  for (const auto* part : {&cfg.encoder, &cfg.decoder})
    for (const ModuleConfig& m : *part)
      if (m.kind == ModuleConfig::Kind::Transformer && m.transformer.context_duration)
        context_s = std::max(context_s, *m.transformer.context_duration);
  return std::max<int64_t>(1, int64_t(std::ceil(context_s * cfg.frame_rate())));
}

}  // namespace moss::cli
