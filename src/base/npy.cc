#include "base/npy.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/half.h"

namespace lowbit {
namespace {

// Returns the text of `key`'s value in a Python dict literal, e.g. "'<f4'" or
// "(3, 4)", or "" when absent.
std::string DictValue(const std::string& header, const std::string& key) {
  const std::string quoted = "'" + key + "'";
  size_t pos = header.find(quoted);
  if (pos == std::string::npos) return "";
  pos = header.find(':', pos + quoted.size());
  if (pos == std::string::npos) return "";
  ++pos;
  while (pos < header.size() && header[pos] == ' ') ++pos;
  size_t end = pos;
  if (pos < header.size() && header[pos] == '(') {
    end = header.find(')', pos);
    if (end == std::string::npos) return "";
    ++end;
  } else {
    while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  }
  std::string v = header.substr(pos, end - pos);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  return v;
}

template <typename T>
void Convert(const char* src, size_t n, float* dst) {
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
    dst[i] = static_cast<float>(v);
  }
}

}  // namespace

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return NotFound(path, ": cannot open (", std::strerror(errno), ")");
  const std::streamoff size = in.tellg();
  if (size < 0) return IoError(path, ": cannot read its size");
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  in.read(bytes.data(), size);
  if (!in) return IoError(path, ": read failed");
  return bytes;
}

namespace {

// Temporary files a killed writer of `path` left (path.tmp.PID of a process
// that no longer runs): removed before the next write, so a kill -9 leaves no
// partial file behind for long.
void RemoveStaleTemporaries(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path p(path);
  const std::filesystem::path dir = p.has_parent_path() ? p.parent_path() : std::filesystem::path(".");
  const std::string prefix = p.filename().string() + ".tmp.";
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string pid = name.substr(prefix.size());
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    const long n = std::strtol(pid.c_str(), nullptr, 10);
    if (n > 0 && ::kill(static_cast<pid_t>(n), 0) != 0 && errno == ESRCH) std::filesystem::remove(e.path(), ec);
  }
}

}  // namespace

Status WriteFileAtomic(const std::string& path, const std::string& bytes) {
  RemoveStaleTemporaries(path);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return IoError(path, ": cannot create '", tmp, "' (", std::strerror(errno), ")");
  const bool wrote = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  const bool flushed = std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  const bool closed = std::fclose(f) == 0;
  if (!wrote || !flushed || !closed) {
    std::remove(tmp.c_str());
    return IoError(path, ": write failed (", std::strerror(errno), ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return IoError(path, ": rename from '", tmp, "' failed (", std::strerror(err), ")");
  }
  return OkStatus();
}

Result<NpyArray> ParseNpy(const std::string& bytes, const std::string& name) {
  static const char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, 6) != 0) {
    return DataLoss(name, ": not a .npy file (bad magic)");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, offset;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return DataLoss(name, ": truncated .npy header");
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= size_t{static_cast<unsigned char>(bytes[8 + i])} << (8 * i);
    offset = 12;
  } else {
    return DataLoss(name, ": unsupported .npy version ", major);
  }
  if (bytes.size() < offset + header_len) {
    return DataLoss(name, ": truncated .npy header (", bytes.size(), " bytes)");
  }
  const std::string header = bytes.substr(offset, header_len);
  offset += header_len;

  std::string descr = DictValue(header, "descr");
  const std::string fortran = DictValue(header, "fortran_order");
  const std::string shape_text = DictValue(header, "shape");
  if (descr.size() < 4 || descr.front() != '\'' || descr.back() != '\'' || shape_text.empty() ||
      fortran.empty()) {
    return DataLoss(name, ": malformed .npy header '", header, "'");
  }
  descr = descr.substr(1, descr.size() - 2);
  if (fortran != "False") return Unimplemented(name, ": Fortran-ordered .npy arrays are not supported");

  NpyArray out;
  size_t count = 1;
  {
    std::string dims = shape_text.substr(1, shape_text.size() - 2);
    for (std::string& d : [&] {
           std::vector<std::string> parts;
           std::stringstream ss(dims);
           std::string p;
           while (std::getline(ss, p, ',')) parts.push_back(p);
           return parts;
         }()) {
      const size_t b = d.find_first_not_of(' '), e = d.find_last_not_of(' ');
      if (b == std::string::npos) continue;  // trailing comma of a 1-tuple
      d = d.substr(b, e - b + 1);
      char* end = nullptr;
      const long long v = std::strtoll(d.c_str(), &end, 10);
      if (end != d.c_str() + d.size() || v < 0) {
        return DataLoss(name, ": malformed .npy shape '", shape_text, "'");
      }
      out.shape.push_back(v);
      if (v != 0 && count > (size_t{1} << 40) / static_cast<size_t>(v)) {
        return DataLoss(name, ": .npy shape ", shape_text, " is too large");
      }
      count *= static_cast<size_t>(v);
    }
  }

  const char order = descr[0];
  const char kind = descr[1];
  const std::string width_text = descr.substr(2);
  const int width = std::atoi(width_text.c_str());
  const bool little = order == '<' || order == '|' || order == '=';
  if (!little || (width != 1 && width != 2 && width != 4 && width != 8) ||
      std::to_string(width) != width_text || (kind != 'f' && kind != 'i' && kind != 'u') ||
      (kind == 'f' && width == 1)) {
    return Unimplemented(name, ": .npy dtype '", descr,
                         "' is not supported (use little-endian float, int or uint)");
  }
  const size_t need = count * static_cast<size_t>(width);
  if (bytes.size() - offset < need) {
    return DataLoss(name, ": truncated .npy data: shape ", shape_text, " of '", descr, "' needs ",
                    need, " bytes, file has ", bytes.size() - offset);
  }
  out.data.resize(count);
  const char* src = bytes.data() + offset;
  float* dst = out.data.data();
  if (kind == 'f' && width == 2) {
    for (size_t i = 0; i < count; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = HalfToFloat(h);
    }
  } else if (kind == 'f' && width == 4) {
    Convert<float>(src, count, dst);
  } else if (kind == 'f') {
    Convert<double>(src, count, dst);
  } else if (kind == 'i') {
    if (width == 1) Convert<int8_t>(src, count, dst);
    if (width == 2) Convert<int16_t>(src, count, dst);
    if (width == 4) Convert<int32_t>(src, count, dst);
    if (width == 8) Convert<int64_t>(src, count, dst);
  } else {
    if (width == 1) Convert<uint8_t>(src, count, dst);
    if (width == 2) Convert<uint16_t>(src, count, dst);
    if (width == 4) Convert<uint32_t>(src, count, dst);
    if (width == 8) Convert<uint64_t>(src, count, dst);
  }
  return out;
}

Result<NpyArray> ReadNpy(const std::string& path) {
  std::string bytes;
  LOWBIT_ASSIGN_OR_RETURN(bytes, ReadFile(path));
  return ParseNpy(bytes, path);
}

Status WriteNpy(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  std::string dims;
  size_t count = 1;
  for (int64_t d : shape) {
    dims += std::to_string(d) + ", ";
    count *= static_cast<size_t>(d);
  }
  if (shape.size() > 1) dims.resize(dims.size() - 2);
  if (shape.size() == 1) dims.resize(dims.size() - 1);
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Pad so that the data starts on a 64-byte boundary; the header ends in '\n'.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes.push_back(static_cast<char>(header.size() & 0xff));
  bytes.push_back(static_cast<char>(header.size() >> 8));
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(data), count * sizeof(float));
  return WriteFileAtomic(path, bytes);
}

}  // namespace lowbit
