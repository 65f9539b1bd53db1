// SPDX-License-Identifier: GPL-2.0
/*
 * rfblk: the virtio driver, the blk-mq queues and the disk (docs/linux-guest.md).
 */
#include <linux/blkdev.h>
#include <linux/cpumask.h>
#include <linux/idr.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include "rfblk.h"

#define RFBLK_MINORS 16

static unsigned int poll_queues;
module_param(poll_queues, uint, 0444);
MODULE_PARM_DESC(poll_queues, "hardware queues completed by polling (io_uring IOPOLL, fio --hipri); default 0");

static unsigned int queue_depth = 128;
module_param(queue_depth, uint, 0444);
MODULE_PARM_DESC(queue_depth, "SQ entries of each ring: a power of two from 8 to 1024; default 128");

static unsigned int io_timeout = 30;
module_param(io_timeout, uint, 0444);
MODULE_PARM_DESC(io_timeout, "seconds before an unanswered request fails the device; default 30");

/* Detaches attached again in a row, with no request completed in between, before the device is failed. */
#define RFBLK_MAX_REATTACHES 8

static int rfblk_major;
static DEFINE_IDA(rfblk_index_ida);

static void rfblk_fail_work(struct work_struct *work)
{
	struct rfblk_dev *dev = container_of(work, struct rfblk_dev, fail_work);
	unsigned int i;

	for (i = 0; i < dev->nr_rings; i++)
		rfblk_ring_log_state(&dev->rings[i]);
	/* The reset makes the device let go of the rings (docs/abi.md, "Detach"); only then are
	 * the requests still in flight ended, so that no late completion can name them. */
	virtio_reset_device(dev->vdev);
	for (i = 0; i < dev->nr_rings; i++)
		rfblk_ring_fail_all(&dev->rings[i]);
}

void rfblk_fail_device(struct rfblk_dev *dev, const char *why)
{
	if (test_and_set_bit(RFBLK_BROKEN, &dev->flags))
		return;
	dev_err(&dev->vdev->dev, "%s: device failed: %s; its requests now end with I/O errors\n",
		dev->disk ? dev->disk->disk_name : "rfblk", why);
	schedule_work(&dev->fail_work);
}

/*
 * A ring the device let go of on its own (docs/linux-guest.md, "A back-end that restarts"): with
 * the disk's queue quiesced, the requests that were on it go back to blk-mq and the ring is
 * attached again over the same window; then blk-mq dispatches them again. Nothing is failed
 * unless attaching again fails.
 */
static void rfblk_reattach_work(struct work_struct *work)
{
	struct rfblk_ring *ring = container_of(work, struct rfblk_ring, reattach_work);
	struct rfblk_dev *dev = ring->dev;
	struct request_queue *q = dev->disk->queue;
	struct request **rqs;
	unsigned int n, i;
	int err;

	if (test_bit(RFBLK_BROKEN, &dev->flags) || test_bit(RFBLK_REMOVING, &dev->flags))
		return;
	rqs = kvcalloc(ring->sq_entries, sizeof(*rqs), GFP_KERNEL);
	if (!rqs) {
		rfblk_fail_device(dev, "no memory to attach a detached ring again");
		return;
	}
	blk_mq_quiesce_queue(q);
	n = rfblk_ring_take_back(ring, rqs);
	for (i = 0; i < n; i++)
		blk_mq_requeue_request(rqs[i], false);
	kvfree(rqs);
	err = rfblk_ring_reattach(ring, queue_depth);
	if (err) {
		snprintf(ring->violation, sizeof(ring->violation),
			 "queue %u: the device let go of the ring and attaching it again failed (%d)", ring->index, err);
		rfblk_fail_device(dev, ring->violation);
	} else {
		dev_warn(&dev->vdev->dev, "%s: queue %u attached again (%s); %u request(s) that were on it dispatched again\n",
			 dev->disk->disk_name, ring->index, ring->mode == RF_MODE_PASSTHROUGH ? "passthrough" : "mediated", n);
	}
	blk_mq_unquiesce_queue(q);
	blk_mq_kick_requeue_list(q);
}

/* From the virtqueue's interrupt: the device ended the ring's NOTIFY with `status`. */
void rfblk_ring_detached(struct rfblk_ring *ring, u8 status)
{
	struct rfblk_dev *dev = ring->dev;
	unsigned long flags;
	unsigned int tries;

	spin_lock_irqsave(&ring->lock, flags); /* reaps reset the count under it */
	tries = ++ring->reattaches;
	spin_unlock_irqrestore(&ring->lock, flags);

	if (!dev->disk || tries > RFBLK_MAX_REATTACHES) {
		snprintf(ring->violation, sizeof(ring->violation),
			 "the device ended queue %u's NOTIFY request with status %u: the ring is detached%s", ring->index,
			 status, dev->disk ? " again, with no request completed since the last time" : "");
		rfblk_fail_device(dev, ring->violation);
		return;
	}
	dev_warn(&dev->vdev->dev, "%s: the device let go of queue %u's ring (NOTIFY status %u): attaching it again\n",
		 dev->disk->disk_name, ring->index, status);
	schedule_work(&ring->reattach_work);
}

static blk_status_t rfblk_queue_rq(struct blk_mq_hw_ctx *hctx, const struct blk_mq_queue_data *bd)
{
	struct rfblk_ring *ring = hctx->driver_data;
	struct request *rq = bd->rq;
	struct rfblk_cmd *cmd = blk_mq_rq_to_pdu(rq);
	int err;

	switch (req_op(rq)) {
	case REQ_OP_READ:
	case REQ_OP_WRITE:
	case REQ_OP_FLUSH:
		break;
	default:
		return BLK_STS_NOTSUPP;
	}
	if (test_bit(RFBLK_BROKEN, &ring->dev->flags))
		return BLK_STS_IOERR;
	err = rfblk_ring_plan(ring, rq, cmd);
	if (err) {
		pr_err_ratelimited("%s: a request of %u bytes %s\n", rq->q->disk->disk_name, blk_rq_bytes(rq),
				   err == -EFAULT ? "lies outside the device's buffer windows" :
						    "needs more SQEs than one request may use");
		return BLK_STS_IOERR;
	}
	return rfblk_ring_submit(ring, rq, cmd);
}

static void rfblk_complete_rq(struct request *rq)
{
	struct rfblk_cmd *cmd = blk_mq_rq_to_pdu(rq);

	if (cmd->requeue && cmd->status == BLK_STS_OK) {
		blk_mq_requeue_request(rq, true); /* cancelled by a ring that went away: again */
		return;
	}
	blk_mq_end_request(rq, cmd->status);
}

static int rfblk_poll(struct blk_mq_hw_ctx *hctx, struct io_comp_batch *iob)
{
	return rfblk_ring_reap(hctx->driver_data);
}

static enum blk_eh_timer_return rfblk_timeout(struct request *rq)
{
	struct rfblk_dev *dev = rq->q->queuedata;

	/* The failure's reset and rfblk_ring_fail_all end this request; until then, wait. */
	rfblk_fail_device(dev, "a request was not answered within io_timeout");
	return BLK_EH_RESET_TIMER;
}

static int rfblk_init_hctx(struct blk_mq_hw_ctx *hctx, void *data, unsigned int index)
{
	struct rfblk_dev *dev = data;

	hctx->driver_data = &dev->rings[index];
	return 0;
}

static void rfblk_map_queues(struct blk_mq_tag_set *set)
{
	struct rfblk_dev *dev = set->driver_data;
	unsigned int i, offset = 0;

	for (i = 0; i < set->nr_maps; i++) {
		struct blk_mq_queue_map *map = &set->map[i];

		map->nr_queues = dev->io_queues[i];
		map->queue_offset = offset;
		offset += map->nr_queues;
		if (map->nr_queues)
			blk_mq_map_queues(map);
	}
}

static const struct blk_mq_ops rfblk_mq_ops = {
	.queue_rq = rfblk_queue_rq,
	.complete = rfblk_complete_rq,
	.poll = rfblk_poll,
	.timeout = rfblk_timeout,
	.init_hctx = rfblk_init_hctx,
	.map_queues = rfblk_map_queues,
};

static const struct block_device_operations rfblk_fops = {
	.owner = THIS_MODULE,
};

/* Finds the virtqueues, attaches a ring on each, and checks they all describe one disk. */
static int rfblk_attach_rings(struct rfblk_dev *dev, unsigned int nr_default, unsigned int nr_poll)
{
	struct virtio_device *vdev = dev->vdev;
	struct virtqueue **vqs;
	vq_callback_t **callbacks;
	const char **names;
	char (*labels)[16];
	unsigned int i, nr = nr_default + nr_poll;
	int err = -ENOMEM;

	dev->rings = kcalloc(nr, sizeof(*dev->rings), GFP_KERNEL);
	vqs = kcalloc(nr, sizeof(*vqs), GFP_KERNEL);
	callbacks = kcalloc(nr, sizeof(*callbacks), GFP_KERNEL);
	names = kcalloc(nr, sizeof(*names), GFP_KERNEL);
	labels = kcalloc(nr, sizeof(*labels), GFP_KERNEL);
	if (!dev->rings || !vqs || !callbacks || !names || !labels)
		goto out;
	dev->nr_rings = nr;
	for (i = 0; i < nr; i++) {
		/* Poll queues take interrupts too, but only for their ATTACH. */
		callbacks[i] = rfblk_vq_done;
		snprintf(labels[i], sizeof(labels[i]), "rfblk.%u", i);
		names[i] = labels[i];
	}
	err = virtio_find_vqs(vdev, nr, vqs, callbacks, names, NULL);
	if (err) {
		dev_err(&vdev->dev, "cannot set up %u virtqueues: %d\n", nr, err);
		goto out;
	}
	dev->have_vqs = true;
	for (i = 0; i < nr; i++) {
		struct rfblk_ring *ring = &dev->rings[i];

		ring->dev = dev;
		ring->vq = vqs[i];
		ring->index = i;
		ring->polled = i >= nr_default;
		spin_lock_init(&ring->lock);
		INIT_WORK(&ring->reattach_work, rfblk_reattach_work);
	}
	virtio_device_ready(vdev);
	for (i = 0; i < nr; i++) {
		err = rfblk_ring_attach(&dev->rings[i], queue_depth);
		if (err)
			goto out;
	}
	for (i = 1; i < nr; i++) {
		const struct rfblk_ring *a = &dev->rings[0], *b = &dev->rings[i];

		if (memcmp(&a->disk, &b->disk, sizeof(a->disk)) != 0 || a->sq_entries != b->sq_entries ||
		    a->mode != b->mode) {
			dev_err(&vdev->dev, "queue %u describes another disk, depth or mode than queue 0\n", i);
			err = -EPROTO;
			goto out;
		}
	}
	err = 0;
out:
	kfree(vqs);
	kfree(callbacks);
	kfree(names);
	kfree(labels);
	return err;
}

/* Waits for attaches again that were under way (the caller set RFBLK_REMOVING: no new one). */
static void rfblk_stop_reattaches(struct rfblk_dev *dev)
{
	unsigned int i;

	for (i = 0; i < dev->nr_rings && dev->have_vqs; i++)
		cancel_work_sync(&dev->rings[i].reattach_work);
}

/* Undoes rfblk_attach_rings: the reset first, so that the device lets go of every window. */
static void rfblk_detach_rings(struct rfblk_dev *dev)
{
	unsigned int i;

	rfblk_stop_reattaches(dev);
	virtio_reset_device(dev->vdev);
	for (i = 0; i < dev->nr_rings; i++)
		rfblk_ring_fail_all(&dev->rings[i]);
	if (dev->have_vqs)
		dev->vdev->config->del_vqs(dev->vdev);
	dev->have_vqs = false;
	for (i = 0; i < dev->nr_rings; i++)
		rfblk_ring_release(&dev->rings[i]);
	kfree(dev->rings);
	dev->rings = NULL;
	dev->nr_rings = 0;
}

static int rfblk_add_disk(struct rfblk_dev *dev)
{
	const struct rfblk_ring *ring = &dev->rings[0];
	const struct rf_disk_entry *d = &ring->disk;
	struct blk_mq_tag_set *set = &dev->tag_set;
	struct request_queue *q;
	int err;

	set->ops = &rfblk_mq_ops;
	set->nr_hw_queues = dev->nr_rings;
	set->nr_maps = dev->io_queues[HCTX_TYPE_POLL] ? HCTX_MAX_TYPES : 1;
	set->queue_depth = ring->sq_entries;
	set->numa_node = NUMA_NO_NODE;
	set->flags = BLK_MQ_F_SHOULD_MERGE;
	set->cmd_size = sizeof(struct rfblk_cmd);
	set->driver_data = dev;
	set->timeout = io_timeout * HZ;
	err = blk_mq_alloc_tag_set(set);
	if (err)
		return err;
	dev->disk = blk_mq_alloc_disk(set, dev);
	if (IS_ERR(dev->disk)) {
		err = PTR_ERR(dev->disk);
		dev->disk = NULL;
		goto free_tags;
	}
	q = dev->disk->queue;
	blk_queue_logical_block_size(q, d->logical_block_size);
	blk_queue_physical_block_size(q, d->logical_block_size);
	blk_queue_dma_alignment(q, d->logical_block_size - 1);
	blk_queue_max_hw_sectors(q, d->max_transfer >> SECTOR_SHIFT);
	blk_queue_max_segment_size(q, d->max_transfer);
	blk_queue_max_segments(q, min_t(u32, RFBLK_MAX_SEGMENTS, ring->sq_entries / 2));
	blk_queue_write_cache(q, true, false);
	if (dev->io_queues[HCTX_TYPE_POLL])
		blk_queue_flag_set(QUEUE_FLAG_POLL, q);

	dev->disk->major = rfblk_major;
	dev->disk->first_minor = dev->index * RFBLK_MINORS;
	dev->disk->minors = RFBLK_MINORS;
	dev->disk->fops = &rfblk_fops;
	dev->disk->private_data = dev;
	snprintf(dev->disk->disk_name, DISK_NAME_LEN, "rfblk%d", dev->index);
	set_capacity(dev->disk, d->size_bytes >> SECTOR_SHIFT);
	set_disk_ro(dev->disk, d->flags & RF_DISK_READ_ONLY);
	err = device_add_disk(&dev->vdev->dev, dev->disk, NULL);
	if (err)
		goto put_disk;
	return 0;
put_disk:
	put_disk(dev->disk);
	dev->disk = NULL;
free_tags:
	blk_mq_free_tag_set(set);
	return err;
}

static int rfblk_probe(struct virtio_device *vdev)
{
	unsigned int nr_vqs = 1, nr_default, nr_poll;
	struct rfblk_dev *dev;
	int err;

	if (virtio_has_feature(vdev, VIRTIO_F_ACCESS_PLATFORM)) {
		dev_err(&vdev->dev, "the device sits behind an IOMMU (VIRTIO_F_ACCESS_PLATFORM); rfblk hands the device guest-physical addresses and needs one without\n");
		return -ENODEV;
	}
	if (queue_depth < 8 || queue_depth > 1024 || !is_power_of_2(queue_depth)) {
		dev_err(&vdev->dev, "queue_depth=%u: it must be a power of two from 8 to 1024\n", queue_depth);
		return -EINVAL;
	}
	if (virtio_has_feature(vdev, VIRTIO_BLK_F_MQ))
		nr_vqs = max_t(unsigned int, 1, virtio_cread16(vdev, offsetof(struct virtio_blk_config, num_queues)));
	nr_poll = min(poll_queues, nr_vqs - 1);
	nr_default = min(nr_vqs - nr_poll, num_possible_cpus());
	if (poll_queues > nr_poll)
		dev_warn(&vdev->dev, "poll_queues=%u, but the device has %u queues and one must take interrupts: %u poll queue(s)\n",
			 poll_queues, nr_vqs, nr_poll);

	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev)
		return -ENOMEM;
	dev->vdev = vdev;
	vdev->priv = dev;
	INIT_WORK(&dev->fail_work, rfblk_fail_work);
	dev->io_queues[HCTX_TYPE_DEFAULT] = nr_default;
	dev->io_queues[HCTX_TYPE_POLL] = nr_poll;
	dev->index = ida_alloc_range(&rfblk_index_ida, 0, (1 << MINORBITS) / RFBLK_MINORS - 1, GFP_KERNEL);
	if (dev->index < 0) {
		err = dev->index;
		goto free_dev;
	}
	err = rfblk_attach_rings(dev, nr_default, nr_poll);
	if (err)
		goto detach;
	err = rfblk_add_disk(dev);
	if (err)
		goto detach;
	dev_info(&vdev->dev, "%s: %llu bytes, block %u, max transfer %u%s; %u ring(s) of %u entries in %s mode, %u polled\n",
		 dev->disk->disk_name, dev->rings[0].disk.size_bytes, dev->rings[0].disk.logical_block_size,
		 dev->rings[0].disk.max_transfer, dev->rings[0].disk.flags & RF_DISK_READ_ONLY ? ", read-only" : "",
		 dev->nr_rings, dev->rings[0].sq_entries,
		 dev->rings[0].mode == RF_MODE_PASSTHROUGH ? "passthrough" : "mediated", nr_poll);
	return 0;
detach:
	/* A failure may have been declared by a ring while the disk was being added. */
	set_bit(RFBLK_REMOVING, &dev->flags);
	flush_work(&dev->fail_work);
	rfblk_detach_rings(dev);
	ida_free(&rfblk_index_ida, dev->index);
free_dev:
	vdev->priv = NULL;
	kfree(dev);
	return err;
}

static void rfblk_remove(struct virtio_device *vdev)
{
	struct rfblk_dev *dev = vdev->priv;

	set_bit(RFBLK_REMOVING, &dev->flags);
	/* An attach again under way ends first: it unquiesces the queue del_gendisk drains. */
	rfblk_stop_reattaches(dev);
	/* Waits for the requests in flight: the device answers them, or its failure ends them. */
	del_gendisk(dev->disk);
	flush_work(&dev->fail_work);
	rfblk_detach_rings(dev);
	put_disk(dev->disk);
	blk_mq_free_tag_set(&dev->tag_set);
	ida_free(&rfblk_index_ida, dev->index);
	vdev->priv = NULL;
	kfree(dev);
}

static const struct virtio_device_id rfblk_ids[] = {
	{ VIRTIO_ID_BLOCK, VIRTIO_DEV_ANY_ID },
	{ 0 },
};

static const unsigned int rfblk_features[] = { VIRTIO_BLK_F_MQ };

static struct virtio_driver rfblk_driver = {
	.feature_table = rfblk_features,
	.feature_table_size = ARRAY_SIZE(rfblk_features),
	.driver.name = KBUILD_MODNAME,
	.driver.owner = THIS_MODULE,
	.id_table = rfblk_ids,
	.probe = rfblk_probe,
	.remove = rfblk_remove,
};

static int __init rfblk_init(void)
{
	int err;

	rfblk_major = register_blkdev(0, "rfblk");
	if (rfblk_major < 0)
		return rfblk_major;
	err = register_virtio_driver(&rfblk_driver);
	if (err)
		unregister_blkdev(rfblk_major, "rfblk");
	return err;
}

static void __exit rfblk_exit(void)
{
	unregister_virtio_driver(&rfblk_driver);
	unregister_blkdev(rfblk_major, "rfblk");
	ida_destroy(&rfblk_index_ida);
}

module_init(rfblk_init);
module_exit(rfblk_exit);

MODULE_DEVICE_TABLE(virtio, rfblk_ids);
MODULE_DESCRIPTION("Block driver on ringfence's shared io_uring rings");
MODULE_LICENSE("GPL");
