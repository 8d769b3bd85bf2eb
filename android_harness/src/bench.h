// Shared declarations of edgetam_bench: the bench pack model (index.json + plan.json + raw
// tensors, see benchmarks/schema/pack.md), latency statistics and device information.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace edgetam_bench {

namespace fs = std::filesystem;
using nlohmann::json;

// Bad input or a failed ExecuTorch call: main() prints the message as one line and exits 2.
struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One positional input/output of a graph: name, dtype ("float32", ...) and shape.
struct TensorSpec {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
};

// index.json artifacts[graph]: the program file, its method, and its positional signature.
struct Artifact {
  std::string graph;
  fs::path file;
  std::string method;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

// index.json tensors[key]: one raw little-endian C-order tensor file.
struct TensorEntry {
  std::string key;
  fs::path file;
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t nbytes = 0;
};

// plan.json tolerances[graph][output].
struct Tolerance {
  std::string kind;
  double rel_max_abs = 0.0;
  double min_cosine = 1.0;
};

// plan.json calls[key]: one graph run; inputs in the graph's positional order (tensor keys).
struct Call {
  std::string key;
  std::string graph;
  std::vector<std::string> input_keys;                      // positional, one per artifact input
  std::vector<std::pair<std::string, std::string>> expected;  // (output name, tensor key)
};

// plan.json frames[i]: calls run back to back, timed as one frame.
struct Frame {
  std::string name;
  int objects = 1;
  std::string kind;
  std::vector<std::string> calls;
};

struct Pack {
  fs::path root;
  json index;
  json plan;
  std::map<std::string, Artifact> artifacts;
  std::map<std::string, TensorEntry> tensors;
  std::vector<std::string> call_order;  // plan order of calls
  std::map<std::string, Call> calls;
  std::vector<std::pair<std::string, std::string>> graph_benchmarks;  // (graph, call key)
  std::vector<Frame> frames;
  std::map<std::string, std::map<std::string, Tolerance>> tolerances;
  int warmup = 0;
  int iterations = 1;
  std::optional<int> threads;
};

// Reads and cross-checks index.json and plan.json (every key, graph, dtype and shape the plan
// names must agree with the index). Throws BenchError naming the file and the field.
Pack load_pack(const fs::path& root);

// A tensor read from the pack: bytes are 16-byte aligned and exactly dtype x shape long.
struct HostTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  uint64_t numel() const;
};

// Reads tensors[key] and checks that the file holds exactly nbytes = numel x itemsize bytes.
HostTensor read_tensor(const Pack& pack, const std::string& key);

// Bytes per element of a pack dtype; throws for an unknown dtype.
size_t dtype_size(const std::string& dtype);

std::string shape_str(const std::vector<int64_t>& shape);

// Latency statistics in the result schema's "stats" shape (numpy-style linear percentiles;
// trimmed mean drops the lowest and highest 10%, at least one each when n >= 3).
json latency_stats(const std::vector<double>& samples_ms);

// device {model, os, arch, cores, memory_bytes, chipset, emulated} from uname, /proc/cpuinfo
// and sysconf.
json device_info(bool emulated);

}  // namespace edgetam_bench
