// ONNX's own operator conformance tests (Debian's libonnx-testdata): every test
// whose operators lowbit registers must pass with ONNX's tolerance (rtol 1e-3,
// atol 1e-7), or be listed in conformance_skip.txt with a reason, and then it
// must be refused with an error, never computed wrong.
#include <dirent.h>
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "ir/passes.h"
#include "onnx/onnx_import.h"
#include "runtime/plan.h"

namespace lowbit {
namespace {

const char kRoot[] = "/usr/share/libonnx-testdata/data/";

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

bool Exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

std::map<std::string, std::string> ReadSkips() {
  std::map<std::string, std::string> skips;
  std::ifstream in(std::string(LOWBIT_SOURCE_DIR) + "/tests/onnx/conformance_skip.txt");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.find(' ');
    skips[line.substr(0, sp)] = sp == std::string::npos ? "" : line.substr(sp + 1);
  }
  return skips;
}

// Compares with ONNX's tolerance; returns "" or a description of the first
// mismatch.
std::string Compare(const Tensor& got, const Tensor& want) {
  if (got.shape() != want.shape()) {
    return "shape " + ShapeToString(got.shape()) + " vs expected " + ShapeToString(want.shape());
  }
  if (want.dtype() == DType::kFloat32) {
    if (got.dtype() != DType::kFloat32) return std::string("type ") + DTypeName(got.dtype());
    for (int64_t i = 0; i < want.numel(); ++i) {
      const float a = got.data<float>()[i], b = want.data<float>()[i];
      if (std::isnan(a) && std::isnan(b)) continue;
      if (std::isinf(b) && a == b) continue;
      if (!(std::fabs(a - b) <= 1e-7 + 1e-3 * std::fabs(b))) {
        std::ostringstream os;
        os << "element " << i << ": " << a << " vs expected " << b;
        return os.str();
      }
    }
    return "";
  }
  const std::vector<int64_t> a = got.ToInt64(), b = want.ToInt64();
  if (a != b) return "integer values differ";
  return "";
}

// Runs one test directory: "" on success, else the reason it failed. Sets
// *refused when lowbit declined the model with an error.
std::string RunCase(const std::string& dir, bool* claimed, bool* refused) {
  *claimed = false;
  *refused = false;
  ImportOptions options;
  options.is_supported = [](const std::string& domain, const std::string& op, int opset) {
    return FindOp(domain, op, opset) != nullptr;
  };
  Result<Graph> g = ImportOnnx(dir + "/model.onnx", options);
  // Models with an operator lowbit does not register are not ours.
  if (!g.ok() && g.status().message().find("unsupported operator") != std::string::npos) return "";
  *claimed = true;
  if (!g.ok()) {
    *refused = true;
    return g.status().ToString();
  }
  Status s = OptimizeGraph(&*g);
  if (!s.ok()) {
    *refused = true;
    return s.ToString();
  }
  const std::string data = dir + "/test_data_set_0";
  PlanOptions po;
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < g->inputs.size(); ++i) {
    Result<Tensor> t = ReadTensorProtoFile(data + "/input_" + std::to_string(i) + ".pb");
    if (!t.ok()) return "reading input: " + t.status().ToString();
    // int64 inputs are shapes, axes or pads in these tests: they must be known
    // when the plan is made, so they are frozen as constants.
    if (t->dtype() == DType::kInt64) {
      po.constant_inputs[g->inputs[i].name] = *t;
      continue;
    }
    po.input_shapes[g->inputs[i].name] = t->shape();
    inputs.push_back(*t);
  }
  Result<std::unique_ptr<Plan>> plan = Plan::Create(*g, po);
  if (!plan.ok()) {
    *refused = true;
    return plan.status().ToString();
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor& dst = (*plan)->input(static_cast<int>(i));
    if (dst.dtype() != inputs[i].dtype()) {
      *refused = true;
      return std::string("input type ") + DTypeName(inputs[i].dtype());
    }
    std::copy_n(static_cast<const uint8_t*>(inputs[i].raw()), inputs[i].bytes(),
                static_cast<uint8_t*>(dst.raw()));
  }
  (*plan)->Run();
  for (int i = 0; i < (*plan)->num_outputs(); ++i) {
    Result<Tensor> want = ReadTensorProtoFile(data + "/output_" + std::to_string(i) + ".pb");
    if (!want.ok()) return "reading output: " + want.status().ToString();
    const std::string diff = Compare((*plan)->output(i), *want);
    if (!diff.empty()) return "output " + std::to_string(i) + ": " + diff;
  }
  return "";
}

void RunSuite(const std::string& suite, int min_passed) {
  const std::map<std::string, std::string> skips = ReadSkips();
  int passed = 0, skipped = 0, unclaimed = 0;
  std::vector<std::string> failures;
  for (const std::string& name : ListDir(kRoot + suite)) {
    const std::string dir = std::string(kRoot) + suite + "/" + name;
    if (!Exists(dir + "/model.onnx")) continue;
    bool claimed = false, refused = false;
    std::string err;
    try {
      err = RunCase(dir, &claimed, &refused);
    } catch (const std::exception& e) {
      claimed = true;
      err = std::string("exception: ") + e.what();
    }
    const auto skip = skips.find(name);
    if (!claimed) {
      ++unclaimed;
      continue;
    }
    if (skip != skips.end()) {
      ++skipped;
      // A listed test must be refused with an error, never computed wrong.
      if (!refused) {
        failures.push_back(name + ": listed as skipped (" + skip->second + ") but " +
                           (err.empty() ? "it passes: remove it from the list" : "computed wrong: " + err));
      }
      continue;
    }
    if (err.empty()) {
      ++passed;
    } else {
      failures.push_back(name + ": " + err);
    }
  }
  std::printf("conformance %s: %d passed, %d skipped (listed with reasons), %d use operators lowbit "
              "does not claim\n",
              suite.c_str(), passed, skipped, unclaimed);
  for (const std::string& f : failures) ADD_FAILURE() << f;
  EXPECT_GE(passed, min_passed) << "the suite ran fewer tests than expected";
}

TEST(OnnxConformanceTest, NodeTests) {
  if (!Exists(kRoot)) GTEST_SKIP() << kRoot << " missing: install libonnx-testdata";
  RunSuite("node", 150);
}

TEST(OnnxConformanceTest, PytorchConvertedModels) {
  if (!Exists(kRoot)) GTEST_SKIP() << kRoot << " missing: install libonnx-testdata";
  RunSuite("pytorch-converted", 10);
}

TEST(OnnxConformanceTest, PytorchOperatorModels) {
  if (!Exists(kRoot)) GTEST_SKIP() << kRoot << " missing: install libonnx-testdata";
  RunSuite("pytorch-operator", 5);
}

}  // namespace
}  // namespace lowbit
