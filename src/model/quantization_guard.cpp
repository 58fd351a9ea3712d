#include <regex>

#include "moss_codec/quantization.h"

namespace moss {

bool may_use_reduced_precision(const std::string& name) {
  // (encoder|decoder).N.input_proj/output_proj, and the attention and FFN
  // matrices of every transformer layer, under both naming schemes.
  static const std::regex allowed(
      R"(^(encoder|decoder)\.\d+\.((input_proj|output_proj)|transformer\.layers\.\d+\.)"
      R"((self_attn\.(in_projs\.0|in_proj|out_projs\.0|out_proj)|linear1|linear2|ffn\.0|ffn\.2|)"
      R"(gating\.linear_in|gating\.linear_out))\.weight$)");
  return std::regex_match(name, allowed);
}

}  // namespace moss
