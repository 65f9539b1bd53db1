// Small helpers shared by the ring tests.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>

#include <gtest/gtest.h>

#include "ring/setup.h"
#include "util/unique_fd.h"

namespace rf::test {

inline constexpr std::chrono::seconds kWait{5};

// Builds, restricts and enables a ring (callers ASSERT on the result).
inline Result<Ring, RingError> make_ring(const RestrictionSet& set, const RingOptions& options = {}) {
  auto disabled = DisabledRing::create(options);
  if (!disabled) return unexpected(std::move(disabled).error());
  auto restricted = std::move(*disabled).restrict(set);
  if (!restricted) return unexpected(std::move(restricted).error());
  return std::move(*restricted).enable();
}

// Submits one SQE and returns its CQE result; records a failure if the ring errs.
inline int run_one(Ring& ring, const Sqe& sqe) {
  auto cqe = ring.submit_and_wait(sqe, kWait);
  EXPECT_TRUE(cqe) << cqe.error().message;
  return cqe ? cqe->res : 1;  // 1: never an expected errno
}

inline UniqueFd make_memfd(std::size_t bytes) {
  UniqueFd fd(::memfd_create("ringfence-test", MFD_CLOEXEC));
  EXPECT_TRUE(fd);
  EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(bytes)), 0);
  return fd;
}

}  // namespace rf::test
