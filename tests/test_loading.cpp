// Model resolution, save_config, the quantization guard and mapping residency.
#include <cstdlib>
#include <fstream>
#if defined(__linux__)
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/page_residency.h"
#include "kernels/large_buffer.h"

#include "moss_codec/codec.h"
#include "moss_codec/quantization.h"
#include "moss_codec/streaming.h"
#include "test_util.h"

namespace moss::test {

static void copy_checkpoint(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (auto& e : fs::directory_iterator(from))
    if (e.path().filename() == "config.json" || e.path().extension() == ".safetensors" ||
        e.path().filename() == "model.safetensors.index.json")
      fs::copy(e.path(), to / e.path().filename());
}

TEST(Resolution, FolderAndTtsSubfolders) {
  EXPECT_EQ(resolve_checkpoint(fixture("tiny").string()), fixture("tiny"));
  TempDir tts;
  std::ofstream(tts / "config.json") << R"({"model_type": "moss_tts", "hidden_size": 8})";  // not a codec config
  copy_checkpoint(fixture("tiny"), tts / "codec");
  EXPECT_EQ(resolve_checkpoint(tts.path().string()), tts / "codec");
  // audio_tokenizer comes first; a subfolder without weights does not count.
  fs::create_directories(tts / "moss_audio_tokenizer");
  fs::copy(fixture("tiny") / "config.json", tts / "moss_audio_tokenizer" / "config.json");
  EXPECT_EQ(resolve_checkpoint(tts.path().string()), tts / "codec");
  copy_checkpoint(fixture("variants"), tts / "audio_tokenizer");
  EXPECT_EQ(resolve_checkpoint(tts.path().string()), tts / "audio_tokenizer");
  auto codec = Codec::load(tts.path());
  EXPECT_EQ(codec->checkpoint_dir(), tts / "audio_tokenizer");
  EXPECT_EQ(codec->config().quantizer.kind, QuantizerKind::Rvq);
  TempDir empty;
  expect_error([&] { resolve_checkpoint(empty.path().string()); }, (empty / "codec").string());
  expect_error([] { resolve_checkpoint("/no/such/folder"); }, "no such checkpoint folder");
}

class HfHome : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* old = std::getenv("HF_HOME");
    if (old) saved_ = old;
    setenv("HF_HOME", home_.path().c_str(), 1);
  }
  void TearDown() override {
    if (saved_) setenv("HF_HOME", saved_->c_str(), 1);
    else unsetenv("HF_HOME");
  }
  TempDir home_;
  std::optional<std::string> saved_;
};

TEST_F(HfHome, RepoIdFromTheLocalCache) {
  const fs::path repo = home_ / "hub" / "models--OpenMOSS-Team--MOSS-Audio-Tokenizer";
  expect_error([] { resolve_checkpoint("OpenMOSS-Team/MOSS-Audio-Tokenizer"); },
               (repo / "refs" / "main").string());
  fs::create_directories(repo / "refs");
  std::ofstream(repo / "refs" / "main") << "abc123\n";
  copy_checkpoint(fixture("tiny"), repo / "snapshots" / "abc123");
  EXPECT_EQ(resolve_checkpoint("OpenMOSS-Team/MOSS-Audio-Tokenizer"), repo / "snapshots" / "abc123");
  EXPECT_NO_THROW(Codec::load("OpenMOSS-Team/MOSS-Audio-Tokenizer"));
  // A TTS repo whose snapshot holds the codec in a subfolder.
  const fs::path tts = home_ / "hub" / "models--OpenMOSS-Team--MOSS-TTS";
  fs::create_directories(tts / "refs");
  std::ofstream(tts / "refs" / "main") << "def456";
  copy_checkpoint(fixture("tiny"), tts / "snapshots" / "def456" / "audio_tokenizer");
  EXPECT_EQ(resolve_checkpoint("OpenMOSS-Team/MOSS-TTS"), tts / "snapshots" / "def456" / "audio_tokenizer");
}

TEST(SaveConfig, CanonicalAndLoadsBackIdentical) {
  for (const char* name : {"tiny", "variants", "stereo-48k-v2", "small-24k"}) {
    SCOPED_TRACE(name);
    auto codec = Codec::load(fixture(name));
    TempDir dir;
    copy_checkpoint(fixture(name), dir.path());
    fs::remove(dir / "config.json");
    codec->save_config(dir / "config.json");
    std::ifstream in(dir / "config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    EXPECT_EQ(j["model_type"], "moss_audio_tokenizer");
    EXPECT_FALSE(j.contains("auto_map"));
    EXPECT_FALSE(j.contains("sample_rate"));
    auto again = Codec::load(dir.path());
    EXPECT_TRUE(again->config() == codec->config());
    // Same model: identical outputs.
    const int64_t C = codec->config().channels(), N = 8 * codec->config().downsample_rate;
    Tensor audio({1, C, N}, random_floats(size_t(C * N), 9, 0.3f));
    EXPECT_EQ(again->encode(audio).codes.data, codec->encode(audio).codes.data);
    // Nothing is overwritten without asking.
    expect_error([&] { codec->save_config(dir / "config.json"); }, "already exists");
    EXPECT_NO_THROW(codec->save_config(dir / "config.json", /*overwrite=*/true));
  }
  // Keys are sorted.
  const std::string text = CodecConfig::load(fixture("tiny") / "config.json").to_json();
  EXPECT_LT(text.find("\"causal_transformer_context_duration\""), text.find("\"decoder_kwargs\""));
  EXPECT_LT(text.find("\"downsample_rate\""), text.find("\"encoder_kwargs\""));
}

TEST(QuantizationGuard, OnlyTransformerMatrices) {
  for (const char* yes : {"encoder.1.input_proj.weight", "decoder.2.output_proj.weight",
                          "encoder.3.transformer.layers.11.self_attn.in_projs.0.weight",
                          "decoder.0.transformer.layers.0.self_attn.out_proj.weight",
                          "encoder.1.transformer.layers.0.linear1.weight", "decoder.0.transformer.layers.2.ffn.2.weight",
                          "encoder.1.transformer.layers.0.gating.linear_in.weight"})
    EXPECT_TRUE(may_use_reduced_precision(yes)) << yes;
  for (const char* no : {"quantizer.quantizers.0.codebook.weight", "quantizer.quantizers.31.codebook.weight",
                         "quantizer.input_proj.parametrizations.weight.original1", "quantizer.quantizers.0.in_proj.bias",
                         "encoder.1.transformer.layers.0.norm1.weight", "encoder.1.transformer.layers.0.norm1.alpha",
                         "encoder.1.transformer.layers.0.layer_scale_1.scale", "encoder.1.transformer.layers.0.norm2.bias",
                         "something.else.weight"})
    EXPECT_FALSE(may_use_reduced_precision(no)) << no;
  // Every codebook of every fixture is refused.
  for (const char* name : {"tiny", "small-24k"}) {
    SafetensorsFile f = SafetensorsFile::open(fixture(name) / "model.safetensors");
    int codebooks = 0;
    for (auto& [tensor, v] : f.tensors())
      if (tensor.find("codebook") != std::string::npos) {
        ++codebooks;
        EXPECT_FALSE(may_use_reduced_precision(tensor)) << tensor;
      }
    EXPECT_GT(codebooks, 0);
  }
}

}  // namespace moss::test

namespace moss::test {

TEST(PartialLoad, EncoderOnlyAndDecoderOnly) {
  auto all = Codec::load(fixture("small-24k"));
  auto enc = Codec::load(fixture("small-24k"), {.parts = Parts::Encoder});
  auto dec = Codec::load(fixture("small-24k"), {.parts = Parts::Decoder});
  EXPECT_TRUE(enc->has_encoder() && !enc->has_decoder());
  EXPECT_TRUE(!dec->has_encoder() && dec->has_decoder());
  Tensor audio({1, 1, 1920 * 5}, random_floats(1920 * 5, 3, 0.2f));
  EncodeResult e = enc->encode(audio);
  EXPECT_EQ(e.codes.data, all->encode(audio).codes.data);
  EXPECT_EQ(dec->decode(e.codes).audio.data, all->decode(e.codes).audio.data);
  expect_error([&] { enc->decode(e.codes); }, "loaded without its decoder");
  expect_error([&] { dec->encode(audio); }, "loaded without its encoder");
  expect_error([&] { DecoderStream s(enc); }, "loaded without its decoder");
  expect_error([&] { EncoderStream s(dec); }, "loaded without its encoder");
  // The half that is not loaded is still checked for presence and shape.
  TempDir dir;
  fs::copy(fixture("tiny") / "config.json", dir / "config.json");
  SafetensorsFile src = SafetensorsFile::open(fixture("tiny") / "model.safetensors");
  std::vector<TensorToWrite> tensors;
  for (auto& [name, v] : src.tensors())
    if (name != "encoder.3.output_proj.weight")
      tensors.push_back({name, v.dtype, v.shape, std::vector<uint8_t>(v.data, v.data + v.nbytes)});
  write_safetensors(dir / "model.safetensors", tensors);
  expect_error([&] { Codec::load(dir.path(), {.parts = Parts::Decoder}); }, "missing tensor 'encoder.3.output_proj.weight'");
}

TEST(PageResidency, SumsOverlappingMappingsInProportion) {
  // Three mappings: one before the range, one half inside it, one wholly inside.
  const std::string smaps =
      "00001000-00002000 r--p 00000000 fe:00 1 /x\n"
      "Rss:                   4 kB\n"
      "FilePmdMapped:         0 kB\n"
      "00200000-00600000 r--p 00000000 fe:00 2 /w\n"
      "Size:               4096 kB\n"
      "Rss:                4096 kB\n"
      "FilePmdMapped:      2048 kB\n"
      "Locked:             1024 kB\n"
      "VmFlags: rd mr lo\n"
      "00600000-00800000 rw-p 00000000 00:00 0\n"
      "Rss:                2048 kB\n"
      "AnonHugePages:      2048 kB\n"
      "garbage line without a colon\n"
      "Rss: not-a-number kB\n";
  std::istringstream in(smaps);
  const PageResidency r = page_residency_from_smaps(in, reinterpret_cast<const void*>(uintptr_t(0x400000)), 0x400000);
  EXPECT_TRUE(r.known);
  EXPECT_EQ(r.mapped_bytes, 0x400000);
  EXPECT_EQ(r.resident_bytes, (2048 + 2048) * 1024);  // half of /w, all of the anonymous one
  EXPECT_EQ(r.huge_page_bytes, (1024 + 2048) * 1024);
  EXPECT_EQ(r.locked_bytes, 2048 * 1024);  // /w's resident half (its Locked is a share: ignored)
  std::istringstream none("");
  EXPECT_EQ(page_residency_from_smaps(none, nullptr, 100).resident_bytes, 0);
}

TEST(PageResidency, ReportsThisProcessAndTheLoadedCheckpoint) {
#if defined(__linux__)
  LargeVector<float> buffer(size_t(8) << 20);  // 32 MiB, touched by the zero fill
  const PageResidency r = page_residency(buffer.data(), buffer.size() * sizeof(float));
  ASSERT_TRUE(r.known);
  EXPECT_EQ(r.resident_bytes, r.mapped_bytes);
  EXPECT_LE(r.huge_page_bytes, r.resident_bytes);  // huge pages only where THP is enabled

  auto codec = Codec::load(fixture("small-24k"));
  const Codec::WeightResidency w = codec->weight_residency();
  ASSERT_TRUE(w.known);
  EXPECT_EQ(w.mapped_bytes, int64_t(fs::file_size(fixture("small-24k") / "model.safetensors")));
  EXPECT_GT(w.resident_bytes, 0);  // the load's NaN scan read every weight
  EXPECT_LE(w.resident_bytes, w.mapped_bytes);
  EXPECT_LE(w.huge_page_bytes, w.resident_bytes);
#else
  GTEST_SKIP() << "smaps is Linux only";
#endif
}

#if defined(__linux__)
// This thread's effective CAP_IPC_LOCK (which lets mlock ignore the limit),
// set or cleared; it stays permitted, so it can be raised again. False when
// the capability calls fail.
static bool set_ipc_lock_capability(bool on) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  const unsigned bit = 1u << CAP_IPC_LOCK;  // CAP_IPC_LOCK < 32: word 0
  if (on && !(data[0].permitted & bit)) return false;
  data[0].effective = on ? data[0].effective | bit : data[0].effective & ~bit;
  return syscall(SYS_capset, &header, data) == 0;
}
#endif

TEST(LockWeights, LocksTheWeightsReadInPlace) {
#if defined(__linux__)
  const fs::path dir = fixture("small-24k");
  const int64_t file = int64_t(fs::file_size(dir / "model.safetensors"));
  auto plain = Codec::load(dir);
  auto locked = Codec::load(dir, {.lock_weights = true});
  auto encoder = Codec::load(dir, {.parts = Parts::Encoder, .lock_weights = true});
  ASSERT_TRUE(locked->weight_residency().known);
  // The pages of the tensors read in place are locked (whole pages: a tensor's
  // first and last may hold neighbours too), in this codec's mapping only;
  // copies made at load (weight-norm merges, codebooks) are not.
  const int64_t in_place = locked->weight_info().in_place_bytes;
  EXPECT_GT(in_place, file / 4);
  EXPECT_LT(in_place, file);
  EXPECT_EQ(plain->weight_info().in_place_bytes, in_place);
  if (!mlock_locks()) GTEST_SKIP() << "mlock is a no-op in this build (a sanitizer's interceptor)";
  const int64_t all = locked->weight_residency().locked_bytes;
  EXPECT_GE(all, in_place);
  EXPECT_LE(all, in_place + int64_t(2 * 4096) * int64_t(SafetensorsFile::open(dir / "model.safetensors").tensors().size()));
  EXPECT_LE(all, locked->weight_residency().resident_bytes);
  EXPECT_EQ(plain->weight_residency().locked_bytes, 0);
  // The encoder-only load locks its half (and the quantizer), not the decoder's.
  const int64_t half = encoder->weight_info().in_place_bytes;
  EXPECT_GT(half, 0);
  EXPECT_LT(half, in_place);
  EXPECT_GE(encoder->weight_residency().locked_bytes, half);
  EXPECT_LT(encoder->weight_residency().locked_bytes, all);
  Tensor audio({1, 1, 1920 * 5}, random_floats(1920 * 5, 7, 0.2f));
  const EncodeResult e = locked->encode(audio);
  EXPECT_EQ(e.codes.data, plain->encode(audio).codes.data);
  EXPECT_EQ(encoder->encode(audio).codes.data, e.codes.data);
  EXPECT_EQ(locked->decode(e.codes).audio.data, plain->decode(e.codes).audio.data);
#else
  GTEST_SKIP() << "mlock and smaps: Linux only";
#endif
}

TEST(LockWeights, RefusedLockNamesTheFileAndTheLimit) {
#if defined(__linux__)
  // Without CAP_IPC_LOCK and under a 64 KiB limit, locking the checkpoint
  // (several MB) must fail with a clear error, not load half-locked.
  const bool dropped = set_ipc_lock_capability(false);
  rlimit before{};
  ASSERT_EQ(getrlimit(RLIMIT_MEMLOCK, &before), 0);
  rlimit low = before;
  low.rlim_cur = 64 << 10;
  ASSERT_EQ(setrlimit(RLIMIT_MEMLOCK, &low), 0);
  const auto restore = [&] {
    EXPECT_EQ(setrlimit(RLIMIT_MEMLOCK, &before), 0);
    if (dropped) EXPECT_TRUE(set_ipc_lock_capability(true));
  };
  std::vector<uint8_t> probe(1 << 20, 1);
  if (mlock(probe.data(), probe.size()) == 0) {  // still allowed: a capability this thread cannot drop
    munlock(probe.data(), probe.size());
    restore();
    GTEST_SKIP() << "mlock is not limited here (CAP_IPC_LOCK could not be dropped)";
  }
  const fs::path dir = fixture("small-24k");
  expect_error([&] { Codec::load(dir, {.lock_weights = true}); }, "model.safetensors: lock_weights: cannot lock");
  expect_error([&] { Codec::load(dir, {.lock_weights = true}); }, "ulimit -l");
  restore();
  EXPECT_NO_THROW(Codec::load(dir));  // the same checkpoint loads unlocked
#else
  GTEST_SKIP() << "mlock: Linux only";
#endif
}

}  // namespace moss::test
