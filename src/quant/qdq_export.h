// A packed model as standard ONNX QDQ in the form ONNX Runtime fuses into its
// int8 kernels (QLinearConv, QGemm, QLinearAdd, QLinearGlobalAveragePool):
//   - every value a packed layer reads, and every packed layer's output, is
//     quantized once (QuantizeLinear -> DequantizeLinear, uint8, the
//     parameters the packed kernels use; an output takes its readers', else
//     the calibrated output_range); values through MaxPool, Flatten, Reshape
//     and the like keep their parameters; graph outputs stay fp32;
//   - weights are int8 per output channel with zero point 0 wherever the
//     levels sit on an int8 grid (every format the integer kernels run: int,
//     uint, int-asym up to 8 bits' span, pow2, n-hot and codebooks snapped to
//     the grid), biases int32 at scale x_scale * w_scale;
//   - Conv, or Gemm when the input is known 2-D (MatMul + Add otherwise), then
//     the fused residual as Add (its conv output quantized with the calibrated
//     pre_residual_range) and the fused Relu/Clip, which ONNX Runtime folds
//     into the following QuantizeLinear;
//   - dynamic activations: DynamicQuantizeLinear; weight-only layers and
//     weights off the int8 grid: decoded fp32 (listed in the report).
#ifndef LOWBIT_QUANT_QDQ_EXPORT_H_
#define LOWBIT_QUANT_QDQ_EXPORT_H_

#include <string>
#include <vector>

#include "ir/graph.h"
#include "lowbit/status.h"

namespace lowbit {

struct QdqReport {
  int qdq_weights = 0;    // layers with integer weights + DequantizeLinear
  int float_weights = 0;  // layers with decoded fp32 weights
  // Layers with 8-bit activations whose weights had to be decoded to fp32
  // (off the int8 grid, group granularity, opset < 13): other runtimes run
  // them in fp32.
  std::vector<std::string> float_layers;
  // Values left unquantized for want of a calibrated range (models quantized
  // before output ranges were recorded); the layers writing them stay fp32
  // in other runtimes.
  std::vector<std::string> unquantized_values;
};

struct QdqOptions {
  // Biases as int32 at x_scale * w_scale (what ONNX Runtime fuses); false
  // keeps them fp32, as the packed kernels add them (the kernel tests'
  // reference).
  bool int32_bias = true;
};

Result<Graph> ToQdqGraph(const Graph& packed, QdqReport* report = nullptr,
                         const QdqOptions& options = {});

}  // namespace lowbit

#endif  // LOWBIT_QUANT_QDQ_EXPORT_H_
