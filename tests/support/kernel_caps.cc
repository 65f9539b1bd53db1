#include "support/kernel_caps.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "ring/setup.h"

namespace rf::test {

namespace {

bool kernel_lacks(const RingError& e) {
  return e.code == RingErrc::Unsupported || e.code == RingErrc::IoUringUnavailable;
}

Feature from(const RingError& e) { return Feature{false, kernel_lacks(e), e.message}; }

Feature try_options(const RingOptions& options) {
  auto ring = DisabledRing::create(options);
  if (!ring) return from(ring.error());
  return Feature{true, false, ""};
}

}  // namespace

const Feature& io_uring_feature() {
  static const Feature f = try_options(RingOptions{});
  return f;
}

const Feature& restrictions_feature() {
  static const Feature f = [] {
    if (!io_uring_feature().available) return io_uring_feature();
    auto disabled = DisabledRing::create(RingOptions{});
    if (!disabled) return from(disabled.error());
    auto restricted = std::move(*disabled).restrict(RestrictionSet{}.allow(SqeOpcode::Nop));
    if (!restricted) return from(restricted.error());
    auto ring = std::move(*restricted).enable();
    if (!ring) return from(ring.error());
    return Feature{true, false, ""};
  }();
  return f;
}

const Feature& sqpoll_feature() {
  static const Feature f = [] {
    RingOptions o;
    o.sqpoll = SqPollOptions{};
    return try_options(o);
  }();
  return f;
}

const Feature& no_mmap_feature() {
  static const Feature f = [] {
    RingOptions o;
    o.sq_entries = 4;
    auto layout = ring_memory_layout(o);
    if (!layout) return from(layout.error());
    auto mem = MmapRegion::map_anonymous(layout->rings_bytes + layout->sqes_bytes);
    if (!mem) return Feature{false, false, mem.error().message};
    o.caller_memory = CallerRingMemory{mem->span().first(layout->rings_bytes), mem->span().subspan(layout->rings_bytes)};
    return try_options(o);
  }();
  return f;
}

const Feature& no_sqarray_feature() {
  static const Feature f = [] {
    RingOptions o;
    o.no_sqarray = true;
    return try_options(o);
  }();
  return f;
}

const Feature& loop_device_feature() {
  static const Feature f = [] {
    const int fd = ::open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
      ::close(fd);
      return Feature{true, false, ""};
    }
    const int err = errno;
    // Absent or not permitted here: the machine lacks the feature.
    const bool missing = err == ENOENT || err == ENXIO || err == ENODEV || err == EACCES || err == EPERM;
    return Feature{false, missing, std::string("/dev/loop-control: ") + std::strerror(err)};
  }();
  return f;
}

const Feature& zram_feature() {
  static const Feature f = [] {
    if (::geteuid() != 0) return Feature{false, true, "zram devices need root"};
    if (::access("/sys/class/zram-control", F_OK) != 0) (void)std::system("modprobe zram >/dev/null 2>&1");
    if (::access("/sys/class/zram-control", F_OK) != 0) {
      return Feature{false, true, "this kernel has no zram module (/sys/class/zram-control is missing after modprobe zram)"};
    }
    return Feature{true, false, ""};
  }();
  return f;
}

const Feature& kvm_feature() {
  static const Feature f = [] {
    const int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) return Feature{false, true, std::string("/dev/kvm is not usable here: ") + std::strerror(errno)};
    const int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
    ::close(fd);
    if (version != 12) return Feature{false, true, "/dev/kvm does not speak KVM API version 12"};
    return Feature{true, false, ""};
  }();
  return f;
}

}  // namespace rf::test
