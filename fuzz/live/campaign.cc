#include "fuzz/live/campaign.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "fuzz/live/fuzz_report.h"

namespace rf::fuzz {

namespace {

// Ends the process if one episode runs past its limit: a hang is a finding, and the only way
// out of a hung teardown is to stop.
class Watchdog {
 public:
  Watchdog(const FuzzRig& rig, const CampaignConfig& config) : rig_(rig), config_(config), thread_([this] { loop(); }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  void begin(const FuzzProgram& program) {
    std::lock_guard lock(mutex_);
    program_ = &program;
    started_ = std::chrono::steady_clock::now();
  }
  void end() {
    std::lock_guard lock(mutex_);
    program_ = nullptr;
  }

 private:
  void loop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      wake_.wait_for(lock, std::chrono::milliseconds(200));
      if (program_ == nullptr || std::chrono::steady_clock::now() - started_ < config_.watchdog) continue;
      const std::string message = fmt::format("ringfence fuzz: episode {} (seed {}) has run for more than {} ms: the VMM hangs",
                                              program_->episode, program_->seed, config_.watchdog.count());
      if (!config_.hang_report.empty()) {
        std::ofstream out(config_.hang_report);
        out << hang_report_json(rig_.config(), *program_, message).dump(2) << "\n";
      }
      std::fprintf(stderr, "%s\n", message.c_str());
      ::_exit(3);
    }
  }

  const FuzzRig& rig_;
  const CampaignConfig& config_;
  std::mutex mutex_;
  std::condition_variable wake_;
  const FuzzProgram* program_ = nullptr;
  std::chrono::steady_clock::time_point started_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts when the rest is ready
};

}  // namespace

double CampaignReport::sqes_per_second() const {
  const double s = std::chrono::duration<double>(elapsed).count();
  return s > 0 ? static_cast<double>(sqes) / s : 0.0;
}

double CampaignReport::episodes_per_second() const {
  const double s = std::chrono::duration<double>(elapsed).count();
  return s > 0 ? static_cast<double>(episodes) / s : 0.0;
}

void tally_episode(CampaignReport& report, const FuzzProgram& program, const EpisodeResult& r) {
  ++report.episodes;
  report.actions += program.actions.size();
  report.sqes += r.settlement.consumed;
  report.cqes += r.settlement.completed;
  report.refused += r.settlement.refused;
  report.dropped += r.settlement.dropped;
  if (!keeps_sq_protocol(program)) ++report.chaos_episodes;
  if (!r.settlement.exact) ++report.inexact_accounting;
  if (r.guest && r.guest->status == guest::FuzzStatus::Stalled) ++report.stalled;
  if (r.guest_timed_out) ++report.guest_timeouts;
  if (!r.guest_timed_out && !r.guest_exit.exited) ++report.guest_crashes;
  if (r.settlement.broken != BrokenReason::None) ++report.broken[std::string(broken_reason_name(r.settlement.broken))];
  for (const ActionSpec& s : program.actions) {
    const auto op = static_cast<guest::FuzzOp>(s.action.op);
    if (op != guest::FuzzOp::PutSqe && op != guest::FuzzOp::ScribbleSqe) continue;
    report.opcodes_sent.set(s.action.sqe.opcode);
    report.flags_sent.set(s.action.sqe.flags);
  }
  for (std::size_t i = 0; i < kInvariantCount; ++i) {
    // The shadow disk is checked only where it can be exact.
    if (i == 3 && !r.shadow_exact) continue;
    ++report.invariants[i].checked;
  }
  for (const Violation& v : r.violations) {
    for (std::size_t i = 0; i < kInvariantCount; ++i) {
      if (v.invariant == kInvariantNames[i]) ++report.invariants[i].violated;
    }
  }
  report.disk_changed_bytes += r.disk_changed_bytes;
  report.max_teardown = std::max(report.max_teardown, r.teardown);
  report.max_rss_kib = std::max(report.max_rss_kib, r.resources.rss_kib);
}

CampaignReport run_campaign(FuzzRig& rig, const CampaignConfig& config) {
  CampaignReport report;
  report.seed = config.seed;
  Watchdog watchdog(rig, config);
  rig.take_baseline();  // the watchdog's thread is the VMM's from now on
  const auto start = std::chrono::steady_clock::now();
  for (std::uint32_t episode = 0;; ++episode) {
    if (config.max_episodes && episode >= *config.max_episodes) break;
    if (std::chrono::steady_clock::now() - start >= config.duration && episode > 0) break;
    FuzzProgram program = generate_program(rig.geometry(), config.seed, episode);
    watchdog.begin(program);
    auto result = rig.run(program);
    watchdog.end();
    report.elapsed = std::chrono::steady_clock::now() - start;
    if (!result) {
      report.harness_error = fmt::format("episode {}: {}", episode, result.error());
      break;
    }
    tally_episode(report, program, *result);
    if (config.progress) config.progress({report.episodes, report.sqes, report.elapsed});
    if (!result->violations.empty()) {
      report.failure = std::move(*result);
      report.failure_program = std::move(program);
      break;
    }
  }
  report.elapsed = std::chrono::steady_clock::now() - start;
  return report;
}

}  // namespace rf::fuzz
