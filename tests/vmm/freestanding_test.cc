// The reference guest driver, its workload and the descriptor code must be freestanding: the
// combined object (RF_GUEST_OBJECT, made with `ld -r`) may not reference a single symbol it
// does not define — no libc, no system call wrapper, no allocator, no memcpy.
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

namespace {

std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return "popen failed";
  char buf[512];
  while (std::fgets(buf, sizeof(buf), pipe) != nullptr) out += buf;
  const int status = ::pclose(pipe);
  if (status != 0) out += "exit status " + std::to_string(status);
  return out;
}

TEST(Freestanding, TheGuestDriverReferencesNoOutsideSymbol) {
  const std::string defined = run("nm --defined-only " RF_GUEST_OBJECT);
  EXPECT_NE(defined.find("Driver6attach"), std::string::npos) << "the object does not hold the driver:\n" << defined;
  EXPECT_EQ(run("nm --undefined-only " RF_GUEST_OBJECT), "");
}

}  // namespace
