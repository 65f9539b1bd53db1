#include "restrictions/policy_explainer.h"

#include <fmt/format.h>

#include "restrictions/opcode_safety.h"
#include "restrictions/policy_compiler.h"
#include "ring/opcodes.h"

namespace rf::policy {

namespace {

// Joins names into lines of at most `width` characters, each starting with `indent`.
std::string wrap(const std::vector<std::string>& words, std::string_view indent, std::size_t width = 96) {
  std::string out;
  std::string line(indent);
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::string word = words[i] + (i + 1 < words.size() ? "," : "");
    if (line.size() > indent.size() && line.size() + 1 + word.size() > width) {
      out += line + "\n";
      line = std::string(indent);
    }
    if (line.size() > indent.size()) line += ' ';
    line += word;
  }
  if (line.size() > indent.size()) out += line + "\n";
  return out;
}

std::string indent_text(std::string_view text, std::string_view indent) {
  std::string out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    out += fmt::format("{}{}\n", indent, text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string rule_row(std::size_t i, const RestrictionRule& rule) {
  return std::visit(
      [&](const auto& r) -> std::string {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, AllowSqeOp>) {
          return fmt::format("  {:>3}  {:<22} {:>4}  {}\n", i, "SQE_OP", to_u8(r.op), sqe_opcode_label(r.op));
        } else if constexpr (std::is_same_v<T, AllowSqeFlags>) {
          return fmt::format("  {:>3}  {:<22} {:#04x}  {}\n", i, "SQE_FLAGS_ALLOWED", r.flags, sqe_flags_label(r.flags));
        } else if constexpr (std::is_same_v<T, RequireSqeFlags>) {
          return fmt::format("  {:>3}  {:<22} {:#04x}  {}\n", i, "SQE_FLAGS_REQUIRED", r.flags, sqe_flags_label(r.flags));
        } else {
          return fmt::format("  {:>3}  {:<22} {:>4}  {}\n", i, "REGISTER_OP", to_u8(r.op), register_opcode_label(r.op));
        }
      },
      rule);
}

// Passthrough: the SQE fields of the allowed block opcodes that the kernel reads and no
// restriction can filter, with this kernel's answers when probed.
std::string exposure_section(const RestrictionSet& set, const SqeExposure* exposure) {
  if (!set.allows(SqeOpcode::ReadFixed) && !set.allows(SqeOpcode::WriteFixed) && !set.allows(SqeOpcode::Fsync)) return "";
  std::string out =
      "  - SQE fields the kernel interprets in the allowed opcodes, which no restriction can filter (in\n"
      "    passthrough the guest writes them and the kernel reads them; mediated mode rebuilds every SQE):\n";
  if (exposure == nullptr || !exposure->ran) {
    out += "      ioprio, rw_flags (RWF_*), the read/write attribute pointer (attr_ptr/attr_type_mask, 6.15+), the\n"
           "      write stream (6.16+), fsync_flags and an FSYNC's range, personality; later kernels may add more\n";
    if (exposure != nullptr) out += fmt::format("      (this kernel could not be probed: {})\n", exposure->error);
    out += "      `ringfence probe` shows what the running kernel does with each\n";
    return out;
  }
  out += fmt::format("      (probed on this kernel, against {}, from a thread without capabilities)\n", exposure->target);
  for (const SqeFieldFinding& f : exposure->fields) {
    out += fmt::format("      {} ({}): {}\n", f.field, f.opcodes, f.interpreted ? "interpreted" : "ignored here");
    out += fmt::format("        seen: {}\n", f.seen);
    out += fmt::format("        lets a guest: {}\n", f.lets_a_guest);
  }
  return out;
}

}  // namespace

std::string explain_policy(const Policy& policy, const KernelOpcodeSupport* kernel, RegisterRestrictionModel model,
                           const SqeExposure* exposure) {
  const RestrictionSet set = compile_policy(policy);
  std::string out;
  out += fmt::format("Policy \"{}\" ({} mode, format {}) from {}\n\n", policy.name, mode_name(policy.mode),
                     kPolicyFormatVersion, policy.source);
  out += indent_text(policy.comment, "  ");

  // The opcodes this explanation ranges over: the running kernel's, or ringfence's table.
  std::vector<std::uint8_t> universe;
  if (kernel != nullptr) {
    for (unsigned op = 0; op < kernel->sqe_ops.size(); ++op) {
      if (kernel->sqe_ops.test(op)) universe.push_back(static_cast<std::uint8_t>(op));
    }
  } else {
    for (const auto& op : known_sqe_opcodes()) universe.push_back(op.value);
  }
  const std::string where = kernel != nullptr ? fmt::format("this kernel ({}) supports", kernel->kernel_release)
                                              : std::string("ringfence knows");

  out += "\nThe submitter CAN\n";
  out += fmt::format("  submit {} of the {} SQE opcodes {}:\n", set.allowed_sqe_op_count(), universe.size(), where);
  for (const Entry& e : policy.sqe_opcodes) {
    out += fmt::format("    {:<16} {}\n", e.name, opcode_safety(e.value).does);
  }
  if (set.required_flags() != 0) {
    out += fmt::format("  and every SQE MUST set {}", sqe_flags_label(set.required_flags()));
    if ((set.required_flags() & sqe_flag::kFixedFile) != 0) {
      out += " (the fd field is an index into the registered files, never a raw descriptor)";
    }
    out += "\n";
  }
  out += set.allowed_flags() != 0 ? fmt::format("  and MAY also set {}\n", sqe_flags_label(set.allowed_flags()))
                                  : "  and may set no other SQE flag\n";

  out += "\nThe submitter CANNOT (the kernel refuses it)\n";
  std::vector<std::string> denied;
  for (std::uint8_t op : universe) {
    if (!set.allows(static_cast<SqeOpcode>(op))) denied.push_back(sqe_opcode_label(op));
  }
  out += fmt::format("  submit any other opcode ({}): the SQE completes with -EACCES and is not executed:\n",
                     denied.size());
  out += wrap(denied, "    ");
  const std::uint8_t forbidden_flags = static_cast<std::uint8_t>(sqe_flag::kAllKnown & ~(set.allowed_flags() | set.required_flags()));
  if (forbidden_flags != 0) {
    out += fmt::format("  set any of {}: the SQE completes with -EACCES", sqe_flags_label(forbidden_flags));
    if ((forbidden_flags & sqe_flag::kBufferSelect) != 0) {
      out += "\n    (BUFFER_SELECT on an opcode that cannot select buffers fails earlier, with -EOPNOTSUPP)";
    }
    out += "\n";
  }
  if (set.required_flags() != 0) {
    out += fmt::format("  leave out {}: the SQE completes with -EACCES\n", sqe_flags_label(set.required_flags()));
  }
  const unsigned register_ops = kernel != nullptr ? kernel->register_op_count
                                                  : static_cast<unsigned>(known_register_opcodes().size());
  if (set.allowed_register_op_count() == 0) {
    out += fmt::format("  call io_uring_register after the ring is enabled: all {} register opcodes return EACCES\n",
                       register_ops);
  } else {
    std::vector<std::string> allowed;
    for (const Entry& e : policy.register_opcodes) allowed.push_back(e.name);
    out += fmt::format("  call io_uring_register after enable, except for {} of the {} register opcodes:\n",
                       allowed.size(), register_ops);
    out += wrap(allowed, "    ");
  }

  out += "\nWhat the kernel does NOT check (no restriction can express it)\n";
  if (set.allows(SqeOpcode::WriteFixed) || set.allows(SqeOpcode::ReadFixed)) {
    out += "  - file offsets: READ_FIXED/WRITE_FIXED may name any offset; a write past the disk's end grows a\n"
           "    regular image file (the mediated path bounds offsets; in passthrough, back the disk with a\n"
           "    block device, whose size the kernel enforces)\n";
  }
  out += "  - resources: restrictions bound opcodes, not requests in flight or completions the guest does not\n"
         "    reap (each overflowed CQE is kernel memory charged to the VMM). io-wq workers for these opcodes on\n"
         "    files and block devices are bounded by the kernel: min(SQ entries, 4 x CPUs) per submitting thread\n";
  if (policy.mode == Mode::Passthrough) {
    out += "    Passthrough devices bound the rest themselves by default: the device thread hands the kernel at most\n"
           "    the CQ size of requests in flight plus overflowed CQEs. With the opt-in kernel SQPOLL thread\n"
           "    (RF_DEVICE_KERNEL_SQPOLL, bench row passthrough-sqpoll) NOTHING bounds them: the kernel takes\n"
           "    whatever the guest publishes until the device's watchdog sees its counters past the bound and\n"
           "    closes the ring, and every doorbell after an idle spell costs sq_thread_idle of host CPU\n";
    out += "  - address disclosure: SQE buffer addresses are host virtual addresses, so the guest learns where\n"
           "    its RAM is mapped in the VMM\n";
    out += exposure_section(set, exposure);
  }

  const auto rules = set.registered_rules(model);
  out += fmt::format("\nRestriction table registered with the kernel ({} entries)\n", rules.size());
  out += fmt::format("  {:>3}  {:<22} {:>4}  {}\n", "#", "type", "value", "meaning");
  for (std::size_t i = 0; i < rules.size(); ++i) out += rule_row(i, rules[i]);
  if (set.needs_register_lock_entry(model)) {
    out += "       (the last entry is added on Linux 7.0+, where register opcodes are locked only by a\n"
           "        set that lists one; REGISTER_ENABLE_RINGS does nothing once the ring is enabled)\n";
  }
  return out;
}

}  // namespace rf::policy
