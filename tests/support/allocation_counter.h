// Counts heap allocations made by the calling thread, for tests that check a path a guest can
// drive allocates nothing. Linking allocation_counter.cc into a test binary replaces the global
// operator new and delete (all of them go to malloc/free, as the defaults do); only the count
// is added.
#pragma once

#include <cstdint>

namespace rf::test {

// Allocations (operator new, any form) made by this thread so far.
std::uint64_t thread_allocations();

// The allocations this thread makes between construction and count().
class AllocationScope {
 public:
  AllocationScope() : start_(thread_allocations()) {}
  std::uint64_t count() const { return thread_allocations() - start_; }

 private:
  std::uint64_t start_;
};

}  // namespace rf::test
