#include "moss_codec/code_layout.h"

#include <string>

#include "moss_codec/error.h"

namespace moss {

CodeLayout resolve_code_layout(const std::vector<int64_t>& shape, int Q, std::optional<int> requested) {
  const int64_t R = requested.value_or(Q);
  const bool r_differs = requested && R != Q;
  if (requested && (R < 1 || R > Q))
    throw Error("num_quantizers = " + std::to_string(R) + " is outside 1.." + std::to_string(Q));
  if (shape.size() != 2 && shape.size() != 3)
    throw Error("codes have shape " + shape_to_string(shape) +
                "; accepted layouts are (NQ, T), (T, NQ), (NQ, B, T) and (B, T, NQ)");
  for (int64_t d : shape)
    if (d < 0) throw Error("codes have a negative dimension in shape " + shape_to_string(shape));
  const bool is2d = shape.size() == 2;
  CodeLayout first, last;
  first.nq_first = true;
  last.nq_first = false;
  if (is2d) {
    first.nq = shape[0], first.batch = 1, first.frames = shape[1];
    last.nq = shape[1], last.batch = 1, last.frames = shape[0];
  } else {
    first.nq = shape[0], first.batch = shape[1], first.frames = shape[2];
    last.nq = shape[2], last.batch = shape[0], last.frames = shape[1];
  }
  auto candidate = [&](const CodeLayout& l) { return l.nq == Q || (r_differs && l.nq == R); };
  std::vector<CodeLayout> c;
  for (const CodeLayout& l : {first, last})
    if (candidate(l)) c.push_back(l);
  if (c.empty()) {
    std::string nq_values = std::to_string(Q);
    if (r_differs) nq_values += " (configured) or " + std::to_string(R) + " (num_quantizers)";
    throw Error("codes have shape " + shape_to_string(shape) +
                "; accepted layouts are (NQ, T), (T, NQ), (NQ, B, T) and (B, T, NQ) with NQ = " + nq_values +
                (requested ? "" : "; pass num_quantizers to decode a prefix of the codebooks"));
  }
  CodeLayout chosen;
  if (c.size() == 1) {
    chosen = c[0];
  } else {
    std::vector<CodeLayout> keep = c;
    if (r_differs) {
      keep.clear();
      for (auto& l : c)
        if (l.nq == R) keep.push_back(l);
      if (keep.size() > 1) {
        const bool square_tie = is2d ? (shape[0] == R && shape[1] == R)
                                     : ((shape[0] == R && shape[1] == 1 && shape[2] == R) ||
                                        (shape[0] == 1 && shape[1] == R && shape[2] == R));
        const bool prefix_tie = !is2d && shape[0] == R && shape[2] == R && shape[1] > 1;
        const bool want_first = square_tie || prefix_tie;
        std::vector<CodeLayout> pref;
        for (auto& l : keep)
          if (l.nq_first == want_first) pref.push_back(l);
        keep = pref;
      }
      if (keep.empty()) keep = c;
    }
    if (keep.size() == 1) {
      chosen = keep[0];
    } else {
      std::vector<CodeLayout> canonical;
      for (auto& l : keep)
        if (l.nq_first) canonical.push_back(l);
      if (canonical.size() != 1) throw Error("ambiguous layout for codes of shape " + shape_to_string(shape));
      chosen = canonical[0];
    }
  }
  if (R > chosen.nq)
    throw Error("num_quantizers = " + std::to_string(R) + " exceeds the " + std::to_string(chosen.nq) +
                " codebooks of codes shaped " + shape_to_string(shape));
  return chosen;
}

CodeTensor to_canonical(const CodeTensor& codes, const CodeLayout& l, int64_t keep) {
  if (int64_t(codes.data.size()) != l.nq * l.batch * l.frames)
    throw Error("codes hold " + std::to_string(codes.data.size()) + " values but their shape " +
                shape_to_string(codes.shape) + " needs " + std::to_string(l.nq * l.batch * l.frames));
  CodeTensor out({keep, l.batch, l.frames});
  for (int64_t i = 0; i < keep; ++i)
    for (int64_t b = 0; b < l.batch; ++b)
      for (int64_t t = 0; t < l.frames; ++t)
        out.data[size_t((i * l.batch + b) * l.frames + t)] =
            l.nq_first ? codes.data[size_t((i * l.batch + b) * l.frames + t)]
                       : codes.data[size_t((b * l.frames + t) * l.nq + i)];
  return out;
}

}  // namespace moss
