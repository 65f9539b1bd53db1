// cpu_relax: the spin-wait hint (PAUSE on x86) for loops that poll shared memory. Header-only
// with no includes, so the freestanding guest driver uses it too.
#pragma once

namespace rf {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace rf
