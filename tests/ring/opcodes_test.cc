#include "ring/opcodes.h"

#include <gtest/gtest.h>

namespace rf {
namespace {

TEST(OpcodesTest, NamesRoundTrip) {
  for (const auto& op : known_sqe_opcodes()) {
    EXPECT_EQ(sqe_opcode_from_name(op.name), op.value) << op.name;
    EXPECT_EQ(sqe_opcode_name(op.value), op.name);
  }
  for (const auto& op : known_register_opcodes()) {
    EXPECT_EQ(register_opcode_from_name(op.name), op.value) << op.name;
  }
  for (const auto& f : known_sqe_flags()) EXPECT_EQ(sqe_flag_from_name(f.name), f.bit);
}

TEST(OpcodesTest, KernelNumbersForTheOpcodesThatMatter) {
  EXPECT_EQ(sqe_opcode_from_name("READ_FIXED"), 4);
  EXPECT_EQ(sqe_opcode_from_name("WRITE_FIXED"), 5);
  EXPECT_EQ(sqe_opcode_from_name("FSYNC"), 3);
  EXPECT_EQ(sqe_opcode_from_name("READV_FIXED"), 60);
  EXPECT_EQ(sqe_opcode_from_name("PIPE"), 62);
  EXPECT_EQ(register_opcode_from_name("REGISTER_RESTRICTIONS"), 11);
  EXPECT_EQ(register_opcode_from_name("REGISTER_QUERY"), 35);
  EXPECT_EQ(sqe_flag_from_name("CQE_SKIP_SUCCESS"), 1 << 6);
}

TEST(OpcodesTest, UnknownNamesAndNumbers) {
  EXPECT_FALSE(sqe_opcode_from_name("IORING_OP_READV"));  // names are written without the prefix
  EXPECT_FALSE(sqe_opcode_from_name("read_fixed"));
  EXPECT_FALSE(sqe_opcode_name(200));
  EXPECT_EQ(sqe_opcode_label(200u), "op 200");
  EXPECT_EQ(register_opcode_label(99u), "register op 99");
}

TEST(OpcodesTest, FlagLabels) {
  EXPECT_EQ(sqe_flags_label(0), "none");
  EXPECT_EQ(sqe_flags_label(sqe_flag::kFixedFile | sqe_flag::kIoLink), "FIXED_FILE|IO_LINK");
  EXPECT_EQ(sqe_flags_label(0x80), "bit7");
}

}  // namespace
}  // namespace rf
