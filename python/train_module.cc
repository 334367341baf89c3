// `_lowbit_train`: lowbit.finetune's implementation (FinetuneModel,
// include/lowbit/finetune.h), a module of its own so that LibTorch loads only
// when training is asked for. lowbit.finetune imports it.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "lowbit/finetune.h"

namespace py = pybind11;

namespace {

py::dict EpochDict(const lowbit::FinetuneEpoch& e) {
  py::dict d;
  d["stage"] = e.stage + 1;
  d["epoch"] = e.epoch + 1;
  d["loss"] = e.loss;
  d["val_top1"] = e.val_top1;
  d["seconds"] = e.seconds;
  d["images_per_second"] = e.images_per_second;
  d["mean_bits"] = e.mean_bits >= 0 ? py::cast(e.mean_bits) : py::none();
  d["resumed"] = e.resumed;
  return d;
}

// Returns (summary dict, error message or "").
py::tuple Finetune(const std::string& model, const std::string& out, const std::string& train,
                   const std::string& val, const std::string& weights, const std::string& plan,
                   const std::string& acts, int epochs, int64_t batch, double lr, const std::string& optimizer,
                   bool distill, bool two_stage, bool learn_bits, double bitops_weight, int min_bits,
                   int max_bits, double prune, const std::string& checkpoint, bool resume, int threads,
                   uint64_t seed, const std::string& write_plan, const py::object& progress) {
  lowbit::FinetuneConfig c;
  c.train = train;
  c.val = val;
  c.weights = weights;
  c.plan_file = plan;
  c.acts = acts;
  c.epochs = epochs;
  c.batch = batch;
  c.lr = lr;
  c.optimizer = optimizer;
  c.distill = distill;
  c.two_stage = two_stage;
  c.learn_bits = learn_bits;
  c.bitops_weight = bitops_weight;
  c.min_bits = min_bits;
  c.max_bits = max_bits;
  c.prune = prune;
  c.checkpoint_dir = checkpoint;
  c.resume = resume;
  c.threads = threads;
  c.seed = seed;
  c.plan_out = write_plan;
  std::string callback_error;
  if (!progress.is_none()) {
    c.on_epoch = [&progress, &callback_error](const lowbit::FinetuneEpoch& e) {
      py::gil_scoped_acquire gil;
      if (!callback_error.empty()) return;
      try {
        progress(EpochDict(e));
      } catch (const py::error_already_set& err) {
        callback_error = err.what();
      }
    };
  }
  lowbit::Result<lowbit::FinetuneSummary> r = lowbit::FinetuneSummary();
  {
    py::gil_scoped_release release;
    r = lowbit::FinetuneModel(model, out, c);
  }
  if (!callback_error.empty()) return py::make_tuple(py::none(), "progress callback: " + callback_error);
  if (!r.ok()) return py::make_tuple(py::none(), r.status().ToString());
  py::dict d;
  d["fp32_val_top1"] = r->fp32_val_top1;
  py::list stages;
  for (const lowbit::FinetuneStage& s : r->stages) {
    py::dict ds;
    ds["name"] = s.name;
    ds["start_val_top1"] = s.start_val_top1;
    py::list ep;
    for (const lowbit::FinetuneEpoch& e : s.epochs) ep.append(EpochDict(e));
    ds["epochs"] = ep;
    stages.append(ds);
  }
  d["stages"] = stages;
  py::list layers;
  for (const lowbit::FinetuneLayer& l : r->layers) {
    py::dict dl;
    dl["name"] = l.name;
    dl["op"] = l.op;
    dl["weights"] = l.weights;
    dl["acts"] = l.acts;
    dl["bytes"] = l.bytes;
    dl["filters"] = l.filters;
    layers.append(dl);
  }
  d["layers"] = layers;
  d["input_bytes"] = r->input_bytes;
  d["output_bytes"] = r->output_bytes;
  d["bitops_vs_w4a8"] = r->bitops / r->bitops_w4a8;
  d["seconds"] = r->seconds;
  d["peak_rss_bytes"] = r->peak_rss_bytes;
  return py::make_tuple(d, "");
}

}  // namespace

PYBIND11_MODULE(_lowbit_train, m) { m.def("finetune", &Finetune); }
