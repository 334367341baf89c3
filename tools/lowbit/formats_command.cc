// `lowbit formats`: fits every requested format family at every requested bit
// width to one tensor and reports the error, the storage (with every scale,
// zero point and level table counted) and the cost of one multiply.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "base/npy.h"
#include "base/progress.h"
#include "base/rng.h"
#include "base/strings.h"
#include "commands.h"
#include "lowbit/packed_tensor.h"

namespace lowbit {
namespace {

struct FormatsArgs {
  std::string bits = "1..8,16,32";
  std::string data = "laplace";
  std::string families = "int,int-asym,pow2,nhot1,nhot2,nhot3,codebook,fp16,bf16,fp32";
  std::string granularity = "tensor";
  std::string clip = "mse";
  std::string codebook_init = "dp";
  double prune = 0.0;
  int64_t samples = int64_t{1} << 20;
  uint64_t seed = 1;
  bool json = false;
  bool quiet = false;
};

struct Row {
  FormatSpec spec;
  GranularitySpec granularity;
  ErrorStats error;
  PackedTensor::Bytes bytes;
  double bits_per_value;
  int64_t levels;
  double seconds;
};

Status LoadData(const FormatsArgs& a, std::vector<float>* x, std::vector<int64_t>* shape,
                std::string* description) {
  if (a.data == "laplace" || a.data == "normal") {
    if (a.samples < 1 || a.samples > (int64_t{1} << 28)) {
      return InvalidArgument("--samples must be in 1..", int64_t{1} << 28, ", got ", a.samples);
    }
    Rng rng(a.seed);
    x->resize(a.samples);
    for (float& v : *x) v = static_cast<float>(a.data == "laplace" ? rng.Laplace(1.0) : rng.Normal());
    // Rows of 1024 like the output channels of a weight matrix.
    const int64_t cols = a.samples % 1024 == 0 ? 1024 : a.samples;
    *shape = {a.samples / cols, cols};
    *description = StrCat(a.samples, " samples of a ", a.data, " distribution (seed ", a.seed,
                          "), viewed as ", (*shape)[0], " x ", cols);
    return OkStatus();
  }
  if (a.data.size() < 4 || a.data.substr(a.data.size() - 4) != ".npy") {
    return InvalidArgument("--data: expected laplace, normal or a .npy file, got '", a.data, "'");
  }
  NpyArray arr;
  LOWBIT_ASSIGN_OR_RETURN(arr, ReadNpy(a.data));
  if (arr.data.empty()) return InvalidArgument(a.data, ": the array is empty");
  *shape = arr.shape.empty() ? std::vector<int64_t>{1} : arr.shape;
  int64_t rows, cols;
  LOWBIT_RETURN_IF_ERROR(ShapeAs2D(*shape, &rows, &cols));
  *x = std::move(arr.data);
  *description = StrCat(a.data, ", viewed as ", rows, " x ", cols);
  return OkStatus();
}

Status RunFormats(const FormatsArgs& a) {
  std::vector<int> bits;
  LOWBIT_ASSIGN_OR_RETURN(bits, ParseIntList(a.bits, 1, 32, "--bits"));
  std::set<std::string> wanted;
  std::set<std::string> known;
  for (int b = 1; b <= 32; ++b) {
    for (const FormatSpec& s : AllVariants(b)) known.insert(FormatTemplate(s));
  }
  for (const std::string& f : Split(a.families, ',')) {
    if (!known.count(f)) {
      std::string list;
      for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
      return InvalidArgument("--families: unknown family '", f, "' (known: ", list, ")");
    }
    wanted.insert(f);
  }
  std::vector<GranularitySpec> grans;
  for (const std::string& g : Split(a.granularity, ',')) {
    GranularitySpec gs;
    LOWBIT_ASSIGN_OR_RETURN(gs, ParseGranularity(g));
    grans.push_back(gs);
  }
  FitOptions options;
  LOWBIT_RETURN_IF_ERROR(ParseClip(a.clip, &options));
  LOWBIT_ASSIGN_OR_RETURN(options.codebook_init, ParseCodebookInit(a.codebook_init));
  options.seed = a.seed;
  if (!(a.prune >= 0 && a.prune < 1)) {
    return InvalidArgument("--prune must be in [0, 1), got ", a.prune);
  }

  std::vector<float> x;
  std::vector<int64_t> shape;
  std::string description;
  LOWBIT_RETURN_IF_ERROR(LoadData(a, &x, &shape, &description));

  std::vector<std::pair<FormatSpec, GranularitySpec>> jobs;
  for (int b : bits) {
    for (const FormatSpec& s : AllVariants(b)) {
      if (!wanted.count(FormatTemplate(s))) continue;
      if (s.family == Family::kFloat) {
        jobs.emplace_back(s, GranularitySpec{});  // no scales: one row
        continue;
      }
      for (const GranularitySpec& g : grans) jobs.emplace_back(s, g);
    }
  }
  if (jobs.empty()) return InvalidArgument("no format matches --bits ", a.bits, " and --families ", a.families);

  std::vector<Row> rows;
  std::vector<float> decoded(x.size());
  {
    Progress progress("formats", static_cast<int64_t>(jobs.size()), "fits", a.quiet || a.json);
    for (const auto& [spec, gran] : jobs) {
      const auto t0 = std::chrono::steady_clock::now();
      FitOptions o = options;
      o.granularity = gran;
      PackedTensor t;
      LOWBIT_ASSIGN_OR_RETURN(t, PackedTensor::Quantize(x.data(), shape, spec, o, a.prune));
      t.Dequantize(decoded.data());
      Row row{spec, gran, MeasureError(x.data(), decoded.data(), static_cast<int64_t>(x.size())),
              t.bytes(), t.bits_per_value(), static_cast<int64_t>(t.params().levels.size()),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
      rows.push_back(row);
      progress.Advance();
    }
  }

  if (a.json) {
    nlohmann::json out;
    out["data"] = description;
    out["clip"] = a.clip;
    out["prune"] = a.prune;
    for (const Row& r : rows) {
      const MultiplyCost cost = CostOf(r.spec);
      nlohmann::json j;
      j["format"] = FormatName(r.spec);
      j["family"] = std::string(FamilyName(r.spec.family));
      j["bits"] = r.spec.bits;
      j["granularity"] = GranularityName(r.granularity);
      j["sqnr_db"] = std::isfinite(r.error.sqnr_db) ? nlohmann::json(r.error.sqnr_db) : nlohmann::json(nullptr);
      j["mse"] = r.error.mse;
      j["max_abs_error"] = r.error.max_abs;
      j["bits_per_weight"] = r.bits_per_value;
      j["bytes"] = r.bytes.total();
      j["levels"] = r.levels;
      j["ops_per_multiply"] = cost.ops;
      j["shift_adds"] = cost.shift_adds;
      j["seconds"] = r.seconds;
      out["rows"].push_back(j);
    }
    std::printf("%s\n", out.dump(2).c_str());
    return OkStatus();
  }
  std::printf("data: %s; clip %s%s\n\n", description.c_str(), a.clip.c_str(),
              a.prune > 0 ? StrCat("; pruned ", a.prune * 100, "%").c_str() : "");
  std::printf("%-12s %4s %-11s %9s %11s %10s %11s %6s %8s\n", "format", "bits", "granularity",
              "SQNR dB", "MSE", "max|err|", "bits/weight", "levels", "ops/mul");
  for (const Row& r : rows) {
    const MultiplyCost cost = CostOf(r.spec);
    const std::string ops = cost.shift_adds > 0 ? StrCat(cost.shift_adds, " sh+add")
                                                : StrCat(cost.ops, "b mul");
    std::printf("%-12s %4d %-11s %9.2f %11.4g %10.4g %11.4f %6lld %8s\n",
                FormatName(r.spec).c_str(), r.spec.bits, GranularityName(r.granularity).c_str(),
                r.error.sqnr_db, r.error.mse, r.error.max_abs, r.bits_per_value,
                static_cast<long long>(r.levels), ops.c_str());
  }
  return OkStatus();
}

}  // namespace

Command AddFormatsCommand(CLI::App& app) {
  auto args = std::make_shared<FormatsArgs>();
  CLI::App* cmd = app.add_subcommand(
      "formats", "Fit every number format to a tensor and compare error, storage and cost");
  cmd->add_option("--bits", args->bits, "Bit widths, e.g. 2,4 or 2..8 (16/32 select floats)")
      ->capture_default_str();
  cmd->add_option("--data", args->data, "laplace, normal, or a FILE.npy (dim 0 = channels)")
      ->capture_default_str();
  cmd->add_option("--families", args->families,
                  "Comma list of int, uint, int-asym, pow2, nhot1..3, codebook, fp16, bf16, fp32")
      ->capture_default_str();
  cmd->add_option("--granularity", args->granularity, "Comma list of tensor, channel, group:G")
      ->capture_default_str();
  cmd->add_option("--clip", args->clip, "minmax, mse or percentile:P")->capture_default_str();
  cmd->add_option("--codebook-init", args->codebook_init, "dp, kmeans++ or pso")
      ->capture_default_str();
  cmd->add_option("--prune", args->prune, "Magnitude-prune this fraction first, in [0, 1)")
      ->capture_default_str();
  cmd->add_option("--samples", args->samples, "Samples of synthetic data")->capture_default_str();
  cmd->add_option("--seed", args->seed, "Seed for synthetic data, PSO and k-means++")
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "Print one JSON object instead of a table");
  cmd->add_flag("--quiet", args->quiet, "No progress line");
  return {cmd, [args] { return RunFormats(*args); }};
}

}  // namespace lowbit
