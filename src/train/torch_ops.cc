#include "train/torch_ops.h"

#include <algorithm>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>

#include "runtime/ops/conv_geometry.h"

namespace lowbit::train {
namespace {

using Tensors = std::vector<torch::Tensor>;

[[noreturn]] void Fail(const Node& n, const std::string& what) {
  throw std::runtime_error(n.Describe() + ": " + what);
}

std::vector<int64_t> Ints(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

int64_t Axis(int64_t axis, int64_t rank) { return axis < 0 ? axis + rank : axis; }

// Pads (value) or crops x's spatial dims so that a window op with no
// padding and floor rounding gives ONNX's output (conv_geometry.h).
torch::Tensor PadForWindow(const Node& n, const torch::Tensor& x, const Shape& kernel, bool ceil_ok,
                           double value, WindowGeometry* geometry) {
  const int spatial = static_cast<int>(x.dim()) - 2;
  if (spatial < 1 || spatial > 3) Fail(n, "takes 1-3 spatial dims, got input rank " + std::to_string(x.dim()));
  Shape in(x.sizes().begin() + 2, x.sizes().end());
  Result<WindowGeometry> g = ComputeWindow(n, in, kernel, ceil_ok);
  if (!g.ok()) Fail(n, g.status().message());
  *geometry = *g;
  std::vector<int64_t> pads;  // torch order: last dim first, (begin, end) pairs
  torch::Tensor y = x;
  for (int d = 2; d >= 3 - spatial; --d) {
    const int64_t need = (g->out[d] - 1) * g->stride[d] + (g->k[d] - 1) * g->dilation[d] + 1;
    const int64_t end = need - g->in[d] - g->pad_begin[d];
    pads.push_back(g->pad_begin[d]);
    pads.push_back(end);
  }
  bool any = false;
  for (int64_t p : pads) any = any || p != 0;
  return any ? torch::constant_pad_nd(y, pads, value) : y;
}

std::vector<int64_t> Dims(const WindowGeometry& g, const std::array<int64_t, 3>& a) {
  return std::vector<int64_t>(a.begin() + (3 - g.spatial), a.end());
}

Tensors Gemm(const Node& n, const Tensors& in) {
  torch::Tensor a = in[0], b = in[1];
  if (n.GetInt("transA", 0) != 0) a = a.t();
  if (n.GetInt("transB", 0) != 0) b = b.t();
  torch::Tensor y = torch::matmul(a, b) * static_cast<double>(n.GetFloat("alpha", 1.0f));
  if (in.size() > 2 && in[2].defined()) y = y + in[2] * static_cast<double>(n.GetFloat("beta", 1.0f));
  return {ApplyFusedActivation(n, y)};
}

Tensors MatMul(const Node& n, const Tensors& in) {
  return {ApplyFusedActivation(n, torch::matmul(in[0], in[1]))};
}

Tensors Conv(const Node& n, const Tensors& in) {
  torch::Tensor y = TorchConv(n, in[0], in[1], in.size() > 2 ? in[2] : torch::Tensor());
  if (n.GetInt("lowbit.residual", 0) != 0) y = y + in.at(3);
  return {ApplyFusedActivation(n, y)};
}

Tensors Add(const Node&, const Tensors& in) { return {in[0] + in[1]}; }
Tensors Sub(const Node&, const Tensors& in) { return {in[0] - in[1]}; }
Tensors Mul(const Node&, const Tensors& in) { return {in[0] * in[1]}; }
Tensors Div(const Node&, const Tensors& in) {
  if (in[0].scalar_type() == torch::kLong) return {torch::div(in[0], in[1], "trunc")};
  return {in[0] / in[1]};
}
Tensors Relu(const Node&, const Tensors& in) { return {torch::relu(in[0])}; }
Tensors Sigmoid(const Node&, const Tensors& in) { return {torch::sigmoid(in[0])}; }
Tensors Tanh(const Node&, const Tensors& in) { return {torch::tanh(in[0])}; }
Tensors LeakyRelu(const Node& n, const Tensors& in) {
  return {torch::leaky_relu(in[0], n.GetFloat("alpha", 0.01f))};
}
Tensors Identity(const Node&, const Tensors& in) { return {in[0]}; }

Tensors Clip(const Node& n, const Tensors& in) {
  double lo = -std::numeric_limits<double>::infinity(), hi = -lo;
  if (n.opset < 11) {
    lo = n.GetFloat("min", -std::numeric_limits<float>::max());
    hi = n.GetFloat("max", std::numeric_limits<float>::max());
  } else {
    if (in.size() > 1 && in[1].defined()) lo = in[1].item<double>();
    if (in.size() > 2 && in[2].defined()) hi = in[2].item<double>();
  }
  return {torch::clamp(in[0], lo, hi)};
}

Tensors MaxPool(const Node& n, const Tensors& in) {
  if (n.outputs.size() > 1 && !n.outputs[1].empty()) Fail(n, "the Indices output is not supported");
  WindowGeometry g;
  const torch::Tensor x =
      PadForWindow(n, in[0], n.GetInts("kernel_shape"), true, -std::numeric_limits<double>::infinity(), &g);
  const auto k = Dims(g, g.k), s = Dims(g, g.stride), d = Dims(g, g.dilation);
  const std::vector<int64_t> zero(k.size(), 0);
  switch (g.spatial) {
    case 1: return {torch::max_pool1d(x, k, s, zero, d)};
    case 2: return {torch::max_pool2d(x, k, s, zero, d)};
    default: return {torch::max_pool3d(x, k, s, zero, d)};
  }
}

torch::Tensor AvgPoolNd(const torch::Tensor& x, const WindowGeometry& g) {
  const auto k = Dims(g, g.k), s = Dims(g, g.stride);
  const std::vector<int64_t> zero(k.size(), 0);
  switch (g.spatial) {
    case 1: return torch::avg_pool1d(x, k, s, zero);
    case 2: return torch::avg_pool2d(x, k, s, zero);
    default: return torch::avg_pool3d(x, k, s, zero);
  }
}

Tensors AveragePool(const Node& n, const Tensors& in) {
  WindowGeometry g;
  const torch::Tensor x = PadForWindow(n, in[0], n.GetInts("kernel_shape"), true, 0.0, &g);
  // The mean over the window's real inputs (and its pads when
  // count_include_pad): average of the zero-padded input over the average
  // of a mask that is 1 where a value counts. (With count_include_pad and
  // ceil_mode, ceil_mode's overflow counts as padding here.)
  const bool include_pad = n.GetInt("count_include_pad", 0) != 0;
  const torch::Tensor ones = torch::ones_like(in[0].select(1, 0).unsqueeze(1));
  WindowGeometry gm;
  const torch::Tensor mask =
      PadForWindow(n, ones, n.GetInts("kernel_shape"), true, include_pad ? 1.0 : 0.0, &gm);
  return {AvgPoolNd(x, g) / AvgPoolNd(mask, g)};
}

Tensors GlobalAveragePool(const Node&, const Tensors& in) {
  std::vector<int64_t> dims;
  for (int64_t d = 2; d < in[0].dim(); ++d) dims.push_back(d);
  return {in[0].mean(dims, true)};
}

Tensors BatchNormalization(const Node& n, const Tensors& in) {
  const double eps = n.GetFloat("epsilon", 1e-5f);
  std::vector<int64_t> shape(in[0].dim(), 1);
  shape[1] = -1;
  const torch::Tensor inv = torch::rsqrt(in[4].view(shape) + eps);
  return {(in[0] - in[3].view(shape)) * inv * in[1].view(shape) + in[2].view(shape)};
}

torch::Tensor Coerced2D(const torch::Tensor& x, int64_t axis) {
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.size(d);
  return x.reshape({outer, -1});
}

Tensors Softmax(const Node& n, const Tensors& in) {
  const int64_t rank = in[0].dim();
  if (n.opset < 13) {
    const int64_t axis = Axis(n.GetInt("axis", 1), rank);
    return {torch::softmax(Coerced2D(in[0], axis), 1).view(in[0].sizes())};
  }
  return {torch::softmax(in[0], Axis(n.GetInt("axis", -1), rank))};
}

Tensors LogSoftmax(const Node& n, const Tensors& in) {
  const int64_t rank = in[0].dim();
  if (n.opset < 13) {
    const int64_t axis = Axis(n.GetInt("axis", 1), rank);
    return {torch::log_softmax(Coerced2D(in[0], axis), 1).view(in[0].sizes())};
  }
  return {torch::log_softmax(in[0], Axis(n.GetInt("axis", -1), rank))};
}

Tensors Flatten(const Node& n, const Tensors& in) {
  return {Coerced2D(in[0], Axis(n.GetInt("axis", 1), in[0].dim()))};
}

Tensors Reshape(const Node& n, const Tensors& in) {
  std::vector<int64_t> shape = Ints(in[1]);
  if (n.GetInt("allowzero", 0) == 0) {
    for (size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == 0) {
        if (static_cast<int64_t>(i) >= in[0].dim()) Fail(n, "a 0 in shape past the input's rank");
        shape[i] = in[0].size(static_cast<int64_t>(i));
      }
    }
  }
  return {in[0].reshape(shape)};
}

Tensors Transpose(const Node& n, const Tensors& in) {
  std::vector<int64_t> perm = n.GetInts("perm");
  if (perm.empty()) {
    for (int64_t d = in[0].dim() - 1; d >= 0; --d) perm.push_back(d);
  }
  return {in[0].permute(perm)};
}

Tensors Concat(const Node& n, const Tensors& in) {
  std::vector<torch::Tensor> parts;
  for (const torch::Tensor& t : in) {
    if (t.defined()) parts.push_back(t);
  }
  return {torch::cat(parts, Axis(n.GetInt("axis", 0), parts.at(0).dim()))};
}

std::vector<int64_t> AxesOf(const Node& n, const Tensors& in) {
  if (n.opset < 13 || n.Has("axes")) return n.GetInts("axes");
  return in.size() > 1 && in[1].defined() ? Ints(in[1]) : std::vector<int64_t>{};
}

Tensors Squeeze(const Node& n, const Tensors& in) {
  std::vector<int64_t> axes = AxesOf(n, in);
  torch::Tensor y = in[0];
  if (axes.empty()) return {y.squeeze()};
  for (int64_t& a : axes) a = Axis(a, y.dim());
  std::sort(axes.rbegin(), axes.rend());
  for (int64_t a : axes) y = y.squeeze(a);
  return {y};
}

Tensors Unsqueeze(const Node& n, const Tensors& in) {
  std::vector<int64_t> axes = AxesOf(n, in);
  const int64_t rank = in[0].dim() + static_cast<int64_t>(axes.size());
  for (int64_t& a : axes) a = Axis(a, rank);
  std::sort(axes.begin(), axes.end());
  torch::Tensor y = in[0];
  for (int64_t a : axes) y = y.unsqueeze(a);
  return {y};
}

Tensors Pad(const Node& n, const Tensors& in) {
  const std::string mode = n.GetString("mode", "constant");
  std::vector<int64_t> pads = n.opset < 11 ? n.GetInts("pads") : Ints(in.at(1));
  double value = n.opset < 11 ? n.GetFloat("value", 0.0f) : 0.0;
  if (n.opset >= 11 && in.size() > 2 && in[2].defined()) value = in[2].item<double>();
  const int64_t rank = in[0].dim();
  if (static_cast<int64_t>(pads.size()) != 2 * rank) Fail(n, "pads must have 2 * rank values");
  std::vector<int64_t> tp;
  for (int64_t d = rank - 1; d >= 0; --d) {
    tp.push_back(pads[d]);
    tp.push_back(pads[d + rank]);
  }
  if (mode == "constant") return {torch::constant_pad_nd(in[0], tp, value)};
  // reflect/edge pad only spatial dims in torch: require zero pads on N, C.
  if (pads[0] || pads[1] || pads[rank] || pads[rank + 1]) Fail(n, "mode " + mode + " on N or C");
  tp.resize(tp.size() - 4);
  namespace F = torch::nn::functional;
  F::PadFuncOptions o(tp);
  if (mode == "reflect") {
    o.mode(torch::kReflect);
  } else if (mode == "edge") {
    o.mode(torch::kReplicate);
  } else {
    Fail(n, "mode '" + mode + "' is not supported");
  }
  return {F::pad(in[0], o)};
}

Tensors ShapeOp(const Node& n, const Tensors& in) {
  std::vector<int64_t> dims(in[0].sizes().begin(), in[0].sizes().end());
  const int64_t rank = static_cast<int64_t>(dims.size());
  int64_t start = Axis(n.GetInt("start", 0), rank), end = n.Has("end") ? Axis(n.GetInt("end", rank), rank) : rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, start, rank);
  return {torch::tensor(std::vector<int64_t>(dims.begin() + start, dims.begin() + end), torch::kLong)};
}

Tensors Gather(const Node& n, const Tensors& in) {
  const int64_t axis = Axis(n.GetInt("axis", 0), in[0].dim());
  torch::Tensor idx = in[1].to(torch::kLong);
  idx = torch::where(idx < 0, idx + in[0].size(axis), idx);
  std::vector<int64_t> shape(in[0].sizes().begin(), in[0].sizes().begin() + axis);
  for (int64_t s : idx.sizes()) shape.push_back(s);
  for (int64_t d = axis + 1; d < in[0].dim(); ++d) shape.push_back(in[0].size(d));
  return {in[0].index_select(axis, idx.flatten()).reshape(shape)};
}

Tensors Dropout(const Node&, const Tensors& in) { return {in[0]}; }

const std::map<std::string, TorchOpFn>& Table() {
  static const std::map<std::string, TorchOpFn> table = {
      {"Conv", Conv},         {"Gemm", Gemm},
      {"MatMul", MatMul},     {"Add", Add},
      {"Sub", Sub},           {"Mul", Mul},
      {"Div", Div},           {"Relu", Relu},
      {"Clip", Clip},         {"Sigmoid", Sigmoid},
      {"Tanh", Tanh},         {"LeakyRelu", LeakyRelu},
      {"Identity", Identity}, {"Dropout", Dropout},
      {"MaxPool", MaxPool},   {"AveragePool", AveragePool},
      {"GlobalAveragePool", GlobalAveragePool},
      {"BatchNormalization", BatchNormalization},
      {"Softmax", Softmax},   {"LogSoftmax", LogSoftmax},
      {"Flatten", Flatten},   {"Reshape", Reshape},
      {"Transpose", Transpose}, {"Concat", Concat},
      {"Squeeze", Squeeze},   {"Unsqueeze", Unsqueeze},
      {"Pad", Pad},           {"Shape", ShapeOp},
      {"Gather", Gather},
  };
  return table;
}

}  // namespace

TorchOpFn FindTorchOp(const std::string& op_type) {
  auto it = Table().find(op_type);
  return it == Table().end() ? nullptr : it->second;
}

torch::Tensor TorchConv(const Node& n, const torch::Tensor& x, const torch::Tensor& w,
                        const torch::Tensor& b) {
  WindowGeometry g;
  Shape kernel(w.sizes().begin() + 2, w.sizes().end());
  const torch::Tensor xp = PadForWindow(n, x, kernel, false, 0.0, &g);
  const std::vector<int64_t> zero(kernel.size(), 0), no_out_pad(kernel.size(), 0);
  return at::convolution(xp, w, b, Dims(g, g.stride), zero, Dims(g, g.dilation), false, no_out_pad,
                         n.GetInt("group", 1));
}

torch::Tensor ApplyFusedActivation(const Node& n, torch::Tensor y) {
  const std::string kind = n.GetString("lowbit.activation", "");
  if (kind == "Relu") return torch::relu(y);
  if (kind == "Clip") {
    return torch::clamp(y, n.GetFloat("lowbit.clip_min", 0), n.GetFloat("lowbit.clip_max", 0));
  }
  return y;
}

}  // namespace lowbit::train
