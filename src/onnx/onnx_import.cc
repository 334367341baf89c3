#include "onnx/onnx_import.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>
#include <onnx/version_converter/convert.h>

#include <cstring>
#include <set>

#include "base/npy.h"
#include "onnx/checker_message.h"
#include "onnx/fold_if.h"

namespace lowbit {
namespace {

Result<DType> FromOnnxType(int t, const std::string& what) {
  switch (t) {
    case onnx::TensorProto::FLOAT: return DType::kFloat32;
    case onnx::TensorProto::INT64: return DType::kInt64;
    case onnx::TensorProto::INT32: return DType::kInt32;
    case onnx::TensorProto::UINT8: return DType::kUint8;
    case onnx::TensorProto::INT8: return DType::kInt8;
    case onnx::TensorProto::BOOL: return DType::kBool;
    case onnx::TensorProto::DOUBLE: return DType::kFloat64;
    default: break;
  }
  return Unimplemented(what, ": element type ",
                       onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(t)),
                       " is not supported");
}

template <typename T, typename Field>
void CopyField(const Field& field, Tensor* t) {
  T* dst = t->data<T>();
  for (int i = 0; i < field.size() && i < t->numel(); ++i) dst[i] = static_cast<T>(field.Get(i));
}

Result<Tensor> FromTensorProto(const onnx::TensorProto& p, const std::string& where) {
  const std::string what = where + " tensor '" + p.name() + "'";
  if (p.data_location() == onnx::TensorProto::EXTERNAL) {
    return Unimplemented(what, ": external data is not supported (save the model with the "
                               "weights inside the .onnx file)");
  }
  DType dtype;
  LOWBIT_ASSIGN_OR_RETURN(dtype, FromOnnxType(p.data_type(), what));
  Shape shape(p.dims().begin(), p.dims().end());
  for (int64_t d : shape) {
    if (d < 0) return DataLoss(what, ": negative dimension ", d);
  }
  // The declared size against the data the file holds, before allocating.
  int64_t declared = 0;
  {
    // The data is in the file (already in memory): only overflow matters here.
    Result<int64_t> b = CheckedBytes(dtype, shape, what, /*capped=*/false);
    if (!b.ok()) return DataLoss(b.status().message());
    declared = *b;
  }
  const size_t bytes = static_cast<size_t>(declared);
  if (p.has_raw_data()) {
    if (p.raw_data().size() != bytes) {
      return DataLoss(what, ": raw data has ", p.raw_data().size(), " bytes, shape ",
                      ShapeToString(shape), " of ", DTypeName(dtype), " needs ", bytes);
    }
    Tensor t(dtype, shape);
    if (bytes > 0) std::memcpy(t.raw(), p.raw_data().data(), bytes);
    return t;
  }
  int64_t field = 0;
  switch (dtype) {
    case DType::kFloat32: field = p.float_data_size(); break;
    case DType::kInt64: field = p.int64_data_size(); break;
    case DType::kFloat64: field = p.double_data_size(); break;
    default: field = p.int32_data_size(); break;
  }
  if (field != static_cast<int64_t>(bytes / DTypeSize(dtype))) {
    return DataLoss(what, ": has ", field, " values, shape ", ShapeToString(shape), " needs ",
                    bytes / DTypeSize(dtype));
  }
  Tensor t(dtype, shape);
  int64_t have = 0;
  switch (dtype) {
    case DType::kFloat32: have = p.float_data_size(); CopyField<float>(p.float_data(), &t); break;
    case DType::kInt64: have = p.int64_data_size(); CopyField<int64_t>(p.int64_data(), &t); break;
    case DType::kFloat64: have = p.double_data_size(); CopyField<double>(p.double_data(), &t); break;
    case DType::kInt32: have = p.int32_data_size(); CopyField<int32_t>(p.int32_data(), &t); break;
    case DType::kUint8: case DType::kBool:
      have = p.int32_data_size(); CopyField<uint8_t>(p.int32_data(), &t); break;
    case DType::kInt8: have = p.int32_data_size(); CopyField<int8_t>(p.int32_data(), &t); break;
  }
  if (have != t.numel()) {
    return DataLoss(what, ": has ", have, " values, shape ", ShapeToString(shape), " needs ",
                    t.numel());
  }
  return t;
}

Result<ValueInfo> FromValueInfo(const onnx::ValueInfoProto& v, const std::string& where) {
  ValueInfo out;
  out.name = v.name();
  if (!v.type().has_tensor_type()) {
    return Unimplemented(where, " '", v.name(), "': only tensor values are supported");
  }
  const auto& tt = v.type().tensor_type();
  LOWBIT_ASSIGN_OR_RETURN(out.dtype, FromOnnxType(tt.elem_type(), where + " '" + v.name() + "'"));
  if (tt.has_shape()) {
    for (const auto& d : tt.shape().dim()) out.shape.push_back(d.has_dim_value() ? d.dim_value() : -1);
  }
  return out;
}

Result<Attribute> FromAttribute(const onnx::AttributeProto& a, const std::string& where) {
  switch (a.type()) {
    case onnx::AttributeProto::INT: return Attribute(static_cast<int64_t>(a.i()));
    case onnx::AttributeProto::FLOAT: return Attribute(a.f());
    case onnx::AttributeProto::STRING: return Attribute(a.s());
    case onnx::AttributeProto::INTS:
      return Attribute(std::vector<int64_t>(a.ints().begin(), a.ints().end()));
    case onnx::AttributeProto::FLOATS:
      return Attribute(std::vector<float>(a.floats().begin(), a.floats().end()));
    case onnx::AttributeProto::STRINGS:
      return Attribute(std::vector<std::string>(a.strings().begin(), a.strings().end()));
    case onnx::AttributeProto::TENSOR: {
      Tensor t;
      LOWBIT_ASSIGN_OR_RETURN(t, FromTensorProto(a.t(), where));
      return Attribute(std::move(t));
    }
    default: break;
  }
  return Unimplemented(where, ": attribute '", a.name(), "' has an unsupported type (",
                       onnx::AttributeProto::AttributeType_Name(a.type()), ")");
}

// Constant nodes become graph constants.
Status FoldConstantNode(const Node& n, Graph* g) {
  Tensor t;
  if (auto it = n.attrs.find("value"); it != n.attrs.end() && std::holds_alternative<Tensor>(it->second)) {
    t = std::get<Tensor>(it->second);
  } else if (n.Has("value_float")) {
    t = Tensor::FromFloats({}, {n.GetFloat("value_float", 0)});
  } else if (n.Has("value_floats")) {
    const auto& v = std::get<std::vector<float>>(n.attrs.at("value_floats"));
    t = Tensor::FromFloats({static_cast<int64_t>(v.size())}, v);
  } else if (n.Has("value_int")) {
    t = Tensor::FromInt64s({}, {n.GetInt("value_int", 0)});
  } else if (n.Has("value_ints")) {
    const std::vector<int64_t> v = n.GetInts("value_ints");
    t = Tensor::FromInt64s({static_cast<int64_t>(v.size())}, v);
  } else {
    return Unimplemented(g->source, ": ", n.Describe(), ": only value, value_float(s) and "
                                                       "value_int(s) constants are supported");
  }
  g->constants[n.outputs.at(0)] = std::move(t);
  return OkStatus();
}

// The opset a node of `domain` runs under.
int OpsetFor(const onnx::ModelProto& model, const std::string& domain) {
  for (const auto& op : model.opset_import()) {
    const bool default_domain = op.domain().empty() || op.domain() == "ai.onnx";
    if ((domain.empty() && default_domain) || (!domain.empty() && op.domain() == domain)) {
      return static_cast<int>(op.version());
    }
  }
  return 0;
}

Status CheckOperators(const onnx::ModelProto& model, const std::string& name,
                      const ImportOptions& options) {
  if (!options.is_supported) return OkStatus();
  std::string missing;
  int count = 0;
  const onnx::GraphProto& gp = model.graph();
  for (int i = 0; i < gp.node_size(); ++i) {
    const onnx::NodeProto& n = gp.node(i);
    const std::string domain = n.domain() == "ai.onnx" ? "" : n.domain();
    if (n.op_type() == "Constant" && domain.empty()) continue;  // folded at import
    const int opset = OpsetFor(model, domain);
    if (options.is_supported(domain, n.op_type(), opset)) continue;
    missing += (count++ ? ", " : "") + (domain.empty() ? "" : domain + ".") + n.op_type() + " '" +
               (n.name().empty() ? n.op_type() + "_" + std::to_string(i) : n.name()) +
               "' (opset " + std::to_string(opset) + ")";
  }
  if (count == 0) return OkStatus();
  return Unimplemented(name, ": ", count, " unsupported operator", count > 1 ? "s" : "", ": ",
                       missing);
}

}  // namespace

// The first line of a converter's message (they carry stack traces).
static std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

// `model` converted to options.upgrade_opset and imported; on failure, an
// error and *note saying why the original is kept.
static Result<Graph> ImportUpgraded(const onnx::ModelProto& model, const std::string& name,
                                    const ImportOptions& options, std::string* note) {
  const int64_t from = OpsetFor(model, ""), to = options.upgrade_opset;
  const std::string kept = "kept opset " + std::to_string(from) + " (a QDQ export needs 13): ";
  std::string bytes;
  try {
    // Some adapters (Softmax 12 -> 13) need the input shapes: inferred first.
    onnx::ModelProto shaped = model;
    onnx::shape_inference::InferShapes(shaped);
    const onnx::ModelProto converted = onnx::version_conversion::ConvertVersion(shaped, static_cast<int>(to));
    if (!converted.SerializeToString(&bytes)) throw std::runtime_error("cannot serialize the result");
  } catch (const std::exception& e) {
    *note = kept + "ONNX's version converter: " + FirstLine(e.what());
    return Unimplemented(*note);
  } catch (...) {
    *note = kept + "ONNX's version converter failed";
    return Unimplemented(*note);
  }
  ImportOptions inner = options;
  inner.upgrade_opset = 0;
  inner.upgrade_note = nullptr;
  Result<Graph> g = ImportOnnxBytes(bytes, name, inner);
  if (!g.ok()) {
    *note = kept + "the converted model: " + g.status().message();
    return g.status();
  }
  *note = "converted from opset " + std::to_string(from) + " to " + std::to_string(to) +
          " with ONNX's version converter";
  return g;
}

Result<Graph> ImportOnnxBytes(const std::string& bytes, const std::string& name,
                              const ImportOptions& options) {
  onnx::ModelProto model;
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) {
    return Unimplemented(name, ": models over 2 GiB are not supported");
  }
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return DataLoss(name, ": not a valid ONNX model (truncated or corrupt protobuf, ", bytes.size(),
                    " bytes)");
  }
  if (!model.has_graph()) return DataLoss(name, ": the model has no graph");
  if (std::string msg = CheckerMessage(model); !msg.empty()) {
    return InvalidArgument(name, ": ONNX checker: ", msg);
  }
  FoldConstantIfs(model.mutable_graph());
  bool default_nodes = false, only_default = true;
  for (const auto& n : model.graph().node()) {
    const bool d = n.domain().empty() || n.domain() == "ai.onnx";
    default_nodes = default_nodes || d;
    only_default = only_default && d;
  }
  const int64_t opset = OpsetFor(model, "");
  if (options.upgrade_opset > opset && opset >= 1 && only_default) {
    std::string note;
    Result<Graph> up = ImportUpgraded(model, name, options, &note);
    if (options.upgrade_note != nullptr) *options.upgrade_note = note;
    if (up.ok()) return up;
  }
  LOWBIT_RETURN_IF_ERROR(CheckOperators(model, name, options));
  Graph g;
  g.source = name;
  g.opset = opset;
  if (default_nodes && (g.opset < 1 || g.opset > 20)) {
    return Unimplemented(name, ": opset ", g.opset, " is outside the supported range 1..20");
  }
  const onnx::GraphProto& gp = model.graph();
  for (const auto& init : gp.initializer()) {
    Tensor t;
    LOWBIT_ASSIGN_OR_RETURN(t, FromTensorProto(init, name + ": initializer"));
    g.constants[init.name()] = std::move(t);
  }
  if (gp.sparse_initializer_size() > 0) {
    return Unimplemented(name, ": sparse initializers are not supported");
  }
  for (const auto& in : gp.input()) {
    if (g.constants.count(in.name())) continue;  // an initializer listed as input
    ValueInfo v;
    LOWBIT_ASSIGN_OR_RETURN(v, FromValueInfo(in, name + ": input"));
    g.inputs.push_back(std::move(v));
  }
  for (const auto& out : gp.output()) {
    ValueInfo v;
    LOWBIT_ASSIGN_OR_RETURN(v, FromValueInfo(out, name + ": output"));
    g.outputs.push_back(std::move(v));
  }
  std::set<std::string> names;
  for (int i = 0; i < gp.node_size(); ++i) {
    const onnx::NodeProto& np = gp.node(i);
    Node n;
    n.name = np.name().empty() ? np.op_type() + "_" + std::to_string(i) : np.name();
    if (!names.insert(n.name).second) n.name += "_" + std::to_string(i);
    n.op_type = np.op_type();
    n.domain = np.domain() == "ai.onnx" ? "" : np.domain();
    n.opset = OpsetFor(model, n.domain);
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    for (const auto& a : np.attribute()) {
      Attribute attr;
      LOWBIT_ASSIGN_OR_RETURN(attr, FromAttribute(a, name + ": " + n.Describe()));
      n.attrs[a.name()] = std::move(attr);
    }
    if (n.op_type == "Constant" && n.domain.empty() && n.outputs.size() == 1) {
      LOWBIT_RETURN_IF_ERROR(FoldConstantNode(n, &g));
      continue;
    }
    g.nodes.push_back(std::move(n));
  }
  LOWBIT_RETURN_IF_ERROR(VerifyGraph(&g));
  return g;
}

Result<Graph> ImportOnnx(const std::string& path, const ImportOptions& options) {
  std::string bytes;
  LOWBIT_ASSIGN_OR_RETURN(bytes, ReadFile(path));
  return ImportOnnxBytes(bytes, path, options);
}

Result<Tensor> ReadTensorProtoFile(const std::string& path, std::string* name) {
  std::string bytes;
  LOWBIT_ASSIGN_OR_RETURN(bytes, ReadFile(path));
  onnx::TensorProto p;
  if (!p.ParseFromString(bytes)) return DataLoss(path, ": not a valid TensorProto");
  if (name != nullptr) *name = p.name();
  return FromTensorProto(p, path);
}

}  // namespace lowbit
