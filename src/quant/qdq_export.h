// A packed model as standard ONNX QDQ that other runtimes run (ONNX Runtime):
// each packed layer becomes
//   x -> QuantizeLinear -> DequantizeLinear (static act_range: the same uint8
//        scale and zero point the packed kernels use; dynamic: DynamicQuantizeLinear,
//        per tensor, where the packed kernels quantize per row / per image)
//   W -> int8/uint8 values + DequantizeLinear (per output channel, opset >= 13)
//        for uniform int formats; decoded fp32 weights for every other format
//   Conv, or MatMul (+ Add for the bias), with the fused activation after it.
#ifndef LOWBIT_QUANT_QDQ_EXPORT_H_
#define LOWBIT_QUANT_QDQ_EXPORT_H_

#include "ir/graph.h"
#include "lowbit/status.h"

namespace lowbit {

struct QdqReport {
  int qdq_weights = 0;    // layers with integer weights + DequantizeLinear
  int float_weights = 0;  // layers with decoded fp32 weights
};

Result<Graph> ToQdqGraph(const Graph& packed, QdqReport* report = nullptr);

}  // namespace lowbit

#endif  // LOWBIT_QUANT_QDQ_EXPORT_H_
