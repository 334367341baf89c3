// What the packed operators' kernels check of their inputs before running a
// packed node (model/packed_node.h): X float32, or 8-bit pixels where the
// plan made the input a byte edge (runtime/byte_edges.h); codes and scales
// constant; the node's act valid. Errors name the node.
#ifndef LOWBIT_RUNTIME_PACKED_INPUTS_H_
#define LOWBIT_RUNTIME_PACKED_INPUTS_H_

#include <vector>

#include "model/packed_node.h"
#include "runtime/op.h"

namespace lowbit {

// The packed weight of a PackedConv/PackedGemm kernel from its inputs X,
// codes and scales. Filter-wise formats need 8-bit activations.
Result<PackedParts> PreparePackedParts(const OpKernel& op, const std::vector<TensorInfo>& in);

// The same for kernels that run one format (the weight-only ones): refuses
// filter-wise formats.
Result<PackedTensor> PreparePackedInputs(const OpKernel& op, const std::vector<TensorInfo>& in);

}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_PACKED_INPUTS_H_
