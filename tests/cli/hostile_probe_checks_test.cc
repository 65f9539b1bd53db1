#include "cli/hostile_probe_checks.h"

#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

namespace rf::cli {
namespace {

TEST(HostileProbeChecks, AProbeAnsweredAsTheCatalogueSaysPasses) {
  auto canary = CanaryPage::create();
  ASSERT_TRUE(canary);
  const ProbeTargets targets{canary->address(), 0x1000000, 0x4000, 1 << 20};
  std::vector<std::string> seen;
  const auto checks = run_hostile_probes(abi::Mode::Mediated, targets, *canary, "/nonexistent", [&](const HostileProbe& p, const abi::GuestSqe& sqe) {
    seen.emplace_back(p.name);
    EXPECT_EQ(sqe.opcode, p.opcode);
    return std::optional<std::int32_t>(p.mediated);
  });
  ASSERT_EQ(checks.size(), hostile_probes().size());
  EXPECT_EQ(seen.size(), hostile_probes().size()) << "every probe is submitted, once";
  for (const Check& c : checks) EXPECT_TRUE(c.passed) << c.name << ": " << c.observed;
  EXPECT_NE(checks.back().observed.find("-ENXIO (mediator)"), std::string::npos) << checks.back().observed;
}

TEST(HostileProbeChecks, AWrongCompletionOrAChangedCanaryFails) {
  auto canary = CanaryPage::create();
  ASSERT_TRUE(canary);
  const ProbeTargets targets{canary->address(), 0x1000000, 0x4000, 1 << 20};
  // The other mode's answer: only the probes whose two answers differ fail.
  const auto wrong_mode = run_hostile_probes(abi::Mode::Passthrough, targets, *canary, "/nonexistent",
                                             [](const HostileProbe& p, const abi::GuestSqe&) { return std::optional<std::int32_t>(p.mediated); });
  for (std::size_t i = 0; i < wrong_mode.size(); ++i) {
    const HostileProbe& p = hostile_probes()[i];
    EXPECT_EQ(wrong_mode[i].passed, p.passthrough == p.mediated) << p.name;
  }
  // No completion at all.
  const auto silent = run_hostile_probes(abi::Mode::Passthrough, targets, *canary, "/nonexistent",
                                         [](const HostileProbe&, const abi::GuestSqe&) { return std::optional<std::int32_t>(); });
  for (const Check& c : silent) {
    EXPECT_FALSE(c.passed) << c.name;
    EXPECT_NE(c.observed.find("no completion"), std::string::npos) << c.observed;
  }
  // The right errno, but the canary was written: a failure that says so.
  const auto scribbled = run_hostile_probes(abi::Mode::Passthrough, targets, *canary, "/nonexistent",
                                            [&](const HostileProbe& p, const abi::GuestSqe& sqe) {
                                              // SAFETY: the test's own canary page, one page long.
                                              if (p.witness == ProbeWitness::CanaryPage) reinterpret_cast<char*>(sqe.addr)[7] = 0;
                                              return std::optional<std::int32_t>(p.passthrough);
                                            });
  EXPECT_FALSE(scribbled.front().passed);
  EXPECT_NE(scribbled.front().observed.find("canary CHANGED"), std::string::npos) << scribbled.front().observed;
}

TEST(HostileProbeChecks, TheNameSaysWhatEachModeExpects) {
  for (const HostileProbe& p : hostile_probes()) {
    const std::string name = probe_check_name(p);
    EXPECT_NE(name.find(std::string(p.what)), std::string::npos) << name;
    if (p.passthrough != p.mediated) {
      EXPECT_NE(name.find(" in passthrough, "), std::string::npos) << name;
    }
  }
}

}  // namespace
}  // namespace rf::cli
