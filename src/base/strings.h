// Parsing helpers for user-facing option values (bit lists, numbers).
#ifndef LOWBIT_BASE_STRINGS_H_
#define LOWBIT_BASE_STRINGS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/status.h"

namespace lowbit {

std::vector<std::string> Split(std::string_view s, char sep);

// Parses a whole decimal integer; `what` names the option in the error.
Result<int64_t> ParseInt(std::string_view s, std::string_view what);
// Parses a whole finite decimal number.
Result<double> ParseDouble(std::string_view s, std::string_view what);

// Parses "0.5" or "0.1,0.2,0.3" (empty text: an empty list).
Result<std::vector<float>> ParseFloatList(std::string_view s, std::string_view what);

// Parses "2,4", "2..8" or "1,3..5" into a sorted list without duplicates, each
// within [lo, hi].
Result<std::vector<int>> ParseIntList(std::string_view s, int lo, int hi, std::string_view what);

}  // namespace lowbit

#endif  // LOWBIT_BASE_STRINGS_H_
