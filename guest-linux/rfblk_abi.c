// SPDX-License-Identifier: GPL-2.0
/* The ring descriptor decoder: docs/abi.md, "Encoding". */
#include "rfblk_abi.h"

enum {
	AT_MAGIC = 0, AT_MAJOR = 8, AT_MINOR = 10, AT_TOTAL = 12, AT_MODE = 16, AT_DOORBELL = 20, AT_NOTIFY = 24,
	AT_DISK_COUNT = 28, AT_WINDOW_COUNT = 32, AT_DISK_ENTRY = 36, AT_WINDOW_ENTRY = 38,
	AT_WINDOW_GPA = 40, AT_WINDOW_BYTES = 48,
	AT_SQ_HEAD = 56, AT_SQ_TAIL = 64, AT_SQ_FLAGS = 72, AT_SQ_DROPPED = 80, AT_SQ_ARRAY = 88, AT_SQES = 96,
	AT_SQ_ENTRIES = 104, AT_CQ_ENTRIES = 108,
	AT_CQ_HEAD = 112, AT_CQ_TAIL = 120, AT_CQ_FLAGS = 128, AT_CQ_OVERFLOW = 136, AT_CQES = 144,
	AT_HEADER_BYTES = 152,
};

static u16 get16(const u8 *p)
{
	return (u16)(p[0] | (p[1] << 8));
}

static u32 get32(const u8 *p)
{
	return (u32)p[0] | ((u32)p[1] << 8) | ((u32)p[2] << 16) | ((u32)p[3] << 24);
}

static u64 get64(const u8 *p)
{
	return (u64)get32(p) | ((u64)get32(p + 4) << 32);
}

static int power_of_two(u64 v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

static int valid_geometry(const struct rf_ring_geometry *g)
{
	/* sq_array may be 0 (no index array); every other field must be somewhere. */
	const u64 fields[] = { g->sq_head, g->sq_tail, g->sq_flags, g->sq_dropped, g->sqes,
			       g->cq_head, g->cq_tail, g->cq_flags, g->cq_overflow, g->cqes };
	size_t i;

	if (!power_of_two(g->sq_entries) || !power_of_two(g->cq_entries) || g->cq_entries < g->sq_entries)
		return 0;
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (fields[i] == 0)
			return 0;
	return 1;
}

const char *rf_decode_status_name(enum rf_decode_status status)
{
	switch (status) {
	case RF_DECODE_OK: return "ok";
	case RF_DECODE_TOO_SMALL: return "descriptor truncated";
	case RF_DECODE_BAD_MAGIC: return "bad magic";
	case RF_DECODE_NEWER_MAJOR: return "newer major version";
	case RF_DECODE_BAD_MODE: return "unknown mode";
	case RF_DECODE_BAD_GEOMETRY: return "invalid ring geometry";
	case RF_DECODE_BAD_ENTRY_SIZE: return "table entry size too small";
	case RF_DECODE_TOO_MANY_ENTRIES: return "too many table entries";
	case RF_DECODE_BAD_DOORBELL: return "unknown doorbell or notification kind";
	case RF_DECODE_BAD_DISK: return "invalid disk entry";
	case RF_DECODE_BAD_WINDOW: return "invalid buffer window";
	}
	return "unknown status";
}

enum rf_decode_status rf_decode_header(const u8 *in, size_t in_bytes, struct rf_desc_header *h)
{
	struct rf_ring_geometry *g = &h->ring;
	u64 needed;

	if (in_bytes < RF_DESC_HEADER_BYTES)
		return RF_DECODE_TOO_SMALL;
	if (get64(in + AT_MAGIC) != RF_DESC_MAGIC)
		return RF_DECODE_BAD_MAGIC;
	h->version_major = get16(in + AT_MAJOR);
	h->version_minor = get16(in + AT_MINOR);
	/* A newer minor version only appends; a newer major version may mean anything. */
	if (h->version_major != RF_DESC_MAJOR)
		return RF_DECODE_NEWER_MAJOR;
	h->total_bytes = get32(in + AT_TOTAL);
	h->header_bytes = get32(in + AT_HEADER_BYTES);
	h->disk_entry_bytes = get16(in + AT_DISK_ENTRY);
	h->window_entry_bytes = get16(in + AT_WINDOW_ENTRY);
	h->disk_count = get32(in + AT_DISK_COUNT);
	h->window_count = get32(in + AT_WINDOW_COUNT);
	if (h->header_bytes < RF_DESC_HEADER_BYTES || h->disk_entry_bytes < RF_DESC_DISK_ENTRY_BYTES ||
	    h->window_entry_bytes < RF_DESC_WINDOW_ENTRY_BYTES)
		return RF_DECODE_BAD_ENTRY_SIZE;
	if (h->disk_count > RF_DESC_MAX_DISKS || h->window_count > RF_DESC_MAX_WINDOWS)
		return RF_DECODE_TOO_MANY_ENTRIES;
	/* At most 2^32 + 64 * 2^16 + 16384 * 2^16: no overflow in 64 bits. */
	needed = (u64)h->header_bytes + (u64)h->disk_count * h->disk_entry_bytes +
		 (u64)h->window_count * h->window_entry_bytes;
	if (needed > h->total_bytes || h->total_bytes > in_bytes)
		return RF_DECODE_TOO_SMALL;

	h->mode = get32(in + AT_MODE);
	if (h->mode != RF_MODE_PASSTHROUGH && h->mode != RF_MODE_MEDIATED)
		return RF_DECODE_BAD_MODE;
	if (get32(in + AT_DOORBELL) != RF_PLATFORM_KICK || get32(in + AT_NOTIFY) != RF_PLATFORM_KICK)
		return RF_DECODE_BAD_DOORBELL;
	h->device_window_gpa = get64(in + AT_WINDOW_GPA);
	h->device_window_bytes = get64(in + AT_WINDOW_BYTES);
	g->sq_head = get64(in + AT_SQ_HEAD);
	g->sq_tail = get64(in + AT_SQ_TAIL);
	g->sq_flags = get64(in + AT_SQ_FLAGS);
	g->sq_dropped = get64(in + AT_SQ_DROPPED);
	g->sq_array = get64(in + AT_SQ_ARRAY);
	g->sqes = get64(in + AT_SQES);
	g->sq_entries = get32(in + AT_SQ_ENTRIES);
	g->cq_entries = get32(in + AT_CQ_ENTRIES);
	g->cq_head = get64(in + AT_CQ_HEAD);
	g->cq_tail = get64(in + AT_CQ_TAIL);
	g->cq_flags = get64(in + AT_CQ_FLAGS);
	g->cq_overflow = get64(in + AT_CQ_OVERFLOW);
	g->cqes = get64(in + AT_CQES);
	if (!valid_geometry(g))
		return RF_DECODE_BAD_GEOMETRY;
	return RF_DECODE_OK;
}

/* Where entry `i` of a table starts; rf_decode_header bounded every term. */
static size_t entry_offset(const struct rf_desc_header *h, int disk_table, u32 i)
{
	u64 disks = h->header_bytes;
	u64 windows = disks + (u64)h->disk_count * h->disk_entry_bytes;

	return (size_t)(disk_table ? disks + (u64)i * h->disk_entry_bytes : windows + (u64)i * h->window_entry_bytes);
}

enum rf_decode_status rf_decode_disk(const u8 *in, const struct rf_desc_header *h, u32 i, struct rf_disk_entry *disk)
{
	const u8 *p;

	if (i >= h->disk_count)
		return RF_DECODE_TOO_MANY_ENTRIES;
	p = in + entry_offset(h, 1, i);
	disk->fixed_file = get32(p + 0);
	disk->flags = get32(p + 4);
	disk->size_bytes = get64(p + 8);
	disk->logical_block_size = get32(p + 16);
	disk->max_transfer = get32(p + 20);
	if (disk->size_bytes == 0 || !power_of_two(disk->logical_block_size) || disk->max_transfer == 0 ||
	    disk->max_transfer % disk->logical_block_size != 0)
		return RF_DECODE_BAD_DISK;
	return RF_DECODE_OK;
}

enum rf_decode_status rf_decode_window(const u8 *in, const struct rf_desc_header *h, u32 i,
				       struct rf_window_entry *window)
{
	const u8 *p;

	if (i >= h->window_count)
		return RF_DECODE_TOO_MANY_ENTRIES;
	p = in + entry_offset(h, 0, i);
	window->gpa = get64(p + 0);
	window->length = get64(p + 8);
	window->buffer_index = get32(p + 16);
	window->flags = get32(p + 20);
	window->host_bias = get64(p + 24);
	if (window->length == 0 || window->gpa + window->length < window->gpa)
		return RF_DECODE_BAD_WINDOW;
	return RF_DECODE_OK;
}
