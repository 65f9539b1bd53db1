#include "fuzz/live/episode.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "sandbox/process_sandbox.h"
#include "util/address.h"

namespace rf::fuzz {

namespace {

constexpr std::uint64_t kProgramZoneBytes = 1ull << 20;

// The writes the mediator hands to the kernel, as the mediated shadow check's footprint.
struct ObservedWrites {
  std::mutex mutex;
  WriteFootprint footprint;
};

SandboxConfig sandbox_config(const FuzzRigConfig& config, const std::shared_ptr<ObservedWrites>& observed) {
  SandboxConfig s;
  s.ram_bytes = config.ram_bytes;
  s.mode = config.mode;
  s.guest_binary = config.guest_binary;
  s.passthrough.queue_depth = config.queue_depth;
  s.passthrough.submitter = config.submitter;
  s.passthrough.restrictions = config.restrictions;
  s.mediated.queue_depth = config.queue_depth;
  s.mediated.restrictions = config.restrictions;
  if (observed) {
    s.mediated.mediator.on_kernel_submit = [observed](const Sqe& sqe) {
      const auto opcode = static_cast<std::uint8_t>(sqe.opcode);
      if (!writes_disk(opcode)) return;
      std::lock_guard lock(observed->mutex);
      observed->footprint.add(sqe.off, disk_write_reach(opcode, sqe.len));
    };
  }
  return s;
}

Result<std::string, std::string> write_image(const std::string& dir, std::uint64_t bytes) {
  const std::string path = dir + "/disk.img";
  UniqueFd fd(::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
  if (!fd) return unexpected(fmt::format("creating the disk image {}: {}", path, std::strerror(errno)));
  std::vector<unsigned char> chunk(1 << 20);
  for (std::uint64_t done = 0; done < bytes; done += chunk.size()) {
    for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<unsigned char>((done + i) / 512 * 7 + 1);
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), bytes - done));
    if (::write(fd.get(), chunk.data(), n) != static_cast<ssize_t>(n)) {
      return unexpected(fmt::format("writing the disk image {}: {}", path, std::strerror(errno)));
    }
  }
  return path;
}

FuzzGeometry geometry_of(ProcessSandbox& sandbox, const FuzzRigConfig& config) {
  const GuestDevice& d = sandbox.device();
  const abi::RingGeometry& ring = d.header().ring;
  FuzzGeometry g;
  g.mode = config.mode;
  g.sq_entries = ring.sq_entries;
  g.cq_entries = ring.cq_entries;
  g.has_index_array = ring.sq_array != 0;
  g.ram_bytes = config.ram_bytes;
  g.disk_count = static_cast<std::uint32_t>(d.disks().size());
  g.disk_bytes = d.disks().front().size_bytes();
  g.block_bytes = d.disks().front().logical_block_size();
  g.max_transfer = kDeviceMaxTransfer;
  g.window_count = static_cast<std::uint32_t>(d.windows().size());
  g.device_window = {d.descriptor_address().value(), d.device_window_bytes()};
  std::uint64_t rings_start = ring.sqes;
  for (const std::uint64_t word : {ring.sq_head, ring.sq_tail, ring.sq_flags, ring.sq_dropped, ring.cq_head, ring.cq_tail,
                                   ring.cq_flags, ring.cq_overflow, ring.cqes}) {
    rings_start = std::min(rings_start, word);
  }
  if (ring.sq_array != 0) rings_start = std::min(rings_start, ring.sq_array);
  g.rings = {rings_start, g.device_window.end() - rings_start};
  g.program = {sandbox.scratch().value(), kProgramZoneBytes};
  g.data = {sandbox.scratch().value() + kProgramZoneBytes, sandbox.scratch_bytes() - kProgramZoneBytes};
  g.report_page = kReportPage.value();
  return g;
}

bool same_geometry(const FuzzGeometry& a, const FuzzGeometry& b) {
  return a.sq_entries == b.sq_entries && a.cq_entries == b.cq_entries && a.has_index_array == b.has_index_array &&
         a.device_window.gpa == b.device_window.gpa && a.device_window.bytes == b.device_window.bytes &&
         a.rings.gpa == b.rings.gpa && a.data.gpa == b.data.gpa && a.data.bytes == b.data.bytes;
}

// Waits up to `patience` for the VMM's descriptors, threads and pinned memory to come back
// (the kernel frees a closed ring, its SQPOLL thread and its pins asynchronously). `last` is
// the usage it saw last.
std::optional<std::string> wait_for_resources(const ResourceUsage& baseline, std::uint64_t slack_kib,
                                              std::chrono::milliseconds patience, ResourceUsage& last) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  for (;;) {
    last = ResourceUsage::now();
    auto growth = resource_growth(baseline, last, slack_kib);
    if (!growth || std::chrono::steady_clock::now() > deadline) return growth;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace

FuzzRig::~FuzzRig() = default;

void FuzzRig::take_baseline() { baseline_ = ResourceUsage::now(); }

Result<std::unique_ptr<FuzzRig>, std::string> FuzzRig::create(const FuzzRigConfig& config) {
  std::unique_ptr<FuzzRig> rig(new FuzzRig());
  rig->config_ = config;
  rig->dir_ = std::make_unique<TempDir>("ringfence-fuzz");
  if (rig->dir_->path().empty()) return unexpected(std::string("cannot create a temporary directory (set TMPDIR)"));
  auto image = write_image(rig->dir_->path(), config.disk_bytes);
  if (!image) return unexpected(std::move(image).error());
  DiskOptions options;
  // O_DIRECT where the file system takes it (not tmpfs).
  const int probe = ::open(image->c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  options.direct_io = probe >= 0;
  if (probe >= 0) ::close(probe);
  auto disk = Disk::open(*image, options);
  if (!disk) {
    return unexpected(fmt::format("{} (the fuzzer bounds the disk with a loop device: it needs root or /dev/loop-control)",
                                  disk.error().message));
  }
  rig->disk_ = std::make_unique<Disk>(std::move(*disk));
  auto shadow = ShadowDisk::create(*rig->disk_);
  if (!shadow) return unexpected(std::move(shadow).error());
  rig->shadow_ = std::make_unique<ShadowDisk>(std::move(*shadow));
  auto decoy = DecoyFile::create(rig->dir_->path());
  if (!decoy) return unexpected(std::move(decoy).error());
  rig->decoy_ = std::make_unique<DecoyFile>(std::move(*decoy));

  // A first device tells the geometry. The baseline is taken once it has gone again.
  const ResourceUsage before = ResourceUsage::now();
  {
    auto copy = rig->disk_->duplicate();
    if (!copy) return unexpected(copy.error().message);
    std::vector<Disk> disks;
    disks.push_back(std::move(*copy));
    auto sandbox = ProcessSandbox::create(std::move(disks), sandbox_config(config, nullptr));
    if (!sandbox) return unexpected(sandbox.error().message);
    rig->geometry_ = geometry_of(*sandbox, config);
  }
  ResourceUsage after;
  (void)wait_for_resources(before, ~std::uint64_t{0} / 2, std::chrono::milliseconds(2000), after);
  rig->take_baseline();
  return rig;
}

Result<EpisodeResult, std::string> FuzzRig::run(const FuzzProgram& program) {
  const auto start = std::chrono::steady_clock::now();
  EpisodeResult r;
  r.episode = program.episode;
  const auto violate = [&r](std::size_t invariant, std::string detail) {
    r.violations.push_back({kInvariantNames[invariant], std::move(detail)});
  };

  auto observed = config_.mode == abi::Mode::Mediated ? std::make_shared<ObservedWrites>() : nullptr;
  auto copy = disk_->duplicate();
  if (!copy) return unexpected(copy.error().message);
  std::vector<Disk> disks;
  disks.push_back(std::move(*copy));
  auto sandbox = ProcessSandbox::create(std::move(disks), sandbox_config(config_, observed));
  if (!sandbox) return unexpected(sandbox.error().message);
  if (!same_geometry(geometry_of(*sandbox, config_), geometry_)) {
    return unexpected(std::string("the device's geometry differs from the one the program was made for"));
  }
  const GuestMemory& memory = sandbox->memory();
  auto canaries = CanaryPages::create(memory);
  if (!canaries) return unexpected(std::move(canaries).error());

  // Data buffers with something to write, then the program.
  auto data = memory.translate(GuestAddress{geometry_.data.gpa}, geometry_.data.bytes, DeviceAccess::WritesGuest);
  auto code = memory.translate(GuestAddress{geometry_.program.gpa}, geometry_.program.bytes, DeviceAccess::WritesGuest);
  if (!data || !code) return unexpected(std::string("guest RAM has no room for the program and its data"));
  for (std::uint64_t i = 0; i < data->bytes; ++i) data->host[i] = static_cast<std::byte>((i >> 9) * 13 + program.episode);
  Anchors anchors;
  anchors.gpa_bias = config_.mode == abi::Mode::Passthrough ? address_of(memory.regions().front().host) : 0;
  anchors.canary_below = canaries->below();
  anchors.canary_above = canaries->above();
  anchors.canary = canaries->elsewhere();
  anchors.decoy_fd = decoy_->fd();
  const std::vector<guest::FuzzAction> actions = resolve(program, anchors);
  if (guest::fuzz_program_bytes(static_cast<std::uint32_t>(actions.size())) > code->bytes) {
    return unexpected(fmt::format("a program of {} actions does not fit its {} KiB zone", actions.size(), code->bytes >> 10));
  }
  guest::FuzzProgramHeader header;
  header.count = static_cast<std::uint32_t>(actions.size());
  std::memcpy(code->host, &header, sizeof(header));
  std::memcpy(code->host + sizeof(header), actions.data(), actions.size() * sizeof(guest::FuzzAction));

  KernelRingCounters kernel_start;
  if (PassthroughDevice* p = sandbox->passthrough()) {
    // The device thread may be inside io_uring_enter for a moment (it holds the ring's lock).
    auto counters = p->kernel_counters(kDefaultFdinfoBytes, std::chrono::seconds(1));
    if (!counters) return unexpected(std::move(counters).error());
    kernel_start = *counters;
  }

  // The guest acts out the program.
  {
    auto guest = sandbox->spawn({"--scenario", "fuzz", "--program", std::to_string(geometry_.program.gpa)});
    if (!guest) return unexpected(guest.error().message);
    auto exit = guest->wait(config_.guest_timeout);
    if (!exit) {
      r.guest_timed_out = true;
      guest->kill();
      (void)guest->wait(std::chrono::milliseconds(5000));
    } else {
      r.guest_exit = *exit;
    }
  }
  if (auto report = sandbox->report()) r.guest = report->fuzz;

  // 1. Every SQE the device took got exactly one CQE (or the device says why not).
  if (PassthroughDevice* p = sandbox->passthrough()) {
    r.settlement = settle_passthrough(*p, memory, kernel_start,
                                      drop_accounting(program, geometry_.sq_entries) == DropAccounting::None,
                                      config_.settle_timeout);
  } else {
    r.settlement = settle_mediated(*sandbox->mediated(), config_.settle_timeout);
  }
  if (r.settlement.violation) violate(0, *r.settlement.violation);
  // 2. and 3. Nothing outside guest RAM and the disk changed.
  if (auto changed = canaries->check()) violate(1, *changed);
  if (auto changed = decoy_->check()) violate(2, *changed);
  // Stop the device before the footprint is taken: stop() still takes what the guest had
  // published (its drain), and those writes belong in the footprint. Timed with the teardown.
  const auto teardown_start = std::chrono::steady_clock::now();
  sandbox->device().stop(std::chrono::milliseconds(0));
  // 4. The disk changed only where writes the device accepted pointed.
  WriteFootprint footprint;
  if (observed) {
    std::lock_guard lock(observed->mutex);
    footprint = observed->footprint;
    r.shadow_exact = true;
  } else {
    r.shadow_exact = keeps_sq_protocol(program);
    if (r.shadow_exact) footprint = program_write_footprint(program);
  }
  r.footprint_bytes = footprint.bytes_below(geometry_.disk_bytes);

  // Tear down, timed: the rig's watchdog (campaign) catches a teardown that never returns.
  sandbox->close();
  r.teardown = std::chrono::steady_clock::now() - teardown_start;

  // The disk after teardown: nothing can write it any more.
  if (r.shadow_exact) {
    if (auto outside = shadow_->check(footprint, r.disk_changed_bytes)) violate(3, *outside);
  } else if (auto resynced = shadow_->resync(); !resynced) {
    return unexpected(resynced.error());
  }
  // 5. The VMM is back where it started.
  if (auto growth = wait_for_resources(baseline_, config_.rss_slack_kib, std::chrono::milliseconds(2000), r.resources)) {
    violate(4, *growth);
  }
  r.elapsed = std::chrono::steady_clock::now() - start;
  return r;
}

}  // namespace rf::fuzz
