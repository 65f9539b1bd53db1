#include "fuzz/live/program.h"

#include <bitset>
#include <cstring>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace rf::fuzz {
namespace {

using guest::FuzzOp;

FuzzGeometry geometry(abi::Mode mode = abi::Mode::Passthrough) {
  FuzzGeometry g;
  g.mode = mode;
  g.sq_entries = 64;
  g.cq_entries = 128;
  g.has_index_array = true;
  g.ram_bytes = 8ull << 20;
  g.disk_bytes = 4ull << 20;
  g.block_bytes = 512;
  g.max_transfer = 1u << 20;
  g.device_window = {0x10000, 0x8000};
  g.rings = {0x11000, 0x7000};
  g.program = {2ull << 20, 1ull << 20};
  g.data = {3ull << 20, 5ull << 20};
  g.report_page = 0x1000;
  return g;
}

bool is_sqe(const ActionSpec& s) {
  return s.action.op == static_cast<std::uint32_t>(FuzzOp::PutSqe) || s.action.op == static_cast<std::uint32_t>(FuzzOp::ScribbleSqe);
}

TEST(FuzzProgram, IsAFunctionOfSeedAndEpisode) {
  const FuzzProgram a = generate_program(geometry(), 42, 7);
  const FuzzProgram b = generate_program(geometry(), 42, 7);
  const FuzzProgram c = generate_program(geometry(), 42, 8);
  EXPECT_EQ(program_to_json(a), program_to_json(b));
  EXPECT_NE(program_to_json(a), program_to_json(c));
  EXPECT_LE(a.actions.size(), guest::kFuzzMaxActions);
}

TEST(FuzzProgram, EveryProgramSendsEveryOpcodeAndEveryFlagValue) {
  for (std::uint32_t episode = 0; episode < 8; ++episode) {
    const FuzzProgram p = generate_program(geometry(), 3, episode);
    std::bitset<256> opcodes, flags;
    for (const ActionSpec& s : p.actions) {
      if (!is_sqe(s)) continue;
      opcodes.set(s.action.sqe.opcode);
      flags.set(s.action.sqe.flags);
    }
    EXPECT_EQ(opcodes.count(), 256u) << "episode " << episode;
    // Every flag value, except that half the episodes leave CQE_SKIP_SUCCESS off linked SQEs
    // (so that their accounting is exact): then exactly those values are missing.
    std::size_t missing_linked_skips = 0;
    for (unsigned v = 0; v < 256; ++v) {
      if (flags.test(v)) continue;
      EXPECT_TRUE(skips_linked_cqes(static_cast<std::uint8_t>(v))) << "flag value " << v << " never sent";
      ++missing_linked_skips;
    }
    EXPECT_TRUE(missing_linked_skips == 0 || missing_linked_skips == 96) << missing_linked_skips;
  }
}

TEST(FuzzProgram, AboutHalfTheEpisodesKeepTheSqProtocolAndHalfAreChaos) {
  int keeping = 0;
  for (std::uint32_t episode = 0; episode < 40; ++episode) keeping += keeps_sq_protocol(generate_program(geometry(), 5, episode));
  EXPECT_GT(keeping, 10);
  EXPECT_LT(keeping, 30);
}

TEST(FuzzProgram, PassthroughReadsNeverLandOnTheRingsOrTheProgram) {
  const FuzzGeometry g = geometry();
  for (std::uint32_t episode = 0; episode < 10; ++episode) {
    for (const ActionSpec& s : generate_program(g, 11, episode).actions) {
      if (!is_sqe(s) || s.addr_anchor != AddrAnchor::Gpa || writes_disk(s.action.sqe.opcode)) continue;
      const std::uint64_t addr = s.action.sqe.addr;
      const std::uint64_t end = addr + std::max<std::uint64_t>(s.action.sqe.len, 1);
      const bool wraps = end < addr;
      for (const Zone& z : {g.rings, g.program}) {
        EXPECT_FALSE(!wraps && addr < z.end() && end > z.gpa) << "a read at " << addr << " overlaps [" << z.gpa << ", " << z.end() << ")";
      }
    }
  }
}

TEST(FuzzProgram, MediatedReadsMayLandOnTheRings) {
  const FuzzGeometry g = geometry(abi::Mode::Mediated);
  bool into_rings = false;
  for (std::uint32_t episode = 0; episode < 10 && !into_rings; ++episode) {
    for (const ActionSpec& s : generate_program(g, 11, episode).actions) {
      into_rings |= is_sqe(s) && s.addr_anchor == AddrAnchor::Gpa && s.action.sqe.opcode == abi::kOpReadFixed &&
                    s.action.sqe.addr >= g.rings.gpa && s.action.sqe.addr < g.rings.end();
    }
  }
  EXPECT_TRUE(into_rings);
}

TEST(FuzzProgram, ResolveAppliesTheRunsAnchors) {
  FuzzProgram p;
  ActionSpec gpa;
  gpa.action.op = static_cast<std::uint32_t>(FuzzOp::PutSqe);
  gpa.action.sqe.addr = 0x3000;
  gpa.addr_anchor = AddrAnchor::Gpa;
  ActionSpec canary = gpa;
  canary.action.sqe.addr = 16;
  canary.addr_anchor = AddrAnchor::CanaryAbove;
  canary.fd_anchor = FdAnchor::Decoy;
  canary.action.sqe.fd = 1;
  ActionSpec raw = gpa;
  raw.addr_anchor = AddrAnchor::Raw;
  p.actions = {gpa, canary, raw};
  Anchors a;
  a.gpa_bias = 0x7f0000000000;
  a.canary_above = 0x7f0000800000;
  a.decoy_fd = 9;
  const auto out = resolve(p, a);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].sqe.addr, 0x7f0000003000u);
  EXPECT_EQ(out[1].sqe.addr, 0x7f0000800010u);
  EXPECT_EQ(out[1].sqe.fd, 10);
  EXPECT_EQ(out[2].sqe.addr, 0x3000u);
}

TEST(FuzzProgram, JsonRoundTripsExactly) {
  const FuzzProgram p = generate_program(geometry(), 99, 3);
  auto back = program_from_json(nlohmann::json::parse(program_to_json(p).dump()));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->seed, 99u);
  EXPECT_EQ(back->episode, 3u);
  EXPECT_EQ(program_to_json(*back), program_to_json(p));
  const Anchors a{0x1000, 0x2000, 0x3000, 0x4000, 5};
  const auto x = resolve(p, a), y = resolve(*back, a);
  ASSERT_EQ(x.size(), y.size());
  for (std::size_t i = 0; i < x.size(); ++i) ASSERT_EQ(std::memcmp(&x[i], &y[i], sizeof(x[i])), 0) << "action " << i;
}

TEST(FuzzProgram, HostileJsonIsRefusedWithTheActionNamed) {
  using nlohmann::json;
  EXPECT_FALSE(program_from_json(json::array()));
  EXPECT_FALSE(program_from_json(json{{"actions", 3}}));
  auto unknown = program_from_json(json{{"actions", json::array({json{{"op", "format_disk"}}})}});
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().find("action 0"), std::string::npos);
  // An SQE field that does not fit its width.
  json sqe = program_to_json(generate_program(geometry(), 1, 0))["actions"][0];
  ASSERT_TRUE(sqe.contains("sqe"));
  sqe["sqe"]["opcode"] = 256;
  EXPECT_FALSE(program_from_json(json{{"actions", json::array({sqe})}}));
  sqe["sqe"]["opcode"] = -1;
  EXPECT_FALSE(program_from_json(json{{"actions", json::array({sqe})}}));
  EXPECT_FALSE(program_from_json(json{{"actions", json::array({json{{"op", "scribble"}, {"field", "sq_nowhere"}}})}}));
  json too_many{{"actions", json::array()}};
  for (std::uint32_t i = 0; i <= guest::kFuzzMaxActions; ++i) too_many["actions"].push_back(json{{"op", "kick"}});
  EXPECT_FALSE(program_from_json(too_many));
}

TEST(FuzzProgram, AccountingIsExactUnlessDropsOrLinkedCqeSkipsHideCqes) {
  FuzzProgram p;
  ActionSpec put;
  put.action.op = static_cast<std::uint32_t>(FuzzOp::PutSqe);
  p.actions = {put};
  EXPECT_EQ(drop_accounting(p, 64), DropAccounting::None);
  ActionSpec bad_index;
  bad_index.action.op = static_cast<std::uint32_t>(FuzzOp::SetIndex);
  bad_index.action.value = 64;
  p.actions.push_back(bad_index);
  EXPECT_EQ(drop_accounting(p, 64), DropAccounting::Counted);
  ActionSpec dropped;
  dropped.action.op = static_cast<std::uint32_t>(FuzzOp::Scribble);
  dropped.action.field = static_cast<std::uint32_t>(guest::FuzzField::SqDropped);
  p.actions.push_back(dropped);
  EXPECT_EQ(drop_accounting(p, 64), DropAccounting::Unknown);
  FuzzProgram linked;
  put.action.sqe.flags = 0x40 | 0x04;  // CQE_SKIP_SUCCESS | IO_LINK
  linked.actions = {put};
  EXPECT_EQ(drop_accounting(linked, 64), DropAccounting::Unknown);
}

}  // namespace
}  // namespace rf::fuzz
