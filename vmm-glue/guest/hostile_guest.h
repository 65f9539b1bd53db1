// The guest side of `ringfence fuzz`: a hostile guest that acts out a FuzzProgram (written by
// the VMM into guest RAM) against its device's rings, with no regard for the ring protocol.
// Freestanding like the driver; it uses the driver only to find the rings (attach), then
// writes ring words, SQEs and index entries directly.
#pragma once

#include <cstdint>

#include "guest/driver.h"
#include "guest/fuzz_program.h"
#include "guest/platform.h"

namespace rf::guest {

// Copies the program at `program_gpa` once, then runs every action in order. Returns the status
// it also writes into `report`.
FuzzStatus run_fuzz_program(const Driver& driver, const Platform& platform, std::uint64_t program_gpa,
                            FuzzGuestReport& report);

const char* fuzz_status_name(FuzzStatus status);

}  // namespace rf::guest
