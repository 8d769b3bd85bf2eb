// edgetam_bench: runs an EdgeTAM bench pack (benchmarks/schema/pack.md) with the ExecuTorch
// C++ Module API — per-graph load / first-run / steady latency, composite frames, numerics of
// every call against the captured outputs — and writes a result.v1 JSON.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/backend/interface.h>
#include <executorch/runtime/core/exec_aten/exec_aten.h>
#include <executorch/runtime/platform/runtime.h>
#include <executorch/runtime/platform/platform.h>
#ifdef EDGETAM_BENCH_HAVE_ETDUMP
#include <executorch/devtools/etdump/etdump_flatcc.h>
#endif

#include "bench.h"

// The wheel ships libexecutorch_threadpool but not its header; these two declarations match
// extension/threadpool/threadpool.h of the same ExecuTorch release.
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

namespace edgetam_bench {
namespace {

using executorch::aten::ScalarType;
using executorch::extension::Module;
using executorch::extension::TensorPtr;
using executorch::runtime::Error;
using executorch::runtime::EValue;
using Clock = std::chrono::steady_clock;

// ExecuTorch's log goes through this PAL hook: forwarded to stderr with --verbose, otherwise the
// last error is kept and appended to the one-line error message.
bool g_verbose = false;
std::string g_last_et_error;

void emit_log(et_timestamp_t, et_pal_log_level_t level, const char* file, const char*, size_t line,
              const char* message, size_t length) {
  std::string msg(message, length);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
  if (g_verbose) {
    std::cerr << static_cast<char>(level) << " executorch:" << fs::path(file).filename().string() << ":" << line
              << "] " << msg << "\n";
  }
  if (level == kError || level == kFatal) g_last_et_error = msg;
}

// err plus ExecuTorch's last logged error, if any.
std::string et_reason(Error err) {
  std::string r = executorch::runtime::to_string(err);
  if (!g_last_et_error.empty()) r += ": " + g_last_et_error;
  g_last_et_error.clear();
  return r;
}

constexpr const char* kUsage =
    "usage: edgetam_bench --pack PACK --out result.json [--threads N] [--iterations N] [--warmup N]\n"
    "                     [--graphs NAME[,NAME...]] [--frames NAME[,NAME...]] [--etdump FILE] [--emulated] [--verbose]\n"
    "Runs the bench pack PACK with the ExecuTorch runtime and writes a result.v1 JSON to --out.\n"
    "  --threads N      size of ExecuTorch's thread pool (default: the plan's, else the runtime's)\n"
    "  --iterations N   timed runs per graph and per frame (default: the plan's)\n"
    "  --warmup N       untimed runs before them (default: the plan's)\n"
    "  --graphs LIST    only these per-graph benchmarks (comma-separated; 'none' for none)\n"
    "  --frames LIST    only these composite frames (comma-separated; 'none' for no frames)\n"
    "  (numerics always cover every call of the plan, whatever is selected)\n"
    "  --etdump FILE    write an ETDump per graph to FILE with the graph name before the suffix\n"
    "  --emulated       mark the device as emulated (qemu): timings are not the device's\n"
    "  --verbose        print ExecuTorch's log\n"
    "Exit status: 0 all numerics passed, 1 some numerics failed (result written), 2 error.\n";

struct Options {
  fs::path pack, out;
  std::optional<int> threads, iterations, warmup;
  std::optional<std::set<std::string>> frames, graphs;
  std::optional<fs::path> etdump;
  bool emulated = false;
};

int parse_int(const std::string& flag, const std::string& v, int min) {
  try {
    size_t used = 0;
    const int x = std::stoi(v, &used);
    if (used == v.size() && x >= min) return x;
  } catch (const std::exception&) {
  }
  throw BenchError(flag + " needs an integer >= " + std::to_string(min) + ", got '" + v + "'");
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (a == "--emulated") {
      o.emulated = true;
      continue;
    }
    if (a == "--verbose") {
      g_verbose = true;
      continue;
    }
    if (i + 1 >= argc) throw BenchError(a + " needs a value (see --help)");
    const std::string v = argv[++i];
    if (a == "--pack") o.pack = v;
    else if (a == "--out") o.out = v;
    else if (a == "--threads") o.threads = parse_int(a, v, 1);
    else if (a == "--iterations") o.iterations = parse_int(a, v, 1);
    else if (a == "--warmup") o.warmup = parse_int(a, v, 0);
    else if (a == "--etdump") o.etdump = v;
    else if (a == "--frames" || a == "--graphs") {
      auto& list = a == "--frames" ? o.frames : o.graphs;
      list.emplace();
      size_t start = 0;
      while (start <= v.size()) {
        const size_t comma = std::min(v.find(',', start), v.size());
        const std::string name = v.substr(start, comma - start);
        if (!name.empty() && name != "none") list->insert(name);
        start = comma + 1;
      }
    } else {
      throw BenchError("unknown option " + a + " (see --help)");
    }
  }
  if (o.pack.empty() || o.out.empty()) throw BenchError("--pack and --out are required (see --help)");
  return o;
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string dtype_name(ScalarType t) {
  switch (t) {
    case ScalarType::Float: return "float32";
    case ScalarType::Half: return "float16";
    case ScalarType::Int: return "int32";
    case ScalarType::Long: return "int64";
    case ScalarType::Byte: return "uint8";
    default: return "scalar type " + std::to_string(static_cast<int>(t));
  }
}

ScalarType scalar_type(const std::string& dtype) {
  if (dtype == "float32") return ScalarType::Float;
  if (dtype == "float16") return ScalarType::Half;
  if (dtype == "int32") return ScalarType::Int;
  if (dtype == "int64") return ScalarType::Long;
  if (dtype == "uint8") return ScalarType::Byte;
  throw BenchError("unsupported dtype '" + dtype + "'");
}

// Element i of a raw buffer of the given dtype, as double.
double element(const void* data, ScalarType t, size_t i) {
  switch (t) {
    case ScalarType::Float: return static_cast<const float*>(data)[i];
    case ScalarType::Half: return static_cast<float>(static_cast<const executorch::aten::Half*>(data)[i]);
    case ScalarType::Int: return static_cast<const int32_t*>(data)[i];
    case ScalarType::Long: return static_cast<double>(static_cast<const int64_t*>(data)[i]);
    case ScalarType::Byte: return static_cast<const uint8_t*>(data)[i];
    default: throw BenchError("internal: unsupported dtype in comparison");
  }
}

// One loaded program: its Module (mmap), method and the artifact's declared signature.
struct Graph {
  const Artifact* art = nullptr;
  std::unique_ptr<Module> module;
  double load_ms = 0.0;
};

std::vector<int64_t> to_vec(executorch::runtime::Span<const int32_t> sizes) {
  return std::vector<int64_t>(sizes.begin(), sizes.end());
}

// Compares the program's method meta with the index's declared signature; names any mismatch.
void check_meta(const Artifact& art, const executorch::runtime::MethodMeta& meta) {
  const std::string where = art.file.filename().string() + ": method '" + art.method + "'";
  if (meta.num_inputs() != art.inputs.size() || meta.num_outputs() != art.outputs.size()) {
    throw BenchError(where + " has " + std::to_string(meta.num_inputs()) + " inputs / " +
                     std::to_string(meta.num_outputs()) + " outputs but index.json declares " +
                     std::to_string(art.inputs.size()) + " / " + std::to_string(art.outputs.size()));
  }
  auto check = [&](const char* kind, size_t i, const TensorSpec& s, auto info) {
    if (!info.ok()) {
      throw BenchError(where + " " + kind + " " + std::to_string(i) + " ('" + s.name + "') is not a tensor");
    }
    const auto shape = to_vec(info->sizes());
    const std::string dt = dtype_name(info->scalar_type());
    if (shape != s.shape || dt != s.dtype) {
      throw BenchError(where + " " + kind + " " + std::to_string(i) + " ('" + s.name + "') is " + dt + " " +
                       shape_str(shape) + " in the program but " + s.dtype + " " + shape_str(s.shape) +
                       " in index.json");
    }
  };
  for (size_t i = 0; i < art.inputs.size(); ++i) check("input", i, art.inputs[i], meta.input_tensor_meta(i));
  for (size_t i = 0; i < art.outputs.size(); ++i) check("output", i, art.outputs[i], meta.output_tensor_meta(i));
}

Graph load_graph(const Artifact& art, bool etdump) {
  if (!fs::is_regular_file(art.file)) {
    throw BenchError(art.file.string() + ": program file missing from the pack");
  }
  Graph g;
  g.art = &art;
  const auto t0 = Clock::now();
  std::unique_ptr<executorch::runtime::EventTracer> tracer;
#ifdef EDGETAM_BENCH_HAVE_ETDUMP
  if (etdump) tracer = std::make_unique<executorch::etdump::ETDumpGen>();
#else
  (void)etdump;
#endif
  g.module = std::make_unique<Module>(art.file.string(), Module::LoadMode::Mmap, std::move(tracer));
  Error err = g.module->load();
  if (err != Error::Ok) {
    throw BenchError(art.file.string() + ": ExecuTorch cannot load this program (" +
                     et_reason(err) + "); the .pte is corrupt or from an incompatible exporter");
  }
  auto names = g.module->method_names();
  if (!names.ok() || !names->count(art.method)) {
    throw BenchError(art.file.string() + ": program has no method '" + art.method + "'");
  }
  auto meta = g.module->method_meta(art.method);
  if (!meta.ok()) {
    throw BenchError(art.file.string() + ": cannot read method meta (" + et_reason(meta.error()) + ")");
  }
  check_meta(art, *meta);
  err = g.module->load_method(art.method);
  if (err != Error::Ok) {
    throw BenchError(art.file.string() + ": cannot load method '" + art.method + "' (" +
                     et_reason(err) + "); missing kernel or backend?");
  }
  g.load_ms = ms_since(t0);
  return g;
}

class Runner {
 public:
  Runner(const Pack& pack, const Options& opt) : pack_(pack), opt_(opt) {}

  json run();

 private:
  // The prepared feeds of one call (tensors kept alive for the EValues pointing at them).
  struct Feeds {
    std::vector<HostTensor> host;
    std::vector<TensorPtr> tensors;
    std::vector<EValue> values;
  };

  Graph& graph(const std::string& name) {
    auto it = graphs_.find(name);
    if (it == graphs_.end()) {
      it = graphs_.emplace(name, load_graph(pack_.artifacts.at(name), opt_.etdump.has_value())).first;
    }
    return it->second;
  }

  const Feeds& feeds(const Call& call) {
    auto it = feeds_.find(call.key);
    if (it != feeds_.end()) return it->second;
    Feeds f;
    for (const std::string& key : call.input_keys) f.host.push_back(read_tensor(pack_, key));
    for (HostTensor& t : f.host) {
      std::vector<executorch::aten::SizesType> sizes(t.shape.begin(), t.shape.end());
      f.tensors.push_back(executorch::extension::from_blob(t.bytes.data(), sizes, scalar_type(t.dtype)));
    }
    for (const TensorPtr& t : f.tensors) f.values.emplace_back(*t);
    return feeds_.emplace(call.key, std::move(f)).first->second;
  }

  // Runs one call; returns its wall time. Numerics are compared on the call's first execution.
  double execute(const std::string& call_key) {
    const Call& call = pack_.calls.at(call_key);
    Graph& g = graph(call.graph);
    const Feeds& f = feeds(call);
    const auto t0 = Clock::now();
    auto result = g.module->execute(g.art->method, f.values);
    const double ms = ms_since(t0);
    if (!result.ok()) {
      throw BenchError("call '" + call.key + "': " + g.art->file.filename().string() + " method '" + g.art->method +
                       "' failed (" + et_reason(result.error()) + ")");
    }
    if (!compared_.count(call.key)) {
      compare(call, *g.art, *result);
      compared_.insert(call.key);
    }
    return ms;
  }

  void compare(const Call& call, const Artifact& art, const std::vector<EValue>& outputs);
  json graph_benchmarks(int warmup, int iterations);
  json frames(int warmup, int iterations);
  void write_etdumps();

  const Pack& pack_;
  const Options& opt_;
  std::map<std::string, Graph> graphs_;
  std::map<std::string, Feeds> feeds_;
  std::set<std::string> compared_;
  json numerics_ = json::array();
  json notes_ = json::array();
  bool passed_ = true;
};

void Runner::compare(const Call& call, const Artifact& art, const std::vector<EValue>& outputs) {
  for (const auto& [name, tkey] : call.expected) {
    size_t idx = 0;
    while (art.outputs[idx].name != name) ++idx;
    const HostTensor want = read_tensor(pack_, tkey);
    json row{{"call", call.key}, {"graph", call.graph}, {"output", name}};
    const auto tol_g = pack_.tolerances.find(call.graph);
    const Tolerance* tol = nullptr;
    if (tol_g != pack_.tolerances.end() && tol_g->second.count(name)) tol = &tol_g->second.at(name);
    row["kind"] = tol ? json(tol->kind) : json(nullptr);
    row["tolerance_rel_max_abs"] = tol ? json(tol->rel_max_abs) : json(nullptr);
    row["tolerance_min_cosine"] = tol ? json(tol->min_cosine) : json(nullptr);
    std::string error;
    if (idx >= outputs.size() || !outputs[idx].isTensor()) {
      error = "output " + std::to_string(idx) + " is not a tensor";
    } else if (tol == nullptr) {
      error = "plan.json has no tolerance for " + call.graph + "." + name;
    }
    double max_abs = 0, scale = 0, dot = 0, na = 0, nb = 0;
    bool finite = true;
    if (error.empty()) {
      const auto& t = outputs[idx].toTensor();
      if (static_cast<uint64_t>(t.numel()) != want.numel()) {
        error = "output has " + std::to_string(t.numel()) + " elements, expected " + std::to_string(want.numel());
      } else {
        const ScalarType wt = scalar_type(want.dtype);
        for (uint64_t i = 0; i < want.numel(); ++i) {
          const double a = element(t.const_data_ptr(), t.scalar_type(), i);
          const double b = element(want.bytes.data(), wt, i);
          if (!std::isfinite(a)) finite = false;
          max_abs = std::max(max_abs, std::fabs(a - b));
          scale = std::max(scale, std::fabs(b));
          dot += a * b;
          na += a * a;
          nb += b * b;
        }
        if (!finite) error = "output has non-finite values";
      }
    }
    if (!error.empty()) {
      for (const char* k : {"max_abs", "ref_scale", "rel_max_abs", "cosine"}) row[k] = nullptr;
      row["passed"] = false;
      row["error"] = error;
      passed_ = false;
    } else {
      const double ref_scale = scale > 0 ? scale : 1.0;
      const double rel = max_abs / ref_scale;
      double cos = 1.0;
      if (na > 0 || nb > 0) cos = (na > 0 && nb > 0) ? dot / (std::sqrt(na) * std::sqrt(nb)) : 0.0;
      const bool ok = rel <= tol->rel_max_abs && cos >= tol->min_cosine;
      row.update({{"max_abs", max_abs}, {"ref_scale", ref_scale}, {"rel_max_abs", rel}, {"cosine", cos},
                  {"passed", ok}, {"error", nullptr}});
      passed_ = passed_ && ok;
    }
    numerics_.push_back(row);
  }
}

json Runner::graph_benchmarks(int warmup, int iterations) {
  json out = json::object();
  for (const auto& [graph_name, call_key] : pack_.graph_benchmarks) {
    if (opt_.graphs && !opt_.graphs->count(graph_name)) continue;
    const Call& call = pack_.calls.at(call_key);
    if (call.graph != graph_name) {
      throw BenchError("plan.json: graph_benchmarks." + graph_name + " names call '" + call_key + "' of graph " + call.graph);
    }
    Graph& g = graph(graph_name);
    feeds(call);  // read feeds before timing
    const double first = execute(call_key);
    for (int i = 0; i < warmup; ++i) execute(call_key);
    std::vector<double> samples;
    for (int i = 0; i < iterations; ++i) samples.push_back(execute(call_key));
    out[graph_name] = json{{"artifact", g.art->file.lexically_relative(pack_.root).string()},
                           {"compile_ms", nullptr},
                           {"load_ms", g.load_ms},
                           {"first_inference_ms", first},
                           {"latency", latency_stats(samples)},
                           {"peak_memory_bytes", nullptr}};
  }
  return out;
}

json Runner::frames(int warmup, int iterations) {
  json out = json::object();
  for (const Frame& fr : pack_.frames) {
    if (opt_.frames && !opt_.frames->count(fr.name)) continue;
    // Load programs, read feeds and compare numerics outside the timed runs.
    for (const std::string& key : fr.calls) {
      if (!compared_.count(key)) execute(key);
      feeds(pack_.calls.at(key));
    }
    auto once = [&] {
      const auto t0 = Clock::now();
      for (const std::string& key : fr.calls) execute(key);
      return ms_since(t0);
    };
    for (int i = 0; i < warmup; ++i) once();
    std::vector<double> samples;
    for (int i = 0; i < iterations; ++i) samples.push_back(once());
    json stats = latency_stats(samples);
    const double p50 = stats["p50_ms"].get<double>();
    out[fr.name] = json{{"objects", fr.objects}, {"kind", fr.kind}, {"latency", stats},
                        {"fps", p50 > 0 ? 1000.0 / p50 : 0.0}, {"gflop", nullptr}};
  }
  return out;
}

void Runner::write_etdumps() {
  if (!opt_.etdump) return;
#ifdef EDGETAM_BENCH_HAVE_ETDUMP
  for (auto& [name, g] : graphs_) {
    auto* gen = static_cast<executorch::etdump::ETDumpGen*>(g.module->event_tracer());
    const auto data = gen->get_etdump_data();
    const fs::path& base = *opt_.etdump;
    const fs::path file = base.parent_path() / (base.stem().string() + "." + name + base.extension().string());
    std::ofstream os(file, std::ios::binary);
    if (!data.buf || !os.write(static_cast<const char*>(data.buf), static_cast<std::streamsize>(data.size))) {
      throw BenchError(file.string() + ": cannot write the ETDump");
    }
    free(data.buf);
    notes_.push_back("etdump " + name + ": " + file.string());
  }
#else
  throw BenchError("--etdump: this build has no ETDump support (the ExecuTorch package ships no executorch::etdump)");
#endif
}

json Runner::run() {
  const int warmup = opt_.warmup.value_or(pack_.warmup);
  const int iterations = opt_.iterations.value_or(pack_.iterations);
  std::optional<int> threads = opt_.threads ? opt_.threads : pack_.threads;
  auto* pool = executorch::extension::threadpool::get_threadpool();
  if (threads && pool) pool->_unsafe_reset_threadpool(static_cast<uint32_t>(*threads));
  if (pool) notes_.push_back("threadpool threads: " + std::to_string(pool->get_thread_count()));
  const bool xnnpack = executorch::runtime::get_backend_class("XnnpackBackend") != nullptr;
  if (!xnnpack) notes_.push_back("XnnpackBackend is not registered in this build");
  if (opt_.frames) {
    for (const std::string& name : *opt_.frames) {
      bool known = false;
      for (const Frame& fr : pack_.frames) known = known || fr.name == name;
      if (!known) throw BenchError("--frames: the plan has no frame '" + name + "'");
    }
  }
  if (opt_.graphs) {
    for (const std::string& name : *opt_.graphs) {
      bool known = false;
      for (const auto& gb : pack_.graph_benchmarks) known = known || gb.first == name;
      if (!known) throw BenchError("--graphs: the plan has no graph benchmark '" + name + "'");
    }
  }

  json graphs = graph_benchmarks(warmup, iterations);
  json frame_results = frames(warmup, iterations);
  // Every call the plan defines is compared, including those in frames not run.
  for (const std::string& key : pack_.call_order) {
    if (!compared_.count(key)) execute(key);
  }
  write_etdumps();

  const std::time_t now = std::time(nullptr);
  char created[32];
  std::strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  const json& ix = pack_.index;
  return json{
      {"format", "edgetam-bench-result"},
      {"version", 1},
      {"created", created},
      {"device", device_info(opt_.emulated)},
      {"runner",
       {{"name", "edgetam_bench"},
        {"version", EDGETAM_BENCH_VERSION},
        {"runtime", "executorch"},
        {"runtime_version", EXECUTORCH_BUILD_VERSION},
        {"timing_note", opt_.emulated ? json("emulated (qemu): timings are not the device's") : json(nullptr)}}},
      {"setting",
       {{"backend", ix.value("backend", "executorch")},
        {"precision", ix.value("precision", "")},
        {"threads", threads ? json(*threads) : json(nullptr)},
        {"compute_units", nullptr},
        {"delegate", xnnpack ? json("XnnpackBackend") : json(nullptr)},
        {"warmup", warmup},
        {"iterations", iterations}}},
      {"pack",
       {{"bundle_digest", ix.contains("bundle_digest") ? ix["bundle_digest"] : json(nullptr)},
        {"path", fs::absolute(pack_.root).lexically_normal().string()},
        {"weights", ix.contains("weights") && ix["weights"].is_object() ? ix["weights"] : json(nullptr)}}},
      {"graphs", graphs},
      {"frames", frame_results},
      {"numerics", numerics_},
      {"passed", passed_},
      {"notes", notes_}};
}

// Writes next to the target and renames, so a failed run never leaves half a result.
void write_atomic(const fs::path& out, const json& result) {
  const fs::path tmp = out.string() + ".tmp." + std::to_string(getpid());
  {
    std::ofstream os(tmp, std::ios::binary);
    os << result.dump(2) << "\n";
    if (!os) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw BenchError(out.string() + ": cannot write the result");
    }
  }
  fs::rename(tmp, out);
}

}  // namespace
}  // namespace edgetam_bench

int main(int argc, char** argv) {
  using namespace edgetam_bench;
  try {
    const Options opt = parse_args(argc, argv);
    executorch::runtime::register_pal(executorch::runtime::PalImpl::create(emit_log, __FILE__));
    executorch::runtime::runtime_init();
    const Pack pack = load_pack(opt.pack);
    Runner runner(pack, opt);
    const json result = runner.run();
    write_atomic(opt.out, result);
    return result["passed"].get<bool>() ? 0 : 1;
  } catch (const BenchError& e) {
    std::cerr << "edgetam_bench: error: " << e.what() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "edgetam_bench: error: " << e.what() << "\n";
  }
  return 2;
}
