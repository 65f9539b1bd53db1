#include "virtio/inflight_split.h"

#include <algorithm>
#include <atomic>
#include <utility>

namespace rf::virtio {

namespace {

// SAFETY (for the accessors below): every pointer is into the queue's part of the mapped region,
// which the constructor's caller guarantees is inflight_queue_bytes(desc_num) bytes and outlives
// the object, at an offset the header's layout or an index checked against desc_num gives. The
// region is shared with other processes, so each word is loaded and stored once, atomically.
template <typename T>
T load(T& word) {
  return std::atomic_ref<T>(word).load(std::memory_order_acquire);
}
template <typename T>
void store(T& word, T value) {
  std::atomic_ref<T>(word).store(value, std::memory_order_release);
}

}  // namespace

InflightSplit::InflightSplit(std::byte* part, std::uint16_t desc_num) : part_(part), desc_num_(desc_num) {
  batch_.reserve(2 * std::size_t{desc_num});
}

InflightQueueHeader* InflightSplit::header() const {
  // SAFETY: see above; the part starts with the header.
  return reinterpret_cast<InflightQueueHeader*>(part_);
}

InflightDescState* InflightSplit::desc(std::uint16_t head) const {
  // SAFETY: see above; callers pass head < desc_num_.
  return reinterpret_cast<InflightDescState*>(part_ + sizeof(InflightQueueHeader)) + head;
}

InflightRecovery InflightSplit::recover(std::uint16_t ring_used_idx, std::uint32_t queue_size) {
  InflightRecovery out;
  out.used_idx = ring_used_idx;
  out.next_avail = ring_used_idx;
  InflightQueueHeader& h = *header();
  const std::uint32_t size = std::min<std::uint32_t>(queue_size, desc_num_);
  // Read once: a part written by another back-end with another layout is not followed.
  const std::uint16_t version = load(h.version);
  if (version != kInflightVersion || load(h.desc_num) != desc_num_) {
    out.unreadable = version != 0;
    store(h.version, std::uint16_t{0});
    store(h.features, std::uint64_t{0});
    store(h.desc_num, desc_num_);
    store(h.last_batch_head, std::uint16_t{0});
    for (std::uint32_t i = 0; i < desc_num_; ++i) {
      InflightDescState& d = *desc(static_cast<std::uint16_t>(i));
      store(d.inflight, std::uint8_t{0});
      store(d.next, std::uint16_t{0});
      store(d.counter, std::uint64_t{0});
    }
    store(h.used_idx, ring_used_idx);
    store(h.version, kInflightVersion);
    return out;
  }
  out.fresh = false;
  // The batch whose used entries were published but whose flags were not all cleared: as many
  // heads as the used index moved past the recorded one, linked from last_batch_head.
  const std::uint16_t recorded_used = load(h.used_idx);
  if (recorded_used != ring_used_idx) {
    const auto batch = static_cast<std::uint16_t>(ring_used_idx - recorded_used);
    std::uint16_t head = load(h.last_batch_head);
    for (std::uint32_t k = 0; k < batch && k < size; ++k) {
      if (head >= size) {
        ++out.ignored;
        break;
      }
      InflightDescState& d = *desc(head);
      if (load(d.inflight) != 0) {
        store(d.inflight, std::uint8_t{0});
        ++out.batch_cleared;
      }
      head = load(d.next);
    }
    store(h.used_idx, ring_used_idx);
  }
  std::vector<std::pair<std::uint64_t, std::uint16_t>> found;  // (counter, head)
  std::uint64_t highest = 0;
  for (std::uint32_t i = 0; i < desc_num_; ++i) {
    InflightDescState& d = *desc(static_cast<std::uint16_t>(i));
    const std::uint8_t flag = load(d.inflight);
    if (flag == 0) continue;
    if (flag != 1 || i >= size) {  // no head of this queue: forget it
      store(d.inflight, std::uint8_t{0});
      ++out.ignored;
      continue;
    }
    const std::uint64_t counter = load(d.counter);
    highest = std::max(highest, counter);
    found.emplace_back(counter, static_cast<std::uint16_t>(i));
  }
  std::sort(found.begin(), found.end());
  out.resubmit.reserve(found.size());
  for (const auto& [counter, head] : found) out.resubmit.push_back(head);
  out.next_avail = static_cast<std::uint16_t>(ring_used_idx + found.size());
  counter_ = highest + 1;
  return out;
}

void InflightSplit::taken(std::uint16_t head) {
  if (head >= desc_num_) return;  // read_chain refuses such a head before it is taken
  InflightDescState& d = *desc(head);
  store(d.counter, counter_++);
  store(d.inflight, std::uint8_t{1});
}

void InflightSplit::used(std::uint16_t head) {
  if (head >= desc_num_) return;
  store(desc(head)->next, load(header()->last_batch_head));
  store(header()->last_batch_head, head);
  batch_.push_back(head);
}

void InflightSplit::published(std::uint16_t used_idx) {
  for (const std::uint16_t head : batch_) store(desc(head)->inflight, std::uint8_t{0});
  batch_.clear();
  store(header()->used_idx, used_idx);
}

}  // namespace rf::virtio
