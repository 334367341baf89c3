// The per-family operations behind the Number abstraction. Each family lives in
// one file (int_family.cc, ...) and registers through include/lowbit/families.inc;
// nothing outside src/format knows which families exist.
#ifndef LOWBIT_FORMAT_FAMILY_H_
#define LOWBIT_FORMAT_FAMILY_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/format.h"

namespace lowbit {

// A level table fitted in normalized units: each granule's data is divided by
// its range statistic (max |x|, a percentile of |x|, or max x for unsigned
// grids), so |v| <= ~1. The granule's scale is then statistic * unit.
struct LevelFit {
  std::vector<float> levels;  // strictly ascending
  double unit = 1.0;
};

class FamilyOps {
 public:
  virtual ~FamilyOps() = default;

  // Parses a name of this family: nullopt when the name is another family's;
  // an error when it is this family's but malformed or out of range.
  virtual std::optional<Result<FormatSpec>> Parse(std::string_view name) const = 0;
  virtual std::string Name(const FormatSpec& spec) const = 0;
  // The name without the bit width ("int", "int-asym", "nhot2", "codebook";
  // floats keep their name): how reports select variants across widths.
  virtual std::string Template(const FormatSpec& spec) const = 0;
  virtual Status Validate(const FormatSpec& spec) const = 0;
  virtual MultiplyCost Cost(const FormatSpec& spec) const = 0;
  // Bits the persisted level table takes (0 when the spec implies the levels).
  virtual int64_t LevelTableBits(const FormatSpec& spec, int64_t num_levels) const = 0;
  // Whether the level table can contain an exact zero (pruned weights need it).
  virtual bool CanRepresentZero(const FormatSpec& spec) const = 0;
  // The level table. Fixed families ignore `normalized`; data-fitted families
  // (nhot, codebook) fit it to the pooled normalized values of all granules.
  virtual Result<LevelFit> FitLevels(const FormatSpec& spec, std::vector<float> normalized,
                                     const FitOptions& options) const = 0;
  // Every variant of this family at `bits` bits (empty if none): what tests
  // and `lowbit formats` iterate over.
  virtual std::vector<FormatSpec> Variants(int bits) const = 0;
};

const FamilyOps& OpsFor(Family family);

// nhot's candidate levels: every integer in [-127, 127] that is a sum of at
// most n signed powers of two 2^0..2^6, ascending.
std::vector<int> NHotCandidates(int n);

// Parses the "-B" tail of names like "pow2-4", "codebook-3": returns B or an
// error naming `name`.
Result<int> ParseBitsSuffix(std::string_view name, std::string_view digits);

}  // namespace lowbit

#endif  // LOWBIT_FORMAT_FAMILY_H_
