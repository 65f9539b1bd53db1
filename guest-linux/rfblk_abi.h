/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The ring descriptor (docs/abi.md), decoded for the Linux guest driver. Freestanding C: the
 * same file builds in the kernel module and in the host's differential test, which checks it
 * against the VMM's own encoder and decoder (vmm-glue/abi/ring_descriptor.{h,cc}).
 *
 * Every field is little-endian at a fixed byte offset and is read one byte at a time from a
 * private copy of the descriptor, so a device that rewrites the window while it is decoded
 * cannot make two reads disagree.
 */
#ifndef RFBLK_ABI_H
#define RFBLK_ABI_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <stddef.h>
#include <stdint.h>
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
#endif

#define RF_DESC_MAGIC 0x31444e4952465200ULL /* the bytes "\0RFRIND1" */
#define RF_DESC_MAJOR 1
#define RF_DESC_HEADER_BYTES 192
#define RF_DESC_DISK_ENTRY_BYTES 32
#define RF_DESC_WINDOW_ENTRY_BYTES 32
#define RF_DESC_MAX_DISKS 64
#define RF_DESC_MAX_WINDOWS 16384

#define RF_MODE_PASSTHROUGH 1
#define RF_MODE_MEDIATED 2
#define RF_PLATFORM_KICK 1 /* doorbell and notify kinds: the platform's (here: the virtqueue) */

#define RF_SQ_NEED_WAKEUP (1u << 0)     /* IORING_SQ_NEED_WAKEUP */
#define RF_CQ_NOTIFY_DISABLED (1u << 0) /* IORING_CQ_EVENTFD_DISABLED */
#define RF_DISK_READ_ONLY (1u << 0)

/* The same values, in the same order, as rf::abi::DecodeStatus. */
enum rf_decode_status {
	RF_DECODE_OK = 0,
	RF_DECODE_TOO_SMALL,
	RF_DECODE_BAD_MAGIC,
	RF_DECODE_NEWER_MAJOR,
	RF_DECODE_BAD_MODE,
	RF_DECODE_BAD_GEOMETRY,
	RF_DECODE_BAD_ENTRY_SIZE,
	RF_DECODE_TOO_MANY_ENTRIES,
	RF_DECODE_BAD_DOORBELL,
	RF_DECODE_BAD_DISK,
	RF_DECODE_BAD_WINDOW,
};

struct rf_ring_geometry {
	u64 sq_head, sq_tail, sq_flags, sq_dropped, sq_array, sqes; /* guest-physical addresses */
	u32 sq_entries;
	u64 cq_head, cq_tail, cq_flags, cq_overflow, cqes;
	u32 cq_entries;
};

struct rf_desc_header {
	u16 version_major, version_minor;
	u32 total_bytes;
	u32 mode;
	u64 device_window_gpa, device_window_bytes;
	struct rf_ring_geometry ring;
	u32 disk_count, window_count;
	u32 header_bytes, disk_entry_bytes, window_entry_bytes;
};

struct rf_disk_entry {
	u32 fixed_file;
	u32 flags; /* RF_DISK_READ_ONLY */
	u64 size_bytes;
	u32 logical_block_size;
	u32 max_transfer;
};

struct rf_window_entry {
	u64 gpa;
	u64 length;
	u32 buffer_index;
	u32 flags;
	u64 host_bias; /* passthrough: SQE addr = gpa + host_bias (mod 2^64); mediated: 0 */
};

const char *rf_decode_status_name(enum rf_decode_status status);

/* Decodes and checks the header; `in` holds `in_bytes` bytes of a private copy. */
enum rf_decode_status rf_decode_header(const u8 *in, size_t in_bytes, struct rf_desc_header *h);
/* Entry `i` of each table, from the same bytes `h` was decoded from. */
enum rf_decode_status rf_decode_disk(const u8 *in, const struct rf_desc_header *h, u32 i, struct rf_disk_entry *disk);
enum rf_decode_status rf_decode_window(const u8 *in, const struct rf_desc_header *h, u32 i,
				       struct rf_window_entry *window);

#endif
