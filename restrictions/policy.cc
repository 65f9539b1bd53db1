#include "restrictions/policy.h"

namespace rf::policy {

std::string_view mode_name(Mode mode) { return mode == Mode::Passthrough ? "passthrough" : "mediated"; }

}  // namespace rf::policy
