// Reading a bench pack (benchmarks/schema/pack.md): index.json, plan.json and raw tensors,
// with every cross-reference checked so a runner failure points at the pack, not the model.
#include <fstream>
#include <sstream>

#include "bench.h"

namespace edgetam_bench {

namespace {

json read_json(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw BenchError(path.string() + ": cannot open (is this a bench pack folder?)");
  }
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw BenchError(path.string() + ": not valid JSON (" + e.what() + ")");
  }
}

std::vector<int64_t> shape_of(const json& j) {
  std::vector<int64_t> shape;
  for (const auto& d : j) {
    shape.push_back(d.get<int64_t>());
  }
  return shape;
}

std::vector<TensorSpec> specs_of(const json& list) {
  std::vector<TensorSpec> out;
  for (const auto& s : list) {
    out.push_back({s.at("name").get<std::string>(), s.at("dtype").get<std::string>(), shape_of(s.at("shape"))});
  }
  return out;
}

void parse_index(Pack& p) {
  const json& ix = p.index;
  if (ix.value("format", "") != "edgetam-bench-pack" || ix.value("version", 0) != 1) {
    throw BenchError("index.json: not an edgetam-bench-pack version 1 index");
  }
  for (const auto& [graph, a] : ix.at("artifacts").items()) {
    Artifact art{graph, p.root / a.at("file").get<std::string>(), a.value("method", "forward"),
                 specs_of(a.at("inputs")), specs_of(a.at("outputs"))};
    p.artifacts.emplace(graph, std::move(art));
  }
  for (const auto& [key, t] : ix.at("tensors").items()) {
    TensorEntry e{key, p.root / t.at("file").get<std::string>(), t.at("dtype").get<std::string>(),
                  shape_of(t.at("shape")), t.at("nbytes").get<uint64_t>()};
    p.tensors.emplace(key, std::move(e));
  }
}

const TensorEntry& tensor_entry(const Pack& p, const std::string& key, const std::string& where) {
  auto it = p.tensors.find(key);
  if (it == p.tensors.end()) {
    throw BenchError("plan.json: " + where + " names tensor '" + key + "', which index.json does not list");
  }
  return it->second;
}

void check_spec(const TensorEntry& t, const TensorSpec& s, const std::string& where) {
  if (t.dtype != s.dtype || t.shape != s.shape) {
    throw BenchError("index.json: tensor '" + t.key + "' is " + t.dtype + " " + shape_str(t.shape) + " but " +
                     where + " '" + s.name + "' is " + s.dtype + " " + shape_str(s.shape));
  }
}

void parse_plan(Pack& p) {
  const json& pl = p.plan;
  if (pl.value("format", "") != "edgetam-bench-plan" || pl.value("version", 0) != 1) {
    throw BenchError("plan.json: not an edgetam-bench-plan version 1 plan");
  }
  p.warmup = pl.value("warmup", 0);
  p.iterations = pl.value("iterations", 1);
  if (pl.contains("threads") && !pl.at("threads").is_null()) {
    p.threads = pl.at("threads").get<int>();
  }
  for (const auto& [key, c] : pl.at("calls").items()) {
    Call call;
    call.key = key;
    call.graph = c.at("graph").get<std::string>();
    auto art = p.artifacts.find(call.graph);
    if (art == p.artifacts.end()) {
      throw BenchError("plan.json: call '" + key + "' runs graph '" + call.graph + "', which index.json has no artifact for");
    }
    const json& ins = c.at("inputs");
    for (const TensorSpec& s : art->second.inputs) {
      if (!ins.contains(s.name)) {
        throw BenchError("plan.json: call '" + key + "' gives no tensor for input '" + s.name + "' of " + call.graph);
      }
      const std::string tkey = ins.at(s.name).get<std::string>();
      check_spec(tensor_entry(p, tkey, "call '" + key + "'"), s, call.graph + " input");
      call.input_keys.push_back(tkey);
    }
    for (const auto& [out_name, tkey_j] : c.at("expected").items()) {
      const std::string tkey = tkey_j.get<std::string>();
      const TensorSpec* spec = nullptr;
      for (const TensorSpec& s : art->second.outputs) {
        if (s.name == out_name) spec = &s;
      }
      if (spec == nullptr) {
        throw BenchError("plan.json: call '" + key + "' expects output '" + out_name + "', which " + call.graph + " does not have");
      }
      check_spec(tensor_entry(p, tkey, "call '" + key + "'"), *spec, call.graph + " output");
      call.expected.emplace_back(out_name, tkey);
    }
    p.call_order.push_back(key);
    p.calls.emplace(key, std::move(call));
  }
  auto need_call = [&](const std::string& key, const std::string& where) {
    if (!p.calls.count(key)) {
      throw BenchError("plan.json: " + where + " names call '" + key + "', which plan.json calls does not define");
    }
  };
  for (const auto& [graph, key_j] : pl.at("graph_benchmarks").items()) {
    const std::string key = key_j.get<std::string>();
    need_call(key, "graph_benchmarks." + graph);
    p.graph_benchmarks.emplace_back(graph, key);
  }
  for (const auto& f : pl.at("frames")) {
    Frame fr{f.at("name").get<std::string>(), f.value("objects", 1), f.at("kind").get<std::string>(), {}};
    for (const auto& c : f.at("calls")) {
      fr.calls.push_back(c.get<std::string>());
      need_call(fr.calls.back(), "frame '" + fr.name + "'");
    }
    p.frames.push_back(std::move(fr));
  }
  if (pl.contains("tolerances")) {
    for (const auto& [graph, outs] : pl.at("tolerances").items()) {
      for (const auto& [out, t] : outs.items()) {
        p.tolerances[graph][out] = {t.value("kind", ""), t.at("rel_max_abs").get<double>(),
                                    t.at("min_cosine").get<double>()};
      }
    }
  }
}

}  // namespace

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

size_t dtype_size(const std::string& dtype) {
  if (dtype == "float32" || dtype == "int32") return 4;
  if (dtype == "float16") return 2;
  if (dtype == "int64") return 8;
  if (dtype == "uint8") return 1;
  throw BenchError("unsupported tensor dtype '" + dtype + "' (pack format v1: float32, float16, int32, int64, uint8)");
}

uint64_t HostTensor::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

Pack load_pack(const fs::path& root) {
  if (!fs::is_directory(root)) {
    throw BenchError(root.string() + ": no such pack folder");
  }
  Pack p;
  p.root = root;
  p.index = read_json(root / "index.json");
  p.plan = read_json(root / "plan.json");
  const char* stage = "index.json";
  try {
    parse_index(p);
    stage = "plan.json";
    parse_plan(p);
  } catch (const json::exception& e) {
    throw BenchError(std::string(stage) + ": missing or malformed field (" + e.what() + ")");
  }
  return p;
}

HostTensor read_tensor(const Pack& pack, const std::string& key) {
  auto it = pack.tensors.find(key);
  if (it == pack.tensors.end()) {
    throw BenchError("index.json: no tensor '" + key + "'");
  }
  const TensorEntry& e = it->second;
  HostTensor t{e.dtype, e.shape, {}};
  const uint64_t want = t.numel() * dtype_size(e.dtype);
  if (want != e.nbytes) {
    throw BenchError("index.json: tensor '" + key + "' declares nbytes " + std::to_string(e.nbytes) + " but " + e.dtype +
                     " " + shape_str(e.shape) + " needs " + std::to_string(want));
  }
  std::error_code ec;
  const auto size = fs::file_size(e.file, ec);
  if (ec) {
    throw BenchError(e.file.string() + ": tensor file missing (" + ec.message() + ")");
  }
  if (size != want) {
    throw BenchError(e.file.string() + ": tensor file has " + std::to_string(size) + " bytes, expected " +
                     std::to_string(want) + " (" + e.dtype + " " + shape_str(e.shape) + "); truncated or corrupt pack");
  }
  t.bytes.resize(want);
  std::ifstream in(e.file, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(t.bytes.data()), static_cast<std::streamsize>(want))) {
    throw BenchError(e.file.string() + ": could not read " + std::to_string(want) + " bytes");
  }
  return t;
}

}  // namespace edgetam_bench
