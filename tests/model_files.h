// Helpers for tests on the bundled models: loading them as the commands do,
// running the lowbit command, and scratch files.
#ifndef LOWBIT_TESTS_MODEL_FILES_H_
#define LOWBIT_TESTS_MODEL_FILES_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <memory>
#include <string>

#include "tools/lowbit/model_util.h"

namespace lowbit::testing {

inline std::string ModelPath(const std::string& name) {
  return std::string(LOWBIT_SOURCE_DIR) + "/models/" + name;
}

inline Graph LoadBundled(const std::string& name) {
  Result<Graph> g = LoadModel(ModelPath(name));
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  return g.ok() ? std::move(g).value() : Graph();
}

// A fresh scratch directory, removed with its files at exit.
class ScratchDir {
 public:
  ScratchDir() {
    char tmpl[] = "/tmp/lowbit_test_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~ScratchDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs `lowbit ARGS` and returns its standard output; *rc its exit status.
inline std::string RunCli(const std::string& args, int* rc) {
  const std::string cmd = std::string(LOWBIT_CLI) + " " + args;
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p.get())) > 0) out.append(buf.data(), n);
  const int status = pclose(p.release());
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

}  // namespace lowbit::testing

#endif  // LOWBIT_TESTS_MODEL_FILES_H_
