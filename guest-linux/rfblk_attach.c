// SPDX-License-Identifier: GPL-2.0
/*
 * Attaching one ring over its virtqueue (docs/abi.md, "Attaching over virtio-blk"): the device
 * window, the ATTACH request, the descriptor's checks, and the NOTIFY requests that carry the
 * ring's completion interrupts.
 */
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>

#include "rfblk.h"

/* A device that does not answer within this is failed (QEMU's TCG answers in milliseconds). */
#define RFBLK_CTL_TIMEOUT (10 * HZ)
/* The window is one physically contiguous allocation. */
#define RFBLK_MAX_WINDOW_BYTES ((size_t)PAGE_SIZE << (MAX_ORDER - 1))

static struct device *ring_dev(struct rfblk_ring *ring)
{
	return &ring->dev->vdev->dev;
}

/* What a ring of `depth` SQEs needs: the descriptor with a few windows, the rings, alignment. */
static size_t window_estimate(u32 depth)
{
	return PAGE_ALIGN(RF_DESC_HEADER_BYTES + RF_DESC_DISK_ENTRY_BYTES + 16 * RF_DESC_WINDOW_ENTRY_BYTES +
			  (size_t)depth * (64 + 4) + (size_t)depth * 2 * 16 + 2 * PAGE_SIZE);
}

static int window_alloc(struct rfblk_ring *ring, size_t bytes)
{
	ring->window = alloc_pages_exact(bytes, GFP_KERNEL | __GFP_ZERO);
	if (!ring->window)
		return -ENOMEM;
	ring->window_bytes = bytes;
	return 0;
}

static void window_free(struct rfblk_ring *ring)
{
	if (ring->window)
		free_pages_exact(ring->window, ring->window_bytes);
	ring->window = NULL;
	ring->window_bytes = 0;
}

static u64 window_gpa(struct rfblk_ring *ring)
{
	return virt_to_phys(ring->window);
}

/* Posts the NOTIFY request the device completes when the ring has completions to signal, or
 * with an error when it let go of the ring. A poll queue posts one too: its CQ notifications are
 * off, so the device only ends it on a detach, which is how the ring learns of one. Called with
 * the ring's lock held. */
static void post_notify_locked(struct rfblk_ring *ring)
{
	struct scatterlist hdr, status, *sgs[2] = { &hdr, &status };
	struct rfblk_ctl *ctl = ring->ctl;

	if (ring->notify_posted || !ring->ready || test_bit(RFBLK_BROKEN, &ring->dev->flags))
		return;
	ctl->notify_hdr.type = cpu_to_le32(RF_BLK_T_NOTIFY);
	ctl->notify_hdr.ioprio = 0;
	ctl->notify_hdr.sector = 0;
	ctl->notify_status = 0xff;
	sg_init_one(&hdr, &ctl->notify_hdr, sizeof(ctl->notify_hdr));
	sg_init_one(&status, &ctl->notify_status, sizeof(ctl->notify_status));
	if (virtqueue_add_sgs(ring->vq, sgs, 1, 1, &ctl->notify_hdr, GFP_ATOMIC) == 0) {
		ring->notify_posted = true;
		virtqueue_kick(ring->vq);
	}
}

/*
 * The virtqueue's interrupt: the ATTACH reply, or a NOTIFY the device completed because the
 * ring has completions. NOTIFY is posted again before the CQ is reaped, so that a completion
 * posted while reaping raises another interrupt rather than being missed.
 */
void rfblk_vq_done(struct virtqueue *vq)
{
	struct rfblk_dev *dev = vq->vdev->priv;
	struct rfblk_ring *ring = &dev->rings[vq->index];
	bool reap = false, ended = false, was_ready;
	unsigned long flags;
	unsigned int len;
	u8 status = 0;
	void *token;

	spin_lock_irqsave(&ring->lock, flags);
	do {
		virtqueue_disable_cb(vq);
		while ((token = virtqueue_get_buf(vq, &len)) != NULL) {
			if (token == &ring->ctl->attach_hdr) {
				complete(&ring->ctl_done);
			} else if (token == &ring->ctl->notify_hdr) {
				ring->notify_posted = false;
				/* DEVICE-CONTROLLED: the status byte, read once. */
				status = READ_ONCE(ring->ctl->notify_status);
				if (status == VIRTIO_BLK_S_OK)
					reap = true;
				else
					ended = true;
			}
		}
	} while (!virtqueue_enable_cb(vq));
	if (!ended)
		post_notify_locked(ring);
	was_ready = ring->ready;
	spin_unlock_irqrestore(&ring->lock, flags);

	/* The device let go of the ring (a back-end restart, a new memory table). */
	if (ended && was_ready && !test_bit(RFBLK_REMOVING, &dev->flags))
		rfblk_ring_detached(ring, status);
	if (reap)
		rfblk_ring_reap(ring);
}

/* Sends ATTACH and waits for its used entry. */
static int send_attach(struct rfblk_ring *ring, u32 depth)
{
	struct scatterlist hdr, req, reply, status, *sgs[4] = { &hdr, &req, &reply, &status };
	struct rfblk_ctl *ctl = ring->ctl;
	int err;

	memset(ctl, 0, sizeof(*ctl));
	ctl->attach_hdr.type = cpu_to_le32(RF_BLK_T_ATTACH);
	ctl->request.magic = cpu_to_le32(RF_ATTACH_MAGIC);
	ctl->request.major = cpu_to_le16(RF_ATTACH_MAJOR);
	ctl->request.minor = cpu_to_le16(RF_ATTACH_MINOR);
	ctl->request.window_gpa = cpu_to_le64(window_gpa(ring));
	ctl->request.window_bytes = cpu_to_le64(ring->window_bytes);
	ctl->request.queue_depth = cpu_to_le32(depth);
	ctl->attach_status = 0xff;
	sg_init_one(&hdr, &ctl->attach_hdr, sizeof(ctl->attach_hdr));
	sg_init_one(&req, &ctl->request, sizeof(ctl->request));
	sg_init_one(&reply, &ctl->reply, sizeof(ctl->reply));
	sg_init_one(&status, &ctl->attach_status, sizeof(ctl->attach_status));

	reinit_completion(&ring->ctl_done);
	spin_lock_irq(&ring->lock);
	err = virtqueue_add_sgs(ring->vq, sgs, 2, 2, &ctl->attach_hdr, GFP_ATOMIC);
	if (!err)
		virtqueue_kick(ring->vq);
	spin_unlock_irq(&ring->lock);
	if (err)
		return err;
	if (!wait_for_completion_timeout(&ring->ctl_done, RFBLK_CTL_TIMEOUT)) {
		dev_err(ring_dev(ring), "queue %u: the device did not answer ATTACH in %d s\n", ring->index,
			RFBLK_CTL_TIMEOUT / HZ);
		return -ETIMEDOUT;
	}
	return 0;
}

/* A ring field of `bytes` at `gpa`, `align`-aligned, inside the window; NULL if it is not. */
static void *window_field(struct rfblk_ring *ring, u64 gpa, u64 bytes, u64 align)
{
	u64 base = window_gpa(ring), offset;

	if (gpa < base || gpa % align != 0)
		return NULL;
	offset = gpa - base;
	if (offset > ring->window_bytes || bytes > ring->window_bytes - offset)
		return NULL;
	return (u8 *)ring->window + offset;
}

/* Reads the descriptor the device wrote at the window's start into a private copy, decodes
 * it and checks everything this driver will use. */
static int read_descriptor(struct rfblk_ring *ring, u32 depth, u32 reply_mode)
{
	struct device *d = ring_dev(ring);
	const struct rf_ring_geometry *g;
	struct rf_desc_header h = {};
	enum rf_decode_status st;
	u8 *copy;
	u32 i;
	int err = -EPROTO;

	/* The header says how long the whole is: read the header, then everything, once. */
	copy = kmalloc(RF_DESC_HEADER_BYTES, GFP_KERNEL);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, ring->window, RF_DESC_HEADER_BYTES);
	st = rf_decode_header(copy, RF_DESC_HEADER_BYTES, &h);
	if (st == RF_DECODE_TOO_SMALL && h.total_bytes > RF_DESC_HEADER_BYTES && h.total_bytes <= ring->window_bytes) {
		kfree(copy);
		copy = kvmalloc(h.total_bytes, GFP_KERNEL);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, ring->window, h.total_bytes);
		st = rf_decode_header(copy, h.total_bytes, &h);
	}
	if (st != RF_DECODE_OK) {
		dev_err(d, "queue %u: the ring descriptor is invalid: %s\n", ring->index, rf_decode_status_name(st));
		goto out;
	}
	if (h.mode != reply_mode || h.device_window_gpa != window_gpa(ring) || h.device_window_bytes > ring->window_bytes) {
		dev_err(d, "queue %u: the descriptor disagrees with the attach (mode %u/%u, window %#llx+%llu, ours %#llx+%zu)\n",
			ring->index, h.mode, reply_mode, h.device_window_gpa, h.device_window_bytes, window_gpa(ring),
			ring->window_bytes);
		goto out;
	}
	g = &h.ring;
	if (g->sq_entries < 8 || g->sq_entries > depth || g->cq_entries > 4 * depth) {
		dev_err(d, "queue %u: the device gave %u SQ and %u CQ entries for an attach of depth %u\n", ring->index,
			g->sq_entries, g->cq_entries, depth);
		goto out;
	}
	ring->sq_entries = g->sq_entries;
	ring->cq_entries = g->cq_entries;
	ring->sq_head = window_field(ring, g->sq_head, 4, 4);
	ring->sq_tail = window_field(ring, g->sq_tail, 4, 4);
	ring->sq_flags = window_field(ring, g->sq_flags, 4, 4);
	ring->sq_array = g->sq_array ? window_field(ring, g->sq_array, 4ull * g->sq_entries, 4) : NULL;
	ring->sqes = window_field(ring, g->sqes, 64ull * g->sq_entries, 8);
	ring->cq_head = window_field(ring, g->cq_head, 4, 4);
	ring->cq_tail = window_field(ring, g->cq_tail, 4, 4);
	ring->cq_flags = window_field(ring, g->cq_flags, 4, 4);
	ring->cqes = window_field(ring, g->cqes, 16ull * g->cq_entries, 8);
	if (!ring->sq_tail || !ring->sq_flags || (g->sq_array && !ring->sq_array) || !ring->sqes || !ring->cq_head ||
	    !ring->cq_tail || !ring->cq_flags || !ring->cqes ||
	    !ring->sq_head || !window_field(ring, g->cq_overflow, 4, 4)) {
		dev_err(d, "queue %u: a ring field lies outside the device window or is misaligned\n", ring->index);
		goto out;
	}

	if (h.disk_count < 1) {
		dev_err(d, "queue %u: the descriptor lists no disk\n", ring->index);
		goto out;
	}
	st = rf_decode_disk(copy, &h, 0, &ring->disk);
	if (st != RF_DECODE_OK || ring->disk.logical_block_size < SECTOR_SIZE ||
	    ring->disk.logical_block_size > PAGE_SIZE || ring->disk.max_transfer < PAGE_SIZE ||
	    ring->disk.size_bytes % ring->disk.logical_block_size != 0) {
		dev_err(d, "queue %u: unusable disk (%s; block %u, max transfer %u, size %llu)\n", ring->index,
			rf_decode_status_name(st), ring->disk.logical_block_size, ring->disk.max_transfer,
			ring->disk.size_bytes);
		goto out;
	}

	if (h.window_count < 1) {
		dev_err(d, "queue %u: the descriptor lists no buffer window\n", ring->index);
		goto out;
	}
	ring->windows = kvcalloc(h.window_count, sizeof(*ring->windows), GFP_KERNEL);
	if (!ring->windows) {
		err = -ENOMEM;
		goto out;
	}
	ring->window_count = h.window_count;
	for (i = 0; i < h.window_count; i++) {
		struct rf_window_entry *w = &ring->windows[i];

		st = rf_decode_window(copy, &h, i, w);
		if (st == RF_DECODE_OK && i > 0 && w->gpa < ring->windows[i - 1].gpa + ring->windows[i - 1].length)
			st = RF_DECODE_BAD_WINDOW; /* not in order, or overlapping */
		if (st == RF_DECODE_OK && h.mode == RF_MODE_MEDIATED && w->host_bias != 0)
			st = RF_DECODE_BAD_WINDOW;
		if (st != RF_DECODE_OK) {
			dev_err(d, "queue %u: buffer window %u: %s\n", ring->index, i, rf_decode_status_name(st));
			goto out;
		}
	}
	ring->mode = h.mode;
	err = 0;
out:
	kvfree(copy);
	return err;
}

/* The ATTACH exchange over the ring's window (allocated here if it has none), up to a checked
 * descriptor; `may_regrow`: once, with the window size the device asks for. On success the
 * device holds the window. */
static int attach_window(struct rfblk_ring *ring, u32 depth, bool may_regrow)
{
	struct device *d = ring_dev(ring);
	size_t bytes = ring->window ? ring->window_bytes : window_estimate(depth);
	u32 result, mode;
	u64 needed;
	u8 status;
	int err, attempt;

	for (attempt = 0;; attempt++) {
		if (!ring->window) {
			err = window_alloc(ring, bytes);
			if (err)
				return err;
		}
		err = send_attach(ring, depth);
		if (err)
			return err; /* the caller resets the device: the window may still be in its hands */
		/* DEVICE-CONTROLLED: the reply and status, read once. */
		status = READ_ONCE(ring->ctl->attach_status);
		result = le32_to_cpu(READ_ONCE(ring->ctl->reply.result));
		needed = le64_to_cpu(READ_ONCE(ring->ctl->reply.needed_bytes));
		mode = le32_to_cpu(READ_ONCE(ring->ctl->reply.mode));
		if (status == VIRTIO_BLK_S_UNSUPP) {
			dev_err(d, "the device does not know the ringfence attach (it answered UNSUPP): it is not served by `ringfence vhost-user-blk`; use virtio_blk\n");
			return -ENODEV;
		}
		if (status == VIRTIO_BLK_S_OK && result == 0)
			break;
		if (status == VIRTIO_BLK_S_IOERR && result == ENOSPC && may_regrow && attempt == 0 && needed > bytes &&
		    needed <= RFBLK_MAX_WINDOW_BYTES) {
			/* Refused, so the window was never claimed: it is ours to free. */
			window_free(ring);
			bytes = PAGE_ALIGN(needed);
			continue;
		}
		dev_err(d, "queue %u: ATTACH failed: status %u, result %u (%s)\n", ring->index, status, result,
			result == ENOSPC ? "the device needs a larger window than rfblk can allocate" :
			result == EOPNOTSUPP ? "the daemon attaches no rings" :
			result == EBUSY ? "a ring is already attached on this queue" :
			result == EPROTONOSUPPORT ? "the device speaks another version" : "refused");
		return -EIO;
	}
	if (le16_to_cpu(READ_ONCE(ring->ctl->reply.major)) != RF_ATTACH_MAJOR ||
	    le64_to_cpu(READ_ONCE(ring->ctl->reply.descriptor_gpa)) != window_gpa(ring) || needed > ring->window_bytes) {
		dev_err(d, "queue %u: the ATTACH reply is inconsistent (version, descriptor address or size)\n", ring->index);
		return -EPROTO;
	}
	ring->attached = true; /* from here the window is the device's until it is reset */
	return read_descriptor(ring, depth, mode);
}

/* The new ring's indices, then requests may use it. */
static int start_ring(struct rfblk_ring *ring)
{
	struct device *d = ring_dev(ring);

	/* A ring does not start at index 0 (a passthrough ring's kernel ran a self-check on it):
	 * the indices start where the device left them, with the SQ empty; CQEs already there
	 * are not this driver's and are skipped. DEVICE-CONTROLLED: read once each. */
	ring->sq_tail_local = READ_ONCE(*ring->sq_tail);
	if (ring->sq_tail_local != READ_ONCE(*ring->sq_head)) {
		dev_err(d, "queue %u: the new ring's SQ is not empty\n", ring->index);
		return -EPROTO;
	}
	ring->cq_head_local = smp_load_acquire(ring->cq_tail);
	smp_store_release(ring->cq_head, ring->cq_head_local);
	spin_lock_irq(&ring->lock);
	if (ring->polled)
		WRITE_ONCE(*ring->cq_flags, READ_ONCE(*ring->cq_flags) | RF_CQ_NOTIFY_DISABLED);
	ring->cancelled = 0;
	ring->ready = true;
	post_notify_locked(ring);
	spin_unlock_irq(&ring->lock);
	return 0;
}

int rfblk_ring_attach(struct rfblk_ring *ring, u32 depth)
{
	int err;

	init_completion(&ring->ctl_done);
	ring->ctl = kzalloc(sizeof(*ring->ctl), GFP_KERNEL);
	if (!ring->ctl)
		return -ENOMEM;
	err = attach_window(ring, depth, true);
	if (err)
		return err;
	err = rfblk_ring_init_slots(ring);
	if (err)
		return err;
	return start_ring(ring);
}

/*
 * The device let go of the ring on its own (docs/linux-guest.md, "A back-end that restarts"),
 * and the caller took back the requests that were on it: the same window is attached again. The
 * device must describe the same disk and depth as before (blk-mq was set up for them); the mode
 * may change (a back-end serves a passthrough ring as mediated while a migration logs writes).
 */
int rfblk_ring_reattach(struct rfblk_ring *ring, u32 depth)
{
	const struct rf_disk_entry disk = ring->disk;
	const u32 sq_entries = ring->sq_entries;
	int err;

	ring->attached = false; /* the device that held the window is gone */
	memset(ring->window, 0, ring->window_bytes);
	kvfree(ring->windows);
	ring->windows = NULL;
	ring->window_count = 0;
	err = attach_window(ring, depth, false);
	if (err)
		return err;
	if (ring->sq_entries != sq_entries || memcmp(&ring->disk, &disk, sizeof(disk)) != 0) {
		dev_err(ring_dev(ring), "queue %u: the device came back with another disk or depth\n", ring->index);
		return -EPROTO;
	}
	return start_ring(ring);
}

/* After the device was reset (it let go of the window), or when nothing was attached. */
void rfblk_ring_release(struct rfblk_ring *ring)
{
	window_free(ring);
	kvfree(ring->windows);
	kvfree(ring->slots);
	kvfree(ring->free_slots);
	kfree(ring->ctl);
	ring->ready = false;
	ring->windows = NULL;
	ring->slots = NULL;
	ring->free_slots = NULL;
	ring->ctl = NULL;
	ring->attached = false;
}
