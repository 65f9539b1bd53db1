// rfblk's descriptor decoder (guest-linux/rfblk_abi.c, kernel C) against the VMM's own encoder
// and decoder (vmm-glue/abi/ring_descriptor): the same bytes must give the same verdict and the
// same fields, for well-formed descriptors and for every one a hostile device could write
// instead (bytes flipped, counts and sizes bent, the buffer cut short).
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "abi/ring_descriptor.h"

extern "C" {
#include "rfblk_abi.h"
}

namespace rf::abi {
namespace {

std::vector<unsigned char> encode(std::uint32_t disks, std::uint32_t windows, Mode mode) {
  DescriptorHeader h;
  h.mode = mode;
  h.device_window_gpa = 0x10000;
  h.device_window_bytes = 0x4000;
  h.ring = RingGeometry{0x11000, 0x11004, 0x11008, 0x1100c, 0, 0x12000, 64,
                        0x11040, 0x11044, 0x11048, 0x1104c, 0x11080, 128};
  h.disk_count = disks;
  h.window_count = windows;
  std::vector<DiskEntry> d;
  for (std::uint32_t i = 0; i < disks; ++i) d.push_back({i, i % 2, (i + 1ull) << 20, 512u << (i % 4), 1u << 20});
  std::vector<WindowEntry> w;
  for (std::uint32_t i = 0; i < windows; ++i) {
    w.push_back({std::uint64_t{i} << 30, 1ull << 30, i, 0, mode == Mode::Passthrough ? 0x7f0000000000ull : 0});
  }
  std::vector<unsigned char> bytes(descriptor_bytes(disks, windows));
  EXPECT_EQ(encode_descriptor(h, d.data(), w.data(), bytes.data(), bytes.size()), bytes.size());
  return bytes;
}

// Decodes `bytes` with both decoders and checks that they agree on everything.
void expect_same(const std::vector<unsigned char>& bytes, std::size_t length) {
  DescriptorHeader cpp;
  rf_desc_header c{};
  const DecodeStatus cpp_status = decode_header(bytes.data(), length, cpp);
  const rf_decode_status c_status = rf_decode_header(bytes.data(), length, &c);
  ASSERT_EQ(static_cast<int>(cpp_status), static_cast<int>(c_status))
      << "C++ says " << decode_status_name(cpp_status) << ", rfblk says " << rf_decode_status_name(c_status);
  EXPECT_STREQ(decode_status_name(cpp_status), rf_decode_status_name(c_status));
  if (cpp_status != DecodeStatus::Ok) return;
  EXPECT_EQ(static_cast<std::uint32_t>(cpp.mode), c.mode);
  EXPECT_EQ(cpp.total_bytes, c.total_bytes);
  EXPECT_EQ(cpp.device_window_gpa, c.device_window_gpa);
  EXPECT_EQ(cpp.device_window_bytes, c.device_window_bytes);
  EXPECT_EQ(cpp.ring.sq_head, c.ring.sq_head);
  EXPECT_EQ(cpp.ring.sq_tail, c.ring.sq_tail);
  EXPECT_EQ(cpp.ring.sq_flags, c.ring.sq_flags);
  EXPECT_EQ(cpp.ring.sq_array, c.ring.sq_array);
  EXPECT_EQ(cpp.ring.sqes, c.ring.sqes);
  EXPECT_EQ(cpp.ring.sq_entries, c.ring.sq_entries);
  EXPECT_EQ(cpp.ring.cq_head, c.ring.cq_head);
  EXPECT_EQ(cpp.ring.cq_tail, c.ring.cq_tail);
  EXPECT_EQ(cpp.ring.cq_flags, c.ring.cq_flags);
  EXPECT_EQ(cpp.ring.cq_overflow, c.ring.cq_overflow);
  EXPECT_EQ(cpp.ring.cqes, c.ring.cqes);
  EXPECT_EQ(cpp.ring.cq_entries, c.ring.cq_entries);
  ASSERT_EQ(cpp.disk_count, c.disk_count);
  ASSERT_EQ(cpp.window_count, c.window_count);
  for (std::uint32_t i = 0; i < cpp.disk_count; ++i) {
    DiskEntry a;
    rf_disk_entry b{};
    ASSERT_EQ(static_cast<int>(decode_disk(bytes.data(), cpp, i, a)), static_cast<int>(rf_decode_disk(bytes.data(), &c, i, &b)))
        << "disk " << i;
    EXPECT_EQ(a.fixed_file, b.fixed_file);
    EXPECT_EQ(a.flags, b.flags);
    EXPECT_EQ(a.size_bytes, b.size_bytes);
    EXPECT_EQ(a.logical_block_size, b.logical_block_size);
    EXPECT_EQ(a.max_transfer, b.max_transfer);
  }
  for (std::uint32_t i = 0; i < cpp.window_count; ++i) {
    WindowEntry a;
    rf_window_entry b{};
    ASSERT_EQ(static_cast<int>(decode_window(bytes.data(), cpp, i, a)),
              static_cast<int>(rf_decode_window(bytes.data(), &c, i, &b)))
        << "window " << i;
    EXPECT_EQ(a.gpa, b.gpa);
    EXPECT_EQ(a.length, b.length);
    EXPECT_EQ(a.buffer_index, b.buffer_index);
    EXPECT_EQ(a.flags, b.flags);
    EXPECT_EQ(a.host_bias, b.host_bias);
  }
  // One past the tables: both refuse.
  DiskEntry a;
  rf_disk_entry b{};
  EXPECT_EQ(static_cast<int>(decode_disk(bytes.data(), cpp, cpp.disk_count, a)),
            static_cast<int>(rf_decode_disk(bytes.data(), &c, c.disk_count, &b)));
}

TEST(RfblkAbiTest, WellFormedDescriptorsDecodeAlikeInBothModes) {
  for (Mode mode : {Mode::Passthrough, Mode::Mediated}) {
    for (std::uint32_t disks : {0u, 1u, 3u, 64u}) {
      for (std::uint32_t windows : {0u, 1u, 2u, 17u}) {
        const auto bytes = encode(disks, windows, mode);
        DescriptorHeader h;
        ASSERT_EQ(decode_header(bytes.data(), bytes.size(), h), DecodeStatus::Ok);
        expect_same(bytes, bytes.size());
      }
    }
  }
}

TEST(RfblkAbiTest, EveryTruncationIsRefusedAlike) {
  const auto bytes = encode(2, 3, Mode::Passthrough);
  for (std::size_t length = 0; length <= bytes.size(); ++length) {
    SCOPED_TRACE(length);
    expect_same(bytes, length);
  }
}

// A hostile device writes anything: flipped bytes anywhere, and header fields bent to the
// values the decoders' checks turn on.
TEST(RfblkAbiTest, HostileBytesGetTheSameVerdictAndFields) {
  std::mt19937_64 random(20261206);
  const auto good = encode(2, 4, Mode::Mediated);
  int accepted = 0, refused = 0;
  for (int round = 0; round < 20000; ++round) {
    auto bytes = good;
    const int flips = 1 + static_cast<int>(random() % 4);
    for (int f = 0; f < flips; ++f) {
      // Mostly the header, where every check lives; sometimes the tables.
      const std::size_t at = random() % 4 != 0 ? random() % 192 : random() % bytes.size();
      bytes[at] = static_cast<unsigned char>(random() % 3 == 0 ? bytes[at] ^ (1u << (random() % 8)) : random());
    }
    SCOPED_TRACE(round);
    expect_same(bytes, bytes.size());
    if (HasFatalFailure()) return;
    DescriptorHeader h;
    (decode_header(bytes.data(), bytes.size(), h) == DecodeStatus::Ok ? accepted : refused)++;
  }
  // Both kinds of verdict were compared, not only refusals.
  EXPECT_GT(accepted, 1000);
  EXPECT_GT(refused, 1000);
}

}  // namespace
}  // namespace rf::abi
