// The graph IR: what an imported model means, independent of ONNX's protobuf.
// Values are named; nodes are kept in topological order; constants
// (initializers) are tensors held by the graph.
#ifndef LOWBIT_IR_GRAPH_H_
#define LOWBIT_IR_GRAPH_H_

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "ir/tensor.h"
#include "lowbit/status.h"

namespace lowbit {

using Attribute = std::variant<int64_t, float, std::string, std::vector<int64_t>,
                               std::vector<float>, Tensor, std::vector<std::string>>;

// A value's declared type: dims of -1 are dynamic (bound when a plan is made).
struct ValueInfo {
  std::string name;
  DType dtype = DType::kFloat32;
  Shape shape;
};

struct Node {
  std::string name;     // unique; generated when the model has none
  std::string op_type;  // "Conv", "Gemm", ...
  std::string domain;   // "" for the default ONNX domain
  int opset = 0;        // the model's opset for this node's domain
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;
  std::map<std::string, Attribute> attrs;

  bool Has(const std::string& key) const { return attrs.count(key) != 0; }
  int64_t GetInt(const std::string& key, int64_t def) const;
  float GetFloat(const std::string& key, float def) const;
  std::string GetString(const std::string& key, const std::string& def) const;
  std::vector<int64_t> GetInts(const std::string& key, std::vector<int64_t> def = {}) const;
  // Input i if present and non-empty, else "".
  const std::string& input(size_t i) const;
  // "Conv 'conv1'" for messages.
  std::string Describe() const;
};

struct Graph {
  std::string source;  // file name, for messages
  int opset = 0;       // default-domain opset
  std::vector<ValueInfo> inputs;   // runtime inputs (initializers excluded)
  std::vector<ValueInfo> outputs;
  std::vector<Node> nodes;         // topological order
  std::map<std::string, Tensor> constants;

  bool IsConstant(const std::string& name) const { return constants.count(name) != 0; }
  // Number of nodes that read `name`, plus one if it is a graph output.
  int Uses(const std::string& name) const;
  bool IsOutput(const std::string& name) const;
  // Index of the node producing `name`, or -1.
  int Producer(const std::string& name) const;
};

// Checks that every input is defined before use (a graph input, a constant or
// an earlier node's output), that names are produced once, and that every
// graph output is produced; sorts nodes topologically when they are not.
Status VerifyGraph(Graph* graph);

}  // namespace lowbit

#endif  // LOWBIT_IR_GRAPH_H_
