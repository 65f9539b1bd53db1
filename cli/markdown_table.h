// A Markdown table with columns padded to their widest cell, so it reads well in a terminal
// and pastes into an issue or docs/ unchanged.
#pragma once

#include <string>
#include <vector>

namespace rf::cli {

class MarkdownTable {
 public:
  explicit MarkdownTable(std::vector<std::string> header) : header_(std::move(header)) {}
  void add_row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  std::size_t rows() const { return rows_.size(); }
  std::string render() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace rf::cli
