// The queue thread's seccomp filter, tried in a child process: the calls it lists pass with the
// descriptors it names, any other call or descriptor kills the process with SIGSYS, and the
// filter binds only the thread that installed it.
#include "restrictions/queue_thread_seccomp.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <thread>

namespace rf::policy {
namespace {

// In a fresh thread: installs the filter over eventfds standing in for the queue's descriptors,
// then runs `body`; exits 0 if the thread came back.
template <typename Body>
[[noreturn]] void in_filtered_thread(Body body) {
  QueueThreadFds fds{::eventfd(0, EFD_NONBLOCK), ::eventfd(0, EFD_NONBLOCK), ::eventfd(0, EFD_NONBLOCK), ::eventfd(0, EFD_NONBLOCK), ::eventfd(0, EFD_NONBLOCK)};
  std::thread t([&] {
    if (install_queue_thread_seccomp(fds) != 0) ::_exit(2);
    body(fds);
  });
  t.join();
  ::_exit(0);
}

TEST(QueueThreadSeccompTest, TheListedCallsPassWithTheirOwnDescriptors) {
  EXPECT_EXIT(in_filtered_thread([](const QueueThreadFds& fds) {
                const std::uint64_t one = 1;
                if (::write(fds.call, &one, sizeof one) != sizeof one) ::_exit(3);
                std::uint64_t n = 0;
                if (::read(fds.kick, &n, sizeof n) >= 0 || errno != EAGAIN) ::_exit(4);
              }),
              ::testing::ExitedWithCode(0), "");
}

TEST(QueueThreadSeccompTest, AnyOtherCallKillsTheProcess) {
  EXPECT_EXIT(in_filtered_thread([](const QueueThreadFds&) { ::syscall(SYS_getppid); }), ::testing::KilledBySignal(SIGSYS), "");
  EXPECT_EXIT(in_filtered_thread([](const QueueThreadFds&) { ::syscall(SYS_openat, AT_FDCWD, "/etc/passwd", 0); }),
              ::testing::KilledBySignal(SIGSYS), "");
}

TEST(QueueThreadSeccompTest, AListedCallOnAnotherDescriptorKillsTheProcess) {
#if !defined(__SANITIZE_ADDRESS__)
  // (AddressSanitizer builds let read and write take any descriptor: the runtime's memory probe
  // writes into a pipe of its own. Release builds name the call eventfd.)
  EXPECT_EXIT(in_filtered_thread([](const QueueThreadFds&) {
                const char byte = 'x';
                ::syscall(SYS_write, 2, &byte, 1);  // stderr is not the call eventfd
              }),
              ::testing::KilledBySignal(SIGSYS), "");
#endif
  EXPECT_EXIT(in_filtered_thread([](const QueueThreadFds& fds) { ::syscall(SYS_io_uring_enter, fds.kick, 0, 0, 0, nullptr, 0); }),
              ::testing::KilledBySignal(SIGSYS), "");
}

TEST(QueueThreadSeccompTest, ExecutableMappingsKillTheProcess) {
  EXPECT_EXIT(in_filtered_thread([](const QueueThreadFds&) {
                ::syscall(SYS_mmap, nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
              }),
              ::testing::KilledBySignal(SIGSYS), "");
}

// A filtered thread, then a call the filter would refuse, made by the main thread.
[[noreturn]] void filter_one_thread_then_call_from_main() {
  QueueThreadFds fds{::eventfd(0, EFD_NONBLOCK), ::eventfd(0, EFD_NONBLOCK), ::eventfd(0, EFD_NONBLOCK), ::eventfd(0, EFD_NONBLOCK), ::eventfd(0, EFD_NONBLOCK)};
  std::thread t([&] {
    if (install_queue_thread_seccomp(fds) != 0) ::_exit(2);
  });
  t.join();
  ::_exit(::syscall(SYS_getppid) > 0 ? 0 : 5);
}

TEST(QueueThreadSeccompTest, TheFilterBindsOnlyTheThreadThatInstalledIt) {
  EXPECT_EXIT(filter_one_thread_then_call_from_main(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace rf::policy
