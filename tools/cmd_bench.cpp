// moss-codec bench: load, offline encode/decode, streaming latency, memory,
// each figure next to the floor this machine allows.
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <optional>
#include <random>
#include <type_traits>

#include "bench_common.h"
#include "commands.h"
#include "machine_probe.h"
#include "moss_codec/streaming.h"

namespace moss::cli {

namespace {

struct Latency {
  double median_ms = 0, p95_ms = 0, mean_ms = 0;
};

Latency percentiles(std::vector<double> ms) {
  Latency l;
  if (ms.empty()) return l;
  std::sort(ms.begin(), ms.end());
  l.median_ms = median(ms);
  l.p95_ms = ms[std::min(ms.size() - 1, size_t(std::ceil(0.95 * double(ms.size()))) - 1)];
  for (double v : ms) l.mean_ms += v / double(ms.size());
  return l;
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

template <typename Fn>
double best_of(int repeat, Fn&& fn) {
  double best = 1e300;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

}  // namespace

Runner add_bench(CLI::App& app, const Common& common) {
  auto* cmd = app.add_subcommand("bench", "Measure load, offline and streaming speed against this machine's floors");
  struct Args {
    double seconds = 10;
    int repeat = 2;
    int64_t stream_frames = 50;
    int streams = 4;
    bool skip_probe = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--seconds", a->seconds, "Audio length for the offline runs")->check(CLI::Range(0.1, 7200.0));
  cmd->add_option("--repeat", a->repeat,
                  "Timed runs per offline figure after the first call (best is reported); 0: the first call only, "
                  "which halves the time of long inputs")
      ->check(CLI::Range(0, 100));
  cmd->add_option("--stream-frames", a->stream_frames, "80 ms chunks timed in each streaming run")
      ->check(CLI::Range(int64_t(5), int64_t(100000)));
  cmd->add_option("--streams", a->streams,
                  "Streams pushed together (DecoderStream and EncoderStream::push_batch) in the batched streaming runs; 1 skips them")
      ->check(CLI::Range(1, 64));
  cmd->add_flag("--skip-probe", a->skip_probe, "Do not measure the machine's FMA peak and read bandwidth");
  cmd->footer(
      "Example:\n  moss-codec init-random --config configs/moss-audio-tokenizer-24k.json -o /tmp/v1\n"
      "  moss-codec bench --model /tmp/v1 --seconds 10 --threads 2\n"
      "Floors: offline = FLOPs / measured FMA peak; streaming decode = decoder weight bytes / read bandwidth.");
  return [a, &common]() {
    const double peak = a->skip_probe ? 0 : measure_fma_peak_gflops();
    const double bandwidth = a->skip_probe ? 0 : measure_read_bandwidth_gbs();
    auto t0 = std::chrono::steady_clock::now();
    auto codec = load_model(common);
    const double load_s = seconds_since(t0);
    const CodecConfig& cfg = codec->config();
    const Codec::WeightInfo wi = codec->weight_info();
    const int64_t C = cfg.channels(), ds = cfg.downsample_rate;
    const int64_t frames = std::max<int64_t>(1, int64_t(a->seconds * cfg.frame_rate()));
    const int64_t N = frames * ds;
    Tensor audio({1, C, N});
    std::mt19937 rng(1);
    std::normal_distribution<float> noise(0.0f, 0.1f);
    for (auto& x : audio.data) x = noise(rng);

    EncodeResult enc;
    t0 = std::chrono::steady_clock::now();
    enc = codec->encode(audio);  // first run: also maps the encoder's weights in
    const double enc_first = seconds_since(t0);
    const double enc_s = a->repeat ? best_of(a->repeat, [&] { enc = codec->encode(audio); }) : enc_first;
    t0 = std::chrono::steady_clock::now();
    codec->decode(enc.codes);
    const double dec_first = seconds_since(t0);
    const double dec_s = a->repeat ? best_of(a->repeat, [&] { codec->decode(enc.codes); }) : dec_first;

    // Streaming, one 80 ms frame per push. The timed pushes are the steady
    // state: a first push fills every attention window (the longest context
    // of any module), then a few single frames warm up.
    // This host's memory bandwidth drifts (27-70 GB/s seen within minutes), so
    // each timed decode push is bracketed by bandwidth probes (one read of
    // 256 MiB each: far beyond the caches, small beside the weights' RSS) and
    // compared with the floor of that moment. The host also flips between
    // ~37 and ~65 GB/s within seconds; a push whose two probes differ by
    // more than 15% straddled a flip, and its ratio says nothing, so it is
    // left out of the ratio (unless every push was).
    const int64_t history = window_filling_frames(cfg);
    const int64_t warm = 3, T = a->stream_frames;
    std::vector<double> dec_ms, enc_ms, batch_ms, enc_batch_ms, batch_ratio, enc_batch_ratio, dec_bw, dec_x_floor, all_bw, all_x_floor;
    const double dec_bytes = double(wi.decoder_bytes);  // as held: 2 per value for 16-bit matrices in place
    {
      std::optional<ReadBandwidthProbe> probe;
      if (!a->skip_probe) probe.emplace(256);
      DecoderStream s(codec);
      const int64_t nq = enc.codes.dim(0), Tc = enc.codes.dim(2);
      auto frames_from = [&](int64_t t0, int64_t n) {  // codes of frames t0..t0+n, cycling
        CodeTensor c({nq, n});
        for (int64_t i = 0; i < nq; ++i)
          for (int64_t t = 0; t < n; ++t) c.data[size_t(i * n + t)] = enc.codes.data[size_t(i * Tc + (t0 + t) % Tc)];
        return c;
      };
      s.push(frames_from(0, history));
      for (int64_t t = 0; t < T + warm; ++t) {
        const CodeTensor one = frames_from(history + t, 1);
        const double before = probe && t >= warm ? probe->measure(1) : 0;
        const auto s0 = std::chrono::steady_clock::now();
        s.push(one);
        const double ms = seconds_since(s0) * 1e3;
        if (t < warm) continue;
        dec_ms.push_back(ms);
        if (before > 0) {
          const double after = probe->measure(1), bw = (before + after) / 2;
          const double x_floor = ms / (dec_bytes / (bw * 1e9) * 1e3);
          all_bw.push_back(bw);
          all_x_floor.push_back(x_floor);
          if (std::fabs(after - before) <= 0.15 * std::min(before, after)) {
            dec_bw.push_back(bw);
            dec_x_floor.push_back(x_floor);
          }
        }
      }
      if (dec_bw.empty()) {
        dec_bw = all_bw;
        dec_x_floor = all_x_floor;
      }
      probe.reset();
      // Several streams at once, each at its own place in the input: one
      // frame of every stream per push_batch, as a server running many
      // sessions would push them. Stream is DecoderStream or EncoderStream;
      // input_from(t0, n) gives the input of frames t0..t0+n. Each batch
      // follows one stream's own push, and `ratio` gets batch / that push:
      // pairs a few ms apart, as this host's memory speed flips between runs.
      auto time_batches = [&]<typename Stream>(std::type_identity<Stream>, auto input_from, std::vector<double>& ms,
                                               std::vector<double>& ratio) {
        if (a->streams < 2) return;
        std::vector<Stream> many;
        std::vector<Stream*> batch;
        for (int k = 0; k <= a->streams; ++k) many.emplace_back(codec);  // the last one pushes alone
        for (int k = 0; k <= a->streams; ++k) {
          if (k < a->streams) batch.push_back(&many[size_t(k)]);
          many[size_t(k)].push(input_from(7 * k, history));
        }
        std::vector<decltype(input_from(0, 1))> pieces(size_t(a->streams));
        for (int64_t t = 0; t < T + warm; ++t) {
          const auto alone = input_from(7 * a->streams + history + t, 1);
          auto s0 = std::chrono::steady_clock::now();
          many.back().push(alone);
          const double one_ms = seconds_since(s0) * 1e3;
          for (int k = 0; k < a->streams; ++k) pieces[size_t(k)] = input_from(7 * k + history + t, 1);
          s0 = std::chrono::steady_clock::now();
          Stream::push_batch(batch, pieces);
          if (t < warm) continue;
          ms.push_back(seconds_since(s0) * 1e3);
          ratio.push_back(ms.back() / one_ms);
        }
      };
      time_batches(std::type_identity<DecoderStream>{}, frames_from, batch_ms, batch_ratio);
      EncoderStream e(codec);
      auto samples_from = [&](int64_t t0, int64_t n) {  // audio of frames t0..t0+n, cycling
        Tensor piece({C, n * ds});
        for (int64_t c = 0; c < C; ++c)
          for (int64_t i = 0; i < n * ds; ++i)
            piece.data[size_t(c * n * ds + i)] = audio.data[size_t(c * N + (t0 * ds + i) % N)];
        return piece;
      };
      e.push(samples_from(0, history));
      for (int64_t t = 0; t < T + warm; ++t) {
        const Tensor piece = samples_from(history + t, 1);
        const auto s0 = std::chrono::steady_clock::now();
        e.push(piece);
        if (t >= warm) enc_ms.push_back(seconds_since(s0) * 1e3);
      }
      time_batches(std::type_identity<EncoderStream>{}, samples_from, enc_batch_ms, enc_batch_ratio);
    }
    const Latency dl = percentiles(dec_ms), el = percentiles(enc_ms), bl = percentiles(batch_ms),
                  ebl = percentiles(enc_batch_ms);
    const double enc_flops = cfg.encode_flops(frames), dec_flops = cfg.decode_flops(frames);
    const double enc_floor = peak > 0 ? enc_flops / (peak * 1e9) : 0, dec_floor = peak > 0 ? dec_flops / (peak * 1e9) : 0;
    const double stream_bandwidth = median(dec_bw);
    const double stream_floor_ms = stream_bandwidth > 0 ? dec_bytes / (stream_bandwidth * 1e9) * 1e3 : 0;
    const double stream_x_floor = median(dec_x_floor);
    const double frame_ms = 1e3 / cfg.frame_rate();
    const double rss = peak_rss_mb();
    // After every run: each loaded weight has been read, so this is the page
    // size the runs above streamed the weights through.
    const Codec::WeightResidency residency = codec->weight_residency();

    if (common.json) {
      print_json({{"command", "bench"},
                  {"model", codec->checkpoint_dir().string()},
                  {"parameters", wi.encoder_parameters + wi.quantizer_parameters + wi.decoder_parameters},
                  {"threads", common.threads},
                  {"pack_weights", common.pack_weights},
                  {"lock_weights", common.lock_weights},
                  {"packed_bytes", wi.packed_bytes},
                  {"packed_in_file_bytes", wi.packed_in_file_bytes},
                  {"machine", {{"fma_peak_gflops", peak}, {"read_bandwidth_gbs", bandwidth}}},
                  {"load_seconds", load_s},
                  {"audio_seconds", double(N) / cfg.sampling_rate},
                  {"encode", {{"seconds", enc_s}, {"first_seconds", enc_first}, {"gflop", enc_flops / 1e9},
                              {"gflops", enc_flops / enc_s / 1e9}, {"floor_seconds", enc_floor},
                              {"x_floor", enc_floor > 0 ? enc_s / enc_floor : 0}}},
                  {"decode", {{"seconds", dec_s}, {"first_seconds", dec_first}, {"gflop", dec_flops / 1e9},
                              {"gflops", dec_flops / dec_s / 1e9}, {"floor_seconds", dec_floor},
                              {"x_floor", dec_floor > 0 ? dec_s / dec_floor : 0}}},
                  {"streaming_decode_80ms", {{"median_ms", dl.median_ms}, {"p95_ms", dl.p95_ms}, {"floor_ms", stream_floor_ms},
                                             {"read_bandwidth_gbs", stream_bandwidth},
                                             {"weight_read_gbs", dec_bytes / (dl.median_ms * 1e6)},
                                             {"x_floor", stream_x_floor},
                                             {"probed_pushes", all_x_floor.size()},
                                             {"stable_probe_pushes", dec_x_floor.size()},
                                             {"x_realtime", dl.median_ms / frame_ms}}},
                  {"streaming_decode_80ms_batched", {{"streams", batch_ms.empty() ? 0 : a->streams},
                                                     {"median_ms", bl.median_ms}, {"p95_ms", bl.p95_ms},
                                                     {"x_one_push", batch_ratio.empty() ? 0 : median(batch_ratio)},
                                                     {"x_realtime", bl.median_ms / frame_ms}}},
                  {"streaming_encode_80ms", {{"median_ms", el.median_ms}, {"p95_ms", el.p95_ms},
                                             {"x_realtime", el.median_ms / frame_ms}}},
                  {"streaming_encode_80ms_batched", {{"streams", enc_batch_ms.empty() ? 0 : a->streams},
                                                     {"median_ms", ebl.median_ms}, {"p95_ms", ebl.p95_ms},
                                                     {"x_one_push", enc_batch_ratio.empty() ? 0 : median(enc_batch_ratio)},
                                                     {"x_realtime", ebl.median_ms / frame_ms}}},
                  {"peak_rss_mb", rss},
                  {"weight_residency", residency_json(residency)},
                  {"weights_mb", double(wi.file_bytes) / 1e6}});
      return int(kOk);
    }
    std::cout << std::fixed << std::setprecision(3);
    std::cout << "model            " << codec->checkpoint_dir().string() << " ("
              << double(wi.encoder_parameters + wi.quantizer_parameters + wi.decoder_parameters) / 1e6 << " M parameters, "
              << wi.dtypes
              << (wi.packed_in_file_bytes ? ", packed checkpoint" : wi.packed_bytes ? ", matrices packed for oneDNN" : "") << ")\n";
    if (peak > 0)
      std::cout << "machine          FMA peak " << std::setprecision(1) << peak << " GFLOP/s, read bandwidth " << bandwidth
                << " GB/s\n";
    std::cout << std::setprecision(3) << "load             " << load_s << " s\n"
              << "encode " << a->seconds << " s   " << enc_s << " s (first " << enc_first << " s), " << std::setprecision(1)
              << enc_flops / 1e9 << " GFLOP at " << enc_flops / enc_s / 1e9 << " GFLOP/s";
    if (enc_floor > 0) std::cout << std::setprecision(2) << ", " << enc_s / enc_floor << "x the floor of " << enc_floor << " s";
    std::cout << "\n" << std::setprecision(3) << "decode " << a->seconds << " s   " << dec_s << " s (first " << dec_first << " s), "
              << std::setprecision(1) << dec_flops / 1e9 << " GFLOP at " << dec_flops / dec_s / 1e9 << " GFLOP/s";
    if (dec_floor > 0) std::cout << std::setprecision(2) << ", " << dec_s / dec_floor << "x the floor of " << dec_floor << " s";
    std::cout << "\n" << std::setprecision(1) << "stream decode    80 ms chunks: median " << dl.median_ms << " ms, p95 "
              << dl.p95_ms << " ms (" << std::setprecision(2) << dl.median_ms / frame_ms << "x real time";
    if (stream_floor_ms > 0)
      std::cout << "; " << stream_x_floor << "x the bandwidth floor, median over the " << dec_x_floor.size() << " of "
                << all_x_floor.size() << " pushes whose bracketing probes agreed: " << std::setprecision(1)
                << dec_bytes / 1e9 << " GB of weights at a median " << stream_bandwidth << " GB/s = " << stream_floor_ms
                << " ms";
    std::cout << ")\n";
    if (!batch_ms.empty())
      std::cout << std::setprecision(1) << "stream decode x" << std::left << std::setw(2) << a->streams << std::right
                << " " << a->streams << " streams pushed together, 80 ms each: median " << bl.median_ms << " ms, p95 "
                << bl.p95_ms << " ms (" << std::setprecision(2) << bl.median_ms / frame_ms << "x real time for all of them, "
                << median(batch_ratio) << "x one stream's push, median over pushes alternated with it)\n";
    std::cout << std::setprecision(1) << "stream encode    80 ms chunks: median " << el.median_ms << " ms, p95 " << el.p95_ms << " ms ("
              << std::setprecision(2) << el.median_ms / frame_ms << "x real time)\n";
    if (!enc_batch_ms.empty())
      std::cout << std::setprecision(1) << "stream encode x" << std::left << std::setw(2) << a->streams << std::right
                << " " << a->streams << " streams pushed together, 80 ms each: median " << ebl.median_ms << " ms, p95 "
                << ebl.p95_ms << " ms (" << std::setprecision(2) << ebl.median_ms / frame_ms
                << "x real time for all of them, " << median(enc_batch_ratio)
                << "x one stream's push, median over pushes alternated with it)\n";
    std::cout << std::setprecision(0) << "peak RSS         " << rss << " MB (weights " << double(wi.file_bytes) / 1e6
              << " MB)\n"
              << "weights mapping  " << residency_line(residency) << "\n";
    if (const std::string note = residency_warning(residency); !note.empty()) std::cerr << note << "\n";
    return int(kOk);
  };
}

}  // namespace moss::cli
