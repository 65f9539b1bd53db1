// `ringfence probe [--json] [--target PATH]`: what this kernel can do for ringfence.
#include "cli/probe_command.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/markdown_table.h"
#include "ring/probe.h"
#include "ring/sqe_exposure.h"
#include "util/unique_fd.h"

namespace rf::cli {

namespace {

// A file to check IOPOLL against when the user named none: an unnamed (O_TMPFILE) file on the
// temporary directory's filesystem, reopened by its /proc path. Nothing is left behind.
struct DefaultTarget {
  UniqueFd fd;
  std::string path;   // /proc/self/fd/N
  std::string label;  // what the report calls it
};

std::optional<DefaultTarget> make_default_target(std::string& why_not) {
  const char* env = std::getenv("TMPDIR");
  const std::string dir = env != nullptr && *env != '\0' ? env : "/var/tmp";
  UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!fd) {
    why_not = fmt::format("cannot create a temporary file in {}: {}", dir, std::strerror(errno));
    return std::nullopt;
  }
  const std::string block(1 << 16, '\xa5');
  if (::pwrite(fd.get(), block.data(), block.size(), 0) != static_cast<ssize_t>(block.size()) || ::fsync(fd.get()) != 0) {
    why_not = fmt::format("cannot write a temporary file in {}: {}", dir, std::strerror(errno));
    return std::nullopt;
  }
  std::string path = fmt::format("/proc/self/fd/{}", fd.get());
  return DefaultTarget{std::move(fd), std::move(path), fmt::format("a temporary file in {}", dir)};
}

const char* yes_no(bool b) { return b ? "yes" : "no"; }

std::string bytes_label(const std::optional<std::uint64_t>& b) {
  return b ? fmt::format("{} KiB", *b / 1024) : std::string("unlimited");
}

nlohmann::json feature_json(const FeatureStatus& f) { return {{"supported", f.supported}, {"detail", f.detail}}; }

nlohmann::json exposure_json(const SqeExposure& e) {
  nlohmann::json fields = nlohmann::json::array();
  for (const SqeFieldFinding& f : e.fields) {
    fields.push_back({{"field", f.field}, {"opcodes", f.opcodes}, {"interpreted", f.interpreted}, {"seen", f.seen},
                      {"lets_a_guest", f.lets_a_guest}});
  }
  return {{"probed", e.ran}, {"error", e.ran ? nlohmann::json(nullptr) : nlohmann::json(e.error)}, {"target", e.target},
          {"fields", fields}};
}

std::string exposure_text(const SqeExposure& e) {
  std::string out = "\nPassthrough exposure: SQE fields of READ_FIXED, WRITE_FIXED and FSYNC that this kernel interprets\n"
                    "and no restriction can filter (the guest writes them; mediated mode rebuilds every SQE)";
  if (!e.ran) return out + fmt::format(": not probed: {}\n", e.error);
  out += fmt::format(", tried on {} from a thread without capabilities, as a device's ring:\n\n", e.target);
  MarkdownTable t({"field", "opcodes", "interpreted", "seen", "lets a guest"});
  for (const SqeFieldFinding& f : e.fields) t.add_row({f.field, f.opcodes, yes_no(f.interpreted), f.seen, f.lets_a_guest});
  return out + t.render();
}

nlohmann::json to_json(const KernelCapabilities& c, const std::string& iopoll_label) {
  nlohmann::json ops = nlohmann::json::array();
  for (const auto& op : c.sqe_opcodes) ops.push_back({{"op", op.op}, {"name", op.name}, {"supported", op.supported}});
  nlohmann::json j = {
      {"kernel_release", c.kernel_release},
      {"io_uring_disabled_sysctl", c.io_uring_disabled ? nlohmann::json(*c.io_uring_disabled) : nlohmann::json(nullptr)},
      {"io_uring", feature_json(c.io_uring)},
      {"features", {{"mask", c.features}, {"names", feature_names(c.features)}}},
      {"setup_flags",
       {{"R_DISABLED", feature_json(c.r_disabled)},
        {"SQPOLL", feature_json(c.sqpoll)},
        {"NO_MMAP", feature_json(c.no_mmap)},
        {"NO_SQARRAY", feature_json(c.no_sqarray)},
        {"ATTACH_WQ", feature_json(c.attach_wq)}}},
      {"restrictions", feature_json(c.restrictions)},
      {"register_restriction_model",
       c.register_model == RegisterRestrictionModel::LockedByAnyRestriction ? "locked-by-any-restriction"
                                                                             : "tracked-separately"},
      {"sqe_opcodes", ops},
      {"register_opcode_count", c.register_op_count},
      {"memlock",
       {{"soft_bytes", c.memlock.soft_bytes ? nlohmann::json(*c.memlock.soft_bytes) : nlohmann::json(nullptr)},
        {"hard_bytes", c.memlock.hard_bytes ? nlohmann::json(*c.memlock.hard_bytes) : nlohmann::json(nullptr)},
        {"cap_ipc_lock", c.memlock.cap_ipc_lock}}},
  };
  if (c.iopoll) {
    j["iopoll"] = {{"target", iopoll_label},
                   {"supported", c.iopoll->supported},
                   {"detail", c.iopoll->detail},
                   {"device", c.iopoll->device ? nlohmann::json(*c.iopoll->device) : nlohmann::json(nullptr)}};
  }
  return j;
}

std::string to_text(const KernelCapabilities& c, const std::string& iopoll_label) {
  std::string out = fmt::format("ringfence probe: kernel {}\n\n", c.kernel_release);
  MarkdownTable t({"capability", "supported", "detail"});
  const std::string sysctl = c.io_uring_disabled ? fmt::format("kernel.io_uring_disabled = {}", *c.io_uring_disabled)
                                                 : std::string("no kernel.io_uring_disabled sysctl (before 6.6)");
  t.add_row({"io_uring", yes_no(c.io_uring.supported), c.io_uring.detail + "; " + sysctl});
  t.add_row({"R_DISABLED", yes_no(c.r_disabled.supported), c.r_disabled.detail});
  t.add_row({"restrictions", yes_no(c.restrictions.supported), c.restrictions.detail});
  t.add_row({"SQPOLL", yes_no(c.sqpoll.supported), c.sqpoll.detail});
  t.add_row({"NO_MMAP", yes_no(c.no_mmap.supported), c.no_mmap.detail});
  t.add_row({"NO_SQARRAY", yes_no(c.no_sqarray.supported), c.no_sqarray.detail});
  t.add_row({"ATTACH_WQ", yes_no(c.attach_wq.supported), c.attach_wq.detail});
  if (c.iopoll) t.add_row({fmt::format("IOPOLL ({})", iopoll_label), yes_no(c.iopoll->supported), c.iopoll->detail});
  out += t.render();

  unsigned supported = 0;
  std::vector<std::string> missing;
  for (const auto& op : c.sqe_opcodes) {
    if (op.supported) {
      ++supported;
    } else {
      missing.push_back(op.name);
    }
  }
  out += fmt::format("\nSQE opcodes: {} of {} supported (0..{})", supported, c.sqe_opcodes.size(),
                     c.sqe_opcodes.empty() ? 0 : c.sqe_opcodes.size() - 1);
  out += missing.empty() ? "\n" : fmt::format("; unsupported: {}\n", fmt::join(missing, ", "));
  out += fmt::format("register opcodes: {} (0..{}); {}\n", c.register_op_count,
                     c.register_op_count == 0 ? 0 : c.register_op_count - 1,
                     c.register_model == RegisterRestrictionModel::LockedByAnyRestriction
                         ? "any restriction set locks the register opcodes it does not list (Linux < 7.0)"
                         : "register opcodes are restricted separately (Linux 7.0+)");
  out += fmt::format("features: {:#x} {}\n", c.features, fmt::join(feature_names(c.features), " "));
  out += fmt::format("RLIMIT_MEMLOCK: soft {}, hard {}; CAP_IPC_LOCK: {}{}\n", bytes_label(c.memlock.soft_bytes),
                     bytes_label(c.memlock.hard_bytes), yes_no(c.memlock.cap_ipc_lock),
                     c.memlock.cap_ipc_lock ? " (registered buffers are not charged to the limit)"
                                            : " (registered buffers and ring memory count against the limit)");
  return out;
}

}  // namespace

int run_probe(const ProbeArgs& args) {
  std::optional<DefaultTarget> temp;
  std::string label;
  std::optional<std::string> target = args.target;
  if (target) {
    label = *target;
  } else {
    std::string why_not;
    temp = make_default_target(why_not);
    if (temp) {
      target = temp->path;
      label = temp->label;
    } else {
      std::cerr << "ringfence probe: IOPOLL not checked: " << why_not << " (give --target PATH)\n";
    }
  }
  const KernelCapabilities caps = probe_kernel(target);
  const SqeExposure exposure = caps.io_uring.supported ? probe_sqe_exposure() : SqeExposure{false, "no io_uring", "", {}};
  if (args.json) {
    nlohmann::json j = to_json(caps, label);
    j["passthrough_sqe_exposure"] = exposure_json(exposure);
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << to_text(caps, label) << exposure_text(exposure);
  }
  return caps.io_uring.supported ? 0 : 1;
}

}  // namespace rf::cli
