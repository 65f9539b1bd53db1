// SPDX-License-Identifier: GPL-2.0
/*
 * One shared ring: requests cut into SQEs (one contiguous range each, inside one buffer
 * window), the SQ tail and doorbell, and the CQ reaped with every CQE checked.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/mm.h>
#include <linux/slab.h>

#include "rfblk.h"

#define RFBLK_REAP_BATCH 32

int rfblk_ring_init_slots(struct rfblk_ring *ring)
{
	u32 i;

	ring->slots = kvcalloc(ring->sq_entries, sizeof(*ring->slots), GFP_KERNEL);
	ring->free_slots = kvcalloc(ring->sq_entries, sizeof(*ring->free_slots), GFP_KERNEL);
	if (!ring->slots || !ring->free_slots)
		return -ENOMEM;
	for (i = 0; i < ring->sq_entries; i++)
		ring->free_slots[i] = ring->sq_entries - 1 - i;
	ring->nr_free = ring->sq_entries;
	return 0;
}

/* The window holding guest-physical `gpa`, or NULL. */
static const struct rf_window_entry *find_window(const struct rfblk_ring *ring, u64 gpa)
{
	u32 lo = 0, hi = ring->window_count;

	while (lo < hi) { /* the last window starting at or below gpa */
		u32 mid = lo + (hi - lo) / 2;

		if (ring->windows[mid].gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	if (gpa - ring->windows[lo - 1].gpa >= ring->windows[lo - 1].length)
		return NULL;
	return &ring->windows[lo - 1];
}

/* Appends the guest-physical range [gpa, gpa + len) to the request's pieces: merged with the
 * previous piece where it continues it in the same window, cut at window ends and max_transfer. */
static int add_piece_range(struct rfblk_ring *ring, struct rfblk_cmd *cmd, u64 gpa, u32 len)
{
	while (len) {
		const struct rf_window_entry *w = find_window(ring, gpa);
		struct rfblk_piece *last = cmd->nr_pieces ? &cmd->pieces[cmd->nr_pieces - 1] : NULL;
		u64 room;
		u32 take;

		if (!w)
			return -EFAULT; /* guest RAM the device cannot reach */
		room = w->gpa + w->length - gpa;
		take = (u32)min_t(u64, len, room);
		if (last && last->buf_index == w->buffer_index && last->addr + last->len == gpa + w->host_bias &&
		    last->len < ring->disk.max_transfer) {
			u32 more = min_t(u32, take, ring->disk.max_transfer - last->len);

			last->len += more;
			gpa += more;
			len -= more;
			continue;
		}
		if (cmd->nr_pieces == RFBLK_MAX_PIECES)
			return -E2BIG;
		take = min_t(u32, take, ring->disk.max_transfer);
		cmd->pieces[cmd->nr_pieces].addr = gpa + w->host_bias;
		cmd->pieces[cmd->nr_pieces].len = take;
		cmd->pieces[cmd->nr_pieces].buf_index = w->buffer_index;
		cmd->nr_pieces++;
		gpa += take;
		len -= take;
	}
	return 0;
}

int rfblk_ring_plan(struct rfblk_ring *ring, struct request *rq, struct rfblk_cmd *cmd)
{
	struct req_iterator iter;
	struct bio_vec bv;
	int err;

	cmd->nr_pieces = 0;
	cmd->status = BLK_STS_OK;
	cmd->requeue = false;
	if (req_op(rq) == REQ_OP_FLUSH)
		return 0;
	rq_for_each_bvec(bv, rq, iter) {
		err = add_piece_range(ring, cmd, page_to_phys(bv.bv_page) + bv.bv_offset, bv.bv_len);
		if (err)
			return err;
	}
	return 0;
}

static void write_sqe(struct rfblk_ring *ring, u8 opcode, u64 off, const struct rfblk_piece *piece, u32 slot)
{
	u32 index = ring->sq_tail_local & (ring->sq_entries - 1);
	struct io_uring_sqe sqe;

	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = opcode;
	sqe.flags = IOSQE_FIXED_FILE;
	sqe.fd = (__s32)ring->disk.fixed_file;
	sqe.off = off;
	if (piece) {
		sqe.addr = piece->addr;
		sqe.len = piece->len;
		sqe.buf_index = (__u16)piece->buf_index;
	}
	sqe.user_data = ((u64)ring->slots[slot].gen << 32) | slot;
	memcpy(&ring->sqes[index], &sqe, sizeof(sqe));
	if (ring->sq_array)
		WRITE_ONCE(ring->sq_array[index], index);
	ring->sq_tail_local++;
}

static u32 take_slot(struct rfblk_ring *ring, struct request *rq, u32 len)
{
	u32 slot = ring->free_slots[--ring->nr_free];

	ring->slots[slot].rq = rq;
	ring->slots[slot].len = len;
	ring->slots[slot].gen++;
	return slot;
}

blk_status_t rfblk_ring_submit(struct rfblk_ring *ring, struct request *rq, struct rfblk_cmd *cmd)
{
	u32 needed = req_op(rq) == REQ_OP_FLUSH ? 1 : cmd->nr_pieces;
	u64 off = (u64)blk_rq_pos(rq) << SECTOR_SHIFT;
	bool kick = false;
	unsigned long flags;
	u32 i;

	if (needed > ring->sq_entries)
		return BLK_STS_IOERR;
	spin_lock_irqsave(&ring->lock, flags);
	if (test_bit(RFBLK_BROKEN, &ring->dev->flags)) {
		spin_unlock_irqrestore(&ring->lock, flags);
		return BLK_STS_IOERR;
	}
	if (!ring->ready) { /* being attached again: blk-mq dispatches it later */
		spin_unlock_irqrestore(&ring->lock, flags);
		return BLK_STS_RESOURCE;
	}
	/* Free SQ room is this driver's own count of SQEs in flight, never the device's head. */
	if (needed > ring->nr_free) {
		spin_unlock_irqrestore(&ring->lock, flags);
		return BLK_STS_RESOURCE;
	}
	blk_mq_start_request(rq);
	cmd->pending = needed;
	if (req_op(rq) == REQ_OP_FLUSH) {
		write_sqe(ring, IORING_OP_FSYNC, 0, NULL, take_slot(ring, rq, 0));
	} else {
		u8 opcode = rq_data_dir(rq) == WRITE ? IORING_OP_WRITE_FIXED : IORING_OP_READ_FIXED;

		for (i = 0; i < cmd->nr_pieces; i++) {
			const struct rfblk_piece *p = &cmd->pieces[i];

			write_sqe(ring, opcode, off, p, take_slot(ring, rq, p->len));
			off += p->len;
		}
	}
	/* docs/abi.md, "Doorbell": publish the tail, full barrier, then look at NEED_WAKEUP. */
	smp_store_release(ring->sq_tail, ring->sq_tail_local);
	smp_mb();
	kick = READ_ONCE(*ring->sq_flags) & RF_SQ_NEED_WAKEUP;
	spin_unlock_irqrestore(&ring->lock, flags);
	if (kick)
		virtqueue_notify(ring->vq);
	return BLK_STS_OK;
}

static blk_status_t errno_status(int res)
{
	switch (res) {
	case -ENOSPC: return BLK_STS_NOSPC;
	case -EOPNOTSUPP: return BLK_STS_NOTSUPP;
	case -ENOMEM:
	case -EAGAIN: return BLK_STS_RESOURCE;
	default: return BLK_STS_IOERR;
	}
}

/*
 * Takes up to RFBLK_REAP_BATCH CQEs; returns the requests whose last SQE completed. On a
 * violation it stops, says why in ring->violation and sets *violated.
 */
static unsigned int reap_locked(struct rfblk_ring *ring, struct request **done, bool *more, bool *violated)
{
	u32 head = ring->cq_head_local;
	u32 in_flight = ring->sq_entries - ring->nr_free;
	/* DEVICE-CONTROLLED: the CQ tail; bounded by what this driver has in flight. */
	u32 tail = smp_load_acquire(ring->cq_tail);
	u32 ready = tail - head, seen = 0;
	unsigned int n = 0;

	*more = false;
	if (ready > in_flight) {
		snprintf(ring->violation, sizeof(ring->violation),
			 "queue %u: the CQ tail moved %u entries past the head with %u SQEs in flight", ring->index,
			 ready, in_flight);
		*violated = true;
		return 0;
	}
	while (seen < ready && seen < RFBLK_REAP_BATCH) {
		/* DEVICE-CONTROLLED: the CQE, copied once; each field checked before it is used. */
		const struct io_uring_cqe *c = &ring->cqes[head & (ring->cq_entries - 1)];
		u64 user_data = READ_ONCE(c->user_data);
		s32 res = READ_ONCE(c->res);
		u32 slot = lower_32_bits(user_data);
		struct rfblk_slot *s;
		struct rfblk_cmd *cmd;

		if (slot >= ring->sq_entries || !ring->slots[slot].rq || ring->slots[slot].gen != upper_32_bits(user_data)) {
			snprintf(ring->violation, sizeof(ring->violation),
				 "queue %u: a CQE names user_data %#llx, which is not in flight", ring->index, user_data);
			*violated = true;
			break;
		}
		s = &ring->slots[slot];
		if (res > 0 && (u32)res > s->len) {
			snprintf(ring->violation, sizeof(ring->violation),
				 "queue %u: a CQE reports %d bytes for an SQE of %u", ring->index, res, s->len);
			*violated = true;
			break;
		}
		cmd = blk_mq_rq_to_pdu(s->rq);
		if (res == -ECANCELED) {
			/* The ring went away under the SQE (a passthrough ring's kernel cancels what it had
			 * not started when the back-end dies): not done, so dispatched again. A device
			 * that cancels everything cannot keep a request going round for ever. */
			cmd->requeue = true;
			if (++ring->cancelled > 2 * ring->sq_entries) {
				snprintf(ring->violation, sizeof(ring->violation),
					 "queue %u: %u CQEs in a row were cancelled", ring->index, ring->cancelled);
				*violated = true;
				break;
			}
		} else if (res < 0) {
			cmd->status = errno_status(res);
		} else if ((u32)res != s->len) {
			cmd->status = BLK_STS_IOERR; /* a short transfer */
		}
		if (res != -ECANCELED)
			ring->cancelled = 0;
		if (--cmd->pending == 0)
			done[n++] = s->rq;
		s->rq = NULL;
		ring->free_slots[ring->nr_free++] = slot;
		head++;
		seen++;
	}
	ring->cq_head_local = head;
	smp_store_release(ring->cq_head, head);
	*more = !*violated && seen < ready;
	if (n)
		ring->reattaches = 0; /* the ring works: a later detach may be attached again */
	return n;
}

int rfblk_ring_reap(struct rfblk_ring *ring)
{
	struct request *done[RFBLK_REAP_BATCH];
	bool more, violated = false;
	unsigned long flags;
	unsigned int n, i;
	int total = 0;

	do {
		n = 0;
		more = false;
		spin_lock_irqsave(&ring->lock, flags);
		if (ring->ready && !test_bit(RFBLK_BROKEN, &ring->dev->flags))
			n = reap_locked(ring, done, &more, &violated);
		spin_unlock_irqrestore(&ring->lock, flags);
		for (i = 0; i < n; i++)
			blk_mq_complete_request(done[i]);
		total += n;
	} while (more);
	if (violated)
		rfblk_fail_device(ring->dev, ring->violation);
	return total;
}

/* Ends every request still in flight on the ring with an error (the device was reset). */
void rfblk_ring_fail_all(struct rfblk_ring *ring)
{
	struct request *rq;
	unsigned long flags;
	u32 i;

	if (!ring->slots)
		return;
	for (;;) {
		rq = NULL;
		spin_lock_irqsave(&ring->lock, flags);
		for (i = 0; i < ring->sq_entries && !rq; i++)
			rq = ring->slots[i].rq;
		if (rq) {
			for (i = 0; i < ring->sq_entries; i++) {
				if (ring->slots[i].rq == rq) {
					ring->slots[i].rq = NULL;
					ring->free_slots[ring->nr_free++] = i;
				}
			}
			((struct rfblk_cmd *)blk_mq_rq_to_pdu(rq))->status = BLK_STS_IOERR;
		}
		spin_unlock_irqrestore(&ring->lock, flags);
		if (!rq)
			break;
		blk_mq_complete_request(rq);
	}
}

/*
 * The device let go of the ring: it takes nothing more, and every request that was on it is
 * handed to the caller (once each, however many SQEs it had), its slots freed, for blk-mq to
 * dispatch again once the ring is attached again. `rqs` has room for sq_entries requests.
 * Returns how many.
 */
unsigned int rfblk_ring_take_back(struct rfblk_ring *ring, struct request **rqs)
{
	unsigned long flags;
	unsigned int n = 0;
	u32 i;

	spin_lock_irqsave(&ring->lock, flags);
	ring->ready = false;
	ring->notify_posted = false; /* the device ended it */
	for (i = 0; i < ring->sq_entries; i++) {
		struct request *rq = ring->slots[i].rq;
		struct rfblk_cmd *cmd;

		if (!rq)
			continue;
		cmd = blk_mq_rq_to_pdu(rq);
		if (cmd->pending != 0) { /* its first slot: the rest of its SQEs are skipped below */
			cmd->pending = 0;
			rqs[n++] = rq;
		}
		ring->slots[i].rq = NULL;
		ring->free_slots[ring->nr_free++] = i;
	}
	spin_unlock_irqrestore(&ring->lock, flags);
	return n;
}

/* For the failure's diagnosis: where the ring stood (the device's words are only printed). */
void rfblk_ring_log_state(struct rfblk_ring *ring)
{
	unsigned long flags;

	if (!ring->attached || !ring->slots)
		return;
	spin_lock_irqsave(&ring->lock, flags);
	dev_err(&ring->dev->vdev->dev,
		"queue %u: SQ tail %u (device's head %u, flags %#x), CQ head %u (device's tail %u, flags %#x), %u SQEs in flight, NOTIFY %s\n",
		ring->index, ring->sq_tail_local, READ_ONCE(*ring->sq_head), READ_ONCE(*ring->sq_flags),
		ring->cq_head_local, READ_ONCE(*ring->cq_tail), READ_ONCE(*ring->cq_flags), ring->sq_entries - ring->nr_free,
		ring->polled ? "not used (polled)" : ring->notify_posted ? "posted" : "not posted");
	spin_unlock_irqrestore(&ring->lock, flags);
}
