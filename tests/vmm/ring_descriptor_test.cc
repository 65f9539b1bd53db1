#include "abi/ring_descriptor.h"

#include <vector>

#include <gtest/gtest.h>

namespace rf::abi {
namespace {

DescriptorHeader sample_header(std::uint32_t disks, std::uint32_t windows) {
  DescriptorHeader h;
  h.mode = Mode::Passthrough;
  h.device_window_gpa = 0x10000;
  h.device_window_bytes = 0x3000;
  h.ring = RingGeometry{0x11000, 0x11004, 0x11008, 0x1100c, 0x11100, 0x12000, 64,
                        0x11040, 0x11044, 0x11048, 0x1104c, 0x11080, 128};
  h.disk_count = disks;
  h.window_count = windows;
  return h;
}

struct Encoded {
  std::vector<unsigned char> bytes;
  std::vector<DiskEntry> disks;
  std::vector<WindowEntry> windows;
};

Encoded encode_sample() {
  Encoded e;
  e.disks = {{0, 0, 64ull << 20, 512, 1u << 20}, {1, kDiskReadOnly, 1ull << 40, 4096, 1u << 20}};
  e.windows = {{0, 1ull << 30, 0, 0, 0x7f0000000000ull}, {1ull << 32, 1ull << 30, 1, 0, 0xffffffff00000000ull}};
  e.bytes.resize(descriptor_bytes(2, 2));
  EXPECT_EQ(encode_descriptor(sample_header(2, 2), e.disks.data(), e.windows.data(), e.bytes.data(), e.bytes.size()),
            e.bytes.size());
  return e;
}

void put16(std::vector<unsigned char>& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<unsigned char>(v);
  b[at + 1] = static_cast<unsigned char>(v >> 8);
}

TEST(RingDescriptor, RoundTrips) {
  const Encoded e = encode_sample();
  DescriptorHeader h;
  ASSERT_EQ(decode_header(e.bytes.data(), e.bytes.size(), h), DecodeStatus::Ok);
  EXPECT_EQ(h.version_major, kVersionMajor);
  EXPECT_EQ(h.mode, Mode::Passthrough);
  EXPECT_EQ(h.total_bytes, e.bytes.size());
  EXPECT_EQ(h.ring.sq_entries, 64u);
  EXPECT_EQ(h.ring.cq_entries, 128u);
  EXPECT_EQ(h.ring.sqes, 0x12000u);
  EXPECT_EQ(h.ring.cq_overflow, 0x1104cu);
  EXPECT_EQ(h.device_window_bytes, 0x3000u);
  for (std::uint32_t i = 0; i < 2; ++i) {
    DiskEntry d;
    ASSERT_EQ(decode_disk(e.bytes.data(), h, i, d), DecodeStatus::Ok);
    EXPECT_EQ(d.fixed_file, e.disks[i].fixed_file);
    EXPECT_EQ(d.flags, e.disks[i].flags);
    EXPECT_EQ(d.size_bytes, e.disks[i].size_bytes);
    EXPECT_EQ(d.logical_block_size, e.disks[i].logical_block_size);
    WindowEntry w;
    ASSERT_EQ(decode_window(e.bytes.data(), h, i, w), DecodeStatus::Ok);
    EXPECT_EQ(w.gpa, e.windows[i].gpa);
    EXPECT_EQ(w.length, e.windows[i].length);
    EXPECT_EQ(w.buffer_index, e.windows[i].buffer_index);
    EXPECT_EQ(w.host_bias, e.windows[i].host_bias);
  }
  DiskEntry d;
  EXPECT_EQ(decode_disk(e.bytes.data(), h, 2, d), DecodeStatus::TooManyEntries);
}

TEST(RingDescriptor, IsLittleEndianAtFixedOffsets) {
  const Encoded e = encode_sample();
  EXPECT_EQ(e.bytes[0], 0x00);  // magic "\0RFRIND1", low byte first
  EXPECT_EQ(e.bytes[1], 'R');
  EXPECT_EQ(e.bytes[7], '1');
  EXPECT_EQ(e.bytes[8], kVersionMajor);
  EXPECT_EQ(e.bytes[104], 64);  // sq_entries
  EXPECT_EQ(e.bytes[105], 0);
}

TEST(RingDescriptor, RefusesANewerMajorVersionButAcceptsANewerMinor) {
  Encoded e = encode_sample();
  DescriptorHeader h;
  put16(e.bytes, 10, kVersionMinor + 1);
  EXPECT_EQ(decode_header(e.bytes.data(), e.bytes.size(), h), DecodeStatus::Ok);
  put16(e.bytes, 8, kVersionMajor + 1);
  EXPECT_EQ(decode_header(e.bytes.data(), e.bytes.size(), h), DecodeStatus::NewerMajor);
}

TEST(RingDescriptor, ANewerMinorMayGrowEntries) {
  // A v1.1 writer with 40-byte disk entries: a v1.0 reader finds the fields it knows.
  Encoded e = encode_sample();
  std::vector<unsigned char> grown(e.bytes.begin(), e.bytes.begin() + kHeaderBytes);
  for (int i = 0; i < 2; ++i) {
    grown.insert(grown.end(), e.bytes.begin() + kHeaderBytes + i * kDiskEntryBytes,
                 e.bytes.begin() + kHeaderBytes + (i + 1) * kDiskEntryBytes);
    grown.insert(grown.end(), 8, 0xee);  // the new field
  }
  grown.insert(grown.end(), e.bytes.begin() + kHeaderBytes + 2 * kDiskEntryBytes, e.bytes.end());
  put16(grown, 10, kVersionMinor + 1);
  put16(grown, 36, kDiskEntryBytes + 8);
  const auto total = static_cast<std::uint32_t>(grown.size());
  for (int i = 0; i < 4; ++i) grown[12 + i] = static_cast<unsigned char>(total >> (8 * i));
  DescriptorHeader h;
  ASSERT_EQ(decode_header(grown.data(), grown.size(), h), DecodeStatus::Ok);
  DiskEntry d;
  ASSERT_EQ(decode_disk(grown.data(), h, 1, d), DecodeStatus::Ok);
  EXPECT_EQ(d.size_bytes, 1ull << 40);
  WindowEntry w;
  ASSERT_EQ(decode_window(grown.data(), h, 1, w), DecodeStatus::Ok);
  EXPECT_EQ(w.gpa, 1ull << 32);
}

TEST(RingDescriptor, RefusesDamage) {
  DescriptorHeader h;
  {
    Encoded e = encode_sample();
    EXPECT_EQ(decode_header(e.bytes.data(), kHeaderBytes - 1, h), DecodeStatus::TooSmall);
    EXPECT_EQ(decode_header(e.bytes.data(), e.bytes.size() - 1, h), DecodeStatus::TooSmall);  // tables cut off
    e.bytes[1] ^= 1;
    EXPECT_EQ(decode_header(e.bytes.data(), e.bytes.size(), h), DecodeStatus::BadMagic);
  }
  {
    Encoded e = encode_sample();
    e.bytes[16] = 7;  // mode
    EXPECT_EQ(decode_header(e.bytes.data(), e.bytes.size(), h), DecodeStatus::BadMode);
  }
  {
    Encoded e = encode_sample();
    e.bytes[104] = 63;  // sq_entries not a power of two
    EXPECT_EQ(decode_header(e.bytes.data(), e.bytes.size(), h), DecodeStatus::BadGeometry);
  }
  {
    Encoded e = encode_sample();
    put16(e.bytes, 38, kWindowEntryBytes - 1);
    EXPECT_EQ(decode_header(e.bytes.data(), e.bytes.size(), h), DecodeStatus::BadEntrySize);
  }
  {
    Encoded e = encode_sample();
    e.bytes[28] = kMaxDisks + 1;  // disk_count
    EXPECT_EQ(decode_header(e.bytes.data(), e.bytes.size(), h), DecodeStatus::TooManyEntries);
  }
  {
    Encoded e = encode_sample();
    e.bytes[20] = 9;  // doorbell kind
    EXPECT_EQ(decode_header(e.bytes.data(), e.bytes.size(), h), DecodeStatus::BadDoorbell);
  }
}

TEST(RingDescriptor, RefusesBadEntries) {
  Encoded e = encode_sample();
  e.disks[0].logical_block_size = 768;
  e.windows[1].gpa = UINT64_MAX - 10;  // gpa + length wraps
  ASSERT_EQ(encode_descriptor(sample_header(2, 2), e.disks.data(), e.windows.data(), e.bytes.data(), e.bytes.size()),
            e.bytes.size());
  DescriptorHeader h;
  ASSERT_EQ(decode_header(e.bytes.data(), e.bytes.size(), h), DecodeStatus::Ok);
  DiskEntry d;
  EXPECT_EQ(decode_disk(e.bytes.data(), h, 0, d), DecodeStatus::BadDisk);
  WindowEntry w;
  EXPECT_EQ(decode_window(e.bytes.data(), h, 1, w), DecodeStatus::BadWindow);
}

TEST(RingDescriptor, EncodeRefusesASmallBufferOrTooManyEntries) {
  Encoded e = encode_sample();
  EXPECT_EQ(encode_descriptor(sample_header(2, 2), e.disks.data(), e.windows.data(), e.bytes.data(), e.bytes.size() - 1), 0u);
  EXPECT_EQ(encode_descriptor(sample_header(kMaxDisks + 1, 0), e.disks.data(), e.windows.data(), e.bytes.data(),
                              e.bytes.size()), 0u);
}

}  // namespace
}  // namespace rf::abi
