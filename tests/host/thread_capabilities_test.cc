#include "host/thread_capabilities.h"

#include <linux/capability.h>
#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>

namespace rf {
namespace {

// Runs `body` on a fresh thread: capabilities are per thread, so what it drops stays there.
template <typename Body>
void on_another_thread(Body body) {
  std::thread t(body);
  t.join();
}

TEST(ThreadCapabilities, LoweringTheEffectiveSetIsScopedAndPerThread) {
  const auto mine = thread_capabilities();
  ASSERT_TRUE(mine) << mine.error().message;
  const int main_tid = static_cast<int>(::gettid());
  on_another_thread([&] {
    {
      auto lowered = ScopedEffectiveCapabilities::lower_to(ring_capabilities());
      ASSERT_TRUE(lowered) << lowered.error().message;
      const auto inside = thread_capabilities();
      ASSERT_TRUE(inside);
      EXPECT_EQ(inside->effective, mine->effective & ring_capabilities());
      EXPECT_EQ(inside->permitted, mine->permitted) << "permitted stays, so the effective set can come back";
      // The process's other threads keep theirs meanwhile.
      const auto main_thread = thread_capabilities(main_tid);
      ASSERT_TRUE(main_thread) << main_thread.error().message;
      EXPECT_EQ(main_thread->effective, mine->effective);
    }
    const auto after = thread_capabilities();
    ASSERT_TRUE(after);
    EXPECT_EQ(after->effective, mine->effective) << "restored when the guard goes";
  });
  EXPECT_EQ(thread_capabilities()->effective, mine->effective);
}

TEST(ThreadCapabilities, DroppingForGoodLeavesOnlyWhatIsKeptOnThatThread) {
  const auto mine = thread_capabilities();
  ASSERT_TRUE(mine) << mine.error().message;
  on_another_thread([&] {
    ASSERT_TRUE(drop_thread_capabilities_except(0));
    const auto dropped = thread_capabilities();
    ASSERT_TRUE(dropped);
    EXPECT_EQ(dropped->effective, 0u);
    EXPECT_EQ(dropped->permitted, 0u);
    EXPECT_EQ(dropped->inheritable, 0u);
    // Gone for good: the kernel refuses to raise what is no longer permitted.
    if (mine->permitted != 0) {
      EXPECT_FALSE(set_thread_capabilities(*mine));
    }
  });
  const auto after = thread_capabilities();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->effective, mine->effective);
  EXPECT_EQ(after->permitted, mine->permitted);
}

TEST(ThreadCapabilities, TheRingKeepsOnlyIpcLock) {
  EXPECT_EQ(ring_capabilities(), capability_bit(CAP_IPC_LOCK));
  EXPECT_EQ(ring_capabilities() & capability_bit(CAP_SYS_ADMIN), 0u);
  EXPECT_EQ(ring_capabilities() & capability_bit(CAP_SYS_NICE), 0u);
}

}  // namespace
}  // namespace rf
