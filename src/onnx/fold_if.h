// If nodes whose condition the model fixes (an initializer or a Constant
// node's value) replaced by the nodes of the branch taken, as exporters write
// them around shape checks. Other If and Loop nodes stay, and the support
// check refuses them by name.
#ifndef LOWBIT_ONNX_FOLD_IF_H_
#define LOWBIT_ONNX_FOLD_IF_H_

#include <onnx/onnx_pb.h>

namespace lowbit {

// Rewrites `graph` in place (nested constant Ifs too); returns how many If
// nodes were folded.
int FoldConstantIfs(onnx::GraphProto* graph);

}  // namespace lowbit

#endif  // LOWBIT_ONNX_FOLD_IF_H_
