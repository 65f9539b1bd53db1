// The C API (include/ringfence.h) through libringfence.so: status codes and the per-thread last
// error, memory, disks, policies, the struct_size rule, and a device's lifecycle in both modes.
// The C example (examples/c-vmm, run by CTest) moves data through a device; this file checks the
// contract around it.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <random>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "ringfence.h"
#include "support/kernel_caps.h"
#include "util/temp_dir.h"

namespace {

constexpr std::uint64_t kRam = 16ull << 20;
constexpr std::uint64_t kWindow = 0x10000;

std::string last_error() { return rf_last_error(); }

// A zero-filled image of `bytes` in `dir`.
std::string make_image(const rf::TempDir& dir, std::uint64_t bytes) {
  const std::string path = dir.path() + "/disk.img";
  const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return "";
  const bool ok = ::ftruncate(fd, static_cast<off_t>(bytes)) == 0;
  ::close(fd);
  return ok ? path : "";
}

rf_device_config config_for(rf_mode mode) {
  rf_device_config c{};
  c.struct_size = sizeof c;
  c.mode = mode;
  c.device_window_gpa = kWindow;
  c.queue_depth = 8;
  return c;
}

TEST(CApiTest, TheLibraryIsTheVersionOfItsHeader) {
  EXPECT_EQ(rf_abi_version(), static_cast<std::uint32_t>(RINGFENCE_ABI_VERSION));
  EXPECT_EQ(std::string(rf_version_string()), std::to_string(RINGFENCE_VERSION_MAJOR) + "." +
                                                  std::to_string(RINGFENCE_VERSION_MINOR) + "." +
                                                  std::to_string(RINGFENCE_VERSION_PATCH));
}

TEST(CApiTest, EveryStatusHasAName) {
  EXPECT_STREQ(rf_status_name(RF_OK), "RF_OK");
  EXPECT_STREQ(rf_status_name(RF_E_BUSY), "RF_E_BUSY");
  EXPECT_STREQ(rf_status_name(RF_E_INTERNAL), "RF_E_INTERNAL");
  for (int s = RF_OK; s <= RF_E_INTERNAL; ++s) {
    EXPECT_STRNE(rf_status_name(static_cast<rf_status>(s)), "RF_E_UNKNOWN") << s;
  }
  EXPECT_STREQ(rf_status_name(static_cast<rf_status>(15)), "RF_E_UNKNOWN");
}

TEST(CApiTest, TheLastErrorBelongsToTheThreadThatFailed) {
  rf_memory* memory = nullptr;
  ASSERT_EQ(rf_memory_create(nullptr, 0, RF_MEMORY_ANONYMOUS, &memory), RF_E_INVALID_ARGUMENT);
  EXPECT_EQ(memory, nullptr) << "nothing is handed out on failure";
  const std::string mine = last_error();
  EXPECT_NE(mine.find("rf_memory_create"), std::string::npos) << mine;
  EXPECT_NE(mine.find("no regions"), std::string::npos) << mine;

  std::string theirs = "unset";
  int their_errno = -1;
  std::thread([&] {
    theirs = rf_last_error();
    their_errno = rf_last_errno();
  }).join();
  EXPECT_EQ(theirs, "");
  EXPECT_EQ(their_errno, 0);

  // A successful call leaves the message of the last failure alone.
  EXPECT_EQ(rf_abi_version(), static_cast<std::uint32_t>(RINGFENCE_ABI_VERSION));
  EXPECT_EQ(last_error(), mine);
}

TEST(CApiTest, MemoryRefusesBadArgumentsBeforeAllocatingAnything) {
  rf_memory* memory = nullptr;
  rf_region region{0, kRam, 0, 0, nullptr, 0};
  EXPECT_EQ(rf_memory_create(&region, 1, RF_MEMORY_ANONYMOUS, nullptr), RF_E_INVALID_ARGUMENT);
  EXPECT_EQ(rf_memory_create(&region, 1, RF_MEMORY_ADOPTED, &memory), RF_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("rf_memory_adopt"), std::string::npos) << "names the call to use instead";
  EXPECT_EQ(rf_memory_create(&region, 1, static_cast<rf_memory_backing>(0), &memory), RF_E_INVALID_ARGUMENT);

  rf_region flagged = region;
  flagged.flags = 0x80;
  EXPECT_EQ(rf_memory_create(&flagged, 1, RF_MEMORY_ANONYMOUS, &memory), RF_E_INVALID_ARGUMENT);
  rf_region reserved = region;
  reserved.reserved = 1;
  EXPECT_EQ(rf_memory_create(&reserved, 1, RF_MEMORY_ANONYMOUS, &memory), RF_E_INVALID_ARGUMENT);
  int stack_byte = 0;
  rf_region with_host = region;
  with_host.host = &stack_byte;
  EXPECT_EQ(rf_memory_create(&with_host, 1, RF_MEMORY_ANONYMOUS, &memory), RF_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("host must be NULL"), std::string::npos) << last_error();

  // The layout itself is the library's to judge: an unaligned size is a configuration error.
  rf_region unaligned = region;
  unaligned.size = 4097;
  EXPECT_EQ(rf_memory_create(&unaligned, 1, RF_MEMORY_ANONYMOUS, &memory), RF_E_INVALID_CONFIG);
  EXPECT_NE(last_error().find("guest memory"), std::string::npos) << last_error();
  EXPECT_EQ(memory, nullptr);
}

TEST(CApiTest, MemoryCreateDescribesItsRegionsAndMemfd) {
  const rf_region layout[] = {{0, 8ull << 20, 0, 0, nullptr, 0}, {16ull << 20, 1ull << 20, RF_REGION_READ_ONLY, 0, nullptr, 0}};
  rf_memory* memory = nullptr;
  ASSERT_EQ(rf_memory_create(layout, 2, RF_MEMORY_MEMFD, &memory), RF_OK) << last_error();
  EXPECT_EQ(rf_memory_backing_of(memory), RF_MEMORY_MEMFD);
  EXPECT_GE(rf_memory_memfd(memory), 0);
  ASSERT_EQ(rf_memory_region_count(memory), 2u);
  rf_region r{};
  ASSERT_EQ(rf_memory_region(memory, 1, &r), RF_OK);
  EXPECT_EQ(r.gpa, 16ull << 20);
  EXPECT_EQ(r.size, 1ull << 20);
  EXPECT_EQ(r.flags, RF_REGION_READ_ONLY);
  EXPECT_NE(r.host, nullptr);
  EXPECT_EQ(r.memfd_offset, 8ull << 20) << "regions follow one another in the memfd";
  static_cast<unsigned char*>(r.host)[0] = 0x5a;  // the VMM's own view is writable
  EXPECT_EQ(rf_memory_region(memory, 2, &r), RF_E_INVALID_ARGUMENT);
  EXPECT_EQ(rf_memory_destroy(memory), RF_OK);
  EXPECT_EQ(rf_memory_destroy(nullptr), RF_OK);
}

TEST(CApiTest, MemoryAdoptKeepsTheVmmsMappingAndRefusesAliases) {
  void* ram = ::mmap(nullptr, kRam, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(ram, MAP_FAILED);
  const rf_region one{0x100000, kRam, 0, 0, ram, 0};
  rf_memory* memory = nullptr;
  ASSERT_EQ(rf_memory_adopt(&one, 1, &memory), RF_OK) << last_error();
  EXPECT_EQ(rf_memory_backing_of(memory), RF_MEMORY_ADOPTED);
  EXPECT_EQ(rf_memory_memfd(memory), -1);
  rf_region r{};
  ASSERT_EQ(rf_memory_region(memory, 0, &r), RF_OK);
  EXPECT_EQ(r.host, ram);
  EXPECT_EQ(r.gpa, 0x100000u);
  EXPECT_EQ(rf_memory_destroy(memory), RF_OK);

  // Two guest regions backed by the same host pages.
  const rf_region aliased[] = {{0, 1ull << 20, 0, 0, ram, 0}, {2ull << 20, 1ull << 20, RF_REGION_READ_ONLY, 0, ram, 0}};
  memory = nullptr;
  EXPECT_EQ(rf_memory_adopt(aliased, 2, &memory), RF_E_INVALID_CONFIG);
  EXPECT_EQ(memory, nullptr);
  const rf_region no_host{0, kRam, 0, 0, nullptr, 0};
  EXPECT_EQ(rf_memory_adopt(&no_host, 1, &memory), RF_E_INVALID_ARGUMENT);
  ::munmap(ram, kRam);
}

TEST(CApiTest, AMissingDiskIsASystemErrorThatNamesThePath) {
  rf_disk* disk = nullptr;
  EXPECT_EQ(rf_disk_open("/nonexistent/ringfence.img", 0, &disk), RF_E_SYSTEM);
  EXPECT_EQ(rf_last_errno(), ENOENT);
  EXPECT_NE(last_error().find("/nonexistent/ringfence.img"), std::string::npos) << last_error();
  EXPECT_EQ(disk, nullptr);
  EXPECT_EQ(rf_disk_open("/dev/null", 0x100, &disk), RF_E_INVALID_ARGUMENT);
  EXPECT_EQ(rf_disk_open(nullptr, 0, &disk), RF_E_INVALID_ARGUMENT);
}

// Like QEMU's image locking: one writer, or any number of readers, per image.
TEST(CApiTest, AnImageOpenForWritingCannotBeOpenedAgain) {
  RF_REQUIRE(rf::test::loop_device_feature());
  rf::TempDir dir("rf-capi");
  const std::string image = make_image(dir, 1ull << 20);
  ASSERT_FALSE(image.empty());
  rf_disk* writer = nullptr;
  ASSERT_EQ(rf_disk_open(image.c_str(), 0, &writer), RF_OK) << last_error();
  for (std::uint32_t flags : {0u, RF_DISK_READ_ONLY, RF_DISK_UNBOUNDED_FILE}) {
    rf_disk* second = nullptr;
    EXPECT_EQ(rf_disk_open(image.c_str(), flags, &second), RF_E_BUSY) << flags;
    EXPECT_EQ(rf_last_errno(), EAGAIN);
    EXPECT_NE(last_error().find(image), std::string::npos) << last_error();
    EXPECT_EQ(second, nullptr);
  }
  rf_disk_close(writer);
  rf_disk* readers[2] = {nullptr, nullptr};
  ASSERT_EQ(rf_disk_open(image.c_str(), RF_DISK_READ_ONLY, &readers[0]), RF_OK) << "the writer's lock went with it: " << last_error();
  ASSERT_EQ(rf_disk_open(image.c_str(), RF_DISK_READ_ONLY, &readers[1]), RF_OK) << "readers share: " << last_error();
  rf_disk* refused = nullptr;
  EXPECT_EQ(rf_disk_open(image.c_str(), 0, &refused), RF_E_BUSY) << "no writer while readers hold it";
  rf_disk_close(readers[0]);
  rf_disk_close(readers[1]);
}

TEST(CApiTest, ADirectoryIsNotAPolicy) {
  rf_policy* policy = nullptr;
  EXPECT_EQ(rf_policy_load("/tmp", &policy), RF_E_POLICY);
  EXPECT_NE(last_error().find("is a directory"), std::string::npos) << last_error();
  EXPECT_EQ(last_error().find("[policy] table is missing"), std::string::npos) << last_error();
  EXPECT_EQ(policy, nullptr);
}

static_assert(RF_COUNT_UNKNOWN == UINT64_MAX);

TEST(CApiTest, ADiskTellsItsSizeAndHowItIsBounded) {
  RF_REQUIRE(rf::test::loop_device_feature());
  rf::TempDir dir("rf-capi");
  const std::string image = make_image(dir, 4ull << 20);
  ASSERT_FALSE(image.empty());
  rf_disk* disk = nullptr;
  ASSERT_EQ(rf_disk_open(image.c_str(), RF_DISK_READ_ONLY, &disk), RF_OK) << last_error();
  EXPECT_EQ(rf_disk_size(disk), 4ull << 20);
  EXPECT_EQ(rf_disk_block_size(disk), 512u);
  const std::string description = rf_disk_describe(disk);
  EXPECT_NE(description.find(image), std::string::npos) << description;
  EXPECT_NE(description.find("/dev/loop"), std::string::npos) << description;
  rf_disk_close(disk);
  rf_disk_close(nullptr);
}

TEST(CApiTest, PoliciesLoadByNameOrFromTextAndBadOnesSayWhy) {
  rf_policy* policy = nullptr;
  ASSERT_EQ(rf_policy_load("blk-mediated", &policy), RF_OK) << last_error();
  EXPECT_STREQ(rf_policy_name(policy), "blk-mediated");
  EXPECT_EQ(rf_policy_mode(policy), RF_MODE_MEDIATED);
  rf_policy_free(policy);
  ASSERT_EQ(rf_policy_load("blk-passthrough-ro", &policy), RF_OK) << last_error();
  EXPECT_EQ(rf_policy_mode(policy), RF_MODE_PASSTHROUGH);
  rf_policy_free(policy);

  policy = nullptr;
  EXPECT_EQ(rf_policy_load("no-such-policy", &policy), RF_E_POLICY);
  EXPECT_NE(last_error().find("blk-passthrough"), std::string::npos) << "lists the built-in policies: " << last_error();
  EXPECT_EQ(policy, nullptr);

  const std::string broken = "[policy]\nname = \"x\"\nformat = 1\nmode = \"sideways\"\n";
  EXPECT_EQ(rf_policy_parse(broken.data(), broken.size(), "vmm.toml", &policy), RF_E_POLICY);
  EXPECT_NE(last_error().find("vmm.toml"), std::string::npos) << "names the source: " << last_error();

  const std::string text =
      "[policy]\nname = \"reads-only\"\nformat = 1\nmode = \"mediated\"\ncomment = \"reads only\"\n"
      "[sqe]\nallowed_opcodes = [\"READ_FIXED\"]\nrequired_flags = [\"FIXED_FILE\"]\nallowed_flags = []\n"
      "[register]\nallowed_opcodes = []\n";
  ASSERT_EQ(rf_policy_parse(text.data(), text.size(), "vmm.toml", &policy), RF_OK) << last_error();
  EXPECT_STREQ(rf_policy_name(policy), "reads-only");
  EXPECT_EQ(rf_policy_mode(policy), RF_MODE_MEDIATED);
  rf_policy_free(policy);
}

TEST(CApiTest, ExtensibleStructsFollowTheStructSizeRule) {
  const rf_region region{0, kRam, 0, 0, nullptr, 0};
  rf_memory* memory = nullptr;
  ASSERT_EQ(rf_memory_create(&region, 1, RF_MEMORY_ANONYMOUS, &memory), RF_OK) << last_error();
  std::uint64_t bytes = 0;

  // A newer caller's struct: larger, with a field this library does not know set.
  struct Newer {
    rf_device_config known;
    std::uint64_t unknown;
  } newer{config_for(RF_MODE_MEDIATED), 0};
  newer.known.struct_size = sizeof newer;
  EXPECT_EQ(rf_device_window_size(memory, 1, &newer.known, &bytes), RF_OK) << "unknown fields left zero: " << last_error();
  newer.unknown = 1;
  EXPECT_EQ(rf_device_window_size(memory, 1, &newer.known, &bytes), RF_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("upgrade the library"), std::string::npos) << last_error();

  // An older caller's struct: the first version's fields; the rest take their defaults.
  rf_device_config older = config_for(RF_MODE_PASSTHROUGH);
  older.struct_size = RF_DEVICE_CONFIG_SIZE_VER1;
  older.device_poll_us = 0xffffffff;  // past the caller's struct_size: never read
  std::uint64_t older_bytes = 0;
  ASSERT_EQ(rf_device_window_size(memory, 1, &older, &older_bytes), RF_OK) << last_error();

  // Smaller than the first version: no program has such a struct. Accepting it would let fields
  // the caller did set (a policy, flags) silently fall back to defaults.
  for (std::uint32_t size : {4u, 8u, static_cast<std::uint32_t>(offsetof(rf_device_config, policy)), RF_DEVICE_CONFIG_SIZE_VER1 - 1}) {
    rf_device_config truncated = config_for(RF_MODE_MEDIATED);
    truncated.struct_size = size;
    EXPECT_EQ(rf_device_window_size(memory, 1, &truncated, &bytes), RF_E_INVALID_ARGUMENT) << size;
    EXPECT_NE(last_error().find("first version"), std::string::npos) << last_error();
  }

  rf_device_config huge = config_for(RF_MODE_MEDIATED);
  huge.struct_size = 1u << 20;  // read that far, the scan for unknown fields would leave the struct
  EXPECT_EQ(rf_device_window_size(memory, 1, &huge, &bytes), RF_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("over 4096"), std::string::npos) << last_error();

  rf_device_config zero = config_for(RF_MODE_MEDIATED);
  zero.struct_size = 0;
  EXPECT_EQ(rf_device_window_size(memory, 1, &zero, &bytes), RF_E_INVALID_ARGUMENT);
  EXPECT_EQ(rf_memory_destroy(memory), RF_OK);
}

TEST(CApiTest, DeviceConfigurationsThatMakeNoSenseAreRefused) {
  const rf_region region{0, kRam, 0, 0, nullptr, 0};
  rf_memory* memory = nullptr;
  ASSERT_EQ(rf_memory_create(&region, 1, RF_MEMORY_ANONYMOUS, &memory), RF_OK) << last_error();
  std::uint64_t bytes = 0;
  rf_device_config c = config_for(RF_MODE_MEDIATED);
  c.flags = RF_DEVICE_PIN_SQPOLL;
  EXPECT_EQ(rf_device_window_size(memory, 1, &c, &bytes), RF_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("passthrough"), std::string::npos) << last_error();
  c = config_for(RF_MODE_PASSTHROUGH);
  c.mediator_poll_us = 10;
  EXPECT_EQ(rf_device_window_size(memory, 1, &c, &bytes), RF_E_INVALID_ARGUMENT);
  // The SQPOLL settings need the opt-in SQPOLL thread, and the device thread's need its absence.
  c = config_for(RF_MODE_PASSTHROUGH);
  c.sqpoll_idle_ms = 10;
  EXPECT_EQ(rf_device_window_size(memory, 1, &c, &bytes), RF_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("RF_DEVICE_KERNEL_SQPOLL"), std::string::npos) << last_error();
  c.flags = RF_DEVICE_KERNEL_SQPOLL;
  EXPECT_EQ(rf_device_window_size(memory, 1, &c, &bytes), RF_OK) << last_error();
  c.device_poll_us = 10;
  EXPECT_EQ(rf_device_window_size(memory, 1, &c, &bytes), RF_E_INVALID_ARGUMENT);
  c = config_for(RF_MODE_MEDIATED);
  c.flags = RF_DEVICE_KERNEL_SQPOLL;
  EXPECT_EQ(rf_device_window_size(memory, 1, &c, &bytes), RF_E_INVALID_ARGUMENT);
  c = config_for(RF_MODE_PASSTHROUGH);
  c.reserved = 1;
  EXPECT_EQ(rf_device_window_size(memory, 1, &c, &bytes), RF_E_INVALID_ARGUMENT);
  c = config_for(RF_MODE_MEDIATED);
  c.queue_depth = 12;
  EXPECT_EQ(rf_device_window_size(memory, 1, &c, &bytes), RF_E_INVALID_ARGUMENT);
  c = config_for(static_cast<rf_mode>(3));
  EXPECT_EQ(rf_device_window_size(memory, 1, &c, &bytes), RF_E_INVALID_ARGUMENT);
  c = config_for(RF_MODE_MEDIATED);
  c.flags = 0x100;
  EXPECT_EQ(rf_device_window_size(memory, 1, &c, &bytes), RF_E_INVALID_ARGUMENT);
  EXPECT_EQ(rf_device_create(memory, nullptr, 0, &c, nullptr), RF_E_INVALID_ARGUMENT);
  EXPECT_EQ(rf_memory_destroy(memory), RF_OK);
}

class CApiDeviceTest : public ::testing::TestWithParam<rf_mode> {
 protected:
  void SetUp() override {
    RF_REQUIRE(rf::test::restrictions_feature());
    RF_REQUIRE(rf::test::loop_device_feature());
    if (GetParam() == RF_MODE_PASSTHROUGH) {
      RF_REQUIRE(rf::test::sqpoll_feature());
      RF_REQUIRE(rf::test::no_mmap_feature());
    }
    const std::string image = make_image(dir_, 4ull << 20);
    ASSERT_FALSE(image.empty());
    ASSERT_EQ(rf_disk_open(image.c_str(), 0, &disk_), RF_OK) << last_error();
    const rf_region region{0, kRam, 0, 0, nullptr, 0};
    ASSERT_EQ(rf_memory_create(&region, 1, RF_MEMORY_MEMFD, &memory_), RF_OK) << last_error();
  }
  void TearDown() override {
    rf_device_destroy(device_);
    rf_disk_close(disk_);
    EXPECT_EQ(rf_memory_destroy(memory_), RF_OK) << last_error();
  }

  rf::TempDir dir_{"rf-capi"};
  rf_disk* disk_ = nullptr;
  rf_memory* memory_ = nullptr;
  rf_device* device_ = nullptr;
};

TEST_P(CApiDeviceTest, ALifecycleFromCreateToDestroy) {
  const rf_device_config config = config_for(GetParam());
  std::uint64_t window_bytes = 0;
  ASSERT_EQ(rf_device_window_size(memory_, 1, &config, &window_bytes), RF_OK) << last_error();
  const rf_disk* disks[] = {disk_};
  ASSERT_EQ(rf_device_create(memory_, disks, 1, &config, &device_), RF_OK) << last_error();
  EXPECT_EQ(rf_device_mode(device_), GetParam());
  EXPECT_EQ(rf_device_descriptor_gpa(device_), kWindow);
  EXPECT_EQ(rf_device_window_bytes(device_), window_bytes) << "rf_device_window_size predicted the window";
  EXPECT_GE(rf_device_kick_fd(device_), 0);
  EXPECT_GE(rf_device_notify_fd(device_), 0);
  EXPECT_NE(rf_device_kick_fd(device_), rf_device_notify_fd(device_));

  // The descriptor is in guest RAM at the window, with its magic.
  rf_region ram{};
  ASSERT_EQ(rf_memory_region(memory_, 0, &ram), RF_OK);
  std::uint64_t magic = 0;
  std::memcpy(&magic, static_cast<const unsigned char*>(ram.host) + kWindow, sizeof magic);
  EXPECT_EQ(magic, 0x31444e4952465200ull);

  EXPECT_EQ(rf_device_state_of(device_), RF_DEVICE_CREATED);
  EXPECT_EQ(rf_device_resume(device_), RF_E_WRONG_STATE);
  EXPECT_NE(last_error().find("device:"), std::string::npos) << last_error();
  ASSERT_EQ(rf_device_start(device_), RF_OK) << last_error();
  EXPECT_EQ(rf_device_state_of(device_), RF_DEVICE_RUNNING);
  ASSERT_EQ(rf_device_quiesce(device_, 1000), RF_OK) << last_error();

  rf_device_counters counters{};
  counters.struct_size = sizeof counters;
  ASSERT_EQ(rf_device_counters_of(device_, &counters), RF_OK) << last_error();
  EXPECT_EQ(counters.struct_size, sizeof counters);
  EXPECT_EQ(counters.state, static_cast<std::uint32_t>(RF_DEVICE_QUIESCED));
  EXPECT_EQ(counters.in_flight, 0u);
  EXPECT_EQ(counters.completions, 0u);
  EXPECT_EQ(counters.broken, static_cast<std::uint32_t>(RF_BROKEN_NONE));
  EXPECT_EQ(counters.in_flight_bound, 2u * config.queue_depth) << "the CQ size: twice the queue depth";
  EXPECT_EQ(counters.consumed, 0u) << "nothing taken yet, by the kernel's own count";
  EXPECT_EQ(counters.throttled, 0u);

  // The structs the library fills in follow the same rule: below the first version or over
  // 4096 bytes is refused, and nothing is written.
  for (std::uint32_t size : {0u, 16u, RF_DEVICE_COUNTERS_SIZE_VER1 - 1, 4097u, 100000u}) {
    rf_device_counters refused{};
    refused.struct_size = size;
    EXPECT_EQ(rf_device_counters_of(device_, &refused), RF_E_INVALID_ARGUMENT) << size;
    EXPECT_EQ(refused.state, 0u) << size;
  }
  // An older caller's counters (the first version's): only as many bytes as it has are written.
  unsigned char small[sizeof(rf_device_counters)];
  std::memset(small, 0xab, sizeof small);
  const std::uint32_t small_size = RF_DEVICE_COUNTERS_SIZE_VER1;
  std::memcpy(small, &small_size, sizeof small_size);
  // SAFETY: `small` is a full rf_device_counters worth of bytes; the library writes only small_size of them.
  ASSERT_EQ(rf_device_counters_of(device_, reinterpret_cast<rf_device_counters*>(small)), RF_OK);
  std::uint64_t in_flight = 1;
  std::memcpy(&in_flight, small + offsetof(rf_device_counters, in_flight), sizeof in_flight);
  EXPECT_EQ(in_flight, 0u);
  for (std::size_t i = small_size; i < sizeof small; ++i) ASSERT_EQ(small[i], 0xab) << "byte " << i << " was written";

  ASSERT_EQ(rf_device_resume(device_), RF_OK) << last_error();
  EXPECT_EQ(rf_memory_destroy(memory_), RF_E_BUSY) << "the device still uses the memory";
  EXPECT_NE(last_error().find("rf_device_destroy"), std::string::npos) << last_error();

  rf_stop_report unsized{};  // struct_size 0
  EXPECT_EQ(rf_device_stop(device_, 0, &unsized), RF_E_INVALID_ARGUMENT);
  EXPECT_EQ(rf_device_state_of(device_), RF_DEVICE_RUNNING) << "a refused stop stops nothing";
  unsized.struct_size = 5000;
  EXPECT_EQ(rf_device_stop(device_, 0, &unsized), RF_E_INVALID_ARGUMENT);
  EXPECT_EQ(rf_device_state_of(device_), RF_DEVICE_RUNNING);

  rf_stop_report report{};
  report.struct_size = sizeof report;
  ASSERT_EQ(rf_device_stop(device_, 1000, &report), RF_OK) << last_error();
  EXPECT_EQ(report.released, 1u);
  EXPECT_EQ(report.drained, 0u);
  EXPECT_EQ(report.cancelled, 0u);
  EXPECT_EQ(rf_device_state_of(device_), RF_DEVICE_STOPPED);
  EXPECT_EQ(rf_device_start(device_), RF_E_WRONG_STATE);
  rf_stop_report again{};
  again.struct_size = sizeof again;
  EXPECT_EQ(rf_device_stop(device_, 0, &again), RF_OK) << "a second stop does nothing";
  EXPECT_EQ(std::memcmp(&again, &report, sizeof report), 0) << "and reports what the first one did";
  rf_device_destroy(device_);
  device_ = nullptr;
}

TEST_P(CApiDeviceTest, APolicyForTheOtherModeIsRefusedAndNothingIsCreated) {
  rf_policy* policy = nullptr;
  ASSERT_EQ(rf_policy_load(GetParam() == RF_MODE_PASSTHROUGH ? "blk-mediated" : "blk-passthrough", &policy), RF_OK)
      << last_error();
  rf_device_config config = config_for(GetParam());
  config.policy = policy;
  const rf_disk* disks[] = {disk_};
  EXPECT_EQ(rf_device_create(memory_, disks, 1, &config, &device_), RF_E_POLICY);
  EXPECT_EQ(device_, nullptr);
  EXPECT_NE(last_error().find("written for"), std::string::npos) << last_error();
  rf_policy_free(policy);
  // TearDown destroys the memory: no device was counted on it.
}

TEST_P(CApiDeviceTest, AWindowOutsideGuestRamIsAConfigurationError) {
  rf_device_config config = config_for(GetParam());
  config.device_window_gpa = kRam;  // just past the end
  const rf_disk* disks[] = {disk_};
  EXPECT_EQ(rf_device_create(memory_, disks, 1, &config, &device_), RF_E_INVALID_CONFIG);
  EXPECT_EQ(device_, nullptr);
  EXPECT_FALSE(last_error().empty());
}

// A start that fails (here: no descriptor left for the thread's eventfd) reports the errno, leaves
// the device Created with no thread serving it, and a later start works. (A start after a failed
// one used to assign a new std::thread over a joinable one, which terminates the process.)
TEST_P(CApiDeviceTest, AFailedStartSaysWhyAndALaterStartWorks) {
  const rf_device_config config = config_for(GetParam());
  const rf_disk* disks[] = {disk_};
  ASSERT_EQ(rf_device_create(memory_, disks, 1, &config, &device_), RF_OK) << last_error();
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  const int lowest_free = ::dup(0);
  ASSERT_GE(lowest_free, 0);
  ::close(lowest_free);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(lowest_free);  // no new descriptor can be made
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  const rf_status failed = rf_device_start(device_);
  const int failed_errno = rf_last_errno();
  const std::string message = last_error();
  const rf_status again = rf_device_start(device_);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_EQ(failed, RF_E_SYSTEM) << message;
  EXPECT_EQ(failed_errno, EMFILE) << message;
  EXPECT_NE(message.find("eventfd"), std::string::npos) << message;
  EXPECT_EQ(again, RF_E_SYSTEM) << "a second failing start fails the same way, and does not abort";
  EXPECT_EQ(rf_device_state_of(device_), RF_DEVICE_CREATED);
  rf_device_counters counters{};
  counters.struct_size = sizeof counters;
  ASSERT_EQ(rf_device_counters_of(device_, &counters), RF_OK);
  EXPECT_EQ(counters.consumed, 0u);
  ASSERT_EQ(rf_device_start(device_), RF_OK) << last_error();
  EXPECT_EQ(rf_device_state_of(device_), RF_DEVICE_RUNNING);
  ASSERT_EQ(rf_device_quiesce(device_, 1000), RF_OK) << last_error();
}

// A CPU this process may not run on is the caller's configuration, refused at create (and by
// rf_device_window_size), not a kernel or system failure at start.
TEST_P(CApiDeviceTest, ACpuTheProcessCannotUseIsRefusedAtCreate) {
  rf_device_config config = config_for(GetParam());
  if (GetParam() == RF_MODE_PASSTHROUGH) {
    config.flags = RF_DEVICE_PIN_SQPOLL;
    config.sqpoll_cpu = 999;
  } else {
    config.flags = RF_DEVICE_PIN_MEDIATOR;
    config.mediator_cpu = 999;
  }
  std::uint64_t bytes = 0;
  EXPECT_EQ(rf_device_window_size(memory_, 1, &config, &bytes), RF_E_INVALID_CONFIG);
  const rf_disk* disks[] = {disk_};
  EXPECT_EQ(rf_device_create(memory_, disks, 1, &config, &device_), RF_E_INVALID_CONFIG);
  EXPECT_EQ(rf_last_errno(), 0);
  EXPECT_NE(last_error().find("CPU 999"), std::string::npos) << last_error();
  EXPECT_EQ(device_, nullptr);
  if (GetParam() == RF_MODE_PASSTHROUGH) {
    config.flags |= RF_DEVICE_KERNEL_SQPOLL;  // the SQPOLL thread's CPU: the same check
    EXPECT_EQ(rf_device_create(memory_, disks, 1, &config, &device_), RF_E_INVALID_CONFIG);
    EXPECT_NE(last_error().find("CPU 999"), std::string::npos) << last_error();
  }
  config.sqpoll_cpu = 0;
  config.mediator_cpu = 0;
  ASSERT_EQ(rf_device_create(memory_, disks, 1, &config, &device_), RF_OK) << last_error();
  ASSERT_EQ(rf_device_start(device_), RF_OK) << last_error();
}

// The queue depth's limit is in the header and is the same in both modes.
TEST_P(CApiDeviceTest, TheQueueDepthLimitIsTheHeadersInBothModes) {
  rf_device_config config = config_for(GetParam());
  std::uint64_t bytes = 0;
  for (std::uint32_t depth : {RF_DEVICE_MAX_QUEUE_DEPTH * 2, 1u << 20, 1u << 31, 3u}) {
    config.queue_depth = depth;
    EXPECT_EQ(rf_device_window_size(memory_, 1, &config, &bytes), RF_E_INVALID_ARGUMENT) << depth;
    EXPECT_NE(last_error().find("RF_DEVICE_MAX_QUEUE_DEPTH"), std::string::npos) << last_error();
    const rf_disk* disks[] = {disk_};
    EXPECT_EQ(rf_device_create(memory_, disks, 1, &config, &device_), RF_E_INVALID_ARGUMENT) << depth;
  }
  for (std::uint32_t depth : {1u, RF_DEVICE_MAX_QUEUE_DEPTH}) {
    config.queue_depth = depth;
    EXPECT_EQ(rf_device_window_size(memory_, 1, &config, &bytes), RF_OK) << depth << ": " << last_error();
  }
}

TEST_P(CApiDeviceTest, TheWindowSizeRefusesTheDiskCountsCreateRefuses) {
  const rf_device_config config = config_for(GetParam());
  std::uint64_t bytes = 0;
  EXPECT_EQ(rf_device_window_size(memory_, 0, &config, &bytes), RF_E_INVALID_ARGUMENT);
  EXPECT_EQ(rf_device_window_size(memory_, 65, &config, &bytes), RF_E_INVALID_ARGUMENT);
  EXPECT_EQ(rf_device_window_size(memory_, 1000, &config, &bytes), RF_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("1 to 64"), std::string::npos) << last_error();
  EXPECT_EQ(rf_device_window_size(memory_, 64, &config, &bytes), RF_OK) << last_error();
}

// Two devices given the same window: the second is refused before it touches the first's
// descriptor or rings; once the first is destroyed the window is free again.
TEST_P(CApiDeviceTest, ASecondDeviceOnAWindowInUseIsRefused) {
  const rf_device_config config = config_for(GetParam());
  const rf_disk* disks[] = {disk_};
  ASSERT_EQ(rf_device_create(memory_, disks, 1, &config, &device_), RF_OK) << last_error();
  ASSERT_EQ(rf_device_start(device_), RF_OK) << last_error();
  rf_region ram{};
  ASSERT_EQ(rf_memory_region(memory_, 0, &ram), RF_OK);
  const auto* window = static_cast<const unsigned char*>(ram.host) + kWindow;
  // The descriptor: its header, one disk and one buffer window (docs/abi.md). The rings after it
  // change on their own (the device's thread sets and clears NEED_WAKEUP).
  // SAFETY: guest RAM bytes inside the device window (it is larger than 256 bytes), read as characters.
  const std::string before(reinterpret_cast<const char*>(window), 192 + 32 + 32);

  rf_device* second = nullptr;
  for (std::uint64_t gpa : {kWindow, kWindow + 4096, kWindow - 4096}) {
    rf_device_config overlapping = config;
    overlapping.device_window_gpa = gpa;
    EXPECT_EQ(rf_device_create(memory_, disks, 1, &overlapping, &second), RF_E_INVALID_CONFIG) << gpa;
    EXPECT_NE(last_error().find("overlaps"), std::string::npos) << last_error();
    EXPECT_EQ(second, nullptr);
  }
  // SAFETY: the same bytes as `before`.
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(window), before.size()), before)
      << "the refused devices wrote nothing into the running one's descriptor";
  ASSERT_EQ(rf_device_quiesce(device_, 1000), RF_OK) << "and it still works: " << last_error();

  rf_device_destroy(device_);
  device_ = nullptr;
  ASSERT_EQ(rf_device_create(memory_, disks, 1, &config, &second), RF_OK) << last_error();
  rf_device_destroy(second);
}

// No call aborts: a VMM that calls the lifecycle in any order, with any timeout, gets a status
// each time, and the state the header promises.
TEST_P(CApiDeviceTest, LifecycleCallsInAnyOrderNeverAbort) {
  const rf_device_config config = config_for(GetParam());
  const rf_disk* disks[] = {disk_};
  ASSERT_EQ(rf_device_create(memory_, disks, 1, &config, &device_), RF_OK) << last_error();
  std::mt19937 random(20261206);
  rf_device_state state = RF_DEVICE_CREATED;
  for (int i = 0; i < 200; ++i) {
    const int call = static_cast<int>(random() % 4);
    rf_status status = RF_OK;
    switch (call) {
      case 0: status = rf_device_start(device_); break;
      case 1: status = rf_device_quiesce(device_, static_cast<std::uint32_t>(random() % 3)); break;
      case 2: status = rf_device_resume(device_); break;
      default: {
        if (random() % 8 != 0) continue;  // stop now and then: after it, everything is WRONG_STATE
        rf_stop_report report{};
        report.struct_size = sizeof report;
        status = rf_device_stop(device_, 0, &report);
        EXPECT_EQ(status, RF_OK);
        EXPECT_EQ(report.released, 1u);
      }
    }
    const rf_device_state now = rf_device_state_of(device_);
    // What each call may do from each state (ringfence.h's lifecycle).
    if (status == RF_OK) {
      const bool allowed = (call == 0 && state == RF_DEVICE_CREATED) ||
                           (call == 1 && (state == RF_DEVICE_RUNNING || state == RF_DEVICE_QUIESCED)) ||
                           (call == 2 && state == RF_DEVICE_QUIESCED) || call == 3;
      EXPECT_TRUE(allowed) << "call " << call << " succeeded from state " << state;
    } else {
      EXPECT_TRUE(status == RF_E_WRONG_STATE || status == RF_E_TIMEOUT) << rf_status_name(status) << ": " << last_error();
      EXPECT_FALSE(last_error().empty());
      EXPECT_EQ(now, state) << "a refused call changes nothing";
    }
    state = now;
  }
}

// Whatever bytes a caller's config holds, rf_device_window_size answers with a status.
TEST(CApiTest, AnyConfigBytesGetAStatusNeverACrash) {
  const rf_region region{0, kRam, 0, 0, nullptr, 0};
  rf_memory* memory = nullptr;
  ASSERT_EQ(rf_memory_create(&region, 1, RF_MEMORY_ANONYMOUS, &memory), RF_OK) << last_error();
  std::mt19937_64 random(7);
  unsigned ok = 0;
  for (int i = 0; i < 20000; ++i) {
    // Each 32-bit word zero (three times in four) or random, so that every check is reached.
    unsigned char bytes[128];
    for (std::size_t w = 0; w < sizeof bytes; w += 4) {
      const std::uint32_t word = random() % 4 == 0 ? static_cast<std::uint32_t>(random()) : 0;
      std::memcpy(bytes + w, &word, sizeof word);
    }
    // Mostly plausible struct sizes and modes, so that the checks past the first are reached.
    const std::uint32_t size = static_cast<std::uint32_t>(random() % 4 == 0 ? random() : RF_DEVICE_CONFIG_SIZE_VER1 + random() % 72);
    std::memcpy(bytes, &size, sizeof size);
    const std::uint32_t mode = static_cast<std::uint32_t>(1 + random() % 2);
    if (random() % 2 == 0) std::memcpy(bytes + offsetof(rf_device_config, mode), &mode, sizeof mode);
    if (random() % 2 == 0) std::memset(bytes + offsetof(rf_device_config, policy), 0, 2 * sizeof(void*) + 8);  // no wild pointers
    else std::memset(bytes + offsetof(rf_device_config, policy), 0, sizeof(void*));
    std::memset(bytes + offsetof(rf_device_config, share_sqpoll_with), 0, sizeof(void*));
    std::uint64_t out = 0;
    // SAFETY: 128 bytes, more than any struct_size below 128 names; larger sizes are refused before any read past 4.
    const rf_status s = rf_device_window_size(memory, 1 + random() % 70, reinterpret_cast<const rf_device_config*>(bytes), &out);
    ASSERT_STRNE(rf_status_name(s), "RF_E_UNKNOWN");
    if (s == RF_OK) {
      ++ok;
      EXPECT_GT(out, 0u);
    } else {
      ASSERT_FALSE(last_error().empty());
      ASSERT_NE(s, RF_E_INTERNAL) << last_error();
    }
  }
  EXPECT_GT(ok, 0u) << "some random configs are valid, so the whole path ran";
  EXPECT_EQ(rf_memory_destroy(memory), RF_OK);
}

std::string mode_name(const ::testing::TestParamInfo<rf_mode>& info) {
  return info.param == RF_MODE_PASSTHROUGH ? "Passthrough" : "Mediated";
}

INSTANTIATE_TEST_SUITE_P(BothModes, CApiDeviceTest, ::testing::Values(RF_MODE_PASSTHROUGH, RF_MODE_MEDIATED), mode_name);

// The opt-in SQPOLL thread through the C API: created, started, counted, stopped and released like
// the default; a second device may share its thread, a device without one may not be shared.
class CApiSqpollTest : public CApiDeviceTest {};

TEST_P(CApiSqpollTest, TheKernelSqpollFlagGivesADeviceWhoseThreadCanBeShared) {
  RF_REQUIRE(rf::test::sqpoll_feature());
  rf_device_config config = config_for(RF_MODE_PASSTHROUGH);
  config.flags = RF_DEVICE_KERNEL_SQPOLL;
  const rf_disk* disks[] = {disk_};
  ASSERT_EQ(rf_device_create(memory_, disks, 1, &config, &device_), RF_OK) << last_error();
  ASSERT_EQ(rf_device_start(device_), RF_OK) << last_error();
  rf_device_config second = config_for(RF_MODE_PASSTHROUGH);
  second.device_window_gpa = kWindow + (1u << 20);
  second.flags = RF_DEVICE_KERNEL_SQPOLL;
  second.share_sqpoll_with = device_;
  rf_device* shared = nullptr;
  ASSERT_EQ(rf_device_create(memory_, disks, 1, &second, &shared), RF_OK) << last_error();
  rf_device_config bounded = config_for(RF_MODE_PASSTHROUGH);
  bounded.device_window_gpa = kWindow + (2u << 20);
  rf_device* plain = nullptr;
  ASSERT_EQ(rf_device_create(memory_, disks, 1, &bounded, &plain), RF_OK) << last_error();
  rf_device_config onto_plain = second;
  onto_plain.device_window_gpa = kWindow + (3u << 20);
  onto_plain.share_sqpoll_with = plain;
  rf_device* refused = nullptr;
  EXPECT_EQ(rf_device_create(memory_, disks, 1, &onto_plain, &refused), RF_E_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("without an SQPOLL thread"), std::string::npos) << last_error();
  EXPECT_EQ(refused, nullptr);
  rf_device_counters counters{};
  counters.struct_size = sizeof counters;
  ASSERT_EQ(rf_device_counters_of(device_, &counters), RF_OK) << last_error();
  EXPECT_EQ(counters.in_flight_bound, 2u * config.queue_depth);
  EXPECT_EQ(counters.broken, static_cast<std::uint32_t>(RF_BROKEN_NONE));
  rf_stop_report report{};
  report.struct_size = sizeof report;
  ASSERT_EQ(rf_device_stop(shared, 0, &report), RF_OK) << last_error();
  EXPECT_EQ(report.released, 1u) << "a ring sharing another's SQPOLL thread is seen released too";
  rf_device_destroy(shared);
  rf_device_destroy(plain);
}

INSTANTIATE_TEST_SUITE_P(Passthrough, CApiSqpollTest, ::testing::Values(RF_MODE_PASSTHROUGH), mode_name);

}  // namespace
