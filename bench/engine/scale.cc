#include "engine/scale.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "disk/disk.h"
#include "mediated/mediated_device.h"
#include "memory/guest_memory_builder.h"
#include "passthrough/passthrough_device.h"
#include "util/mmap_region.h"

namespace rf::bench {

namespace {

using Clock = std::chrono::steady_clock;

Result<Disk, std::string> open_target(const std::string& target) {
  DiskOptions options;
  options.read_only = true;
  options.offset_bound = OffsetBound::None;  // as the guest rows: the set-up times are the ring's
  auto disk = Disk::open(target, options);
  if (!disk) return unexpected(disk.error().message);
  return std::move(*disk);
}

Result<GuestMemoryMap, std::string> guest_ram(std::uint64_t bytes) {
  const RegionLayout layout[] = {{GuestAddress{0}, bytes, false}};
  auto memory = GuestMemoryBuilder::create(layout, MemoryBacking::Memfd);
  if (!memory) return unexpected(memory.error().message);
  return std::move(*memory);
}

Result<DeviceSetupTimes, std::string> create_once(abi::Mode mode, const GuestMemoryMap& memory, Disk disk,
                                                  std::optional<unsigned> sqpoll_cpu) {
  std::vector<Disk> disks;
  disks.push_back(std::move(disk));
  if (mode == abi::Mode::Passthrough) {
    PassthroughConfig config;
    config.cpu = sqpoll_cpu;
    auto device = PassthroughDevice::create(memory, std::move(disks), config);
    if (!device) return unexpected(device.error().message);
    return (*device)->setup_times();
  }
  MediatedConfig config;
  config.mediator.cpu = sqpoll_cpu;
  auto device = MediatedDevice::create(memory, std::move(disks), config);
  if (!device) return unexpected(device.error().message);
  return (*device)->setup_times();
}

}  // namespace

Result<std::vector<DeviceSetupTimes>, std::string> measure_device_setup(abi::Mode mode, const std::string& target,
                                                                        unsigned count, std::uint64_t ram_bytes,
                                                                        std::optional<unsigned> sqpoll_cpu) {
  std::vector<DeviceSetupTimes> samples;
  for (unsigned i = 0; i < count; ++i) {
    auto disk = open_target(target);
    if (!disk) return unexpected(std::move(disk).error());
    auto memory = guest_ram(ram_bytes);
    if (!memory) return unexpected(std::move(memory).error());
    auto times = create_once(mode, *memory, std::move(*disk), sqpoll_cpu);  // the device is gone again
    if (!times) return unexpected(std::move(times).error());
    samples.push_back(*times);
  }
  return samples;
}

std::chrono::nanoseconds median_of(const std::vector<DeviceSetupTimes>& samples,
                                   std::chrono::nanoseconds (*field)(const DeviceSetupTimes&)) {
  std::vector<std::chrono::nanoseconds> values;
  for (const auto& s : samples) values.push_back(field(s));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2), values.end());
  return values[values.size() / 2];
}

double RegistrationTime::ms_per_gib() const {
  const double gib = static_cast<double>(ram_bytes) / static_cast<double>(1ull << 30);
  return gib > 0 ? std::chrono::duration<double, std::milli>(register_buffers).count() / gib : 0.0;
}

Result<RegistrationTime, std::string> measure_registration(const std::string& target, std::uint64_t ram_bytes,
                                                           bool prefault) {
  auto disk = open_target(target);
  if (!disk) return unexpected(std::move(disk).error());
  auto memory = guest_ram(ram_bytes);
  if (!memory) return unexpected(std::move(memory).error());
  RegistrationTime result;
  result.ram_bytes = ram_bytes;
  result.prefaulted = prefault;
  if (prefault) {
    const auto start = Clock::now();
    const GuestRegion& region = (*memory)->regions().front();
    // One write per page allocates the memfd's pages, as a guest that booted would have.
    for (std::uint64_t offset = 0; offset < region.bytes; offset += page_size()) region.host[offset] = std::byte{0};
    result.prefault = Clock::now() - start;
  }
  auto times = create_once(abi::Mode::Passthrough, *memory, std::move(*disk), std::nullopt);
  if (!times) return unexpected(std::move(times).error());
  result.register_buffers = times->register_buffers;
  return result;
}

}  // namespace rf::bench
