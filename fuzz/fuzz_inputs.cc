// Fuzzes the readers of what users pass besides models: .npy bytes, plan
// JSON, and the option parsers (format names, granularities, filter-wise
// weights, --layer rules, objectives, --formats/--bits). The first byte picks
// the reader. Any error must be a Status.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/npy.h"
#include "lowbit/format.h"
#include "quant/quant_plan.h"
#include "tune/space.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  if (size == 0) return 0;
  const std::string s(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: (void)ParseNpy(s, "fuzz.npy"); break;
    case 1: {
      Result<QuantPlan> p = ParsePlanJson(s, "fuzz.json");
      if (p.ok()) {
        (void)ValidateSettings(p->defaults, "defaults");
        (void)p->Resolve("layer");
      }
      break;
    }
    case 2: {
      (void)ParseFormat(s);
      (void)ParseGranularity(s);
      (void)ParseFilterFormats(s);
      (void)ParseLayerOption(s);
      FitOptions fo;
      (void)ParseClip(s, &fo);
      break;
    }
    default: {
      (void)ParseObjective(s);
      SpaceOptions so;
      if (ParseFormatsOption(s, &so).ok() && ParseBitsOption(s, &so).ok()) (void)SearchSpace(so);
      break;
    }
  }
  return 0;
}
