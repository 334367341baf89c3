// Status and Result<T>: how errors a user can cause (a bad file, a bad option,
// a value that cannot be encoded) travel through lowbit. No exception crosses
// the public API; broken internal invariants abort instead (see base/check.h).
#ifndef LOWBIT_STATUS_H_
#define LOWBIT_STATUS_H_

#include <sstream>
#include <string>
#include <utility>
#include <variant>

namespace lowbit {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // a bad option, shape, value or format name
  kNotFound,         // a missing file or key
  kUnimplemented,    // valid input that lowbit does not support (yet)
  kDataLoss,         // a malformed or truncated file
  kIoError,          // the OS refused a read or write
  kInternal,
};

// The outcome of an operation: ok, or a code plus a one-line message that names
// the file, node or option and the values involved.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid argument: <message>"; "ok" for success.
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }

// Concatenates its arguments with operator<< (floats print with enough digits
// to round-trip).
template <typename... Args>
std::string StrCat(const Args&... args) {
  std::ostringstream os;
  os.precision(9);
  (os << ... << args);
  return os.str();
}

template <typename... Args>
Status InvalidArgument(const Args&... args) {
  return Status(StatusCode::kInvalidArgument, StrCat(args...));
}
template <typename... Args>
Status NotFound(const Args&... args) {
  return Status(StatusCode::kNotFound, StrCat(args...));
}
template <typename... Args>
Status Unimplemented(const Args&... args) {
  return Status(StatusCode::kUnimplemented, StrCat(args...));
}
template <typename... Args>
Status DataLoss(const Args&... args) {
  return Status(StatusCode::kDataLoss, StrCat(args...));
}
template <typename... Args>
Status Internal(const Args&... args) {
  return Status(StatusCode::kInternal, StrCat(args...));
}
template <typename... Args>
Status IoError(const Args&... args) {
  return Status(StatusCode::kIoError, StrCat(args...));
}

// A value of type T, or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) {
      v_ = Status(StatusCode::kInternal, "Result constructed from an ok Status");
    }
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }
  // Precondition: ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace lowbit

#define LOWBIT_CONCAT_INNER_(a, b) a##b
#define LOWBIT_CONCAT_(a, b) LOWBIT_CONCAT_INNER_(a, b)

// Returns the Status of `expr` from the calling function if it is not ok.
#define LOWBIT_RETURN_IF_ERROR(expr)             \
  do {                                           \
    ::lowbit::Status lowbit_status_ = (expr);    \
    if (!lowbit_status_.ok()) return lowbit_status_; \
  } while (0)

// `lhs = value of expr`, or returns its Status from the calling function.
#define LOWBIT_ASSIGN_OR_RETURN(lhs, expr) \
  LOWBIT_ASSIGN_OR_RETURN_IMPL_(LOWBIT_CONCAT_(lowbit_result_, __LINE__), lhs, expr)
#define LOWBIT_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()

#endif  // LOWBIT_STATUS_H_
