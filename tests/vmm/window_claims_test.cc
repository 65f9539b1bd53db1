#include "memory/window_claims.h"

#include <gtest/gtest.h>

namespace rf {
namespace {

TEST(WindowClaimsTest, RefusesAnOverlapUntilTheFirstClaimIsReleased) {
  auto claims = WindowClaims::create();
  auto first = claims->claim(GuestAddress{0x10000}, 0x3000);
  ASSERT_TRUE(first) << first.error();
  // Sharing a byte at either end, or containing it, is an overlap; touching is not.
  for (auto [base, bytes] : {std::pair{0x12fffull, 1ull}, {0xf000ull, 0x1001ull}, {0x0ull, 0x100000ull}}) {
    auto overlap = claims->claim(GuestAddress{base}, bytes);
    ASSERT_FALSE(overlap) << base;
    EXPECT_NE(overlap.error().find("overlaps the window 0x10000+0x3000"), std::string::npos) << overlap.error();
  }
  auto before = claims->claim(GuestAddress{0xf000}, 0x1000);
  auto after = claims->claim(GuestAddress{0x13000}, 0x1000);
  EXPECT_TRUE(before);
  EXPECT_TRUE(after);
  EXPECT_EQ(claims->count(), 3u);
  *first = WindowClaim();  // released
  EXPECT_EQ(claims->count(), 2u);
  EXPECT_TRUE(claims->claim(GuestAddress{0x10000}, 0x3000)) << "the range is free again";
}

TEST(WindowClaimsTest, RefusesEmptyAndWrappingRanges) {
  auto claims = WindowClaims::create();
  EXPECT_FALSE(claims->claim(GuestAddress{0x1000}, 0));
  EXPECT_FALSE(claims->claim(GuestAddress{UINT64_MAX - 0xfff}, 0x2000));
  EXPECT_EQ(claims->count(), 0u);
}

TEST(WindowClaimsTest, AClaimKeptForeverIsNeverFreed) {
  auto claims = WindowClaims::create();
  {
    auto claim = claims->claim(GuestAddress{0x10000}, 0x1000);
    ASSERT_TRUE(claim);
    claim->keep_forever();
    EXPECT_FALSE(*claim);
  }
  EXPECT_EQ(claims->count(), 1u);
  EXPECT_FALSE(claims->claim(GuestAddress{0x10000}, 0x1000));
}

TEST(WindowClaimsTest, AClaimOutlivingItsRegistryHandleIsSafe) {
  Result<WindowClaim, std::string> claim = unexpected(std::string("unset"));
  {
    auto claims = WindowClaims::create();
    claim = claims->claim(GuestAddress{0}, 0x1000);
    ASSERT_TRUE(claim);
  }
  *claim = WindowClaim();  // the registry is still alive through the claim: releasing is fine
  EXPECT_FALSE(*claim);
}

}  // namespace
}  // namespace rf
