#pragma once
// What this machine can do at best, measured here, so benchmark figures can
// be read as fractions of their floors.
#include <vector>

namespace moss::cli {

// float32 FMA throughput over all threads, from 12 independent accumulator
// chains per thread (enough to hide FMA latency; fewer would measure latency).
double measure_fma_peak_gflops();
// Read bandwidth of a buffer far larger than the caches, all threads, in
// GB/s: the best of `passes` reads of the whole buffer. The buffer is made
// once, so the probe can be repeated between other measurements.
class ReadBandwidthProbe {
 public:
  explicit ReadBandwidthProbe(long long buffer_mib);
  double measure(int passes = 3) const;

 private:
  std::vector<float> buf_;
};

// One probe of a fresh 1 GiB buffer, best of three passes.
double measure_read_bandwidth_gbs();

}  // namespace moss::cli
