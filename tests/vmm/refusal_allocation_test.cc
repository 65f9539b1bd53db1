// A guest decides how often the mediator refuses an SQE: refusing one must allocate nothing on
// the mediator's thread, or a guest could make the VMM allocate as fast as it submits (and a
// bad_alloc there would end the VMM). This binary replaces the global operator new with one that
// counts per thread (support/allocation_counter.cc).
#include <array>
#include <cerrno>

#include <gtest/gtest.h>

#include "device_fixture.h"
#include "mediated/sqe_validator.h"
#include "memory/guest_memory_builder.h"
#include "restrictions/policy_compiler.h"
#include "restrictions/policy_loader.h"
#include "support/allocation_counter.h"

namespace rf {
namespace {

const std::uint64_t kPage = page_size();

abi::GuestSqe read_sqe(std::uint64_t off, std::uint64_t addr, std::uint32_t len) {
  abi::GuestSqe s{};
  s.opcode = abi::kOpReadFixed;
  s.flags = abi::kSqeFixedFile;
  s.off = off;
  s.addr = addr;
  s.len = len;
  return s;
}

// One SQE per refusal rule, and per way the memory rule refuses (outside RAM, a gap, across two
// buffers, into a read-only region, 2^64 wrap).
std::vector<std::pair<abi::GuestSqe, RefusalRule>> refused_sqes() {
  std::vector<std::pair<abi::GuestSqe, RefusalRule>> out;
  abi::GuestSqe s = read_sqe(0, 0, 512);
  s.opcode = 0x7f;
  out.emplace_back(s, RefusalRule::Opcode);
  s = read_sqe(0, 0, 512);
  s.flags = 0;
  out.emplace_back(s, RefusalRule::Flags);
  s = read_sqe(0, 0, 512);
  s.fd = 9;
  out.emplace_back(s, RefusalRule::FileIndex);
  s = read_sqe(0, 0, 512);
  s.opcode = abi::kOpWriteFixed;
  s.fd = 1;
  out.emplace_back(s, RefusalRule::ReadOnly);
  out.emplace_back(read_sqe(1ull << 20, 0, 512), RefusalRule::Range);
  out.emplace_back(read_sqe(0, 0, 0), RefusalRule::Length);
  out.emplace_back(read_sqe(1, 0, 512), RefusalRule::Alignment);
  out.emplace_back(read_sqe(0, 64 * kPage, 512), RefusalRule::Memory);         // past the end of RAM
  out.emplace_back(read_sqe(0, 20 * kPage, 512), RefusalRule::Memory);         // in the gap
  out.emplace_back(read_sqe(0, 4 * kPage - 256, 512), RefusalRule::Memory);    // across two buffers
  out.emplace_back(read_sqe(0, 32 * kPage, 512), RefusalRule::Memory);         // into the read-only region
  out.emplace_back(read_sqe(0, UINT64_MAX - 255, 512), RefusalRule::Memory);   // wraps past 2^64
  return out;
}

TEST(RefusalAllocationTest, TheValidatorRefusesEveryRuleWithoutAllocating) {
  auto policy = policy::load_policy("blk-mediated");
  ASSERT_TRUE(policy);
  const RestrictionSet set = policy::compile_policy(*policy);
  // Two writable regions in pieces of four pages, a gap, a read-only region.
  const RegionLayout layout[] = {{GuestAddress{0}, 8 * kPage, false},
                                 {GuestAddress{8 * kPage}, 8 * kPage, false},
                                 {GuestAddress{32 * kPage}, 4 * kPage, true}};
  auto memory = GuestMemoryBuilder::create(layout, MemoryBacking::Anonymous, 4 * kPage);
  ASSERT_TRUE(memory);
  const DiskLimits disks[2] = {{1 << 20, 512, false}, {1 << 20, 512, true}};
  const ValidationContext context{&set, disks, memory->get(), 1 << 20};
  const auto sqes = refused_sqes();

  test::AllocationScope scope;
  std::array<std::uint64_t, kRefusalRuleCount> seen{};
  for (int round = 0; round < 1000; ++round) {
    for (const auto& [sqe, rule] : sqes) {
      const auto r = validate_guest_sqe(sqe, context);
      if (!r && r.error() == rule) ++seen[static_cast<std::size_t>(rule)];
    }
  }
  const std::uint64_t allocations = scope.count();
  EXPECT_EQ(allocations, 0u) << "allocations while refusing " << 1000 * sqes.size() << " SQEs";
  EXPECT_EQ(seen[static_cast<std::size_t>(RefusalRule::Memory)], 5000u) << "each SQE was refused by the rule it aims at";
  for (std::size_t rule = 0; rule < kRefusalRuleCount; ++rule) EXPECT_GE(seen[rule], 1000u) << refusal_rule_name(RefusalRule(rule));

  // The counter counts: a described refusal allocates.
  test::AllocationScope shown;
  const auto refusal = (*memory)->translate(GuestAddress{20 * kPage}, 512, DeviceAccess::WritesGuest);
  ASSERT_FALSE(refusal);
  EXPECT_FALSE(refusal.error().describe().empty());
  EXPECT_GT(shown.count(), 0u);
}

// The same through a mediator's round (poll_once on this thread): a guest floods refused SQEs,
// the mediator completes each with its errno and allocates nothing.
TEST(RefusalAllocationTest, AMediatorRoundRefusingAFloodAllocatesNothing) {
  RF_REQUIRE(test::restrictions_feature());
  RF_REQUIRE(test::loop_device_feature());
  test::TestDevice device;
  test::DeviceSetup setup;
  setup.mode = abi::Mode::Mediated;
  setup.start_device = false;  // driven by poll_once below
  setup.mediated.queue_depth = 16;
  ASSERT_NO_FATAL_FAILURE(device.start(setup));
  Mediator& mediator = device.mediated_->mediator();
  (void)mediator.poll_once();  // anything the first round sets up

  std::uint64_t allocations = 0;
  std::uint64_t refused = 0;
  for (int round = 0; round < 200; ++round) {
    for (std::uint32_t i = 0; i < 16; ++i) {
      // Alternately outside RAM (rule 8) and misaligned (rule 7).
      abi::GuestSqe sqe = i % 2 == 0 ? read_sqe(0, test::kFixtureRam + 4096, 4096) : read_sqe(1, test::kScratch, 4096);
      sqe.user_data = i;
      ASSERT_EQ(device.driver_.queue_raw(sqe), guest::RequestStatus::Ok);
    }
    device.driver_.submit();
    {
      test::AllocationScope scope;
      while (mediator.poll_once()) {
      }
      allocations += scope.count();
    }
    guest::Completion c[16];
    const std::uint32_t n = device.driver_.reap(c, 16);
    ASSERT_EQ(n, 16u);
    for (std::uint32_t i = 0; i < n; ++i) {
      EXPECT_EQ(c[i].result, c[i].tag % 2 == 0 ? -EFAULT : -EINVAL) << "tag " << c[i].tag;
      ++refused;
    }
  }
  EXPECT_EQ(refused, 3200u);
  EXPECT_EQ(allocations, 0u) << "allocations on the mediator's thread while it refused " << refused << " SQEs";
}

}  // namespace
}  // namespace rf
