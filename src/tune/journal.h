// The tuner's journal: an append-only file of JSON lines, one per finished
// measurement (a layer's sensitivity and costs, a plan's evaluation), each
// flushed and fsync'd before the next starts. Killing the tuner at any
// moment loses at most the measurement in progress: a run of the same
// command reads the journal and repeats nothing it records. The first line
// holds a key of the model, data and options; a journal with another key is
// refused, naming both.
#ifndef LOWBIT_TUNE_JOURNAL_H_
#define LOWBIT_TUNE_JOURNAL_H_

#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "lowbit/status.h"

namespace lowbit {

class Journal {
 public:
  // No file: records live in memory only.
  Journal() = default;
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Opens `path` (created when missing) for a run whose inputs have `key`.
  // A torn last line (a kill during a write) is dropped. Without `append`
  // (the other ranks of an MPI run) the records are read and new ones kept
  // in memory only.
  static Result<std::unique_ptr<Journal>> Open(const std::string& path, const std::string& key,
                                               bool append = true);

  // The value recorded under `name`, or null.
  const nlohmann::json* Find(const std::string& name) const;
  // Records `value` under `name` (in memory, and durably in the file).
  Status Append(const std::string& name, const nlohmann::json& value);
  int64_t size() const { return static_cast<int64_t>(records_.size()); }
  int64_t resumed() const { return resumed_; }  // records read from an earlier run

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  std::map<std::string, nlohmann::json> records_;
  int64_t resumed_ = 0;
};

}  // namespace lowbit

#endif  // LOWBIT_TUNE_JOURNAL_H_
