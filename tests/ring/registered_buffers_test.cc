#include "ring/registered_buffers.h"

#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "support/kernel_caps.h"
#include "support/test_ring.h"
#include "sys/syscalls.h"
#include "util/address.h"
#include "util/mmap_region.h"

namespace rf {
namespace {

constexpr std::size_t kGiB = std::size_t{1} << 30;

// plan() never touches the memory, so these tests use made-up addresses.
// SAFETY: the pointers are only planned, compared and never dereferenced.
std::byte* at(std::uintptr_t address) { return reinterpret_cast<std::byte*>(address); }

TEST(BufferTablePlanTest, SplitsRegionsAtOneGibibyte) {
  const BufferRegion regions[] = {{at(0x1'0000'0000), 3 * kGiB + 5}, {at(0x10'0000'0000), 4096}};
  auto table = BufferTable::plan(regions);
  ASSERT_TRUE(table) << table.error().message;
  ASSERT_EQ(table->pieces().size(), 5U);
  EXPECT_EQ(table->total_bytes(), 3 * kGiB + 5 + 4096);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(table->pieces()[i].index.value, i);
    EXPECT_EQ(table->pieces()[i].len, kGiB);
    EXPECT_EQ(table->pieces()[i].region_offset, i * kGiB);
  }
  EXPECT_EQ(table->pieces()[3].len, 5U);
  EXPECT_EQ(table->pieces()[4].region, 1U);
  EXPECT_EQ(table->pieces()[4].index.value, 4);
}

TEST(BufferTablePlanTest, FindAtTheBoundaries) {
  const std::uintptr_t base = 0x1'0000'0000;
  const BufferRegion regions[] = {{at(base), 2 * kGiB}, {at(base + 3 * kGiB), 8192}};
  auto table = BufferTable::plan(regions);
  ASSERT_TRUE(table);
  EXPECT_EQ(table->find(base, 1)->index.value, 0);                          // first byte
  EXPECT_EQ(table->find(base + kGiB - 1, 1)->index.value, 0);               // last byte of piece 0
  EXPECT_EQ(table->find(base + kGiB, 4096)->index.value, 1);                // start of piece 1
  EXPECT_FALSE(table->find(base + kGiB - 512, 4096));                       // crosses pieces 0 -> 1
  EXPECT_FALSE(table->find(base + 2 * kGiB, 1));                            // one past region 0 (gap)
  EXPECT_FALSE(table->find(base + 2 * kGiB + 100, 4096));                   // inside the gap
  EXPECT_EQ(table->find(base + 3 * kGiB + 8191, 1)->index.value, 2);        // last byte of region 1
  EXPECT_FALSE(table->find(base + 3 * kGiB + 8192, 1));                     // one past the end
  EXPECT_FALSE(table->find(base - 1, 1));                                   // before the first region
  EXPECT_FALSE(table->find(base, 0));                                       // empty range
  EXPECT_FALSE(table->find(std::numeric_limits<std::uintptr_t>::max(), 2));  // address wraps
}

TEST(BufferTablePlanTest, RefusesBadRegions) {
  EXPECT_FALSE(BufferTable::plan({}));
  const BufferRegion null_region[] = {{nullptr, 4096}};
  EXPECT_FALSE(BufferTable::plan(null_region));
  const BufferRegion empty_region[] = {{at(0x1000), 0}};
  EXPECT_FALSE(BufferTable::plan(empty_region));
  const BufferRegion wraps[] = {{at(std::numeric_limits<std::uintptr_t>::max() - 10), 4096}};
  EXPECT_FALSE(BufferTable::plan(wraps));
  const BufferRegion overlap[] = {{at(0x10000), 8192}, {at(0x11000), 4096}};
  auto overlapping = BufferTable::plan(overlap);
  ASSERT_FALSE(overlapping);
  EXPECT_NE(overlapping.error().message.find("overlap"), std::string::npos);
}

TEST(BufferTablePlanTest, RespectsTheKernelLimitOf16384Buffers) {
  const BufferRegion exactly[] = {{at(0x100000), kMaxFixedBuffers * 4096}};
  auto fits = BufferTable::plan(exactly, 4096);
  ASSERT_TRUE(fits) << fits.error().message;
  EXPECT_EQ(fits->pieces().size(), kMaxFixedBuffers);
  const BufferRegion one_more[] = {{at(0x100000), kMaxFixedBuffers * 4096 + 1}};
  auto too_many = BufferTable::plan(one_more, 4096);
  ASSERT_FALSE(too_many);
  EXPECT_NE(too_many.error().message.find("16384"), std::string::npos);
}

// Real registration of a region just over 1 GiB: two kernel buffers, and the kernel's own
// -EFAULT for an I/O that crosses from one into the next.
TEST(RegisterBuffersTest, RegionOverOneGibibyteIsTwoBuffersAndCrossingIsRefused) {
  RF_REQUIRE(test::restrictions_feature());
  const std::size_t len = kGiB + 65536;
  rlimit memlock{};
  ASSERT_EQ(::getrlimit(RLIMIT_MEMLOCK, &memlock), 0);
  if (sys::has_cap_ipc_lock() != 1 && memlock.rlim_cur != RLIM_INFINITY && memlock.rlim_cur < len) {
    GTEST_SKIP() << "pinning 1 GiB needs CAP_IPC_LOCK or RLIMIT_MEMLOCK >= " << len << " bytes (it is "
                 << memlock.rlim_cur << "); run as root or raise `ulimit -l`";
  }
  auto memory = MmapRegion::map_anonymous(len);
  ASSERT_TRUE(memory) << memory.error().message;
  UniqueFd disk = test::make_memfd(1 << 20);

  auto disabled = DisabledRing::create(RingOptions{});
  ASSERT_TRUE(disabled) << disabled.error().message;
  const int files[] = {disk.get()};
  ASSERT_TRUE(disabled->register_files(files));
  const BufferRegion region{memory->bytes(), len};
  auto table = disabled->register_buffers({&region, 1});
  ASSERT_TRUE(table) << table.error().message;
  ASSERT_EQ(table->pieces().size(), 2U);
  EXPECT_EQ(table->pieces()[1].len, 65536U);
  auto restricted = std::move(*disabled).restrict(RestrictionSet{}.allow(SqeOpcode::ReadFixed).require_flags(sqe_flag::kFixedFile));
  ASSERT_TRUE(restricted);
  auto ring = std::move(*restricted).enable();
  ASSERT_TRUE(ring) << ring.error().message;

  const auto file = FileRef::fixed({0});
  std::byte* end_of_first = memory->bytes() + kGiB;
  EXPECT_EQ(test::run_one(*ring, Sqe::read_fixed(file, end_of_first - 4096, 4096, 0, BufferIndex{0})), 4096);
  EXPECT_EQ(test::run_one(*ring, Sqe::read_fixed(file, end_of_first, 4096, 0, BufferIndex{1})), 4096);
  EXPECT_EQ(test::run_one(*ring, Sqe::read_fixed(file, end_of_first - 2048, 4096, 0, BufferIndex{0})), -EFAULT);
  EXPECT_EQ(test::run_one(*ring, Sqe::read_fixed(file, end_of_first - 2048, 4096, 0, BufferIndex{1})), -EFAULT);
  EXPECT_FALSE(table->find(address_of(end_of_first - 2048), 4096));
}

// Drops CAP_IPC_LOCK from the effective set, so RLIMIT_MEMLOCK applies even to root.
bool drop_cap_ipc_lock() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
  return ::syscall(SYS_capset, &header, data) == 0;
}

TEST(RegisterBuffersTest, MemlockLimitBecomesAnErrorNamingTheLimitAndTheFix) {
  RF_REQUIRE(test::restrictions_feature());
  // In a child: lowering limits and capabilities must not leak into the other tests.
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipe_fds[0]);
    std::string report;
    const rlimit tiny{64 * 1024, 64 * 1024};
    if (!drop_cap_ipc_lock() || ::setrlimit(RLIMIT_MEMLOCK, &tiny) != 0) {
      report = "setup-failed";
    } else if (auto memory = MmapRegion::map_anonymous(8 << 20); !memory) {
      report = "mmap-failed";
    } else if (auto ring = DisabledRing::create(RingOptions{}); !ring) {
      report = "ring-failed: " + ring.error().message;
    } else {
      const BufferRegion region{memory->bytes(), memory->size()};
      auto table = ring->register_buffers({&region, 1});
      report = table ? std::string("registered") : (table.error().code == RingErrc::MemlockLimit ? "memlock: " : "other: ") + table.error().message;
    }
    (void)!::write(pipe_fds[1], report.data(), report.size());
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string report;
  char chunk[512];
  ssize_t n = 0;
  while ((n = ::read(pipe_fds[0], chunk, sizeof(chunk))) > 0) report.append(chunk, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_NE(report, "setup-failed") << "could not drop CAP_IPC_LOCK / lower RLIMIT_MEMLOCK in the child";
  ASSERT_EQ(report.rfind("memlock: ", 0), 0U) << report;
  EXPECT_NE(report.find("RLIMIT_MEMLOCK"), std::string::npos) << report;
  EXPECT_NE(report.find("64 KiB"), std::string::npos) << report;
  EXPECT_NE(report.find("ulimit -l"), std::string::npos) << report;
  EXPECT_NE(report.find("CAP_IPC_LOCK"), std::string::npos) << report;
}

}  // namespace
}  // namespace rf
