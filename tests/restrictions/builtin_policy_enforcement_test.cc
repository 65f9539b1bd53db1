// What the kernel enforces for each built-in policy, on the running kernel, in the ring shape
// of the policy's data path (passthrough: SQPOLL + rings in guest RAM; mediated: a private
// ring). These tests use the ring API directly and compare raw results with literal errno
// values; they do not rely on the demo's enforcement matrix.
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

#include "audit/audit_ring.h"
#include "restrictions/policy_compiler.h"
#include "restrictions/policy_loader.h"
#include "ring/probe.h"
#include "support/kernel_caps.h"
#include "support/test_ring.h"

namespace rf {
namespace {

constexpr std::uint32_t kBlock = 4096;

class BuiltinPolicyEnforcement : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    RF_REQUIRE(test::restrictions_feature());
    auto policy = policy::load_checked_policy(GetParam(), &running_kernel_opcode_support());
    ASSERT_TRUE(policy) << "built-in policy " << GetParam() << " does not check";
    set_ = policy::compile_policy(policy->policy);
    const bool passthrough = policy->policy.mode == policy::Mode::Passthrough;
    if (passthrough) {
      RF_REQUIRE(test::sqpoll_feature());
      RF_REQUIRE(test::no_mmap_feature());
    }
    auto audit = AuditRing::create(set_, passthrough ? RingShape::GuestShared : RingShape::Private);
    ASSERT_TRUE(audit) << audit.error().message;
    audit_.emplace(std::move(*audit));
  }

  int run(const Sqe& sqe) { return test::run_one(audit_->ring(), sqe); }

  RestrictionSet set_;
  std::optional<AuditRing> audit_;
};

TEST_P(BuiltinPolicyEnforcement, EveryOpcodeThePolicyDoesNotAllowCompletesWithEacces) {
  const auto& kernel = running_kernel_opcode_support();
  int denied = 0;
  for (unsigned op = 0; op < 256; ++op) {
    if (!kernel.sqe_ops.test(op) || set_.allows(static_cast<SqeOpcode>(op))) continue;
    Sqe sqe;
    sqe.opcode = static_cast<SqeOpcode>(op);
    sqe.flags = sqe_flag::kFixedFile;  // satisfy the flag rule so the opcode alone is refused
    sqe.user_data = op;
    EXPECT_EQ(run(sqe), -EACCES) << sqe_opcode_label(op);
    ++denied;
  }
  EXPECT_EQ(denied, static_cast<int>(kernel.sqe_ops.count() - set_.allowed_sqe_op_count()));
}

TEST_P(BuiltinPolicyEnforcement, OpcodesBeyondTheKernelsLastAreInvalid) {
  unsigned last = 0;
  for (unsigned op = 0; op < 256; ++op) {
    if (running_kernel_opcode_support().sqe_ops.test(op)) last = op;
  }
  Sqe sqe;
  sqe.opcode = static_cast<SqeOpcode>(last + 1);
  sqe.flags = sqe_flag::kFixedFile;
  EXPECT_EQ(run(sqe), -EINVAL);
  sqe.opcode = static_cast<SqeOpcode>(255);
  EXPECT_EQ(run(sqe), -EINVAL);
}

TEST_P(BuiltinPolicyEnforcement, EveryRegisterOpcodeAfterEnableReturnsEacces) {
  const unsigned count = running_kernel_opcode_support().register_op_count;
  ASSERT_GT(count, static_cast<unsigned>(to_u8(RegisterOpcode::RegisterEnableRings)));
  for (unsigned op = 0; op < count; ++op) {
    ASSERT_FALSE(set_.allows(static_cast<RegisterOpcode>(op)));  // built-ins allow none
    EXPECT_EQ(audit_->ring().probe_register_opcode(op), -EACCES) << register_opcode_label(op);
  }
}

TEST_P(BuiltinPolicyEnforcement, SqeWithoutFixedFileIsDenied) {
  // A raw descriptor naming the real disk: without the FIXED_FILE requirement this would read.
  Sqe sqe = Sqe::read_fixed(FileRef::raw(audit_->disk_fd()), audit_->buffer(), kBlock, 0, audit_->buffer_index());
  ASSERT_EQ(sqe.flags, 0);
  EXPECT_EQ(run(sqe), -EACCES);
}

TEST_P(BuiltinPolicyEnforcement, EachFlagThePolicyDoesNotAllowIsRefused) {
  for (std::uint8_t flag : {sqe_flag::kIoDrain, sqe_flag::kIoLink, sqe_flag::kIoHardlink, sqe_flag::kAsync,
                            sqe_flag::kCqeSkipSuccess}) {
    EXPECT_EQ(run(audit_->read_fixed(0, kBlock).with_flags(flag)), -EACCES) << sqe_flags_label(flag);
  }
  // The kernel rejects BUFFER_SELECT on an opcode that cannot select a buffer (READ_FIXED)
  // before it evaluates restrictions; BufferSelectIsARestriction below shows the restriction.
  EXPECT_EQ(run(audit_->read_fixed(0, kBlock).with_flags(sqe_flag::kBufferSelect)), -EOPNOTSUPP);
}

TEST_P(BuiltinPolicyEnforcement, ReadFixedOutsideTheRegisteredBufferFaults) {
  EXPECT_EQ(run(audit_->read_fixed(0, kBlock)), static_cast<int>(kBlock));  // inside: fine
  EXPECT_EQ(run(audit_->read_fixed(0, kBlock, AuditRing::kBufferBytes - kBlock)), static_cast<int>(kBlock));  // last block
  EXPECT_EQ(run(audit_->read_fixed(0, kBlock, AuditRing::kBufferBytes)), -EFAULT);         // just past the end
  EXPECT_EQ(run(audit_->read_fixed(0, kBlock, AuditRing::kBufferBytes - 512)), -EFAULT);   // across the end
  Sqe before = Sqe::read_fixed(FileRef::fixed({0}), audit_->buffer() - kBlock, kBlock, 0, audit_->buffer_index());
  EXPECT_EQ(run(before), -EFAULT);                                                          // before the start
  Sqe bad_index = audit_->read_fixed(0, kBlock);
  bad_index.buf_index = 1;
  EXPECT_EQ(run(bad_index), -EFAULT);                                                       // index out of range
  bad_index.buf_index = 0xffff;
  EXPECT_EQ(run(bad_index), -EFAULT);
}

TEST_P(BuiltinPolicyEnforcement, FixedFileIndexOutOfRangeIsEbadf) {
  Sqe sqe = audit_->read_fixed(0, kBlock);
  sqe.fd = 1;
  EXPECT_EQ(run(sqe), -EBADF);
  sqe.fd = -1;
  EXPECT_EQ(run(sqe), -EBADF);
}

TEST_P(BuiltinPolicyEnforcement, WritesRoundTripOrAreRefused) {
  constexpr std::uint64_t kOffset = 12 * kBlock;
  std::array<std::byte, kBlock> pattern{};
  for (std::uint32_t i = 0; i < kBlock; ++i) pattern[i] = static_cast<std::byte>(i * 13 + 1);
  std::array<std::byte, kBlock> on_disk{};

  if (set_.allows(SqeOpcode::WriteFixed)) {
    std::memcpy(audit_->buffer(), pattern.data(), kBlock);
    ASSERT_EQ(run(audit_->write_fixed(kOffset, kBlock)), static_cast<int>(kBlock));
    std::memset(audit_->buffer(), 0, kBlock);
    ASSERT_EQ(run(audit_->read_fixed(kOffset, kBlock)), static_cast<int>(kBlock));
    ASSERT_EQ(::pread(audit_->disk_fd(), on_disk.data(), kBlock, kOffset), static_cast<ssize_t>(kBlock));
    EXPECT_EQ(std::memcmp(on_disk.data(), pattern.data(), kBlock), 0) << "pread disagrees with WRITE_FIXED";
    EXPECT_EQ(std::memcmp(audit_->buffer(), pattern.data(), kBlock), 0) << "READ_FIXED disagrees with WRITE_FIXED";
  } else {
    // Read-only: the host writes, READ_FIXED sees it, WRITE_FIXED is refused and changes nothing.
    ASSERT_EQ(::pwrite(audit_->disk_fd(), pattern.data(), kBlock, kOffset), static_cast<ssize_t>(kBlock));
    ASSERT_EQ(run(audit_->read_fixed(kOffset, kBlock)), static_cast<int>(kBlock));
    EXPECT_EQ(std::memcmp(audit_->buffer(), pattern.data(), kBlock), 0);
    std::memset(audit_->buffer(), 0xee, kBlock);
    EXPECT_EQ(run(audit_->write_fixed(kOffset, kBlock)), -EACCES);
    EXPECT_EQ(run(Sqe::fsync(FileRef::fixed({0}))), -EACCES);
    ASSERT_EQ(::pread(audit_->disk_fd(), on_disk.data(), kBlock, kOffset), static_cast<ssize_t>(kBlock));
    EXPECT_EQ(std::memcmp(on_disk.data(), pattern.data(), kBlock), 0) << "a refused write changed the disk";
  }
}

INSTANTIATE_TEST_SUITE_P(Builtins, BuiltinPolicyEnforcement,
                         ::testing::Values("blk-passthrough", "blk-passthrough-ro", "blk-mediated", "blk-virtio"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           for (char& c : name) c = c == '-' ? '_' : c;
                           return name;
                         });

// BUFFER_SELECT as a restriction: on an opcode that can select buffers (READ), the kernel's
// per-opcode check passes and the restriction refuses the flag with -EACCES.
TEST(BufferSelectRestriction, IsRefusedWithEaccesOnAnOpcodeThatCanSelect) {
  RF_REQUIRE(test::restrictions_feature());
  UniqueFd disk = test::make_memfd(1 << 16);
  auto disabled = DisabledRing::create(RingOptions{});
  ASSERT_TRUE(disabled);
  const int files[] = {disk.get()};
  ASSERT_TRUE(disabled->register_files(files));
  auto restricted = std::move(*disabled).restrict(RestrictionSet{}.allow(SqeOpcode::Read).require_flags(sqe_flag::kFixedFile));
  ASSERT_TRUE(restricted);
  auto ring = std::move(*restricted).enable();
  ASSERT_TRUE(ring) << ring.error().message;
  Sqe read;
  read.opcode = SqeOpcode::Read;
  read.flags = sqe_flag::kFixedFile | sqe_flag::kBufferSelect;
  read.len = kBlock;
  EXPECT_EQ(test::run_one(*ring, read), -EACCES);
}

// A kernel fact `ringfence fuzz` found (docs/threat-model.md): the kernel applies an SQE's link
// and CQE-skip flags even when the restrictions deny the SQE. A denied link head with
// IOSQE_CQE_SKIP_SUCCESS completes with -EACCES, and every SQE linked after it is cancelled
// with no CQE at all: three SQEs, one CQE. The guest only hides its own completions (nothing
// runs), but "every SQE gets exactly one CQE" does not hold for a restricted ring, so the
// fuzzer counts such episodes as inexact. If a kernel changes this, this test says so.
TEST(RestrictedRingKernelFacts, ADeniedLinkHeadWithCqeSkipSuccessHidesItsChainsCompletions) {
  RF_REQUIRE(test::restrictions_feature());
  RestrictionSet set;
  set.allow(SqeOpcode::Nop);  // and no flag at all
  auto ring = test::make_ring(set);
  ASSERT_TRUE(ring) << ring.error().message;
  Sqe head = Sqe::nop().with_user_data(1).with_flags(sqe_flag::kIoLink | sqe_flag::kCqeSkipSuccess);
  Sqe middle = Sqe::nop().with_user_data(2).with_flags(sqe_flag::kIoLink);
  Sqe last = Sqe::nop().with_user_data(3);
  ASSERT_TRUE(ring->try_push(head) && ring->try_push(middle) && ring->try_push(last));
  auto submitted = ring->submit();
  ASSERT_TRUE(submitted) << submitted.error().message;
  EXPECT_EQ(*submitted, 3u);
  auto first = ring->wait_completion(test::kWait);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->user_data, 1u);
  EXPECT_EQ(first->res, -EACCES);
  ::usleep(50'000);
  EXPECT_FALSE(ring->pop_completion()) << "the linked SQEs completed: the kernel no longer hides their CQEs";
}

}  // namespace
}  // namespace rf
