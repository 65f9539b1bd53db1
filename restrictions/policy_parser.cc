#include "restrictions/policy_parser.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "ring/opcodes.h"

namespace rf::policy {

namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// Where a diagnostic points: a toml++ source region in `file`.
SourceLocation at(const toml::source_region& region, const std::string& file) {
  return SourceLocation{file, static_cast<std::uint32_t>(region.begin.line), static_cast<std::uint32_t>(region.begin.column)};
}

// The line and column (1-based, in bytes) of the first byte of `text` outside ASCII, if any.
std::optional<SourceLocation> first_non_ascii(std::string_view text, const std::string& file) {
  std::uint32_t line = 1, column = 1;
  for (const char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return SourceLocation{file, line, column};
    if (c == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return std::nullopt;
}

enum class NameKind { SqeOpcode, RegisterOpcode, SqeFlag };

struct ListSpec {
  std::string_view key;
  NameKind kind;
  std::vector<Entry>* out;
};

class Parser {
 public:
  Parser(std::string source) : file_(std::move(source)) { policy_.source = file_; }

  Result<Policy, std::vector<Diagnostic>> run(std::string_view text) {
    // toml++ 3.3.0 (Debian 12's) reaches __builtin_unreachable on some non-ASCII characters
    // where it expects whitespace (marzer/tomlplusplus#190 and #295, found again by
    // tests/fuzzers/policy_parser_fuzzer.cc): undefined behaviour on a file we only read. Policy
    // files are ASCII, so anything else is refused before toml++ sees it.
    if (const auto bad = first_non_ascii(text, file_)) {
      error(*bad, "non-ascii", "policy files are ASCII, and this byte is not",
            "replace the character (comments included) with plain ASCII");
      return unexpected(std::move(diagnostics_));
    }
    toml::parse_result parsed = toml::parse(text, file_);
    if (!parsed) {
      const toml::parse_error& e = parsed.error();
      error(at(e.source(), file_), "toml-syntax", fmt::format("not valid TOML: {}", e.description()),
            "correct the TOML syntax at this position");
      return unexpected(std::move(diagnostics_));
    }
    const toml::table& root = parsed.table();
    check_keys(root, {"policy", "sqe", "register"}, "the top level", SourceLocation{file_, 1, 1});
    const toml::table* policy = table(root, "policy");
    const toml::table* sqe = table(root, "sqe");
    const toml::table* reg = table(root, "register");
    if (policy != nullptr) read_policy_table(*policy);
    if (sqe != nullptr) {
      policy_.sqe_where = at(sqe->source(), file_);
      check_keys(*sqe, {"allowed_opcodes", "required_flags", "allowed_flags"}, "[sqe]", policy_.sqe_where);
      read_list(*sqe, "[sqe]", {"allowed_opcodes", NameKind::SqeOpcode, &policy_.sqe_opcodes});
      read_list(*sqe, "[sqe]", {"required_flags", NameKind::SqeFlag, &policy_.required_flags});
      read_list(*sqe, "[sqe]", {"allowed_flags", NameKind::SqeFlag, &policy_.allowed_flags});
    }
    if (reg != nullptr) {
      policy_.register_where = at(reg->source(), file_);
      check_keys(*reg, {"allowed_opcodes"}, "[register]", policy_.register_where);
      read_list(*reg, "[register]", {"allowed_opcodes", NameKind::RegisterOpcode, &policy_.register_opcodes});
    }
    if (has_errors(diagnostics_)) {
      sort_by_position(diagnostics_);
      return unexpected(std::move(diagnostics_));
    }
    return std::move(policy_);
  }

 private:
  void error(SourceLocation where, std::string rule, std::string message, std::string fix) {
    diagnostics_.push_back(Diagnostic{Severity::Error, std::move(where), std::move(rule), std::move(message), std::move(fix)});
  }

  void check_keys(const toml::table& t, std::initializer_list<std::string_view> allowed, std::string_view context,
                  const SourceLocation& fallback) {
    for (auto&& [key, node] : t) {
      if (std::find(allowed.begin(), allowed.end(), key.str()) != allowed.end()) continue;
      std::vector<std::string_view> known(allowed.begin(), allowed.end());
      const std::string close = suggest_name(key.str(), known);
      SourceLocation where = key.source().begin.line != 0 ? at(key.source(), file_) : fallback;
      error(std::move(where), "unknown-key", fmt::format("unknown key `{}` in {}", key.str(), context),
            close.empty() ? fmt::format("remove it; {} takes: {}", context, fmt::join(allowed, ", "))
                          : fmt::format("did you mean `{}`?", close));
    }
  }

  const toml::table* table(const toml::table& root, std::string_view name) {
    const toml::node* node = root.get(name);
    if (node == nullptr) {
      error(SourceLocation{file_, 0, 0}, "missing-key", fmt::format("the [{}] table is missing", name),
            fmt::format("add a [{}] table (see docs/policy-format.md)", name));
      return nullptr;
    }
    if (!node->is_table()) {
      error(at(node->source(), file_), "wrong-type", fmt::format("`{}` must be a table", name),
            fmt::format("write it as a [{}] section", name));
      return nullptr;
    }
    return node->as_table();
  }

  std::optional<std::string> string_value(const toml::table& t, std::string_view key, std::string_view context,
                                          const SourceLocation& table_where) {
    const toml::node* node = t.get(key);
    if (node == nullptr) {
      error(table_where, "missing-key", fmt::format("{} has no `{}`", context, key),
            fmt::format("add `{} = \"...\"` to {}", key, context));
      return std::nullopt;
    }
    auto value = node->value<std::string>();
    if (!value || !node->is_string()) {
      error(at(node->source(), file_), "wrong-type", fmt::format("`{}` in {} must be a string", key, context),
            fmt::format("quote it: {} = \"...\"", key));
      return std::nullopt;
    }
    return value;
  }

  void read_policy_table(const toml::table& t) {
    const SourceLocation where = at(t.source(), file_);
    check_keys(t, {"name", "format", "mode", "comment"}, "[policy]", where);
    if (auto name = string_value(t, "name", "[policy]", where)) {
      if (name->empty()) error(where, "missing-key", "[policy] name is empty", "give the policy a name");
      policy_.name = *name;
    }
    const toml::node* format = t.get("format");
    if (format == nullptr) {
      error(where, "missing-key", "[policy] has no `format`",
            fmt::format("add `format = {}` (the policy format version)", kPolicyFormatVersion));
    } else if (!format->is_integer() || format->value<std::int64_t>() != kPolicyFormatVersion) {
      error(at(format->source(), file_), "unsupported-format",
            fmt::format("`format` must be the integer {}; this ringfence reads only format {}", kPolicyFormatVersion,
                        kPolicyFormatVersion),
            fmt::format("write `format = {}`, or use the ringfence release the policy was written for",
                        kPolicyFormatVersion));
    }
    if (auto mode = string_value(t, "mode", "[policy]", where)) {
      policy_.mode_where = at(t.get("mode")->source(), file_);
      if (*mode == "passthrough") {
        policy_.mode = Mode::Passthrough;
      } else if (*mode == "mediated") {
        policy_.mode = Mode::Mediated;
      } else {
        error(policy_.mode_where, "unknown-mode", fmt::format("unknown mode \"{}\"", *mode),
              "write mode = \"passthrough\" (the guest drives the kernel ring) or \"mediated\" (a VMM mediator "
              "submits to this ring)");
      }
    }
    if (auto comment = string_value(t, "comment", "[policy]", where)) {
      if (comment->find_first_not_of(" \t\r\n") == std::string::npos) {
        error(at(t.get("comment")->source(), file_), "missing-key", "[policy] comment is empty",
              "say what the policy is for and why it allows what it allows: a reviewer reads this first");
      }
      policy_.comment = *comment;
    }
  }

  std::optional<std::uint8_t> resolve(NameKind kind, std::string_view name) {
    switch (kind) {
      case NameKind::SqeOpcode: return sqe_opcode_from_name(name);
      case NameKind::RegisterOpcode: return register_opcode_from_name(name);
      case NameKind::SqeFlag: return sqe_flag_from_name(name);
    }
    return std::nullopt;
  }

  static std::vector<std::string_view> names_of(NameKind kind) {
    std::vector<std::string_view> out;
    if (kind == NameKind::SqeFlag) {
      for (const auto& f : known_sqe_flags()) out.push_back(f.name);
    } else {
      for (const auto& op : kind == NameKind::SqeOpcode ? known_sqe_opcodes() : known_register_opcodes()) {
        out.push_back(op.name);
      }
    }
    return out;
  }

  void read_list(const toml::table& t, std::string_view context, const ListSpec& spec) {
    const toml::node* node = t.get(spec.key);
    if (node == nullptr) {
      error(at(t.source(), file_), "missing-key", fmt::format("{} has no `{}`", context, spec.key),
            fmt::format("add `{} = [...]`; the list must be explicit, even when empty (`{} = []`)", spec.key, spec.key));
      return;
    }
    const toml::array* array = node->as_array();
    if (array == nullptr) {
      error(at(node->source(), file_), "wrong-type", fmt::format("`{}` in {} must be an array of names", spec.key, context),
            fmt::format("write `{} = [\"NAME\", ...]`", spec.key));
      return;
    }
    const char* what = spec.kind == NameKind::SqeFlag ? "SQE flag" : spec.kind == NameKind::SqeOpcode ? "SQE opcode" : "register opcode";
    for (const toml::node& element : *array) {
      const SourceLocation where = at(element.source(), file_);
      auto name = element.value<std::string>();
      if (!element.is_string() || !name) {
        error(where, "wrong-type", fmt::format("every entry of `{}` must be a quoted name", spec.key),
              fmt::format("quote the {} name", what));
        continue;
      }
      const auto value = resolve(spec.kind, *name);
      if (!value) {
        const std::string close = suggest_name(*name, names_of(spec.kind));
        error(where, spec.kind == NameKind::SqeFlag ? "unknown-flag" : "unknown-opcode",
              fmt::format("unknown {} \"{}\"", what, *name),
              close.empty() ? fmt::format("use a name from `ringfence policy names` (names are written without "
                                          "the IORING_OP_/IORING_/IOSQE_ prefix)")
                            : fmt::format("did you mean \"{}\"?", close));
        continue;
      }
      spec.out->push_back(Entry{*value, *name, where});
    }
  }

  std::string file_;
  Policy policy_;
  std::vector<Diagnostic> diagnostics_;
};

}  // namespace

std::string suggest_name(std::string_view unknown, const std::vector<std::string_view>& known) {
  std::string normalized = upper(unknown);
  for (std::string_view prefix : {"IORING_OP_", "IORING_", "IOSQE_"}) {
    if (normalized.rfind(prefix, 0) == 0) {
      normalized.erase(0, prefix.size());
      break;
    }
  }
  std::string_view best;
  std::size_t best_distance = 3;  // suggest only names within two edits
  for (std::string_view candidate : known) {
    const std::size_t d = edit_distance(normalized, upper(candidate));
    if (d < best_distance) {
      best = candidate;
      best_distance = d;
    }
  }
  return std::string(best);
}

Result<Policy, std::vector<Diagnostic>> parse_policy(std::string_view text, std::string source) {
  return Parser(std::move(source)).run(text);
}

}  // namespace rf::policy
