#include "tune/journal.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

namespace lowbit {
namespace {

constexpr int kJournalVersion = 1;

}  // namespace

Journal::~Journal() {
  if (file_ != nullptr) std::fclose(file_);
}

Result<std::unique_ptr<Journal>> Journal::Open(const std::string& path, const std::string& key,
                                               bool append) {
  auto j = std::make_unique<Journal>();
  j->path_ = path;
  std::string kept;  // the well-formed lines, to rewrite a torn tail
  bool torn = false;
  {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::string line;
      int64_t n = 0;
      while (std::getline(in, line)) {
        const bool complete = !in.eof();  // a line without its newline was torn
        nlohmann::json v;
        try {
          v = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception&) {
          if (complete && in.peek() != EOF) {
            return DataLoss(path, ": line ", n + 1, " is not JSON (not a tuning journal?)");
          }
          torn = true;
          break;
        }
        if (!complete) {
          torn = true;
          break;
        }
        if (n == 0) {
          if (!v.is_object() || v.value("lowbit_tune_journal", 0) != kJournalVersion) {
            return DataLoss(path, ": not a lowbit tuning journal (version ", kJournalVersion, ")");
          }
          const std::string theirs = v.value("key", "");
          if (theirs != key) {
            return InvalidArgument(path, ": journal of another tuning run (key ", theirs,
                                   "); this model, data and options have key ", key,
                                   ": use another --journal or remove this one");
          }
        } else {
          if (!v.is_object() || !v.contains("name") || !v["name"].is_string() ||
              !v.contains("value")) {
            return DataLoss(path, ": line ", n + 1, " is not a journal record");
          }
          j->records_[v["name"].get<std::string>()] = v["value"];
          ++j->resumed_;
        }
        kept += line + "\n";
        ++n;
      }
    }
  }
  if (!append) return j;
  if (torn) {  // drop the torn tail: rewrite the complete lines
    std::FILE* f = std::fopen((path + ".tmp").c_str(), "wb");
    if (f == nullptr || std::fwrite(kept.data(), 1, kept.size(), f) != kept.size() ||
        std::fflush(f) != 0 || fsync(fileno(f)) != 0 || std::fclose(f) != 0 ||
        std::rename((path + ".tmp").c_str(), path.c_str()) != 0) {
      return IoError(path, ": cannot rewrite the journal's torn last line");
    }
  }
  j->file_ = std::fopen(path.c_str(), "ab");
  if (j->file_ == nullptr) return IoError(path, ": cannot open the journal for appending");
  if (kept.empty()) {
    nlohmann::json head = {{"lowbit_tune_journal", kJournalVersion}, {"key", key}};
    const std::string line = head.dump() + "\n";
    if (std::fwrite(line.data(), 1, line.size(), j->file_) != line.size() ||
        std::fflush(j->file_) != 0 || fsync(fileno(j->file_)) != 0) {
      return IoError(path, ": cannot write the journal");
    }
  }
  return j;
}

const nlohmann::json* Journal::Find(const std::string& name) const {
  auto it = records_.find(name);
  return it == records_.end() ? nullptr : &it->second;
}

Status Journal::Append(const std::string& name, const nlohmann::json& value) {
  records_[name] = value;
  if (file_ == nullptr) return OkStatus();
  const std::string line = nlohmann::json{{"name", name}, {"value", value}}.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0 ||
      fsync(fileno(file_)) != 0) {
    return IoError(path_, ": cannot append to the journal");
  }
  return OkStatus();
}

}  // namespace lowbit
