#include "cli/markdown_table.h"

#include <algorithm>

#include <fmt/format.h>

namespace rf::cli {

namespace {
// Display width: counts UTF-8 code points, not bytes, so "✓" pads like one column.
std::size_t display_width(const std::string& s) {
  return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}
}  // namespace

std::string MarkdownTable::render() const {
  std::vector<std::size_t> width(header_.size(), 3);
  auto measure = [&](const std::vector<std::string>& row) {
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], display_width(row[i]));
  };
  measure(header_);
  for (const auto& row : rows_) measure(row);

  auto line = [&](const std::vector<std::string>& row) {
    std::string out = "|";
    for (std::size_t i = 0; i < width.size(); ++i) {
      const std::string cell = i < row.size() ? row[i] : "";
      out += fmt::format(" {}{} |", cell, std::string(width[i] - display_width(cell), ' '));
    }
    return out + "\n";
  };
  std::string out = line(header_);
  out += "|";
  for (std::size_t w : width) out += fmt::format("{}|", std::string(w + 2, '-'));
  out += "\n";
  for (const auto& row : rows_) out += line(row);
  return out;
}

}  // namespace rf::cli
