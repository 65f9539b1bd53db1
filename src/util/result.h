// rf::Result<T, E>: a value or an error, for library code that does not throw.
//
// g++ 12 compiles <expected> only for C++23, so this is a small std::expected look-alike
// with the same member names (has_value, value, error, value_or, operator*, operator->),
// which keeps a later switch to `template <class T, class E> using Result =
// std::expected<T, E>` mechanical.
#pragma once

#include <cassert>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace rf {

// Wraps an error value so that it converts to any Result<T, E>.
template <typename E>
class Unexpected {
 public:
  explicit Unexpected(E error) : error_(std::move(error)) {}
  E& error() & { return error_; }
  E&& error() && { return std::move(error_); }
  const E& error() const& { return error_; }

 private:
  E error_;
};

template <typename E>
Unexpected<std::decay_t<E>> unexpected(E&& error) {
  return Unexpected<std::decay_t<E>>(std::forward<E>(error));
}

template <typename T, typename E>
class [[nodiscard]] Result {
 public:
  using value_type = T;
  using error_type = E;

  Result(T value) : storage_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  template <typename G>
  Result(Unexpected<G> u)  // NOLINT: implicit by design
      : storage_(std::in_place_index<1>, E(std::move(u).error())) {}

  bool has_value() const noexcept { return storage_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  // Calling value() or operator* on an error, or error() on a value, is a programming error.
  T& value() & { return std::get<0>(checked(true)); }
  const T& value() const& { return std::get<0>(checked(true)); }
  T&& value() && { return std::get<0>(std::move(checked(true))); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  E& error() & { return std::get<1>(checked(false)); }
  const E& error() const& { return std::get<1>(checked(false)); }
  E&& error() && { return std::get<1>(std::move(checked(false))); }

  template <typename U>
  T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(storage_) : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  std::variant<T, E>& checked(bool want_value) {
    assert(has_value() == want_value && "Result accessed as the alternative it does not hold");
    (void)want_value;
    return storage_;
  }
  const std::variant<T, E>& checked(bool want_value) const {
    assert(has_value() == want_value && "Result accessed as the alternative it does not hold");
    (void)want_value;
    return storage_;
  }

  std::variant<T, E> storage_;
};

// Result<void, E>: success carries nothing.
template <typename E>
class [[nodiscard]] Result<void, E> {
 public:
  using value_type = void;
  using error_type = E;

  Result() = default;
  template <typename G>
  Result(Unexpected<G> u) : error_(E(std::move(u).error())), has_error_(true) {}  // NOLINT

  bool has_value() const noexcept { return !has_error_; }
  explicit operator bool() const noexcept { return has_value(); }
  void value() const { assert(has_value() && "Result::value() called on an error"); }

  E& error() & {
    assert(has_error_);
    return error_;
  }
  const E& error() const& {
    assert(has_error_);
    return error_;
  }
  E&& error() && {
    assert(has_error_);
    return std::move(error_);
  }

 private:
  E error_{};
  bool has_error_ = false;
};

// The error type most modules use: a module-specific code, the errno of the syscall that
// failed (0 when the failure is not a syscall's), and a full sentence that names the problem
// and, where there is one, the fix.
template <typename Code>
struct Error {
  Code code{};
  int sys_errno = 0;
  std::string message;
};

// A failed system call where no module code is needed: its errno and what was being done.
struct SystemError {
  int sys_errno = 0;
  std::string message;
};

}  // namespace rf

// Propagates an error from an expression that yields a Result; binds nothing.
#define RF_TRY_VOID(expr)                                  \
  do {                                                     \
    auto rf_try_result_ = (expr);                          \
    if (!rf_try_result_) {                                 \
      return ::rf::unexpected(std::move(rf_try_result_).error()); \
    }                                                      \
  } while (0)
