// The guest side of a split virtqueue, for tests: lays out the descriptor table, avail and used
// rings in guest memory the test can see, builds chains (well-formed or not), publishes heads
// and reads used entries back. A test driver, so it does exactly what it is told: hostile
// layouts are built with the same calls.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

#include "virtio/virtio_spec.h"

namespace rf::test {

// Guest RAM as the test sees it: regions of {gpa, bytes, host}.
struct GuestView {
  struct Region {
    std::uint64_t gpa;
    std::uint64_t bytes;
    std::byte* host;
  };
  std::vector<Region> regions;

  std::byte* at(std::uint64_t gpa, std::uint64_t bytes = 1) const {
    for (const Region& r : regions) {
      if (gpa >= r.gpa && gpa - r.gpa + bytes <= r.bytes) return r.host + (gpa - r.gpa);
    }
    throw std::out_of_range("the test addressed guest memory outside every region");
  }
  template <typename T>
  T* as(std::uint64_t gpa) const {
    // SAFETY: test memory; `at` checked that sizeof(T) bytes at gpa lie inside one region.
    return reinterpret_cast<T*>(at(gpa, sizeof(T)));
  }
};

class TestVirtqueue {
 public:
  // The queue's parts at desc, avail and used (the caller picks addresses in guest RAM).
  TestVirtqueue(GuestView view, std::uint64_t desc, std::uint64_t avail, std::uint64_t used, std::uint16_t size)
      : view_(std::move(view)), desc_(desc), avail_(avail), used_(used), size_(size) {
    std::memset(view_.at(desc_, 16ull * size), 0, 16ull * size);
    std::memset(view_.at(avail_, 6 + 2ull * size), 0, 6 + 2ull * size);
    std::memset(view_.at(used_, 6 + 8ull * size), 0, 6 + 8ull * size);
  }

  std::uint16_t size() const { return size_; }
  std::uint64_t desc_gpa() const { return desc_; }
  std::uint64_t avail_gpa() const { return avail_; }
  std::uint64_t used_gpa() const { return used_; }

  void set_desc(std::uint16_t i, std::uint64_t addr, std::uint32_t len, std::uint16_t flags, std::uint16_t next = 0) {
    virtio::Descriptor d{addr, len, flags, next};
    std::memcpy(view_.at(desc_ + 16ull * i, 16), &d, 16);
  }
  // A descriptor in a table the test placed anywhere (an indirect table).
  void set_table_desc(std::uint64_t table, std::uint16_t i, std::uint64_t addr, std::uint32_t len, std::uint16_t flags,
                      std::uint16_t next = 0) {
    virtio::Descriptor d{addr, len, flags, next};
    std::memcpy(view_.at(table + 16ull * i, 16), &d, 16);
  }
  // A chain of `parts` in consecutive descriptors from `first`; returns the head.
  struct Part {
    std::uint64_t addr;
    std::uint32_t len;
    bool device_writes;
  };
  std::uint16_t chain(std::uint16_t first, std::span<const Part> parts) {
    for (std::size_t k = 0; k < parts.size(); ++k) {
      const auto i = static_cast<std::uint16_t>((first + k) % size_);
      const bool last = k + 1 == parts.size();
      set_desc(i, parts[k].addr, parts[k].len,
               static_cast<std::uint16_t>((parts[k].device_writes ? virtio::kDescWrite : 0) | (last ? 0 : virtio::kDescNext)),
               static_cast<std::uint16_t>((i + 1) % size_));
    }
    return first;
  }

  // Puts `head` in the next avail slot and moves the avail index on (release).
  void publish(std::uint16_t head) {
    *view_.as<std::uint16_t>(avail_ + 4 + 2ull * (avail_idx_ % size_)) = head;
    ++avail_idx_;
    store_avail_idx(avail_idx_);
  }
  // Sets the avail index to anything (a jump, a step back).
  void store_avail_idx(std::uint16_t idx) {
    std::atomic_ref<std::uint16_t>(*view_.as<std::uint16_t>(avail_ + 2)).store(idx, std::memory_order_release);
  }
  void set_avail_flags(std::uint16_t flags) { *view_.as<std::uint16_t>(avail_) = flags; }
  void set_used_event(std::uint16_t idx) { *view_.as<std::uint16_t>(avail_ + 4 + 2ull * size_) = idx; }
  std::uint16_t avail_event() const {
    return std::atomic_ref<std::uint16_t>(*view_.as<std::uint16_t>(used_ + 4 + 8ull * size_)).load(std::memory_order_relaxed);
  }
  std::uint16_t avail_idx() const { return avail_idx_; }

  std::uint16_t used_idx() const {
    return std::atomic_ref<std::uint16_t>(*view_.as<std::uint16_t>(used_ + 2)).load(std::memory_order_acquire);
  }
  // The next used entry the test has not read, if the device published one.
  std::optional<virtio::UsedElement> pop_used() {
    if (used_idx() == last_used_) return std::nullopt;
    virtio::UsedElement e;
    std::memcpy(&e, view_.at(used_ + 4 + 8ull * (last_used_ % size_), 8), 8);
    ++last_used_;
    return e;
  }

  // What a device did before the test's device started: used entry `position` and the used index.
  void device_wrote_used(std::uint16_t position, std::uint32_t id, std::uint32_t len) {
    const virtio::UsedElement e{id, len};
    std::memcpy(view_.at(used_ + 4 + 8ull * (position % size_), 8), &e, 8);
  }
  void device_published_used(std::uint16_t idx) {
    std::atomic_ref<std::uint16_t>(*view_.as<std::uint16_t>(used_ + 2)).store(idx, std::memory_order_release);
  }

  const GuestView& view() const { return view_; }

 private:
  GuestView view_;
  std::uint64_t desc_, avail_, used_;
  std::uint16_t size_;
  std::uint16_t avail_idx_ = 0;
  std::uint16_t last_used_ = 0;
};

}  // namespace rf::test
