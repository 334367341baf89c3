// `lowbit tune --finetune EPOCHS --train SPEC`: each front point the
// bisection of tune/refine.h visits is fine-tuned by lowbit-finetune (a
// program of its own: it links LibTorch) and its file evaluated on --val as
// the tuner evaluates plans.
#ifndef LOWBIT_TOOLS_TUNE_FINETUNE_H_
#define LOWBIT_TOOLS_TUNE_FINETUNE_H_

#include <string>
#include <vector>

#include "eval/evaluate.h"
#include "tune/refine.h"
#include "tune/tuner.h"

namespace lowbit {

struct FinetuneFrontArgs {
  std::string model, train, val, workdir;  // workdir: where trained files go
  int epochs = 1, threads = 1;
  uint64_t seed = 1;
  std::vector<std::string> extra;  // preprocessing options, passed on
  bool quiet = false;
};

// A RefineFn over `r`'s points: trains with lowbit-finetune --plan, then
// evaluates the file on `val` against the fp32 `reference` (top-1).
RefineFn FinetuneRefiner(const TuneResult& r, const FinetuneFrontArgs& args, Dataset* val,
                         const EvalOptions& eval, const ReferenceOutputs* reference);

// Whether lowbit-finetune is installed beside this program.
bool FinetuneProgramAvailable();

}  // namespace lowbit

#endif  // LOWBIT_TOOLS_TUNE_FINETUNE_H_
