// Graph rewrites that keep a model's meaning and make it cheaper to run.
#ifndef LOWBIT_IR_PASSES_H_
#define LOWBIT_IR_PASSES_H_

#include <string>

#include "ir/graph.h"

namespace lowbit {

// Removes Identity and inference-time Dropout (when their outputs are not
// graph outputs), rewiring readers to the input.
int RemoveIdentities(Graph* g);
// Folds BatchNormalization into a preceding Conv (or Gemm with transB = 1)
// whose weights are constants and whose output only BN reads.
int FoldBatchNorms(Graph* g);
// Fuses Add(Conv(...), R) into the Conv when only the Add reads the conv's
// output and R is computed (not a constant): R becomes the Conv's input 3
// (after B, "" when absent) with attribute lowbit.residual = 1, and the conv
// adds it to its output before any fused activation.
int FuseResidualAdds(Graph* g);
// The bounds of a Clip: attributes before opset 11, constant scalar inputs
// from 11 (absent: infinite); false when a bound input is not a constant.
bool ClipBounds(const Graph& g, const Node& clip, float* lo, float* hi);
// The value a residual-fused Conv computes before it adds R: what the QDQ
// export quantizes before its Add. Named OUTPUT/pre_residual.
std::string PreResidualName(const std::string& output);
// The reverse of FuseResidualAdds for calibration: each Conv with a fused
// residual becomes Conv (output PreResidualName) + Add + its fused
// activation (Relu or Clip), so that value can be observed.
Graph UnfuseResiduals(const Graph& g);
// Fuses Relu, and Clip with constant bounds, into a preceding Conv, Gemm or
// MatMul whose output only the activation reads (attributes lowbit.*).
int FuseActivations(Graph* g);
// Exporter idioms (exporter_patterns.cc): Max(x, c) / Min(x, c) with a
// scalar constant become Clip; a Clip of a Clip one Clip; x * HardSigmoid(x)
// (alpha 1/6, beta 1/2) HardSwish; adjacent Transposes whose perms cancel
// vanish; ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div[/Mul/Add] over the last
// axis becomes LayerNormalization.
int RewriteMinMaxAsClip(Graph* g);
int MergeClips(Graph* g);
int FuseHardSwish(Graph* g);
int CancelTransposePairs(Graph* g);
int FuseLayerNorms(Graph* g);
// Removes nodes whose outputs reach no graph output, and unused constants.
int RemoveDeadNodes(Graph* g);

// All of the above, then VerifyGraph.
Status OptimizeGraph(Graph* g);

}  // namespace lowbit

#endif  // LOWBIT_IR_PASSES_H_
