// Fresh pages for a ring placed in caller memory (IORING_SETUP_NO_MMAP), before the kernel sees
// them.
//
// The kernel frees a closed ring asynchronously, and on Linux 6.18 its last step still commits
// the CQ tail into the old ring memory after the ring's SQPOLL thread has exited. A new ring set
// up in the same memory at that moment can see that stale tail: its self-check then fails ("the
// probe SQE did not complete"), about once in a few hundred back-to-back re-creations (seen by
// devices re-created in one guest window, and by the ring set-up micro-benchmark). Giving the
// memory new pages leaves such a late write in the old pages, which the old ring still pins and
// nobody maps any more. RingCore::create does this to every caller memory it is given, so every
// user (devices, the C API, the benchmarks) gets the same answer.
#pragma once

#include <cstddef>
#include <span>

namespace rf {

// Replaces the whole pages of `memory` (page-aligned) with new zero pages: MADV_REMOVE for shared
// memory (a memfd, shmem, hugetlbfs), MADV_DONTNEED for private anonymous memory. Where neither
// applies (mlocked memory) the bytes are only zeroed. Whatever `memory` held is gone.
void give_fresh_pages(std::span<std::byte> memory);

}  // namespace rf
