#include "data/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>

#include "base/npy.h"
#include "base/strings.h"

namespace lowbit {
namespace {

constexpr const char* kFashionDir = "/usr/share/datasets/fashion-mnist/";
constexpr const char* kDigitsCsv = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz";

// A file read through zlib: transparent for gzipped and plain files.
class GzFile {
 public:
  ~GzFile() {
    if (f_ != nullptr) gzclose(f_);
  }
  Status Open(const std::string& path) {
    f_ = gzopen(path.c_str(), "rb");
    if (f_ == nullptr) return NotFound(path, ": cannot open");
    path_ = path;
    gzbuffer(f_, 1 << 16);
    return OkStatus();
  }
  Status ReadExact(void* dst, size_t n) {
    const int got = gzread(f_, dst, static_cast<unsigned>(n));
    if (got < 0 || static_cast<size_t>(got) != n) {
      return DataLoss(path_, ": truncated (wanted ", n, " more bytes at offset ", Tell(), ")");
    }
    return OkStatus();
  }
  Status Seek(int64_t offset) {
    if (gzseek(f_, static_cast<z_off_t>(offset), SEEK_SET) < 0) {
      return DataLoss(path_, ": cannot seek to ", offset);
    }
    return OkStatus();
  }
  int64_t Tell() { return static_cast<int64_t>(gztell(f_)); }
  // Up to n bytes; 0 at the end, < 0 on a corrupt stream.
  int64_t ReadSome(void* dst, size_t n) { return gzread(f_, dst, static_cast<unsigned>(n)); }
  const std::string& path() const { return path_; }

 private:
  gzFile f_ = nullptr;
  std::string path_;
};

uint32_t BigEndian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// Random-access bytes of one array file: a plain file region, or a deflated
// zip member (numpy.savez_compressed) inflated as a stream. Reads are
// sequential in practice; a read behind the stream's position restarts it.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual Status ReadAt(int64_t offset, size_t n, char* dst) = 0;
  virtual const std::string& name() const = 0;
};

class FileSource final : public ByteSource {
 public:
  FileSource(std::string path, int64_t base) : path_(std::move(path)), base_(base) {
    in_.open(path_, std::ios::binary);
  }
  bool ok() const { return static_cast<bool>(in_); }
  Status ReadAt(int64_t offset, size_t n, char* dst) override {
    in_.clear();
    in_.seekg(base_ + offset);
    in_.read(dst, static_cast<std::streamsize>(n));
    if (!in_) return DataLoss(path_, ": truncated (wanted ", n, " bytes at ", base_ + offset, ")");
    return OkStatus();
  }
  const std::string& name() const override { return path_; }

 private:
  std::string path_;
  int64_t base_;
  std::ifstream in_;
};

class InflateSource final : public ByteSource {
 public:
  InflateSource(std::string path, std::string label, int64_t base)
      : path_(std::move(path)), label_(std::move(label)), base_(base) {}
  ~InflateSource() override { End(); }

  Status ReadAt(int64_t offset, size_t n, char* dst) override {
    if (offset < pos_ || !started_) LOWBIT_RETURN_IF_ERROR(Restart());
    // Skip forward to `offset`, then read n bytes.
    std::vector<char> skip(1 << 16);
    while (pos_ < offset) {
      const size_t step = static_cast<size_t>(std::min<int64_t>(offset - pos_, skip.size()));
      LOWBIT_RETURN_IF_ERROR(Inflate(skip.data(), step));
    }
    return Inflate(dst, n);
  }
  const std::string& name() const override { return label_; }

 private:
  Status Restart() {
    End();
    in_.open(path_, std::ios::binary);
    if (!in_) return NotFound(path_, ": cannot open");
    in_.seekg(base_);
    std::memset(&z_, 0, sizeof(z_));
    if (inflateInit2(&z_, -15) != Z_OK) return DataLoss(label_, ": zlib init failed");
    started_ = true;
    pos_ = 0;
    return OkStatus();
  }
  void End() {
    if (started_) inflateEnd(&z_);
    started_ = false;
    in_.close();
  }
  Status Inflate(char* dst, size_t n) {
    z_.next_out = reinterpret_cast<Bytef*>(dst);
    z_.avail_out = static_cast<uInt>(n);
    while (z_.avail_out > 0) {
      if (z_.avail_in == 0) {
        in_.read(inbuf_, sizeof(inbuf_));
        z_.next_in = reinterpret_cast<Bytef*>(inbuf_);
        z_.avail_in = static_cast<uInt>(in_.gcount());
        if (z_.avail_in == 0) return DataLoss(label_, ": truncated compressed data");
      }
      const int r = inflate(&z_, Z_NO_FLUSH);
      if (r == Z_STREAM_END && z_.avail_out > 0) return DataLoss(label_, ": compressed data ends early");
      if (r != Z_OK && r != Z_STREAM_END) return DataLoss(label_, ": corrupt compressed data");
    }
    pos_ += static_cast<int64_t>(n);
    return OkStatus();
  }

  std::string path_, label_;
  int64_t base_;
  std::ifstream in_;
  z_stream z_{};
  bool started_ = false;
  int64_t pos_ = 0;
  char inbuf_[1 << 16];
};

// IDX (the MNIST format): magic 0 0 type rank, then rank big-endian dims.
// Images and labels are uint8.
class IdxDataset final : public Dataset {
 public:
  Status Init(const std::string& images, const std::string& labels) {
    LOWBIT_RETURN_IF_ERROR(img_.Open(images));
    uint8_t head[4];
    LOWBIT_RETURN_IF_ERROR(img_.ReadExact(head, 4));
    if (head[0] != 0 || head[1] != 0 || head[2] != 0x08 || head[3] < 1 || head[3] > 4) {
      return DataLoss(images, ": not an IDX file of unsigned bytes (magic ", int{head[2]}, ", rank ",
                      int{head[3]}, ")");
    }
    std::vector<int64_t> dims(head[3]);
    for (auto& d : dims) {
      uint8_t b[4];
      LOWBIT_RETURN_IF_ERROR(img_.ReadExact(b, 4));
      d = BigEndian32(b);
    }
    header_ = 4 + 4 * static_cast<int64_t>(dims.size());
    total_ = dims[0];
    sample_shape_.assign(dims.begin() + 1, dims.end());
    default_scale_ = 1.0 / 255.0;
    if (!labels.empty()) {
      GzFile lf;
      LOWBIT_RETURN_IF_ERROR(lf.Open(labels));
      uint8_t lh[8];
      LOWBIT_RETURN_IF_ERROR(lf.ReadExact(lh, 8));
      if (lh[0] != 0 || lh[1] != 0 || lh[2] != 0x08 || lh[3] != 1) {
        return DataLoss(labels, ": not an IDX label file");
      }
      const int64_t n = BigEndian32(lh + 4);
      if (n != total_) {
        return InvalidArgument(labels, ": ", n, " labels for ", total_, " images in ", images);
      }
      // Read in chunks: the header's count is not trusted for an allocation.
      while (static_cast<int64_t>(labels_.size()) < n) {
        const size_t have = labels_.size();
        labels_.resize(have + static_cast<size_t>(std::min<int64_t>(n - have, 1 << 16)));
        LOWBIT_RETURN_IF_ERROR(lf.ReadExact(labels_.data() + have, labels_.size() - have));
      }
      has_labels_ = true;
    }
    return OkStatus();
  }

  Status Read(int64_t index, int64_t n, float* x, int64_t* labels) override {
    if (index < 0 || index + n > size()) return InvalidArgument(spec_, ": read past the end");
    const int64_t ss = sample_size();
    const int64_t offset = header_ + (begin_ + index) * ss;
    if (img_.Tell() != offset) LOWBIT_RETURN_IF_ERROR(img_.Seek(offset));
    buf_.resize(n * ss);
    LOWBIT_RETURN_IF_ERROR(img_.ReadExact(buf_.data(), buf_.size()));
    for (size_t i = 0; i < buf_.size(); ++i) x[i] = buf_[i];
    if (labels != nullptr && has_labels_) {
      for (int64_t i = 0; i < n; ++i) labels[i] = labels_[begin_ + index + i];
    }
    return OkStatus();
  }

 private:
  GzFile img_;
  int64_t header_ = 0;
  std::vector<uint8_t> labels_, buf_;
};

// Small in-memory datasets (digits: 1,797 samples of 64 values).
class MemoryDataset final : public Dataset {
 public:
  Status InitDigits() {
    GzFile f;
    LOWBIT_RETURN_IF_ERROR(f.Open(kDigitsCsv));
    std::string text;
    std::vector<char> chunk(1 << 16);
    int64_t got;
    while ((got = f.ReadSome(chunk.data(), chunk.size())) > 0) text.append(chunk.data(), got);
    if (got < 0) return DataLoss(kDigitsCsv, ": corrupt gzip stream");
    for (const std::string& line : Split(text, '\n')) {
      if (line.empty()) continue;
      const std::vector<std::string> cells = Split(line, ',');
      if (cells.size() != 65) {
        return DataLoss(kDigitsCsv, ": row ", labels_.size() + 1, " has ", cells.size(),
                        " values, expected 65");
      }
      for (int i = 0; i < 64; ++i) x_.push_back(std::strtof(cells[i].c_str(), nullptr));
      labels_.push_back(std::strtoll(cells[64].c_str(), nullptr, 10));
    }
    total_ = static_cast<int64_t>(labels_.size());
    sample_shape_ = {8, 8};
    has_labels_ = true;
    default_scale_ = 1.0 / 16.0;
    return OkStatus();
  }

  // A copy of every sample of `src`.
  Status InitFrom(Dataset& src) {
    spec_ = src.spec();
    sample_shape_ = src.sample_shape();
    has_labels_ = src.has_labels();
    default_scale_ = src.default_scale();
    total_ = end_ = src.size();
    const int64_t ss = src.sample_size();
    x_.resize(static_cast<size_t>(total_ * ss));
    labels_.assign(total_, 0);
    constexpr int64_t kChunk = 1024;
    for (int64_t i = 0; i < total_; i += kChunk) {
      const int64_t n = std::min(kChunk, total_ - i);
      LOWBIT_RETURN_IF_ERROR(src.Read(i, n, x_.data() + i * ss, has_labels_ ? labels_.data() + i : nullptr));
    }
    return OkStatus();
  }

  Status Read(int64_t index, int64_t n, float* x, int64_t* labels) override {
    if (index < 0 || index + n > size()) return InvalidArgument(spec_, ": read past the end");
    const int64_t ss = sample_size();
    std::memcpy(x, x_.data() + (begin_ + index) * ss, sizeof(float) * n * ss);
    if (labels != nullptr && has_labels_) {
      for (int64_t i = 0; i < n; ++i) labels[i] = labels_[begin_ + index + i];
    }
    return OkStatus();
  }

 private:
  std::vector<float> x_;
  std::vector<int64_t> labels_;
};

// .npy, standalone or as a member of an .npz: the header is parsed, then
// samples are read at their offsets, a batch at a time.
struct NpyLayout {
  std::shared_ptr<ByteSource> src;
  int64_t offset = 0;  // of the data within the source
  std::string descr;
  std::vector<int64_t> shape;
};

Result<NpyLayout> ReadNpyLayout(std::shared_ptr<ByteSource> src) {
  const std::string& name = src->name();
  char head[12];
  LOWBIT_RETURN_IF_ERROR(src->ReadAt(0, 12, head));
  if (std::memcmp(head, "\x93NUMPY", 6) != 0) return DataLoss(name, ": not a .npy array");
  const int major = static_cast<unsigned char>(head[6]);
  const int64_t hlen =
      major == 1 ? (static_cast<unsigned char>(head[8]) | (static_cast<unsigned char>(head[9]) << 8))
                 : static_cast<int64_t>(static_cast<unsigned char>(head[8]) |
                                        (static_cast<unsigned char>(head[9]) << 8) |
                                        (static_cast<unsigned char>(head[10]) << 16));
  const int64_t start = major == 1 ? 10 : 12;
  std::string header(static_cast<size_t>(start + hlen), '\0');
  LOWBIT_RETURN_IF_ERROR(src->ReadAt(0, header.size(), header.data()));
  // The in-memory parser validates dtype and shape; on a header without data
  // it reports the bytes it would need, which is expected here.
  Result<NpyArray> probe = ParseNpy(header, name);
  NpyLayout layout;
  layout.offset = start + hlen;
  const size_t d = header.find("'descr'");
  const size_t q1 = d == std::string::npos ? d : header.find('\'', header.find(':', d) + 1);
  const size_t q2 = q1 == std::string::npos ? q1 : header.find('\'', q1 + 1);
  if (q2 == std::string::npos) return DataLoss(name, ": malformed .npy header");
  layout.descr = header.substr(q1 + 1, q2 - q1 - 1);
  if (probe.ok()) {
    layout.shape = probe->shape;  // an empty array
  } else if (probe.status().message().find("truncated .npy data") != std::string::npos) {
    const size_t s0 = header.find('(', header.find("'shape'"));
    const size_t s1 = header.find(')', s0);
    for (const std::string& part : Split(header.substr(s0 + 1, s1 - s0 - 1), ',')) {
      const size_t b = part.find_first_not_of(' ');
      if (b == std::string::npos) continue;
      layout.shape.push_back(std::strtoll(part.c_str() + b, nullptr, 10));
    }
  } else {
    return probe.status();
  }
  layout.src = std::move(src);
  return layout;
}

// Decodes `count` values of `layout` starting at element `first` to fp32.
Status ReadValues(const NpyLayout& layout, int64_t first, int64_t count, float* out) {
  const int elem = std::atoi(layout.descr.c_str() + 2);
  std::string bytes = "\x93NUMPY\x01";
  bytes.push_back('\0');
  const std::string header = "{'descr': '" + layout.descr + "', 'fortran_order': False, 'shape': (" +
                             std::to_string(count) + ",), }";
  bytes.push_back(static_cast<char>(header.size() & 0xff));
  bytes.push_back(static_cast<char>(header.size() >> 8));
  bytes += header;
  const size_t at = bytes.size();
  bytes.resize(at + static_cast<size_t>(count * elem));
  LOWBIT_RETURN_IF_ERROR(layout.src->ReadAt(layout.offset + first * elem, bytes.size() - at,
                                            bytes.data() + at));
  NpyArray arr;
  LOWBIT_ASSIGN_OR_RETURN(arr, ParseNpy(bytes, layout.src->name()));
  if (static_cast<int64_t>(arr.data.size()) != count) {
    return DataLoss(layout.src->name(), ": read ", arr.data.size(), " values, expected ", count);
  }
  if (count > 0) std::memcpy(out, arr.data.data(), sizeof(float) * arr.data.size());
  return OkStatus();
}

class NpyDataset final : public Dataset {
 public:
  Status Init(NpyLayout x, std::vector<int64_t> labels, bool has_labels) {
    x_ = std::move(x);
    if (x_.shape.empty()) {
      return InvalidArgument(x_.src->name(), ": samples need at least one dimension");
    }
    total_ = x_.shape[0];
    sample_shape_.assign(x_.shape.begin() + 1, x_.shape.end());
    if (has_labels) {
      if (static_cast<int64_t>(labels.size()) != total_) {
        return InvalidArgument(spec_.empty() ? x_.src->name() : spec_, ": ", labels.size(),
                               " labels for ", total_, " samples");
      }
      labels_ = std::move(labels);
      has_labels_ = true;
    }
    return OkStatus();
  }

  Status Read(int64_t index, int64_t n, float* x, int64_t* labels) override {
    if (index < 0 || index + n > size()) return InvalidArgument(spec_, ": read past the end");
    const int64_t ss = sample_size();
    LOWBIT_RETURN_IF_ERROR(ReadValues(x_, (begin_ + index) * ss, n * ss, x));
    if (labels != nullptr && has_labels_) {
      for (int64_t i = 0; i < n; ++i) labels[i] = labels_[begin_ + index + i];
    }
    return OkStatus();
  }

 private:
  NpyLayout x_;
  std::vector<int64_t> labels_;
};

// Reads a whole 1-D label array (a few bytes per sample).
Result<std::vector<int64_t>> ReadLabels(const NpyLayout& y) {
  if (y.shape.size() != 1) {
    return InvalidArgument(y.src->name(), ": labels must be 1-D, got ", y.shape.size(), " dims");
  }
  // In chunks: the declared count is not trusted for an allocation.
  std::vector<int64_t> out;
  std::vector<float> v;
  for (int64_t at = 0; at < y.shape[0]; at += v.size()) {
    v.resize(static_cast<size_t>(std::min<int64_t>(y.shape[0] - at, 1 << 16)));
    LOWBIT_RETURN_IF_ERROR(ReadValues(y, at, static_cast<int64_t>(v.size()), v.data()));
    for (size_t i = 0; i < v.size(); ++i) {
      if (!(std::fabs(v[i]) < 2147483648.0f) || v[i] != std::trunc(v[i])) {
        return InvalidArgument(y.src->name(), ": label ", at + static_cast<int64_t>(i), " is ", v[i],
                               ", not a class index");
      }
      out.push_back(static_cast<int64_t>(v[i]));
    }
  }
  return out;
}

// The local-header offsets of the stored (uncompressed) members of a zip.
struct ZipMember {
  int64_t data_offset = 0;
  int method = 0;
};
Result<std::map<std::string, ZipMember>> ReadZipDirectory(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return NotFound(path, ": cannot open");
  const int64_t size = static_cast<int64_t>(in.tellg());
  auto read_at = [&](int64_t at, int64_t n, std::string* out) {
    out->assign(static_cast<size_t>(n), '\0');
    in.seekg(at);
    in.read(out->data(), n);
    return static_cast<bool>(in);
  };
  auto u16 = [](const std::string& b, size_t p) {
    return static_cast<uint32_t>(static_cast<uint8_t>(b[p]) | (static_cast<uint8_t>(b[p + 1]) << 8));
  };
  auto u32 = [&](const std::string& b, size_t p) { return u16(b, p) | (u16(b, p + 2) << 16); };
  // The end-of-central-directory record sits in the last 64 KiB + 22 bytes.
  const int64_t tail_len = std::min<int64_t>(size, 65536 + 22);
  std::string tail;
  if (size < 22 || !read_at(size - tail_len, tail_len, &tail)) {
    return DataLoss(path, ": not a zip (.npz) file");
  }
  size_t eocd = std::string::npos;
  for (size_t p = tail.size() - 22 + 1; p-- > 0;) {
    if (u32(tail, p) == 0x06054b50) {
      eocd = p;
      break;
    }
  }
  if (eocd == std::string::npos) return DataLoss(path, ": not a zip (.npz) file (no directory)");
  const uint32_t entries = u16(tail, eocd + 10);
  const int64_t dir_size = u32(tail, eocd + 12), dir_at = u32(tail, eocd + 16);
  std::string dir;
  if (dir_at + dir_size > size || !read_at(dir_at, dir_size, &dir)) {
    return DataLoss(path, ": corrupt zip directory");
  }
  std::map<std::string, ZipMember> out;
  size_t p = 0;
  for (uint32_t i = 0; i < entries; ++i) {
    if (p + 46 > dir.size() || u32(dir, p) != 0x02014b50) return DataLoss(path, ": corrupt zip directory");
    const int method = static_cast<int>(u16(dir, p + 10));
    const uint32_t name_len = u16(dir, p + 28), extra = u16(dir, p + 30), comment = u16(dir, p + 32);
    const int64_t local = u32(dir, p + 42);
    const std::string name = dir.substr(p + 46, name_len);
    std::string lh;
    if (local + 30 > size || !read_at(local, 30, &lh) || u32(lh, 0) != 0x04034b50) {
      return DataLoss(path, ": corrupt zip entry '", name, "'");
    }
    out[name] = ZipMember{local + 30 + u16(lh, 26) + u16(lh, 28), method};
    p += 46 + name_len + extra + comment;
  }
  return out;
}

}  // namespace

bool SampleFitsInput(const std::vector<int64_t>& sample, const std::vector<int64_t>& input) {
  auto squeeze = [](const std::vector<int64_t>& s) {
    std::vector<int64_t> out;
    for (int64_t d : s) {
      if (d != 1) out.push_back(d);
    }
    return out;
  };
  int64_t a = 1, b = 1;
  for (int64_t d : sample) a *= d;
  for (int64_t d : input) b *= d;
  if (a != b) return false;
  const std::vector<int64_t> s = squeeze(sample), t = squeeze(input);
  return s.size() <= 1 || t.size() <= 1 || s == t;
}

int64_t Dataset::sample_size() const {
  int64_t n = 1;
  for (int64_t d : sample_shape_) n *= d;
  return n;
}

Status Dataset::ApplySlice(int64_t a, int64_t b, bool has_a, bool has_b) {
  begin_ = has_a ? a : 0;
  end_ = has_b ? b : total_;
  if (begin_ < 0) begin_ += total_;
  if (end_ < 0) end_ += total_;
  if (begin_ < 0 || end_ > total_ || begin_ > end_) {
    return InvalidArgument(spec_, ": slice [", begin_, ":", end_, "] is outside 0..", total_);
  }
  if (begin_ == end_) return InvalidArgument(spec_, ": the slice is empty");
  return OkStatus();
}

Result<std::unique_ptr<Dataset>> Dataset::Open(const std::string& full) {
  std::string spec = full;
  int64_t a = 0, b = 0;
  bool has_a = false, has_b = false;
  if (!spec.empty() && spec.back() == ']') {
    const size_t open = spec.rfind('[');
    const size_t colon = spec.find(':', open);
    if (open == std::string::npos || colon == std::string::npos) {
      return InvalidArgument("dataset '", full, "': slice must look like [a:b]");
    }
    const std::string sa = spec.substr(open + 1, colon - open - 1);
    const std::string sb = spec.substr(colon + 1, spec.size() - colon - 2);
    if (!sa.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(a, ParseInt(sa, "dataset '" + full + "' slice start"));
      has_a = true;
    }
    if (!sb.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(b, ParseInt(sb, "dataset '" + full + "' slice end"));
      has_b = true;
    }
    spec = spec.substr(0, open);
  }
  std::unique_ptr<Dataset> ds;
  const size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (kind == "fashion-mnist") {
    if (arg != "train" && arg != "test") {
      return InvalidArgument("dataset '", full, "': expected fashion-mnist:train or fashion-mnist:test");
    }
    const std::string prefix = std::string(kFashionDir) + (arg == "train" ? "train" : "t10k");
    auto idx = std::make_unique<IdxDataset>();
    Status s = idx->Init(prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz");
    if (s.code() == StatusCode::kNotFound) {
      return NotFound("dataset '", full, "': ", s.message(), " (install dataset-fashion-mnist)");
    }
    LOWBIT_RETURN_IF_ERROR(s);
    ds = std::move(idx);
  } else if (kind == "digits" && arg.empty()) {
    auto mem = std::make_unique<MemoryDataset>();
    Status s = mem->InitDigits();
    if (s.code() == StatusCode::kNotFound) {
      return NotFound("dataset 'digits': ", s.message(), " (install python3-sklearn)");
    }
    LOWBIT_RETURN_IF_ERROR(s);
    ds = std::move(mem);
  } else if (kind == "idx") {
    const std::vector<std::string> files = Split(arg, ',');
    if (files.empty() || files[0].empty() || files.size() > 2) {
      return InvalidArgument("dataset '", full, "': expected idx:IMAGES[,LABELS]");
    }
    auto idx = std::make_unique<IdxDataset>();
    LOWBIT_RETURN_IF_ERROR(idx->Init(files[0], files.size() > 1 ? files[1] : ""));
    ds = std::move(idx);
  } else if (kind == "npy" || kind == "npz") {
    std::shared_ptr<ByteSource> xs, ys;
    if (kind == "npy") {
      const std::vector<std::string> files = Split(arg, ',');
      if (files.empty() || files[0].empty() || files.size() > 2) {
        return InvalidArgument("dataset '", full, "': expected npy:X.npy[,Y.npy]");
      }
      for (size_t i = 0; i < files.size(); ++i) {
        auto f = std::make_shared<FileSource>(files[i], 0);
        if (!f->ok()) return NotFound(files[i], ": cannot open");
        (i == 0 ? xs : ys) = f;
      }
    } else {
      std::map<std::string, ZipMember> members;
      LOWBIT_ASSIGN_OR_RETURN(members, ReadZipDirectory(arg));
      if (!members.count("x.npy")) return InvalidArgument(arg, ": no array named 'x' in the .npz");
      for (const char* key : {"x", "y"}) {
        auto it = members.find(std::string(key) + ".npy");
        if (it == members.end()) continue;
        const std::string label = arg + ":" + key;
        std::shared_ptr<ByteSource> src;
        if (it->second.method == 0) {
          src = std::make_shared<FileSource>(arg, it->second.data_offset);
        } else if (it->second.method == 8) {
          src = std::make_shared<InflateSource>(arg, label, it->second.data_offset);
        } else {
          return Unimplemented(label, ": zip compression method ", it->second.method,
                               " (stored and deflate are supported)");
        }
        (key[0] == 'x' ? xs : ys) = src;
      }
    }
    NpyLayout x;
    LOWBIT_ASSIGN_OR_RETURN(x, ReadNpyLayout(xs));
    std::vector<int64_t> labels;
    if (ys) {
      NpyLayout y;
      LOWBIT_ASSIGN_OR_RETURN(y, ReadNpyLayout(ys));
      LOWBIT_ASSIGN_OR_RETURN(labels, ReadLabels(y));
    }
    auto npy = std::make_unique<NpyDataset>();
    LOWBIT_RETURN_IF_ERROR(npy->Init(std::move(x), std::move(labels), ys != nullptr));
    ds = std::move(npy);
  } else {
    return InvalidArgument("unknown dataset '", full,
                           "' (expected fashion-mnist:train|test, digits, idx:IMAGES,LABELS, "
                           "npy:X.npy[,Y.npy] or npz:FILE.npz, with an optional [a:b] slice)");
  }
  ds->spec_ = full;
  // Declared sizes: every later offset and buffer is a product of these.
  int64_t values = ds->total_;
  for (int64_t d : ds->sample_shape_) {
    if (d < 0 || __builtin_mul_overflow(values, d, &values) || values > (int64_t{1} << 56)) {
      std::string shape;
      for (int64_t e : ds->sample_shape_) shape += (shape.empty() ? "" : "x") + std::to_string(e);
      return InvalidArgument("dataset '", full, "': ", ds->total_, " samples of ", shape,
                             " values declared: negative or more than 2^56 in all");
    }
  }
  LOWBIT_RETURN_IF_ERROR(ds->ApplySlice(a, b, has_a, has_b));
  return ds;
}

Status ApplyPreprocess(const Preprocess& p, double default_scale, int64_t n, int64_t sample_size,
                       int64_t channels, float* x) {
  const float scale = static_cast<float>(p.scale >= 0 ? p.scale : default_scale);
  const size_t c = static_cast<size_t>(std::max<int64_t>(channels, 1));
  for (const auto* v : {&p.mean, &p.std}) {
    if (!v->empty() && v->size() != 1 && v->size() != c) {
      return InvalidArgument("normalization has ", v->size(), " values for ", c, " channels");
    }
  }
  for (float s : p.std) {
    if (!(s > 0)) return InvalidArgument("normalization std must be > 0, got ", s);
  }
  const int64_t per_channel = sample_size / static_cast<int64_t>(c);
  for (int64_t i = 0; i < n * sample_size; ++i) {
    const size_t ch = static_cast<size_t>((i % sample_size) / std::max<int64_t>(per_channel, 1));
    float v = x[i] * scale;
    if (!p.mean.empty()) v -= p.mean.size() == 1 ? p.mean[0] : p.mean[ch];
    if (!p.std.empty()) v /= p.std.size() == 1 ? p.std[0] : p.std[ch];
    x[i] = v;
  }
  return OkStatus();
}

Result<std::unique_ptr<Dataset>> LoadIntoMemory(Dataset& data) {
  auto mem = std::make_unique<MemoryDataset>();
  LOWBIT_RETURN_IF_ERROR(mem->InitFrom(data));
  return std::unique_ptr<Dataset>(std::move(mem));
}

}  // namespace lowbit
