#include "engine/row_catalogue.h"

#include "engine/kvm_guest_job.h"

namespace rf::bench {

namespace {

constexpr HostRow kHostRows[] = {HostRow::Bare, HostRow::BareSqpoll, HostRow::BareSqpollIopoll, HostRow::Restricted};
constexpr GuestRow kGuestRows[] = {GuestRow::Passthrough, GuestRow::PassthroughSqpoll, GuestRow::Mediated};
constexpr LinuxGuestRow kLinuxRows[] = {LinuxGuestRow::Passthrough, LinuxGuestRow::Mediated, LinuxGuestRow::Virtio,
                                        LinuxGuestRow::QsdVirtio};

constexpr PerformanceTarget kTargets[] = {
    {"restricted", "bare-sqpoll", 0.99, 1e9, 1, "restricted ≥ 0.99 × bare-sqpoll"},
    // The guest rows against the best the host itself does at that depth, however it does it.
    {"passthrough", kBestHostRow, 0.90, 1e9, 1, "passthrough ≥ 0.90 × best host row"},
    {"passthrough-sqpoll", kBestHostRow, 0.90, 1e9, 1, "passthrough-sqpoll ≥ 0.90 × best host row"},
    {"mediated", kBestHostRow, 0.90, 1e9, 1, "mediated ≥ 0.90 × best host row"},
    {"passthrough-sqpoll", "bare-sqpoll", 0.97, 1e9, 1, "passthrough-sqpoll ≥ 0.97 × bare-sqpoll"},
    // The Linux guest's rows against "virtqueues with an iothread" (the 2020 proposal measured
    // 1.42 at iodepth 1 and about 1.9-2.0 from iodepth 8 for its polled shared-ring driver).
    {"linux-passthrough", "qsd-virtio", 1.5, 1e9, 1, "linux-passthrough ≥ 1.5 × qsd-virtio (iodepth 1)", 1},
    {"linux-passthrough", "qsd-virtio", 2.0, 1e9, 8, "linux-passthrough ≥ 2 × qsd-virtio (iodepth ≥ 8)"},
    {"linux-mediated", "qsd-virtio", 1.2, 1e9, 1, "linux-mediated ≥ 1.2 × qsd-virtio"},
    {"linux-virtio", "qsd-virtio", 0.95, 1e9, 1, "linux-virtio ≥ 0.95 × qsd-virtio"},
    {"bare-sqpoll", "fio", 0.95, 1.05, 1, "bare-sqpoll within ±5% of fio"},
};

}  // namespace

std::string row_names() {
  std::string names;
  const auto add = [&names](std::string_view name) {
    if (!names.empty()) names += ", ";
    names += name;
  };
  for (HostRow r : kHostRows) add(host_row_name(r));
  for (GuestRow r : kGuestRows) add(guest_row_name(r));
  for (GuestRow r : kGuestRows) add(kvm_row_name(r));
  for (LinuxGuestRow r : kLinuxRows) add(linux_row_name(r));
  add("fio");
  return names;
}

std::optional<RowSpec> row_from_name(std::string_view name) {
  // What each row is measured against: the same ring shape without the thing it adds. fio runs
  // with sqthread_poll, so it is compared with bare-sqpoll (that comparison checks our load
  // generator); passthrough (its device thread) and mediated submit from a thread without SQPOLL,
  // so they are compared with bare, and passthrough-sqpoll with bare-sqpoll. A KVM row is
  // compared with the process-guest row of its kind: the same driver and device, with the guest
  // in a virtual machine instead of a process.
  if (name == "fio") return RowSpec{std::string(name), std::nullopt, std::nullopt, std::nullopt, "bare-sqpoll", std::nullopt};
  for (HostRow r : kHostRows) {
    if (host_row_name(r) != name) continue;
    const char* baseline = r == HostRow::Bare ? "" : r == HostRow::BareSqpoll ? "bare" : "bare-sqpoll";
    return RowSpec{std::string(name), r, std::nullopt, std::nullopt, baseline, std::nullopt};
  }
  for (GuestRow r : kGuestRows) {
    if (guest_row_name(r) == name) {
      return RowSpec{std::string(name), std::nullopt, r, std::nullopt,
                     r == GuestRow::PassthroughSqpoll ? "bare-sqpoll" : "bare", std::nullopt};
    }
    if (kvm_row_name(r) == name) {
      return RowSpec{std::string(name), std::nullopt, std::nullopt, r, std::string(guest_row_name(r)), std::nullopt};
    }
  }
  // The Linux-guest rows are all compared with qemu-storage-daemon's virtio path, the peer.
  for (LinuxGuestRow r : kLinuxRows) {
    if (linux_row_name(r) != name) continue;
    return RowSpec{std::string(name), std::nullopt, std::nullopt, std::nullopt,
                   r == LinuxGuestRow::QsdVirtio ? "" : "qsd-virtio", r};
  }
  return std::nullopt;
}

std::vector<std::string> best_host_candidates() {
  std::vector<std::string> names;
  for (HostRow r : kHostRows) names.emplace_back(host_row_name(r));
  names.emplace_back("fio");
  return names;
}

std::span<const PerformanceTarget> performance_targets() { return kTargets; }

}  // namespace rf::bench
