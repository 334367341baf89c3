// The tuner's search space and objective: which weight settings each layer
// may take (format families x bit widths, filter-wise mixes, fp32), and what
// is minimized (bytes, bit-operations, measured latency, or a weighted sum).
#ifndef LOWBIT_TUNE_SPACE_H_
#define LOWBIT_TUNE_SPACE_H_

#include <string>
#include <vector>

#include "lowbit/status.h"

namespace lowbit {

// objective = size * bytes / fp32 bytes + bitops * bit-ops / fp32 bit-ops +
// latency * ms / fp32 ms (each term relative to the fp32 model).
struct ObjectiveSpec {
  double size = 0, bitops = 0, latency = 0;
  std::string text;  // as given, for reports
};

// "size", "bitops", "latency", or a weighted sum such as "size+0.3*latency".
Result<ObjectiveSpec> ParseObjective(const std::string& text);

struct SpaceOptions {
  // Families: int, int-asym, uint, pow2, nhot2, nhot3, codebook (default: int,
  // int-asym, pow2, nhot2, codebook).
  std::vector<std::string> formats;
  std::vector<int> bits = {1, 2, 3, 4, 5, 6, 7, 8};  // the widths searched
  bool filter_wise = true;  // mixes of two int widths per layer
  bool allow_fp32 = true;   // a layer may stay fp32 ("float")
};

// Parses --formats (comma-separated) and --bits ("2..6", "4", "2,4,8").
Status ParseFormatsOption(const std::string& text, SpaceOptions* o);
Status ParseBitsOption(const std::string& text, SpaceOptions* o);

// The weight settings of the space, each a name `lowbit quantize --weights`
// takes ("int4", "pow2-4", "int2/int4:0.25", "float"), cheapest family
// widths first. Errors name the option and the value.
Result<std::vector<std::string>> SearchSpace(const SpaceOptions& o);

}  // namespace lowbit

#endif  // LOWBIT_TUNE_SPACE_H_
