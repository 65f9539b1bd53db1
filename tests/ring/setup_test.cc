#include "ring/setup.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/io_uring_threads.h"
#include "support/kernel_caps.h"
#include "support/test_ring.h"
#include "sys/syscalls.h"

namespace rf {
namespace {

// The order of set-up is in the types; these operations cannot be expressed.
template <typename R>
concept CanPush = requires(R& r, const Sqe& s) { r.try_push(s); };
template <typename R>
concept CanSubmit = requires(R& r) { r.submit(); };
template <typename R>
concept CanRestrictLvalue = requires(R& r, const RestrictionSet& s) { r.restrict(s); };
template <typename R>
concept CanRestrict = requires(R&& r, const RestrictionSet& s) { std::move(r).restrict(s); };
template <typename R>
concept CanEnable = requires(R&& r) { std::move(r).enable(); };

// Submitting before enable:
static_assert(!CanPush<DisabledRing> && !CanSubmit<DisabledRing>);
static_assert(!CanPush<RestrictedRing> && !CanSubmit<RestrictedRing>);
static_assert(CanPush<Ring> && CanSubmit<Ring>);
// restricting a ring without giving it up (restrict() consumes it):
static_assert(!CanRestrictLvalue<DisabledRing> && CanRestrict<DisabledRing>);
// registering restrictions twice, or after enable:
static_assert(!CanRestrict<RestrictedRing> && !CanRestrict<Ring>);
// enabling a ring that has no restrictions:
static_assert(!CanEnable<DisabledRing> && CanEnable<RestrictedRing>);
// and making a Ring other than through enable().
static_assert(!std::is_constructible_v<Ring, RingCore, RestrictionSet>);

RestrictionSet nop_only() { return RestrictionSet{}.allow(SqeOpcode::Nop); }

class RingSetupTest : public ::testing::Test {
 protected:
  void SetUp() override { RF_REQUIRE(test::restrictions_feature()); }
};

void expect_invalid(const RingOptions& options, const char* needle) {
  auto ring = DisabledRing::create(options);
  ASSERT_FALSE(ring);
  EXPECT_EQ(ring.error().code, RingErrc::InvalidOptions) << ring.error().message;
  EXPECT_NE(ring.error().message.find(needle), std::string::npos) << ring.error().message;
}

TEST_F(RingSetupTest, RejectsImpossibleOptionsWithAReason) {
  RingOptions o;
  o.sq_entries = 0;
  expect_invalid(o, "sq_entries 0");
  o.sq_entries = kMaxSqEntries + 1;
  expect_invalid(o, "outside 1..32768");
  o = RingOptions{};
  o.sq_entries = 64;
  o.cq_entries = 32;
  expect_invalid(o, "smaller than sq_entries");
  o = RingOptions{};
  o.sqpoll = SqPollOptions{4096, std::chrono::milliseconds(10)};
  expect_invalid(o, "does not exist");
  o = RingOptions{};
  o.attach_wq_fd = -3;
  expect_invalid(o, "attach_wq_fd -3 is not the descriptor of an io_uring instance");
}

TEST_F(RingSetupTest, AttachWqToSomethingThatIsNotARingIsRefused) {
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC));
  RingOptions o;
  o.sqpoll = SqPollOptions{};
  o.attach_wq_fd = efd.get();
  auto ring = DisabledRing::create(o);
  ASSERT_FALSE(ring);
  EXPECT_EQ(ring.error().code, RingErrc::InvalidOptions) << ring.error().message;
  EXPECT_NE(ring.error().message.find("is not the descriptor of an io_uring instance"), std::string::npos)
      << ring.error().message;
}

TEST_F(RingSetupTest, EveryRingStartsDisabledAndHonoursSizes) {
  RingOptions o;
  o.sq_entries = 5;  // rounded up to 8 by the kernel
  o.cq_entries = 100;  // rounded up to 128
  auto ring = DisabledRing::create(o);
  ASSERT_TRUE(ring) << ring.error().message;
  EXPECT_NE(ring->info().setup_flags & IORING_SETUP_R_DISABLED, 0U);
  EXPECT_NE(ring->info().setup_flags & IORING_SETUP_CQSIZE, 0U);
  EXPECT_EQ(ring->info().sq_entries, 8U);
  EXPECT_EQ(ring->info().cq_entries, 128U);
}

TEST_F(RingSetupTest, EnabledRingPassedItsSelfCheck) {
  auto ring = test::make_ring(nop_only());
  ASSERT_TRUE(ring) << ring.error().message;
  const SelfCheckReport& report = ring->self_check();
  EXPECT_EQ(report.register_probe, RegisterOpcode::RegisterProbe);
  EXPECT_EQ(report.register_result, -EACCES);
  EXPECT_EQ(report.sqe_probe, SqeOpcode::Readv);  // NOP is allowed, so the lowest denied opcode
  EXPECT_EQ(report.sqe_result, -EACCES);
  EXPECT_GT(report.duration.count(), 0);
  EXPECT_EQ(test::run_one(*ring, Sqe::nop()), 0);
}

TEST_F(RingSetupTest, SelfCheckDetectsRestrictionsThatAreNotInForce) {
  // A ring restricted to allow NOP and REGISTER_PROBE, verified against a set that denies
  // them: the kernel lets both through, and verify_restrictions must say so.
  auto ring = test::make_ring(RestrictionSet{}.allow(SqeOpcode::Nop).allow(RegisterOpcode::RegisterProbe));
  ASSERT_TRUE(ring) << ring.error().message;
  EXPECT_EQ(ring->self_check().register_probe, RegisterOpcode::RegisterEnableRings);  // PROBE was allowed

  auto register_check = verify_restrictions(*ring, RestrictionSet{});
  ASSERT_FALSE(register_check);
  EXPECT_EQ(register_check.error().code, RingErrc::SelfCheck);
  EXPECT_NE(register_check.error().message.find("REGISTER_PROBE returned"), std::string::npos)
      << register_check.error().message;

  auto sqe_check = verify_restrictions(*ring, RestrictionSet{}.allow(RegisterOpcode::RegisterProbe));
  ASSERT_FALSE(sqe_check);
  EXPECT_NE(sqe_check.error().message.find("NOP SQE completed with 0"), std::string::npos) << sqe_check.error().message;
}

TEST_F(RingSetupTest, RestrictionsCannotBeRegisteredTwiceEvenThroughTheRawDescriptor) {
  auto ring = DisabledRing::create(RingOptions{});
  ASSERT_TRUE(ring);
  io_uring_restriction entry{};
  entry.opcode = IORING_RESTRICTION_SQE_OP;
  entry.sqe_op = IORING_OP_NOP;
  EXPECT_EQ(sys::io_uring_register(ring->fd(), IORING_REGISTER_RESTRICTIONS, &entry, 1), 0);
  EXPECT_EQ(sys::io_uring_register(ring->fd(), IORING_REGISTER_RESTRICTIONS, &entry, 1), -EBUSY);
}

TEST_F(RingSetupTest, RestrictionsNewerThanTheKernelAreUnsupported) {
  auto ring = DisabledRing::create(RingOptions{});
  ASSERT_TRUE(ring);
  auto restricted = std::move(*ring).restrict(RestrictionSet{}.allow(static_cast<SqeOpcode>(250)));
  ASSERT_FALSE(restricted);
  EXPECT_EQ(restricted.error().code, RingErrc::Unsupported);
  EXPECT_NE(restricted.error().message.find("opcode newer than the kernel"), std::string::npos);
}

TEST_F(RingSetupTest, RegisterFilesRefusesEmptyAndClosedDescriptors) {
  auto ring = DisabledRing::create(RingOptions{});
  ASSERT_TRUE(ring);
  auto empty = ring->register_files({});
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message.find("no files"), std::string::npos);
  const int closed[] = {9999};
  auto bad = ring->register_files(closed);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().sys_errno, EBADF);
  EXPECT_NE(bad.error().message.find("fd 9999"), std::string::npos);
}

TEST_F(RingSetupTest, RingsLiveInCallerMemoryWithNoMmap) {
  RF_REQUIRE(test::no_mmap_feature());
  RingOptions o;
  o.sq_entries = 8;
  auto layout = ring_memory_layout(o);
  ASSERT_TRUE(layout) << layout.error().message;
  EXPECT_EQ(layout->sq_entries, 8U);
  EXPECT_EQ(layout->sqes_bytes % page_size(), 0U);
  EXPECT_GE(layout->sqes_bytes, 8U * 64U);
  EXPECT_EQ(layout->rings_bytes % page_size(), 0U);

  UniqueFd memfd = test::make_memfd(layout->rings_bytes + layout->sqes_bytes);
  auto memory = MmapRegion::map_fd(memfd.get(), 0, layout->rings_bytes + layout->sqes_bytes, PROT_READ | PROT_WRITE);
  ASSERT_TRUE(memory);
  o.caller_memory = CallerRingMemory{memory->span().first(layout->rings_bytes), memory->span().subspan(layout->rings_bytes)};
  auto ring = test::make_ring(nop_only(), o);
  ASSERT_TRUE(ring) << ring.error().message;
  EXPECT_TRUE(ring->info().caller_memory);

  // The SQE we submit is written into the caller's memory: find its user_data there.
  const std::uint64_t tag = 0x1122334455667788ULL;
  EXPECT_EQ(test::run_one(*ring, Sqe::nop().with_user_data(tag)), 0);
  bool found = false;
  for (std::size_t off = 0; off + 64 <= layout->sqes_bytes; off += 64) {
    std::uint64_t user_data = 0;
    std::memcpy(&user_data, memory->bytes() + layout->rings_bytes + off + 32, sizeof(user_data));  // io_uring_sqe::user_data
    found = found || user_data == tag;
  }
  EXPECT_TRUE(found);
}

TEST_F(RingSetupTest, CallerMemoryMustBeAlignedLargeEnoughAndDisjoint) {
  RF_REQUIRE(test::no_mmap_feature());
  RingOptions o;
  o.sq_entries = 8;
  auto layout = ring_memory_layout(o);
  ASSERT_TRUE(layout);
  auto memory = MmapRegion::map_anonymous(4 * page_size() + layout->rings_bytes + layout->sqes_bytes);
  ASSERT_TRUE(memory);
  auto span = memory->span();

  o.caller_memory = CallerRingMemory{span.subspan(8, layout->rings_bytes), span.subspan(2 * page_size() + layout->rings_bytes, layout->sqes_bytes)};
  expect_invalid(o, "page-aligned");
  o.caller_memory = CallerRingMemory{span.first(page_size() / 2), span.subspan(2 * page_size() + layout->rings_bytes, layout->sqes_bytes)};
  expect_invalid(o, "too small");
  o.caller_memory = CallerRingMemory{span.first(layout->rings_bytes), span.first(layout->sqes_bytes)};
  expect_invalid(o, "overlap");
}

TEST_F(RingSetupTest, SqpollRingConsumesWithoutEnterAndAttachWqSharesItsThread) {
  RF_REQUIRE(test::sqpoll_feature());
  RingOptions o;
  o.sqpoll = SqPollOptions{std::nullopt, std::chrono::milliseconds(20)};
  auto first = test::make_ring(nop_only(), o);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(first->info().sqpoll);
  EXPECT_EQ(test::run_one(*first, Sqe::nop()), 0);

  o.attach_wq_fd = first->fd();
  auto second = test::make_ring(nop_only(), o);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_NE(second->info().setup_flags & IORING_SETUP_ATTACH_WQ, 0U);
  // Let the shared thread go idle so the next submission needs a wake-up.
  ::usleep(60'000);
  EXPECT_EQ(test::run_one(*second, Sqe::nop().with_user_data(2)), 0);
  EXPECT_EQ(test::run_one(*first, Sqe::nop().with_user_data(1)), 0);
}

std::string cpus_allowed(const std::string& tid) {
  std::ifstream status("/proc/self/task/" + tid + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Cpus_allowed_list:", 0) == 0) return line.substr(line.find_first_not_of(" \t", 18));
  }
  return "";
}

TEST_F(RingSetupTest, AnSqpollRingCanKeepItsIoWorkersOnItsThreadsCpu) {
  RF_REQUIRE(test::sqpoll_feature());
  RingOptions o;
  o.sqpoll = SqPollOptions{std::nullopt, std::chrono::milliseconds(20)};
  o.sqpoll->workers_on_sqpoll_cpu = true;
  expect_invalid(o, "needs the SQPOLL thread's cpu");

  const unsigned cpu = std::thread::hardware_concurrency() - 1;
  o.sqpoll->cpu = cpu;
  auto ring = test::make_ring(RestrictionSet{}.allow(SqeOpcode::Nop).allow_flags(IOSQE_ASYNC), o);
  ASSERT_TRUE(ring) << ring.error().message;
  // IOSQE_ASYNC sends the NOP to the SQPOLL thread's io-wq, which starts a worker for it.
  EXPECT_EQ(test::run_one(*ring, Sqe::nop().with_flags(IOSQE_ASYNC)), 0);
  const auto workers = test::io_uring_thread_ids("iou-wrk-");
  ASSERT_FALSE(workers.empty()) << "no io-wq worker ran the NOP";
  for (const std::string& tid : workers) EXPECT_EQ(cpus_allowed(tid), std::to_string(cpu)) << "worker " << tid;
}

TEST_F(RingSetupTest, NoSqArrayRingWorks) {
  RF_REQUIRE(test::no_sqarray_feature());
  RingOptions o;
  o.no_sqarray = true;
  auto ring = test::make_ring(nop_only(), o);
  ASSERT_TRUE(ring) << ring.error().message;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(test::run_one(*ring, Sqe::nop()), 0);
}

TEST_F(RingSetupTest, IopollRingCanBeCreated) {
  RingOptions o;
  o.iopoll = true;
  auto ring = test::make_ring(RestrictionSet{}.allow(SqeOpcode::ReadFixed), o);
  ASSERT_TRUE(ring) << ring.error().message;
  EXPECT_TRUE(ring->info().iopoll);
}

TEST_F(RingSetupTest, EventfdSignalsCompletionsUnlessDisabled) {
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  auto disabled = DisabledRing::create(RingOptions{});
  ASSERT_TRUE(disabled);
  ASSERT_TRUE(disabled->register_eventfd(efd.get()));
  auto restricted = std::move(*disabled).restrict(nop_only());
  ASSERT_TRUE(restricted);
  auto ring = std::move(*restricted).enable();
  ASSERT_TRUE(ring) << ring.error().message;

  eventfd_t count = 0;
  (void)::eventfd_read(efd.get(), &count);  // the self-check's completion may have signalled
  EXPECT_EQ(test::run_one(*ring, Sqe::nop()), 0);
  ASSERT_EQ(::eventfd_read(efd.get(), &count), 0);
  EXPECT_GE(count, 1U);

  ring->cq().set_eventfd_enabled(false);
  EXPECT_FALSE(ring->cq().eventfd_enabled());
  EXPECT_EQ(test::run_one(*ring, Sqe::nop()), 0);
  EXPECT_EQ(::eventfd_read(efd.get(), &count), -1);
  EXPECT_EQ(errno, EAGAIN);
}

}  // namespace
}  // namespace rf
