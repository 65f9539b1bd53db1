// Runs the `ringfence` binary as a user would and checks its output and exit status.
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "disk/disk.h"

#include "cli/hostile_probe_checks.h"
#include "support/kernel_caps.h"
#include "ring/kernel_facts.h"
#include "support/run_command.h"
#include "util/temp_dir.h"

namespace {

using CliRun = rf::test::CommandRun;  // output holds stdout and stderr

std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

CliRun ringfence(const std::string& args) {
  return rf::test::run_command(std::string(RF_CLI_PATH) + " " + args + " 2>&1");
}

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

TEST(CliTest, HelpListsTheCommands) {
  const CliRun run = ringfence("--help");
  EXPECT_EQ(run.status, 0);
  for (const char* cmd : {"probe", "policy", "demo", "audit", "bench", "fuzz", "vmm", "vhost-user-blk"}) {
    EXPECT_TRUE(contains(run.output, cmd)) << run.output;
  }
  const CliRun policy_help = ringfence("policy --help");
  for (const char* cmd : {"check", "explain", "list", "names"}) EXPECT_TRUE(contains(policy_help.output, cmd));
}

TEST(CliTest, UnknownCommandOrMissingArgumentFails) {
  EXPECT_NE(ringfence("frobnicate").status, 0);
  const CliRun run = ringfence("policy check");
  EXPECT_NE(run.status, 0);
  EXPECT_TRUE(contains(run.output, "POLICY is required")) << run.output;
}

TEST(CliTest, PolicyCheckAcceptsTheBuiltins) {
  RF_REQUIRE(rf::test::io_uring_feature());
  const CliRun run = ringfence("policy check blk-passthrough blk-passthrough-ro blk-mediated");
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "blk-passthrough: ok")) << run.output;
  EXPECT_TRUE(contains(run.output, "blk-mediated: ok")) << run.output;
}

TEST(CliTest, PolicyCheckRefusesAPassthroughPolicyThatAllowsReadv) {
  const std::string path = ::testing::TempDir() + "ringfence-cli-readv.toml";
  std::ofstream(path) << R"([policy]
name = "readv"
format = 1
mode = "passthrough"
comment = "allows READV"

[sqe]
allowed_opcodes = ["READ_FIXED", "READV"]
required_flags = ["FIXED_FILE"]
allowed_flags = []

[register]
allowed_opcodes = []
)";
  const CliRun run = ringfence("policy check --offline " + path);
  ::unlink(path.c_str());
  EXPECT_EQ(run.status, 1) << run.output;
  EXPECT_TRUE(contains(run.output, path + ":8:34: error: READV is not allowed in a passthrough policy")) << run.output;
  EXPECT_TRUE(contains(run.output, "a host address the kernel does not check")) << run.output;
  EXPECT_TRUE(contains(run.output, "fix: remove \"READV\"")) << run.output;
  EXPECT_TRUE(contains(run.output, "refused")) << run.output;
}

TEST(CliTest, PolicyExplainAndList) {
  RF_REQUIRE(rf::test::io_uring_feature());
  const CliRun explain = ringfence("policy explain blk-passthrough-ro");
  EXPECT_EQ(explain.status, 0) << explain.output;
  EXPECT_TRUE(contains(explain.output, "submit 1 of the")) << explain.output;
  const CliRun list = ringfence("policy list");
  EXPECT_EQ(list.status, 0);
  EXPECT_TRUE(contains(list.output, "| blk-mediated ")) << list.output;
  const CliRun names = ringfence("policy names");
  EXPECT_TRUE(contains(names.output, "READV_FIXED")) << names.output;
}

TEST(CliTest, ProbeJsonReportsRestrictions) {
  RF_REQUIRE(rf::test::restrictions_feature());
  const CliRun run = ringfence("probe --json --target /nonexistent");
  ASSERT_EQ(run.status, 0) << run.output;
  const auto json = nlohmann::json::parse(run.output, nullptr, false);
  ASSERT_FALSE(json.is_discarded()) << run.output;
  EXPECT_EQ(json["restrictions"]["supported"], true);
  EXPECT_EQ(json["setup_flags"]["R_DISABLED"]["supported"], true);
  EXPECT_EQ(json["iopoll"]["supported"], false);
  EXPECT_GT(json["register_opcode_count"].get<int>(), 12);
  EXPECT_TRUE(json["sqe_opcodes"].is_array());
  // The SQE fields a passthrough guest writes that the kernel acts on, tried on this kernel.
  EXPECT_EQ(json["passthrough_sqe_exposure"]["probed"], true) << run.output;
  bool ioprio = false;
  for (const auto& f : json["passthrough_sqe_exposure"]["fields"]) ioprio |= f["field"] == "ioprio" && f["interpreted"] == true;
  EXPECT_TRUE(ioprio) << run.output;
  const CliRun text = ringfence("probe --target /nonexistent");
  EXPECT_TRUE(contains(text.output, "Passthrough exposure: SQE fields")) << text.output;
  EXPECT_TRUE(contains(text.output, "| rw_flags ")) << text.output;
}

TEST(CliTest, DemoRunsTheVerifiedWorkloadInASandboxedGuestInBothModes) {
  RF_REQUIRE(rf::test::restrictions_feature());
  RF_REQUIRE(rf::test::sqpoll_feature());
  RF_REQUIRE(rf::test::no_mmap_feature());
  RF_REQUIRE(rf::test::loop_device_feature());
  const CliRun run = ringfence("demo");
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "PASS: 262152 I/Os verified by guest and VMM in 2 modes")) << run.output;
  EXPECT_EQ(occurrences(run.output, "16384 of 16384 blocks hold the last pass's data"), 2u) << run.output;
  EXPECT_EQ(occurrences(run.output, "✓ killed by SIGSYS"), 2u) << run.output;
  EXPECT_EQ(occurrences(run.output, "exited 0 (ok)"), 2u) << run.output;
  EXPECT_TRUE(contains(run.output, "✓ -EFAULT (kernel), canary unchanged")) << run.output;
  EXPECT_TRUE(contains(run.output, "✓ -EFAULT (mediator), canary unchanged")) << run.output;
  EXPECT_TRUE(contains(run.output, "✓ -ENOSPC (kernel), image unchanged")) << run.output;
  EXPECT_TRUE(contains(run.output, "✓ -ENXIO (mediator), image unchanged")) << run.output;
  // Every probe of the catalogue the tests and `ringfence vmm` run, once per table.
  for (const rf::HostileProbe& probe : rf::hostile_probes()) {
    EXPECT_EQ(occurrences(run.output, rf::cli::probe_check_name(probe)), 1u) << probe.name << "\n" << run.output;
  }
  EXPECT_TRUE(contains(run.output, "| 0 of 131076 SQEs")) << run.output;
  EXPECT_FALSE(contains(run.output, "✗")) << run.output;
  EXPECT_FALSE(contains(run.output, "STILL ATTACHED")) << run.output;
}

TEST(CliTest, PolicySeccompPrintsTheGuestsAllowList) {
  const CliRun run = ringfence("policy seccomp");
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "| write       | = 4")) << run.output;
  EXPECT_TRUE(contains(run.output, "| read        | = 5")) << run.output;
  EXPECT_TRUE(contains(run.output, "| exit_group")) << run.output;
  EXPECT_FALSE(contains(run.output, "| openat")) << run.output;
}

TEST(CliTest, BenchPrintsTheTableForEachRowAndDepth) {
  RF_REQUIRE(rf::test::sqpoll_feature());
  RF_REQUIRE(rf::test::no_mmap_feature());
  RF_REQUIRE(rf::test::restrictions_feature());
  const CliRun run = ringfence("bench --size 16M --runtime 0.2 --ramp 0 --iodepth 1,8 --repeat 2 "
                               "--rows bare,bare-sqpoll,restricted,passthrough,passthrough-sqpoll,mediated");
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_TRUE(std::regex_search(run.output, std::regex(R"(\| kIOPS +\| iodepth=1 +\| iodepth=8 +\|)"))) << run.output;
  for (const char* row : {"| bare               | ", "| passthrough        | ", "| passthrough-sqpoll | ",
                          "| mediated           | "}) {
    EXPECT_TRUE(contains(run.output, row)) << row << "\n" << run.output;
  }
  // Each row against its own baseline, and the targets with a verdict per depth.
  EXPECT_TRUE(contains(run.output, "| restricted / bare-sqpoll         |")) << run.output;
  EXPECT_TRUE(contains(run.output, "| passthrough / bare               |")) << run.output;
  EXPECT_TRUE(contains(run.output, "| passthrough-sqpoll / bare-sqpoll |")) << run.output;
  EXPECT_TRUE(contains(run.output, "| mediated / bare                  |")) << run.output;
  EXPECT_TRUE(contains(run.output, "2 round(s), the rows alternating")) << run.output;
  EXPECT_TRUE(contains(run.output, "target kind: ")) << run.output;
  EXPECT_TRUE(std::regex_search(run.output, std::regex(R"(\| restricted / bare-sqpoll +\| \d+\.\d\d \(\d+\.\d\d–\d+\.\d\d\) )")))
      << "two rounds give each ratio an interval\n" << run.output;
  // Every target line ends each cell with a verdict; a target against the best host row names it.
  const std::regex target_cell(R"(\| mediated ≥ 0\.90 × best host row +\| \d+\.\d\d \(\d+\.\d\d–\d+\.\d\d\) )"
                               R"((met|MISSED|undecided) \((bare|bare-sqpoll|restricted)\) +\|)");
  EXPECT_TRUE(std::regex_search(run.output, target_cell)) << run.output;
  EXPECT_TRUE(contains(run.output, "| restricted ≥ 0.99 × bare-sqpoll ")) << run.output;
  EXPECT_TRUE(contains(run.output, "| passthrough ≥ 0.90 × best host row ")) << run.output;
  EXPECT_TRUE(std::regex_search(run.output, std::regex(R"(\| passthrough +\| \d+\.\d +\| \d+\.\d +\|)")))
      << "the efficiency table has a figure per depth\n" << run.output;
  EXPECT_TRUE(contains(run.output, "| kIOPS per CPU-second |")) << run.output;
  EXPECT_FALSE(contains(run.output, "within ±5% of fio")) << "fio did not run\n" << run.output;
  EXPECT_TRUE(contains(run.output, "| mediated           | 8       |")) << run.output;
  EXPECT_FALSE(contains(run.output, "unsupported")) << run.output;
  EXPECT_FALSE(contains(run.output, "I/O errors")) << run.output;
}

// The zram devices there are now, by name.
std::set<std::string> zram_devices() {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/block")) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("zram", 0) == 0) names.insert(name);
  }
  return names;
}

TEST(CliTest, BenchOnZramMakesACpuBoundTargetSaysSoAndRemovesItEvenWhenStopped) {
  RF_REQUIRE(rf::test::zram_feature());
  RF_REQUIRE(rf::test::sqpoll_feature());
  RF_REQUIRE(rf::test::restrictions_feature());
  const std::set<std::string> before = zram_devices();
  const CliRun run =
      ringfence("bench --target zram --size 32M --runtime 0.2 --ramp 0 --iodepth 4 --repeat 1 --rows bare,mediated");
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_TRUE(std::regex_search(run.output, std::regex(R"(target: /dev/zram\d+ \(block device, 32 MiB\))"))) << run.output;
  EXPECT_TRUE(std::regex_search(run.output, std::regex(R"(target kind: CPU-bound \(zram\d+: RAM behind it)"))) << run.output;
  EXPECT_TRUE(contains(run.output, "io-wq worker")) << "it says what zram makes io_uring do\n" << run.output;
  EXPECT_TRUE(contains(run.output, "| mediated ≥ 0.90 × best host row ")) << run.output;
  EXPECT_FALSE(contains(run.output, "I/O errors")) << run.output;
  EXPECT_EQ(zram_devices(), before) << "the zram device made for the run is gone";

  // Stopped by SIGTERM in the middle of a run (40 rounds would take about 20 s), it still
  // removes the device. In this test, not another: tests may run side by side, and a second
  // test's zram device would upset the before-and-after comparison.
  const rf::test::CommandRun stopped = rf::test::run_command(
      std::string("timeout --preserve-status -s TERM 3 ") + RF_CLI_PATH +
      " bench --target zram --size 32M --runtime 0.3 --ramp 0.2 --iodepth 4 --repeat 40 --rows bare 2>&1");
  EXPECT_EQ(stopped.status, 128 + SIGTERM) << stopped.output;
  EXPECT_TRUE(contains(stopped.output, "interrupted by Terminated")) << stopped.output;
  EXPECT_FALSE(contains(stopped.output, "| kIOPS")) << stopped.output;
  EXPECT_EQ(zram_devices(), before) << "the zram device of the stopped run is gone\n" << stopped.output;
}

TEST(CliTest, BenchKvmRowsSitBesideTheProcessGuestRows) {
  RF_REQUIRE(rf::test::kvm_feature());
  RF_REQUIRE(rf::test::sqpoll_feature());
  RF_REQUIRE(rf::test::restrictions_feature());
  const CliRun run = ringfence("bench --size 16M --runtime 0.3 --ramp 0 --iodepth 2 --repeat 1 "
                               "--rows passthrough,mediated,kvm-passthrough,kvm-mediated");
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "KVM rows: KVM module ")) << run.output;
  for (const char* row : {"| kvm-passthrough | ", "| kvm-mediated    | ", "| kvm-passthrough / passthrough |",
                          "| kvm-mediated / mediated       |", "| kvm-mediated    | 2       |"}) {
    EXPECT_TRUE(contains(run.output, row)) << row << "\n" << run.output;
  }
  EXPECT_FALSE(contains(run.output, "unsupported")) << run.output;
  EXPECT_FALSE(contains(run.output, "I/O errors")) << run.output;
}

TEST(CliTest, BenchWritesAFioShapedJsonReportThatFiosOwnReaderAccepts) {
  RF_REQUIRE(rf::test::sqpoll_feature());
  RF_REQUIRE(rf::test::no_mmap_feature());
  RF_REQUIRE(rf::test::restrictions_feature());
  const rf::TempDir dir("ringfence-test");
  const std::string path = dir.path() + "/report.json";
  const CliRun run =
      ringfence("bench --size 16M --runtime 0.2 --ramp 0 --iodepth 2 --repeat 1 --rows bare,passthrough --json " + path);
  EXPECT_EQ(run.status, 0) << run.output;
  std::ifstream in(path);
  const nlohmann::json report = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(report.is_discarded());
  ASSERT_EQ(report["jobs"].size(), 2u);
  EXPECT_EQ(report["jobs"][0]["jobname"], "bare-iodepth2");
  EXPECT_EQ(report["jobs"][1]["jobname"], "passthrough-iodepth2");
  for (const auto& job : report["jobs"]) {
    EXPECT_GT(job["read"]["iops"].get<double>(), 0.0) << job["jobname"];
    EXPECT_GT(job["read"]["clat_ns"]["percentile"]["99.000000"].get<std::uint64_t>(), 0u) << job["jobname"];
    std::uint64_t binned = 0;
    for (const auto& [ns, count] : job["read"]["clat_ns"]["bins"].items()) binned += count.get<std::uint64_t>();
    EXPECT_EQ(binned, job["read"]["total_ios"].get<std::uint64_t>()) << job["jobname"];
    EXPECT_GT(job["ringfence_iops_per_cpu_second"].get<double>(), 0.0) << job["jobname"];
    EXPECT_EQ(job["ringfence_round_iops"].size(), 1u) << job["jobname"];
  }
  ASSERT_FALSE(report["ringfence_ratios"].empty());
  EXPECT_EQ(report["ringfence_ratios"][0]["numerator"], "passthrough");
  EXPECT_EQ(report["ringfence_ratios"][0]["denominator"], "bare");
  EXPECT_EQ(report["ringfence_ratios"][0]["rounds"], 1u);
  EXPECT_FALSE(report["ringfence_target_kind"].get<std::string>().empty());
  // fio's own json+ reader (shipped with Debian's fio) turns it into one CSV per job, and its
  // --validate mode checks every CSV count against the JSON's bins.
  const std::string csv = dir.path() + "/latency.csv";
  const rf::test::CommandRun convert = rf::test::run_command("fio_jsonplus_clat2csv " + path + " " + csv + " 2>&1");
  EXPECT_EQ(convert.status, 0) << convert.output;
  EXPECT_TRUE(contains(convert.output, "latency_job1.csv generated")) << convert.output;
  const rf::test::CommandRun validate =
      rf::test::run_command("fio_jsonplus_clat2csv " + path + " " + csv + " --validate 2>&1");
  EXPECT_EQ(validate.status, 0) << validate.output;
  EXPECT_TRUE(contains(validate.output, "latency_job0.csv validated")) << validate.output;
  EXPECT_TRUE(contains(validate.output, "latency_job1.csv validated")) << validate.output;
}

TEST(CliTest, BenchDrawsAPlotWithGnuplot) {
  RF_REQUIRE(rf::test::sqpoll_feature());
  char path[] = "/tmp/ringfence-bench-plot-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const CliRun run = ringfence(std::string("bench --size 16M --runtime 0.2 --ramp 0 --iodepth 1,2 --repeat 1 --rows bare --plot ") + path);
  EXPECT_EQ(run.status, 0) << run.output;
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  in.read(magic, sizeof(magic));
  ::unlink(path);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG") << "not a PNG file";
}

TEST(CliTest, BenchRunsFioAsTheReferenceRow) {
  RF_REQUIRE(rf::test::sqpoll_feature());
  const CliRun run = ringfence("bench --size 16M --runtime 0.3 --ramp 0 --iodepth 1 --repeat 1 --rows bare,fio");
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "| fio   |")) << run.output;
  EXPECT_FALSE(contains(run.output, "unsupported")) << run.output;  // install-deps.sh installs fio
}

TEST(CliTest, BenchScaleMeasuresSetUpRegistrationAndSeveralGuests) {
  RF_REQUIRE(rf::test::sqpoll_feature());
  RF_REQUIRE(rf::test::no_mmap_feature());
  RF_REQUIRE(rf::test::restrictions_feature());
  const CliRun run = ringfence("bench --rows none --scale --scale-guests 1,2 --scale-iodepth 4 --size 16M "
                               "--runtime 0.2 --ramp 0");
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_FALSE(contains(run.output, "| kIOPS ")) << "--rows none runs no table\n" << run.output;
  EXPECT_TRUE(contains(run.output, "Device set-up, median of 50")) << run.output;
  EXPECT_TRUE(contains(run.output, "| passthrough | ")) << run.output;
  EXPECT_TRUE(contains(run.output, "| mediated    | ")) << run.output;
  EXPECT_TRUE(contains(run.output, "passthrough set-up without buffer pinning < 1 ms: ")) << run.output;
  EXPECT_TRUE(contains(run.output, "| 1024 MiB  | yes ")) << run.output;
  EXPECT_TRUE(contains(run.output, "iodepth=4 per guest")) << run.output;
  EXPECT_TRUE(contains(run.output, "\n| 1      | ")) << run.output;
  EXPECT_TRUE(contains(run.output, "\n| 2      | ")) << run.output;
  EXPECT_FALSE(contains(run.output, "I/O errors")) << run.output;
}

TEST(CliTest, BenchRefusesAMissingTargetAndUnknownRows) {
  const CliRun missing = ringfence("bench --target /nonexistent/disk --runtime 0.1");
  EXPECT_EQ(missing.status, 1) << missing.output;
  EXPECT_TRUE(contains(missing.output, "/nonexistent/disk")) << missing.output;
  const CliRun rows = ringfence("bench --rows bare,warp --runtime 0.1");
  EXPECT_EQ(rows.status, 2) << rows.output;
  EXPECT_TRUE(contains(rows.output, "unknown row warp")) << rows.output;
  const CliRun none = ringfence("bench --rows none --runtime 0.1");
  EXPECT_EQ(none.status, 2) << none.output;
  EXPECT_TRUE(contains(none.output, "--scale")) << none.output;
}

TEST(CliTest, VhostUserBlkRefusesWhatItCannotServeAndSaysWhy) {
  rf::TempDir dir("rf-cli-vub");
  const std::string socket = dir.path() + "/vub.sock";
  // No disk at that path.
  CliRun run = ringfence("vhost-user-blk --socket " + socket + " --disk " + dir.path() + "/missing.img");
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(contains(run.output, "missing.img")) << run.output;
  // A passthrough policy for the private rings.
  const std::string image = dir.path() + "/disk.img";
  ASSERT_EQ(rf::test::run_command("truncate -s 1M " + image).status, 0);
  run = ringfence("vhost-user-blk --socket " + socket + " --disk " + image + " --policy blk-passthrough");
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(contains(run.output, "mediated policy")) << run.output;
  // A socket path that is some other file: never removed.
  run = ringfence("vhost-user-blk --socket " + image + " --disk " + image);
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(contains(run.output, "not a socket")) << run.output;
  EXPECT_EQ(rf::test::run_command("test -f " + image).status, 0);
  // --sqpoll-cpu is for passthrough rings.
  run = ringfence("vhost-user-blk --socket " + socket + " --disk " + image + " --sqpoll-cpu 0");
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(contains(run.output, "needs --mode passthrough")) << run.output;
  // The hostile-completions test mode is for mediated rings (in passthrough the kernel writes CQEs),
  // and takes only the faults it knows.
  run = ringfence("vhost-user-blk --socket " + socket + " --disk " + image +
                  " --mode passthrough --hostile-completions cq-tail-jump");
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(contains(run.output, "--hostile-completions needs --mode mediated")) << run.output;
  run = ringfence("vhost-user-blk --socket " + socket + " --disk " + image + " --hostile-completions everything");
  EXPECT_NE(run.status, 0);
  EXPECT_TRUE(contains(run.output, "--hostile-completions")) << run.output;
  // Out-of-range queues, from the argument parser.
  run = ringfence("vhost-user-blk --socket " + socket + " --disk " + image + " --queues 0");
  EXPECT_NE(run.status, 0);
  EXPECT_TRUE(contains(run.output, "--queues")) << run.output;
  EXPECT_FALSE(contains(rf::test::run_command("ls " + dir.path()).output, "vub.sock")) << "a refused start leaves no socket";
}

// The second log line says whether DISCARD and WRITE_ZEROES are offered, and why not.
TEST(CliTest, VhostUserBlkSaysWhetherItOffersDiscardAndWriteZeroes) {
  RF_REQUIRE(rf::test::restrictions_feature());
  RF_REQUIRE(rf::test::loop_device_feature());
  rf::TempDir dir("rf-cli-vub-zeroing");
  const std::string image = dir.path() + "/disk.img";
  ASSERT_EQ(rf::test::run_command("truncate -s 1M " + image).status, 0);
  const auto served = [&](const std::string& options) {
    // SIGTERM after a second: the daemon stops cleanly, and its log is all there.
    return rf::test::run_command("timeout -s TERM 1 " + std::string(RF_CLI_PATH) + " vhost-user-blk --socket " +
                                 dir.path() + "/vub.sock --disk " + image + " " + options + " 2>&1")
        .output;
  };
  std::string log = served("");
  EXPECT_TRUE(contains(log, "policy blk-virtio")) << log;
  const bool offloads = contains(log, "DISCARD and WRITE_ZEROES are offered");
  EXPECT_TRUE(offloads || contains(log, "WRITE_ZEROES is offered (the kernel writes zero pages); DISCARD is not")) << log;
  EXPECT_TRUE(contains(log, "SIGTERM: stopping")) << log;
  log = served("--policy blk-mediated");
  EXPECT_TRUE(contains(log, "not offered: the policy blk-mediated does not allow FALLOCATE")) << log;
  log = served("--read-only");
  EXPECT_TRUE(contains(log, "not offered: the disk is read-only")) << log;
  log = served("--hostile-completions oversized-res --hostile-after 7");
  EXPECT_TRUE(contains(log, "TEST MODE: every attached ring posts 7 honest completions, then one oversized-res")) << log;
}

// A disk another writer holds is refused at start, with the reason; a live migration's target
// (--incoming) starts anyway and says it opens the disk when the guest's queues start there.
TEST(CliTest, VhostUserBlkRefusesAHeldDiskUnlessItIsAMigrationsTarget) {
  RF_REQUIRE(rf::test::loop_device_feature());
  rf::TempDir dir("rf-cli-vub-incoming");
  const std::string image = dir.path() + "/disk.img";
  ASSERT_EQ(rf::test::run_command("truncate -s 1M " + image).status, 0);
  auto holder = rf::Disk::open(image, {});
  ASSERT_TRUE(holder) << holder.error().message;
  const std::string start = std::string(RF_CLI_PATH) + " vhost-user-blk --socket " + dir.path() + "/vub.sock --disk " + image;
  const auto refused = rf::test::run_command(start + " 2>&1");
  EXPECT_EQ(refused.status, 1) << refused.output;
  EXPECT_TRUE(contains(refused.output, "another open holds it")) << refused.output;
  const auto target = rf::test::run_command("timeout -s TERM 1 " + start + " --incoming 2>&1");
  EXPECT_TRUE(contains(target.output, "the target of a migration")) << target.output;
  EXPECT_TRUE(contains(target.output, "stopped after 0 connections")) << target.output;
}

TEST(CliTest, DemoRefusesBadOptions) {
  const CliRun run = ringfence("demo --depth 0");
  EXPECT_NE(run.status, 0);
  EXPECT_TRUE(contains(run.output, "--depth")) << run.output;
}

// Sets kernel.io_uring_disabled for the life of the object and puts the old value back, whatever
// the test does in between.
class IoUringDisabledSysctl {
 public:
  explicit IoUringDisabledSysctl(int value) {
    std::ifstream in(kPath);
    if (!(in >> old_)) return;
    std::ofstream out(kPath);
    set_ = static_cast<bool>(out << value << std::flush);
  }
  ~IoUringDisabledSysctl() {
    if (set_) std::ofstream(kPath) << old_ << std::flush;
  }
  bool set() const { return set_; }

 private:
  static constexpr const char* kPath = "/proc/sys/kernel/io_uring_disabled";
  int old_ = 0;
  bool set_ = false;
};

std::size_t loop_devices_in_use() {
  return occurrences(rf::test::run_command("losetup -a 2>/dev/null").output, "/dev/loop");
}

TEST(CliTest, DemoAndAuditRefuseToStartWhenIoUringIsDisabledAndNameTheSysctl) {
  const std::size_t loops_before = loop_devices_in_use();
  const std::optional<int> sysctl_before = rf::io_uring_disabled_sysctl();
  {
    IoUringDisabledSysctl disabled(2);
    if (!disabled.set()) GTEST_SKIP() << "kernel.io_uring_disabled is absent (before Linux 6.6) or not writable (needs root)";
    for (const char* command : {"demo", "audit"}) {
      const CliRun run = ringfence(command);
      EXPECT_EQ(run.status, 1) << command;
      EXPECT_TRUE(contains(run.output, "cannot start")) << run.output;
      EXPECT_TRUE(contains(run.output, "kernel.io_uring_disabled=2")) << run.output;
      EXPECT_TRUE(contains(run.output, "sysctl -w kernel.io_uring_disabled=0")) << run.output;
      EXPECT_FALSE(contains(run.output, "Verified workload")) << "it started anyway:\n" << run.output;
    }
    const CliRun fuzz = ringfence("fuzz --mode mediated --seconds 1");
    EXPECT_EQ(fuzz.status, 2) << fuzz.output;  // cannot run
    EXPECT_TRUE(contains(fuzz.output, "kernel.io_uring_disabled=2")) << fuzz.output;
  }
  EXPECT_EQ(rf::io_uring_disabled_sysctl(), sysctl_before) << "the sysctl is restored";
  EXPECT_EQ(loop_devices_in_use(), loops_before) << "nothing is left behind";
}

TEST(CliTest, AuditPassesEveryCheck) {
  RF_REQUIRE(rf::test::restrictions_feature());
  RF_REQUIRE(rf::test::sqpoll_feature());
  RF_REQUIRE(rf::test::no_mmap_feature());
  const CliRun run = ringfence("audit");
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "PASS:")) << run.output;
  EXPECT_TRUE(contains(run.output, " policies, 0 failed")) << run.output;
  EXPECT_FALSE(contains(run.output, "| ✗")) << run.output;    // a failed cell
  EXPECT_FALSE(contains(run.output, "\n  ✗ ")) << run.output;  // a failure line
  EXPECT_TRUE(contains(run.output, "| every denied SQE opcode")) << run.output;
}

TEST(CliTest, FuzzVirtioRunsAHostileVirtioGuestAgainstTheBackEndsQueues) {
  RF_REQUIRE(rf::test::restrictions_feature());
  RF_REQUIRE(rf::test::loop_device_feature());
  rf::TempDir dir("rf-cli-fuzz-virtio");
  const std::string json = dir.path() + "/virtio.json";
  const CliRun run = ringfence("fuzz --mode virtio --seed 3 --episodes 60 --json " + json);
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_TRUE(contains(run.output, "60 episodes")) << run.output;
  for (const char* invariant : {"one-used-per-request", "in-flight-bound", "canary-region", "disk-size", "vmm-resources"}) {
    EXPECT_TRUE(contains(run.output, invariant)) << run.output;
  }
  std::ifstream in(json);
  const auto report = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(report.is_discarded());
  EXPECT_EQ(report["episodes"], 60);
  EXPECT_GT(report["requests"].get<std::uint64_t>(), 0u) << "the guest's requests reached the queues";
  // At most one used entry per request (a queue the guest broke answers no more, even for what it
  // had taken: the invariant checks that per episode).
  EXPECT_LE(report["used"].get<std::uint64_t>(), report["requests"].get<std::uint64_t>());
  EXPECT_FALSE(report["refused"].empty()) << "hostile requests were refused before the kernel";
  EXPECT_FALSE(report["broken"].empty()) << "some episodes broke the protocol, and only their queue broke";
  for (const auto& [name, tally] : report["invariants"].items()) {
    EXPECT_EQ(tally["checked"].get<std::uint64_t>() > 0, true) << name;
    EXPECT_EQ(tally["violated"], 0) << name;
  }
}

TEST(CliTest, FuzzRunsAHostileGuestInEachModeAndReportsItsInvariants) {
  RF_REQUIRE(rf::test::restrictions_feature());
  RF_REQUIRE(rf::test::sqpoll_feature());
  RF_REQUIRE(rf::test::no_mmap_feature());
  RF_REQUIRE(rf::test::loop_device_feature());
  rf::TempDir dir("rf-cli-fuzz");
  for (const std::string mode : {"passthrough", "passthrough-sqpoll", "mediated"}) {
    const std::string path = dir.path() + "/" + mode + ".json";
    const CliRun run = ringfence("fuzz --mode " + mode + " --seconds 2 --seed 5 --json " + path);
    EXPECT_EQ(run.status, 0) << run.output;
    EXPECT_TRUE(contains(run.output, "ringfence fuzz: " + mode + " mode, seed 5")) << run.output;
    EXPECT_TRUE(contains(run.output, "| one-cqe-per-sqe")) << run.output;
    EXPECT_TRUE(contains(run.output, "256/256 / ")) << run.output;  // every episode sends every opcode
    // Counts are grouped in threes with commas, whatever the locale.
    EXPECT_TRUE(std::regex_search(run.output, std::regex(R"(\| guest actions +\| \d{1,3}(,\d{3})* +\|)"))) << run.output;
    std::ifstream in(path);
    const auto json = nlohmann::json::parse(in, nullptr, false);
    ASSERT_FALSE(json.is_discarded());
    EXPECT_EQ(json["mode"], mode);
    EXPECT_EQ(json["seed"], 5);
    EXPECT_GT(json["episodes"].get<int>(), 0);
    EXPECT_GT(json["sqes_per_second"].get<double>(), 0.0);
    EXPECT_TRUE(json["violation"].is_null());
    for (const auto& [name, tally] : json["invariants"].items()) {
      EXPECT_EQ(tally["violated"], 0) << name;
      EXPECT_GT(tally["checked"].get<int>(), 0) << name;
    }
    // A clean run's report has nothing to replay, and says so.
    const CliRun replay = ringfence("fuzz --replay " + path);
    EXPECT_EQ(replay.status, 2) << replay.output;
    EXPECT_TRUE(contains(replay.output, "nothing to replay")) << replay.output;
  }
  const CliRun no_mode = ringfence("fuzz --seconds 1");
  EXPECT_EQ(no_mode.status, 2);
  EXPECT_TRUE(contains(no_mode.output, "--mode passthrough, passthrough-sqpoll or mediated is required")) << no_mode.output;
}

}  // namespace
