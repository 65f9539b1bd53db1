#include "ring/probe.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "ring/kernel_facts.h"
#include "support/kernel_caps.h"
#include "util/unique_fd.h"

namespace rf {
namespace {

TEST(ProbeTest, ReportsWhatTheBuilderCanDo) {
  RF_REQUIRE(test::restrictions_feature());
  const KernelCapabilities caps = probe_kernel();
  EXPECT_EQ(caps.kernel_release, kernel_release());
  EXPECT_TRUE(caps.io_uring.supported) << caps.io_uring.detail;
  EXPECT_TRUE(caps.r_disabled.supported) << caps.r_disabled.detail;
  EXPECT_TRUE(caps.restrictions.supported) << caps.restrictions.detail;
  EXPECT_NE(caps.restrictions.detail.find("EACCES"), std::string::npos);
  EXPECT_EQ(caps.sqpoll.supported, test::sqpoll_feature().available);
  EXPECT_EQ(caps.no_mmap.supported, test::no_mmap_feature().available);
  EXPECT_EQ(caps.no_sqarray.supported, test::no_sqarray_feature().available);
  EXPECT_FALSE(caps.iopoll);  // only with a target
}

TEST(ProbeTest, OpcodeTablesComeFromTheKernel) {
  RF_REQUIRE(test::restrictions_feature());
  const KernelCapabilities caps = probe_kernel();
  ASSERT_GT(caps.sqe_opcodes.size(), to_u8(SqeOpcode::WriteFixed));
  for (std::size_t i = 0; i < caps.sqe_opcodes.size(); ++i) EXPECT_EQ(caps.sqe_opcodes[i].op, i);
  EXPECT_TRUE(caps.sqe_opcodes[to_u8(SqeOpcode::ReadFixed)].supported);
  EXPECT_EQ(caps.sqe_opcodes[to_u8(SqeOpcode::ReadFixed)].name, "READ_FIXED");
  // Restrictions exist since 5.10, where REGISTER_ENABLE_RINGS (12) was the last opcode.
  EXPECT_GT(caps.register_op_count, to_u8(RegisterOpcode::RegisterEnableRings));
  const KernelOpcodeSupport& cached = running_kernel_opcode_support();
  EXPECT_EQ(cached.register_op_count, caps.register_op_count);
  EXPECT_EQ(cached.sqe_ops, caps.opcode_support().sqe_ops);
}

TEST(ProbeTest, FeatureNames) {
  EXPECT_EQ(feature_names(0x3), (std::vector<std::string>{"SINGLE_MMAP", "NODROP"}));
  EXPECT_EQ(feature_names(1U << 31), (std::vector<std::string>{"bit31"}));
}

// The IOPOLL verdict must agree with the device's own answer in sysfs.
TEST(IopollProbeTest, AgreesWithTheDevicesPollQueues) {
  RF_REQUIRE(test::restrictions_feature());
  const std::string path = ::testing::TempDir() + "ringfence-iopoll-probe";
  {
    std::ofstream out(path, std::ios::binary);
    out << std::string(1 << 16, 'x');
  }
  ASSERT_EQ(::truncate(path.c_str(), 1 << 16), 0);
  UniqueFd sync_fd(::open(path.c_str(), O_RDONLY));
  ASSERT_EQ(::fsync(sync_fd.get()), 0);
  const IopollStatus status = probe_iopoll(path);

  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  std::error_code ec;
  auto dir = std::filesystem::canonical(
      "/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev)), ec);
  int io_poll = 0;
  if (!ec) {
    if (std::filesystem::exists(dir / "partition")) dir = dir.parent_path();
    std::ifstream(dir / "queue" / "io_poll") >> io_poll;
    EXPECT_EQ(status.device, dir.filename().string());
  }
  ::unlink(path.c_str());
  EXPECT_EQ(status.supported, io_poll == 1) << status.detail;
  EXPECT_FALSE(status.detail.empty());
  if (!status.supported && !ec) {
    EXPECT_NE(status.detail.find("io_poll"), std::string::npos) << status.detail;
  }
}

TEST(IopollProbeTest, TmpfsAndMissingFilesAreUnsupportedWithAReason) {
  RF_REQUIRE(test::restrictions_feature());
  const IopollStatus missing = probe_iopoll("/nonexistent/ringfence");
  EXPECT_FALSE(missing.supported);
  EXPECT_NE(missing.detail.find("cannot stat"), std::string::npos);

  const std::string shm = "/dev/shm/ringfence-iopoll-probe";
  {
    std::ofstream out(shm, std::ios::binary);
    if (!out) GTEST_SKIP() << "/dev/shm (tmpfs) is not available on this machine";
    out << std::string(1 << 16, 'y');
  }
  const IopollStatus tmpfs = probe_iopoll(shm);
  ::unlink(shm.c_str());
  EXPECT_FALSE(tmpfs.supported);
  // tmpfs has no ->iopoll (-EOPNOTSUPP); before Linux 6.6 it had no O_DIRECT either.
  EXPECT_TRUE(tmpfs.detail.find("EOPNOTSUPP") != std::string::npos || tmpfs.detail.find("O_DIRECT") != std::string::npos)
      << tmpfs.detail;
}

}  // namespace
}  // namespace rf
