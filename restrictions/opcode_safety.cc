#include "restrictions/opcode_safety.h"

#include <array>

namespace rf::policy {

namespace {

using R = OpcodeRisk;

constexpr std::string_view kHostPointer = "the guest could make the kernel read or write any memory of the VMM process";
constexpr std::string_view kDescriptors = "the guest could gain, replace or leak descriptors of the VMM process";
constexpr std::string_view kPaths = "the guest could act on the host's filesystem through paths read from VMM memory";
constexpr std::string_view kResize = "the guest could grow, shrink or punch its image file at any offset, outside the disk's size";

// Indexed by opcode number (the table in ring/opcodes.cc has the names).
constexpr std::array<OpcodeSafety, 65> kTable = {{
    /* 0 NOP */ {R::BlockIo, "does nothing and completes with 0", ""},
    /* 1 READV */ {R::UncheckedAddress, "reads into buffers listed in an iovec array at sqe->addr, a host address the kernel does not check", kHostPointer},
    /* 2 WRITEV */ {R::UncheckedAddress, "writes from buffers listed in an iovec array at sqe->addr, a host address the kernel does not check", kHostPointer},
    /* 3 FSYNC */ {R::BlockIo, "flushes a registered file to stable storage", ""},
    /* 4 READ_FIXED */ {R::BlockIo, "reads a registered file into a registered buffer; the kernel checks the range lies inside one buffer (-EFAULT otherwise)", ""},
    /* 5 WRITE_FIXED */ {R::BlockIo, "writes a registered buffer to a registered file; the kernel checks the buffer range but not the file offset, so a write past the end grows an image file", ""},
    /* 6 POLL_ADD */ {R::BlockIo, "polls a registered file for readiness", ""},
    /* 7 POLL_REMOVE */ {R::BlockIo, "cancels or updates one of this ring's poll requests", ""},
    /* 8 SYNC_FILE_RANGE */ {R::BlockIo, "writes back a range of a registered file", ""},
    /* 9 SENDMSG */ {R::UncheckedAddress, "sends a message described by a struct msghdr at a host address", kHostPointer},
    /* 10 RECVMSG */ {R::UncheckedAddress, "receives into a struct msghdr at a host address", kHostPointer},
    /* 11 TIMEOUT */ {R::UncheckedAddress, "arms a timer whose struct __kernel_timespec is read from sqe->addr", kHostPointer},
    /* 12 TIMEOUT_REMOVE */ {R::UncheckedAddress, "removes or updates a timer; an update reads a timespec from a host address", kHostPointer},
    /* 13 ACCEPT */ {R::Descriptors, "accepts a connection, creating a descriptor and writing the peer address to a host pointer", kDescriptors},
    /* 14 ASYNC_CANCEL */ {R::BlockIo, "cancels requests of this ring", ""},
    /* 15 LINK_TIMEOUT */ {R::UncheckedAddress, "bounds a linked request with a timespec read from a host address", kHostPointer},
    /* 16 CONNECT */ {R::UncheckedAddress, "connects a socket to a struct sockaddr read from a host address", kHostPointer},
    /* 17 FALLOCATE */ {R::ResizesDisk, "allocates, punches or extends a registered file", kResize},
    /* 18 OPENAT */ {R::Descriptors, "opens a path read from a host pointer, creating a descriptor", kDescriptors},
    /* 19 CLOSE */ {R::Descriptors, "closes a descriptor or empties a fixed-file slot", kDescriptors},
    /* 20 FILES_UPDATE */ {R::Descriptors, "replaces registered files with descriptors read from a host pointer", kDescriptors},
    /* 21 STATX */ {R::UncheckedAddress, "reads a path and writes a struct statx through host pointers", kHostPointer},
    /* 22 READ */ {R::UncheckedAddress, "reads into sqe->addr, a host address the kernel does not check", kHostPointer},
    /* 23 WRITE */ {R::UncheckedAddress, "writes from sqe->addr, a host address the kernel does not check", kHostPointer},
    /* 24 FADVISE */ {R::BlockIo, "gives the page cache an access-pattern hint for a registered file", ""},
    /* 25 MADVISE */ {R::UncheckedAddress, "applies madvise(2) to a host address range (MADV_DONTNEED would discard VMM memory)", kHostPointer},
    /* 26 SEND */ {R::UncheckedAddress, "sends from a host address on a socket", kHostPointer},
    /* 27 RECV */ {R::UncheckedAddress, "receives into a host address from a socket", kHostPointer},
    /* 28 OPENAT2 */ {R::Descriptors, "opens a path read from a host pointer, creating a descriptor", kDescriptors},
    /* 29 EPOLL_CTL */ {R::UncheckedAddress, "changes an epoll set using a struct epoll_event at a host address", kHostPointer},
    /* 30 SPLICE */ {R::OutsideDisks, "moves data between two descriptors; the input need not be a registered file", "the guest could read from any descriptor number the VMM process has open"},
    /* 31 PROVIDE_BUFFERS */ {R::UncheckedAddress, "hands the kernel a host address range as a group of buffers", kHostPointer},
    /* 32 REMOVE_BUFFERS */ {R::BlockIo, "removes a provided-buffer group of this ring", ""},
    /* 33 TEE */ {R::OutsideDisks, "duplicates data between two pipes named by raw descriptors", "the guest could read from pipes the VMM process has open"},
    /* 34 SHUTDOWN */ {R::OutsideDisks, "shuts down a socket", "the guest could shut down the VMM's sockets"},
    /* 35 RENAMEAT */ {R::OutsideDisks, "renames a path read from host pointers", kPaths},
    /* 36 UNLINKAT */ {R::OutsideDisks, "removes a path read from a host pointer", kPaths},
    /* 37 MKDIRAT */ {R::OutsideDisks, "creates a directory at a path read from a host pointer", kPaths},
    /* 38 SYMLINKAT */ {R::OutsideDisks, "creates a symbolic link from paths read from host pointers", kPaths},
    /* 39 LINKAT */ {R::OutsideDisks, "creates a hard link from paths read from host pointers", kPaths},
    /* 40 MSG_RING */ {R::OutsideDisks, "posts a completion to, or passes a registered file to, another ring", "the guest could reach other rings of the VMM and hand them its files"},
    /* 41 FSETXATTR */ {R::UncheckedAddress, "sets an extended attribute whose name and value are read from host pointers", kHostPointer},
    /* 42 SETXATTR */ {R::UncheckedAddress, "sets an extended attribute on a path read from a host pointer", kHostPointer},
    /* 43 FGETXATTR */ {R::UncheckedAddress, "reads an extended attribute into a host pointer", kHostPointer},
    /* 44 GETXATTR */ {R::UncheckedAddress, "reads an extended attribute of a path into a host pointer", kHostPointer},
    /* 45 SOCKET */ {R::Descriptors, "creates a socket descriptor", kDescriptors},
    /* 46 URING_CMD */ {R::UncheckedAddress, "passes a driver-specific command (NVMe passthrough, socket options) whose payload can carry host addresses", kHostPointer},
    /* 47 SEND_ZC */ {R::UncheckedAddress, "sends from a host address without copying", kHostPointer},
    /* 48 SENDMSG_ZC */ {R::UncheckedAddress, "sends a struct msghdr at a host address without copying", kHostPointer},
    /* 49 READ_MULTISHOT */ {R::UncheckedAddress, "reads repeatedly into provided buffers, which are host addresses", kHostPointer},
    /* 50 WAITID */ {R::UncheckedAddress, "waits for a process and writes a siginfo to a host address", kHostPointer},
    /* 51 FUTEX_WAIT */ {R::UncheckedAddress, "waits on a futex word at a host address", kHostPointer},
    /* 52 FUTEX_WAKE */ {R::UncheckedAddress, "wakes waiters of a futex word at a host address", kHostPointer},
    /* 53 FUTEX_WAITV */ {R::UncheckedAddress, "waits on futex words listed at a host address", kHostPointer},
    /* 54 FIXED_FD_INSTALL */ {R::Descriptors, "installs a registered file into the process's descriptor table", kDescriptors},
    /* 55 FTRUNCATE */ {R::ResizesDisk, "truncates or extends a registered file to any size", kResize},
    /* 56 BIND */ {R::UncheckedAddress, "binds a socket to a struct sockaddr read from a host address", kHostPointer},
    /* 57 LISTEN */ {R::OutsideDisks, "makes a socket listen", "the guest could open the VMM's sockets to connections"},
    /* 58 RECV_ZC */ {R::OutsideDisks, "receives network data without copying", "the guest could receive on the VMM's sockets"},
    /* 59 EPOLL_WAIT */ {R::UncheckedAddress, "waits on an epoll set and writes events to a host address", kHostPointer},
    /* 60 READV_FIXED */ {R::UncheckedAddress, "reads into registered buffers listed in an iovec array at sqe->addr; the array's own address is not checked", kHostPointer},
    /* 61 WRITEV_FIXED */ {R::UncheckedAddress, "writes from registered buffers listed in an iovec array at sqe->addr; the array's own address is not checked", kHostPointer},
    /* 62 PIPE */ {R::Descriptors, "creates a pipe and writes its descriptors to a host address", kDescriptors},
    /* 63 NOP128 */ {R::BlockIo, "does nothing (a 128-byte SQE)", ""},
    /* 64 URING_CMD128 */ {R::UncheckedAddress, "passes a driver-specific 128-byte command whose payload can carry host addresses", kHostPointer},
}};

constexpr OpcodeSafety kUnknown{R::Unknown, "is not known to ringfence", "ringfence cannot say what it would let a guest do"};

}  // namespace

const OpcodeSafety& opcode_safety(std::uint8_t op) { return op < kTable.size() ? kTable[op] : kUnknown; }

std::string_view risk_name(OpcodeRisk risk) {
  switch (risk) {
    case R::BlockIo: return "block I/O";
    case R::UncheckedAddress: return "unchecked host address";
    case R::Descriptors: return "creates or changes descriptors";
    case R::OutsideDisks: return "reaches beyond the registered disks";
    case R::ResizesDisk: return "resizes the disk";
    case R::Unknown: return "unknown";
  }
  return "unknown";
}

}  // namespace rf::policy
