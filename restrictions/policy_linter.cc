#include "restrictions/policy_linter.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "restrictions/opcode_safety.h"
#include "ring/opcodes.h"

namespace rf::policy {

namespace {

// Opcodes whose kernel definition accepts IOSQE_BUFFER_SELECT; the kernel fails every other
// opcode carrying the flag with -EOPNOTSUPP before it looks at restrictions.
constexpr std::uint8_t kBufferSelectOpcodes[] = {to_u8(SqeOpcode::Readv), to_u8(SqeOpcode::Read),
                                                 to_u8(SqeOpcode::Recv), to_u8(SqeOpcode::Recvmsg),
                                                 to_u8(SqeOpcode::ReadMultishot), to_u8(SqeOpcode::Send)};

class Linter {
 public:
  Linter(const Policy& p, const KernelOpcodeSupport* kernel) : p_(p), kernel_(kernel) {}

  std::vector<Diagnostic> run() {
    duplicates(p_.sqe_opcodes, "[sqe] allowed_opcodes");
    duplicates(p_.required_flags, "[sqe] required_flags");
    duplicates(p_.allowed_flags, "[sqe] allowed_flags");
    duplicates(p_.register_opcodes, "[register] allowed_opcodes");
    flags_in_both_lists();
    contradictory_flags();
    kernel_support();
    opcode_risks();
    fixed_file_required();
    warnings();
    sort_by_position(out_);
    return std::move(out_);
  }

 private:
  bool passthrough() const { return p_.mode == Mode::Passthrough; }

  void add(Severity severity, SourceLocation where, std::string rule, std::string message, std::string fix) {
    out_.push_back(Diagnostic{severity, std::move(where), std::move(rule), std::move(message), std::move(fix)});
  }

  std::uint8_t mask(const std::vector<Entry>& flags) const {
    std::uint8_t m = 0;
    for (const Entry& e : flags) m |= e.value;
    return m;
  }

  void duplicates(const std::vector<Entry>& list, std::string_view where) {
    std::map<std::uint8_t, const Entry*> first;
    for (const Entry& e : list) {
      auto [it, inserted] = first.emplace(e.value, &e);
      if (inserted) continue;
      add(Severity::Error, e.where, "duplicate-entry",
          fmt::format("\"{}\" is listed twice in {} (first on line {})", e.name, where, it->second->where.line),
          "remove one of them");
    }
  }

  void flags_in_both_lists() {
    for (const Entry& e : p_.allowed_flags) {
      if ((mask(p_.required_flags) & e.value) == 0) continue;
      add(Severity::Error, e.where, "flag-in-both-lists",
          fmt::format("{} is both required and allowed; required flags are always allowed, so listing it in "
                      "allowed_flags too suggests a mistake about which was meant",
                      e.name),
          fmt::format("remove \"{}\" from allowed_flags (or from required_flags if it should be optional)", e.name));
    }
  }

  void contradictory_flags() {
    const std::uint8_t required = mask(p_.required_flags);
    const std::uint8_t permitted = required | mask(p_.allowed_flags);
    if ((required & sqe_flag::kIoDrain) != 0 && (required & sqe_flag::kCqeSkipSuccess) != 0) {
      add(Severity::Error, p_.required_flags.front().where, "contradictory-flags",
          "IO_DRAIN and CQE_SKIP_SUCCESS are both required: once a ring sees CQE_SKIP_SUCCESS it refuses IO_DRAIN "
          "(-EOPNOTSUPP), so every SQE would fail",
          "require at most one of them");
    }
    if ((permitted & sqe_flag::kBufferSelect) == 0) return;
    const bool some_op_selects = std::any_of(p_.sqe_opcodes.begin(), p_.sqe_opcodes.end(), [](const Entry& e) {
      return std::find(std::begin(kBufferSelectOpcodes), std::end(kBufferSelectOpcodes), e.value) != std::end(kBufferSelectOpcodes);
    });
    if (some_op_selects) return;
    const auto& list = (required & sqe_flag::kBufferSelect) != 0 ? p_.required_flags : p_.allowed_flags;
    const auto entry = std::find_if(list.begin(), list.end(), [](const Entry& e) { return e.value == sqe_flag::kBufferSelect; });
    add(Severity::Error, entry->where, "contradictory-flags",
        "BUFFER_SELECT is listed, but none of the allowed opcodes can select a provided buffer (only READ, READV, "
        "RECV, RECVMSG, READ_MULTISHOT and SEND can): the kernel fails such SQEs with -EOPNOTSUPP",
        "remove \"BUFFER_SELECT\"");
  }

  void kernel_support() {
    if (kernel_ == nullptr) return;
    for (const Entry& e : p_.sqe_opcodes) {
      if (kernel_->sqe_ops.test(e.value)) continue;
      add(Severity::Error, e.where, "unsupported-by-kernel",
          fmt::format("{} is not supported by the running kernel ({}); restricting to it would make the ring "
                      "fail to set up",
                      e.name, kernel_->kernel_release),
          fmt::format("remove \"{}\", or run on a kernel that supports it (`ringfence probe` lists the opcodes "
                      "this one supports)",
                      e.name));
    }
    for (const Entry& e : p_.register_opcodes) {
      if (e.value < kernel_->register_op_count) continue;
      add(Severity::Error, e.where, "unsupported-by-kernel",
          fmt::format("{} is not known to the running kernel ({}, register opcodes 0..{})", e.name,
                      kernel_->kernel_release, kernel_->register_op_count == 0 ? 0 : kernel_->register_op_count - 1),
          fmt::format("remove \"{}\"", e.name));
    }
  }

  void opcode_risks() {
    for (const Entry& e : p_.sqe_opcodes) {
      const OpcodeSafety& s = opcode_safety(e.value);
      const char* rule = nullptr;
      switch (s.risk) {
        case OpcodeRisk::BlockIo: continue;
        case OpcodeRisk::UncheckedAddress: rule = "unchecked-address"; break;
        case OpcodeRisk::Descriptors: rule = "creates-descriptors"; break;
        case OpcodeRisk::OutsideDisks: rule = "outside-disks"; break;
        case OpcodeRisk::ResizesDisk: rule = "resizes-disk"; break;
        case OpcodeRisk::Unknown: rule = "unknown-risk"; break;
      }
      if (passthrough()) {
        add(Severity::Error, e.where, rule,
            fmt::format("{} is not allowed in a passthrough policy: it {}, so {}. In passthrough mode the kernel is "
                        "the only guard and checks nothing but the opcode, fixed files and fixed-buffer ranges",
                        e.name, s.does, s.why),
            fmt::format("remove \"{}\"; block I/O needs only READ_FIXED, WRITE_FIXED and FSYNC, whose buffers the "
                        "kernel checks against the registered guest RAM",
                        e.name));
      } else if (e.value == to_u8(SqeOpcode::Fallocate)) {
        // The virtio-blk back-end submits it for DISCARD and WRITE_ZEROES, validated by the same
        // rules as a write and only in the two modes that keep the size (sqe_validator.h); a
        // ring guest's FALLOCATE is refused by the mediator whatever the policy says.
        continue;
      } else {
        add(Severity::Warning, e.where, rule,
            fmt::format("{} {}; the mediator never submits it, and allowing it on the private ring weakens the "
                        "defence in depth behind the mediator",
                        e.name, s.does),
            fmt::format("remove \"{}\" unless the mediator needs it", e.name));
      }
    }
  }

  void fixed_file_required() {
    if ((mask(p_.required_flags) & sqe_flag::kFixedFile) != 0) return;
    SourceLocation where = p_.required_flags.empty() ? p_.sqe_where : p_.required_flags.front().where;
    if (passthrough()) {
      add(Severity::Error, std::move(where), "fixed-file-not-required",
          "a passthrough policy must require FIXED_FILE: without it an SQE's fd field is a raw descriptor number, "
          "and the guest could read or write any file the VMM process has open",
          "add \"FIXED_FILE\" to required_flags");
    } else {
      add(Severity::Warning, std::move(where), "fixed-file-not-required",
          "FIXED_FILE is not required: the private ring would accept raw descriptors if the mediator had a bug",
          "add \"FIXED_FILE\" to required_flags");
    }
  }

  void warnings() {
    for (const Entry& e : p_.allowed_flags) {
      if (e.value != sqe_flag::kAsync) continue;
      add(Severity::Warning, e.where, "async-flag",
          "ASYNC lets the submitter push every request to io-wq worker threads; restrictions do not bound how "
          "many the kernel starts",
          "remove \"ASYNC\", or cap the workers with IORING_REGISTER_IOWQ_MAX_WORKERS before enabling the ring");
    }
    for (const Entry& e : p_.register_opcodes) {
      if (e.value != to_u8(RegisterOpcode::RegisterRestrictions) && e.value != to_u8(RegisterOpcode::RegisterEnableRings)) {
        continue;
      }
      add(Severity::Warning, e.where, "no-effect-register-op",
          fmt::format("{} has no effect after the ring is enabled (the kernel answers -EBADFD)", e.name),
          fmt::format("remove \"{}\"", e.name));
    }
    if (p_.sqe_opcodes.empty()) {
      add(Severity::Warning, p_.sqe_where, "empty-opcode-list",
          "allowed_opcodes is empty: every SQE will complete with -EACCES", "list the opcodes the ring is for");
    }
  }

  const Policy& p_;
  const KernelOpcodeSupport* kernel_;
  std::vector<Diagnostic> out_;
};

}  // namespace

std::vector<Diagnostic> lint_policy(const Policy& policy, const KernelOpcodeSupport* kernel) {
  return Linter(policy, kernel).run();
}

}  // namespace rf::policy
