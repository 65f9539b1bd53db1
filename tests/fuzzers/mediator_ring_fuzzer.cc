// libFuzzer target: the mediator's ring consumer (Mediator, driven by poll_once) under hostile
// guest ring states, with a real restricted kernel ring behind it.
//
// The input is a guest program: write SQEs (structure-aware: the block opcodes with in-range
// and hostile fields, or anything), publish SQ tails (also jumps and steps back), reap or
// scribble the CQ head, turn notifications on and off, scribble the words the VMM owns (SQ
// head, SQ flags, CQ tail), and let the mediator run a few rounds or wait for the kernel. Each
// input gets a fresh Mediator and zeroed rings; the kernel ring, guest RAM and disks are made
// once. Checked after every step and at the end:
//   - requests in flight never exceed the guest CQ;
//   - every SQE taken is refused or submitted, and nothing is posted that was not taken;
//   - every CQE the guest reaps carries a refusal errno, 0 or a byte count up to the transfer
//     limit;
//   - the device breaks only for a reason the guest caused (never "kernel ring failure");
//   - once the guest reaps everything, every SQE taken has exactly one CQE and nothing is left
//     in flight, within a time bound (no hang);
//   - the read-only guest region, the read-only disk and both disks' sizes never change.
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "device/guest_device.h"
#include "fuzz_check.h"
#include "mediated/mediator.h"
#include "util/mmap_region.h"
#include "util/temp_dir.h"

namespace {

using namespace rf;

constexpr std::uint32_t kSqEntries = 8;  // small, so jumps, wraps and a full CQ come quickly
constexpr std::uint32_t kCqEntries = 16;
constexpr std::uint64_t kWritableDiskBytes = 256 * 1024;
constexpr std::uint64_t kReadOnlyDiskBytes = 64 * 1024;
constexpr std::uint8_t kReadOnlyDiskByte = 0xa5;

std::string make_file(const TempDir& dir, const char* name, std::uint64_t bytes, std::uint8_t fill) {
  const std::string path = dir.path() + "/" + name;
  const std::vector<char> content(bytes, static_cast<char>(fill));
  FILE* f = std::fopen(path.c_str(), "wbx");
  RF_FUZZ_CHECK(f != nullptr, "the fuzz target can create its disk images");
  RF_FUZZ_CHECK(std::fwrite(content.data(), 1, content.size(), f) == content.size(), "disk image written");
  std::fclose(f);
  return path;
}

std::uint64_t file_size(const std::string& path) {
  struct stat st {};
  RF_FUZZ_CHECK(::stat(path.c_str(), &st) == 0, "disk image still exists");
  return static_cast<std::uint64_t>(st.st_size);
}

// Everything made once: guest RAM (a writable region holding the rings and the data, and a
// read-only region after a gap), two disk images (registered directly, without a loop device,
// so that any write past the end would show as a bigger file), and the restricted private ring.
struct World {
  TempDir dir{"rf-fuzz-mediator"};
  std::uint64_t page = page_size();
  GuestMemoryMap memory;
  std::vector<Disk> disks;
  std::vector<DiskLimits> limits;
  std::string writable_path, read_only_path;
  std::optional<Ring> ring;
  UniqueFd ring_eventfd, kick, notify;
  GuestRingLayout layout{};
  std::byte* ring_area = nullptr;
  std::uint64_t data_gpa = 0;  // where the data buffers start, after the rings
  std::uint64_t read_only_gpa = 0;

  World() {
    const RegionLayout regions[] = {{GuestAddress{0}, 256 * page, false}, {GuestAddress{512 * page}, 4 * page, true}};
    auto created = GuestMemoryBuilder::create(regions, MemoryBacking::Anonymous);
    RF_FUZZ_CHECK(created.has_value(), "guest memory is created");
    memory = std::move(*created);
    read_only_gpa = 512 * page;

    writable_path = make_file(dir, "writable.img", kWritableDiskBytes, 0);
    read_only_path = make_file(dir, "read-only.img", kReadOnlyDiskBytes, kReadOnlyDiskByte);
    const DiskOptions unbounded{.read_only = false, .direct_io = false, .offset_bound = OffsetBound::None};
    auto rw = Disk::open(writable_path, unbounded);
    auto ro = Disk::open(read_only_path, DiskOptions{.read_only = true, .direct_io = false, .offset_bound = OffsetBound::None});
    RF_FUZZ_CHECK(rw.has_value() && ro.has_value(), "the disk images open");
    disks.push_back(std::move(*rw));
    disks.push_back(std::move(*ro));
    for (const Disk& d : disks) limits.push_back(DiskLimits{d.size_bytes(), d.logical_block_size(), d.read_only()});

    auto restrictions = device_restrictions(std::nullopt, "blk-mediated");
    auto buffers = count_buffer_windows(*memory);
    auto event = make_eventfd("the private ring's completions");
    auto kick_fd = make_eventfd("the doorbell");
    auto notify_fd = make_eventfd("notifications");
    RF_FUZZ_CHECK(restrictions && buffers && event && kick_fd && notify_fd, "the ring's parts are made");
    ring_eventfd = std::move(*event);
    kick = std::move(*kick_fd);
    notify = std::move(*notify_fd);
    RingOptions options;
    options.sq_entries = kCqEntries;
    DeviceSetupTimes times;
    auto built = build_device_ring(options, disks, *memory, ring_eventfd.get(), *restrictions, times);
    if (!built) {
      // The one way this target may not run: a kernel without io_uring (or with it disabled).
      std::fprintf(stderr, "mediator_ring fuzz target: cannot build the private ring: %s\n", built.error().message.c_str());
      std::exit(77);
    }
    ring.emplace(std::move(*built));

    layout = guest_ring_layout(kSqEntries, kCqEntries);
    ring_area = memory->regions()[0].host;
    data_gpa = (layout.bytes + page - 1) / page * page;
  }
};

World& world() {
  static World w;
  return w;
}

// The guest's side of the rings: it reads and writes guest memory like any guest would.
class HostileGuest {
 public:
  explicit HostileGuest(const World& w) : w_(w) {}

  // SAFETY: offsets are the guest ring layout's, 4-aligned words inside the ring area of guest RAM.
  std::uint32_t& word(std::uint64_t offset) const { return *reinterpret_cast<std::uint32_t*>(w_.ring_area + offset); }
  std::uint32_t load(std::uint64_t offset) const {
    return std::atomic_ref<std::uint32_t>(word(offset)).load(std::memory_order_acquire);
  }
  void store(std::uint64_t offset, std::uint32_t value) const {
    std::atomic_ref<std::uint32_t>(word(offset)).store(value, std::memory_order_release);
  }
  abi::GuestSqe& sqe(std::uint32_t index) const {
    // SAFETY: the SQE array of the guest ring layout: kSqEntries 64-byte entries, 64-aligned, in guest RAM.
    return reinterpret_cast<abi::GuestSqe*>(w_.ring_area + w_.layout.sqes)[index % kSqEntries];
  }
  const abi::GuestCqe& cqe(std::uint32_t index) const {
    // SAFETY: the CQE array of the guest ring layout: kCqEntries 16-byte entries, 16-aligned, in guest RAM.
    return reinterpret_cast<const abi::GuestCqe*>(w_.ring_area + w_.layout.cqes)[index % kCqEntries];
  }

  abi::GuestSqe build_sqe(fuzz::ByteReader& in) {
    abi::GuestSqe s{};
    static constexpr std::uint8_t kOps[] = {abi::kOpReadFixed, abi::kOpReadFixed, abi::kOpWriteFixed, abi::kOpWriteFixed,
                                            abi::kOpFsync, abi::kOpNop};
    const std::uint8_t op = in.byte() % 8;
    s.opcode = op < 6 ? kOps[op] : in.byte();
    s.flags = in.byte() % 4 == 0 ? in.byte() : abi::kSqeFixedFile;
    const std::uint8_t fd = in.byte() % 4;
    s.fd = fd < 3 ? fd : in.take<std::int32_t>();  // 2 is past the table
    s.off = in.flag() ? std::uint64_t{in.byte()} * 2048 : in.take<std::uint64_t>();  // to twice the disk, or anything
    switch (in.byte() % 4) {
      case 0: s.len = 512u * (1 + in.byte() % 16); break;
      case 1: s.len = 4096; break;
      case 2: s.len = in.take<std::uint32_t>(); break;
      default: s.len = 0; break;
    }
    switch (in.byte() % 5) {
      case 0: case 1: s.addr = w_.data_gpa + std::uint64_t{in.byte()} * 512; break;
      case 2: s.addr = w_.read_only_gpa + std::uint64_t{in.byte()} * 64; break;  // not writable
      case 3:  // its own rings: a disk read may then overwrite its CQEs, which it may do
        s.addr = in.below(static_cast<std::uint32_t>(w_.layout.bytes));
        aimed_at_own_rings_ = true;
        break;
      default: s.addr = in.take<std::uint64_t>(); break;
    }
    s.user_data = in.flag() ? in.take<std::uint64_t>() : ++tag_;
    if (in.byte() % 8 == 0) s.ioprio = in.take<std::uint16_t>(), s.op_flags = in.take<std::uint32_t>(), s.buf_index = in.take<std::uint16_t>();
    return s;
  }

  // Reaps every CQE between its head and the published tail, as a well-behaved guest would,
  // and checks each result. Returns how many it reaped.
  std::uint32_t reap() {
    const std::uint32_t tail = load(GuestRingLayout::kCqTail);
    const std::uint32_t ready = tail - cq_head_;
    if (ready > kCqEntries) return 0;  // it scribbled the tail itself: nothing to believe
    for (std::uint32_t i = 0; i < ready; ++i) {
      const std::int32_t res = cqe(cq_head_ + i).res;
      const bool refusal = res == -EACCES || res == -EPERM || res == -EBADF || res == -EROFS || res == -ENXIO ||
                           res == -EMSGSIZE || res == -EINVAL || res == -EFAULT;
      RF_FUZZ_CHECK(aimed_at_own_rings_ || refusal || (res >= 0 && static_cast<std::uint32_t>(res) <= kDeviceMaxTransfer),
                    "every CQE carries a refusal errno, 0 or a transfer length");
    }
    cq_head_ = tail;
    store(GuestRingLayout::kCqHead, cq_head_);
    return ready;
  }

  std::uint32_t sq_tail = 0;

 private:
  const World& w_;
  std::uint32_t cq_head_ = 0;
  std::uint64_t tag_ = 0;
  bool aimed_at_own_rings_ = false;  // then CQE contents are the guest's own doing
};

void check_counters(const Mediator& m) {
  const MediatorCounters c = m.counters();
  RF_FUZZ_CHECK(c.in_flight <= kCqEntries, "requests in flight never exceed the guest CQ");
  RF_FUZZ_CHECK(c.consumed == c.submitted + c.refused_total(), "every SQE taken is refused or submitted");
  RF_FUZZ_CHECK(c.posted <= c.consumed && c.completed <= c.submitted, "nothing is completed that was not taken");
  RF_FUZZ_CHECK(c.broken != BrokenReason::KernelRing, "a guest cannot make the private kernel ring fail");
}

void wait_for_kernel(const World& w, int timeout_ms) {
  pollfd p{w.ring_eventfd.get(), POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) > 0) drain_eventfd(w.ring_eventfd.get());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  World& w = world();
  fuzz::ByteReader in(data, size);
  std::memset(w.ring_area, 0, w.layout.bytes);
  const ValidationContext context{&w.ring->restrictions(), w.limits, &*w.memory, kDeviceMaxTransfer};
  MediatorConfig config;
  config.budget = 1 + in.byte() % 8;
  auto mediator = std::make_unique<Mediator>(GuestRing(w.ring_area, w.layout), context, *w.ring, w.ring_eventfd.get(),
                                             w.kick.get(), w.notify.get(), config);
  HostileGuest guest(w);

  for (int step = 0; step < 512 && !in.empty(); ++step) {
    switch (in.byte() % 8) {
      case 0: case 1: {  // write an SQE into a slot at or after the tail
        const std::uint32_t slot = guest.sq_tail + in.byte() % kSqEntries;
        guest.sqe(slot) = guest.build_sqe(in);
        break;
      }
      case 2: {  // publish: usually a few entries on, sometimes a jump or a step back
        const std::uint8_t how = in.byte();
        guest.sq_tail = how % 8 == 0 ? in.take<std::uint32_t>() : guest.sq_tail + how % (kSqEntries + 1);
        guest.store(GuestRingLayout::kSqTail, guest.sq_tail);
        break;
      }
      case 3: guest.reap(); break;
      case 4: {  // scribble: the CQ head, the CQ flags, or a word the VMM owns
        static constexpr std::uint64_t kWords[] = {GuestRingLayout::kCqHead, GuestRingLayout::kCqFlags, GuestRingLayout::kSqHead,
                                                   GuestRingLayout::kSqFlags, GuestRingLayout::kCqTail, GuestRingLayout::kSqDropped};
        const std::uint64_t offset = kWords[in.byte() % std::size(kWords)];
        guest.store(offset, in.take<std::uint32_t>());
        break;
      }
      case 5: guest.store(GuestRingLayout::kCqFlags, in.flag() ? abi::kCqFlagNotifyDisabled : 0); break;
      case 6:  // wait for the kernel, if the mediator has anything there
        if (mediator->counters().in_flight != 0) wait_for_kernel(w, 1);
        [[fallthrough]];
      default: {
        for (unsigned n = 1 + in.byte() % 4; n > 0 && mediator->poll_once(); --n) {
        }
        break;
      }
    }
    check_counters(*mediator);
  }

  // The guest now behaves: it reaps whatever arrives until the mediator has nothing left.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    guest.reap();
    const bool worked = mediator->poll_once();
    const MediatorCounters c = mediator->counters();
    if (c.broken != BrokenReason::None) break;
    if (!worked && c.in_flight == 0) break;  // after a full reap: nothing it can still take
    RF_FUZZ_CHECK(std::chrono::steady_clock::now() < deadline, "the mediator finishes a well-behaved guest's work in time");
    if (!worked && c.in_flight != 0) wait_for_kernel(w, 1);
  }
  check_counters(*mediator);
  const MediatorCounters c = mediator->counters();
  if (c.broken == BrokenReason::None) {
    RF_FUZZ_CHECK(c.completed == c.submitted && c.posted == c.consumed, "every SQE taken has exactly one CQE");
  }
  // A broken mediator stops reaping: collect what it left in the kernel ring ourselves, so the
  // next input starts with an empty ring.
  mediator.reset();
  for (std::uint64_t left = c.in_flight; left > 0; --left) {
    RF_FUZZ_CHECK(w.ring->wait_completion(std::chrono::seconds(5)).has_value(), "the kernel completes what was submitted");
  }
  RF_FUZZ_CHECK(!w.ring->pop_completion(), "no completion is left over");

  // Nothing outside the guest's writable memory and its writable disk changed.
  const GuestRegion& read_only = w.memory->regions()[1];
  for (std::uint64_t i = 0; i < read_only.bytes; ++i) {
    RF_FUZZ_CHECK(read_only.host[i] == std::byte{0}, "the read-only guest region is never written");
  }
  RF_FUZZ_CHECK(file_size(w.writable_path) == kWritableDiskBytes && file_size(w.read_only_path) == kReadOnlyDiskBytes,
                "no write reaches past the end of a disk");
  static std::vector<char> read_back(kReadOnlyDiskBytes);
  FILE* f = std::fopen(w.read_only_path.c_str(), "rb");
  RF_FUZZ_CHECK(f != nullptr && std::fread(read_back.data(), 1, read_back.size(), f) == read_back.size(), "read-only disk read");
  std::fclose(f);
  for (char byte : read_back) RF_FUZZ_CHECK(static_cast<std::uint8_t>(byte) == kReadOnlyDiskByte, "the read-only disk is never written");
  return 0;
}
