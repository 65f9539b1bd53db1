// libringfence.so exports the C API and nothing else: no C++ symbol of the implementation (the
// fmt, libstdc++ and ringfence internals inside it), so a VMM's own copies never clash with
// them, and every function ringfence.h declares is there under the RINGFENCE_1 version.
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "support/run_command.h"

namespace {

// Defined dynamic symbols (name@@VERSION or name), from nm.
std::set<std::string> exported_symbols() {
  const rf::test::CommandRun nm = rf::test::run_command("nm -D --defined-only '" RF_SHARED_LIBRARY "' 2>&1");
  EXPECT_EQ(nm.status, 0) << nm.output;
  std::set<std::string> names;
  std::istringstream lines(nm.output);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string address, type, name;
    if (fields >> address >> type >> name) names.insert(name);
  }
  return names;
}

// The functions ringfence.h declares ("RF_API ... rf_name(").
std::set<std::string> declared_functions() {
  std::ifstream header(RF_SOURCE_DIR "/include/ringfence.h");
  std::stringstream text;
  text << header.rdbuf();
  const std::string s = text.str();
  std::set<std::string> names;
  const std::regex declaration(R"(RF_API[^;(]*?\b(rf_[a-z_0-9]+)\s*\()");
  for (auto it = std::sregex_iterator(s.begin(), s.end(), declaration); it != std::sregex_iterator(); ++it) {
    names.insert((*it)[1].str());
  }
  return names;
}

TEST(ExportedSymbolsTest, OnlyTheCApiIsExported) {
  const std::set<std::string> symbols = exported_symbols();
  ASSERT_FALSE(symbols.empty());
  for (const std::string& s : symbols) {
    if (s == "RINGFENCE_1") continue;  // the version node itself
    EXPECT_EQ(s.rfind("rf_", 0), 0u) << "exported: " << s;
    EXPECT_NE(s.find("@@RINGFENCE_1"), std::string::npos) << s << " has no RINGFENCE_1 version";
  }
}

TEST(ExportedSymbolsTest, EveryDeclaredFunctionIsExported) {
  const std::set<std::string> declared = declared_functions();
  ASSERT_GE(declared.size(), 30u) << "the header parse found too little";
  const std::set<std::string> symbols = exported_symbols();
  for (const std::string& name : declared) {
    EXPECT_EQ(symbols.count(name + "@@RINGFENCE_1"), 1u) << name << " is declared but not exported";
  }
  EXPECT_EQ(symbols.size(), declared.size() + 1) << "exported but not declared in ringfence.h";
}

}  // namespace
