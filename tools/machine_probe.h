#pragma once
// What this machine can do at best, measured here, so benchmark figures can
// be read as fractions of their floors.
namespace moss::cli {

// float32 FMA throughput over all threads, from 12 independent accumulator
// chains per thread (enough to hide FMA latency; fewer would measure latency).
double measure_fma_peak_gflops();
// Read bandwidth of a buffer far larger than the caches, all threads.
double measure_read_bandwidth_gbs();

}  // namespace moss::cli
