// ringfence: restricted io_uring rings that a VM guest can drive without reaching past its own
// disks and memory. This is the command-line edge: the only place that catches exceptions.
#include <exception>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/audit_command.h"
#include "cli/bench_command.h"
#include "cli/demo_command.h"
#include "cli/fuzz_command.h"
#include "cli/policy_command.h"
#include "cli/probe_command.h"
#include "cli/vhost_user_blk_command.h"
#include "cli/vmm_command.h"
#include "ring/kernel_facts.h"

int main(int argc, char** argv) {
  CLI::App app{"ringfence: restricted io_uring rings for VM guests (version " RF_VERSION ")\n"
               "Gives a guest a polled io_uring path to its disks while the kernel (and, in mediated mode, a\n"
               "translation layer) keeps it to its own disks and its own memory."};
  app.set_version_flag("--version", RF_VERSION);
  app.footer("VMMs link the same devices through the C API: libringfence and ringfence.h "
             "(docs/integration.md; installed by `cmake --install`).");
  app.require_subcommand(1);

  rf::cli::ProbeArgs probe_args;
  auto* probe = app.add_subcommand("probe", "Report what this kernel supports: restrictions, setup flags, opcodes, "
                                            "RLIMIT_MEMLOCK, and IOPOLL for a target");
  probe->add_flag("--json", probe_args.json, "Print JSON instead of a table");
  probe->add_option("--target", probe_args.target,
                    "File or block device to check IOPOLL against (default: a temporary file in $TMPDIR or "
                    "/var/tmp, removed afterwards)");

  auto* policy = app.add_subcommand("policy", "Check, explain and list restriction policies");
  policy->require_subcommand(1);
  rf::cli::PolicyArgs policy_args;
  auto* check = policy->add_subcommand("check", "Parse and lint policies; exit 1 if any is refused");
  check->add_option("POLICY", policy_args.policies, "Policy file, or the name of a built-in policy")->required();
  check->add_flag("--offline", policy_args.offline, "Skip the checks against the running kernel's opcodes");
  auto* explain = policy->add_subcommand("explain", "Say in words what a policy allows and denies, and show the "
                                                    "restriction table the kernel receives");
  explain->add_option("POLICY", policy_args.policies, "Policy file, or the name of a built-in policy")->required();
  explain->add_flag("--offline", policy_args.offline, "Explain against ringfence's opcode tables, not this kernel's");
  auto* list = policy->add_subcommand("list", "List the built-in policies");
  auto* names = policy->add_subcommand("names", "List the opcode and flag names a policy file can use");
  auto* seccomp = policy->add_subcommand("seccomp", "Print the seccomp allow lists of the process guest and of "
                                                    "vhost-user-blk's queue threads, and why each entry is there");

  rf::cli::DemoArgs demo_args;
  auto* demo = app.add_subcommand("demo", "Run a sandboxed guest process on its own restricted ring (passthrough): "
                                          "a 64 MiB disk image, 256 MiB of guest RAM, the verified workload and the "
                                          "security checks (exit 1 on any mismatch or failed check)");
  demo->add_option("--seed", demo_args.seed, "Seed of the workload's data and block order");
  demo->add_option("--passes", demo_args.passes, "Passes over the disk (each: every block written, FSYNC, every block read)")
      ->check(CLI::Range(1u, 1000u));
  demo->add_option("--depth", demo_args.depth, "I/Os the guest keeps in flight")->check(CLI::Range(1u, 64u));
  demo->add_flag("--poll", demo_args.poll, "The guest polls the CQ with notifications off instead of waiting");
  rf::cli::BenchArgs bench_args;
  auto* bench = app.add_subcommand("bench", "Measure kIOPS, completion latency and CPU per I/O of a fio-like job "
                                            "(random 4 KiB I/O, O_DIRECT) for each ring row and iodepth");
  bench->add_option("--rw", bench_args.rw, "randread, randwrite or randrw (writes overwrite the target)")
      ->check(CLI::IsMember({"randread", "randwrite", "randrw"}))
      ->capture_default_str();
  bench->add_option("--bs", bench_args.bs, "Block size in bytes")->check(CLI::Range(512u, 1u << 20))
      ->capture_default_str();
  bench->add_option("--iodepth", bench_args.iodepths, "I/Os in flight, a list: 1,8,16,32")
      ->delimiter(',')
      ->check(CLI::Range(1u, 4096u))
      ->capture_default_str();
  bench->add_option("--runtime", bench_args.runtime_s, "Measured seconds per job")->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  bench->add_option("--ramp", bench_args.ramp_s, "Seconds per job before measuring")->check(CLI::Range(0.0, 600.0))
      ->capture_default_str();
  bench->add_option("--target", bench_args.target,
                    "A file or block device; zram: a new zram device of --size filled with random data, removed "
                    "afterwards (root; a CPU-bound target: what each row costs per I/O); default: a new file of "
                    "--size in a temporary directory");
  bench->add_option("--size", bench_args.size, "Size of the default target file or of --target zram, e.g. 1G (the "
                                               "default) or 256M")
      ->transform(CLI::AsSizeValue(false));
  bench->add_option("--rows", bench_args.rows, "Rows to run: bare, bare-sqpoll, bare-sqpoll-iopoll, restricted, "
                                               "passthrough (the guest process; bounded: its device thread submits), "
                                               "passthrough-sqpoll (opt-in, UNBOUNDED: a kernel SQPOLL thread takes "
                                               "the guest's SQ), mediated, kvm-passthrough, kvm-passthrough-sqpoll, "
                                               "kvm-mediated (the KVM guest; needs /dev/kvm), linux-passthrough, "
                                               "linux-mediated (Debian's kernel in QEMU with rfblk, polled), linux-virtio "
                                               "(the stock virtio_blk on ringfence's virtio path), qsd-virtio "
                                               "(qemu-storage-daemon's: the peer), fio; or none (with --scale)")
      ->delimiter(',')
      ->capture_default_str();
  bench->add_flag("--scale", bench_args.scale, "After the table (or alone, with --rows none): device set-up time, "
                                               "guest RAM registration per GiB, and aggregate kIOPS with several "
                                               "passthrough-sqpoll guests, with and without a shared SQPOLL thread");
  bench->add_option("--scale-guests", bench_args.scale_guests, "--scale: the numbers of guests to run at once")
      ->delimiter(',')
      ->check(CLI::Range(1u, 64u))
      ->capture_default_str();
  bench->add_option("--scale-iodepth", bench_args.scale_iodepth, "--scale: I/Os in flight per guest")
      ->check(CLI::Range(1u, 256u))
      ->capture_default_str();
  bench->add_option("--repeat", bench_args.repeat, "Rounds: run the whole table this many times, the rows alternating "
                                                   "(reversed every other round), and report the median, the spread and "
                                                   "each ratio's 95% interval, paired by round (a target is decided only "
                                                   "from 2 rounds; 5 or more to decide a few per cent)")
      ->check(CLI::Range(1u, 100u))
      ->capture_default_str();
  bench->add_option("--json", bench_args.json_path, "Also write the results to FILE in fio's JSON shape");
  bench->add_option("--plot", bench_args.plot_path, "Also draw kIOPS against iodepth into FILE.png (gnuplot)");
  bench->add_option("--guest-image", bench_args.guest_image,
                    "The Linux-guest rows' kernel and initramfs (with rfblk.ko): a directory made by "
                    "tests/qemu/make-initramfs.sh; default: the build's (cmake --build build --target guest-image)");
  bench->add_option("--accel", bench_args.accel, "The Linux-guest rows' QEMU accelerator: tcg, or kvm where /dev/kvm is "
                                                 "hardware KVM")
      ->check(CLI::IsMember({"tcg", "kvm"}))
      ->capture_default_str();
  bench_args.version = RF_VERSION;
  rf::cli::FuzzArgs fuzz_args;
  auto* fuzz = app.add_subcommand("fuzz", "Attack a live sandboxed device with a hostile guest process (random and "
                                          "structure-aware SQEs, ring scribbles, tail jumps, never reaping) while the VMM "
                                          "checks its invariants after every episode; exit 1 on a violation");
  fuzz->add_option("--mode", fuzz_args.mode, "passthrough (the device thread submits, bounded), passthrough-sqpoll "
                                             "(the opt-in, unbounded SQPOLL thread, watched), mediated, or virtio (a "
                                             "hostile virtio guest against vhost-user-blk's queues)")
      ->check(CLI::IsMember({"passthrough", "passthrough-sqpoll", "mediated", "virtio"}));
  fuzz->add_option("--seconds", fuzz_args.seconds, "How long to run")->check(CLI::Range(0.1, 86400.0))->capture_default_str();
  fuzz->add_option("--seed", fuzz_args.seed, "Seed of every episode's program (default: from the clock; printed)");
  fuzz->add_option("--episodes", fuzz_args.episodes, "Stop after this many episodes")->check(CLI::Range(1u, 100000000u));
  fuzz->add_option("--json", fuzz_args.json_path, "Write the results, and the program of an episode that broke an "
                                                  "invariant or hung, to FILE");
  fuzz->add_option("--replay", fuzz_args.replay_path, "Run the failing episode recorded in FILE (from --json) again")
      ->excludes("--mode");
  fuzz_args.version = RF_VERSION;
  rf::cli::VmmArgs vmm_args;
  auto* vmm = app.add_subcommand("vmm", "Boot a bare-metal KVM guest (the KVM example VMM) that runs the reference "
                                        "driver on each mode's device: the verified workload, the VMM's own check of "
                                        "the disk, then hostile guests (exit 1 on any failure, 2 without /dev/kvm)");
  vmm->add_option("--mode", vmm_args.mode, "passthrough, mediated or both")
      ->check(CLI::IsMember({"passthrough", "mediated", "both"}))
      ->capture_default_str();
  vmm->add_option("--disk", vmm_args.disk, "A disk image or block device to use; its contents are OVERWRITTEN "
                                           "(default: a new 1 MiB image in a temporary directory)");
  vmm->add_option("--guest", vmm_args.guest, "The guest image (default: ringfence-kvm-guest.bin beside this binary, "
                                             "or RINGFENCE_KVM_GUEST)");
  vmm->add_option("--seed", vmm_args.seed, "Seed of the workload's data and block order");
  vmm->add_option("--passes", vmm_args.passes, "Passes over the disk")->check(CLI::Range(1u, 1000u))->capture_default_str();
  vmm->add_option("--depth", vmm_args.depth, "I/Os the guest keeps in flight")->check(CLI::Range(1u, 64u))
      ->capture_default_str();
  vmm->add_option("--ram", vmm_args.ram_mib, "Guest RAM in MiB, a multiple of 2")
      ->check(CLI::Range(8u, 4096u))
      ->capture_default_str();
  vmm->add_option("--timeout", vmm_args.timeout_s, "Seconds each guest boot may run")->check(CLI::Range(1.0, 86400.0))
      ->capture_default_str();
  vmm->add_flag("--log", vmm_args.log, "Print every guest's debug-port lines (printed anyway on a failure)");
  rf::cli::VhostUserBlkArgs vub_args;
  auto* vub = app.add_subcommand("vhost-user-blk", "Serve a disk to vhost-user front-ends (QEMU's vhost-user-blk-pci, "
                                                   "cloud-hypervisor, crosvm, Firecracker) on a UNIX socket: an unmodified "
                                                   "guest's virtio-blk requests are validated and go through a restricted "
                                                   "private io_uring; runs until SIGINT or SIGTERM, and logs each queue's state on "
                                                   "SIGUSR1 (docs/vhost-user.md)");
  vub->add_option("--socket", vub_args.socket, "The UNIX socket to listen on (a stale socket file is replaced)")->required();
  vub->add_option("--disk", vub_args.disk, "The disk image or block device to serve")->required();
  vub->add_flag("--read-only", vub_args.read_only, "Serve the disk read-only (VIRTIO_BLK_F_RO; writes fail)");
  vub->add_flag("--incoming", vub_args.incoming, "The target of a live migration (QEMU's -incoming): start while the "
                                                 "source's back-end still holds the disk; it is opened and locked when "
                                                 "QEMU starts the queues here, at the switch-over");
  vub->add_option("--queues", vub_args.queues, "Virtqueues (the guest maps one per vCPU); each has its own thread "
                                               "and private ring")
      ->check(CLI::Range(1u, 64u))
      ->capture_default_str();
  vub->add_option("--policy", vub_args.policy, "The restriction policy of every private ring: a built-in mediated "
                                               "policy's name or a policy file; DISCARD and WRITE_ZEROES are offered "
                                               "only if it allows FALLOCATE (blk-virtio does, blk-mediated does not)")
      ->capture_default_str();
  vub->add_option("--mode", vub_args.mode, "The shared ring a ringfence-aware guest attaches on a queue (docs/abi.md): "
                                           "passthrough (the guest's own restricted kernel ring) or mediated")
      ->check(CLI::IsMember({"passthrough", "mediated"}))
      ->capture_default_str();
  vub->add_option("--sqpoll-cpu", vub_args.sqpoll_cpu, "With --mode passthrough: attached rings are served by the "
                                                       "kernel's SQPOLL thread on this CPU (opt-in and unbounded, under a "
                                                       "watchdog), one thread shared by every ring of a connection");
  vub->add_option("--hostile-completions", vub_args.hostile_completions,
                  "TEST ONLY, with --mode mediated: every attached ring misbehaves once toward its guest, as a hostile "
                  "device would, to test guest drivers: a CQE with user_data the guest never sent, a res larger than the "
                  "request, a CQ tail jump, or a completion never posted (docs/linux-guest.md)")
      ->check(CLI::IsMember({"unknown-user-data", "oversized-res", "cq-tail-jump", "dropped-cqe"}));
  vub->add_option("--hostile-after", vub_args.hostile_after, "With --hostile-completions: the honest completions "
                                                             "each ring posts first")
      ->capture_default_str();
  vub->add_option("--serial", vub_args.serial, "The serial number the guest reads (VIRTIO_BLK_T_GET_ID, 20 bytes at most)")
      ->capture_default_str();
  auto* audit = app.add_subcommand("audit", "Build a ring for each built-in policy, run its self-check and print the "
                                            "enforcement matrix (exit 1 if any check fails)");

  CLI11_PARSE(app, argc, argv);

  try {
    if (probe->parsed()) return rf::cli::run_probe(probe_args);
    if (check->parsed()) return rf::cli::run_policy_check(policy_args);
    if (explain->parsed()) return rf::cli::run_policy_explain(policy_args);
    if (list->parsed()) return rf::cli::run_policy_list();
    if (names->parsed()) return rf::cli::run_policy_names();
    if (seccomp->parsed()) return rf::cli::run_policy_seccomp();
    // These two need io_uring from the first step: refuse to start rather than build a disk
    // image and guest RAM first.
    for (const auto* needs_io_uring : {demo, audit}) {
      if (!needs_io_uring->parsed()) continue;
      if (const auto why = rf::io_uring_unavailable()) {
        std::cerr << "ringfence " << needs_io_uring->get_name() << ": cannot start: " << *why << "\n";
        return 1;
      }
    }
    if (demo->parsed()) return rf::cli::run_demo(demo_args);
    if (audit->parsed()) return rf::cli::run_audit();
    if (bench->parsed()) return rf::cli::run_bench(bench_args);
    if (fuzz->parsed()) return rf::cli::run_fuzz(fuzz_args);
    if (vmm->parsed()) return rf::cli::run_vmm(vmm_args);
    if (vub->parsed()) return rf::cli::run_vhost_user_blk(vub_args);
  } catch (const std::exception& e) {
    std::cerr << "ringfence: " << e.what() << "\n";
    return 1;
  }
  return 1;
}
