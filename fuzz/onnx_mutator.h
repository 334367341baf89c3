// Structure-aware mutation of ONNX models for libFuzzer: parse the ModelProto
// and change one field the parser accepts -- a dimension, an element type,
// an attribute's value or type, an initializer's size or data, a node's
// input or output, an opset, a graph input's shape -- so the validators
// behind the parser are reached, not only the parser. Bytes that do not
// parse fall back to libFuzzer's byte mutation.
#ifndef LOWBIT_FUZZ_ONNX_MUTATOR_H_
#define LOWBIT_FUZZ_ONNX_MUTATOR_H_

#include <cstddef>
#include <cstdint>

size_t MutateOnnx(uint8_t* data, size_t size, size_t max_size, unsigned int seed);

#endif  // LOWBIT_FUZZ_ONNX_MUTATOR_H_
