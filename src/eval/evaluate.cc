#include "eval/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "base/progress.h"
#include "runtime/plan.h"

namespace lowbit {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

}  // namespace

Result<int64_t> EvalBatch(const Graph& g, const std::string& path, int64_t requested, bool given) {
  if (g.inputs.empty() || g.inputs[0].shape.empty() || g.inputs[0].shape[0] <= 0) return requested;
  const int64_t fixed = g.inputs[0].shape[0];
  if (given && requested != fixed) {
    return InvalidArgument("--batch ", requested, ": ", path, " fixes the batch of input '",
                           g.inputs[0].name, "' at ", fixed);
  }
  return fixed;
}

std::string ReferenceKey(const Dataset& data, const EvalOptions& o) {
  std::string key = data.spec();
  char b[64];
  std::snprintf(b, sizeof b, " scale=%.9g limit=%lld", o.preprocess.scale,
                static_cast<long long>(o.limit));
  key += b;
  for (float v : o.preprocess.mean) key += " m" + std::to_string(v);
  for (float v : o.preprocess.std) key += " s" + std::to_string(v);
  return key;
}

Result<EvalResult> Evaluate(const Graph& g, Dataset& data, const EvalOptions& o,
                            ReferenceOutputs* record) {
  const std::string& model = o.model_name.empty() ? g.source : o.model_name;
  if (o.batch < 1) return InvalidArgument("--batch must be >= 1, got ", o.batch);
  if (o.threads < 1) return InvalidArgument("--threads must be >= 1, got ", o.threads);
  if (g.inputs.size() != 1) {
    return InvalidArgument(model, ": eval needs a model with one input, it has ", g.inputs.size());
  }
  if (o.labels && !data.has_labels()) {
    return InvalidArgument("dataset '", data.spec(), "' has no labels to score");
  }
  // A model whose batch is free runs no larger a batch than the samples
  // (8 validation images at --batch 100 would run 100 each time).
  const int64_t samples = o.limit > 0 ? std::min(o.limit, data.size()) : data.size();
  const bool free_batch = g.inputs[0].shape.empty() || g.inputs[0].shape[0] <= 0;
  const int64_t batch = free_batch ? std::max<int64_t>(1, std::min(o.batch, samples)) : o.batch;
  PlanOptions po;
  po.batch = batch;
  po.threads = o.threads;
  po.kernels = o.kernels;
  po.byte_edges = o.byte_edges;
  std::unique_ptr<Plan> plan;
  LOWBIT_ASSIGN_OR_RETURN(plan, Plan::Create(g, po));
  Tensor& input = plan->input(0);
  const int64_t per_sample = input.numel() / batch;
  if (input.shape().empty() || input.shape()[0] != batch ||
      !SampleFitsInput(data.sample_shape(), Shape(input.shape().begin() + 1, input.shape().end()))) {
    return InvalidArgument("dataset '", data.spec(), "' has samples of ", data.sample_size(),
                           " values ", ShapeToString(data.sample_shape()), ", but model input '",
                           plan->input_info(0).name, "' is ", ShapeToString(input.shape()),
                           " at batch ", batch);
  }
  if (input.dtype() != DType::kFloat32) {
    return Unimplemented(model, ": input '", plan->input_info(0).name, "' is not float32");
  }
  const int64_t channels = input.rank() == 4 ? input.shape()[1] : 1;
  const int64_t n = o.limit > 0 ? std::min(o.limit, data.size()) : data.size();
  const ReferenceOutputs* ref = o.reference;
  if (ref != nullptr && ref->samples != n) {
    return InvalidArgument(model, ": the reference outputs cover ", ref->samples,
                           " samples, this evaluation ", n);
  }
  EvalResult r;
  r.samples = n;
  r.batch = batch;
  if (record != nullptr) {
    *record = ReferenceOutputs();
    record->data_key = ReferenceKey(data, o);
    record->samples = n;
  }
  std::vector<int64_t> labels(batch);
  double signal = 0, noise = 0;
  int64_t agree = 0;
  const auto start = Clock::now();
  {
    Progress progress("eval " + model, (n + batch - 1) / batch, "batches", o.quiet);
    for (int64_t i = 0; i < n; i += batch) {
      const int64_t m = std::min(batch, n - i);
      float* x = input.data<float>();
      LOWBIT_RETURN_IF_ERROR(data.Read(i, m, x, o.labels ? labels.data() : nullptr));
      LOWBIT_RETURN_IF_ERROR(
          ApplyPreprocess(o.preprocess, data.default_scale(), m, per_sample, channels, x));
      std::fill(x + m * per_sample, x + batch * per_sample, 0.0f);  // a short last batch
      const auto t0 = Clock::now();
      plan->Run();
      r.run_seconds += Seconds(t0);
      const Tensor& out = plan->output(0);
      const int64_t classes = out.numel() / batch;
      if (out.dtype() != DType::kFloat32 || out.shape().empty() || out.shape()[0] != batch) {
        return InvalidArgument(model, ": output '", plan->output_name(0), "' ",
                               ShapeToString(out.shape()), " is not a batch of class scores");
      }
      if (r.classes == 0) {
        r.classes = classes;
        r.class_samples.assign(classes, 0);
        r.class_correct.assign(classes, 0);
        if (ref != nullptr && ref->classes != classes) {
          return InvalidArgument(model, ": ", classes, " class scores, the reference has ",
                                 ref->classes);
        }
        if (record != nullptr) {
          record->classes = classes;
          record->scores.reserve(static_cast<size_t>(n * classes));
        }
      }
      const float* scores = out.data<float>();
      for (int64_t j = 0; j < m; ++j) {
        const float* s = scores + j * classes;
        if (o.labels) {
          if (labels[j] < 0 || labels[j] >= classes) {
            return InvalidArgument("dataset '", data.spec(), "': label ", labels[j], " of sample ",
                                   i + j, " is outside the model's ", classes, " classes");
          }
          const float target = s[labels[j]];
          int64_t better = 0;  // classes scoring above the label (ties count for the label)
          for (int64_t c = 0; c < classes; ++c) better += s[c] > target;
          r.correct_top1 += better == 0;
          r.correct_top5 += better < 5;
          if (ref != nullptr && !ref->correct.empty()) {
            const bool was = ref->correct[i + j] != 0;
            r.lost += was && better != 0;
            r.gained += !was && better == 0;
          }
          if (record != nullptr) record->correct.push_back(better == 0);
          r.class_samples[labels[j]] += 1;
          r.class_correct[labels[j]] += better == 0;
        }
        const int32_t top = static_cast<int32_t>(std::max_element(s, s + classes) - s);
        if (ref != nullptr) {
          const float* rs = ref->scores.data() + (i + j) * classes;
          agree += ref->top1[i + j] == top;
          for (int64_t c = 0; c < classes; ++c) {
            signal += static_cast<double>(rs[c]) * rs[c];
            noise += (static_cast<double>(rs[c]) - s[c]) * (static_cast<double>(rs[c]) - s[c]);
          }
        }
        if (record != nullptr) {
          record->scores.insert(record->scores.end(), s, s + classes);
          record->top1.push_back(top);
        }
      }
      progress.Advance();
    }
  }
  r.seconds = Seconds(start);
  r.images_per_second = static_cast<double>(n) / r.run_seconds;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  r.top1 = o.labels ? 100.0 * static_cast<double>(r.correct_top1) / static_cast<double>(n) : nan;
  r.top5 = o.labels ? 100.0 * static_cast<double>(r.correct_top5) / static_cast<double>(n) : nan;
  r.agreement = ref != nullptr ? 100.0 * static_cast<double>(agree) / static_cast<double>(n) : nan;
  r.sqnr_db = ref == nullptr ? nan
              : noise == 0   ? std::numeric_limits<double>::infinity()
                             : 10.0 * std::log10(std::max(signal, 1e-30) / noise);
  return r;
}

}  // namespace lowbit
