// Device description for the result JSON from uname, /proc/cpuinfo and sysconf (the Android
// driver overrides model/chipset with getprop values).
#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>

#include "bench.h"

namespace edgetam_bench {

namespace {

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t");
  const auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// First value of each "key : value" line of /proc/cpuinfo.
std::map<std::string, std::string> cpuinfo() {
  std::map<std::string, std::string> out;
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    out.emplace(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
  }
  return out;
}

}  // namespace

json device_info(bool emulated) {
  utsname u{};
  uname(&u);
  const auto info = cpuinfo();
  std::string model = "unknown";
  json chipset = nullptr;
  for (const char* k : {"model name", "Model", "Processor", "cpu model"}) {
    if (info.count(k)) {
      model = info.at(k);
      break;
    }
  }
  if (info.count("Hardware")) chipset = info.at("Hardware");
  if (model == "unknown" && info.count("CPU implementer") && info.count("CPU part")) {
    model = "ARM implementer " + info.at("CPU implementer") + " part " + info.at("CPU part");
  }
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  return json{{"model", model},
              {"os", std::string(u.sysname) + " " + u.release},
              {"arch", std::string(u.machine)},
              {"cores", cores > 0 ? cores : 1},
              {"memory_bytes", pages > 0 && page > 0 ? json(static_cast<int64_t>(pages) * page) : json(nullptr)},
              {"chipset", chipset},
              {"emulated", emulated}};
}

}  // namespace edgetam_bench
