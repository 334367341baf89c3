#include "onnx_mutator.h"

#include "runtime/op.h"

#include <onnx/onnx_pb.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

const int64_t kValues[] = {0, -1, 1, 2, 3, 7, 255, 65536, 2147483647LL, 2147483648LL, 1LL << 40, -(1LL << 31)};

int64_t AnyValue(std::mt19937& rng) {
  return rng() % 4 == 0 ? static_cast<int64_t>(rng() % 64) : kValues[rng() % std::size(kValues)];
}

// A name already in the graph (or a new one), for rewiring inputs/outputs.
std::string AnyName(const onnx::GraphProto& g, std::mt19937& rng) {
  std::vector<std::string> names = {"", "nothere"};
  for (const auto& t : g.initializer()) names.push_back(t.name());
  for (const auto& n : g.node()) {
    for (const auto& o : n.output()) names.push_back(o);
  }
  for (const auto& i : g.input()) names.push_back(i.name());
  return names[rng() % names.size()];
}

void MutateModel(onnx::ModelProto* m, std::mt19937& rng) {
  onnx::GraphProto* g = m->mutable_graph();
  switch (rng() % 11) {
    case 0:  // an initializer's dimension
      if (g->initializer_size() > 0) {
        auto* t = g->mutable_initializer(rng() % g->initializer_size());
        if (t->dims_size() > 0) t->set_dims(rng() % t->dims_size(), AnyValue(rng));
      }
      break;
    case 1:  // an extra dimension
      if (g->initializer_size() > 0) g->mutable_initializer(rng() % g->initializer_size())->add_dims(AnyValue(rng));
      break;
    case 2:  // an element type
      if (g->initializer_size() > 0) {
        g->mutable_initializer(rng() % g->initializer_size())->set_data_type(static_cast<int>(rng() % 18));
      }
      break;
    case 3:  // truncated or grown data
      if (g->initializer_size() > 0) {
        auto* t = g->mutable_initializer(rng() % g->initializer_size());
        std::string* raw = t->mutable_raw_data();
        if (rng() % 2 == 0 && !raw->empty()) {
          raw->resize(rng() % raw->size());
        } else {
          raw->append(1 + rng() % 16, static_cast<char>(rng()));
        }
      }
      break;
    case 4:  // a byte of data (NaN, huge values, out-of-range codes)
      if (g->initializer_size() > 0) {
        std::string* raw = g->mutable_initializer(rng() % g->initializer_size())->mutable_raw_data();
        if (!raw->empty()) (*raw)[rng() % raw->size()] = static_cast<char>(rng());
      }
      break;
    case 5: {  // an attribute's value or type
      if (g->node_size() == 0) break;
      auto* n = g->mutable_node(rng() % g->node_size());
      if (n->attribute_size() == 0) break;
      auto* a = n->mutable_attribute(rng() % n->attribute_size());
      switch (rng() % 6) {
        case 0: a->set_i(AnyValue(rng)); break;
        case 1:
          if (a->ints_size() > 0) a->set_ints(rng() % a->ints_size(), AnyValue(rng));
          break;
        case 2: a->set_f(rng() % 2 ? 1e30f : -1.0f); break;
        case 3: {
          static const char* kStrings[] = {"", "int9", "int2/int4", "codebook-3", "float", "uint8", "int8",
                                           "nhot2-3", "channel", "group:0", "tensor", "\xff"};
          a->set_s(kStrings[rng() % std::size(kStrings)]);
          break;
        }
        case 4: a->set_type(static_cast<onnx::AttributeProto::AttributeType>(rng() % 12)); break;
        default:
          if (a->floats_size() > 0) a->set_floats(rng() % a->floats_size(), rng() % 2 ? -1e30f : 0.0f);
          break;
      }
      break;
    }
    case 6: {  // a node input
      if (g->node_size() == 0) break;
      auto* n = g->mutable_node(rng() % g->node_size());
      if (n->input_size() > 0) n->set_input(rng() % n->input_size(), AnyName(*g, rng));
      break;
    }
    case 7: {  // a node output
      if (g->node_size() == 0) break;
      auto* n = g->mutable_node(rng() % g->node_size());
      if (n->output_size() > 0) n->set_output(rng() % n->output_size(), AnyName(*g, rng));
      break;
    }
    case 8:  // an opset
      if (m->opset_import_size() > 0) {
        static const int64_t kOpsets[] = {0, 1, 6, 9, 11, 13, 17, 18, 99, 2147483647};
        m->mutable_opset_import(rng() % m->opset_import_size())->set_version(kOpsets[rng() % std::size(kOpsets)]);
      }
      break;
    case 9:  // a graph input's shape
      if (g->input_size() > 0) {
        auto* shape = g->mutable_input(rng() % g->input_size())->mutable_type()->mutable_tensor_type()->mutable_shape();
        if (shape->dim_size() > 0) shape->mutable_dim(rng() % shape->dim_size())->set_dim_value(AnyValue(rng));
      }
      break;
    default:  // a node's operator
      if (g->node_size() > 0) {
        // Any operator the runtime registers (ops.inc, lowbit_ops.inc).
        const std::vector<lowbit::OpRegistration>& ops = lowbit::AllOps();
        g->mutable_node(rng() % g->node_size())->set_op_type(ops[rng() % ops.size()].op_type);
      }
      break;
  }
}

}  // namespace

size_t MutateOnnx(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::mt19937 rng(seed);
  onnx::ModelProto m;
  if (rng() % 8 == 0 || !m.ParseFromArray(data, static_cast<int>(size))) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  const int n = 1 + static_cast<int>(rng() % 2);
  for (int i = 0; i < n; ++i) MutateModel(&m, rng);
  std::string out;
  if (!m.SerializeToString(&out) || out.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, out.data(), out.size());
  return out.size();
}
