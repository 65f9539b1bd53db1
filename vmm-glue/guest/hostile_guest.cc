#include "guest/hostile_guest.h"

#include "util/cpu_relax.h"

namespace rf::guest {

namespace {

// The program, copied once: later reads into guest RAM cannot change what runs.
FuzzAction g_program[kFuzzMaxActions];

std::uint32_t load_acquire(const std::uint32_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
std::uint32_t load_relaxed(const std::uint32_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
void store_release(std::uint32_t* p, std::uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
void store_relaxed(std::uint32_t* p, std::uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

// Word by word (no memcpy in a freestanding object), each word stored once.
void copy_words(std::uint64_t* to, const std::uint64_t* from, std::uint64_t words) {
  for (std::uint64_t i = 0; i < words; ++i) __atomic_store_n(&to[i], __atomic_load_n(&from[i], __ATOMIC_RELAXED), __ATOMIC_RELAXED);
}

void write_sqe(abi::GuestSqe* slot, const abi::GuestSqe& sqe) {
  // SAFETY: GuestSqe is 64 bytes of plain integers, 8-aligned in both places.
  copy_words(reinterpret_cast<std::uint64_t*>(slot), reinterpret_cast<const std::uint64_t*>(&sqe),
             sizeof(abi::GuestSqe) / 8);
}

void classify(std::int32_t res, FuzzGuestReport& report) {
  if (res >= 0) {
    ++report.res_ok;
  } else if (res == -13) {
    ++report.res_eacces;
  } else if (res == -14) {
    ++report.res_efault;
  } else if (res == -22) {
    ++report.res_einval;
  } else if (res == -9) {
    ++report.res_ebadf;
  } else if (res == -28 || res == -6) {
    ++report.res_enospc_enxio;
  } else {
    ++report.res_other;
  }
}

struct Rings {
  std::uint32_t* words[static_cast<std::uint32_t>(FuzzField::Count)] = {};
  std::uint32_t* index = nullptr;  // null without an index array
  abi::GuestSqe* sqes = nullptr;
  const abi::GuestCqe* cqes = nullptr;
  std::uint32_t sq_mask = 0, cq_mask = 0, cq_entries = 0;
};

bool find_rings(const Driver& driver, Rings& r) {
  const abi::RingGeometry& g = driver.header().ring;
  const std::uint64_t addresses[] = {g.sq_head, g.sq_tail, g.sq_flags, g.sq_dropped,
                                     g.cq_head, g.cq_tail, g.cq_flags, g.cq_overflow};
  for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(FuzzField::Count); ++i) {
    // SAFETY: guest_pointer checks the word lies in guest memory; attach() checked alignment.
    r.words[i] = reinterpret_cast<std::uint32_t*>(driver.guest_pointer(addresses[i], 4));
    if (r.words[i] == nullptr) return false;
  }
  if (g.sq_array != 0) {
    // SAFETY: guest_pointer returns null unless the whole array lies in guest memory; attach()
    // checked that the descriptor's arrays are aligned for their entries.
    r.index = reinterpret_cast<std::uint32_t*>(driver.guest_pointer(g.sq_array, std::uint64_t{g.sq_entries} * 4));
  }
  // SAFETY: as for the index array.
  r.sqes = reinterpret_cast<abi::GuestSqe*>(driver.guest_pointer(g.sqes, std::uint64_t{g.sq_entries} * abi::kSqeBytes));
  // SAFETY: as for the index array.
  r.cqes = reinterpret_cast<const abi::GuestCqe*>(driver.guest_pointer(g.cqes, std::uint64_t{g.cq_entries} * abi::kCqeBytes));
  r.sq_mask = g.sq_entries - 1;
  r.cq_mask = g.cq_entries - 1;
  r.cq_entries = g.cq_entries;
  return r.sqes != nullptr && r.cqes != nullptr && (g.sq_array == 0 || r.index != nullptr);
}

}  // namespace

const char* fuzz_status_name(FuzzStatus status) {
  switch (status) {
    case FuzzStatus::Ok: return "ok";
    case FuzzStatus::NoProgram: return "no valid program in guest memory";
    case FuzzStatus::BadAction: return "an action with an unknown op or field";
    case FuzzStatus::Stalled: return "the device stopped taking SQEs (the guest gave up waiting for room)";
  }
  return "unknown";
}

FuzzStatus run_fuzz_program(const Driver& driver, const Platform& platform, std::uint64_t program_gpa,
                            FuzzGuestReport& report) {
  report = FuzzGuestReport{};
  Rings rings;
  // SAFETY: guest_pointer returns null unless the whole header lies in guest memory; the 8-byte alignment is
  // checked below before any field is read.
  const auto* header = reinterpret_cast<const FuzzProgramHeader*>(driver.guest_pointer(program_gpa, sizeof(FuzzProgramHeader)));
  if (header == nullptr || program_gpa % 8 != 0 || header->magic != kFuzzProgramMagic || header->count > kFuzzMaxActions ||
      !find_rings(driver, rings)) {
    report.status = FuzzStatus::NoProgram;
    return report.status;
  }
  const std::uint32_t count = header->count;
  const unsigned char* actions = driver.guest_pointer(program_gpa + sizeof(FuzzProgramHeader), std::uint64_t{count} * sizeof(FuzzAction));
  if (actions == nullptr) {
    report.status = FuzzStatus::NoProgram;
    return report.status;
  }
  // SAFETY: both spans hold `count` 80-byte, 8-aligned actions (checked just above).
  copy_words(reinterpret_cast<std::uint64_t*>(g_program), reinterpret_cast<const std::uint64_t*>(actions),
             std::uint64_t{count} * sizeof(FuzzAction) / 8);

  std::uint32_t* const* w = rings.words;
  std::uint32_t tail = load_relaxed(w[static_cast<std::uint32_t>(FuzzField::SqTail)]);
  std::uint32_t cq_head = load_relaxed(w[static_cast<std::uint32_t>(FuzzField::CqHead)]);
  for (std::uint32_t i = 0; i < count; ++i) {
    const FuzzAction& a = g_program[i];
    switch (static_cast<FuzzOp>(a.op)) {
      case FuzzOp::PutSqe: {
        if (a.field == kPutWaitsForRoom) {
          std::uint64_t spins = 0;
          while (tail - load_acquire(w[static_cast<std::uint32_t>(FuzzField::SqHead)]) >= rings.sq_mask + 1) {
            if (++spins == kFuzzRoomSpins) {
              report.status = FuzzStatus::Stalled;
              report.bad_action = i;
              return report.status;
            }
            cpu_relax();
          }
        }
        const std::uint32_t slot = tail & rings.sq_mask;
        write_sqe(&rings.sqes[slot], a.sqe);
        if (rings.index != nullptr) store_relaxed(&rings.index[slot], slot);
        ++tail;
        ++report.sqes_put;
        break;
      }
      case FuzzOp::Publish:
        store_release(w[static_cast<std::uint32_t>(FuzzField::SqTail)], tail);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if ((load_relaxed(w[static_cast<std::uint32_t>(FuzzField::SqFlags)]) & abi::kSqFlagNeedWakeup) != 0) {
          platform.kick(platform.context);
          ++report.kicks;
        }
        break;
      case FuzzOp::SetSqTail:
        tail = static_cast<std::uint32_t>(a.value);
        store_release(w[static_cast<std::uint32_t>(FuzzField::SqTail)], tail);
        break;
      case FuzzOp::Scribble:
        if (a.field >= static_cast<std::uint32_t>(FuzzField::Count)) {
          report.status = FuzzStatus::BadAction;
          report.bad_action = i;
          return report.status;
        }
        store_relaxed(w[a.field], static_cast<std::uint32_t>(a.value));
        // The guest adopts the values it forces on its own indices.
        if (a.field == static_cast<std::uint32_t>(FuzzField::SqTail)) tail = static_cast<std::uint32_t>(a.value);
        if (a.field == static_cast<std::uint32_t>(FuzzField::CqHead)) cq_head = static_cast<std::uint32_t>(a.value);
        break;
      case FuzzOp::ScribbleSqe:
        write_sqe(&rings.sqes[a.value & rings.sq_mask], a.sqe);
        break;
      case FuzzOp::SetIndex:
        if (rings.index != nullptr) store_relaxed(&rings.index[a.field & rings.sq_mask], static_cast<std::uint32_t>(a.value));
        break;
      case FuzzOp::Reap: {
        std::uint32_t ready = load_acquire(w[static_cast<std::uint32_t>(FuzzField::CqTail)]) - cq_head;
        if (ready > rings.cq_entries) ready = rings.cq_entries;  // a hostile guest, not a looping one
        const std::uint32_t take = a.value < ready ? static_cast<std::uint32_t>(a.value) : ready;
        for (std::uint32_t k = 0; k < take; ++k) classify(rings.cqes[(cq_head + k) & rings.cq_mask].res, report);
        cq_head += take;
        report.cqes_seen += take;
        store_release(w[static_cast<std::uint32_t>(FuzzField::CqHead)], cq_head);
        break;
      }
      case FuzzOp::Kick:
        platform.kick(platform.context);
        ++report.kicks;
        break;
      case FuzzOp::Pause:
        for (std::uint64_t k = 0; k < a.value && k < 1'000'000; ++k) cpu_relax();
        break;
      default:
        report.status = FuzzStatus::BadAction;
        report.bad_action = i;
        return report.status;
    }
    ++report.actions;
  }
  return report.status;
}

}  // namespace rf::guest
