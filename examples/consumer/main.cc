// consumer MODEL.onnx OUT.onnx: quantizes MODEL to int4 weights (dynamic
// activations), runs both models on one batch and prints how often their
// top-1 classes agree, the sizes and the first layer's format.
#include <cstdio>
#include <vector>

#include <lowbit/lowbit.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: consumer MODEL.onnx OUT.onnx\n");
    return 2;
  }
  lowbit::QuantizeConfig config;
  config.weights = "int4";
  lowbit::Result<lowbit::QuantizeSummary> q = lowbit::Quantize(argv[1], argv[2], config);
  if (!q.ok()) {
    std::fprintf(stderr, "%s\n", q.status().ToString().c_str());
    return 1;
  }
  lowbit::Result<lowbit::Model> fp32 = lowbit::Model::Load(argv[1]);
  lowbit::Result<lowbit::Model> packed = lowbit::Model::Load(argv[2]);
  if (!fp32.ok() || !packed.ok()) {
    std::fprintf(stderr, "%s\n", (fp32.ok() ? packed.status() : fp32.status()).ToString().c_str());
    return 1;
  }
  std::vector<int64_t> shape = fp32->inputs()[0].shape;
  if (shape[0] < 0) shape[0] = 16;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>((i * 7919) % 1000) / 1000.0f;
  auto a = fp32->Run({{x.data(), shape}});
  auto b = packed->Run({{x.data(), shape}});
  if (!a.ok() || !b.ok()) {
    std::fprintf(stderr, "%s\n", (a.ok() ? b.status() : a.status()).ToString().c_str());
    return 1;
  }
  const int64_t rows = shape[0], classes = (*a)[0].shape.back();
  int agree = 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t ia = 0, ib = 0;
    for (int64_t c = 1; c < classes; ++c) {
      if ((*a)[0].data[r * classes + c] > (*a)[0].data[r * classes + ia]) ia = c;
      if ((*b)[0].data[r * classes + c] > (*b)[0].data[r * classes + ib]) ib = c;
    }
    agree += ia == ib;
  }
  std::printf("agreement %d/%lld, %lld -> %lld bytes, first layer %s\n", agree, static_cast<long long>(rows),
              static_cast<long long>(q->input_bytes), static_cast<long long>(q->output_bytes),
              q->layers[0].format.c_str());
  return 0;
}
