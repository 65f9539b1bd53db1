// Whether a file or block device can be driven with IORING_SETUP_IOPOLL. Two conditions:
// the kernel accepts a polled O_DIRECT read on it (the filesystem or driver has ->iopoll),
// and the block device underneath has poll queues (queue/io_poll = 1). A device without poll
// queues still completes a "polled" read, by interrupt, so the read alone proves nothing.
#pragma once

#include <optional>
#include <string>

namespace rf {

struct IopollStatus {
  std::string target;
  bool supported = false;
  std::string detail;                // why, in words
  std::optional<std::string> device;  // the block device (e.g. "vda"), when there is one
};

IopollStatus probe_iopoll(const std::string& target);

}  // namespace rf
