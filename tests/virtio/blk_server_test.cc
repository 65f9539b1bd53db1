// The vhost-user-blk back-end over a real socket, driven by a test front-end: the well-behaved
// path in QEMU's order, and every kind of bad message a front-end can send, each of which must
// close that connection with a reason while the server goes on serving the next.
#include "vhost_user/blk_server.h"

#include <fcntl.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "device/guest_device.h"
#include "support/io_uring_threads.h"
#include "support/kernel_caps.h"
#include "support/test_disk.h"
#include "support/vhost_user_front_end.h"
#include "guest/driver.h"
#include "util/mmap_region.h"
#include "virtio/inflight_split.h"

namespace rf::vhost_user {
namespace {

using namespace std::chrono_literals;
using test::FrontEnd;
using test::FrontEndLog;
using test::FrontEndRam;
using test::TestVirtqueue;

constexpr std::uint64_t kDiskBytes = 1 << 20;
constexpr std::uint16_t kSize = 16;
constexpr std::uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000, kHeader = 0x10000, kStatus = 0x11000;
constexpr std::uint64_t kData = FrontEndRam::kHighBase;  // data in the second region

class BlkServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RF_REQUIRE(test::restrictions_feature());
    RF_REQUIRE(test::loop_device_feature());
    image_ = test::make_image(dir_, "disk.img", kDiskBytes);
    auto disk = Disk::open(image_, {});
    ASSERT_TRUE(disk) << disk.error().message;
    disk_.emplace(std::move(*disk));
    socket_ = dir_.path() + "/vub.sock";
    BlkServerOptions options;
    options.socket_path = socket_;
    options.backend.queues = 2;
    auto policy = device_restrictions(std::nullopt, "blk-virtio");
    ASSERT_TRUE(policy);
    options.backend.restrictions = *policy;
    options.backend.serial = "test";
    options.log = [this](std::string_view line) {
      std::lock_guard lock(log_mutex_);
      log_.emplace_back(line);
      log_cv_.notify_all();
    };
    options.message_timeout = 300ms;
    configure(options);
    auto server = BlkServer::listen(std::move(*disk_), std::move(options));
    disk_.reset();  // the server holds the disk only while queues run
    ASSERT_TRUE(server) << server.error();
    server_ = std::move(*server);
    thread_ = std::thread([this] { server_->run(); });
  }
  virtual void configure(BlkServerOptions&) {}
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
    if (HasFailure()) {
      for (const auto& line : log_) std::cerr << "  server: " << line << "\n";
    }
  }
  // Waits for a log line containing `text`; returns it (empty on timeout).
  std::string wait_log(const std::string& text, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(log_mutex_);
    std::string found;
    log_cv_.wait_for(lock, timeout, [&] {
      for (const auto& line : log_) {
        if (line.find(text) != std::string::npos) found = line;
      }
      return !found.empty();
    });
    return found;
  }
  FrontEnd connect() {
    auto fe = FrontEnd::connect(socket_);
    if (!fe) throw std::runtime_error("connect");
    return std::move(*fe);
  }
  // A front-end that did the handshake, handed over its memory table and started queue 0 on
  // `vq`, in QEMU's order.
  struct RunningQueue {
    explicit RunningQueue(FrontEnd front_end) : fe(std::move(front_end)) {}
    FrontEndRam ram;
    FrontEnd fe;
    TestVirtqueue vq{ram.view(), kDesc, kAvail, kUsed, kSize};
    UniqueFd kick{::eventfd(0, EFD_CLOEXEC)}, call{::eventfd(0, EFD_CLOEXEC)};
  };
  std::unique_ptr<RunningQueue> start_queue_zero() {
    auto q = std::make_unique<RunningQueue>(connect());
    if (!q->fe.handshake() || !q->fe.set_mem_table(q->ram) ||
        !q->fe.start_queue(0, q->vq, q->ram, q->kick.get(), q->call.get())) {
      ADD_FAILURE() << "the front-end could not start queue 0";
      return nullptr;
    }
    return q;
  }
  // A request on queue `vq`: OUT or IN of 4 KiB at `sector`, status at kStatus + slot.
  std::uint16_t post(TestVirtqueue& vq, unsigned slot, std::uint32_t type, std::uint64_t sector) {
    virtio::BlkRequestHeader h{type, 0, sector};
    std::memcpy(vq.view().at(kHeader + 16 * slot, 16), &h, 16);
    *vq.view().at(kStatus + slot) = std::byte{0xff};
    const TestVirtqueue::Part parts[] = {
        {kHeader + 16 * slot, 16, false}, {kData + 4096 * slot, 4096, type == virtio::kBlkIn}, {kStatus + slot, 1, true}};
    const std::uint16_t head = vq.chain(static_cast<std::uint16_t>(3 * slot), parts);
    vq.publish(head);
    return head;
  }
  static std::optional<virtio::UsedElement> wait_used(TestVirtqueue& vq) {
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < end) {
      if (auto e = vq.pop_used()) return e;
      std::this_thread::sleep_for(1ms);
    }
    return std::nullopt;
  }
  // The connection is closed by the server, and the log says why.
  void expect_refused(FrontEnd& fe, const std::string& reason) {
    EXPECT_TRUE(fe.closed_by_peer()) << "the connection stayed open";
    EXPECT_FALSE(wait_log(reason).empty()) << "no log line says: " << reason;
  }
  // And a new front-end is served as if nothing happened.
  void expect_still_serving() {
    FrontEnd fe = connect();
    EXPECT_TRUE(fe.handshake()) << "the server stopped serving after a refused connection";
  }

  TempDir dir_{"rf-vhost-user"};
  std::string image_;
  std::optional<Disk> disk_;
  std::string socket_;
  std::unique_ptr<BlkServer> server_;
  std::thread thread_;
  std::mutex log_mutex_;
  std::condition_variable log_cv_;
  std::vector<std::string> log_;
};

TEST_F(BlkServerTest, ServesAGuestInQemusOrderAndAgainAfterAReconnect) {
  const std::size_t mappings_before = MmapRegion::live_count();
  for (int connection = 0; connection < 2; ++connection) {
    FrontEndRam ram;
    FrontEnd fe = connect();
    std::uint64_t features = 0;
    ASSERT_TRUE(fe.handshake(&features));
    EXPECT_NE(features & virtio::feature_bit(virtio::kBlkFeatureMultiQueue), 0u);
    EXPECT_EQ(features & virtio::feature_bit(virtio::kBlkFeatureReadOnly), 0u);
    // GET_CONFIG, as QEMU asks it: the header and 60 zero bytes.
    std::vector<std::byte> ask(12 + 60);
    const ConfigHeader h{0, 60, 0};
    std::memcpy(ask.data(), &h, sizeof h);
    ASSERT_TRUE(fe.send(kGetConfig, ask));
    auto config = fe.receive();
    ASSERT_TRUE(config);
    ASSERT_EQ(config->payload.size(), 72u);
    virtio::BlkConfig space{};
    std::memcpy(&space, config->payload.data() + 12, 60);
    EXPECT_EQ(space.capacity, kDiskBytes / 512);
    EXPECT_EQ(space.num_queues, 2);
    EXPECT_EQ(space.blk_size, 512u);

    ASSERT_TRUE(fe.set_mem_table(ram));
    TestVirtqueue vq(ram.view(), kDesc, kAvail, kUsed, kSize);
    UniqueFd kick(::eventfd(0, EFD_CLOEXEC)), call(::eventfd(0, EFD_CLOEXEC));
    ASSERT_TRUE(fe.start_queue(0, vq, ram, kick.get(), call.get()));
    std::memset(vq.view().at(kData, 4096), 0x30 + connection, 4096);
    post(vq, 0, virtio::kBlkOut, 16);
    ASSERT_EQ(::eventfd_write(kick.get(), 1), 0);
    ASSERT_TRUE(wait_used(vq));
    post(vq, 1, virtio::kBlkIn, 16);
    ASSERT_EQ(::eventfd_write(kick.get(), 1), 0);
    auto used = wait_used(vq);
    ASSERT_TRUE(used);
    EXPECT_EQ(used->len, 4097u);
    EXPECT_EQ(*vq.view().at(kStatus + 1), std::byte{0});
    EXPECT_EQ(std::memcmp(vq.view().at(kData + 4096, 4096), vq.view().at(kData, 4096), 4096), 0);
    // The guest was notified through the call eventfd.
    eventfd_t calls = 0;
    EXPECT_EQ(::eventfd_read(call.get(), &calls), 0);
    EXPECT_GE(calls, 1u);
    // GET_VRING_BASE stops the queue and says where the guest's next request is.
    ASSERT_TRUE(fe.send_value(kGetVringBase, VringState{0, 0}));
    auto base = fe.receive();
    ASSERT_TRUE(base);
    VringState state{};
    std::memcpy(&state, base->payload.data(), sizeof state);
    EXPECT_EQ(state.num, 2u);
  }
  // Both connections are over (the second one's close is seen by the server): nothing of
  // either is left mapped.
  EXPECT_FALSE(wait_log("connection 2 closed").empty());
  EXPECT_EQ(MmapRegion::live_count(), mappings_before);
}

// DISCARD and WRITE_ZEROES are offered only where the policy allows FALLOCATE and the disk can
// be written, with limits in the configuration space the parser enforces.
TEST(BlkBackendZeroingTest, OfferedOnlyUnderAFallocatePolicyOnAWritableDisk) {
  RF_REQUIRE(test::loop_device_feature());
  TempDir dir("rf-vub-zeroing");
  const std::string image = test::make_image(dir, "disk.img", kDiskBytes);
  const auto offered = [&](const char* policy_name, bool read_only) {
    DiskOptions options;
    options.read_only = read_only;
    auto disk = Disk::open(image, options);
    EXPECT_TRUE(disk);
    BlkBackendConfig config;
    config.restrictions = *device_restrictions(std::nullopt, policy_name);
    DiskLease lease(std::move(*disk));
    BlkBackend backend(lease, config);
    const std::uint64_t f = backend.offered_features();
    const virtio::BlkConfig& space = backend.config_space();
    const bool discard = (f & virtio::feature_bit(virtio::kBlkFeatureDiscard)) != 0;
    const bool write_zeroes = (f & virtio::feature_bit(virtio::kBlkFeatureWriteZeroes)) != 0;
    EXPECT_EQ(discard, lease.zeroing().punch_hole && !read_only && std::string(policy_name) == "blk-virtio");
    EXPECT_EQ(space.max_discard_sectors, discard ? virtio::kMaxZeroingBytes / 512 : 0u);
    EXPECT_EQ(space.max_discard_seg, discard ? virtio::kMaxZeroingSegments : 0u);
    EXPECT_EQ(space.discard_sector_alignment, discard ? 1u : 0u);
    EXPECT_EQ(space.max_write_zeroes_sectors, write_zeroes ? virtio::kMaxZeroingBytes / 512 : 0u);
    EXPECT_EQ(space.write_zeroes_may_unmap, write_zeroes && discard ? 1 : 0);
    return write_zeroes;
  };
  EXPECT_TRUE(offered("blk-virtio", false));
  EXPECT_FALSE(offered("blk-mediated", false)) << "no FALLOCATE in the policy";
  EXPECT_FALSE(offered("blk-virtio", true)) << "a read-only disk";
}

TEST_F(BlkServerTest, AFrontEndThatDiesWithRequestsInFlightLeavesNothingBehind) {
  const std::size_t mappings_before = MmapRegion::live_count();
  {
    auto q = start_queue_zero();
    ASSERT_TRUE(q);
    for (unsigned i = 0; i < 5; ++i) post(q->vq, i, virtio::kBlkIn, i * 8);
    ASSERT_EQ(::eventfd_write(q->kick.get(), 1), 0);
  }  // the front-end goes away without a word, as a QEMU killed with SIGKILL does
  EXPECT_FALSE(wait_log("connection 1 closed").empty());
  EXPECT_EQ(MmapRegion::live_count(), mappings_before);
  expect_still_serving();
}

// Reconnect with in-flight recovery, as QEMU does it: GET_INFLIGHT_FD on the first start, the same
// fd handed to the next back-end with SET_INFLIGHT_FD before its queues start.
TEST_F(BlkServerTest, ANewBackEndResubmitsWhatTheInflightRegionRecords) {
  FrontEndRam ram;
  UniqueFd region_fd;
  InflightMessage given{};
  {
    FrontEnd fe = connect();
    ASSERT_TRUE(fe.handshake());
    ASSERT_TRUE(fe.send_value(kGetInflightFd, InflightMessage{0, 0, 2, kSize, 0}));
    auto reply = fe.receive();
    ASSERT_TRUE(reply);
    ASSERT_TRUE(reply->fd) << "GET_INFLIGHT_FD's reply carries no fd";
    ASSERT_EQ(reply->payload.size(), sizeof given);
    std::memcpy(&given, reply->payload.data(), sizeof given);
    EXPECT_EQ(given.mmap_size, 2 * virtio::inflight_queue_bytes(kSize));
    EXPECT_EQ(given.mmap_offset, 0u);
    EXPECT_EQ(given.num_queues, 2);
    EXPECT_EQ(given.queue_size, kSize);
    const int seals = ::fcntl(reply->fd.get(), F_GET_SEALS);
    EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    region_fd = std::move(reply->fd);
  }
  ASSERT_FALSE(wait_log("connection 1 closed").empty());

  // What a back-end that died would have left: the guest posted two writes, it took both.
  auto region = MmapRegion::map_fd(region_fd.get(), 0, given.mmap_size, PROT_READ | PROT_WRITE);
  ASSERT_TRUE(region);
  TestVirtqueue vq(ram.view(), kDesc, kAvail, kUsed, kSize);
  std::uint16_t heads[2];
  for (unsigned i = 0; i < 2; ++i) {
    std::memset(vq.view().at(kData + 4096 * i, 4096), 0x61 + static_cast<int>(i), 4096);
    heads[i] = post(vq, i, virtio::kBlkOut, 24 + 8 * i);
  }
  virtio::InflightSplit dead(region->bytes(), kSize);
  dead.recover(0, kSize);
  for (const std::uint16_t head : heads) dead.taken(head);

  FrontEnd fe = connect();
  ASSERT_TRUE(fe.handshake());
  const int fds[] = {region_fd.get()};
  ASSERT_TRUE(fe.send_value(kSetInflightFd, given, fds));
  ASSERT_TRUE(fe.set_mem_table(ram));
  UniqueFd kick(::eventfd(0, EFD_CLOEXEC)), call(::eventfd(0, EFD_CLOEXEC));
  ASSERT_TRUE(fe.start_queue(0, vq, ram, kick.get(), call.get()));
  for (const std::uint16_t head : heads) {
    auto used = wait_used(vq);
    ASSERT_TRUE(used);
    EXPECT_EQ(used->id, head);
  }
  EXPECT_FALSE(wait_log("2 requests to resubmit").empty());
  EXPECT_FALSE(wait_log("first request completed").empty());
  std::ifstream image(image_, std::ios::binary);
  for (unsigned i = 0; i < 2; ++i) {
    image.seekg(static_cast<std::streamoff>((24 + 8 * i) * 512));
    EXPECT_EQ(image.get(), 0x61 + static_cast<int>(i));
  }
}

TEST_F(BlkServerTest, BadInflightRegionsAreRefused) {
  const auto refused = [this](const InflightMessage& m, std::uint32_t request, int fd, const std::string& reason) {
    FrontEnd fe = connect();
    ASSERT_TRUE(fe.handshake());
    const int fds[] = {fd};
    ASSERT_TRUE(fe.send_value(request, m, fd < 0 ? std::span<const int>{} : std::span<const int>(fds)));
    expect_refused(fe, reason);
  };
  refused({0, 0, 3, kSize, 0}, kGetInflightFd, -1, "asks for 3 queues");
  refused({0, 0, 1, 100, 0}, kGetInflightFd, -1, "gives queue size 100");
  const std::uint64_t bytes = virtio::inflight_queue_bytes(kSize);
  UniqueFd unsealed(::memfd_create("unsealed", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(unsealed.get(), static_cast<off_t>(bytes)), 0);
  refused({bytes, 0, 1, kSize, 0}, kSetInflightFd, unsealed.get(), "not sealed against shrinking");
  refused({bytes + 4096, 0, 1, kSize, 0}, kSetInflightFd, unsealed.get(), "their region is");
  refused({bytes, 0, 1, kSize, 0}, kSetInflightFd, -1, "carries 0 fds");
  UniqueFd short_file(::memfd_create("short", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(::fcntl(short_file.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
  refused({bytes, 0, 1, kSize, 0}, kSetInflightFd, short_file.get(), "not a file of at least");

  // A region for queues of 8 descriptors, and a queue of 16 started over it.
  FrontEnd fe = connect();
  ASSERT_TRUE(fe.handshake());
  ASSERT_TRUE(fe.send_value(kGetInflightFd, InflightMessage{0, 0, 1, 8, 0}));
  ASSERT_TRUE(fe.receive());
  FrontEndRam ram;
  ASSERT_TRUE(fe.set_mem_table(ram));
  TestVirtqueue vq(ram.view(), kDesc, kAvail, kUsed, kSize);
  UniqueFd kick(::eventfd(0, EFD_CLOEXEC)), call(::eventfd(0, EFD_CLOEXEC));
  fe.start_queue(0, vq, ram, kick.get(), call.get());
  expect_refused(fe, "more than the inflight region's 8 per queue");
  expect_still_serving();
}

// A migration's two back-ends share one image: each holds it (locked, behind its own loop device)
// only while a guest's queues run on it (disk_lease.h).
TEST_F(BlkServerTest, TheDiskIsOpenAndLockedOnlyWhileQueuesRun) {
  const auto another_writer_can_open = [this] {
    DiskOptions quick;
    auto other = Disk::open(image_, quick);
    return other.has_value();
  };
  EXPECT_TRUE(another_writer_can_open()) << "an idle back-end holds the disk";
  auto q = start_queue_zero();
  ASSERT_TRUE(q);
  post(q->vq, 0, virtio::kBlkOut, 8);
  ASSERT_EQ(::eventfd_write(q->kick.get(), 1), 0);
  ASSERT_TRUE(wait_used(q->vq));
  EXPECT_FALSE(another_writer_can_open()) << "a running queue's disk is not locked";
  // QEMU's stop (a reset, or a migration's switch-over): every queue's GET_VRING_BASE.
  ASSERT_TRUE(q->fe.send_value(kGetVringBase, VringState{0, 0}));
  ASSERT_TRUE(q->fe.receive());
  EXPECT_TRUE(another_writer_can_open()) << "the disk stayed locked after every queue stopped";

  // Held by someone else when the guest starts again: the start is refused with the reason.
  DiskOptions holder_options;
  auto opened = Disk::open(image_, holder_options);
  ASSERT_TRUE(opened);
  std::optional<Disk> holder(std::move(*opened));
  UniqueFd kick(::eventfd(0, EFD_CLOEXEC));
  const int kick_fd[] = {kick.get()};
  ASSERT_TRUE(q->fe.send_value(kSetVringKick, std::uint64_t{0}, kick_fd));
  expect_refused(q->fe, "another open holds it");
  holder.reset();
  expect_still_serving();
}

// Live migration in QEMU's order: SET_LOG_BASE (answered), LOG_ALL acked and the used ring's
// logging asked for while the queue runs; every page the queue then writes is in the log, until
// logging is turned off again.
TEST_F(BlkServerTest, WhileLoggingEveryPageTheQueueWritesIsInTheFrontEndsLog) {
  FrontEndRam ram;
  FrontEnd fe = connect();
  std::uint64_t offered = 0, acked = 0;
  ASSERT_TRUE(fe.handshake(&offered, &acked));
  ASSERT_NE(offered & virtio::feature_bit(kFeatureLogAll), 0u);
  ASSERT_TRUE(fe.set_mem_table(ram));
  TestVirtqueue vq(ram.view(), kDesc, kAvail, kUsed, kSize);
  UniqueFd kick(::eventfd(0, EFD_CLOEXEC)), call(::eventfd(0, EFD_CLOEXEC));
  ASSERT_TRUE(fe.start_queue(0, vq, ram, kick.get(), call.get()));

  FrontEndLog log;
  const int fds[] = {log.fd()};
  ASSERT_TRUE(fe.send_value(kSetLogBase, LogBase{FrontEndLog::kBytes, 0}, fds));
  const auto answer = fe.receive_u64();
  ASSERT_TRUE(answer) << "SET_LOG_BASE is answered (QEMU waits for it)";
  EXPECT_EQ(*answer, 0u);
  // QEMU waits for these two to be done (REPLY_ACK) before it relies on the log.
  ASSERT_TRUE(fe.send_value(kSetFeatures, acked | virtio::feature_bit(kFeatureLogAll), {}, kVersion | kFlagNeedReply));
  ASSERT_EQ(fe.receive_u64(), std::optional<std::uint64_t>{0});
  const VringAddr logged{0, kVringFlagLog, ram.user_addr(kDesc), ram.user_addr(kUsed), ram.user_addr(kAvail), kUsed};
  ASSERT_TRUE(fe.send_value(kSetVringAddr, logged, {}, kVersion | kFlagNeedReply));
  ASSERT_EQ(fe.receive_u64(), std::optional<std::uint64_t>{0});

  post(vq, 0, virtio::kBlkIn, 8);
  ASSERT_EQ(::eventfd_write(kick.get(), 1), 0);
  ASSERT_TRUE(wait_used(vq));
  EXPECT_TRUE(log.dirty(kData)) << "the read's buffer";
  EXPECT_TRUE(log.dirty(kStatus)) << "the status byte";
  EXPECT_TRUE(log.dirty(kUsed)) << "the used ring";
  EXPECT_FALSE(log.dirty(kHeader)) << "the header is only read";

  // Logging off (migration over or cancelled): nothing more is marked.
  ASSERT_TRUE(fe.send_value(kSetFeatures, acked, {}, kVersion | kFlagNeedReply));
  ASSERT_EQ(fe.receive_u64(), std::optional<std::uint64_t>{0});
  const VringAddr unlogged{0, 0, ram.user_addr(kDesc), ram.user_addr(kUsed), ram.user_addr(kAvail), 0};
  ASSERT_TRUE(fe.send_value(kSetVringAddr, unlogged, {}, kVersion | kFlagNeedReply));
  ASSERT_EQ(fe.receive_u64(), std::optional<std::uint64_t>{0});
  log.clear();
  post(vq, 1, virtio::kBlkIn, 16);
  ASSERT_EQ(::eventfd_write(kick.get(), 1), 0);
  ASSERT_TRUE(wait_used(vq));
  EXPECT_FALSE(log.dirty(kData + 4096));
  EXPECT_FALSE(log.dirty(kUsed));

  // While the queue runs, nothing else may change.
  const VringAddr moved{0, 0, ram.user_addr(kDesc + 0x100), ram.user_addr(kUsed), ram.user_addr(kAvail), 0};
  ASSERT_TRUE(fe.send_value(kSetVringAddr, moved));
  expect_refused(fe, "moves queue 0 while it runs");
}

TEST_F(BlkServerTest, BadLogsAndFeatureChangesAreRefused) {
  const auto refused = [this](auto send, const std::string& reason) {
    auto q = start_queue_zero();
    ASSERT_TRUE(q);
    send(q->fe);
    expect_refused(q->fe, reason);
  };
  UniqueFd unsealed(::memfd_create("unsealed", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(unsealed.get(), 4096), 0);
  refused([&](FrontEnd& fe) {
    const int fds[] = {unsealed.get()};
    fe.send_value(kSetLogBase, LogBase{4096, 0}, fds);
  }, "not sealed against shrinking");
  refused([&](FrontEnd& fe) {
    const int fds[] = {unsealed.get()};
    fe.send_value(kSetLogBase, LogBase{4096, 100}, fds);
  }, "page-aligned");
  refused([&](FrontEnd& fe) { fe.send_value(kSetLogBase, LogBase{4096, 0}); }, "carries 0 fds");
  refused([&](FrontEnd& fe) {
    const int fds[] = {unsealed.get()};
    fe.send_value(kSetLogBase, LogBase{std::uint64_t{1} << 40, 0}, fds);
  }, "32 TiB of guest RAM");
  refused([&](FrontEnd& fe) { fe.send_value(kSetFeatures, virtio::feature_bit(virtio::kFeatureVersion1)); },
          "only LOG_ALL may change");
  expect_still_serving();
}

TEST_F(BlkServerTest, ASecondFrontEndIsTurnedAwayWhileOneIsServed) {
  FrontEnd first = connect();
  ASSERT_TRUE(first.handshake());
  FrontEnd second = connect();
  EXPECT_TRUE(second.closed_by_peer());
  EXPECT_FALSE(wait_log("turned away").empty());
  EXPECT_EQ(server_->stats().turned_away, 1u);
  ASSERT_TRUE(first.send_empty(kGetQueueNum));
  EXPECT_EQ(first.receive_u64(), 2u) << "the first front-end is still served";
}

TEST_F(BlkServerTest, ReplyAckAnswersWhatAsksForIt) {
  FrontEnd fe = connect();
  ASSERT_TRUE(fe.handshake());
  FrontEndRam ram;
  ASSERT_TRUE(fe.set_mem_table(ram, kVersion | kFlagNeedReply));
  EXPECT_EQ(fe.receive_u64(), 0u);
}

// Each bad message: what is sent, and the reason the log must give.
TEST_F(BlkServerTest, TruncatedMessagesAreRefused) {
  {
    FrontEnd fe = connect();
    const std::byte half[4] = {};
    ASSERT_TRUE(fe.send(kSetFeatures, half, {}, 8));  // says 8 bytes, sends 4
    expect_refused(fe, "sent 4 of the 8-byte payload of SET_FEATURES");
  }
  {
    FrontEnd fe = connect();
    const std::byte header_part[6] = {};
    ASSERT_EQ(::send(fe.fd(), header_part, sizeof header_part, MSG_NOSIGNAL), 6);
    expect_refused(fe, "only 6 bytes of a 12-byte message header arrived");
  }
  expect_still_serving();
}

TEST_F(BlkServerTest, OversizedAndMisflaggedMessagesAreRefused) {
  {
    FrontEnd fe = connect();
    ASSERT_TRUE(fe.send(kSetMemTable, {}, {}, 100000));
    expect_refused(fe, "declares a 100000-byte payload");
  }
  {
    FrontEnd fe = connect();
    ASSERT_TRUE(fe.send(kGetFeatures, {}, {}, std::nullopt, 2));
    expect_refused(fe, "version bits 2");
  }
  {
    FrontEnd fe = connect();
    ASSERT_TRUE(fe.send(kGetFeatures, {}, {}, std::nullopt, kVersion | kFlagReply));
    expect_refused(fe, "reply flag");
  }
  {
    FrontEnd fe = connect();
    ASSERT_TRUE(fe.send(99, {}));
    expect_refused(fe, "not supported");
  }
  {
    FrontEnd fe = connect();
    ASSERT_TRUE(fe.send_value(kGetFeatures, std::uint64_t{0}));  // GET_FEATURES takes no payload
    expect_refused(fe, "it takes none");
  }
  expect_still_serving();
}

TEST_F(BlkServerTest, WrongFdCountsAreRefusedAndTheirFdsClosed) {
  FrontEndRam ram;
  {
    FrontEnd fe = connect();
    ASSERT_TRUE(fe.handshake());
    const auto regions = ram.regions();
    std::vector<std::byte> payload(8 + 64);
    const std::uint32_t count = 2;
    std::memcpy(payload.data(), &count, 4);
    std::memcpy(payload.data() + 8, regions.data(), 64);
    const int one[] = {ram.fd()};
    ASSERT_TRUE(fe.send(kSetMemTable, payload, one));
    expect_refused(fe, "lists 2 regions but carries 1 fds");
  }
  {
    FrontEnd fe = connect();
    const int nine[] = {ram.fd(), ram.fd(), ram.fd(), ram.fd(), ram.fd(), ram.fd(), ram.fd(), ram.fd(), ram.fd()};
    ASSERT_TRUE(fe.send(kGetFeatures, {}, nine));
    expect_refused(fe, "more than 8 fds");
  }
  {
    FrontEnd fe = connect();
    const int one[] = {ram.fd()};
    ASSERT_TRUE(fe.send_value(kSetVringCall, std::uint64_t{0} | kVringNoFd, one));
    expect_refused(fe, "carries 1 fds; it takes 0");
  }
  expect_still_serving();
}

TEST_F(BlkServerTest, BadMemoryTablesAreRefused) {
  const auto refuse_table = [&](std::vector<MemoryRegion> regions, int fd, const std::string& reason) {
    FrontEnd fe = connect();
    ASSERT_TRUE(fe.handshake());
    std::vector<std::byte> payload(8 + 32 * regions.size());
    const auto count = static_cast<std::uint32_t>(regions.size());
    std::memcpy(payload.data(), &count, 4);
    if (!regions.empty()) std::memcpy(payload.data() + 8, regions.data(), 32 * regions.size());
    std::vector<int> fds(regions.size(), fd);
    ASSERT_TRUE(fe.send(kSetMemTable, payload, fds));
    expect_refused(fe, reason);
  };
  FrontEndRam ram;
  const auto ok = ram.regions();
  refuse_table({}, ram.fd(), "lists 0 regions");
  refuse_table({ok[0], {0x80000, 1 << 20, ram.user_addr(0x80000) + (8 << 20), 0}}, ram.fd(), "overlap in guest-physical");
  refuse_table({ok[0], {8 << 20, 4096, ok[0].userspace_addr + 4096, 0}}, ram.fd(), "overlap in the front-end's address space");
  refuse_table({{0, 1 << 20, ok[0].userspace_addr, 16 << 20}}, ram.fd(), "the file has");
  refuse_table({{0, 1000, ok[0].userspace_addr, 0}}, ram.fd(), "not page-aligned");
  refuse_table({{~std::uint64_t{0} - 4095, 8192, ok[0].userspace_addr, 0}}, ram.fd(), "passes 2^64");
  FrontEndRam unsealed(false);
  refuse_table({unsealed.regions()[0]}, unsealed.fd(), "not sealed against shrinking");
  UniqueFd not_memory(::eventfd(0, EFD_CLOEXEC));
  refuse_table({ok[0]}, not_memory.get(), "not a memory file");
  expect_still_serving();
}

TEST_F(BlkServerTest, BadVringMessagesAreRefused) {
  FrontEndRam ram;
  const auto session = [&](auto&& body, const std::string& reason) {
    FrontEnd fe = connect();
    ASSERT_TRUE(fe.handshake());
    ASSERT_TRUE(fe.set_mem_table(ram));
    body(fe);
    expect_refused(fe, reason);
  };
  session([](FrontEnd& fe) { fe.send_value(kSetVringNum, VringState{0, 3}); }, "power of two");
  session([](FrontEnd& fe) { fe.send_value(kSetVringNum, VringState{0, 65536}); }, "power of two");
  session([](FrontEnd& fe) { fe.send_value(kSetVringNum, VringState{5, 16}); }, "names queue 5");
  session([](FrontEnd& fe) { fe.send_value(kSetVringBase, VringState{0, 70000}); }, "past 16 bits");
  session([](FrontEnd& fe) { fe.send_value(kSetVringEnable, VringState{0, 2}); }, "(0 or 1)");
  session([](FrontEnd& fe) { fe.send_value(kSetVringKick, std::uint64_t{0} | kVringNoFd); }, "poll its ring");
  session([](FrontEnd& fe) { fe.send_value(kSetVringKick, std::uint64_t{0x1200}); }, "unknown bits");
  session([](FrontEnd& fe) { fe.send_value(kSetFeatures, std::uint64_t{1} << 33); }, "never offered");
  session([](FrontEnd& fe) { fe.send_value(kSetProtocolFeatures, std::uint64_t{1} << 40); }, "never offered");
  session([](FrontEnd& fe) { fe.send_value(kSetVringAddr, VringAddr{0, 2, 0, 0, 0, 0}); }, "unknown flags");
  // SET_VRING_KICK with a fresh eventfd (the back-end keeps its own copy).
  const auto send_kick = [](FrontEnd& fe, std::uint64_t index) {
    UniqueFd kick(::eventfd(0, EFD_CLOEXEC));
    const int fd[] = {kick.get()};
    fe.send_value(kSetVringKick, index, fd);
  };
  // Queue 0's size and ring parts (front-end addresses), then its kick, which starts it.
  const auto place_queue = [&](FrontEnd& fe, std::uint64_t desc, std::uint64_t used, std::uint64_t avail) {
    fe.send_value(kSetVringNum, VringState{0, kSize});
    fe.send_value(kSetVringAddr, VringAddr{0, 0, desc, used, avail, 0});
    send_kick(fe, 0);
  };
  // A kick before the queue's size and addresses.
  session([&](FrontEnd& fe) { send_kick(fe, 1); }, "got its kick fd before its size");
  // A descriptor table across two regions (adjacent in the front-end's address space, not in
  // guest-physical memory).
  session([&](FrontEnd& fe) { place_queue(fe, ram.user_addr(FrontEndRam::kLow - 64), ram.user_addr(kUsed), ram.user_addr(kAvail)); },
          "descriptor table");
  // A used ring that runs off the end of RAM.
  session(
      [&](FrontEnd& fe) {
        place_queue(fe, ram.user_addr(kDesc), ram.user_addr(FrontEndRam::kHighBase + FrontEndRam::kHigh - 8), ram.user_addr(kAvail));
      },
      "used ring");
  session(
      [](FrontEnd& fe) {
        std::vector<std::byte> ask(12 + 8);
        const ConfigHeader h{250, 8, 0};
        std::memcpy(ask.data(), &h, sizeof h);
        fe.send(kGetConfig, ask);
      },
      "GET_CONFIG asks for 8 bytes at offset 250");
  expect_still_serving();
}

TEST_F(BlkServerTest, ASecondListenerOnTheSameSocketIsRefused) {
  BlkServerOptions options;
  options.socket_path = socket_;
  options.backend.queues = 1;
  DiskOptions unlocked;
  unlocked.lock = false;
  auto disk = Disk::open(image_, unlocked);
  ASSERT_TRUE(disk) << disk.error().message;
  auto second = BlkServer::listen(std::move(*disk), std::move(options));
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().find("another back-end is listening"), std::string::npos) << second.error();
  expect_still_serving();
}

// The shared-ring attach, played from the guest side: the ATTACH request on a virtqueue, the
// ring descriptor in the window the guest chose, the reference driver doing verified I/O on the
// ring with the virtqueue's kick as its doorbell and NOTIFY requests as its interrupts, then
// DETACH. Both modes.
class AttachTest : public BlkServerTest, public ::testing::WithParamInterface<virtio::AttachMode> {
 protected:
  static constexpr std::uint64_t kRequest = 0x12000, kReply = 0x13000, kNotifyHeader = 0x14000, kNotifyStatus = 0x15000;
  static constexpr std::uint64_t kWindow = 0x40000, kWindowBytes = 0x40000, kBuffers = 0x80000;
  static constexpr std::uint16_t kAttachHead = 0, kNotifyHead = 8, kDetachHead = 10;

  void SetUp() override {
    if (GetParam() == virtio::AttachMode::Passthrough) {
      RF_REQUIRE(test::no_mmap_feature());
      RF_REQUIRE(test::no_sqarray_feature());
    }
    BlkServerTest::SetUp();
  }
  void configure(BlkServerOptions& options) override { options.backend.attach_mode = GetParam(); }

  // ATTACH with `request`; returns the status byte and fills `reply`.
  std::uint8_t attach(TestVirtqueue& vq, int kick, const virtio::AttachRequest& request, virtio::AttachReply& reply) {
    virtio::BlkRequestHeader h{virtio::kBlkRingfenceAttach, 0, 0};
    std::memcpy(vq.view().at(kHeader, 16), &h, 16);
    std::memcpy(vq.view().at(kRequest, sizeof request), &request, sizeof request);
    *vq.view().at(kStatus) = std::byte{0xff};
    const TestVirtqueue::Part parts[] = {
        {kHeader, 16, false}, {kRequest, 32, false}, {kReply, 32, true}, {kStatus, 1, true}};
    vq.publish(vq.chain(kAttachHead, parts));
    EXPECT_EQ(::eventfd_write(kick, 1), 0);
    auto used = wait_used(vq);
    EXPECT_TRUE(used);
    if (used) {
      EXPECT_EQ(used->id, kAttachHead);
    }
    std::memcpy(&reply, vq.view().at(kReply, sizeof reply), sizeof reply);
    return static_cast<std::uint8_t>(*vq.view().at(kStatus));
  }
  static virtio::AttachRequest request(std::uint64_t window = kWindow, std::uint64_t bytes = kWindowBytes) {
    return virtio::AttachRequest{virtio::kAttachMagic, virtio::kAttachMajor, virtio::kAttachMinor, window, bytes, 16, 0};
  }
};

// What the reference driver needs from its platform: the doorbell is a kick of the virtqueue;
// waiting is waiting for the used entry of the NOTIFY request the test keeps posted.
struct AttachedPlatform {
  TestVirtqueue* vq;
  int kick;
  std::uint16_t notify_head;
  std::uint64_t notifications = 0;
  static void kick_fn(void* self) { ::eventfd_write(static_cast<AttachedPlatform*>(self)->kick, 1); }
  static void wait_fn(void* self) {
    auto* p = static_cast<AttachedPlatform*>(self);
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < end) {
      if (auto used = p->vq->pop_used()) {
        if (used->id == p->notify_head) {
          ++p->notifications;
          p->vq->publish(p->notify_head);  // post it again for the next interrupt
          ::eventfd_write(p->kick, 1);
        }
        return;
      }
      std::this_thread::sleep_for(50us);
    }
  }
};

TEST_P(AttachTest, AGuestAttachesARingOnItsVirtqueueAndDoesVerifiedIoOnIt) {
  auto q = start_queue_zero();
  ASSERT_TRUE(q);
  TestVirtqueue& vq = q->vq;
  const int kick = q->kick.get();

  virtio::AttachReply reply{};
  ASSERT_EQ(attach(vq, kick, request(), reply), virtio::kBlkStatusOk) << "result " << reply.result;
  EXPECT_EQ(reply.result, 0u);
  EXPECT_EQ(reply.mode, static_cast<std::uint32_t>(GetParam()));
  EXPECT_EQ(reply.descriptor_gpa, kWindow);
  EXPECT_GT(reply.needed_bytes, 0u);
  EXPECT_LE(reply.needed_bytes, kWindowBytes);

  // The NOTIFY request the device completes when it has completions to signal.
  virtio::BlkRequestHeader nh{virtio::kBlkRingfenceNotify, 0, 0};
  std::memcpy(vq.view().at(kNotifyHeader, 16), &nh, 16);
  const TestVirtqueue::Part notify_parts[] = {{kNotifyHeader, 16, false}, {kNotifyStatus, 1, true}};
  vq.publish(vq.chain(kNotifyHead, notify_parts));
  ASSERT_EQ(::eventfd_write(kick, 1), 0);

  // The reference driver on the ring in the window: guest RAM's first region as its memory.
  AttachedPlatform platform{&vq, kick, kNotifyHead};
  guest::Platform p{&platform, &AttachedPlatform::kick_fn, &AttachedPlatform::wait_fn,
                    reinterpret_cast<std::uintptr_t>(vq.view().at(0)),  // SAFETY: an address for the driver's arithmetic
                    FrontEndRam::kLow};
  guest::Driver driver;
  ASSERT_EQ(driver.attach(p, reply.descriptor_gpa), guest::AttachStatus::Ok);
  EXPECT_EQ(driver.header().mode, GetParam() == virtio::AttachMode::Passthrough ? abi::Mode::Passthrough : abi::Mode::Mediated);
  constexpr unsigned kBlocks = 32;
  for (unsigned i = 0; i < kBlocks; ++i) std::memset(vq.view().at(kBuffers + 4096 * i, 4096), 0x40 + i, 4096);
  guest::Completion done[kBlocks];
  for (unsigned i = 0; i < kBlocks; ++i) {
    ASSERT_EQ(driver.queue({guest::Op::Write, 0, 4096ull * i, kBuffers + 4096 * i, 4096, i}), guest::RequestStatus::Ok);
    if (driver.in_flight() == driver.depth() || i + 1 == kBlocks) {
      driver.submit();
      while (driver.in_flight() != 0) {
        const std::uint32_t n = driver.reap_wait(done, kBlocks);
        for (std::uint32_t k = 0; k < n; ++k) ASSERT_EQ(done[k].result, 4096) << "write " << done[k].tag;
      }
    }
  }
  std::memset(vq.view().at(kBuffers, 4096), 0, 4096);
  ASSERT_EQ(driver.queue({guest::Op::Read, 0, 4096ull * 7, kBuffers, 4096, 99}), guest::RequestStatus::Ok);
  driver.submit();
  ASSERT_EQ(driver.reap_wait(done, 1), 1u);
  EXPECT_EQ(done[0].result, 4096);
  EXPECT_EQ(*vq.view().at(kBuffers + 100), std::byte{0x47}) << "block 7 came back through the ring";
  EXPECT_GT(platform.notifications, 0u) << "the driver waited, so completions came as NOTIFY used entries";
  // The image itself has the data the ring wrote.
  {
    const int fd = ::open(image_.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    unsigned char byte = 0;
    EXPECT_EQ(::pread(fd, &byte, 1, 4096 * 31 + 5), 1);
    ::close(fd);
    EXPECT_EQ(byte, 0x40 + 31);
  }

  // DETACH: the device stops; the held NOTIFY request ends.
  virtio::BlkRequestHeader dh{virtio::kBlkRingfenceDetach, 0, 0};
  std::memcpy(vq.view().at(kHeader, 16), &dh, 16);
  *vq.view().at(kStatus) = std::byte{0xff};
  const TestVirtqueue::Part detach_parts[] = {{kHeader, 16, false}, {kStatus, 1, true}};
  vq.publish(vq.chain(kDetachHead, detach_parts));
  ASSERT_EQ(::eventfd_write(kick, 1), 0);
  bool detached = false;
  for (int i = 0; i < 3 && !detached; ++i) {
    auto used = wait_used(vq);
    ASSERT_TRUE(used);
    detached = used->id == kDetachHead;
  }
  EXPECT_TRUE(detached);
  EXPECT_EQ(*vq.view().at(kStatus), std::byte{0});
  // Attached again after a detach: the window is free again.
  ASSERT_EQ(attach(vq, kick, request(), reply), virtio::kBlkStatusOk) << "result " << reply.result;
  // A NOTIFY held when the connection ends is answered IOERR (the ring is gone), which is no
  // I/O error of the disk's.
  *vq.view().at(kNotifyStatus) = std::byte{0xff};
  vq.publish(vq.chain(kNotifyHead, notify_parts));
  ASSERT_EQ(::eventfd_write(kick, 1), 0);
  std::this_thread::sleep_for(50ms);
  q.reset();
  const std::string closed = wait_log("connection 1 closed");
  EXPECT_NE(closed.find(" 0 I/O errors"), std::string::npos) << closed;
}

// Live migration with a ring attached: a mediated ring's mediator marks what it writes; a
// passthrough ring (whose kernel writes guest RAM with nothing to mark it) is let go of, its
// NOTIFY ends, and the guest's attach again gets a mediated ring while the log is kept.
TEST_P(AttachTest, WhileLoggingTheRingIsMediatedAndWhatItWritesIsLogged) {
  FrontEndRam ram;
  FrontEnd fe = connect();
  std::uint64_t acked = 0;
  ASSERT_TRUE(fe.handshake(nullptr, &acked));
  ASSERT_TRUE(fe.set_mem_table(ram));
  TestVirtqueue vq(ram.view(), kDesc, kAvail, kUsed, kSize);
  UniqueFd kick(::eventfd(0, EFD_CLOEXEC)), call(::eventfd(0, EFD_CLOEXEC));
  ASSERT_TRUE(fe.start_queue(0, vq, ram, kick.get(), call.get()));
  virtio::AttachReply reply{};
  ASSERT_EQ(attach(vq, kick.get(), request(), reply), virtio::kBlkStatusOk) << "result " << reply.result;
  EXPECT_EQ(reply.mode, static_cast<std::uint32_t>(GetParam()));
  virtio::BlkRequestHeader nh{virtio::kBlkRingfenceNotify, 0, 0};
  std::memcpy(vq.view().at(kNotifyHeader, 16), &nh, 16);
  *vq.view().at(kNotifyStatus) = std::byte{0xff};
  const TestVirtqueue::Part notify_parts[] = {{kNotifyHeader, 16, false}, {kNotifyStatus, 1, true}};
  vq.publish(vq.chain(kNotifyHead, notify_parts));
  ASSERT_EQ(::eventfd_write(kick.get(), 1), 0);

  FrontEndLog log;
  const int fds[] = {log.fd()};
  ASSERT_TRUE(fe.send_value(kSetLogBase, LogBase{FrontEndLog::kBytes, 0}, fds));
  ASSERT_TRUE(fe.receive_u64());
  ASSERT_TRUE(fe.send_value(kSetFeatures, acked | virtio::feature_bit(kFeatureLogAll), {}, kVersion | kFlagNeedReply));
  ASSERT_EQ(fe.receive_u64(), std::optional<std::uint64_t>{0}) << "LOG_ALL is acknowledged once it is in effect";

  if (GetParam() == virtio::AttachMode::Passthrough) {
    auto used = wait_used(vq);
    ASSERT_TRUE(used) << "the passthrough ring was not let go of";
    EXPECT_EQ(used->id, kNotifyHead);
    EXPECT_EQ(*vq.view().at(kNotifyStatus), std::byte{virtio::kBlkStatusIoErr});
    ASSERT_EQ(attach(vq, kick.get(), request(), reply), virtio::kBlkStatusOk) << "result " << reply.result;
    EXPECT_EQ(reply.mode, static_cast<std::uint32_t>(virtio::AttachMode::Mediated)) << "attached again while logging";
    *vq.view().at(kNotifyStatus) = std::byte{0xff};
    vq.publish(vq.chain(kNotifyHead, notify_parts));
    ASSERT_EQ(::eventfd_write(kick.get(), 1), 0);
  }
  log.clear();
  AttachedPlatform platform{&vq, kick.get(), kNotifyHead};
  guest::Platform p{&platform, &AttachedPlatform::kick_fn, &AttachedPlatform::wait_fn,
                    reinterpret_cast<std::uintptr_t>(vq.view().at(0)),  // SAFETY: an address for the driver's arithmetic
                    FrontEndRam::kLow};
  guest::Driver driver;
  ASSERT_EQ(driver.attach(p, reply.descriptor_gpa), guest::AttachStatus::Ok);
  EXPECT_EQ(driver.header().mode, abi::Mode::Mediated);
  ASSERT_EQ(driver.queue({guest::Op::Read, 0, 0, kBuffers + 4096 * 3, 4096, 1}), guest::RequestStatus::Ok);
  driver.submit();
  guest::Completion done[1];
  ASSERT_EQ(driver.reap_wait(done, 1), 1u);
  EXPECT_EQ(done[0].result, 4096);
  EXPECT_TRUE(log.dirty(kBuffers + 4096 * 3)) << "the read's buffer";
  EXPECT_FALSE(log.dirty(kBuffers + 4096 * 4));
  EXPECT_TRUE(log.dirty(kWindow)) << "the rings in the device window";
}

TEST_P(AttachTest, AttachRefusesWhatItCannotPlace) {
  auto q = start_queue_zero();
  ASSERT_TRUE(q);
  TestVirtqueue& vq = q->vq;
  const int kick = q->kick.get();
  virtio::AttachReply reply{};
  // Too small a window: ENOSPC, and how much it needs.
  EXPECT_EQ(attach(vq, kick, request(kWindow, 4096), reply), virtio::kBlkStatusIoErr);
  EXPECT_EQ(reply.result, static_cast<std::uint32_t>(ENOSPC));
  EXPECT_GT(reply.needed_bytes, 4096u);
  // In the hole between the regions, and not page-aligned.
  EXPECT_EQ(attach(vq, kick, request(FrontEndRam::kLow + 0x1000), reply), virtio::kBlkStatusIoErr);
  EXPECT_EQ(reply.result, static_cast<std::uint32_t>(EINVAL));
  EXPECT_EQ(attach(vq, kick, request(kWindow + 8), reply), virtio::kBlkStatusIoErr);
  EXPECT_EQ(reply.result, static_cast<std::uint32_t>(EINVAL));
  // A newer major version of the handshake.
  virtio::AttachRequest future = request();
  future.major = 2;
  EXPECT_EQ(attach(vq, kick, future, reply), virtio::kBlkStatusIoErr);
  EXPECT_EQ(reply.result, static_cast<std::uint32_t>(EPROTONOSUPPORT));
  // Over the virtqueue's own rings: the window would hold them... it is the guest's memory, but
  // a second attach over a live window is refused (EBUSY while one is attached).
  ASSERT_EQ(attach(vq, kick, request(), reply), virtio::kBlkStatusOk);
  EXPECT_EQ(attach(vq, kick, request(kWindow + kWindowBytes), reply), virtio::kBlkStatusIoErr);
  EXPECT_EQ(reply.result, static_cast<std::uint32_t>(EBUSY));
  // The plain virtio path still works beside the attached ring.
  post(vq, 2, virtio::kBlkIn, 0);
  ASSERT_EQ(::eventfd_write(kick, 1), 0);
  auto used = wait_used(vq);
  ASSERT_TRUE(used);
  EXPECT_EQ(*vq.view().at(kStatus + 2), std::byte{0});
}

// --sqpoll-cpu: passthrough rings attached on two queues are served by one kernel SQPOLL thread.
class SqpollAttachTest : public AttachTest {
 protected:
  void configure(BlkServerOptions& options) override {
    options.backend.attach_mode = virtio::AttachMode::Passthrough;
    options.backend.sqpoll_cpu = 0;
  }
  static unsigned sqpoll_threads() { return test::io_uring_threads("iou-sqp-"); }
};

TEST_P(SqpollAttachTest, RingsAttachedOnTwoQueuesShareOneSqpollThread) {
  RF_REQUIRE(test::sqpoll_feature());
  // The feature probe's own SQPOLL ring is closed, but its kernel thread ends a moment later:
  // wait for that before counting.
  for (int i = 0; i < 500 && sqpoll_threads() != 0; ++i) std::this_thread::sleep_for(10ms);
  const unsigned before = sqpoll_threads();
  FrontEndRam ram;
  FrontEnd fe = connect();
  ASSERT_TRUE(fe.handshake());
  ASSERT_TRUE(fe.set_mem_table(ram));
  // Two virtqueues, each with its own rings and its own window.
  TestVirtqueue vq0(ram.view(), kDesc, kAvail, kUsed, kSize);
  TestVirtqueue vq1(ram.view(), kDesc + 0x4000, kAvail + 0x4000, kUsed + 0x4000, kSize);
  UniqueFd kick0(::eventfd(0, EFD_CLOEXEC)), call0(::eventfd(0, EFD_CLOEXEC));
  UniqueFd kick1(::eventfd(0, EFD_CLOEXEC)), call1(::eventfd(0, EFD_CLOEXEC));
  ASSERT_TRUE(fe.start_queue(0, vq0, ram, kick0.get(), call0.get()));
  ASSERT_TRUE(fe.start_queue(1, vq1, ram, kick1.get(), call1.get()));
  virtio::AttachReply reply{};
  ASSERT_EQ(attach(vq0, kick0.get(), request(kWindow), reply), virtio::kBlkStatusOk) << reply.result;
  ASSERT_EQ(attach(vq1, kick1.get(), request(kWindow + kWindowBytes), reply), virtio::kBlkStatusOk) << reply.result;
  // Setting a ring up creates and closes a throwaway probe ring of the same shape, whose SQPOLL
  // thread ends a moment later; a second, unshared thread would stay.
  for (int i = 0; i < 200 && sqpoll_threads() != before + 1; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(sqpoll_threads(), before + 1) << "both rings are served by one SQPOLL thread";
}

INSTANTIATE_TEST_SUITE_P(Passthrough, SqpollAttachTest, ::testing::Values(virtio::AttachMode::Passthrough));

INSTANTIATE_TEST_SUITE_P(Modes, AttachTest, ::testing::Values(virtio::AttachMode::Mediated, virtio::AttachMode::Passthrough),
                         [](const ::testing::TestParamInfo<virtio::AttachMode>& param) {
                           return std::string(param.param == virtio::AttachMode::Mediated ? "Mediated" : "Passthrough");
                         });

}  // namespace
}  // namespace rf::vhost_user
