/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rfblk: a Linux block driver on ringfence's shared io_uring rings (docs/linux-guest.md).
 *
 * One ring per blk-mq hardware queue, each attached over its own virtqueue of a vhost-user-blk
 * device served by `ringfence vhost-user-blk` (docs/abi.md, "Attaching over virtio-blk").
 *
 * The device is not trusted: everything it writes (the attach reply, the descriptor, the CQ
 * tail, each CQE) is read once into a private copy and checked before it steers anything. A
 * violation fails the device (its requests end with errors), never the guest kernel.
 */
#ifndef RFBLK_H
#define RFBLK_H

#include <linux/blk-mq.h>
#include <linux/completion.h>
#include <linux/io_uring.h>
#include <linux/spinlock.h>
#include <linux/virtio.h>
#include <linux/virtio_blk.h>
#include <linux/workqueue.h>

#include "rfblk_abi.h"

/* The handshake's request types and payloads (docs/abi.md), all little-endian. */
#define RF_BLK_T_ATTACH 0x52460001
#define RF_BLK_T_NOTIFY 0x52460002
#define RF_ATTACH_MAGIC 0x54414652 /* "RFAT" */
#define RF_ATTACH_MAJOR 1
#define RF_ATTACH_MINOR 0

struct rf_attach_request {
	__le32 magic;
	__le16 major;
	__le16 minor;
	__le64 window_gpa;
	__le64 window_bytes;
	__le32 queue_depth;
	__le32 flags;
};

struct rf_attach_reply {
	__le32 result; /* 0 or a positive errno */
	__le16 major;
	__le16 minor;
	__le32 mode;
	__le32 reserved;
	__le64 descriptor_gpa;
	__le64 needed_bytes;
};

/* The virtqueue buffers of one ring's ATTACH and NOTIFY requests (the device writes the reply
 * and the status bytes: read them once, after the used entry). */
struct rfblk_ctl {
	struct virtio_blk_outhdr attach_hdr;
	struct rf_attach_request request;
	struct rf_attach_reply reply;
	u8 attach_status;
	struct virtio_blk_outhdr notify_hdr;
	u8 notify_status;
};

/* One SQE in flight: which request it belongs to and what it asked for. */
struct rfblk_slot {
	struct request *rq; /* NULL: free */
	u32 len;            /* bytes asked for (0 for FSYNC): a CQE's res may not exceed it */
	u32 gen;            /* the upper half of user_data: a stale or repeated CQE does not match */
};

/* One data range of a request: one SQE. */
struct rfblk_piece {
	u64 addr; /* what the SQE's addr carries: gpa + the window's host bias */
	u32 len;
	u32 buf_index;
};

#define RFBLK_MAX_SEGMENTS 32
/* A segment may cross a window boundary, or be cut at max_transfer, into more pieces. */
#define RFBLK_MAX_PIECES (2 * RFBLK_MAX_SEGMENTS + 8)

struct rfblk_cmd {
	blk_status_t status;
	bool requeue; /* a piece was cancelled (the ring went away under it): dispatch it again */
	u32 pending; /* SQEs not yet completed, under the ring's lock */
	u32 nr_pieces;
	struct rfblk_piece pieces[RFBLK_MAX_PIECES];
};

struct rfblk_dev;

struct rfblk_ring {
	struct rfblk_dev *dev;
	struct virtqueue *vq;
	unsigned int index;
	bool polled; /* a poll queue: completions are reaped by blk_mq_ops.poll; its NOTIFY only ends on a detach */
	spinlock_t lock;

	/* The device window: guest RAM this driver set aside for the descriptor and the rings. */
	void *window;
	size_t window_bytes;
	bool attached; /* the device holds the window (until a reset, or until it let go on its own) */
	bool ready;    /* under the lock: the indices below are this attach's; requests may use the ring */

	/* SAFETY: pointers into the window, each checked at attach to lie inside it, aligned. */
	u32 *sq_head, *sq_tail, *sq_flags, *sq_array;
	struct io_uring_sqe *sqes;
	u32 *cq_head, *cq_tail, *cq_flags;
	struct io_uring_cqe *cqes;
	u32 sq_entries, cq_entries;
	/* This driver's own indices: never read back from shared memory. */
	u32 sq_tail_local, cq_head_local;

	u32 mode;
	struct rf_disk_entry disk;
	struct rf_window_entry *windows; /* sorted, not overlapping (checked) */
	u32 window_count;

	struct rfblk_slot *slots;
	u32 *free_slots;
	u32 nr_free;

	struct rfblk_ctl *ctl;
	struct completion ctl_done;
	bool notify_posted;
	char violation[128]; /* why the last reap failed the device */

	/* The device let go of the ring on its own (a back-end restart): attach it again. */
	struct work_struct reattach_work;
	unsigned int reattaches; /* in a row, without a request completed in between */
	unsigned int cancelled;  /* CQEs with -ECANCELED in a row */
};

enum rfblk_dev_flags { RFBLK_BROKEN, RFBLK_REMOVING };

struct rfblk_dev {
	struct virtio_device *vdev;
	int index;
	unsigned long flags;
	struct work_struct fail_work;
	struct blk_mq_tag_set tag_set;
	struct gendisk *disk;
	struct rfblk_ring *rings;
	unsigned int nr_rings;
	bool have_vqs; /* virtio_find_vqs succeeded: del_vqs undoes it */
	unsigned int io_queues[HCTX_MAX_TYPES];
};

/* rfblk_attach.c */
int rfblk_ring_attach(struct rfblk_ring *ring, u32 depth);
int rfblk_ring_reattach(struct rfblk_ring *ring, u32 depth);
void rfblk_ring_release(struct rfblk_ring *ring);
void rfblk_vq_done(struct virtqueue *vq);

/* rfblk_ring.c */
int rfblk_ring_init_slots(struct rfblk_ring *ring);
int rfblk_ring_plan(struct rfblk_ring *ring, struct request *rq, struct rfblk_cmd *cmd);
blk_status_t rfblk_ring_submit(struct rfblk_ring *ring, struct request *rq, struct rfblk_cmd *cmd);
int rfblk_ring_reap(struct rfblk_ring *ring);
void rfblk_ring_fail_all(struct rfblk_ring *ring);
void rfblk_ring_log_state(struct rfblk_ring *ring);
unsigned int rfblk_ring_take_back(struct rfblk_ring *ring, struct request **rqs);

/* rfblk_main.c */
void rfblk_fail_device(struct rfblk_dev *dev, const char *why);
void rfblk_ring_detached(struct rfblk_ring *ring, u8 status);

#endif
