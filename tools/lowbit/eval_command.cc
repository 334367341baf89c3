// `lowbit eval`: top-1 / top-5 accuracy and throughput of a model on a
// labelled dataset, streamed in batches.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>

#include <nlohmann/json.hpp>

#include "base/progress.h"
#include "base/strings.h"
#include "commands.h"
#include "data/dataset.h"
#include "model_util.h"
#include "runtime/plan.h"

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
  Preprocess pre;
  pre.scale = a.scale;
  LOWBIT_ASSIGN_OR_RETURN(pre.mean, ParseFloatList(a.mean, "--mean"));
  LOWBIT_ASSIGN_OR_RETURN(pre.std, ParseFloatList(a.std, "--std"));
  Graph g;
  LOWBIT_ASSIGN_OR_RETURN(g, LoadModel(a.model));
  if (g.inputs.size() != 1) {
    return InvalidArgument(a.model, ": eval needs a model with one input, it has ", g.inputs.size());
  }
  std::unique_ptr<Dataset> ds;
  LOWBIT_ASSIGN_OR_RETURN(ds, Dataset::Open(a.data));
  if (!ds->has_labels()) return InvalidArgument("dataset '", a.data, "' has no labels to score");
  int64_t batch = 0;
  LOWBIT_ASSIGN_OR_RETURN(batch, ModelBatch(g, a.model, a.batch, a.batch_given));
  PlanOptions po;
  po.batch = batch;
  po.threads = a.threads;
  std::unique_ptr<Plan> plan;
  LOWBIT_ASSIGN_OR_RETURN(plan, Plan::Create(g, po));
  Tensor& input = plan->input(0);
  const int64_t per_sample = input.numel() / batch;
  if (input.shape().empty() || input.shape()[0] != batch ||
      !SampleFitsInput(ds->sample_shape(), Shape(input.shape().begin() + 1, input.shape().end()))) {
    return InvalidArgument("dataset '", a.data, "' has samples of ", ds->sample_size(), " values ",
                           ShapeToString(ds->sample_shape()), ", but model input '",
                           plan->input_info(0).name, "' is ", ShapeToString(input.shape()),
                           " at batch ", batch);
  }
  if (input.dtype() != DType::kFloat32) {
    return Unimplemented(a.model, ": input '", plan->input_info(0).name, "' is not float32");
  }
  const int64_t channels = input.rank() == 4 ? input.shape()[1] : 1;
  const int64_t n = a.limit > 0 ? std::min(a.limit, ds->size()) : ds->size();
  std::vector<int64_t> labels(batch);
  int64_t top1 = 0, top5 = 0, classes = 0;
  double run_seconds = 0;
  const auto start = std::chrono::steady_clock::now();
  {
    Progress progress("eval " + a.model, (n + batch - 1) / batch, "batches", a.quiet || a.json);
    for (int64_t i = 0; i < n; i += batch) {
      const int64_t m = std::min(batch, n - i);
      float* x = input.data<float>();
      LOWBIT_RETURN_IF_ERROR(ds->Read(i, m, x, labels.data()));
      LOWBIT_RETURN_IF_ERROR(ApplyPreprocess(pre, ds->default_scale(), m, per_sample, channels, x));
      std::fill(x + m * per_sample, x + batch * per_sample, 0.0f);  // a short last batch
      const auto t0 = std::chrono::steady_clock::now();
      plan->Run();
      run_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const Tensor& out = plan->output(0);
      classes = out.numel() / batch;
      if (out.dtype() != DType::kFloat32 || out.shape().empty() || out.shape()[0] != batch) {
        return InvalidArgument(a.model, ": output '", plan->output_name(0), "' ",
                               ShapeToString(out.shape()), " is not a batch of class scores");
      }
      const float* scores = out.data<float>();
      for (int64_t j = 0; j < m; ++j) {
        const float* s = scores + j * classes;
        if (labels[j] < 0 || labels[j] >= classes) {
          return InvalidArgument("dataset '", a.data, "': label ", labels[j], " of sample ", i + j,
                                 " is outside the model's ", classes, " classes");
        }
        const float target = s[labels[j]];
        int64_t better = 0;  // classes scoring above the label (ties count for the label)
        for (int64_t c = 0; c < classes; ++c) better += s[c] > target;
        top1 += better == 0;
        top5 += better < 5;
      }
      progress.Advance();
    }
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double acc1 = 100.0 * static_cast<double>(top1) / static_cast<double>(n);
  const double acc5 = 100.0 * static_cast<double>(top5) / static_cast<double>(n);
  if (a.json) {
    nlohmann::json j;
    j["model"] = a.model;
    j["data"] = a.data;
    j["samples"] = n;
    j["correct_top1"] = top1;
    j["top1"] = acc1;
    j["top5"] = acc5;
    j["batch"] = batch;
    j["threads"] = a.threads;
    j["images_per_second"] = static_cast<double>(n) / run_seconds;
    j["seconds"] = total;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf(
        "%s on %s: top-1 %.2f%% (%lld/%lld), top-5 %.2f%%, %.0f images/s "
        "(batch %lld, %d thread%s)\n",
        a.model.c_str(), a.data.c_str(), acc1, static_cast<long long>(top1),
        static_cast<long long>(n), acc5, static_cast<double>(n) / run_seconds,
        static_cast<long long>(batch), a.threads, a.threads > 1 ? "s" : "");
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
