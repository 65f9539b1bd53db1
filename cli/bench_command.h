#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rf::cli {

struct BenchArgs {
  std::string rw = "randread";
  std::uint32_t bs = 4096;
  std::vector<std::uint32_t> iodepths{1, 8, 16, 32};
  // Many short runs rather than a few long ones: each round gives every ratio one more pair.
  double runtime_s = 2.0;
  double ramp_s = 0.5;
  std::string target;            // empty: a file of `size` bytes in a temporary directory; "zram": a zram device
  std::uint64_t size = 1ull << 30;
  // "none": no table. The KVM rows show "unsupported" with the reason where /dev/kvm is not usable.
  std::vector<std::string> rows{"bare",     "bare-sqpoll",     "bare-sqpoll-iopoll", "restricted",  "passthrough",
                                "passthrough-sqpoll", "mediated", "kvm-passthrough", "kvm-mediated",
                                "linux-passthrough", "linux-mediated", "linux-virtio", "qsd-virtio", "fio"};
  bool scale = false;  // --scale: the scale section after the table
  std::vector<unsigned> scale_guests{1, 2, 4, 8};
  std::uint32_t scale_iodepth = 8;  // per guest
  unsigned repeat = 5;  // rounds
  std::string json_path;  // --json FILE: the results in fio's JSON shape
  std::string plot_path;  // --plot FILE.png: kIOPS against iodepth, drawn by gnuplot
  std::string version;    // ringfence's, for the JSON report
  std::string guest_image;  // the Linux-guest rows' image directory; empty: the build's
  std::string accel = "tcg";  // the Linux-guest rows' QEMU accelerator
};

// `ringfence bench`: the kIOPS table (rows × iodepth), ratios to the bare row, completion
// latency percentiles and CPU per I/O, as Markdown on stdout; progress on stderr.
int run_bench(const BenchArgs& args);

}  // namespace rf::cli
