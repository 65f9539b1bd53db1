// The C API's policies: loaded or parsed, linted against the running kernel, compiled once.
#include <string_view>
#include <vector>

#include "capi/capi_internal.h"
#include "restrictions/diagnostic.h"
#include "restrictions/policy_compiler.h"
#include "restrictions/policy_linter.h"
#include "restrictions/policy_loader.h"
#include "restrictions/policy_parser.h"
#include "ring/probe.h"

using namespace rf;
using namespace rf::capi;

namespace {

std::string join(const std::vector<policy::Diagnostic>& diagnostics) {
  std::string text;
  for (const policy::Diagnostic& d : diagnostics) {
    if (!text.empty()) text += '\n';
    text += policy::format_diagnostic(d);
  }
  return text;
}

rf_status refuse(std::string_view source, const std::vector<policy::Diagnostic>& diagnostics) {
  return fail(RF_E_POLICY, 0, fmt::format("policy {} is refused:\n{}", source, join(diagnostics)));
}

// Lints `parsed` against the running kernel, compiles it and hands it out.
rf_status publish(std::string_view source, policy::Policy parsed, rf_policy** out) {
  std::vector<policy::Diagnostic> findings = policy::lint_policy(parsed, &running_kernel_opcode_support());
  if (policy::has_errors(findings)) return refuse(source, findings);
  auto handle = std::make_unique<rf_policy>();
  handle->restrictions = policy::compile_policy(parsed);
  handle->warnings = join(findings);
  handle->policy = std::move(parsed);
  *out = handle.release();
  return RF_OK;
}

}  // namespace

extern "C" {

rf_status rf_policy_load(const char* name_or_path, rf_policy** out) {
  const char* const fn = __func__;
  return guarded(fn, [&] {
    if (name_or_path == nullptr || out == nullptr) return invalid_argument(fn, "name_or_path or out is NULL");
    auto loaded = policy::load_policy(name_or_path);
    if (!loaded) return refuse(name_or_path, loaded.error());
    return publish(name_or_path, std::move(*loaded), out);
  });
}

rf_status rf_policy_parse(const char* text, size_t length, const char* source_name, rf_policy** out) {
  const char* const fn = __func__;
  return guarded(fn, [&] {
    if (text == nullptr || out == nullptr) return invalid_argument(fn, "text or out is NULL");
    const std::string source = source_name != nullptr ? source_name : "<memory>";
    auto parsed = policy::parse_policy(std::string_view(text, length), source);
    if (!parsed) return refuse(source, parsed.error());
    return publish(source, std::move(*parsed), out);
  });
}

const char* rf_policy_name(const rf_policy* policy) { return policy == nullptr ? "" : policy->policy.name.c_str(); }

rf_mode rf_policy_mode(const rf_policy* policy) {
  if (policy == nullptr) return static_cast<rf_mode>(0);
  return policy->policy.mode == policy::Mode::Passthrough ? RF_MODE_PASSTHROUGH : RF_MODE_MEDIATED;
}

const char* rf_policy_warnings(const rf_policy* policy) { return policy == nullptr ? "" : policy->warnings.c_str(); }

void rf_policy_free(rf_policy* policy) { delete policy; }

}  // extern "C"
