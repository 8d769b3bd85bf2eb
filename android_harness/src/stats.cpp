// Latency statistics in the result schema's "stats" shape.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "bench.h"

namespace edgetam_bench {

namespace {

// numpy.percentile's default (linear interpolation between closest ranks).
double percentile(const std::vector<double>& sorted, double q) {
  const double pos = q / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

}  // namespace

json latency_stats(const std::vector<double>& samples_ms) {
  if (samples_ms.empty()) {
    throw BenchError("internal: no latency samples");
  }
  std::vector<double> s(samples_ms);
  std::sort(s.begin(), s.end());
  const size_t n = s.size();
  const double mean = std::accumulate(s.begin(), s.end(), 0.0) / static_cast<double>(n);
  size_t cut = n >= 3 ? std::max<size_t>(1, n / 10) : 0;
  const double trimmed = std::accumulate(s.begin() + cut, s.end() - cut, 0.0) / static_cast<double>(n - 2 * cut);
  return json{{"n", n},
              {"min_ms", s.front()},
              {"p50_ms", percentile(s, 50)},
              {"p90_ms", percentile(s, 90)},
              {"max_ms", s.back()},
              {"mean_ms", mean},
              {"trimmed_mean_ms", trimmed},
              {"samples_ms", samples_ms}};
}

}  // namespace edgetam_bench
