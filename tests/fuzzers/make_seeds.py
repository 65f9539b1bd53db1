#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzzers/corpus/<target>/, one file per seed.

The seeds are the cases a person would write first: valid inputs for each path, and one input
per refusal. libFuzzer mutates from them; the replay build runs them as regression tests. Run
it again after changing a target's input format (it rewrites only the seeds it names; crash
reproducers added by hand stay).
"""
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent / "corpus"
PAGE = 4096


def write(target, name, data):
    d = HERE / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def sqe(opcode, flags=1, fd=0, off=0, addr=0, length=0, user_data=0, ioprio=0, op_flags=0, buf_index=0):
    # struct io_uring_sqe as vmm-glue/abi/ring_entries.h restates it: 64 bytes.
    return struct.pack("<BBHiQQIIQHHiQQ", opcode, flags, ioprio, fd, off, addr, length, op_flags, user_data,
                       buf_index, 0, 0, 0, 0)


READ_FIXED, WRITE_FIXED, FSYNC, NOP, READ = 4, 5, 3, 0, 22

# --- policy_parser: the built-in policies, and the mistakes people make. ---
policies = pathlib.Path(__file__).resolve().parents[2] / "restrictions" / "policies"
for p in sorted(policies.glob("*.toml")):
    write("policy_parser", p.stem, p.read_bytes())
write("policy_parser", "unknown-opcode", b'[policy]\nname = "x"\nformat = 1\nmode = "passthrough"\n'
      b'[sqe]\nallowed_opcodes = ["READ_FIXD"]\nrequired_flags = ["FIXED_FILE"]\nallowed_flags = []\n'
      b'[register]\nallowed_opcodes = []\n')
write("policy_parser", "unchecked-address", b'[policy]\nname = "x"\nformat = 1\nmode = "passthrough"\n'
      b'[sqe]\nallowed_opcodes = ["READ", "WRITEV_FIXED", "URING_CMD"]\nrequired_flags = []\n'
      b'allowed_flags = ["IO_LINK", "CQE_SKIP_SUCCESS"]\n[register]\nallowed_opcodes = ["REGISTER_BUFFERS"]\n')
write("policy_parser", "wrong-types", b'[policy]\nname = 7\nformat = "1"\nmode = "sideways"\nextra = true\n'
      b'[sqe]\nallowed_opcodes = "READ_FIXED"\n')
write("policy_parser", "syntax-error", b'[policy\nname = "x\n')
write("policy_parser", "empty", b"")

# --- guest_memory: [start, count, then per region kind (,base,bytes | ,pages), read_only],
# then the piece size, then queries [kind, (region, delta | gpa, bytes | region, offset), len...]. ---
def region(kind, pages=0, read_only=0):
    return bytes([kind, pages, read_only]) if kind != 0 else None


def query(kind, region_index, delta, small, length, access):
    return bytes([kind, region_index]) + struct.pack("<h", delta) + bytes([small]) + struct.pack("<I", length) + bytes([access, 1])


adjacent = bytes([0, 3]) + region(1, 1, 0) + region(4, 3, 0) + region(2, 0, 1) + bytes([1])
queries = b"".join([query(1, 0, 0, 1, 512, 0), query(2, 0, -256, 1, 512, 0), query(2, 1, -100, 1, 4096, 1),
                    query(1, 2, 0, 1, 512, 1), query(3, 1, 0, 1, 8192, 0)])
write("guest_memory", "adjacent-and-read-only", adjacent + queries)
write("guest_memory", "near-2-64", bytes([2, 2]) + region(1, 3, 0) + region(1, 3, 0) + bytes([0]) + queries)
write("guest_memory", "overlap", bytes([1, 2]) + region(1, 2, 0) + region(7, 2, 0) + bytes([0]))
write("guest_memory", "unaligned", bytes([1, 1]) + region(6, 1, 0) + bytes([0]))
write("guest_memory", "raw-region", bytes([0, 1, 0]) + struct.pack("<QQ", 0x1000, 0xFFFFFFFFFFFFF000) + bytes([0, 0]))

# --- sqe_validator: [allowed ops bits, allowed flags, required flags] then the SQE.
# Memory: 0..64K and 64K..128K writable (pieces of 32K), 256K..272K read-only.
# Disks: 0 = 1 MiB (512-byte blocks), 1 = 64K read-only (4096), 2 = 4K. Max transfer 64K. ---
mediated = bytes([0b111, 0, 1])
cases = {
    "read": sqe(READ_FIXED, addr=0x1000, length=4096, off=8192),
    "write": sqe(WRITE_FIXED, addr=0x2000, length=512, off=512),
    "fsync": sqe(FSYNC, off=123, addr=0xdead, length=7),
    "opcode-read": sqe(READ, addr=0x1000, length=4096),
    "opcode-nop": sqe(NOP),
    "flags-link": sqe(READ_FIXED, flags=1 | 4, addr=0x1000, length=4096),
    "flags-no-fixed-file": sqe(READ_FIXED, flags=0, addr=0x1000, length=4096),
    "file-index": sqe(READ_FIXED, fd=3, addr=0x1000, length=4096),
    "file-negative": sqe(READ_FIXED, fd=-1, addr=0x1000, length=4096),
    "read-only-disk": sqe(WRITE_FIXED, fd=1, addr=0x1000, length=4096),
    "range-end": sqe(READ_FIXED, off=(1 << 20) - 512, addr=0x1000, length=1024),
    "range-wrap": sqe(READ_FIXED, off=0xFFFFFFFFFFFFFE00, addr=0x1000, length=1024),
    "length-zero": sqe(READ_FIXED, addr=0x1000, length=0),
    "length-max": sqe(READ_FIXED, addr=0x1000, length=128 * 1024),
    "alignment": sqe(READ_FIXED, fd=1, off=512, addr=0x1000, length=4096),
    "memory-cross-region": sqe(READ_FIXED, addr=0x10000 - 512, length=1024),
    "memory-cross-piece": sqe(READ_FIXED, addr=0x8000 - 512, length=1024),
    "memory-read-only": sqe(READ_FIXED, addr=0x40000, length=512),
    "memory-read-only-source": sqe(WRITE_FIXED, addr=0x40000, length=512),
    "memory-gap": sqe(READ_FIXED, addr=0x30000, length=512),
    "memory-wrap": sqe(READ_FIXED, addr=0xFFFFFFFFFFFFFF00, length=512),
}
for name, s in cases.items():
    write("sqe_validator", name, mediated + s)
write("sqe_validator", "policy-allows-read", bytes([0b11111, 0xFF, 0]) + cases["opcode-read"])

# --- mediator_ring: [budget] then steps: 0/1 write SQE (slot, fields), 2 publish, 3 reap,
# 4 scribble, 5 notifications, 6 wait for the kernel, 7 poll. The SQE fields: op, flags choice,
# fd choice, offset (flag, byte), length (kind, byte), address (kind, byte), user data flag. ---
def put(slot, op, fd, off_blocks, len_kind, len_byte, addr_kind, addr_byte):
    """An SQE step, field by field as HostileGuest::build_sqe reads it: offset in 2048-byte steps;
    length kind 0 (512 * (1 + len_byte)), 1 (4096), 3 (0); address kind 0 (data + 512 * addr_byte),
    2 (read-only region), 3 (its own rings, addr_byte as a 32-bit offset)."""
    length = bytes([len_kind, len_byte]) if len_kind == 0 else bytes([len_kind])
    address = bytes([addr_kind]) + (struct.pack("<I", addr_byte) if addr_kind == 3 else bytes([addr_byte]))
    return bytes([0, slot, op, 1, fd, 1, off_blocks]) + length + address + bytes([0, 1])


def publish(n):
    return bytes([2, n])


POLL = bytes([7, 3])
WAIT = bytes([6, 3])
REAP = bytes([3])
write("mediator_ring", "read-write-fsync",
      bytes([4]) + put(0, 0, 0, 0, 0, 7, 0, 0) + put(1, 2, 0, 8, 1, 0, 0, 16) + put(2, 4, 0, 0, 3, 0, 0, 0) +
      publish(3) + POLL + WAIT + POLL + REAP + POLL)
write("mediator_ring", "refusals",
      bytes([8]) + put(0, 6, 0, 0, 0, 0, 0, 0) + put(1, 2, 1, 0, 1, 0, 0, 0) + put(2, 0, 2, 0, 0, 0, 0, 0) +
      put(3, 0, 0, 0, 0, 0, 2, 0) + put(4, 0, 0, 0, 3, 0, 0, 0) + publish(5) + POLL + REAP)
write("mediator_ring", "tail-jump", bytes([2]) + put(0, 0, 0, 0, 0, 0, 0, 0) + bytes([2, 8]) + struct.pack("<I", 1000) + POLL)
write("mediator_ring", "cq-full-then-reap",
      bytes([1]) + b"".join(put(i % 8, 0, 0, i, 0, 0, 0, i) + publish(1) + POLL + WAIT + POLL for i in range(20)) + REAP + POLL)
write("mediator_ring", "cq-head-jump", bytes([4]) + put(0, 0, 0, 0, 0, 0, 0, 0) + publish(1) + POLL +
      bytes([4, 0]) + struct.pack("<I", 0x80000000) + put(1, 0, 0, 0, 0, 0, 0, 0) + publish(1) + POLL)
write("mediator_ring", "read-into-own-ring", bytes([4]) + put(0, 0, 0, 0, 1, 0, 3, 0) + publish(1) + POLL + WAIT + POLL + REAP)
write("mediator_ring", "scribble-owned-words", bytes([4]) + bytes([4, 2]) + struct.pack("<I", 77) + bytes([4, 4]) +
      struct.pack("<I", 5) + put(0, 0, 0, 0, 0, 0, 0, 0) + publish(1) + bytes([5, 1]) + POLL + REAP)
write("mediator_ring", "write-past-the-end", bytes([4]) + put(0, 2, 0, 200, 1, 0, 0, 0) + put(1, 2, 0, 127, 1, 0, 0, 0) +
      publish(2) + POLL + WAIT + POLL + REAP)


# --- virtqueue: [size exponent | 8 DISCARD | 16 WRITE_ZEROES | 32 may unmap, indirect],
# descriptors [addr kind, u16 offset, (u64), len kind, (len bytes), flags, raw-flags flag, next],
# indirect table count and descriptors (the first after a misalignment byte), headers [count;
# type selector, type, sector flag, sector, address], zeroing segments [count; sector flag, u16
# sector, count flag, u16 sectors, flags flag, flags byte, address], then u16 heads. Address kind 0 is writable RAM at the offset; length kind 0 is 16 bytes, 1 is one
# byte, 2 is 512 * (1 + b % 16). ---
def vq_desc(offset, len_kind, flags, nxt, len_extra=b"", addr_kind=0):
    return bytes([addr_kind]) + struct.pack("<H", offset) + bytes([len_kind]) + len_extra + bytes([flags, 0, nxt])


def vq_header(typ, sector, at):
    return bytes([0, typ, 0]) + struct.pack("<H", sector) + bytes([0]) + struct.pack("<H", at)


NEXT, WRITE, INDIRECT = 1, 2, 4
filler = vq_desc(0x6000, 0, 0, 0)


def vq_segment(sector, sectors, flags, at):
    return (bytes([0]) + struct.pack("<H", sector) + bytes([0]) + struct.pack("<H", sectors) + bytes([0, flags, 0])
            + struct.pack("<H", at))


def vq_input(descs, table=(), misalign=0, headers=(), heads=(0,), size_exp=3, indirect=1, zeroing=0, segments=()):
    descs = list(descs) + [filler] * ((1 << size_exp) - len(descs))
    out = bytes([size_exp | zeroing, indirect]) + b"".join(descs) + bytes([len(table)])
    for i, d in enumerate(table):
        out += (bytes([misalign]) if i == 0 else b"") + d
    out += bytes([len(headers)]) + b"".join(headers)
    out += bytes([len(segments)]) + b"".join(segments)
    return out + b"".join(struct.pack("<H", h) for h in heads)


read_chain = [vq_desc(0x6000, 0, NEXT, 1), vq_desc(0x7000, 2, NEXT | WRITE, 2, bytes([7])), vq_desc(0x9000, 1, WRITE, 0)]
write("virtqueue", "read", vq_input(read_chain, headers=[vq_header(0, 8, 0x6000)]))
write("virtqueue", "write", vq_input([vq_desc(0x6000, 0, NEXT, 1), vq_desc(0x7000, 2, NEXT, 2, bytes([0])),
                                      vq_desc(0x9000, 1, WRITE, 0)], headers=[vq_header(1, 0, 0x6000)]))
write("virtqueue", "flush-and-get-id", vq_input([vq_desc(0x6000, 0, NEXT, 1), vq_desc(0x9000, 1, WRITE, 0),
                                                 vq_desc(0x6100, 0, NEXT, 3), vq_desc(0x7000, 3, NEXT | WRITE, 4, struct.pack("<H", 20)),
                                                 vq_desc(0x9001, 1, WRITE, 0)],
                                                headers=[vq_header(4, 0, 0x6000), vq_header(8, 0, 0x6100)], heads=(0, 2)))
write("virtqueue", "indirect", vq_input([vq_desc(0, 0, INDIRECT, 0, addr_kind=6)],
                                        table=[vq_desc(0x6000, 0, NEXT, 1), vq_desc(0x7000, 2, NEXT | WRITE, 2, bytes([1])),
                                               vq_desc(0x9000, 1, WRITE, 0)],
                                        headers=[vq_header(0, 0, 0x6000)]))
# DISCARD of two segments, WRITE_ZEROES with unmap: header at 0x6000, segments at 0x6100.
write("virtqueue", "discard", vq_input([vq_desc(0x6000, 0, NEXT, 1), vq_desc(0x6100, 3, NEXT, 2, struct.pack("<H", 32)),
                                        vq_desc(0x9000, 1, WRITE, 0)], headers=[vq_header(11, 0, 0x6000)],
                                       zeroing=8 | 16 | 32, segments=[vq_segment(8, 8, 0, 0x6100), vq_segment(64, 16, 0, 0x6110)]))
write("virtqueue", "write-zeroes", vq_input([vq_desc(0x6000, 0, NEXT, 1), vq_desc(0x6100, 0, NEXT, 2),
                                             vq_desc(0x9000, 1, WRITE, 0)], headers=[vq_header(13, 0, 0x6000)],
                                            zeroing=16 | 32, segments=[vq_segment(8, 8, 1, 0x6100)]))
# The unmap flag on a disk that may not unmap: zeroed in place all the same.
write("virtqueue", "write-zeroes-no-unmap", vq_input([vq_desc(0x6000, 0, NEXT, 1), vq_desc(0x6100, 0, NEXT, 2),
                                                      vq_desc(0x9000, 1, WRITE, 0)], headers=[vq_header(13, 0, 0x6000)],
                                                     zeroing=16, segments=[vq_segment(8, 8, 1, 0x6100)]))
write("virtqueue", "loop", vq_input([vq_desc(0x6000, 0, NEXT, 1), vq_desc(0x7000, 0, NEXT, 0)]))
write("virtqueue", "across-buffers", vq_input([vq_desc(0x6000, 0, NEXT, 1), vq_desc(0x3e00, 2, NEXT | WRITE, 2, bytes([7])),
                                               vq_desc(0x9000, 1, WRITE, 0)], headers=[vq_header(0, 0, 0x6000)]))
