#pragma once
// Which tensors may be stored in reduced precision (bf16, int8, ...). Only the
// large matrix weights of the transformers qualify; codebooks never do (a code
// is an argmin over them, and a rounded codebook changes codes), nor do norms,
// layer scales, biases or the small weight-normalized quantizer projections.
#include <string>

namespace moss {

bool may_use_reduced_precision(const std::string& tensor_name);

}  // namespace moss
