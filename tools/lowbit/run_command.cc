// `lowbit run`: one batch through a model, from .npy to .npy.
#include <cstdio>
#include <cstring>
#include <memory>

#include "base/npy.h"
#include "commands.h"
#include "model_util.h"
#include "runtime/plan.h"

namespace lowbit {
namespace {

struct RunArgs {
  std::string model, input, output;
  int threads = 1;
};

Status RunRun(const RunArgs& a) {
  if (a.threads < 1) return InvalidArgument("--threads must be >= 1, got ", a.threads);
  Graph g;
  LOWBIT_ASSIGN_OR_RETURN(g, LoadModel(a.model));
  if (g.inputs.size() != 1) {
    return InvalidArgument(a.model, ": run needs a model with one input, it has ", g.inputs.size());
  }
  NpyArray x;
  LOWBIT_ASSIGN_OR_RETURN(x, ReadNpy(a.input));
  const ValueInfo& in = g.inputs[0];
  if (x.shape.size() != in.shape.size()) {
    return InvalidArgument(a.input, ": shape ", ShapeToString(x.shape), " does not match model input '",
                           in.name, "' ", ShapeToString(in.shape));
  }
  PlanOptions po;
  LOWBIT_ASSIGN_OR_RETURN(po, PlanOptionsFromEnvironment());
  po.threads = a.threads;
  po.input_shapes[in.name] = x.shape;
  std::unique_ptr<Plan> plan;
  auto made = Plan::Create(g, po);
  if (!made.ok()) {
    // Name the input file when its shape is what the model refuses.
    const std::string msg = made.status().message();
    return Status(made.status().code(), msg.find("input '") != std::string::npos ? a.input + ": " + msg : msg);
  }
  plan = std::move(made).value();
  if (plan->input(0).dtype() != DType::kFloat32) {
    return Unimplemented(a.model, ": input '", in.name, "' is not float32");
  }
  std::memcpy(plan->input(0).raw(), x.data.data(), x.data.size() * sizeof(float));
  plan->Run();
  for (int i = 0; i < plan->num_outputs(); ++i) {
    const Tensor& out = plan->output(i);
    std::printf("output '%s': %s %s\n", plan->output_name(i).c_str(), DTypeName(out.dtype()),
                ShapeToString(out.shape()).c_str());
  }
  if (!a.output.empty()) {
    const Tensor& out = plan->output(0);
    if (out.dtype() != DType::kFloat32) {
      return Unimplemented("--output: output '", plan->output_name(0), "' is ", DTypeName(out.dtype()),
                           "; only float32 outputs are written");
    }
    LOWBIT_RETURN_IF_ERROR(WriteNpy(a.output, out.shape(), out.data<float>()));
  }
  return OkStatus();
}

}  // namespace

Command AddRunCommand(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Run one batch through a model (.npy in, .npy out)");
  cmd->add_option("model", args->model, "Model (.onnx)")->required();
  cmd->add_option("--input", args->input, "Input batch (.npy), shaped like the model input")
      ->required();
  cmd->add_option("--output", args->output, "Write the first output here (.npy)");
  cmd->add_option("--threads", args->threads, "Threads")->capture_default_str();
  return {cmd, [args] { return RunRun(*args); }};
}

}  // namespace lowbit
