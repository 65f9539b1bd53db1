#include "fuzz/virtio/virtio_campaign.h"

#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "device/guest_device.h"
#include "fuzz/live/resource_usage.h"
#include "util/mmap_region.h"
#include "util/temp_dir.h"
#include "virtio/blk_queue.h"

namespace rf::fuzz {

namespace {

using namespace rf::virtio;
using namespace std::chrono_literals;

constexpr std::uint64_t kRamBytes = 2 << 20;                               // writable: [0, 2 MiB)
constexpr std::uint64_t kCanaryBase = 4 << 20, kCanaryBytes = 64 << 10;  // read-only, after a hole
constexpr std::uint64_t kDesc = 0x1000, kAvail = 0x3000, kUsed = 0x4000, kTables = 0x8000;
constexpr std::uint64_t kHeaders = 0x10000, kStatus = 0x18000, kData = 0x20000;
constexpr std::uint64_t kDiskBytes = 4 << 20;
constexpr std::uint64_t kRssSlackKib = 64 * 1024;

enum InvariantIndex { kOneUsed, kInFlight, kCanary, kDiskSize, kResources };

// Everything made once: guest memory, the disk, the policy.
struct World {
  TempDir dir{"rf-fuzz-virtio"};
  GuestMemoryMap memory;
  std::optional<Disk> disk;
  std::string image;
  RestrictionSet policy;
  std::vector<std::byte> canary;

  std::string make() {
    const RegionLayout layout[] = {{GuestAddress{0}, kRamBytes, false}, {GuestAddress{kCanaryBase}, kCanaryBytes, true}};
    auto created = GuestMemoryBuilder::create(layout, MemoryBacking::Memfd);
    if (!created) return "guest memory: " + created.error().message;
    memory = std::move(*created);
    const GuestRegion& ro = memory->regions()[1];
    for (std::uint64_t i = 0; i < kCanaryBytes; ++i) ro.host[i] = static_cast<std::byte>(0xc5 ^ (i & 0xff));
    canary.assign(ro.host, ro.host + kCanaryBytes);
    image = dir.path() + "/disk.img";
    if (FILE* f = std::fopen(image.c_str(), "wbx")) {
      const bool sized = ::ftruncate(::fileno(f), static_cast<off_t>(kDiskBytes)) == 0;
      std::fclose(f);
      if (!sized) return "sizing the disk image";
    } else {
      return "creating the disk image in " + dir.path();
    }
    auto opened = Disk::open(image, {});
    if (!opened) return "the disk: " + opened.error().message;
    disk.emplace(std::move(*opened));
    auto restrictions = device_restrictions(std::nullopt, "blk-virtio");
    if (!restrictions) return restrictions.error().message;
    policy = *restrictions;
    return "";
  }
  std::byte* at(std::uint64_t gpa) const { return memory->regions()[0].host + gpa; }
};

// The hostile guest: writes guest memory and the kick eventfd as a guest would.
class Guest {
 public:
  // `hostility`: 0 keeps every chain well-formed (hostile addresses, lengths, sectors and types
  // inside it: refusals, not a broken queue), 1 breaks the protocol now and then, 2 often. An
  // episode draws one, so that some run long enough to reach deep states before the queue breaks.
  Guest(World& world, std::uint64_t seed, std::uint32_t size, int kick, std::uint32_t hostility)
      : w_(world), rng_(seed), size_(size), kick_(kick), hostility_(hostility) {}

  std::uint64_t next() { return rng_(); }
  std::uint32_t below(std::uint64_t n) { return static_cast<std::uint32_t>(rng_() % n); }

  void act() {
    const std::uint32_t kind = below(100);
    const bool break_protocol = hostility_ == 2 ? below(4) == 0 : hostility_ == 1 && below(50) == 0;
    if (break_protocol) {
      switch (below(4)) {
        case 0: return random_descriptor(below(size_));
        case 1: return indirect_table(true);
        case 2: return move_avail_index();
        default: return publish(static_cast<std::uint16_t>(next()));
      }
    }
    if (kind < 45) return well_formed_request();
    if (kind < 55) return random_header();
    if (kind < 65) return publish_again();
    if (kind < 80) return kick();
    if (kind < 90) return scribble();
    return indirect_table(false);
  }
  void kick() { ::eventfd_write(kick_, 1); }

 private:
  std::uint64_t pick_address() {
    switch (below(9)) {
      case 0: return kData + below(kRamBytes - kData);
      case 1: return kData + 4096ull * below(64);
      case 2: return kCanaryBase + below(kCanaryBytes);  // read-only canary
      case 3: return kRamBytes + below(kCanaryBase - kRamBytes);  // the hole
      case 4: return kRamBytes - 1 - below(64);  // the end of RAM
      case 5: return ~std::uint64_t{0} - below(4096);
      case 6: return kTables + 16ull * below(64);
      case 7: return kDesc + below(0x4000);  // the queue itself
      default: return next();
    }
  }
  std::uint32_t pick_length() {
    switch (below(6)) {
      case 0: return 16;
      case 1: return 1;
      case 2: return 512u * (1 + below(16));
      case 3: return below(65536);
      case 4: return ~std::uint32_t{0} - below(16);
      default: return static_cast<std::uint32_t>(next());
    }
  }
  void descriptor(std::uint64_t table, std::uint32_t i, std::uint64_t addr, std::uint32_t len, std::uint16_t flags,
                  std::uint16_t next_index) {
    const Descriptor d{addr, len, flags, next_index};
    std::memcpy(w_.at(table + 16ull * i), &d, sizeof d);
  }
  void random_descriptor(std::uint32_t i) {
    descriptor(kDesc, i, pick_address(), pick_length(), static_cast<std::uint16_t>(below(4) == 0 ? next() : below(8)),
               static_cast<std::uint16_t>(below(5) == 0 ? next() : below(size_)));
  }
  std::uint32_t pick_type() {
    static constexpr std::uint32_t kTypes[] = {kBlkIn, kBlkOut, kBlkFlush, kBlkGetId, 11, 13, kBlkRingfenceAttach,
                                               kBlkRingfenceNotify};
    return below(8) == 0 ? static_cast<std::uint32_t>(next()) : kTypes[below(std::size(kTypes))];
  }
  std::uint64_t pick_sector() {
    return below(6) == 0 ? next() : below(kDiskBytes / kSectorBytes + 16);
  }
  void random_header() {
    const BlkRequestHeader h{pick_type(), 0, pick_sector()};
    std::memcpy(w_.at(kHeaders + 16ull * below(size_)), &h, sizeof h);
  }
  // A request a driver would send: header, data, status in consecutive descriptors.
  void well_formed_request() {
    const auto head = static_cast<std::uint16_t>(below(size_));
    static constexpr std::uint32_t kTypes[] = {kBlkIn, kBlkOut, kBlkOut, kBlkFlush, kBlkGetId, kBlkDiscard, kBlkWriteZeroes};
    const std::uint32_t type = kTypes[below(std::size(kTypes))];
    const bool zeroing = type == kBlkDiscard || type == kBlkWriteZeroes;
    const BlkRequestHeader h{type, 0, pick_sector() % (kDiskBytes / kSectorBytes + 2)};
    std::memcpy(w_.at(kHeaders + 16ull * head), &h, sizeof h);
    const auto second = static_cast<std::uint16_t>((head + 1) % size_);
    const auto third = static_cast<std::uint16_t>((head + 2) % size_);
    const std::uint64_t status = kStatus + head;
    if (type == kBlkFlush || size_ < 3) {
      descriptor(kDesc, head, kHeaders + 16ull * head, 16, kDescNext, second);
      descriptor(kDesc, second, status, 1, kDescWrite, 0);
    } else {
      // Mostly what a driver sends; now and then a buffer aimed anywhere, of any length: the chain
      // stays well-formed, the request is refused.
      const bool hostile = below(4) == 0;
      const std::uint64_t data = kData + 4096ull * below(64);
      std::uint32_t len = hostile ? pick_length() : type == kBlkGetId ? 20 : 512u * (1 + below(8));
      if (zeroing && !hostile) len = 16 * (1 + below(3));
      if (zeroing) write_segments(data, len);
      descriptor(kDesc, head, kHeaders + 16ull * head, 16, kDescNext, second);
      descriptor(kDesc, second, hostile ? pick_address() : data, len,
                 static_cast<std::uint16_t>(kDescNext | (type == kBlkOut || zeroing ? 0 : kDescWrite)), third);
      descriptor(kDesc, third, status, 1, kDescWrite, 0);
    }
    publish(head);
    if (below(2) == 0) kick();
  }
  // DISCARD/WRITE_ZEROES segments over `bytes` at `data`: mostly in the disk, now and then any
  // sector, count or flags.
  void write_segments(std::uint64_t data, std::uint32_t bytes) {
    for (std::uint32_t i = 0; i + 16 <= std::min<std::uint32_t>(bytes, 4096); i += 16) {
      const BlkZeroingSegment z{pick_sector(), below(6) == 0 ? static_cast<std::uint32_t>(next()) : 1 + below(64),
                                below(6) == 0 ? static_cast<std::uint32_t>(next()) : below(2)};
      std::memcpy(w_.at(data + i), &z, sizeof z);
    }
  }
  // An indirect table: header, data (hostile addresses and lengths), status; `broken` lets its
  // structure go wrong too (flags, `next`, its length, NEXT beside INDIRECT).
  void indirect_table(bool broken) {
    const std::uint32_t entries = std::min<std::uint32_t>(3, size_);
    const auto head = static_cast<std::uint16_t>(below(size_));
    const BlkRequestHeader h{below(2) == 0 ? kBlkIn : kBlkOut, 0, pick_sector()};
    std::memcpy(w_.at(kHeaders + 16ull * head), &h, sizeof h);
    for (std::uint32_t i = 0; i < entries; ++i) {
      const bool last = i + 1 == entries;
      const std::uint64_t addr = i == 0 ? kHeaders + 16ull * head : last ? kStatus + head : pick_address();
      const std::uint32_t len = i == 0 ? 16 : last ? 1 : pick_length();
      const auto flags = static_cast<std::uint16_t>(
          broken && below(3) == 0 ? next() : (last ? kDescWrite : kDescNext | (i == 1 && h.type == kBlkIn ? kDescWrite : 0)));
      descriptor(kTables, i, addr, len, flags, static_cast<std::uint16_t>(broken && below(3) == 0 ? below(64) : i + 1));
    }
    descriptor(kDesc, head, kTables, broken && below(2) == 0 ? pick_length() : 16 * entries,
               static_cast<std::uint16_t>(kDescIndirect | (broken && below(2) == 0 ? kDescNext : 0)), 0);
    publish(head);
    kick();
  }
  // A head published again (the same request many times over, or an old one).
  void publish_again() {
    publish(static_cast<std::uint16_t>(below(size_)));
  }
  void publish(std::uint16_t head) {
    std::memcpy(w_.at(kAvail + 4 + 2ull * (avail_ % size_)), &head, 2);
    ++avail_;
    store_avail_idx();
  }
  void move_avail_index() {
    switch (below(3)) {
      case 0: avail_ = static_cast<std::uint16_t>(avail_ + size_ + 1 + below(100)); break;  // past the queue size
      case 1: avail_ = static_cast<std::uint16_t>(avail_ - 1 - below(4)); break;            // backwards
      default: avail_ = static_cast<std::uint16_t>(next()); break;
    }
    store_avail_idx();
    kick();
  }
  void store_avail_idx() {
    // SAFETY: kAvail + 2 is 2-aligned inside the writable region.
    std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(w_.at(kAvail + 2))).store(avail_, std::memory_order_release);
  }
  // The words the device owns or reads only as hints: the used ring, avail flags, used_event.
  void scribble() {
    const std::uint64_t word = next();
    switch (below(3)) {
      case 0: std::memcpy(w_.at(kUsed + 2ull * below(static_cast<std::uint32_t>((6 + 8ull * size_) / 2))), &word, 2); break;
      case 1: std::memcpy(w_.at(kAvail), &word, 2); break;
      default: std::memcpy(w_.at(kAvail + 4 + 2ull * size_), &word, 2); break;
    }
  }

  World& w_;
  std::mt19937_64 rng_;
  std::uint32_t size_;
  int kick_;
  std::uint32_t hostility_;
  std::uint16_t avail_ = 0;
};

std::string broken_kind(const std::string& detail) {
  if (detail.find("avail index jumped") != std::string::npos) return "avail index jump";
  const auto colon = detail.find(": ", detail.find("head "));
  const auto paren = detail.rfind(" (");
  if (colon != std::string::npos && paren != std::string::npos && paren > colon) return detail.substr(colon + 2, paren - colon - 2);
  return detail;
}

bool settle_resources(const ResourceUsage& baseline, std::string& growth) {
  // io-wq workers and the kernel's ring teardown finish a moment after the ring is freed.
  for (int i = 0; i < 100; ++i) {
    auto grew = resource_growth(baseline, ResourceUsage::now(), kRssSlackKib);
    if (!grew) return true;
    growth = *grew;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

}  // namespace

VirtioCampaignReport run_virtio_campaign(const VirtioCampaignConfig& config) {
  VirtioCampaignReport report;
  report.seed = config.seed;
  World world;
  report.harness_error = world.make();
  if (!report.harness_error.empty()) return report;
  const auto start = std::chrono::steady_clock::now();
  // Whether the disk can deallocate (a sysfs read): the same for every episode.
  const bool punch = world.disk->zeroing().punch_hole;
  const ResourceUsage baseline = ResourceUsage::now();
  const auto violate = [&](std::uint32_t episode, InvariantIndex which, std::string detail) {
    ++report.violated[which];
    if (!report.failed_episode) {
      report.failed_episode = episode;
      report.failure = fmt::format("{}: {}", kVirtioInvariantNames[which], detail);
    }
  };

  for (std::uint32_t episode = 0;; ++episode) {
    if (config.max_episodes && episode >= *config.max_episodes) break;
    if (!config.max_episodes && std::chrono::steady_clock::now() - start >= config.duration) break;
    std::seed_seq seq{static_cast<std::uint32_t>(config.seed), static_cast<std::uint32_t>(config.seed >> 32), episode};
    std::mt19937_64 draw(seq);
    const std::uint32_t size = 1u << (2 + draw() % 5);  // 4 .. 64
    std::memset(world.at(kDesc), 0, kHeaders - kDesc);
    UniqueFd kick(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), call(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    auto handle = world.disk->duplicate();
    if (!kick || !call || !handle) {
      report.harness_error = "eventfds or a disk handle for an episode";
      break;
    }
    BlkQueueConfig qc;
    qc.addresses = {GuestAddress{kDesc}, GuestAddress{kAvail}, GuestAddress{kUsed}, size};
    qc.event_idx = (draw() & 1) != 0;
    qc.indirect = (draw() & 1) != 0;
    qc.restrictions = world.policy;
    qc.serial = "fuzz";
    // DISCARD and WRITE_ZEROES negotiated or not, as the back-end offers them for this disk.
    qc.zeroing = BlkZeroing{punch && (draw() & 1) != 0, (draw() & 1) != 0, punch};
    auto queue = BlkQueue::create(world.memory, std::move(*handle), UniqueFd(::dup(kick.get())), UniqueFd(::dup(call.get())), qc);
    if (!queue) {
      report.harness_error = queue.error().message;
      break;
    }
    if (auto started = (*queue)->start(); !started) {
      report.harness_error = started.error().message;
      break;
    }
    const std::uint32_t hostility = static_cast<std::uint32_t>(draw() % 5) / 2;  // 0, 0, 1, 1, 2
    Guest guest(world, draw(), size, kick.get(), hostility);
    const std::uint32_t actions = 20 + static_cast<std::uint32_t>(draw() % 300);
    for (std::uint32_t a = 0; a < actions; ++a) {
      guest.act();
      ++report.actions;
      if (a % 16 == 15) std::this_thread::sleep_for(50us);  // let the queue run between bursts
      ++report.checked[kInFlight];
      if (const auto c = (*queue)->counters(); c.in_flight > size) {
        violate(episode, kInFlight, fmt::format("{} requests in flight on a queue of {}", c.in_flight, size));
      }
    }
    guest.kick();
    // Let it finish what it took (a broken queue takes nothing more).
    const auto settle_until = std::chrono::steady_clock::now() + 2s;
    while (std::chrono::steady_clock::now() < settle_until) {
      const auto c = (*queue)->counters();
      if (c.in_flight == 0 && (c.requests == c.completed || c.broken != BrokenReason::None)) break;
      std::this_thread::sleep_for(1ms);
    }
    (*queue)->stop(1s);
    const BlkQueueCounters c = (*queue)->counters();
    queue->reset();
    kick.reset();  // the harness's own descriptors go before the resource check
    call.reset();

    report.requests += c.requests;
    report.completed += c.completed;
    report.kernel_ios += c.kernel_ios;
    report.io_errors += c.io_errors;
    for (std::size_t i = 1; i < c.refused.size(); ++i) {
      if (c.refused[i] != 0) report.refused[std::string(blk_refusal_name(static_cast<BlkRefusal>(i)))] += c.refused[i];
    }
    if (c.broken != BrokenReason::None) ++report.broken[broken_kind(c.broken_detail)];

    ++report.checked[kOneUsed];
    if (c.broken == BrokenReason::None ? c.completed != c.requests : c.completed > c.requests) {
      violate(episode, kOneUsed, fmt::format("{} requests taken, {} used entries written{}", c.requests, c.completed,
                                             c.broken == BrokenReason::None ? "" : " (queue broken)"));
    }
    ++report.checked[kCanary];
    if (std::memcmp(world.memory->regions()[1].host, world.canary.data(), kCanaryBytes) != 0) {
      violate(episode, kCanary, "the read-only region of guest RAM changed");
    }
    ++report.checked[kDiskSize];
    struct stat st{};
    if (::stat(world.image.c_str(), &st) != 0 || static_cast<std::uint64_t>(st.st_size) != kDiskBytes) {
      violate(episode, kDiskSize, fmt::format("the image is {} bytes, not {}", st.st_size, kDiskBytes));
    }
    ++report.checked[kResources];
    std::string growth;
    if (!settle_resources(baseline, growth)) violate(episode, kResources, growth);
    report.max_rss_kib = std::max(report.max_rss_kib, ResourceUsage::now().rss_kib);
    report.episodes = episode + 1;
    if (config.progress) config.progress(report.episodes, report.requests);
    if (report.failed_episode) break;
  }
  report.elapsed = std::chrono::steady_clock::now() - start;
  return report;
}

}  // namespace rf::fuzz
