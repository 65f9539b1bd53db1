// The JSON of `ringfence fuzz --json` and what `--replay` reads back: the run's mode and device
// shape, its numbers and invariants, and the program of the first episode that broke one (or
// hung), which is all a replay needs.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz/live/campaign.h"

namespace rf::fuzz {

nlohmann::json campaign_json(const CampaignReport& report, const FuzzRigConfig& config, std::string_view version);
nlohmann::json hang_report_json(const FuzzRigConfig& config, const FuzzProgram& program, const std::string& message);

struct ReplayCase {
  FuzzRigConfig rig;  // mode and device shape as recorded
  FuzzProgram program;
};
// Reads a report written by --json (with a violation) or by the watchdog.
Result<ReplayCase, std::string> read_replay_case(const std::string& path);

// "passthrough", "passthrough-sqpoll" or "mediated": what `--mode` takes and the JSON records.
std::string_view mode_name(const FuzzRigConfig& config);
// Sets config.mode and config.submitter from such a name; false for any other.
bool set_mode(std::string_view name, FuzzRigConfig& config);

}  // namespace rf::fuzz
