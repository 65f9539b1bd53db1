// The live fuzzer end to end: a sandboxed device, the hostile guest process, every invariant.
#include "fuzz/live/campaign.h"

#include <fstream>

#include <gtest/gtest.h>

#include "fuzz/live/fuzz_report.h"
#include "support/kernel_caps.h"
#include "util/temp_dir.h"

namespace rf::fuzz {
namespace {

// What a live device needs from the machine: both campaign fixtures skip without it.
template <typename Base>
class LiveDeviceTest : public Base {
 protected:
  void SetUp() override {
    RF_REQUIRE(test::restrictions_feature());
    RF_REQUIRE(test::sqpoll_feature());
    RF_REQUIRE(test::no_mmap_feature());
    RF_REQUIRE(test::loop_device_feature());
  }
};

// Each mode as `ringfence fuzz --mode` names it: passthrough (the device thread), passthrough-sqpoll
// (the kernel's SQPOLL thread and its watchdog) and mediated.
class CampaignTest : public LiveDeviceTest<::testing::TestWithParam<const char*>> {
 protected:
  FuzzRigConfig rig_config() const {
    FuzzRigConfig c;
    EXPECT_TRUE(set_mode(GetParam(), c));
    c.guest_binary = RF_GUEST_PATH;
    return c;
  }
};

TEST_P(CampaignTest, ABuiltInPolicyHoldsEveryInvariant) {
  auto rig = FuzzRig::create(rig_config());
  ASSERT_TRUE(rig) << rig.error();
  CampaignConfig config;
  config.seed = 2026;
  config.max_episodes = 12;
  config.duration = std::chrono::minutes(5);
  const CampaignReport r = run_campaign(**rig, config);
  ASSERT_TRUE(r.harness_error.empty()) << r.harness_error;
  ASSERT_FALSE(r.failure) << r.failure->violations.front().invariant << ": " << r.failure->violations.front().detail;
  EXPECT_EQ(r.episodes, 12u);
  EXPECT_GT(r.sqes, 1000u);
  EXPECT_EQ(r.opcodes_sent.count(), 256u);
  EXPECT_EQ(r.flags_sent.count(), 256u);
  EXPECT_GT(r.chaos_episodes, 0u);
  EXPECT_LT(r.chaos_episodes, 12u);
  for (std::size_t i = 0; i < kInvariantCount; ++i) {
    EXPECT_GT(r.invariants[i].checked, 0u) << kInvariantNames[i];
    EXPECT_EQ(r.invariants[i].violated, 0u) << kInvariantNames[i];
  }
  EXPECT_EQ(r.guest_crashes, 0u);  // the hostile guest itself stays within its seccomp filter
  EXPECT_GT(r.disk_changed_bytes, 0u);  // writes went through, and the shadow check saw them
  if (std::string(GetParam()) == "mediated") {
    EXPECT_GT(r.refused, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, CampaignTest, ::testing::Values("passthrough", "passthrough-sqpoll", "mediated"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           std::erase(name, '-');
                           return name;
                         });

// The invariants are not decoration: with a policy that forgets FIXED_FILE and allows plain
// READ and WRITE, a passthrough guest reaches the VMM's own descriptors and memory, and the
// fuzzer finds it, records the program, and the recording reproduces it.
using CampaignFindings = LiveDeviceTest<::testing::Test>;

TEST_F(CampaignFindings, AWeakenedPassthroughPolicyIsCaughtAndTheRecordingReplays) {
  FuzzRigConfig c;
  c.mode = abi::Mode::Passthrough;
  c.guest_binary = RF_GUEST_PATH;
  RestrictionSet weak;
  weak.allow(SqeOpcode::ReadFixed).allow(SqeOpcode::WriteFixed).allow(SqeOpcode::Fsync);
  weak.allow(SqeOpcode::Read).allow(SqeOpcode::Write).allow_flags(abi::kSqeFixedFile);
  c.restrictions = weak;
  auto rig = FuzzRig::create(c);
  ASSERT_TRUE(rig) << rig.error();
  CampaignConfig config;
  config.seed = 7;
  config.max_episodes = 20;
  config.duration = std::chrono::minutes(5);
  const CampaignReport r = run_campaign(**rig, config);
  ASSERT_TRUE(r.harness_error.empty()) << r.harness_error;
  ASSERT_TRUE(r.failure) << "20 episodes with plain READ/WRITE allowed broke nothing";
  bool reached_outside = false;
  for (const Violation& v : r.failure->violations) {
    reached_outside |= v.invariant == std::string("decoy-file") || v.invariant == std::string("canary-pages");
  }
  EXPECT_TRUE(reached_outside) << r.failure->violations.front().invariant << ": " << r.failure->violations.front().detail;

  // Written as --json writes it, read back as --replay reads it, run again.
  TempDir dir("rf-replay");
  const std::string path = dir.path() + "/report.json";
  {
    std::ofstream out(path);
    out << campaign_json(r, c, "test").dump();
  }
  auto replay = read_replay_case(path);
  ASSERT_TRUE(replay) << replay.error();
  EXPECT_EQ(replay->rig.mode, abi::Mode::Passthrough);
  EXPECT_EQ(replay->program.episode, r.failure->episode);
  auto again = (*rig)->run(replay->program);
  ASSERT_TRUE(again) << again.error();
  EXPECT_FALSE(again->violations.empty()) << "the recorded program did not reproduce the violation";
}

TEST(CampaignReplayFile, AReplayFileWithoutAViolationIsRefusedClearly) {
  TempDir dir("rf-replay");
  const std::string path = dir.path() + "/clean.json";
  {
    std::ofstream out(path);
    out << R"({"mode": "passthrough", "violation": null})";
  }
  auto replay = read_replay_case(path);
  ASSERT_FALSE(replay);
  EXPECT_NE(replay.error().find("nothing to replay"), std::string::npos) << replay.error();
  EXPECT_FALSE(read_replay_case(dir.path() + "/missing.json"));
}

}  // namespace
}  // namespace rf::fuzz
