// What a guest driver may rely on in each mode (docs/abi.md, "What a driver may rely on"): one
// test per statement of that table, run in both modes, each asserting what the table says for
// the mode. Where the modes differ, the test says so in its expectations; a change to either
// mode's behaviour fails here and sends the author to the table.
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

#include "device_fixture.h"

namespace rf {
namespace {

using test::kScratch;

class AbiContractTest : public test::DeviceFixture, public ::testing::WithParamInterface<abi::Mode> {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(require(GetParam()));
    test::DeviceSetup setup;
    setup.mode = GetParam();
    ASSERT_NO_FATAL_FAILURE(TestDevice::start(setup));
  }
  bool passthrough() const { return GetParam() == abi::Mode::Passthrough; }
  // A ring word, loaded as a guest loads it (the device writes it from its own thread).
  std::uint32_t ring_word(std::uint64_t gpa) {
    // SAFETY: the descriptor's ring words are 4-aligned u32s inside guest RAM (the driver checked
    // at attach).
    return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(host(gpa))).load(std::memory_order_acquire);
  }
  // A raw SQE on disk 0 for data at `gpa`, in the mode's address space.
  abi::GuestSqe sqe(std::uint8_t opcode, std::uint64_t gpa, std::uint64_t offset, std::uint32_t len) {
    abi::GuestSqe s = raw(opcode, sqe_addr(gpa), offset);
    s.len = len;
    return s;
  }
};

// Row 1: the rings are empty at attach (head == tail on both), but their indices need not be 0:
// passthrough's self-check has already been through the kernel's ring. A driver starts from the
// words it reads, as the reference driver does.
TEST_P(AbiContractTest, RingIndicesStartWhereTheRingWordsSayNotAtZero) {
  const abi::RingGeometry& g = driver_.header().ring;
  const std::uint32_t sq_head = ring_word(g.sq_head);
  const std::uint32_t cq_head = ring_word(g.cq_head);
  EXPECT_EQ(sq_head, ring_word(g.sq_tail));
  EXPECT_EQ(cq_head, ring_word(g.cq_tail));
  if (passthrough()) {
    EXPECT_EQ(sq_head, 1u) << "the self-check's probe SQE went through this ring";
    EXPECT_EQ(cq_head, 1u);
  } else {
    EXPECT_EQ(sq_head, 0u);
    EXPECT_EQ(cq_head, 0u);
  }
  // And a driver that starts there works.
  EXPECT_EQ(one({guest::Op::Read, 0, 0, kScratch, 4096, 1}).result, 4096);
  EXPECT_EQ(ring_word(g.sq_head), sq_head + 1);
}

// Row 2: an SQE longer than the disk's max_transfer. Mediated refuses it (rule 6); passthrough
// hands it to the kernel, which moves it.
TEST_P(AbiContractTest, AnSqeLongerThanMaxTransfer) {
  const std::uint32_t len = driver_.disk(0).max_transfer * 2;
  ASSERT_LE(len, test::kFixtureDisk);
  const guest::Completion c = one_raw(sqe(abi::kOpReadFixed, kScratch - len, 0, len));
  EXPECT_EQ(c.result, passthrough() ? static_cast<std::int32_t>(len) : -EMSGSIZE);
}

// Row 3: a read or write of length 0. Mediated refuses it (rule 6); the kernel completes it with 0.
TEST_P(AbiContractTest, AZeroLengthTransfer) {
  EXPECT_EQ(one_raw(sqe(abi::kOpReadFixed, kScratch, 0, 0)).result, passthrough() ? 0 : -EMSGSIZE);
}

// Row 4: an SQE without IOSQE_FIXED_FILE: -EACCES from the kernel's restriction, -EPERM from the
// mediator's flags rule.
TEST_P(AbiContractTest, AnSqeWithoutFixedFile) {
  abi::GuestSqe s = sqe(abi::kOpReadFixed, kScratch, 0, 4096);
  s.flags = 0;
  EXPECT_EQ(one_raw(s).result, passthrough() ? -EACCES : -EPERM);
  s.flags = abi::kSqeFixedFile | 0x40;  // another flag beside it
  EXPECT_EQ(one_raw(s).result, passthrough() ? -EACCES : -EPERM);
}

// Row 5: FSYNC with addr (or buf_index) set: the kernel refuses it, the mediator ignores every
// field but the disk. A range (off, len) is the kernel's sync range; the mediator syncs it all.
TEST_P(AbiContractTest, AnFsyncWithFieldsSet) {
  abi::GuestSqe s = raw(abi::kOpFsync, 0, 0);
  s.len = 0;
  EXPECT_EQ(one_raw(s).result, 0);
  s.addr = 0x1000;
  EXPECT_EQ(one_raw(s).result, passthrough() ? -EINVAL : 0);
  s.addr = 0;
  s.buf_index = 1;
  EXPECT_EQ(one_raw(s).result, passthrough() ? -EINVAL : 0);
  s.buf_index = 0;
  s.off = 4096;
  s.len = 4096;
  EXPECT_EQ(one_raw(s).result, 0) << "a range is accepted by both";
}

// Row 6: rw_flags. The kernel acts on them (an unknown flag is -EOPNOTSUPP); the mediator never
// passes them on.
TEST_P(AbiContractTest, RwFlagsReachTheKernelOnlyInPassthrough) {
  abi::GuestSqe s = sqe(abi::kOpReadFixed, kScratch, 0, 4096);
  s.op_flags = 0x80000000u;  // rw_flags: no RWF_ flag has this bit
  EXPECT_EQ(one_raw(s).result, passthrough() ? -EOPNOTSUPP : 4096);
}

// Row 7: the doorbell is an eventfd: a driver rings it with an 8-byte write of a non-zero value
// (a KVM VMM's ioeventfd takes any write of the registered width). Anything shorter is refused.
TEST_P(AbiContractTest, TheDoorbellIsAnEightByteWrite) {
  const std::uint32_t four = 1;
  EXPECT_EQ(::write(device_->kick_fd(), &four, sizeof four), -1);
  EXPECT_EQ(errno, EINVAL);
  const std::uint64_t eight = 1;
  EXPECT_EQ(::write(device_->kick_fd(), &eight, sizeof eight), 8);
}

// Row 8: the device window lies inside a buffer window, so a guest can move disk data into its own
// descriptor (and rings). That is its own memory: the VMM never reads the descriptor back, and the
// device goes on serving it.
TEST_P(AbiContractTest, TheDeviceWindowIsInsideABufferWindow) {
  const std::uint64_t descriptor = device_->descriptor_address().value();
  bool inside = false;
  for (std::uint32_t i = 0; i < driver_.window_count(); ++i) {
    const abi::WindowEntry& w = driver_.window(i);
    inside = inside || (descriptor >= w.gpa && descriptor + device_->device_window_bytes() <= w.gpa + w.length);
  }
  EXPECT_TRUE(inside);
  std::memset(host(kScratch), 0, 4096);
  ASSERT_EQ(one({guest::Op::Write, 0, 0, kScratch, 4096, 1}).result, 4096);  // zeros on the disk
  EXPECT_EQ(one_raw(sqe(abi::kOpReadFixed, descriptor, 0, 4096)).result, 4096) << "read into the descriptor";
  std::uint64_t magic = 1;
  std::memcpy(&magic, host(descriptor), sizeof magic);
  EXPECT_EQ(magic, 0u) << "the guest's read landed on its descriptor";
  EXPECT_EQ(one({guest::Op::Read, 0, 4096, kScratch, 4096, 2}).result, 4096) << "and the device still serves it";
  EXPECT_EQ(device_->broken().reason, BrokenReason::None);
}

INSTANTIATE_TEST_SUITE_P(BothModes, AbiContractTest, ::testing::Values(abi::Mode::Passthrough, abi::Mode::Mediated),
                         test::mode_param_name);

}  // namespace
}  // namespace rf
