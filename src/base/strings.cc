#include "base/strings.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace lowbit {

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t pos = s.find(sep, start);
    out.emplace_back(s.substr(start, pos == std::string_view::npos ? s.npos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

Result<int64_t> ParseInt(std::string_view s, std::string_view what) {
  const std::string str(s);
  if (str.empty()) return InvalidArgument(what, ": expected an integer, got ''");
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(str.c_str(), &end, 10);
  if (errno != 0 || end != str.c_str() + str.size()) {
    return InvalidArgument(what, ": expected an integer, got '", str, "'");
  }
  return static_cast<int64_t>(v);
}

Result<double> ParseDouble(std::string_view s, std::string_view what) {
  const std::string str(s);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(str.c_str(), &end);
  if (str.empty() || errno != 0 || end != str.c_str() + str.size() || !std::isfinite(v)) {
    return InvalidArgument(what, ": expected a finite number, got '", str, "'");
  }
  return v;
}

Result<std::vector<float>> ParseFloatList(std::string_view s, std::string_view what) {
  std::vector<float> out;
  if (s.empty()) return out;
  for (const std::string& part : Split(s, ',')) {
    double v;
    LOWBIT_ASSIGN_OR_RETURN(v, ParseDouble(part, what));
    out.push_back(static_cast<float>(v));
  }
  return out;
}

Result<std::vector<int>> ParseIntList(std::string_view s, int lo, int hi, std::string_view what) {
  std::vector<int> out;
  for (const std::string& part : Split(s, ',')) {
    const size_t dots = part.find("..");
    int64_t a, b;
    if (dots == std::string::npos) {
      LOWBIT_ASSIGN_OR_RETURN(a, ParseInt(part, what));
      b = a;
    } else {
      LOWBIT_ASSIGN_OR_RETURN(a, ParseInt(std::string_view(part).substr(0, dots), what));
      LOWBIT_ASSIGN_OR_RETURN(b, ParseInt(std::string_view(part).substr(dots + 2), what));
      if (a > b) return InvalidArgument(what, ": empty range '", part, "'");
    }
    if (a < lo || b > hi) {
      return InvalidArgument(what, ": ", (a < lo ? a : b), " is out of range ", lo, "..", hi);
    }
    for (int64_t v = a; v <= b; ++v) out.push_back(static_cast<int>(v));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace lowbit
