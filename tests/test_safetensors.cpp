#include "io/weight_store.h"
#include "kernels/half.h"
#include "test_util.h"

namespace moss::test {

TEST(Safetensors, RoundTripF32AndI64) {
  TempDir dir;
  TensorToWrite ints{"ints", DType::I64, {3}, std::vector<uint8_t>(24)};
  const int64_t iv[3] = {-1, 0, 1LL << 40};
  std::memcpy(ints.bytes.data(), iv, 24);
  write_safetensors(dir / "a.safetensors", {f32("w", {2, 2}, {1, 2, 3, 4}), ints});
  SafetensorsFile f = SafetensorsFile::open(dir / "a.safetensors");
  EXPECT_EQ(f.at("w").shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(f.at("w").to_float(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(f.at("ints").to_int64(), (std::vector<int64_t>{-1, 0, 1LL << 40}));
  expect_error([&] { f.at("w").to_int64(); }, "expected an integer type");
  expect_error([&] { f.at("missing"); }, "no tensor named 'missing'");
}

TEST(Safetensors, HalfAndBfloat16Upcast) {
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_float(0xc000), -2.0f);
  EXPECT_EQ(half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(half_to_float(0xc000), -2.0f);
  EXPECT_EQ(half_to_float(0x0001), 5.9604644775390625e-08f);  // smallest subnormal
  EXPECT_TRUE(std::isinf(half_to_float(0x7c00)));
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  TempDir dir;
  // BF16 1.0, -2.0 and F16 0.5
  write_bytes(dir / "h.safetensors",
              raw_safetensors(R"({"b":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},)"
                              R"("h":{"dtype":"F16","shape":[1],"data_offsets":[4,6]}})",
                              std::string("\x80\x3f\x00\xc0\x00\x38", 6)));
  SafetensorsFile f = SafetensorsFile::open(dir / "h.safetensors");
  EXPECT_EQ(f.at("b").to_float(), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(f.at("h").to_float(), (std::vector<float>{0.5f}));
}

struct HostileCase {
  std::string name, bytes, needle;
};

TEST(Safetensors, HostileHeadersGetClearErrors) {
  const std::string ok_entry = R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  std::string huge(8, '\0');
  uint64_t big = 1ull << 60;
  std::memcpy(huge.data(), &big, 8);
  std::vector<HostileCase> cases = {
      {"short", std::string("\x01\x02", 2), "truncated"},
      {"past_end", raw_safetensors(ok_entry, "1234").substr(0, 20), "runs past the end"},
      {"absurd_length", huge + "{}", "exceeds the limit"},
      {"not_json", raw_safetensors("{nope", ""), "not valid JSON"},
      {"not_object", raw_safetensors("[1,2]", ""), "not a JSON object"},
      {"unknown_dtype", raw_safetensors(R"({"t":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})", "x"), "unknown dtype 'F8'"},
      {"outside", raw_safetensors(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", "1234"), "outside the data section"},
      {"reversed", raw_safetensors(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "1234"), "reversed"},
      {"byte_count", raw_safetensors(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "1234"), "shape x dtype needs 8"},
      {"negative_shape", raw_safetensors(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "1234"), "non-negative"},
      {"overflow_shape", raw_safetensors(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}})", "1234"), "overflows"},
      {"duplicate", raw_safetensors(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", "12345678"), "twice"},
      {"overlap", raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", "12345678"), "overlap"},
      {"bad_offsets", raw_safetensors(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "1234"), "data_offsets"},
      {"missing_dtype", raw_safetensors(R"({"t":{"shape":[1],"data_offsets":[0,4]}})", "1234"), "'dtype'"},
  };
  TempDir dir;
  for (auto& c : cases) {
    SCOPED_TRACE(c.name);
    write_bytes(dir / (c.name + ".safetensors"), c.bytes);
    expect_error([&] { SafetensorsFile::open(dir / (c.name + ".safetensors")); }, c.needle);
  }
  write_bytes(dir / "empty.safetensors", "");
  expect_error([&] { SafetensorsFile::open(dir / "empty.safetensors"); }, "empty");
  expect_error([&] { SafetensorsFile::open(dir / "absent.safetensors"); }, "cannot open");
}

TEST(WeightStore, AlignedF32IsUsedInPlaceAndShapesAreChecked) {
  TempDir dir;
  write_safetensors(dir / "model.safetensors", {f32("w", {2, 3}, {1, 2, 3, 4, 5, 6})});
  auto store = WeightStore::open(dir.path());
  FloatWeight w = store->take("w", {2, 3});
  EXPECT_TRUE(w.is_borrowed());
  EXPECT_EQ(w.data()[5], 6.0f);
  expect_error([&] { store->take("w", {3, 2}); }, "has shape (2, 3), expected (3, 2)");
  expect_error([&] { store->take("nope", {1}); }, "missing tensor 'nope'");
}

TEST(WeightStore, WeightNormMergeBothSchemes) {
  // W = g * v / ||v|| with the norm over all axes but the first.
  const std::vector<float> vv = {3, 4, 1, 0, 5, 12};
  const std::vector<float> g = {2, 3, 13};
  for (int scheme = 0; scheme < 2; ++scheme) {
    TempDir dir;
    std::string gname = scheme ? "p.weight_g" : "p.parametrizations.weight.original0";
    std::string vname = scheme ? "p.weight_v" : "p.parametrizations.weight.original1";
    write_safetensors(dir / "model.safetensors", {f32(gname, {3, 1, 1}, g), f32(vname, {3, 2, 1}, vv)});
    auto store = WeightStore::open(dir.path());
    EXPECT_TRUE(store->has_weight("p"));
    FloatWeight w = store->take_weight_norm("p", {3, 2, 1});
    const float expect[6] = {2 * 3 / 5.f, 2 * 4 / 5.f, 3 * 1.f, 0.f, 13 * 5 / 13.f, 13 * 12 / 13.f};
    for (int i = 0; i < 6; ++i) EXPECT_NEAR(w.data()[i], expect[i], 1e-6) << i;
    EXPECT_TRUE(store->untaken().empty());
  }
}

TEST(WeightStore, WeightNormHalfWithoutPartnerIsAnErrorAcrossShards) {
  TempDir dir;
  write_safetensors(dir / "a.safetensors", {f32("p.weight_g", {1, 1, 1}, {1})});
  write_safetensors(dir / "b.safetensors", {f32("q.weight", {1}, {1})});
  write_bytes(dir / "model.safetensors.index.json",
              R"({"weight_map":{"p.weight_g":"a.safetensors","q.weight":"b.safetensors"}})");
  expect_error([&] { WeightStore::open(dir.path()); }, "has no partner 'p.weight_v'");
  // With the partner in the other shard it loads.
  write_safetensors(dir / "b.safetensors", {f32("p.weight_v", {1, 1, 1}, {2})});
  write_bytes(dir / "model.safetensors.index.json",
              R"({"weight_map":{"p.weight_g":"a.safetensors","p.weight_v":"b.safetensors"}})");
  auto store = WeightStore::open(dir.path());
  EXPECT_NEAR(store->take_weight_norm("p", {1, 1, 1}).data()[0], 1.0f, 1e-7);
}

TEST(WeightStore, IndexErrorsNameTheShard) {
  TempDir dir;
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map":{"x":"missing.safetensors"}})");
  expect_error([&] { WeightStore::open(dir.path()); }, "shard 'missing.safetensors'");
  // Found by fuzzing: a name too long for the file system was a filesystem exception.
  write_bytes(dir / "model.safetensors.index.json", "{\"weight_map\":{\"x\":\"" + std::string(600, 'a') + "\"}}");
  expect_error([&] { WeightStore::open(dir.path()); }, "is not a file in");
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map":{"x":"../escape.safetensors"}})");
  expect_error([&] { WeightStore::open(dir.path()); }, "not a file in the checkpoint folder");
  write_bytes(dir / "model.safetensors.index.json", R"({"nothing":1})");
  expect_error([&] { WeightStore::open(dir.path()); }, "weight_map");
  TempDir empty;
  expect_error([&] { WeightStore::open(empty.path()); }, "no weights found");
}

TEST(WeightStore, AllSafetensorsInFolderAndDuplicatesAcrossFiles) {
  TempDir dir;
  write_safetensors(dir / "one.safetensors", {f32("a", {1}, {1})});
  write_safetensors(dir / "two.safetensors", {f32("b", {1}, {2})});
  auto store = WeightStore::open(dir.path());
  EXPECT_TRUE(store->has("a") && store->has("b"));
  write_safetensors(dir / "two.safetensors", {f32("a", {1}, {2})});
  expect_error([&] { WeightStore::open(dir.path()); }, "appears in both");
}

}  // namespace moss::test
