#pragma once
// What this machine can do at best, measured here, so benchmark figures can
// be read as fractions of their floors.
#include "kernels/large_buffer.h"

namespace moss::cli {

// float32 FMA throughput over all threads, from 12 independent accumulator
// chains per thread (enough to hide FMA latency; fewer would measure latency).
double measure_fma_peak_gflops();
// Read bandwidth of a buffer far larger than the caches, all threads, in
// GB/s: the best of `passes` reads of the whole buffer. The buffer is made
// once, so the probe can be repeated between other measurements.
//
// The buffer is on 2 MiB pages where the kernel gives them (LargeVector), as
// the weights and key/value windows a streaming step reads are: the floor is
// what memory can deliver at best. A probe on 4 KiB pages read 27-46 GB/s
// where the same read on 2 MiB pages got 33-66, alternated in one process
// (Zen 4, 2 threads, 2026-12-05), and put the streaming floor above the time
// the decode then took (0.86x).
class ReadBandwidthProbe {
 public:
  explicit ReadBandwidthProbe(long long buffer_mib);
  double measure(int passes = 3) const;

 private:
  LargeVector<float> buf_;
};

// One probe of a fresh 1 GiB buffer, best of three passes.
double measure_read_bandwidth_gbs();

}  // namespace moss::cli
