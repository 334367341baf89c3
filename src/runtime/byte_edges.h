// Byte edges: values passed between packed convolutions as 8-bit pixels
// instead of fp32 planes.
//
// A packed convolution with static activation ranges quantizes its input to
// 8 bits anyway; when the value comes from another packed convolution, that
// producer can write the bytes itself (its epilogue requantizes with the
// consumer's parameters, ByteOutput in kernels/qlinear.h), in NHWC order, the
// order its dot products come out in and the consumer's image reads. That
// saves the fp32 planes' transposed stores, a quarter of the memory traffic
// and the consumer's quantization pass, and the consumer gets exactly the
// bytes it would have computed. A residual read as bytes is the one change in
// value: it is added as its 8-bit quantization (what int8 runtimes add).
//
// The plan marks the nodes on its own copy, after ClearByteEdges:
//   producer  lowbit.y_bytes_act / lowbit.y_bytes_range: output Y is uint8
//             [N, spatial..., C], quantized with act and range;
//   consumer  lowbit.x_bytes = 1: input X is such bytes, with the node's own
//             act and act_range;
//             lowbit.r_bytes_act / lowbit.r_bytes_range: the residual (input
//             4) is such bytes, with these parameters.
#ifndef LOWBIT_RUNTIME_BYTE_EDGES_H_
#define LOWBIT_RUNTIME_BYTE_EDGES_H_

#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kernels/qlinear.h"
#include "runtime/op.h"

namespace lowbit {

inline constexpr const char* kByteInput = "lowbit.x_bytes";
inline constexpr const char* kByteOutputAct = "lowbit.y_bytes_act";
inline constexpr const char* kByteOutputRange = "lowbit.y_bytes_range";
inline constexpr const char* kByteResidualAct = "lowbit.r_bytes_act";
inline constexpr const char* kByteResidualRange = "lowbit.r_bytes_range";

// Removes these attributes from `nodes` (a model file never sets them).
void ClearByteEdges(std::vector<Node>* nodes);

// Marks every value of `g` that can travel as bytes, on `nodes` (a copy of
// g.nodes), and returns how many. A value qualifies when a packed
// convolution with 8-bit activations (depthwise ones: one output per channel
// and no fused residual; they run on kernels/depthwise.h DepthwiseNhwc) or a
// pass-through operator that reads bytes produces it, it is not a graph
// output or in `pinned`, and every reader is such a convolution with a
// static range that reads it as X or as a residual, or a pass-through
// operator whose output qualifies; the X readers (through pass-through
// operators) all with the same act and act_range. A residual reader must
// itself write bytes (its epilogue adds the residual while writing them); a
// value that only residual readers read (a projection shortcut) takes their
// common residual_range, as uint8, and needs one on each.
//
// Pass-through operators (IsBytePassThrough) compute on the bytes exactly
// what quantizing their fp32 result would give, because quantization is
// monotonic and they only select, copy or clamp: a 2-D MaxPool, Concat,
// Slice, nearest Resize/Upsample, Clip, Relu, and Max/Min of activations.
// They are marked like convolutions (x_bytes, y_bytes_*), with equal
// parameters in and out, and take bytes only when every data input
// (Concat, Max, Min: all; else input 0) is bytes -- else none of their
// inputs travel as bytes.
int MarkByteEdges(const Graph& g, const std::set<std::string>& pinned, std::vector<Node>* nodes);

// Whether `n` is a pass-through operator whose other inputs (bounds, starts,
// scales) are constants of `g`.
bool IsBytePassThrough(const Graph& g, const Node& n);

// For a pass-through operator: whether this plan gives it bytes (kByteInput,
// set together with kByteOutputAct), after checking that inputs `data` are
// then uint8 pixels [N, spatial..., C], rank 3 or more.
Result<bool> BytePassThroughInputs(const Node& n, const std::vector<TensorInfo>& in,
                                   const std::vector<size_t>& data);
// NCHW axis `axis` (in [0, rank)) of a value held as [N, spatial..., C].
int NhwcAxis(int axis, int rank);
// Whether `n` has the byte-edge attributes act_key (the activation type)
// and range_key (kByteOutputAct/Range, kByteResidualAct/Range), and their
// canonical parameters in *q.
Result<bool> ByteEdgeParams(const Node& n, const char* act_key, const char* range_key, ActQuant* q);
// The output bytes' quantization of a node marked with kByteOutputAct.
Result<ByteOutput> ByteEdgeOutput(const Node& n);

}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_BYTE_EDGES_H_
