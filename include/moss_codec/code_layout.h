#pragma once
// Code layouts: the PyTorch codec speaks (nq, B, T), TTS processors store
// (T, nq), ONNX graphs return (T', 32). decode, batch_decode and
// streaming_decode accept 2D (NQ, T) or (T, NQ) and 3D (NQ, B, T) or (B, T, NQ)
// and resolve the reading by fixed rules (README, "Code layouts").
#include <cstdint>
#include <optional>
#include <vector>

#include "moss_codec/tensor.h"

namespace moss {

struct CodeLayout {
  bool nq_first = true;  // (NQ, T) / (NQ, B, T); else (T, NQ) / (B, T, NQ)
  int64_t nq = 0, batch = 0, frames = 0;
};

// configured: the checkpoint's codebook count Q; requested: num_quantizers R
// (Q when omitted). Throws moss::Error when no reading fits, R exceeds the
// chosen reading's NQ, or the layout stays ambiguous.
CodeLayout resolve_code_layout(const std::vector<int64_t>& shape, int configured, std::optional<int> requested);

// The codes in canonical (nq, batch, frames) order, keeping the first
// `keep` codebooks.
CodeTensor to_canonical(const CodeTensor& codes, const CodeLayout& layout, int64_t keep);

}  // namespace moss
