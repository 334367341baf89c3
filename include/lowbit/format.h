// Number formats: one abstraction over how a number is stored.
//
// Every low-bit format decodes through a table. A code is an index into an
// ascending list of levels, and
//
//     value = scale[granule] * (level[code] - zero_point[granule])
//
// Families differ only in where the levels come from:
//   int       the integers of a b-bit grid (signed, unsigned or with a zero point)
//   pow2      0 and +-2^-k, k = 0..2^(b-1)-2 (sign and exponent)
//   nhot      2^b integers, each a sum/difference of at most n powers of two in
//             [1, 64], chosen to fit the data (a multiply is n shift-adds)
//   codebook  2^b arbitrary values from 1-D k-means
//   float     fp32 / fp16 / bf16 passthrough (no table, no scale)
// A granule is the whole tensor, one output channel (row), or a group of g
// consecutive inputs of one channel. The level table is shared by the tensor;
// scales (and zero points) are per granule.
//
// Tensors are viewed as 2-D: rows = output channels (dim 0), cols = the product
// of the remaining dims (a Conv weight [O, I, kh, kw] has cols = I*kh*kw).
#ifndef LOWBIT_FORMAT_H_
#define LOWBIT_FORMAT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/status.h"

namespace lowbit {

enum class Family {
#define X(ident, name) k##ident,
#include "lowbit/families.inc"
#undef X
};
inline constexpr int kNumFamilies = 0
#define X(ident, name) +1
#include "lowbit/families.inc"
#undef X
    ;

// "int", "pow2", ...: the family's stable name.
std::string_view FamilyName(Family family);

enum class FloatKind { kFp32, kFp16, kBf16 };

// What a format is, independent of any data: parsed from and printed as a
// stable name such as "int4", "uint8", "int3-asym", "pow2-4", "nhot2-4",
// "codebook-3", "fp32", "fp16", "bf16".
struct FormatSpec {
  Family family = Family::kInt;
  int bits = 8;              // code width: 1..8, or 16/32 for float
  bool is_signed = true;     // int: signed grid; false: [0, 2^b - 1]
  bool asymmetric = false;   // int: per-granule integer zero point
  int hot = 0;               // nhot: n in 1..3
  FloatKind float_kind = FloatKind::kFp32;

  bool operator==(const FormatSpec&) const = default;
};

// Parses a format name; the error lists the accepted forms.
Result<FormatSpec> ParseFormat(std::string_view name);
// The stable name of a valid spec (ParseFormat(FormatName(s)) == s).
std::string FormatName(const FormatSpec& spec);
// Checks bit widths and family parameters; the error names the spec.
Status ValidateSpec(const FormatSpec& spec);
// The name without its bit width ("int", "int-asym", "nhot2", "codebook", or a
// float's full name): selects variants across widths in reports.
std::string FormatTemplate(const FormatSpec& spec);
// Every valid spec of `bits` bits, family by family in families.inc order.
std::vector<FormatSpec> AllVariants(int bits);

// The cost of one multiply by a weight of this format, for cost models.
struct MultiplyCost {
  // Weight-side operand width, the "bits" of MACs x bits (bit-operations).
  int bits = 0;
  // Shift-adds that replace one multiply (pow2, nhot); 0 when a multiply is a
  // real multiply (int, codebook, float).
  int shift_adds = 0;
  // One number for the tuner to add up per multiply: bit width for int and
  // codebook (a b-bit index drives a bit-serial lookup), shift-adds for pow2
  // and nhot, 16/32 for float.
  double ops = 0;
};
MultiplyCost CostOf(const FormatSpec& spec);

enum class Granularity { kTensor, kChannel, kGroup };

// Parses "tensor", "channel" or "group:G" (G >= 1).
struct GranularitySpec {
  Granularity kind = Granularity::kTensor;
  int64_t group_size = 0;  // kGroup only
  bool operator==(const GranularitySpec&) const = default;
};
Result<GranularitySpec> ParseGranularity(std::string_view text);
std::string GranularityName(const GranularitySpec& g);

// How a granule's range is chosen.
enum class ClipMethod {
  kMinMax,      // no clipping: the largest magnitude is representable
  kPercentile,  // clip at a percentile of |x| (or of x for asymmetric ranges)
  kMse,         // search the scale that minimizes the squared error
};

enum class CodebookInit {
  kDp,        // exact 1-D k-means by dynamic programming (binned when large)
  kKMeansPP,  // k-means++ seeding, then Lloyd
  kPso,       // particle-swarm optimised centroids (seed 002), then Lloyd
};

struct FitOptions {
  GranularitySpec granularity;
  ClipMethod clip = ClipMethod::kMse;
  double percentile = 99.99;  // kPercentile: in (0, 100]
  CodebookInit codebook_init = CodebookInit::kDp;
  uint64_t seed = 1;          // PSO and k-means++
  // The level table must contain an exact 0 (set when the tensor was pruned,
  // so pruned weights stay exactly zero).
  bool require_zero = false;
};

// Parses "minmax", "mse" or "percentile:P".
Status ParseClip(std::string_view text, FitOptions* options);
Result<CodebookInit> ParseCodebookInit(std::string_view text);

// A format fitted to one 2-D tensor: everything needed to encode and decode.
struct QuantParams {
  FormatSpec spec;
  GranularitySpec granularity;
  int64_t rows = 0, cols = 0;
  std::vector<float> levels;         // strictly ascending; code = index. Empty for float.
  std::vector<float> scales;         // one per granule, finite and > 0. Empty for float.
  std::vector<int32_t> zero_points;  // one per granule for asymmetric int, else empty

  int64_t num_granules() const;
  // Granules per row (1 for tensor/channel granularity... see granule_of).
  int64_t groups_per_row() const;
  // The granule that holds element (r, c).
  int64_t granule_of(int64_t r, int64_t c) const {
    switch (granularity.kind) {
      case Granularity::kTensor: return 0;
      case Granularity::kChannel: return r;
      case Granularity::kGroup: return r * groups_per_row() + c / granularity.group_size;
    }
    return 0;
  }
  int zero_point(int64_t g) const { return zero_points.empty() ? 0 : zero_points[g]; }
  // Number of distinct codes (levels.size(), or 2^bits for float).
  int64_t num_codes() const;
  // Decodes one code of granule g.
  float Decode(uint32_t code, int64_t g) const;
};

// Chooses the format's parameters for x (rows x cols, row-major): scales, zero
// points and, for nhot and codebook, the level table. Refuses empty tensors,
// NaN/Inf (naming the index and value) and invalid specs or options.
Result<QuantParams> Fit(const float* x, int64_t rows, int64_t cols, const FormatSpec& spec,
                        const FitOptions& options);

// The level table a spec implies (int, uint, int-asym, pow2), as Fit would
// produce it; an error for families whose levels are fitted to data and
// stored (nhot, codebook) and for floats. Loaders use it to rebuild params.
Result<std::vector<float>> ImpliedLevels(const FormatSpec& spec);
// Whether the spec's level table is stored with the tensor.
bool StoresLevels(const FormatSpec& spec);

// Encodes x (rows x cols) to codes (one uint32 per value). With u = x / scale
// and effective levels l = level - zero_point: u at or beyond an end level
// takes that end's code; otherwise the level at the least float distance
// |u - l|, ties going to the smaller |l|, then to the positive l. Refuses
// NaN/Inf, naming the index and value.
Status Encode(const QuantParams& params, const float* x, uint32_t* codes);
// Decodes codes (rows x cols) to fp32.
void Decode(const QuantParams& params, const uint32_t* codes, float* out);

// Magnitude pruning: sets the `ratio` fraction of smallest-magnitude values of
// x to exactly zero (ratio in [0, 1)); ties at the threshold are pruned in
// index order so exactly round(ratio * n) values are zeroed.
Status Prune(float* x, int64_t n, double ratio);

struct ErrorStats {
  double mse = 0;
  double sqnr_db = 0;  // 10 log10(sum x^2 / sum (x - xhat)^2); +inf when exact
  double max_abs = 0;
};
ErrorStats MeasureError(const float* x, const float* xhat, int64_t n);

// Storage of a fitted format in bits, exactly as lowbit persists it: codes
// (rows padded to whole bytes), fp32 scales, one byte per zero point, the level
// table (fp32 per codebook level, int8 per nhot level, none when the spec
// implies it).
struct StorageBits {
  int64_t codes = 0, scales = 0, zero_points = 0, levels = 0;
  int64_t total() const { return codes + scales + zero_points + levels; }
};
StorageBits StorageOf(const QuantParams& params);

// Bytes in one packed row of `cols` codes of `bits` bits: rows start on byte
// boundaries.
inline int64_t PackedRowBytes(int64_t cols, int bits) { return (cols * bits + 7) / 8; }

}  // namespace lowbit

#endif  // LOWBIT_FORMAT_H_
