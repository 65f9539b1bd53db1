// The reference guest driver, its workload and the descriptor code must be freestanding: the
// combined object (RF_GUEST_OBJECT, made with `ld -r`) may not reference a single symbol it
// does not define — no libc, no system call wrapper, no allocator, no memcpy.
#include <string>

#include <gtest/gtest.h>

#include "support/run_command.h"

namespace {

TEST(Freestanding, TheGuestDriverReferencesNoOutsideSymbol) {
  const rf::test::CommandRun defined = rf::test::run_command("nm --defined-only " RF_GUEST_OBJECT " 2>&1");
  ASSERT_EQ(defined.status, 0) << defined.output;
  EXPECT_NE(defined.output.find("Driver6attach"), std::string::npos) << "the object does not hold the driver:\n"
                                                                      << defined.output;
  const rf::test::CommandRun undefined = rf::test::run_command("nm --undefined-only " RF_GUEST_OBJECT " 2>&1");
  EXPECT_EQ(undefined.status, 0) << undefined.output;
  EXPECT_EQ(undefined.output, "");
}

}  // namespace
