#include "cli/fuzz_command.h"

#include <chrono>
#include <fstream>
#include <iostream>
#include <locale>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/markdown_table.h"
#include "fuzz/live/campaign.h"
#include "fuzz/live/fuzz_report.h"
#include "fuzz/virtio/virtio_campaign.h"

namespace rf::cli {

namespace {

using namespace rf::fuzz;

// Digits grouped in threes with commas, whatever the environment's locale: fmt's locale-aware
// {:L} with a numpunct facet of our own.
struct CommaGrouping : std::numpunct<char> {
  char do_thousands_sep() const override { return ','; }
  std::string do_grouping() const override { return "\3"; }
};

std::string with_commas(std::uint64_t v) {
  static const std::locale grouped(std::locale::classic(), new CommaGrouping);  // the locale owns the facet
  return fmt::format(grouped, "{:L}", v);
}

std::string describe_violations(const std::vector<Violation>& violations) {
  std::string out;
  for (const Violation& v : violations) out += fmt::format("  - {}: {}\n", v.invariant, v.detail);
  return out;
}

bool write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  out.close();
  if (!out) std::cerr << fmt::format("ringfence fuzz: cannot write {}\n", path);
  return static_cast<bool>(out);
}

int replay(const FuzzArgs& args) {
  auto c = read_replay_case(args.replay_path);
  if (!c) {
    std::cerr << "ringfence fuzz: --replay " << c.error() << "\n";
    return 2;
  }
  auto rig = FuzzRig::create(c->rig);
  if (!rig) {
    std::cerr << "ringfence fuzz: " << rig.error() << "\n";
    return 2;
  }
  std::cout << fmt::format("Replaying episode {} of seed {} ({} actions) in {} mode\n", c->program.episode, c->program.seed,
                           c->program.actions.size(), mode_name(c->rig));
  auto result = (*rig)->run(c->program);
  if (!result) {
    std::cerr << "ringfence fuzz: " << result.error() << "\n";
    return 2;
  }
  std::cout << fmt::format("The device took {} SQEs and posted {} completions ({} refused, {} dropped){}\n",
                           result->settlement.consumed, result->settlement.completed, result->settlement.refused,
                           result->settlement.dropped,
                           result->settlement.broken != BrokenReason::None
                               ? fmt::format("; broken: {} ({})", broken_reason_name(result->settlement.broken),
                                             result->settlement.broken_detail)
                               : "");
  if (result->violations.empty()) {
    std::cout << "No invariant broke: the violation did not reproduce.\n";
    return 0;
  }
  std::cout << "Reproduced:\n" << describe_violations(result->violations);
  return 1;
}

void print_report(const CampaignReport& r, const FuzzRigConfig& config, const FuzzRig& rig) {
  std::cout << fmt::format("## ringfence fuzz: {} mode, seed {}\n\n", mode_name(config), r.seed);
  std::cout << fmt::format("Disk: {}; guest RAM {} MiB; SQ {} entries.\n\n", rig.disk_description(), config.ram_bytes >> 20,
                           rig.geometry().sq_entries);
  MarkdownTable t({"", "value"});
  const double seconds = std::chrono::duration<double>(r.elapsed).count();
  t.add_row({"time", fmt::format("{:.1f} s", seconds)});
  t.add_row({"episodes (device + guest process each)", fmt::format("{} ({:.1f}/s)", r.episodes, r.episodes_per_second())});
  t.add_row({"guest actions", with_commas(r.actions)});
  t.add_row({"SQEs the device took (executions)", fmt::format("{} ({}/s)", with_commas(r.sqes), with_commas(static_cast<std::uint64_t>(r.sqes_per_second())))});
  t.add_row({"completions posted", with_commas(r.cqes)});
  if (config.mode == abi::Mode::Mediated) t.add_row({"refused by the validator", with_commas(r.refused)});

  t.add_row({"opcodes / flag values sent", fmt::format("{}/256 / {}/256", r.opcodes_sent.count(), r.flags_sent.count())});
  t.add_row({"chaos episodes (jumps, rewritten SQEs)", std::to_string(r.chaos_episodes)});
  std::string broken;
  for (const auto& [reason, n] : r.broken) broken += fmt::format("{}{} {}", broken.empty() ? "" : ", ", n, reason);
  t.add_row({"devices marked broken", broken.empty() ? "0" : broken});
  t.add_row({"guests that stalled / timed out / crashed", fmt::format("{} / {} / {}", r.stalled, r.guest_timeouts, r.guest_crashes)});
  t.add_row({"disk bytes changed", with_commas(r.disk_changed_bytes)});
  t.add_row({"slowest teardown", fmt::format("{:.1f} ms", std::chrono::duration<double, std::milli>(r.max_teardown).count())});
  t.add_row({"VMM resident memory, at most", fmt::format("{} MiB", r.max_rss_kib >> 10)});
  std::cout << t.render() << "\n";

  MarkdownTable inv({"invariant", "episodes checked", "violations"});
  for (std::size_t i = 0; i < kInvariantCount; ++i) {
    inv.add_row({kInvariantNames[i], std::to_string(r.invariants[i].checked), std::to_string(r.invariants[i].violated)});
  }
  std::cout << inv.render();
  if (r.inexact_accounting != 0) {
    std::cout << fmt::format("\n{} episodes could only check \"no more CQEs than SQEs\": a denied SQE that starts a link chain with IOSQE_CQE_SKIP_SUCCESS hides the CQEs of the SQEs after it (docs/threat-model.md).\n", r.inexact_accounting);
  }
}

}  // namespace

// --mode virtio: a hostile virtio guest against the vhost-user back-end's queues.
int run_fuzz_virtio(const FuzzArgs& args) {
  VirtioCampaignConfig config;
  config.duration = std::chrono::milliseconds(static_cast<std::int64_t>(args.seconds * 1000));
  config.seed = args.seed ? *args.seed : static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  config.max_episodes = args.episodes;
  auto last_print = std::chrono::steady_clock::now();
  config.progress = [&](std::uint32_t episodes, std::uint64_t requests) {
    if (std::chrono::steady_clock::now() - last_print < std::chrono::seconds(1)) return;
    last_print = std::chrono::steady_clock::now();
    std::cerr << fmt::format("\rringfence fuzz: {} episodes, {} requests   ", episodes, requests);
  };
  std::cerr << fmt::format("ringfence fuzz: virtio mode, seed {}, {:.0f} s\n", config.seed, args.seconds);
  const VirtioCampaignReport r = run_virtio_campaign(config);
  std::cerr << "\r" << std::string(70, ' ') << "\r";
  if (!r.harness_error.empty()) {
    std::cerr << "ringfence fuzz: could not run: " << r.harness_error << "\n";
    return 2;
  }
  const double seconds = std::chrono::duration<double>(r.elapsed).count();
  std::cout << fmt::format("virtio mode, seed {}: {} episodes in {:.1f} s, {} guest actions, {} requests ({:.0f}/s), {} used "
                           "entries, {} kernel I/Os, {} I/O errors, max RSS {} MiB\n\n",
                           r.seed, r.episodes, seconds, r.actions, r.requests, seconds > 0 ? static_cast<double>(r.requests) / seconds : 0.0,
                           r.completed, r.kernel_ios, r.io_errors, r.max_rss_kib / 1024);
  MarkdownTable refusals({"refused before the kernel", "requests"});
  for (const auto& [why, n] : r.refused) refusals.add_row({why, std::to_string(n)});
  std::cout << refusals.render() << "\n";
  MarkdownTable broken({"queue broken by the guest", "episodes"});
  for (const auto& [why, n] : r.broken) broken.add_row({why, std::to_string(n)});
  std::cout << broken.render() << "\n";
  MarkdownTable invariants({"invariant", "checked", "violated"});
  for (std::size_t i = 0; i < kVirtioInvariantCount; ++i) {
    invariants.add_row({kVirtioInvariantNames[i], std::to_string(r.checked[i]), std::to_string(r.violated[i])});
  }
  std::cout << invariants.render();
  if (!args.json_path.empty()) {
    nlohmann::json j;
    j["version"] = args.version;
    j["mode"] = "virtio";
    j["seed"] = r.seed;
    j["episodes"] = r.episodes;
    j["requests"] = r.requests;
    j["used"] = r.completed;
    j["kernel_ios"] = r.kernel_ios;
    j["refused"] = r.refused;
    j["broken"] = r.broken;
    for (std::size_t i = 0; i < kVirtioInvariantCount; ++i) {
      j["invariants"][kVirtioInvariantNames[i]] = {{"checked", r.checked[i]}, {"violated", r.violated[i]}};
    }
    if (r.failed_episode) j["failure"] = {{"episode", *r.failed_episode}, {"what", r.failure}};
    if (!write_json(args.json_path, j)) return 2;
  }
  if (r.failed_episode) {
    std::cout << fmt::format("\nVIOLATION in episode {}: {}\n`ringfence fuzz --mode virtio --seed {} --episodes {}` runs it "
                             "again (episodes are drawn from the seed).\n",
                             *r.failed_episode, r.failure, r.seed, *r.failed_episode + 1);
    return 1;
  }
  return 0;
}

int run_fuzz(const FuzzArgs& args) {
  if (!args.replay_path.empty()) return replay(args);
  if (args.mode == "virtio") return run_fuzz_virtio(args);
  FuzzRigConfig config;
  if (!set_mode(args.mode, config)) {
    std::cerr << "ringfence fuzz: --mode passthrough, passthrough-sqpoll or mediated is required (or --replay FILE)\n";
    return 2;
  }
  auto rig = FuzzRig::create(config);
  if (!rig) {
    std::cerr << "ringfence fuzz: " << rig.error() << "\n";
    return 2;
  }
  CampaignConfig campaign;
  campaign.duration = std::chrono::milliseconds(static_cast<std::int64_t>(args.seconds * 1000));
  campaign.seed = args.seed ? *args.seed
                            : static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  campaign.max_episodes = args.episodes;
  campaign.hang_report = args.json_path;
  auto last_print = std::chrono::steady_clock::now();
  campaign.progress = [&](const CampaignProgress& p) {
    if (std::chrono::steady_clock::now() - last_print < std::chrono::seconds(1)) return;
    last_print = std::chrono::steady_clock::now();
    std::cerr << fmt::format("\rringfence fuzz: {} episodes, {} SQEs, {:.0f} s   ", p.episodes, p.sqes,
                             std::chrono::duration<double>(p.elapsed).count());
  };
  std::cerr << fmt::format("ringfence fuzz: {} mode, seed {}, {:.0f} s\n", args.mode, campaign.seed, args.seconds);
  const CampaignReport report = run_campaign(**rig, campaign);
  std::cerr << "\r" << std::string(70, ' ') << "\r";
  print_report(report, config, **rig);
  bool wrote = true;
  if (!args.json_path.empty()) wrote = write_json(args.json_path, campaign_json(report, config, args.version));
  if (!report.harness_error.empty()) {
    std::cerr << "ringfence fuzz: could not run: " << report.harness_error << "\n";
    return 2;
  }
  if (report.failure) {
    std::cout << fmt::format("\nVIOLATION in episode {}:\n{}", report.failure->episode, describe_violations(report.failure->violations));
    if (!args.json_path.empty()) {
      std::cout << fmt::format("Its program is in {}; `ringfence fuzz --replay {}` runs it again.\n", args.json_path, args.json_path);
    } else {
      std::cout << fmt::format("Run again with --seed {} --json FILE to keep its program for --replay.\n", report.seed);
    }
    return 1;
  }
  return wrote ? 0 : 2;
}

}  // namespace rf::cli
