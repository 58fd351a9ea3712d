#pragma once
// IEEE half and bfloat16 <-> float32 conversion (checkpoints in the wild use
// both; every value is used as its float32 widening, SPEC section 1).
#include <cstdint>
#include <cstring>

namespace moss {

// How 16-bit floats are stored: bfloat16 or IEEE half. Either widens to
// float32 exactly, so products over them equal products over upcast values.
enum class HalfFormat { BF16, F16 };

inline float bf16_to_float(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float half_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      int e = -1;
      do { ++e; mant <<= 1; } while ((mant & 0x400) == 0);
      bits = sign | (uint32_t(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float widen_value(uint16_t h, HalfFormat format) {
  return format == HalfFormat::BF16 ? bf16_to_float(h) : half_to_float(h);
}

inline uint16_t float_to_bf16(float f) {  // round to nearest even
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffff) > 0x7f800000) return uint16_t((bits >> 16) | 0x40);  // NaN stays NaN
  bits += 0x7fff + ((bits >> 16) & 1);
  return uint16_t(bits >> 16);
}

inline uint16_t float_to_half(float f) {  // round to nearest even; overflow to Inf
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return uint16_t(sign | 0x7e00u);  // NaN stays NaN
  if (x >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to 65520 or more: Inf
  if (x < 0x38800000u) {                                   // below 2^-14: a subnormal half, or zero
    if (x < 0x33000000u) return uint16_t(sign);            // below 2^-25 (a tie at 2^-25 goes to even 0)
    const uint32_t e = x >> 23, m = (x & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // value m * 2^(e-150) in units of 2^-24
    uint32_t h = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return uint16_t(sign | h);
  }
  uint32_t h = (x - 0x38000000u) >> 13;  // exponent rebiased 127 -> 15
  const uint32_t rem = x & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;  // a carry moves into the exponent, as it should
  return uint16_t(sign | h);
}

}  // namespace moss
