// The `lowbit` Python module: NumPy arrays in and out of the C++ API
// (include/lowbit/lowbit.h). Errors raise lowbit.Error with lowbit's one-line
// message; the GIL is released while lowbit computes.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "lowbit/lowbit.h"

namespace py = pybind11;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

struct LowbitError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void Check(const lowbit::Status& s) {
  if (!s.ok()) throw LowbitError(s.ToString());
}
template <typename T>
T Take(lowbit::Result<T> r) {
  if (!r.ok()) throw LowbitError(r.status().ToString());
  return std::move(r).value();
}

lowbit::TensorRef Ref(const FloatArray& a) {
  return {a.data(), std::vector<int64_t>(a.shape(), a.shape() + a.ndim())};
}

py::array ToNumpy(lowbit::Array&& a) {
  auto* owner = new std::vector<float>(std::move(a.data));
  py::capsule free_it(owner, [](void* p) { delete static_cast<std::vector<float>*>(p); });
  std::vector<py::ssize_t> shape(a.shape.begin(), a.shape.end());
  return py::array_t<float>(shape, owner->data(), free_it);
}

py::dict LayerDict(const lowbit::LayerInfo& l) {
  py::dict d;
  d["name"] = l.name;
  d["op"] = l.op;
  d["format"] = l.format;
  d["granularity"] = l.granularity;
  d["weight_bits"] = l.weight_bits;
  d["act_bits"] = l.act_bits;
  d["params"] = l.params;
  d["bytes"] = l.bytes;
  d["macs"] = l.macs;
  d["bitops"] = l.bitops;
  return d;
}

// x: one array (single-input models), a list of arrays, or a dict by name.
py::object Run(const lowbit::Model& m, const py::object& x) {
  std::vector<FloatArray> keep;
  std::vector<lowbit::TensorRef> refs;
  if (py::isinstance<py::dict>(x)) {
    const py::dict d = x.cast<py::dict>();
    for (const lowbit::TensorDesc& info : m.inputs()) {
      if (!d.contains(info.name.c_str())) throw LowbitError("no array for input '" + info.name + "'");
      keep.push_back(FloatArray::ensure(d[info.name.c_str()]));
    }
    if (d.size() != m.inputs().size()) throw LowbitError("the dict names inputs the model does not have");
  } else if (py::isinstance<py::list>(x) || py::isinstance<py::tuple>(x)) {
    for (const py::handle h : x) keep.push_back(FloatArray::ensure(h));
  } else {
    keep.push_back(FloatArray::ensure(x));
  }
  for (const FloatArray& a : keep) {
    if (!a) throw LowbitError("inputs must be arrays of numbers");
    refs.push_back(Ref(a));
  }
  lowbit::Result<std::vector<lowbit::Array>> out = std::vector<lowbit::Array>();
  {
    py::gil_scoped_release release;
    out = m.Run(refs);
  }
  std::vector<lowbit::Array> arrays = Take(std::move(out));
  if (arrays.size() == 1) return ToNumpy(std::move(arrays[0]));
  py::list l;
  for (lowbit::Array& a : arrays) l.append(ToNumpy(std::move(a)));
  return l;
}

py::dict Quantize(const std::string& model, const std::string& out, const std::string& weights,
                  const std::string& granularity, const std::string& acts, const std::string& plan,
                  const std::map<std::string, std::string>& layers, const py::object& calib, double scale,
                  const std::vector<float>& mean, const std::vector<float>& std_, const std::string& act_calib,
                  const std::string& weight_clip, double prune, bool bias_correction, int threads,
                  uint64_t seed, const std::string& rounding) {
  lowbit::QuantizeConfig c;
  c.weights = weights;
  c.granularity = granularity;
  c.acts = acts;
  c.plan_file = plan;
  for (const auto& [k, v] : layers) c.layers.emplace_back(k, v);
  FloatArray samples;
  if (py::isinstance<py::str>(calib)) {
    c.calib_spec = calib.cast<std::string>();
  } else if (!calib.is_none()) {
    samples = FloatArray::ensure(calib);
    if (!samples) throw LowbitError("calib: expected a dataset spec or an array of samples");
    c.calib_samples = Ref(samples);
  }
  c.preprocess_scale = scale;
  c.mean = mean;
  c.stddev = std_;
  c.act_calib = act_calib;
  c.weight_clip = weight_clip;
  c.prune = prune;
  c.rounding = rounding;
  c.bias_correction = bias_correction;
  c.threads = threads;
  c.seed = seed;
  lowbit::Result<lowbit::QuantizeSummary> r = lowbit::QuantizeSummary();
  {
    py::gil_scoped_release release;
    r = lowbit::Quantize(model, out, c);
  }
  lowbit::QuantizeSummary s = Take(std::move(r));
  py::dict d;
  d["input_bytes"] = s.input_bytes;
  d["output_bytes"] = s.output_bytes;
  py::list l;
  for (const lowbit::LayerInfo& li : s.layers) l.append(LayerDict(li));
  d["layers"] = l;
  return d;
}

py::dict PointDict(const lowbit::TunePointInfo& p) {
  py::dict d;
  d["objective"] = p.objective;
  d["bytes"] = p.bytes;
  d["bitops"] = p.bitops;
  d["metric"] = p.metric;
  d["feasible"] = p.feasible;
  py::dict plan;
  for (const auto& [layer, weights] : p.plan) plan[layer.c_str()] = weights;
  d["plan"] = plan;
  return d;
}

py::dict Tune(const std::string& model, const std::string& out, const std::string& calib, const std::string& val,
              const std::string& test, const std::string& objective, const std::string& metric, double max_loss,
              bool relative, const std::string& formats, const std::string& bits, double budget,
              int64_t max_evals, const std::string& journal, const std::string& plan_file, int threads,
              uint64_t seed, const py::object& progress, const std::string& rounding) {
  lowbit::TuneConfig c;
  c.rounding = rounding;
  c.calib = calib;
  c.val = val;
  c.test = test;
  c.objective = objective;
  c.metric = metric;
  c.max_loss = max_loss;
  c.relative = relative;
  c.formats = formats;
  c.bits = bits;
  c.budget_seconds = budget;
  c.max_evals = max_evals;
  c.journal = journal;
  c.plan_file = plan_file;
  c.threads = threads;
  c.seed = seed;
  // The callback runs with the GIL taken back; an exception it raises is
  // raised again when tuning returns.
  std::string callback_error;
  if (!progress.is_none()) {
    c.progress = [&progress, &callback_error](const lowbit::TuneProgressInfo& p) {
      py::gil_scoped_acquire gil;
      if (!callback_error.empty()) return;
      try {
        py::dict d;
        d["evaluations"] = p.evaluations;
        d["seconds"] = p.seconds;
        d["budget_seconds"] = p.budget_seconds;
        d["feasible"] = p.feasible;
        d["best_objective"] = p.feasible ? py::cast(p.best_objective) : py::none();
        d["best_metric"] = p.feasible ? py::cast(p.best_metric) : py::none();
        progress(d);
      } catch (const py::error_already_set& e) {
        callback_error = e.what();
      }
    };
  }
  lowbit::Result<lowbit::TuneSummary> r = lowbit::TuneSummary();
  {
    py::gil_scoped_release release;
    r = lowbit::TuneModel(model, out, c);
  }
  if (!callback_error.empty()) throw LowbitError("progress callback: " + callback_error);
  lowbit::TuneSummary s = Take(std::move(r));
  py::dict d;
  d["feasible"] = s.feasible;
  d["fp32_metric"] = s.fp32_metric;
  d["bound"] = s.bound;
  d["chosen"] = PointDict(s.chosen);
  py::list front;
  for (const lowbit::TunePointInfo& p : s.front) front.append(PointDict(p));
  d["front"] = front;
  d["evaluations"] = s.evaluations;
  d["output_bytes"] = s.output_bytes;
  d["test_top1"] = s.test_top1 >= 0 ? py::cast(s.test_top1) : py::none();
  d["test_fp32_top1"] = s.test_fp32_top1 >= 0 ? py::cast(s.test_fp32_top1) : py::none();
  d["seconds"] = s.seconds;
  return d;
}

}  // namespace

PYBIND11_MODULE(lowbit, m) {
  m.doc() = "lowbit: low-bit quantization and CPU kernels for neural networks";
  static py::exception<LowbitError> error(m, "Error", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const LowbitError& e) {
      PyErr_SetString(error.ptr(), e.what());
    }
  });

  py::class_<lowbit::Model>(m, "Model", "A loaded model (fp32 ONNX or packed lowbit)")
      .def_property_readonly("inputs",
                             [](const lowbit::Model& self) {
                               py::list l;
                               for (const auto& i : self.inputs()) l.append(py::make_tuple(i.name, i.shape));
                               return l;
                             },
                             "[(name, shape)] with -1 for dynamic dims")
      .def_property_readonly("outputs",
                             [](const lowbit::Model& self) {
                               py::list l;
                               for (const auto& i : self.outputs()) l.append(py::make_tuple(i.name, i.shape));
                               return l;
                             })
      .def("run", &Run, py::arg("x"),
           "Runs on float32 arrays (one array, a list, or a dict by input name); returns an array, or a "
           "list for several outputs. Thread-safe; the GIL is released while it runs.")
      .def("layers",
           [](const lowbit::Model& self) {
             py::list l;
             for (const lowbit::LayerInfo& li : Take(self.Layers())) l.append(LayerDict(li));
             return l;
           },
           "Per-layer format, bytes, MACs and bit-ops (as lowbit inspect)")
      .def("save", [](const lowbit::Model& self, const std::string& path) { Check(self.Save(path)); },
           py::arg("path"));

  m.def(
      "load",
      [](const std::string& path, int threads, const std::string& kernel, bool byte_edges) {
        lowbit::ModelOptions o;
        o.threads = threads;
        o.kernel = kernel;
        o.byte_edges = byte_edges;
        lowbit::Result<lowbit::Model> r = lowbit::Model::Load(path, o);
        return Take(std::move(r));
      },
      py::arg("path"), py::arg("threads") = 1, py::arg("kernel") = "", py::arg("byte_edges") = true,
      "Loads a model; kernel: '' (best) or one of kernel_paths()");
  m.def("quantize", &Quantize, py::arg("model"), py::arg("out"), py::arg("weights") = "",
        py::arg("granularity") = "", py::arg("acts") = "", py::arg("plan") = "",
        py::arg("layers") = std::map<std::string, std::string>(), py::arg("calib") = py::none(),
        py::arg("scale") = -1.0, py::arg("mean") = std::vector<float>(), py::arg("std") = std::vector<float>(),
        py::arg("act_calib") = "mse", py::arg("weight_clip") = "auto", py::arg("prune") = 0.0,
        py::arg("bias_correction") = true, py::arg("threads") = 1, py::arg("seed") = 1,
        py::arg("rounding") = "",
        "Post-training quantization of MODEL into the packed file OUT (as lowbit quantize; rounding: "
        "nearest or gptq, default the plan's or nearest); calib: a "
        "dataset spec or an array of samples [n, ...]. Returns sizes and per-layer reports.");
  m.def("tune", &Tune, py::arg("model"), py::arg("out"), py::arg("calib"), py::arg("val"), py::arg("test") = "",
        py::arg("objective") = "size", py::arg("metric") = "top1", py::arg("max_loss") = 1.0,
        py::arg("relative") = false, py::arg("formats") = "", py::arg("bits") = "", py::arg("budget") = 600.0,
        py::arg("max_evals") = 0, py::arg("journal") = "", py::arg("plan") = "", py::arg("threads") = 1,
        py::arg("seed") = 1, py::arg("progress") = py::none(), py::arg("rounding") = "gptq",
        "The auto-tuner (as lowbit tune): writes the chosen packed model to OUT; budget in seconds; "
        "progress(dict) is called after every evaluation. Returns the chosen point, the front and test "
        "accuracy.");
  // Training lives in _lowbit_train (LibTorch), imported on first use.
  m.def(
      "finetune",
      [](const std::string& model, const std::string& out, const std::string& train_spec, const std::string& val,
         const std::string& weights, const std::string& plan, const std::string& acts, int epochs,
         int64_t batch, double lr, const std::string& optimizer, bool distill, bool two_stage,
         bool learn_bits, double bitops_weight, int min_bits, int max_bits, double prune,
         const std::string& checkpoint, bool resume, int threads, uint64_t seed,
         const std::string& write_plan, const py::object& progress) {
        // LibTorch's OpenMP pool spins unless told not to, and reads this only when it loads.
        setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
        py::module_ train;
        try {
          train = py::module_::import("_lowbit_train");
        } catch (const py::error_already_set&) {
          throw LowbitError("training is not built: lowbit was configured without LibTorch (install "
                            "libtorch-dev and rebuild)");
        }
        py::tuple r = train.attr("finetune")(model, out, train_spec, val, weights, plan, acts, epochs, batch, lr,
                                             optimizer, distill, two_stage, learn_bits, bitops_weight, min_bits,
                                             max_bits, prune, checkpoint, resume, threads, seed, write_plan,
                                             progress);
        const std::string error = r[1].cast<std::string>();
        if (!error.empty()) throw LowbitError(error);
        return py::object(r[0]);
      },
      py::arg("model"), py::arg("out"), py::arg("train"), py::arg("val"), py::arg("weights") = "",
      py::arg("plan") = "", py::arg("acts") = "", py::arg("epochs") = 3, py::arg("batch") = 64,
      py::arg("lr") = 5e-4, py::arg("optimizer") = "adam", py::arg("distill") = false,
      py::arg("two_stage") = false, py::arg("learn_bits") = false, py::arg("bitops_weight") = 0.5,
      py::arg("min_bits") = 2, py::arg("max_bits") = 8, py::arg("prune") = 0.0, py::arg("checkpoint") = "",
      py::arg("resume") = false, py::arg("threads") = 1, py::arg("seed") = 1, py::arg("write_plan") = "",
      py::arg("progress") = py::none(),
      "Quantization-aware training (as lowbit finetune): writes the packed model to OUT; progress(dict) "
      "after every epoch. Returns the stages, epochs, layers and sizes.");
  m.def(
      "formats",
      [](int bits) {
        py::list l;
        for (int b = 1; b <= 8; ++b) {
          if (bits != 0 && b != bits) continue;
          for (const lowbit::FormatSpec& s : lowbit::AllVariants(b)) l.append(lowbit::FormatName(s));
        }
        return l;
      },
      py::arg("bits") = 0, "The format names lowbit knows (of `bits` bits; 0: 1-8)");
  m.def("kernel_paths", &lowbit::KernelPaths, "[(name, runs on this CPU)]");
}
