#include "model/quantizer.h"
#include "test_util.h"

namespace moss::test {

// A quantizer with identity projections (input = rvq = codebook dim) so that
// the search can be checked by hand.
static std::shared_ptr<WeightStore> identity_quantizer(const TempDir& dir, const std::vector<std::vector<float>>& books,
                                                       int dim) {
  std::vector<TensorToWrite> tensors;
  for (size_t i = 0; i < books.size(); ++i)
    tensors.push_back(f32("quantizer.quantizers." + std::to_string(i) + ".codebook.weight",
                          {int64_t(books[i].size()) / dim, dim}, books[i]));
  write_safetensors(dir / "model.safetensors", tensors);
  return WeightStore::open(dir.path());
}

static QuantizerConfig config(QuantizerKind kind, int nq, int size, int dim) {
  QuantizerConfig c;
  c.kind = kind;
  c.input_dim = c.rvq_dim = c.output_dim = c.codebook_dim = dim;
  c.num_quantizers = nq;
  c.codebook_size = size;
  return c;
}

TEST(Quantizer, LfqTiesGoToTheLowestIndexAndZeroRowsStayZero) {
  TempDir dir;
  // Rows 1 and 2 point the same way (equal after normalization); row 0 is zero.
  auto store = identity_quantizer(dir, {{0, 0, 2, 0, 5, 0, 0, 1}}, 2);
  ResidualQuantizer q(config(QuantizerKind::Rlfq, 1, 4, 2), *store);
  const std::vector<float> z = {3, 0.1f,   // nearest direction: (1, 0): rows 1 and 2 tie -> 1
                                0, 0,      // zero input: distance 0 to the zero row ... and 1 to others
                                -1, 0};    // opposite: zero row (distance 1) beats rows at distance 4
  int32_t codes[3];
  QuantizerScratch ws;
  q.encode(z.data(), 3, 1, codes, 3, ws);
  EXPECT_EQ(codes[0], 1);
  EXPECT_EQ(codes[1], 0);
  EXPECT_EQ(codes[2], 0);
  // The residual update and decode use the raw (unnormalized) row.
  std::vector<float> out(2);
  const int32_t two = 2;
  q.decode(&two, 1, 1, 1, out.data(), ws);
  EXPECT_EQ(out, (std::vector<float>{5, 0}));
}

TEST(Quantizer, VqSearchesRawRowsAndResidualIsSubtracted) {
  TempDir dir;
  auto store = identity_quantizer(dir, {{0, 0, 10, 0}, {1, 0, 0, 1}}, 2);
  ResidualQuantizer q(config(QuantizerKind::Rvq, 2, 2, 2), *store);
  const std::vector<float> z = {9, 1};
  int32_t codes[2];
  QuantizerScratch ws;
  q.encode(z.data(), 1, 2, codes, 1, ws);
  EXPECT_EQ(codes[0], 1);  // (10, 0) is nearer than (0, 0) without normalization
  EXPECT_EQ(codes[1], 1);  // residual (-1, 1): (0, 1) at distance 1 beats (1, 0) at distance 5
  std::vector<float> out(2);
  q.decode(codes, 1, 1, 2, out.data(), ws);
  EXPECT_EQ(out, (std::vector<float>{10, 1}));
}

}  // namespace moss::test
