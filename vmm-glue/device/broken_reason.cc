#include "device/broken_reason.h"

namespace rf {

std::string_view broken_reason_name(BrokenReason reason) {
  switch (reason) {
    case BrokenReason::None: return "none";
    case BrokenReason::SqTailJump: return "SQ tail jump";
    case BrokenReason::CqHeadJump: return "CQ head jump";
    case BrokenReason::KernelRing: return "kernel ring failure";
    case BrokenReason::InFlightBound: return "in-flight bound";
    case BrokenReason::Virtqueue: return "virtqueue protocol";
  }
  return "unknown";
}

}  // namespace rf
