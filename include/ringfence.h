/* ringfence.h: the C API of ringfence, for VMMs written in C (QEMU) or in Rust through bindgen
 * (Firecracker, cloud-hypervisor, crosvm).
 *
 * A device gives a guest a restricted io_uring path to its disks, in one of two modes:
 *   passthrough: the guest's own kernel ring, in its RAM; the device's thread hands the kernel
 *                as many of the guest's SQEs as a bound allows (or, opt-in and unbounded, a
 *                kernel SQPOLL thread takes them all by itself);
 *   mediated:    guest rings in its RAM that a VMM thread validates and feeds to a private ring.
 * Either way the guest finds a ring descriptor at a guest-physical address (docs/abi.md), rings
 * a doorbell (the kick fd) and is told of completions (the notify fd).
 *
 *   rf_memory  guest RAM: regions the library maps (rf_memory_create) or the VMM's own mappings
 *              (rf_memory_adopt)
 *   rf_disk    a disk image or block device (rf_disk_open)
 *   rf_policy  a restriction policy, built-in or from a TOML file (rf_policy_load)
 *   rf_device  a sandboxed ring over memory + disks (rf_device_create), with its lifecycle:
 *              create -> start -> [quiesce -> resume]* -> stop -> destroy
 *
 * docs/integration.md walks through wiring it into a VMM; examples/c-vmm/vmm_example.c is a
 * complete program.
 *
 * Conventions:
 *   - Every call that can fail returns an rf_status. On failure, rf_last_error() returns a
 *     message that names the problem (and, where there is one, the fix), and rf_last_errno()
 *     the errno of the system call that failed: never 0 with RF_E_SYSTEM, and 0 when no system
 *     call failed (a refused argument or configuration). Both are per thread, and valid until
 *     the thread's next failing call. Nothing is half-created: an out-parameter handle is set
 *     only on success.
 *   - Structs that may grow start with `struct_size`: set it to sizeof the struct as your code
 *     was compiled. The library reads (or writes) only that many bytes, so a program built
 *     against an older header keeps working with a newer library; a newer program whose extra
 *     fields are all zero works with an older library, and one that sets a field the library
 *     does not know gets RF_E_INVALID_ARGUMENT (the rule of Linux's copy_struct_from_user).
 *     RF_E_INVALID_ARGUMENT too for a struct_size below the struct's first version
 *     (RF_*_SIZE_VER1: no program was ever built with less) or over 4096 (uninitialised), for
 *     the structs the library reads and those it fills in alike.
 *   - Handles are not thread-safe: one thread at a time drives a device's lifecycle. The getters
 *     and rf_device_counters_of() may be called from other threads, but not while the device is
 *     being stopped or destroyed.
 *   - Getters given NULL return 0, -1 (file descriptors), "" (strings) or RF_DEVICE_STOPPED.
 *   - No call aborts the process or throws; a library bug is reported as RF_E_INTERNAL.
 */
#ifndef RINGFENCE_H
#define RINGFENCE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header. rf_version_string() is the library's. */
#define RINGFENCE_VERSION_MAJOR 0
#define RINGFENCE_VERSION_MINOR 1
#define RINGFENCE_VERSION_PATCH 0

/* Changes when a function, constant or struct field changes meaning or is removed (appending a
 * function, a constant or a trailing struct field does not change it). It is also the shared
 * library's SONAME version: libringfence.so.1. Check rf_abi_version() at start-up. */
#define RINGFENCE_ABI_VERSION 1

#if defined(__GNUC__)
#define RF_API __attribute__((visibility("default")))
#define RF_NODISCARD __attribute__((warn_unused_result))
#else
#define RF_API
#define RF_NODISCARD
#endif

/* ---- Status, errors, versions ---------------------------------------------------------- */

typedef enum rf_status {
  RF_OK = 0,
  RF_E_INVALID_ARGUMENT = 1, /* a NULL pointer, a bad struct_size or flag, a value out of range */
  RF_E_INVALID_CONFIG = 2,   /* a memory layout, disk or device configuration the library refuses */
  RF_E_POLICY = 3,           /* a policy that does not load, lint or fit the device's mode */
  RF_E_SYSTEM = 4,           /* a system call failed: rf_last_errno() says which errno */
  RF_E_KERNEL = 5,           /* the kernel refused a ring step (set-up, registration, restriction,
                                enabling, the self-check); rf_last_errno() where there is one */
  RF_E_WRONG_STATE = 6,      /* a lifecycle call the device's state does not allow */
  RF_E_TIMEOUT = 7,          /* quiesce: requests were still in flight when the time was up */
  RF_E_BROKEN = 8,           /* mediated: the guest broke the ring protocol; stop the device */
  RF_E_BUSY = 9,             /* rf_memory_destroy while a device still uses the memory; rf_disk_open
                                of an image another open holds (for writing, or this one is for
                                writing) */
  RF_E_NO_MEMORY = 10,       /* the library could not allocate */
  RF_E_INTERNAL = 11         /* a library bug; the message says what failed */
} rf_status;

/* "RF_OK", "RF_E_BUSY", ...; "RF_E_UNKNOWN" for a value this library does not know. */
RF_API const char* rf_status_name(rf_status status);
/* The message of this thread's last failed call ("" if none); valid until its next failed call. */
RF_API const char* rf_last_error(void);
/* The errno behind this thread's last failed call, 0 when no system call failed. */
RF_API int rf_last_errno(void);

/* RINGFENCE_ABI_VERSION of the library that is loaded. */
RF_API uint32_t rf_abi_version(void);
/* "0.1.0" and the like: the library's version. */
RF_API const char* rf_version_string(void);

/* ---- Guest memory ----------------------------------------------------------------------- */

typedef struct rf_memory rf_memory;

#define RF_REGION_READ_ONLY 0x1u /* the device may read it, never write it (a disk write's
                                    source, never a read's destination); never a fixed buffer */

/* One region of guest-physical memory. Regions are sorted by gpa and do not overlap; gpa and
 * size are multiples of the page size. */
typedef struct rf_region {
  uint64_t gpa;
  uint64_t size;
  uint32_t flags;    /* RF_REGION_* */
  uint32_t reserved; /* zero */
  void* host;        /* rf_memory_adopt: where the VMM mapped the region (page-aligned).
                        rf_memory_create: must be NULL. rf_memory_region: the mapping. */
  uint64_t memfd_offset; /* rf_memory_region with RF_MEMORY_MEMFD: where the region starts in
                            rf_memory_memfd(); otherwise 0. Set to zero on input. */
} rf_region;

typedef enum rf_memory_backing {
  RF_MEMORY_MEMFD = 1,     /* one sealed memfd, MAP_SHARED: what a KVM memory slot or a guest
                              process can share (rf_memory_memfd) */
  RF_MEMORY_ANONYMOUS = 2, /* private anonymous memory */
  RF_MEMORY_ADOPTED = 3    /* the VMM's own mappings (rf_memory_adopt) */
} rf_memory_backing;

/* Guest RAM the library allocates and maps (zero-filled). */
RF_API RF_NODISCARD rf_status rf_memory_create(const rf_region* regions, size_t count, rf_memory_backing backing,
                                                rf_memory** out);
/* Guest RAM the VMM has already mapped (each region's `host`). The VMM keeps the mappings for as
 * long as the rf_memory lives. Writable regions must be memory the kernel can pin (anonymous,
 * shared memory, a memfd or hugetlbfs; not a file on disk). Refused: unaligned or unmapped host
 * ranges, and host ranges that overlap (an alias would let a read-only region be written). */
RF_API RF_NODISCARD rf_status rf_memory_adopt(const rf_region* regions, size_t count, rf_memory** out);
RF_API size_t rf_memory_region_count(const rf_memory* memory);
/* The region at `index` (in gpa order), with its host mapping. */
RF_API RF_NODISCARD rf_status rf_memory_region(const rf_memory* memory, size_t index, rf_region* out);
/* How the memory is backed; 0 for NULL. */
RF_API rf_memory_backing rf_memory_backing_of(const rf_memory* memory);
/* The memfd behind every region (RF_MEMORY_MEMFD), owned by the memory; -1 otherwise. */
RF_API int rf_memory_memfd(const rf_memory* memory);
/* RF_E_BUSY (and nothing freed) while a device created on it is not destroyed. NULL: RF_OK. */
RF_API RF_NODISCARD rf_status rf_memory_destroy(rf_memory* memory);

/* ---- Disks ------------------------------------------------------------------------------ */

typedef struct rf_disk rf_disk;

#define RF_DISK_READ_ONLY 0x1u       /* the guest may not write it */
#define RF_DISK_BUFFERED 0x2u        /* no O_DIRECT: go through the page cache */
#define RF_DISK_UNBOUNDED_FILE 0x4u  /* register a regular file directly instead of through a loop
                                        device sized to it: a guest write past the end then grows
                                        the file (docs/threat-model.md). Not recommended. */

/* A regular image file (by default attached to an auto-clearing loop device, so the block layer
 * bounds every offset) or a block device. The image must be a non-empty multiple of the logical
 * block size. Opening a file through a loop device needs CAP_SYS_ADMIN.
 * The disk holds an OFD lock on the file for as long as it (or a device using it) lives, as QEMU
 * locks its images: a writable open takes it exclusively, a read-only open shared. So an image
 * open for writing cannot be opened again, and one open read-only cannot be opened for writing:
 * RF_E_BUSY (errno EAGAIN), from this process or any other that locks the same way. */
RF_API RF_NODISCARD rf_status rf_disk_open(const char* path, uint32_t flags, rf_disk** out);
RF_API uint64_t rf_disk_size(const rf_disk* disk);
RF_API uint32_t rf_disk_block_size(const rf_disk* disk);
/* "/tmp/disk.img via /dev/loop3 (bounded by the block layer)" and the like; owned by the disk. */
RF_API const char* rf_disk_describe(const rf_disk* disk);
/* Devices hold their own handle on the disk: a disk may be closed once its devices are created. */
RF_API void rf_disk_close(rf_disk* disk);

/* ---- Policies --------------------------------------------------------------------------- */

typedef struct rf_policy rf_policy;

typedef enum rf_mode {
  RF_MODE_PASSTHROUGH = 1, /* the same numbers as the descriptor's `mode` field */
  RF_MODE_MEDIATED = 2
} rf_mode;

/* A built-in policy by name ("blk-passthrough", "blk-passthrough-ro", "blk-mediated") or a TOML
 * file (docs/policy-format.md): parsed and linted against the running kernel; an error fails
 * with RF_E_POLICY and every diagnostic in rf_last_error(). Built-in copies are installed under
 * <prefix>/share/ringfence/policies. */
RF_API RF_NODISCARD rf_status rf_policy_load(const char* name_or_path, rf_policy** out);
/* The same for policy text held in memory (`length` bytes; `source_name` appears in messages). */
RF_API RF_NODISCARD rf_status rf_policy_parse(const char* text, size_t length, const char* source_name,
                                               rf_policy** out);
RF_API const char* rf_policy_name(const rf_policy* policy);
RF_API rf_mode rf_policy_mode(const rf_policy* policy);
/* The linter's warnings, one per line ("" if none); owned by the policy. */
RF_API const char* rf_policy_warnings(const rf_policy* policy);
/* Devices keep their own compiled copy: a policy may be freed once its devices are created. */
RF_API void rf_policy_free(rf_policy* policy);

/* ---- Devices ---------------------------------------------------------------------------- */

typedef struct rf_device rf_device;

#define RF_DEVICE_PIN_SQPOLL 0x1u   /* passthrough: pin the thread that takes the guest's SQEs (the
                                       device thread, or the SQPOLL thread) to `sqpoll_cpu` */
#define RF_DEVICE_PIN_MEDIATOR 0x2u /* mediated: pin the mediator thread to `mediator_cpu` */
/* passthrough: let a kernel SQPOLL thread take the guest's SQEs by itself instead of the device
 * thread. UNBOUNDED: the kernel then takes whatever the guest publishes, so a guest can make it
 * hold any number of requests and overflowed completions (kernel memory charged to the VMM)
 * until the device's watchdog sees the bound crossed and closes the ring (RF_BROKEN_IN_FLIGHT_BOUND);
 * each doorbell after sqpoll_idle_ms costs that much host CPU again. Run such a VMM in its own
 * memory cgroup (docs/threat-model.md). */
#define RF_DEVICE_KERNEL_SQPOLL 0x4u

/* The largest queue_depth: the CQ (twice the depth) and a mediated device's private ring must fit
 * the kernel's ring limits. */
#define RF_DEVICE_MAX_QUEUE_DEPTH 16384u

typedef struct rf_device_config {
  uint32_t struct_size;       /* sizeof(rf_device_config); at least RF_DEVICE_CONFIG_SIZE_VER1 */
  uint32_t mode;              /* rf_mode */
  uint64_t device_window_gpa; /* page-aligned, inside one writable region; the descriptor goes
                                 here, the rings after it (rf_device_window_size) */
  uint32_t queue_depth;       /* SQ entries, a power of two up to RF_DEVICE_MAX_QUEUE_DEPTH (the CQ
                                 gets twice as many); 0: 64 */
  uint32_t flags;             /* RF_DEVICE_* */
  const rf_policy* policy;    /* NULL: the built-in policy of the mode (blk-passthrough, or
                                 blk-passthrough-ro when every disk is read-only; blk-mediated) */
  uint32_t sqpoll_cpu;        /* passthrough, with RF_DEVICE_PIN_SQPOLL: a CPU this process may run
                                 on (RF_E_INVALID_CONFIG otherwise) */
  uint32_t sqpoll_idle_ms;    /* passthrough with RF_DEVICE_KERNEL_SQPOLL: how long the SQPOLL
                                 thread polls before it sleeps; 0: 1000 */
  const rf_device* share_sqpoll_with; /* passthrough with RF_DEVICE_KERNEL_SQPOLL: serve this ring
                                 from that device's SQPOLL thread (IORING_SETUP_ATTACH_WQ, which
                                 also needs RF_DEVICE_KERNEL_SQPOLL) instead of starting one */
  uint32_t mediator_cpu;      /* mediated, with RF_DEVICE_PIN_MEDIATOR: a CPU this process may run
                                 on (RF_E_INVALID_CONFIG otherwise) */
  uint32_t mediator_poll_us;  /* mediated: how long the mediator polls before it sleeps; 0: 50 */
  uint32_t device_poll_us;    /* passthrough without RF_DEVICE_KERNEL_SQPOLL: how long the device
                                 thread polls the guest's SQ before it sleeps; 0: 50 */
  uint32_t reserved;          /* zero */
} rf_device_config;

/* rf_device_config up to and including mediator_poll_us: the first version of ABI 1. */
#define RF_DEVICE_CONFIG_SIZE_VER1 56u

typedef enum rf_device_state {
  RF_DEVICE_CREATED = 0,
  RF_DEVICE_RUNNING = 1,
  RF_DEVICE_QUIESCED = 2,
  RF_DEVICE_STOPPED = 3
} rf_device_state;

/* How many bytes of guest RAM, from config->device_window_gpa, a device with `disk_count` disks
 * over `memory` will take (the descriptor, then the rings): reserve them in the guest's memory
 * map and never use them for data. Refuses what rf_device_create would refuse of the same
 * arguments (a disk count outside 1..64, a queue depth, a CPU), except the window's place. */
RF_API RF_NODISCARD rf_status rf_device_window_size(const rf_memory* memory, size_t disk_count,
                                                     const rf_device_config* config, uint64_t* bytes);

/* Builds, registers (disks as fixed files, writable guest RAM as fixed buffers), restricts and
 * enables the ring, checks that the kernel enforces the restrictions, and writes the descriptor
 * into guest RAM. The device window must lie in one writable region and overlap no other live
 * device's window on the same memory (RF_E_INVALID_CONFIG); a window whose ring a stopped
 * device could not see released (rf_stop_report.released 0) is never given out again. The device takes its own handle on each disk and its own copy of the policy;
 * `memory` must outlive it. In passthrough the kernel's SQPOLL thread reads the guest's SQ from
 * here on. The device does nothing for the guest until rf_device_start(). */
RF_API RF_NODISCARD rf_status rf_device_create(rf_memory* memory, const rf_disk* const* disks, size_t disk_count,
                                                const rf_device_config* config, rf_device** out);

RF_API rf_mode rf_device_mode(const rf_device* device);
RF_API rf_device_state rf_device_state_of(const rf_device* device);
/* Tell the guest this address (boot parameters, a device tree node, an ACPI table). */
RF_API uint64_t rf_device_descriptor_gpa(const rf_device* device);
RF_API uint64_t rf_device_window_bytes(const rf_device* device);
/* The doorbell eventfd: the guest's kick. Point KVM_IOEVENTFD at it. Owned by the device. */
RF_API int rf_device_kick_fd(const rf_device* device);
/* The completion eventfd. Point KVM_IRQFD at it. Owned by the device. */
RF_API int rf_device_notify_fd(const rf_device* device);

/* Created -> Running: starts the device thread (passthrough; with RF_DEVICE_KERNEL_SQPOLL, the
 * watchdog that also turns doorbells into SQPOLL wake-ups) or the mediator (mediated). */
RF_API RF_NODISCARD rf_status rf_device_start(rf_device* device);
/* Running -> Quiesced: takes no more guest requests and returns once every request taken has
 * its completion in the guest CQ (or, passthrough, in the kernel's overflow list), as the
 * kernel's own counters say. SQEs the guest publishes meanwhile wait in its SQ. With
 * RF_DEVICE_KERNEL_SQPOLL pause the guest's vCPUs first (the kernel reads the SQ by itself).
 * RF_E_TIMEOUT or RF_E_BROKEN leave the device Running. */
RF_API RF_NODISCARD rf_status rf_device_quiesce(rf_device* device, uint32_t timeout_ms);
/* Quiesced -> Running. */
RF_API RF_NODISCARD rf_status rf_device_resume(rf_device* device);

typedef struct rf_stop_report {
  uint32_t struct_size; /* sizeof(rf_stop_report); at least RF_STOP_REPORT_SIZE_VER1 */
  uint32_t released;    /* 1: the kernel is done with guest RAM (pinned pages released, no request
                           can still read or write it). 0: it had not freed the ring 10 s after
                           closing it; requests may still write guest RAM: keep it mapped and
                           do not reuse it */
  uint64_t drained;     /* requests that completed while stop waited */
  uint64_t cancelled;   /* requests that did not: mediated, each got a -ECANCELED completion;
                           passthrough, the kernel completed or cancelled each as it closed */
  uint32_t counted;     /* passthrough: 0 when the kernel's counters could not be read */
  uint32_t reserved;
} rf_stop_report;

/* rf_stop_report in the first version of ABI 1 (all of it). */
#define RF_STOP_REPORT_SIZE_VER1 32u

/* Any state -> Stopped: waits up to `drain_timeout_ms` for requests in flight, stops the thread,
 * closes the kernel ring and waits (up to 10 s) until the kernel has freed it. `report` may be
 * NULL. A later call does nothing and reports what the first one did. */
RF_API RF_NODISCARD rf_status rf_device_stop(rf_device* device, uint32_t drain_timeout_ms, rf_stop_report* report);

/* bindgen leaves this out of Rust bindings (it cannot evaluate UINT64_MAX, and would turn a
 * 0xffffffffffffffff literal into an i32 -1): declare it as u64::MAX (docs/integration.md). */
#define RF_COUNT_UNKNOWN UINT64_MAX

typedef enum rf_broken_reason {
  RF_BROKEN_NONE = 0,
  RF_BROKEN_SQ_TAIL_JUMP = 1,  /* the guest's SQ tail ran more than the SQ size ahead of the head */
  RF_BROKEN_CQ_HEAD_JUMP = 2,  /* the guest's CQ head ran ahead of the published tail */
  RF_BROKEN_KERNEL_RING = 3,   /* the kernel ring failed, or its counters disagreed with the device's */
  RF_BROKEN_IN_FLIGHT_BOUND = 4 /* passthrough with RF_DEVICE_KERNEL_SQPOLL: the guest made the kernel
                                  hold more than `in_flight_bound` requests and overflowed
                                  completions (or kept its counters unreadable); the watchdog closed
                                  the ring */
} rf_broken_reason;

typedef struct rf_device_counters {
  uint32_t struct_size;        /* sizeof(rf_device_counters); at least RF_DEVICE_COUNTERS_SIZE_VER1 */
  uint32_t state;              /* rf_device_state */
  uint64_t in_flight;          /* requests taken and not completed, from the kernel's (passthrough)
                                  or the mediator's own counts, never from guest memory;
                                  RF_COUNT_UNKNOWN if not known */
  uint64_t completions;        /* completions posted to the guest since create; or RF_COUNT_UNKNOWN */
  uint64_t consumed;           /* guest SQEs taken (passthrough: by the kernel, from its counters;
                                  RF_COUNT_UNKNOWN if not known) */
  uint64_t submitted;          /* mediated: SQEs that passed validation and went to the kernel;
                                  passthrough: SQEs the device thread handed to the kernel */
  uint64_t refused;            /* mediated: SQEs refused by a validation rule (docs/abi.md) */
  uint64_t cancelled;          /* mediated: completed with -ECANCELED by rf_device_stop */
  uint32_t broken;             /* rf_broken_reason */
  uint32_t reserved;
  uint64_t wakeups;            /* passthrough: doorbells the device took */
  uint64_t in_flight_bound;    /* the most requests in flight (plus, passthrough, overflowed
                                  completions) the kernel may hold for the device: the CQ size */
  uint64_t throttled;          /* passthrough device thread: times the bound held published SQEs
                                  back (a guest within its SQ never meets it) */
} rf_device_counters;

/* rf_device_counters up to and including wakeups: the first version of ABI 1. */
#define RF_DEVICE_COUNTERS_SIZE_VER1 72u

RF_API RF_NODISCARD rf_status rf_device_counters_of(const rf_device* device, rf_device_counters* out);

/* Stops the device (with no drain time) if it is not stopped, then frees it. NULL: nothing. */
RF_API void rf_device_destroy(rf_device* device);

#ifdef __cplusplus
}
#endif

#endif /* RINGFENCE_H */
