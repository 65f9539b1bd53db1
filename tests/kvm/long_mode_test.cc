#include "kvm/long_mode.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kvm/guest_boot.h"

namespace rf::kvm {
namespace {

std::uint64_t word_at(const std::vector<std::byte>& memory, std::uint64_t gpa) {
  std::uint64_t value = 0;
  std::memcpy(&value, memory.data() + gpa, sizeof(value));
  return value;
}

TEST(LongModeTables, IdentityMapGuestRamWithLargePagesAndNothingAbove) {
  std::vector<std::byte> low(kDeviceWindowGpa, std::byte{0xee});
  const std::uint64_t ram = 1ull << 30 | 6ull << 20;  // 1 GiB + 3 large pages: two page directories
  ASSERT_TRUE(write_long_mode_tables(low, ram));

  EXPECT_EQ(word_at(low, kPml4Gpa), kPdptGpa | kPtePresent | kPteWritable);
  EXPECT_EQ(word_at(low, kPml4Gpa + 8), 0u) << "one PML4 entry covers 512 GiB";
  EXPECT_EQ(word_at(low, kPdptGpa), kPageDirectoryGpa | kPtePresent | kPteWritable);
  EXPECT_EQ(word_at(low, kPdptGpa + 8), (kPageDirectoryGpa + 0x1000) | kPtePresent | kPteWritable);
  EXPECT_EQ(word_at(low, kPdptGpa + 16), 0u);
  const std::uint64_t pages = ram / kLargePage;
  for (std::uint64_t p = 0; p < pages; ++p) {
    ASSERT_EQ(word_at(low, kPageDirectoryGpa + p * 8), p * kLargePage | kPtePresent | kPteWritable | kPteLargePage)
        << "page " << p;
  }
  EXPECT_EQ(word_at(low, kPageDirectoryGpa + pages * 8), 0u) << "nothing past guest RAM is mapped";
  EXPECT_EQ(word_at(low, kGdtGpa), 0u) << "the null descriptor";
  EXPECT_EQ(word_at(low, kGdtGpa + kCodeSelector), 0x00af'9a00'0000'ffffULL) << "64-bit code, DPL 0";
  EXPECT_EQ(low[kImageGpa], std::byte{0xee}) << "the image area is not the tables' to touch";
}

TEST(LongModeTables, PartialLargePageIsMappedWhole) {
  std::vector<std::byte> low(kDeviceWindowGpa);
  ASSERT_TRUE(write_long_mode_tables(low, kLargePage + 4096));
  EXPECT_NE(word_at(low, kPageDirectoryGpa + 8), 0u);
  EXPECT_EQ(word_at(low, kPageDirectoryGpa + 16), 0u);
}

TEST(LongModeTables, RefusesWhatTheyCannotMap) {
  std::vector<std::byte> low(kDeviceWindowGpa, std::byte{0x11});
  EXPECT_FALSE(write_long_mode_tables(low, 0));
  EXPECT_FALSE(write_long_mode_tables(low, kMaxRamBytes + kLargePage));
  std::vector<std::byte> small(kDeviceWindowGpa - 1);
  EXPECT_FALSE(write_long_mode_tables(small, 1ull << 30));
  EXPECT_EQ(low[kPml4Gpa], std::byte{0x11}) << "a refusal writes nothing";
}

TEST(LongModeRegisters, PagingProtectionAndLongModeAreOn) {
  kvm_sregs sregs{};
  set_long_mode_registers(sregs);
  EXPECT_EQ(sregs.cr3, kPml4Gpa);
  EXPECT_TRUE(sregs.cr0 & kCr0Paging);
  EXPECT_TRUE(sregs.cr0 & kCr0ProtectedMode);
  EXPECT_TRUE(sregs.cr4 & kCr4Pae);
  EXPECT_TRUE(sregs.cr4 & kCr4OsFxsr) << "compiled guest code uses SSE";
  EXPECT_EQ(sregs.efer & (kEferLongModeEnable | kEferLongModeActive), kEferLongModeEnable | kEferLongModeActive);
  EXPECT_EQ(sregs.cs.l, 1);
  EXPECT_EQ(sregs.cs.db, 0) << "L=1 needs D=0";
  EXPECT_EQ(sregs.cs.selector, kCodeSelector);
  EXPECT_EQ(sregs.ss.selector, kDataSelector);
  EXPECT_EQ(sregs.gdt.base, kGdtGpa);
}

}  // namespace
}  // namespace rf::kvm
