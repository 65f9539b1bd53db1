#include "support/allocation_counter.h"

#include <cstdlib>
#include <new>

namespace rf::test {
namespace {

thread_local std::uint64_t allocations = 0;

void* counted(std::size_t bytes) {
  ++allocations;
  if (void* p = std::malloc(bytes == 0 ? 1 : bytes)) return p;
  throw std::bad_alloc();
}

void* counted_aligned(std::size_t bytes, std::align_val_t alignment) {
  ++allocations;
  const auto align = static_cast<std::size_t>(alignment);
  const std::size_t rounded = (bytes + align - 1) / align * align;  // aligned_alloc wants a multiple
  if (void* p = std::aligned_alloc(align, rounded == 0 ? align : rounded)) return p;
  throw std::bad_alloc();
}

}  // namespace

std::uint64_t thread_allocations() { return allocations; }

}  // namespace rf::test

void* operator new(std::size_t bytes) { return rf::test::counted(bytes); }
void* operator new[](std::size_t bytes) { return rf::test::counted(bytes); }
void* operator new(std::size_t bytes, std::align_val_t a) { return rf::test::counted_aligned(bytes, a); }
void* operator new[](std::size_t bytes, std::align_val_t a) { return rf::test::counted_aligned(bytes, a); }
void* operator new(std::size_t bytes, const std::nothrow_t&) noexcept {
  try {
    return rf::test::counted(bytes);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t bytes, const std::nothrow_t&) noexcept {
  try {
    return rf::test::counted(bytes);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
