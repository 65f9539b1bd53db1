#include "audit/enforcement_matrix.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <iterator>

#include <fmt/format.h>

#include "ring/probe.h"
#include "ring/setup.h"

namespace rf {

namespace {

using std::chrono::seconds;

constexpr std::uint32_t kBlock = 4096;

class Checker {
 public:
  Checker(AuditRing& audit, const RestrictionSet& set) : audit_(audit), set_(set) {}

  std::vector<MatrixRow> run() {
    denied_opcodes();
    allowed_opcodes();
    denied_register_opcodes();
    missing_fixed_file();
    for (const auto& flag : known_sqe_flags()) {
      if (flag.bit != sqe_flag::kFixedFile) forbidden_flag(flag);
    }
    buffer_checks();
    file_index_out_of_range();
    round_trip();
    read_only();
    return {std::make_move_iterator(rows_.begin()), std::make_move_iterator(rows_.end())};
  }

 private:
  // Submits one SQE and returns its result; a ring failure is recorded as a failure string.
  std::optional<int> run(const Sqe& sqe, MatrixRow& row) {
    auto cqe = audit_.ring().submit_and_wait(sqe, seconds(5));
    if (!cqe) {
      row.failures.push_back(cqe.error().message);
      return std::nullopt;
    }
    return cqe->res;
  }

  MatrixRow& add(std::string check, std::string expected) {
    MatrixRow& row = rows_.emplace_back();
    row.check = std::move(check);
    row.expected = std::move(expected);
    return row;
  }

  static void not_applicable(MatrixRow& row, std::string why) {
    row.applicable = false;
    row.passed = true;
    row.observed = std::move(why);
  }

  // A row that expects one exact result from one SQE.
  void expect_result(MatrixRow& row, const Sqe& sqe, int expected) {
    const auto res = run(sqe, row);
    if (!res) return;
    row.observed = cqe_result_label(*res);
    row.passed = *res == expected;
    if (!row.passed) row.failures.push_back(fmt::format("{} completed with {}", sqe_opcode_label(sqe.opcode), row.observed));
  }

  std::uint8_t required_flags() const { return set_.required_flags() & static_cast<std::uint8_t>(~sqe_flag::kBufferSelect); }

  void denied_opcodes() {
    MatrixRow& row = add("every denied SQE opcode", "-EACCES");
    const auto& kernel = running_kernel_opcode_support();
    unsigned tried = 0;
    unsigned refused = 0;
    for (unsigned op = 0; op < kernel.sqe_ops.size(); ++op) {
      if (!kernel.sqe_ops.test(op) || set_.allows(static_cast<SqeOpcode>(op))) continue;
      Sqe sqe;
      sqe.opcode = static_cast<SqeOpcode>(op);
      sqe.flags = required_flags();
      sqe.user_data = op;
      ++tried;
      const auto res = run(sqe, row);
      if (res && *res == -EACCES) {
        ++refused;
      } else if (res) {
        row.failures.push_back(fmt::format("{} (op {}) completed with {}", sqe_opcode_label(op), op, cqe_result_label(*res)));
      }
    }
    row.observed = fmt::format("{}/{}", refused, tried);
    row.passed = tried > 0 && refused == tried;
  }

  void allowed_opcodes() {
    MatrixRow& row = add("every allowed SQE opcode runs", "success");
    unsigned tried = 0;
    unsigned ran = 0;
    for (unsigned op = 0; op < 256; ++op) {
      if (!set_.allows(static_cast<SqeOpcode>(op))) continue;
      std::optional<Sqe> sqe;
      int want = 0;
      switch (static_cast<SqeOpcode>(op)) {
        case SqeOpcode::ReadFixed: sqe = audit_.read_fixed(0, kBlock); want = kBlock; break;
        case SqeOpcode::WriteFixed: sqe = audit_.write_fixed(0, kBlock); want = kBlock; break;
        case SqeOpcode::Fsync: sqe = Sqe::fsync(FileRef::fixed({0})); break;
        case SqeOpcode::Nop: sqe = Sqe::nop(); sqe->flags = set_.required_flags(); break;
        default: break;  // not exercised: ringfence has no valid request for it here
      }
      if (!sqe) continue;
      ++tried;
      const auto res = run(*sqe, row);
      if (res && *res == want) {
        ++ran;
      } else if (res) {
        row.failures.push_back(fmt::format("{} completed with {}", sqe_opcode_label(op), cqe_result_label(*res)));
      }
    }
    if (tried == 0) return not_applicable(row, "none to run");
    row.observed = fmt::format("{}/{}", ran, tried);
    row.passed = ran == tried;
  }

  void denied_register_opcodes() {
    MatrixRow& row = add("every denied register opcode after enable", "EACCES");
    const unsigned count = running_kernel_opcode_support().register_op_count;
    const bool lock_entry = set_.needs_register_lock_entry(running_register_restriction_model());
    unsigned tried = 0;
    unsigned refused = 0;
    for (unsigned op = 0; op < count; ++op) {
      if (set_.allows(static_cast<RegisterOpcode>(op))) continue;
      // On 7.0+ ENABLE_RINGS is registered as the lock entry; it answers -EBADFD.
      const int want = lock_entry && op == to_u8(RegisterOpcode::RegisterEnableRings) ? -EBADFD : -EACCES;
      ++tried;
      const int res = audit_.ring().probe_register_opcode(op);
      if (res == want) {
        ++refused;
      } else {
        row.failures.push_back(fmt::format("{} returned {}", register_opcode_label(op), cqe_result_label(res)));
      }
    }
    row.observed = fmt::format("{}/{}", refused, tried);
    row.passed = tried > 0 && refused == tried;
  }

  void missing_fixed_file() {
    MatrixRow& row = add("an SQE without FIXED_FILE (raw disk fd)", "-EACCES");
    if ((set_.required_flags() & sqe_flag::kFixedFile) == 0) return not_applicable(row, "not required");
    if (!set_.allows(SqeOpcode::ReadFixed)) return not_applicable(row, "no READ_FIXED");
    // A raw descriptor that names the real disk: if the kernel did not enforce FIXED_FILE,
    // this read would succeed.
    Sqe sqe = Sqe::read_fixed(FileRef::raw(audit_.disk_fd()), audit_.buffer(), kBlock, 0, audit_.buffer_index());
    sqe.flags = required_flags() & static_cast<std::uint8_t>(~sqe_flag::kFixedFile);
    expect_result(row, sqe, -EACCES);
  }

  void forbidden_flag(const SqeFlagName& flag) {
    // The kernel rejects BUFFER_SELECT for opcodes that cannot select a buffer before it
    // evaluates restrictions: READ_FIXED carrying it completes with -EOPNOTSUPP.
    const bool buffer_select = flag.bit == sqe_flag::kBufferSelect;
    MatrixRow& row = add(fmt::format("flag {}", flag.name), buffer_select ? "-EOPNOTSUPP" : "-EACCES");
    if (set_.permits_flags(static_cast<std::uint8_t>(set_.required_flags() | flag.bit))) {
      return not_applicable(row, "allowed");
    }
    if (!set_.allows(SqeOpcode::ReadFixed)) return not_applicable(row, "no READ_FIXED");
    expect_result(row, audit_.read_fixed(0, kBlock).with_flags(flag.bit), buffer_select ? -EOPNOTSUPP : -EACCES);
  }

  void buffer_checks() {
    MatrixRow& outside = add("READ_FIXED outside the registered buffer", "-EFAULT");
    MatrixRow& across = add("READ_FIXED across the buffer's end", "-EFAULT");
    MatrixRow& index = add("buffer index out of range", "-EFAULT");
    if (!set_.allows(SqeOpcode::ReadFixed)) {
      for (MatrixRow* r : {&outside, &across, &index}) not_applicable(*r, "no READ_FIXED");
      return;
    }
    expect_result(outside, audit_.read_fixed(0, kBlock, AuditRing::kBufferBytes), -EFAULT);
    expect_result(across, audit_.read_fixed(0, kBlock, AuditRing::kBufferBytes - 512), -EFAULT);
    Sqe bad_index = audit_.read_fixed(0, kBlock);
    bad_index.buf_index = 1;  // one buffer is registered
    expect_result(index, bad_index, -EFAULT);
  }

  void file_index_out_of_range() {
    MatrixRow& row = add("fixed-file index out of range", "-EBADF");
    if (!set_.allows(SqeOpcode::ReadFixed)) return not_applicable(row, "no READ_FIXED");
    Sqe sqe = audit_.read_fixed(0, kBlock);
    sqe.fd = 1;  // one file is registered
    expect_result(row, sqe, -EBADF);
  }

  // A block of bytes unique to `seed`.
  static std::array<std::byte, kBlock> pattern(std::uint8_t seed) {
    std::array<std::byte, kBlock> out{};
    for (std::uint32_t i = 0; i < kBlock; ++i) out[i] = static_cast<std::byte>(seed + i * 7);
    return out;
  }

  void fill(std::uint8_t seed) {
    const auto bytes = pattern(seed);
    std::memcpy(audit_.buffer(), bytes.data(), kBlock);
  }

  bool disk_matches_buffer(std::uint64_t offset, std::string& why) {
    std::array<std::byte, kBlock> on_disk{};
    if (::pread(audit_.disk_fd(), on_disk.data(), kBlock, static_cast<off_t>(offset)) != kBlock) {
      why = fmt::format("pread failed: {}", std::strerror(errno));
      return false;
    }
    if (std::memcmp(on_disk.data(), audit_.buffer(), kBlock) != 0) {
      why = "the bytes READ_FIXED returned differ from pread's";
      return false;
    }
    return true;
  }

  void round_trip() {
    MatrixRow& row = add("WRITE_FIXED then READ_FIXED matches pread", "match");
    if (!set_.allows(SqeOpcode::WriteFixed) || !set_.allows(SqeOpcode::ReadFixed)) {
      return not_applicable(row, "no writes");
    }
    constexpr std::uint64_t kOffset = 8 * kBlock;
    fill(0x5a);
    const auto wrote = run(audit_.write_fixed(kOffset, kBlock), row);
    std::memset(audit_.buffer(), 0, kBlock);
    const auto read = run(audit_.read_fixed(kOffset, kBlock), row);
    if (!wrote || !read) return;
    std::string why;
    if (*wrote != static_cast<int>(kBlock) || *read != static_cast<int>(kBlock)) {
      row.failures.push_back(fmt::format("WRITE_FIXED {}, READ_FIXED {}", cqe_result_label(*wrote), cqe_result_label(*read)));
    } else if (!disk_matches_buffer(kOffset, why)) {
      row.failures.push_back(why);
    } else if (std::memcmp(pattern(0x5a).data(), audit_.buffer(), kBlock) != 0) {
      row.failures.push_back("READ_FIXED did not return what WRITE_FIXED wrote");
    }
    row.passed = row.failures.empty();
    row.observed = row.passed ? "match" : "mismatch";
  }

  void read_only() {
    MatrixRow& row = add("WRITE_FIXED under a read-only policy", "-EACCES");
    if (set_.allows(SqeOpcode::WriteFixed)) return not_applicable(row, "writes allowed");
    if (!set_.allows(SqeOpcode::ReadFixed)) return not_applicable(row, "no READ_FIXED");
    constexpr std::uint64_t kOffset = 16 * kBlock;
    std::array<std::byte, kBlock> before{};
    if (::pread(audit_.disk_fd(), before.data(), kBlock, static_cast<off_t>(kOffset)) != kBlock) {
      row.failures.push_back(fmt::format("pread failed: {}", std::strerror(errno)));
      return;
    }
    fill(0xa5);
    expect_result(row, audit_.write_fixed(kOffset, kBlock), -EACCES);
    std::array<std::byte, kBlock> after{};
    if (::pread(audit_.disk_fd(), after.data(), kBlock, static_cast<off_t>(kOffset)) != kBlock ||
        std::memcmp(before.data(), after.data(), kBlock) != 0) {
      row.passed = false;
      row.failures.push_back("the disk changed although the write was refused");
    }
  }

  AuditRing& audit_;
  const RestrictionSet& set_;
  std::deque<MatrixRow> rows_;  // a deque: add() hands out references that must stay valid
};

}  // namespace

bool MatrixColumn::passed() const {
  return std::all_of(rows.begin(), rows.end(), [](const MatrixRow& r) { return r.passed; });
}

std::string cqe_result_label(int res) {
  if (res >= 0) return fmt::format("{}", res);
  const char* name = ::strerrorname_np(-res);
  return name != nullptr ? fmt::format("-{}", name) : fmt::format("-{}", -res);
}

Result<MatrixColumn, RingError> run_enforcement_matrix(const std::string& policy, const RestrictionSet& set,
                                                       RingShape shape) {
  auto audit = AuditRing::create(set, shape);
  if (!audit) return unexpected(std::move(audit).error());
  MatrixColumn column;
  column.policy = policy;
  column.shape = shape;
  column.self_check = audit->ring().self_check();
  column.setup_time = audit->setup_time();
  column.rows = Checker(*audit, set).run();
  return column;
}

}  // namespace rf
