#include "cli/hostile_probe_checks.h"

#include <sys/stat.h>

#include <fmt/format.h>

namespace rf::cli {

namespace {

std::uint64_t file_size(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

std::string_view witness_name(ProbeWitness witness) {
  switch (witness) {
    case ProbeWitness::CanaryPage: return "canary";
    case ProbeWitness::ImageSize: return "image";
    case ProbeWitness::None: break;
  }
  return "";
}

}  // namespace

std::string probe_check_name(const HostileProbe& probe) {
  const std::string expected =
      probe.passthrough == probe.mediated
          ? result_label(probe.passthrough)
          : fmt::format("{} in passthrough, {} in mediated", result_label(probe.passthrough), result_label(probe.mediated));
  const std::string_view witness = witness_name(probe.witness);
  return fmt::format("{} (expected: {}{})", probe.what, expected, witness.empty() ? "" : fmt::format(", {} unchanged", witness));
}

std::vector<Check> run_hostile_probes(abi::Mode mode, const ProbeTargets& targets, const CanaryPage& canary,
                                      const std::string& image, const SubmitProbe& submit) {
  std::vector<Check> checks;
  for (const HostileProbe& probe : hostile_probes()) {
    const std::uint64_t image_before = file_size(image);
    const auto res = submit(probe, probe_sqe(probe, targets));
    bool unchanged = true;
    if (probe.witness == ProbeWitness::CanaryPage) unchanged = canary.intact();
    if (probe.witness == ProbeWitness::ImageSize) unchanged = file_size(image) == image_before;
    const std::string_view witness = witness_name(probe.witness);
    Check c{probe_check_name(probe),
            fmt::format("{} ({}){}", result_label(res), mode == abi::Mode::Passthrough ? "kernel" : "mediator",
                        witness.empty() ? "" : fmt::format(", {} {}", witness, unchanged ? "unchanged" : "CHANGED")),
            res == probe.expected(mode) && unchanged};
    checks.push_back(std::move(c));
  }
  return checks;
}

}  // namespace rf::cli
