// Fuzzes the dataset readers behind --calib/--val/--data: IDX images and
// labels (raw or gzipped), .npy pairs and .npz archives (stored or deflated),
// through Open and reading every sample. The input's first byte picks the
// reader; for the two-file readers the next four bytes (little-endian) give
// the first file's length. Any error must be a Status, and nothing may be
// allocated by what a header merely declares.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace {

bool WriteTo(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(data, 1, size, f) == size;
  return std::fclose(f) == 0 && ok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  if (size < 5) return 0;
  const std::string dir = "/tmp/lowbit-fuzz-data-" + std::to_string(getpid());
  const std::string a = dir + "-a", b = dir + "-b";
  const int kind = data[0] % 4;
  std::string spec;
  if (kind == 0) {
    if (!WriteTo(a, data + 1, size - 1)) return 0;
    spec = "npz:" + a;
  } else {
    size_t first = data[1] | (size_t{data[2]} << 8) | (size_t{data[3]} << 16) | (size_t{data[4]} << 24);
    const uint8_t* body = data + 5;
    const size_t body_size = size - 5;
    if (first > body_size) first = body_size;
    if (!WriteTo(a, body, first) || !WriteTo(b, body + first, body_size - first)) return 0;
    const bool labels = kind != 3;
    spec = std::string(kind == 1 || kind == 3 ? "idx:" : "npy:") + a + (labels ? "," + b : "");
  }
  Result<std::unique_ptr<Dataset>> ds = Dataset::Open(spec);
  if (ds.ok()) {
    Dataset& d = **ds;
    const int64_t ss = d.sample_size();
    // The commands refuse samples that do not fit the model's input before
    // reading; a harness without a model bounds them itself.
    if (ss > 0 && ss <= (int64_t{1} << 20)) {
      const int64_t batch = std::max<int64_t>(1, std::min<int64_t>(16, (int64_t{1} << 20) / ss));
      std::vector<float> x(batch * ss);
      std::vector<int64_t> y(batch);
      for (int64_t i = 0; i < std::min<int64_t>(d.size(), 4096); i += batch) {
        const int64_t n = std::min(batch, d.size() - i);
        if (!d.Read(i, n, x.data(), y.data()).ok()) break;
      }
    }
  }
  unlink(a.c_str());
  unlink(b.c_str());
  return 0;
}
