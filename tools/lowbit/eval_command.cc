// `lowbit eval`: top-1 / top-5 accuracy and throughput of a model on a
// labelled dataset, streamed in batches.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>

#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "commands.h"
#include "data/dataset.h"
#include "eval/evaluate.h"
#include "model_util.h"

namespace lowbit {
namespace {

struct EvalArgs {
  std::string model, data;
  int64_t batch = 32;
  bool batch_given = false;  // --batch on the command line
  int threads = 1;
  double scale = -1;
  std::string mean, std;
  int64_t limit = 0;
  bool json = false, quiet = false;
};

Status RunEval(const EvalArgs& a) {
  if (a.batch < 1) return InvalidArgument("--batch must be >= 1, got ", a.batch);
  if (a.threads < 1) return InvalidArgument("--threads must be >= 1, got ", a.threads);
  EvalOptions o;
  o.preprocess.scale = a.scale;
  LOWBIT_ASSIGN_OR_RETURN(o.preprocess.mean, ParseFloatList(a.mean, "--mean"));
  LOWBIT_ASSIGN_OR_RETURN(o.preprocess.std, ParseFloatList(a.std, "--std"));
  Graph g;
  LOWBIT_ASSIGN_OR_RETURN(g, LoadModel(a.model));
  if (g.inputs.size() != 1) {
    return InvalidArgument(a.model, ": eval needs a model with one input, it has ", g.inputs.size());
  }
  std::unique_ptr<Dataset> ds;
  LOWBIT_ASSIGN_OR_RETURN(ds, Dataset::Open(a.data));
  LOWBIT_ASSIGN_OR_RETURN(o.batch, EvalBatch(g, a.model, a.batch, a.batch_given));
  o.threads = a.threads;
  PlanOptions env;
  LOWBIT_ASSIGN_OR_RETURN(env, PlanOptionsFromEnvironment());
  o.kernels = env.kernels;
  o.byte_edges = env.byte_edges;
  o.limit = a.limit;
  o.model_name = a.model;
  o.quiet = a.quiet || a.json;
  EvalResult r;
  LOWBIT_ASSIGN_OR_RETURN(r, Evaluate(g, *ds, o));
  if (a.json) {
    nlohmann::json j;
    j["model"] = a.model;
    j["data"] = a.data;
    j["samples"] = r.samples;
    j["correct_top1"] = r.correct_top1;
    j["top1"] = r.top1;
    j["top5"] = r.top5;
    j["per_class"] = nlohmann::json::array();
    for (size_t c = 0; c < r.class_samples.size(); ++c) {
      j["per_class"].push_back({{"samples", r.class_samples[c]}, {"correct", r.class_correct[c]}});
    }
    j["batch"] = r.batch;
    j["threads"] = a.threads;
    j["images_per_second"] = r.images_per_second;
    j["seconds"] = r.seconds;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf(
        "%s on %s: top-1 %.2f%% (%lld/%lld), top-5 %.2f%%, %.0f images/s "
        "(batch %lld, %d thread%s)\n",
        a.model.c_str(), a.data.c_str(), r.top1, static_cast<long long>(r.correct_top1),
        static_cast<long long>(r.samples), r.top5, r.images_per_second,
        static_cast<long long>(r.batch), a.threads, a.threads > 1 ? "s" : "");
  }
  return OkStatus();
}

}  // namespace

Command AddEvalCommand(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Accuracy and speed of a model on a labelled dataset");
  cmd->add_option("model", args->model, "Model (.onnx)")->required();
  cmd->add_option("--data", args->data,
                  "fashion-mnist:train|test, digits, idx:I,L, npy:X[,Y], npz:F, with [a:b]")
      ->required();
  cmd->add_option("--batch", args->batch, "Batch size (a model that fixes its batch runs at that)")
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "Threads")->capture_default_str();
  cmd->add_option("--scale", args->scale, "Multiply raw values (default: the dataset's)");
  cmd->add_option("--mean", args->mean, "Subtract after scaling: one value or one per channel");
  cmd->add_option("--std", args->std, "Divide after subtracting: one value or one per channel");
  cmd->add_option("--limit", args->limit, "Evaluate at most this many samples");
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->add_flag("--quiet", args->quiet, "No progress line");
  return {cmd, [args, cmd] {
            args->batch_given = cmd->count("--batch") > 0;
            return RunEval(*args);
          }};
}

}  // namespace lowbit
