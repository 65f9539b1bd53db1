/* vmm_example.c: a VMM written in C on ringfence's C API, with a guest in the same process.
 *
 * The VMM maps guest RAM itself (as QEMU does) and describes it to ringfence, opens a disk,
 * creates a sandboxed ring, tells the guest where the ring descriptor is, and runs the device's
 * lifecycle. The guest half knows only guest-physical addresses, the descriptor's layout
 * (docs/abi.md) and two eventfds, as a guest block driver in a VM would; in a KVM VMM the kick
 * fd sits behind KVM_IOEVENTFD and the notify fd behind KVM_IRQFD (docs/integration.md).
 *
 * Usage: vmm_example [--mode passthrough|mediated|both] [--disk PATH]
 * Without --disk it makes a 16 MiB image in $TMPDIR and removes it afterwards. Exit status 0
 * when every step did what it should, 1 otherwise.
 *
 * This file is the source of truth for docs/integration.md; CI builds it against the installed
 * library with pkg-config and with CMake and runs it (tests/install/check-install.sh).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ringfence.h>

#define RAM_BYTES (64ull << 20)
#define DEVICE_WINDOW_GPA 0x100000ull /* 1 MiB: the descriptor, then the rings */
#define WRITE_GPA 0x1000000ull        /* 16 MiB: the data the guest writes */
#define READ_GPA 0x1100000ull         /* 17 MiB: where it reads it back */
#define IO_BYTES (64u << 10)
#define DISK_OFFSET (1u << 20)
#define WAIT_MS 5000

/* ---- The guest: a minimal block driver that reads the descriptor per docs/abi.md ---------- */

struct guest {
  uint8_t* ram; /* guest-physical address g is ram + g: the guest's view of its memory */
  uint64_t ram_bytes;
  int kick_fd, notify_fd; /* in a VM: an MMIO doorbell and an interrupt line */
  /* From the descriptor. */
  uint32_t sq_entries, cq_entries;
  uint32_t *sq_tail, *sq_flags, *sq_array, *cq_head, *cq_tail;
  struct io_uring_sqe* sqes;
  struct io_uring_cqe* cqes;
  uint32_t fixed_file;
  uint64_t disk_bytes;
  uint64_t window_gpa, window_bytes, host_bias;
  uint32_t buffer_index;
  /* The guest's own copies of its ring indices. */
  uint32_t next_tail, next_head;
};

static uint64_t le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

/* The host view of [gpa, gpa + len), or NULL if any of it is outside guest RAM. */
static void* at(const struct guest* g, uint64_t gpa, uint64_t len) {
  if (gpa > g->ram_bytes || len > g->ram_bytes - gpa) return NULL;
  return g->ram + gpa;
}

static int guest_attach(struct guest* g, uint64_t descriptor_gpa) {
  const uint8_t* d = at(g, descriptor_gpa, 192);
  if (d == NULL || le(d, 8) != 0x31444e4952465200ull || le(d + 8, 2) != 1) {
    fprintf(stderr, "guest: no version-1 ring descriptor at %#llx\n", (unsigned long long)descriptor_gpa);
    return -1;
  }
  const uint32_t disk_count = (uint32_t)le(d + 28, 4), window_count = (uint32_t)le(d + 32, 4);
  const uint32_t disk_entry = (uint32_t)le(d + 36, 2), window_entry = (uint32_t)le(d + 38, 2);
  const uint32_t header_bytes = (uint32_t)le(d + 152, 4);
  g->sq_entries = (uint32_t)le(d + 104, 4);
  g->cq_entries = (uint32_t)le(d + 108, 4);
  if (disk_count == 0 || window_count == 0 || disk_entry < 32 || window_entry < 32 || g->sq_entries == 0 ||
      (g->sq_entries & (g->sq_entries - 1)) != 0 || g->cq_entries < g->sq_entries ||
      (g->cq_entries & (g->cq_entries - 1)) != 0) {
    fprintf(stderr, "guest: the descriptor's tables or ring sizes make no sense\n");
    return -1;
  }
  g->sq_tail = at(g, le(d + 64, 8), 4);
  g->sq_flags = at(g, le(d + 72, 8), 4);
  g->sq_array = le(d + 88, 8) == 0 ? NULL : at(g, le(d + 88, 8), 4ull * g->sq_entries);
  g->sqes = at(g, le(d + 96, 8), 64ull * g->sq_entries);
  g->cq_head = at(g, le(d + 112, 8), 4);
  g->cq_tail = at(g, le(d + 120, 8), 4);
  g->cqes = at(g, le(d + 144, 8), 16ull * g->cq_entries);
  if (!g->sq_tail || !g->sq_flags || !g->sqes || !g->cq_head || !g->cq_tail || !g->cqes || (le(d + 88, 8) && !g->sq_array)) {
    fprintf(stderr, "guest: a ring field points outside guest RAM\n");
    return -1;
  }
  const uint8_t* disk = at(g, descriptor_gpa + header_bytes, disk_entry);
  if (disk == NULL) return -1;
  g->fixed_file = (uint32_t)le(disk, 4);
  g->disk_bytes = le(disk + 8, 8);
  /* The window that holds the data buffers: an I/O must lie inside one window. */
  for (uint32_t i = 0; i < window_count; ++i) {
    const uint8_t* w = at(g, descriptor_gpa + header_bytes + (uint64_t)disk_count * disk_entry + (uint64_t)i * window_entry,
                          window_entry);
    if (w == NULL) return -1;
    const uint64_t gpa = le(w, 8), length = le(w + 8, 8);
    if (gpa <= WRITE_GPA && READ_GPA + IO_BYTES <= gpa + length) {
      g->window_gpa = gpa;
      g->window_bytes = length;
      g->buffer_index = (uint32_t)le(w + 16, 4);
      g->host_bias = le(w + 24, 8); /* passthrough: addr = gpa + bias; mediated: 0 */
      g->next_tail = __atomic_load_n(g->sq_tail, __ATOMIC_RELAXED);
      g->next_head = __atomic_load_n(g->cq_head, __ATOMIC_RELAXED);
      return 0;
    }
  }
  fprintf(stderr, "guest: no buffer window holds its data buffers\n");
  return -1;
}

static void guest_submit(struct guest* g, uint8_t opcode, uint64_t disk_offset, uint64_t gpa, uint32_t len,
                         uint64_t user_data) {
  const uint32_t slot = g->next_tail & (g->sq_entries - 1);
  struct io_uring_sqe* sqe = &g->sqes[slot];
  memset(sqe, 0, sizeof *sqe);
  sqe->opcode = opcode;
  sqe->flags = IOSQE_FIXED_FILE;
  sqe->fd = (int32_t)g->fixed_file;
  sqe->off = disk_offset;
  if (opcode != IORING_OP_FSYNC) { /* the kernel refuses an FSYNC with addr or buf_index set */
    sqe->addr = gpa + g->host_bias;
    sqe->len = len;
    sqe->buf_index = (uint16_t)g->buffer_index;
  }
  sqe->user_data = user_data;
  if (g->sq_array != NULL) g->sq_array[slot] = slot;
  __atomic_store_n(g->sq_tail, ++g->next_tail, __ATOMIC_RELEASE);
  /* A full barrier, then the flag: otherwise the device could fall asleep unseen. */
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (__atomic_load_n(g->sq_flags, __ATOMIC_RELAXED) & IORING_SQ_NEED_WAKEUP) {
    const uint64_t one = 1;
    if (write(g->kick_fd, &one, sizeof one) != (ssize_t)sizeof one) perror("guest: kick");
  }
}

/* The next completion, waiting on the notify fd (bounded). Returns 0 and fills *cqe, or -1. */
static int guest_reap(struct guest* g, struct io_uring_cqe* cqe) {
  for (int waited = 0; waited < WAIT_MS; waited += 10) {
    if (__atomic_load_n(g->cq_tail, __ATOMIC_ACQUIRE) != g->next_head) {
      *cqe = g->cqes[g->next_head & (g->cq_entries - 1)];
      __atomic_store_n(g->cq_head, ++g->next_head, __ATOMIC_RELEASE);
      return 0;
    }
    struct pollfd p = {.fd = g->notify_fd, .events = POLLIN};
    if (poll(&p, 1, 10) == 1) {
      uint64_t count;
      if (read(g->notify_fd, &count, sizeof count) < 0 && errno != EAGAIN) perror("guest: notify");
    }
  }
  fprintf(stderr, "guest: no completion within %d ms\n", WAIT_MS);
  return -1;
}

/* One request, start to finish; its result (bytes moved or -errno), or INT32_MIN on timeout. */
static int32_t guest_io(struct guest* g, uint8_t opcode, uint64_t disk_offset, uint64_t gpa, uint32_t len) {
  static uint64_t next_id = 1;
  const uint64_t id = next_id++;
  guest_submit(g, opcode, disk_offset, gpa, len, id);
  struct io_uring_cqe cqe;
  if (guest_reap(g, &cqe) != 0) return INT32_MIN;
  if (cqe.user_data != id) {
    fprintf(stderr, "guest: completion for request %llu, expected %llu\n", (unsigned long long)cqe.user_data,
            (unsigned long long)id);
    return INT32_MIN;
  }
  return cqe.res;
}

/* ---- The VMM ------------------------------------------------------------------------------ */

#define CHECK(call)                                                                              \
  do {                                                                                           \
    const rf_status status_ = (call);                                                            \
    if (status_ != RF_OK) {                                                                      \
      fprintf(stderr, "%s: %s: %s\n", #call, rf_status_name(status_), rf_last_error());          \
      goto out;                                                                                  \
    }                                                                                            \
  } while (0)

#define EXPECT(cond, ...)                \
  do {                                   \
    if (!(cond)) {                       \
      fprintf(stderr, __VA_ARGS__);      \
      fputc('\n', stderr);               \
      goto out;                          \
    }                                    \
  } while (0)

static int run(rf_mode mode, const char* disk_path) {
  const char* name = mode == RF_MODE_PASSTHROUGH ? "passthrough" : "mediated";
  int ok = 0;
  rf_memory* memory = NULL;
  rf_disk* disk = NULL;
  rf_policy* policy = NULL;
  rf_device* device = NULL;

  /* Guest RAM, mapped by the VMM (as it would be for a KVM memory slot), then described. */
  void* ram = mmap(NULL, RAM_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ram == MAP_FAILED) {
    perror("mmap guest RAM");
    return 0;
  }
  const rf_region region = {.gpa = 0, .size = RAM_BYTES, .host = ram};
  CHECK(rf_memory_adopt(&region, 1, &memory));
  CHECK(rf_disk_open(disk_path, 0, &disk));
  /* The built-in policy of the mode, loaded explicitly to show the call (NULL would do). */
  CHECK(rf_policy_load(mode == RF_MODE_PASSTHROUGH ? "blk-passthrough" : "blk-mediated", &policy));

  rf_device_config config = {.struct_size = sizeof config, .mode = mode, .device_window_gpa = DEVICE_WINDOW_GPA,
                             .queue_depth = 16, .policy = policy};
  uint64_t window_bytes = 0;
  CHECK(rf_device_window_size(memory, 1, &config, &window_bytes));
  EXPECT(DEVICE_WINDOW_GPA + window_bytes <= WRITE_GPA, "the device window (%llu bytes) overlaps the data",
         (unsigned long long)window_bytes);
  const rf_disk* disks[] = {disk};
  CHECK(rf_device_create(memory, disks, 1, &config, &device));
  rf_policy_free(policy); /* the device keeps its own copy */
  policy = NULL;
  rf_disk_close(disk); /* and its own handle on the disk */
  disk = NULL;
  CHECK(rf_device_start(device));

  struct guest g = {.ram = ram, .ram_bytes = RAM_BYTES, .kick_fd = rf_device_kick_fd(device),
                    .notify_fd = rf_device_notify_fd(device)};
  EXPECT(guest_attach(&g, rf_device_descriptor_gpa(device)) == 0, "%s: the guest could not attach", name);
  EXPECT(g.window_bytes >= IO_BYTES && g.disk_bytes >= DISK_OFFSET + IO_BYTES, "%s: the disk is too small", name);

  /* Write a pattern, read it back into other memory, compare. */
  for (uint32_t i = 0; i < IO_BYTES; ++i) g.ram[WRITE_GPA + i] = (uint8_t)(i * 7 + mode);
  memset(g.ram + READ_GPA, 0, IO_BYTES);
  int32_t res = guest_io(&g, IORING_OP_WRITE_FIXED, DISK_OFFSET, WRITE_GPA, IO_BYTES);
  EXPECT(res == (int32_t)IO_BYTES, "%s: write: %d", name, res);
  res = guest_io(&g, IORING_OP_FSYNC, 0, 0, 0);
  EXPECT(res == 0, "%s: fsync: %d", name, res);
  res = guest_io(&g, IORING_OP_READ_FIXED, DISK_OFFSET, READ_GPA, IO_BYTES);
  EXPECT(res == (int32_t)IO_BYTES, "%s: read: %d", name, res);
  EXPECT(memcmp(g.ram + WRITE_GPA, g.ram + READ_GPA, IO_BYTES) == 0, "%s: the data read back differs", name);

  /* A hostile request: data "at" a guest address past the end of its RAM. The kernel
   * (passthrough) or the mediator (mediated) refuses it; the VMM carries on. */
  res = guest_io(&g, IORING_OP_READ_FIXED, 0, RAM_BYTES + 0x1000, 4096);
  EXPECT(res == -EFAULT, "%s: a read into memory outside guest RAM gave %d, not -EFAULT", name, res);

  /* Quiesce (a real VMM pauses its vCPUs first), look, resume. */
  CHECK(rf_device_quiesce(device, 1000));
  rf_device_counters counters = {.struct_size = sizeof counters};
  CHECK(rf_device_counters_of(device, &counters));
  EXPECT(counters.state == RF_DEVICE_QUIESCED && counters.in_flight == 0, "%s: quiesced with %llu in flight", name,
         (unsigned long long)counters.in_flight);
  EXPECT(rf_device_start(device) == RF_E_WRONG_STATE, "%s: start while quiesced was not refused", name);
  CHECK(rf_device_resume(device));

  rf_stop_report report = {.struct_size = sizeof report};
  CHECK(rf_device_stop(device, 1000, &report));
  EXPECT(report.released, "%s: the kernel did not release guest RAM", name);
  printf("%s: wrote, synced and read back %u KiB through the guest's ring; a read outside guest RAM got "
         "-EFAULT; quiesced with 0 in flight; stopped (%llu drained, %llu cancelled, RAM released); "
         "%llu completions\n",
         name, IO_BYTES >> 10, (unsigned long long)report.drained, (unsigned long long)report.cancelled,
         (unsigned long long)counters.completions);
  ok = 1;

out:
  rf_device_destroy(device);
  rf_policy_free(policy);
  rf_disk_close(disk);
  if (rf_memory_destroy(memory) != RF_OK) {
    fprintf(stderr, "rf_memory_destroy: %s\n", rf_last_error());
    return 0; /* a device may still use guest RAM: keep it mapped */
  }
  munmap(ram, RAM_BYTES);
  return ok;
}

/* A zero-filled image of `bytes` in $TMPDIR; returns its path (to free) or NULL. */
static char* make_image(uint64_t bytes) {
  const char* dir = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
  char* path = NULL;
  if (asprintf(&path, "%s/vmm_example.XXXXXX", dir) < 0) return NULL;
  const int fd = mkstemp(path);
  if (fd < 0 || ftruncate(fd, (off_t)bytes) != 0) {
    perror("make the disk image");
    if (fd >= 0) close(fd);
    free(path);
    return NULL;
  }
  close(fd);
  return path;
}

int main(int argc, char** argv) {
  const char* mode = "both";
  const char* disk_path = NULL;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
      mode = argv[++i];
    } else if (strcmp(argv[i], "--disk") == 0 && i + 1 < argc) {
      disk_path = argv[++i];
    } else {
      fprintf(stderr, "usage: %s [--mode passthrough|mediated|both] [--disk PATH]\n", argv[0]);
      return 2;
    }
  }
  if (strcmp(mode, "passthrough") != 0 && strcmp(mode, "mediated") != 0 && strcmp(mode, "both") != 0) {
    fprintf(stderr, "--mode must be passthrough, mediated or both (not %s)\n", mode);
    return 2;
  }
  if (rf_abi_version() != RINGFENCE_ABI_VERSION) {
    fprintf(stderr, "built against ringfence ABI %d, but the library is ABI %u\n", RINGFENCE_ABI_VERSION,
            rf_abi_version());
    return 1;
  }
  printf("ringfence %s (ABI %u)\n", rf_version_string(), rf_abi_version());

  char* image = NULL;
  if (disk_path == NULL) {
    image = make_image(16ull << 20);
    if (image == NULL) return 1;
    disk_path = image;
  }
  int ok = 1;
  if (strcmp(mode, "mediated") != 0) ok &= run(RF_MODE_PASSTHROUGH, disk_path);
  if (strcmp(mode, "passthrough") != 0) ok &= run(RF_MODE_MEDIATED, disk_path);
  if (image != NULL) {
    unlink(image);
    free(image);
  }
  return ok ? 0 : 1;
}
