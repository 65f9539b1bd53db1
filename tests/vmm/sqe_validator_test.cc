// Every rule of the mediator's SQE check at its boundary: the last value that passes and the
// first that does not, with the rule (and so the errno) that refuses it.
#include "mediated/sqe_validator.h"
#include "memory/guest_memory_builder.h"

#include <cerrno>
#include <optional>

#include <gtest/gtest.h>

#include "restrictions/policy_compiler.h"
#include "restrictions/policy_loader.h"
#include "util/address.h"

namespace rf {
namespace {

const std::uint64_t kPage = page_size();

class SqeValidatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto policy = policy::load_policy("blk-mediated");
    ASSERT_TRUE(policy);
    policy_ = policy::compile_policy(*policy);
    // Two adjacent regions (0..8 pages, 8..16 pages), a gap, a read-only region (32..36 pages);
    // fixed-buffer pieces of 4 pages, so 4 pieces in all.
    const RegionLayout layout[] = {{GuestAddress{0}, 8 * kPage, false},
                                   {GuestAddress{8 * kPage}, 8 * kPage, false},
                                   {GuestAddress{32 * kPage}, 4 * kPage, true}};
    auto memory = GuestMemoryBuilder::create(layout, MemoryBacking::Anonymous, 4 * kPage);
    ASSERT_TRUE(memory);
    memory_ = std::move(*memory);
    context_ = ValidationContext{&policy_, disks_, memory_.get(), 8 * 1024};
  }

  static abi::GuestSqe sqe(std::uint8_t op, std::uint32_t disk, std::uint64_t off, std::uint64_t addr,
                           std::uint32_t len) {
    abi::GuestSqe s{};
    s.opcode = op;
    s.flags = abi::kSqeFixedFile;
    s.fd = static_cast<std::int32_t>(disk);
    s.off = off;
    s.addr = addr;
    s.len = len;
    return s;
  }
  std::optional<RefusalRule> refusal(const abi::GuestSqe& s) const {
    auto r = validate_guest_sqe(s, context_);
    if (r) return std::nullopt;
    return r.error();
  }

  RestrictionSet policy_;
  const DiskLimits disks_[2] = {{1 << 20, 512, false}, {1 << 20, 4096, true}};
  GuestMemoryMap memory_;
  ValidationContext context_;
};

constexpr std::uint8_t kRead = abi::kOpReadFixed;
constexpr std::uint8_t kWrite = abi::kOpWriteFixed;

TEST_F(SqeValidatorTest, AValidReadBecomesAHostRequestInTheRightBuffer) {
  auto r = validate_guest_sqe(sqe(kRead, 0, 4096, 5 * kPage + 512, 1024), context_);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->op, SqeOpcode::ReadFixed);
  EXPECT_EQ(r->disk.value, 0u);
  EXPECT_EQ(r->offset, 4096u);
  EXPECT_EQ(r->len, 1024u);
  EXPECT_EQ(r->host, memory_->regions()[0].host + 5 * kPage + 512);
  EXPECT_EQ(r->buffer.value, 1u);  // the second 4-page piece of region 0
  const Sqe k = kernel_sqe(*r);
  EXPECT_EQ(k.opcode, SqeOpcode::ReadFixed);
  EXPECT_EQ(k.flags, abi::kSqeFixedFile);
  EXPECT_EQ(k.addr, address_of(r->host));
  EXPECT_EQ(k.buf_index, 1u);
}

TEST_F(SqeValidatorTest, Rule1Opcode) {
  for (int op = 0; op < 256; ++op) {
    const bool block_op = op == abi::kOpReadFixed || op == abi::kOpWriteFixed || op == abi::kOpFsync;
    const auto r = refusal(sqe(static_cast<std::uint8_t>(op), 0, 0, 0, 512));
    if (block_op) {
      EXPECT_NE(r, RefusalRule::Opcode) << "opcode " << op;
    } else {
      EXPECT_EQ(r, RefusalRule::Opcode) << "opcode " << op;
    }
  }
  // An opcode the policy allows but the mediator does not implement is refused too.
  RestrictionSet wide = policy_;
  wide.allow(SqeOpcode::Read);
  ValidationContext ctx = context_;
  ctx.policy = &wide;
  auto r = validate_guest_sqe(sqe(static_cast<std::uint8_t>(SqeOpcode::Read), 0, 0, 0, 512), ctx);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), RefusalRule::Opcode);
  EXPECT_EQ(refusal_errno(RefusalRule::Opcode), -EACCES);
}

TEST_F(SqeValidatorTest, Rule2Flags) {
  for (int flags = 0; flags < 256; ++flags) {
    abi::GuestSqe s = sqe(kRead, 0, 0, 0, 512);
    s.flags = static_cast<std::uint8_t>(flags);
    if (flags == abi::kSqeFixedFile) {
      EXPECT_EQ(refusal(s), std::nullopt);
    } else {
      EXPECT_EQ(refusal(s), RefusalRule::Flags) << "flags " << flags;
    }
  }
  EXPECT_EQ(refusal_errno(RefusalRule::Flags), -EPERM);
}

TEST_F(SqeValidatorTest, Rule3FileIndex) {
  EXPECT_EQ(refusal(sqe(kRead, 1, 0, 0, 4096)), std::nullopt);  // the last disk
  EXPECT_EQ(refusal(sqe(kRead, 2, 0, 0, 4096)), RefusalRule::FileIndex);
  abi::GuestSqe negative = sqe(kRead, 0, 0, 0, 4096);
  negative.fd = -1;
  EXPECT_EQ(refusal(negative), RefusalRule::FileIndex);
  EXPECT_EQ(refusal(sqe(abi::kOpFsync, 2, 0, 0, 0)), RefusalRule::FileIndex);
  EXPECT_EQ(refusal_errno(RefusalRule::FileIndex), -EBADF);
}

TEST_F(SqeValidatorTest, Rule4ReadOnlyDisk) {
  EXPECT_EQ(refusal(sqe(kWrite, 1, 0, 0, 4096)), RefusalRule::ReadOnly);
  EXPECT_EQ(refusal(sqe(kRead, 1, 0, 0, 4096)), std::nullopt);
  EXPECT_EQ(refusal(sqe(abi::kOpFsync, 1, 0, 0, 0)), std::nullopt);
  EXPECT_EQ(refusal_errno(RefusalRule::ReadOnly), -EROFS);
}

TEST_F(SqeValidatorTest, Rule5RangeWithCheckedArithmetic) {
  EXPECT_EQ(refusal(sqe(kRead, 0, (1 << 20) - 512, 0, 512)), std::nullopt);  // ends exactly at the end
  EXPECT_EQ(refusal(sqe(kRead, 0, (1 << 20) - 512, 0, 1024)), RefusalRule::Range);
  EXPECT_EQ(refusal(sqe(kRead, 0, 1 << 20, 0, 512)), RefusalRule::Range);
  EXPECT_EQ(refusal(sqe(kRead, 0, UINT64_MAX - 511, 0, 512)), RefusalRule::Range);  // off + len wraps to 0
  EXPECT_EQ(refusal(sqe(kRead, 0, UINT64_MAX, 0, 512)), RefusalRule::Range);
  EXPECT_EQ(refusal_errno(RefusalRule::Range), -ENXIO);
}

TEST_F(SqeValidatorTest, Rule6Length) {
  EXPECT_EQ(refusal(sqe(kRead, 0, 0, 0, 0)), RefusalRule::Length);
  EXPECT_EQ(refusal(sqe(kRead, 0, 0, 0, 8 * 1024)), std::nullopt);  // the max transfer
  EXPECT_EQ(refusal(sqe(kRead, 0, 0, 0, 8 * 1024 + 512)), RefusalRule::Length);
  EXPECT_EQ(refusal_errno(RefusalRule::Length), -EMSGSIZE);
}

TEST_F(SqeValidatorTest, Rule7Alignment) {
  EXPECT_EQ(refusal(sqe(kRead, 0, 512, 0, 512)), std::nullopt);
  EXPECT_EQ(refusal(sqe(kRead, 0, 511, 0, 512)), RefusalRule::Alignment);
  EXPECT_EQ(refusal(sqe(kRead, 0, 0, 0, 513)), RefusalRule::Alignment);
  EXPECT_EQ(refusal(sqe(kRead, 1, 512, 0, 4096)), RefusalRule::Alignment);  // disk 1 has 4 KiB blocks
  EXPECT_EQ(refusal(sqe(kRead, 1, 4096, 0, 4096)), std::nullopt);
  EXPECT_EQ(refusal_errno(RefusalRule::Alignment), -EINVAL);
}

TEST_F(SqeValidatorTest, Rule8GuestMemory) {
  // The last bytes of RAM before the gap, then one byte into the gap.
  EXPECT_EQ(refusal(sqe(kRead, 0, 0, 16 * kPage - 512, 512)), std::nullopt);
  EXPECT_EQ(refusal(sqe(kRead, 0, 0, 16 * kPage - 511, 512)), RefusalRule::Memory);
  EXPECT_EQ(refusal(sqe(kRead, 0, 0, 20 * kPage, 512)), RefusalRule::Memory);   // in the gap
  EXPECT_EQ(refusal(sqe(kRead, 0, 0, UINT64_MAX - 511, 512)), RefusalRule::Memory);  // addr + len wraps
  // Across two adjacent regions, and across two fixed-buffer pieces of one region: refused, not split.
  EXPECT_EQ(refusal(sqe(kRead, 0, 0, 8 * kPage - 512, 1024)), RefusalRule::Memory);
  EXPECT_EQ(refusal(sqe(kRead, 0, 0, 4 * kPage - 512, 1024)), RefusalRule::Memory);
  // A read-only region may be read by the device (a disk write), not written (a disk read).
  EXPECT_EQ(refusal(sqe(kRead, 0, 0, 32 * kPage, 512)), RefusalRule::Memory);
  EXPECT_EQ(refusal_errno(RefusalRule::Memory), -EFAULT);
}

TEST_F(SqeValidatorTest, RulesApplyInTheirFixedOrder) {
  // Everything wrong at once: the opcode rule wins; then each rule in turn once the earlier
  // ones are satisfied.
  abi::GuestSqe s = sqe(kWrite, 1, UINT64_MAX, UINT64_MAX, 0);
  s.opcode = 200;
  s.flags = 0xff;
  EXPECT_EQ(refusal(s), RefusalRule::Opcode);
  s.opcode = kWrite;
  EXPECT_EQ(refusal(s), RefusalRule::Flags);
  s.flags = abi::kSqeFixedFile;
  s.fd = 7;
  EXPECT_EQ(refusal(s), RefusalRule::FileIndex);
  s.fd = 1;
  EXPECT_EQ(refusal(s), RefusalRule::ReadOnly);
  s.fd = 0;
  EXPECT_EQ(refusal(s), RefusalRule::Range);
  s.off = 0;
  EXPECT_EQ(refusal(s), RefusalRule::Length);
  s.len = 100;
  EXPECT_EQ(refusal(s), RefusalRule::Alignment);
  s.len = 512;
  EXPECT_EQ(refusal(s), RefusalRule::Memory);
  s.addr = 0;
  EXPECT_EQ(refusal(s), std::nullopt);
}

TEST_F(SqeValidatorTest, FsyncIgnoresItsRangeAndAddress) {
  auto r = validate_guest_sqe(sqe(abi::kOpFsync, 0, UINT64_MAX, UINT64_MAX, 12345), context_);
  ASSERT_TRUE(r);
  const Sqe k = kernel_sqe(*r);
  EXPECT_EQ(k.opcode, SqeOpcode::Fsync);
  EXPECT_EQ(k.off, 0u);
  EXPECT_EQ(k.addr, 0u);
  EXPECT_EQ(k.len, 0u);
}

// FALLOCATE, the virtio back-end's zeroing: off, addr = length, len = mode.
class ZeroingValidatorTest : public SqeValidatorTest {
 protected:
  void SetUp() override {
    SqeValidatorTest::SetUp();
    auto policy = policy::load_policy("blk-virtio");
    ASSERT_TRUE(policy);
    zeroing_policy_ = policy::compile_policy(*policy);
    context_.policy = &zeroing_policy_;
    context_.max_zeroing = 64 * 1024;
  }
  static abi::GuestSqe zero(std::uint32_t disk, std::uint64_t off, std::uint64_t bytes, std::uint32_t mode) {
    return sqe(static_cast<std::uint8_t>(SqeOpcode::Fallocate), disk, off, bytes, mode);
  }
  RestrictionSet zeroing_policy_;
};

TEST_F(ZeroingValidatorTest, AValidZeroingBecomesAFallocateThatKeepsTheSize) {
  for (const std::uint32_t mode : {kZeroRangeMode, kPunchHoleMode}) {
    auto r = validate_guest_sqe(zero(0, 8192, 64 * 1024, mode), context_);
    ASSERT_TRUE(r) << mode;
    EXPECT_EQ(r->host, nullptr);
    EXPECT_EQ(full_result(*r), 0);
    const Sqe k = kernel_sqe(*r);
    EXPECT_EQ(k.opcode, SqeOpcode::Fallocate);
    EXPECT_EQ(k.flags, abi::kSqeFixedFile);
    EXPECT_EQ(k.off, 8192u);
    EXPECT_EQ(k.addr, 64u * 1024);
    EXPECT_EQ(k.len, mode);
  }
}

TEST_F(ZeroingValidatorTest, Rule1OnlyTheSizeKeepingModesOnADeviceThatZeroes) {
  // Every other mode: 0 would grow an image, COLLAPSE/INSERT_RANGE move data, PUNCH_HOLE or
  // ZERO_RANGE without KEEP_SIZE, stray bits.
  for (const std::uint32_t mode : {0u, 0x1u, 0x2u, 0x10u, 0x8u, 0x20u, 0x40u, 0x4u | 0x1u, kZeroRangeMode | 0x2u,
                                   kPunchHoleMode | 0x100u, 0xffffffffu}) {
    EXPECT_EQ(refusal(zero(0, 0, 4096, mode)), RefusalRule::Opcode) << mode;
  }
  // A device with no zeroing limit (a ring guest's mediator) refuses FALLOCATE altogether.
  context_.max_zeroing = 0;
  EXPECT_EQ(refusal(zero(0, 0, 4096, kPunchHoleMode)), RefusalRule::Opcode);
  context_.max_zeroing = 64 * 1024;
  // And so does a policy without it (blk-mediated).
  context_.policy = &policy_;
  EXPECT_EQ(refusal(zero(0, 0, 4096, kPunchHoleMode)), RefusalRule::Opcode);
}

TEST_F(ZeroingValidatorTest, Rules2To7AtTheirBoundaries) {
  abi::GuestSqe no_fixed = zero(0, 0, 4096, kZeroRangeMode);
  no_fixed.flags = 0;
  EXPECT_EQ(refusal(no_fixed), RefusalRule::Flags);
  EXPECT_EQ(refusal(zero(2, 0, 4096, kZeroRangeMode)), RefusalRule::FileIndex);
  EXPECT_EQ(refusal(zero(1, 0, 4096, kZeroRangeMode)), RefusalRule::ReadOnly);  // disk 1 is read-only
  // Range, with the length a u64: the last block passes, one past it and a wrap do not.
  EXPECT_EQ(refusal(zero(0, (1 << 20) - 512, 512, kPunchHoleMode)), std::nullopt);
  EXPECT_EQ(refusal(zero(0, (1 << 20) - 512, 1024, kPunchHoleMode)), RefusalRule::Range);
  EXPECT_EQ(refusal(zero(0, 512, UINT64_MAX - 511, kPunchHoleMode)), RefusalRule::Range);
  EXPECT_EQ(refusal(zero(0, 0, std::uint64_t{1} << 32, kPunchHoleMode)), RefusalRule::Range);
  // Length: not 0, at most the zeroing limit (not the transfer limit, 8 KiB here).
  EXPECT_EQ(refusal(zero(0, 0, 0, kZeroRangeMode)), RefusalRule::Length);
  EXPECT_EQ(refusal(zero(0, 0, 64 * 1024 + 512, kZeroRangeMode)), RefusalRule::Length);
  // Alignment to the disk's logical block.
  EXPECT_EQ(refusal(zero(0, 256, 512, kZeroRangeMode)), RefusalRule::Alignment);
  EXPECT_EQ(refusal(zero(0, 512, 768, kZeroRangeMode)), RefusalRule::Alignment);
}

}  // namespace
}  // namespace rf
