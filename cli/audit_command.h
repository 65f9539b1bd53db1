#pragma once

namespace rf::cli {

// `ringfence audit`: builds a ring for each built-in policy in its data path's shape, runs the
// self-check, and prints the enforcement matrix. Exit status 1 if any check fails.
int run_audit();

}  // namespace rf::cli
