// A policy: what a restricted ring may do, as written in a TOML file a security reviewer can
// read (docs/policy-format.md). The parser produces it, the linter judges it, the compiler
// turns it into a RestrictionSet.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rf::policy {

// The data path a policy is written for (DESIGN.md "The two data paths").
enum class Mode {
  Passthrough,  // the guest writes SQEs into the kernel ring itself; the kernel alone enforces
  Mediated,     // a VMM mediator validates guest SQEs and submits to this (private) ring
};

std::string_view mode_name(Mode mode);

struct SourceLocation {
  std::string file;
  std::uint32_t line = 0;    // 1-based; 0 when unknown
  std::uint32_t column = 0;  // 1-based; 0 when unknown
};

// One list entry, resolved to its number, with where it was written.
struct Entry {
  std::uint8_t value = 0;  // opcode number, or flag mask (one bit)
  std::string name;        // as written
  SourceLocation where;
};

inline constexpr int kPolicyFormatVersion = 1;

struct Policy {
  std::string source;  // a path, or "builtin:<name>"
  std::string name;
  Mode mode = Mode::Passthrough;
  std::string comment;
  SourceLocation mode_where;
  SourceLocation sqe_where;       // the [sqe] table
  SourceLocation register_where;  // the [register] table
  std::vector<Entry> sqe_opcodes;       // [sqe] allowed_opcodes
  std::vector<Entry> required_flags;    // [sqe] required_flags
  std::vector<Entry> allowed_flags;     // [sqe] allowed_flags
  std::vector<Entry> register_opcodes;  // [register] allowed_opcodes
};

}  // namespace rf::policy
