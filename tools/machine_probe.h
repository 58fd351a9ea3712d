#pragma once
// What this machine can do at best, measured here, so benchmark figures can
// be read as fractions of their floors.
namespace moss::cli {

// float32 FMA throughput over all threads, from 12 independent accumulator
// chains per thread (enough to hide FMA latency; fewer would measure latency).
double measure_fma_peak_gflops();
// Read bandwidth of a buffer far larger than the caches (default 1 GiB), all
// threads, best of three passes.
double measure_read_bandwidth_gbs(long long buffer_mib = 1024);

}  // namespace moss::cli
