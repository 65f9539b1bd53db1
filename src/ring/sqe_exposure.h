// What the kernel does with the SQE fields of READ_FIXED, WRITE_FIXED and FSYNC that no
// restriction can filter (IORING_REGISTER_RESTRICTIONS names opcodes and SQE flags, nothing
// else). In passthrough the guest writes these fields and the kernel reads them directly, so
// each is exposure: found here by trying it, on this kernel, from a ring with the credentials a
// device's ring has (a thread without capabilities). Each kernel release may add fields (6.15
// added the read/write attribute pointer, 6.16 the write stream); mediated mode rebuilds every
// SQE from validated fields and passes none of them on.
#pragma once

#include <string>
#include <vector>

namespace rf {

struct SqeFieldFinding {
  std::string field;         // the SQE field ("ioprio", "rw_flags", ...)
  std::string opcodes;       // the allowed opcodes that read it
  bool interpreted = false;  // this kernel acted on a value in it
  std::string seen;          // what the probe saw, value by value
  std::string lets_a_guest;  // what that lets a passthrough guest do
};

struct SqeExposure {
  bool ran = false;
  std::string error;   // why it did not run
  std::string target;  // the file the probe's SQEs went to
  std::vector<SqeFieldFinding> fields;
};

// Creates a throwaway ring over a temporary file (in $TMPDIR or /var/tmp, unnamed) on a thread
// that has dropped its capabilities, and submits one SQE per value tried. Never fails: `ran`
// and `error` say whether it could.
SqeExposure probe_sqe_exposure();

}  // namespace rf
