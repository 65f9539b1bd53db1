#include "fuzz/live/fuzz_report.h"

#include <fstream>

#include <fmt/format.h>

namespace rf::fuzz {

namespace {

nlohmann::json rig_json(const FuzzRigConfig& config) {
  return {{"ram_bytes", config.ram_bytes}, {"disk_bytes", config.disk_bytes}, {"queue_depth", config.queue_depth}};
}

nlohmann::json violations_json(const std::vector<Violation>& violations) {
  nlohmann::json out = nlohmann::json::array();
  for (const Violation& v : violations) out.push_back({{"invariant", v.invariant}, {"detail", v.detail}});
  return out;
}

}  // namespace

std::string_view mode_name(const FuzzRigConfig& config) {
  if (config.mode == abi::Mode::Mediated) return "mediated";
  return config.submitter == PassthroughSubmitter::KernelSqpoll ? "passthrough-sqpoll" : "passthrough";
}

bool set_mode(std::string_view name, FuzzRigConfig& config) {
  if (name == "mediated") {
    config.mode = abi::Mode::Mediated;
  } else if (name == "passthrough" || name == "passthrough-sqpoll") {
    config.mode = abi::Mode::Passthrough;
    config.submitter = name == "passthrough" ? PassthroughSubmitter::DeviceThread : PassthroughSubmitter::KernelSqpoll;
  } else {
    return false;
  }
  return true;
}

nlohmann::json campaign_json(const CampaignReport& report, const FuzzRigConfig& config, std::string_view version) {
  nlohmann::json invariants = nlohmann::json::object();
  for (std::size_t i = 0; i < kInvariantCount; ++i) {
    invariants[kInvariantNames[i]] = {{"checked", report.invariants[i].checked}, {"violated", report.invariants[i].violated}};
  }
  nlohmann::json j = {
      {"ringfence_fuzz", version},
      {"mode", mode_name(config)},
      {"seed", report.seed},
      {"config", rig_json(config)},
      {"episodes", report.episodes},
      {"actions", report.actions},
      {"sqes", report.sqes},
      {"cqes", report.cqes},
      {"refused", report.refused},
      {"dropped", report.dropped},
      {"elapsed_s", std::chrono::duration<double>(report.elapsed).count()},
      {"sqes_per_second", report.sqes_per_second()},
      {"episodes_per_second", report.episodes_per_second()},
      {"chaos_episodes", report.chaos_episodes},
      {"inexact_accounting", report.inexact_accounting},
      {"stalled_guests", report.stalled},
      {"guest_timeouts", report.guest_timeouts},
      {"guest_crashes", report.guest_crashes},
      {"broken", report.broken},
      {"coverage", {{"opcodes", report.opcodes_sent.count()}, {"flag_values", report.flags_sent.count()}}},
      {"invariants", invariants},
      {"disk_changed_bytes", report.disk_changed_bytes},
      {"max_teardown_ms", std::chrono::duration<double, std::milli>(report.max_teardown).count()},
      {"max_rss_kib", report.max_rss_kib},
      {"violation", nullptr},
      {"harness_error", report.harness_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(report.harness_error)},
  };
  if (report.failure && report.failure_program) {
    j["violation"] = {{"episode", report.failure->episode},
                      {"violations", violations_json(report.failure->violations)},
                      {"program", program_to_json(*report.failure_program)}};
  }
  return j;
}

nlohmann::json hang_report_json(const FuzzRigConfig& config, const FuzzProgram& program, const std::string& message) {
  return {{"mode", mode_name(config)},
          {"seed", program.seed},
          {"config", rig_json(config)},
          {"violation",
           {{"episode", program.episode},
            {"violations", nlohmann::json::array({{{"invariant", "no-hang"}, {"detail", message}}})},
            {"program", program_to_json(program)}}}};
}

Result<ReplayCase, std::string> read_replay_case(const std::string& path) {
  std::ifstream in(path);
  if (!in) return unexpected(fmt::format("{}: cannot be read (give the file `ringfence fuzz --json` wrote)", path));
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return unexpected(fmt::format("{}: not valid JSON", path));
  if (!j.is_object() || !j.contains("violation") || !j["violation"].is_object() || !j["violation"].contains("program")) {
    return unexpected(fmt::format("{}: records no violation, so there is nothing to replay (a clean run's report has "
                                  "\"violation\": null)", path));
  }
  ReplayCase c;
  const std::string mode = j.contains("mode") && j["mode"].is_string() ? j["mode"].get<std::string>() : "";
  if (!set_mode(mode, c.rig)) {
    return unexpected(fmt::format("{}: \"mode\" must be passthrough, passthrough-sqpoll or mediated", path));
  }
  if (j.contains("config") && j["config"].is_object()) {
    const auto& cfg = j["config"];
    const auto get = [&](const char* key, auto& out) {
      if (cfg.contains(key) && cfg[key].is_number_unsigned()) out = cfg[key].get<std::remove_reference_t<decltype(out)>>();
    };
    get("ram_bytes", c.rig.ram_bytes);
    get("disk_bytes", c.rig.disk_bytes);
    get("queue_depth", c.rig.queue_depth);
  }
  auto program = program_from_json(j["violation"]["program"]);
  if (!program) return unexpected(fmt::format("{}: {}", path, program.error()));
  c.program = std::move(*program);
  return c;
}

}  // namespace rf::fuzz
