//go:build linux

package userspace

import (
	"golang.org/x/sys/unix"
)

// TUN offload flags of include/uapi/linux/if_tun.h.
const (
	tunFCsum = 0x01
	tunFTSO4 = 0x02
	tunFTSO6 = 0x04
)

// enableOffload asks the kernel to hand the TUN reader TCP super-segments
// with partial checksums rather than cutting and summing them itself: one
// read for up to 64 KiB of a TCP stream. It says whether the kernel agreed.
func enableOffload(fd int) bool {
	return unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6) == nil
}

// Sizes of the offloading outbound path.
const (
	// vnetReads is how many packets (each up to 64 KiB) one wake-up reads.
	vnetReads = 8
	// segBufs is how many segments are cut before the batch is sent.
	segBufs = 128
)

// outboundVnet is outbound for a TUN device with vnet headers: a packet
// read may be a TCP super-segment, cut here into packets of at most the
// MTU, each sealed into its own ESP packet; a packet with a partial
// checksum has it completed. What goes on the wire is what the kernel
// would have cut.
func (b *Backend) outboundVnet() {
	n := vnetReads
	maxPkt := b.cfg.MTU
	bufs := make([][]byte, n)
	lens := make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, headRoom+maxDatagram+tailRoom)
	}
	segs := make([][]byte, segBufs)
	for i := range segs {
		segs[i] = make([]byte, headRoom+maxPkt+tailRoom)
	}
	var got int
	var rerr unix.Errno
	read := func(fd uintptr) bool {
		// The vnet header goes just before the packet, into head room
		// that sealing reuses.
		got, rerr = readTUNBatch(fd, bufs, lens, headRoom-vnetHdrLen, headRoom+maxDatagram)
		return got > 0 || rerr != 0
	}
	tx := newTxBatch(n+segBufs, b.udp.gso)
	var f flow
	var h vnetHdr
	var sg segmenter
	for {
		if !b.tunBatch(read, &got, &rerr) {
			return
		}
		if got == 0 {
			continue
		}
		t := b.tables.Load()
		used := 0
		for i := range got {
			if lens[i] < vnetHdrLen {
				b.st.malformed.Add(1)
				continue
			}
			buf := bufs[i]
			h.decode(buf[headRoom-vnetHdrLen:])
			pkt := buf[headRoom : headRoom+lens[i]-vnetHdrLen]
			if h.gsoType == vnetGSONone {
				if h.flags&vnetFlagNeedsCsum != 0 && completeChecksum(pkt, &h) != nil {
					b.st.malformed.Add(1)
					continue
				}
				b.st.tunRead.Add(1)
				if tx.full() {
					b.flushTx(tx)
				}
				b.sealOne(t, &f, buf, len(pkt), tx)
				continue
			}
			if sg.init(pkt, &h, maxPkt) != nil {
				b.st.malformed.Add(1)
				continue
			}
			b.st.offload.Add(1)
			b.st.tunRead.Add(uint64(sg.segments()))
			for !sg.done() {
				if used == len(segs) || tx.full() {
					// Out of segment buffers: send what they hold.
					b.flushTx(tx)
					used = 0
				}
				k := sg.next(segs[used][headRoom:])
				b.sealOne(t, &f, segs[used], k, tx)
				used++
			}
		}
		b.flushTx(tx)
	}
}

// flushTx sends what tx holds, counting failures.
func (b *Backend) flushTx(tx *txBatch) {
	if errs := tx.flush(b.udp.rc); errs != 0 {
		b.st.sendErrors.Add(errs)
	}
}
