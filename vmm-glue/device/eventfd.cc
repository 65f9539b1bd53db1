#include "device/eventfd.h"

#include <poll.h>
#include <unistd.h>

#include <cstdint>

namespace rf {

void signal_eventfd(int fd) {
  const std::uint64_t one = 1;
  (void)!::write(fd, &one, sizeof(one));
}

void consume_eventfd(int fd) {
  std::uint64_t count = 0;
  (void)!::read(fd, &count, sizeof(count));
}

void drain_eventfd(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0) consume_eventfd(fd);
}

}  // namespace rf
