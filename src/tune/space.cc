#include "tune/space.h"

#include <algorithm>
#include <cstdlib>

#include "base/strings.h"
#include "lowbit/format.h"

namespace lowbit {
namespace {

// Family name -> (format prefix, bit widths the integer kernels run it at).
struct FamilyRange {
  const char* name;
  const char* prefix;  // the weight name is prefix + bits
  int lo, hi;          // widths the 8-bit kernels run
};
constexpr FamilyRange kFamilies[] = {
    {"int", "int", 1, 8},      {"int-asym", "int", 2, 8}, {"uint", "uint", 1, 8},
    {"pow2", "pow2-", 2, 5},   {"nhot2", "nhot2-", 3, 6}, {"nhot3", "nhot3-", 4, 6},
    {"codebook", "codebook-", 1, 4},
};

const FamilyRange* FindFamily(const std::string& name) {
  for (const FamilyRange& f : kFamilies) {
    if (name == f.name) return &f;
  }
  return nullptr;
}

}  // namespace

Result<ObjectiveSpec> ParseObjective(const std::string& text) {
  ObjectiveSpec o;
  o.text = text;
  if (text.empty()) return InvalidArgument("--objective is empty (size, bitops, latency or a sum)");
  for (const std::string& term : Split(text, '+')) {
    double weight = 1.0;
    std::string name = term;
    const size_t star = term.find('*');
    if (star != std::string::npos) {
      char* end = nullptr;
      weight = std::strtod(term.c_str(), &end);
      if (end != term.c_str() + star || !(weight > 0)) {
        return InvalidArgument("--objective '", text, "': weight '", term.substr(0, star),
                               "' is not a positive number");
      }
      name = term.substr(star + 1);
    }
    if (name == "size") {
      o.size += weight;
    } else if (name == "bitops") {
      o.bitops += weight;
    } else if (name == "latency") {
      o.latency += weight;
    } else {
      return InvalidArgument("--objective '", text, "': unknown objective '", name,
                             "' (size, bitops, latency, or a sum like 'size+0.3*latency')");
    }
  }
  return o;
}

Status ParseFormatsOption(const std::string& text, SpaceOptions* o) {
  o->formats.clear();
  for (const std::string& f : Split(text, ',')) {
    if (FindFamily(f) == nullptr) {
      std::string names;
      for (const FamilyRange& r : kFamilies) names += (names.empty() ? "" : ", ") + std::string(r.name);
      return InvalidArgument("--formats '", text, "': '", f,
                             "' is not a family the kernels run (", names, ")");
    }
    o->formats.push_back(f);
  }
  return OkStatus();
}

Status ParseBitsOption(const std::string& text, SpaceOptions* o) {
  auto bad = [&] { return InvalidArgument("--bits '", text, "': expected N, A..B or a list, in 1..8"); };
  std::vector<int> bits;
  const size_t dots = text.find("..");
  if (dots != std::string::npos) {
    const int a = std::atoi(text.substr(0, dots).c_str()), b = std::atoi(text.substr(dots + 2).c_str());
    if (a < 1 || b > 8 || a > b) return bad();
    o->bits.clear();
    for (int v = a; v <= b; ++v) o->bits.push_back(v);
    return OkStatus();
  }
  for (const std::string& p : Split(text, ',')) {
    char* end = nullptr;
    const long v = std::strtol(p.c_str(), &end, 10);
    if (p.empty() || *end != '\0' || v < 1 || v > 8) return bad();
    bits.push_back(static_cast<int>(v));
  }
  std::sort(bits.begin(), bits.end());
  bits.erase(std::unique(bits.begin(), bits.end()), bits.end());
  o->bits = bits;
  return OkStatus();
}

Result<std::vector<std::string>> SearchSpace(const SpaceOptions& o) {
  const std::vector<std::string> formats =
      o.formats.empty() ? std::vector<std::string>{"int", "int-asym", "pow2", "nhot2", "codebook"}
                        : o.formats;
  std::vector<std::string> out;
  for (const std::string& name : formats) {
    const FamilyRange* f = FindFamily(name);
    if (f == nullptr) return InvalidArgument("--formats: unknown family '", name, "'");
    for (int b : o.bits) {
      if (b < f->lo || b > f->hi) continue;
      std::string w = f->prefix + std::to_string(b);
      if (name == "int-asym") w += "-asym";
      if (!ParseFormat(w).ok()) continue;
      out.push_back(w);
    }
  }
  // Filter-wise mixes of the int widths the plane kernels run (one layout).
  if (o.filter_wise && std::find(formats.begin(), formats.end(), "int") != formats.end()) {
    const std::pair<int, int> pairs[] = {{1, 2}, {2, 4}, {4, 8}};
    for (const auto& [lo, hi] : pairs) {
      const auto has = [&](int v) { return std::find(o.bits.begin(), o.bits.end(), v) != o.bits.end(); };
      if (!has(lo) || !has(hi)) continue;
      for (const char* frac : {"0.125", "0.25", "0.5"}) {
        out.push_back("int" + std::to_string(lo) + "/int" + std::to_string(hi) + ":" + frac);
      }
    }
  }
  if (out.empty()) {
    return InvalidArgument("--formats and --bits leave no format to search");
  }
  if (o.allow_fp32) out.push_back("float");
  return out;
}

}  // namespace lowbit
