// The enforcement matrix: for one restriction set, build a ring (AuditRing) and check, on the
// running kernel, each thing the restrictions and fixed resources are supposed to refuse.
// `ringfence demo` prints one column per built-in policy.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "audit/audit_ring.h"
#include "ring/restriction.h"
#include "ring/self_check.h"

namespace rf {

struct MatrixRow {
  std::string check;     // what was tried
  std::string expected;  // what the kernel must answer
  bool applicable = true;  // false when the policy allows the thing (nothing to refuse)
  bool passed = false;
  std::string observed;  // what it answered, e.g. "60/60" or "-EFAULT"
  std::vector<std::string> failures;  // one line per unexpected answer
};

struct MatrixColumn {
  std::string policy;
  RingShape shape = RingShape::Private;
  SelfCheckReport self_check;
  std::chrono::nanoseconds setup_time{0};
  std::vector<MatrixRow> rows;  // the same checks, in the same order, for every column

  bool passed() const;
};

// Fails only when the ring cannot be built (the message says why); a check that finds the
// kernel not enforcing is a row with passed == false.
Result<MatrixColumn, RingError> run_enforcement_matrix(const std::string& policy, const RestrictionSet& set,
                                                       RingShape shape);

// "-EACCES" for a negative errno result, the number otherwise.
std::string cqe_result_label(int res);

}  // namespace rf
