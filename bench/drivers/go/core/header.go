package core

import "encoding/binary"

// HeaderSize is the size of the kbench header at the start of every message value.
const HeaderSize = 16

// PutHeader writes intended send time (CLOCK_MONOTONIC ns), producer index and sequence, little-endian.
func PutHeader(b []byte, intendedNs int64, producer uint16, seq int64) {
	binary.LittleEndian.PutUint64(b[0:8], uint64(intendedNs))
	binary.LittleEndian.PutUint16(b[8:10], producer)
	binary.LittleEndian.PutUint16(b[10:12], uint16(uint64(seq)>>32))
	binary.LittleEndian.PutUint32(b[12:16], uint32(uint64(seq)))
}

// ParseHeader reads a header; ok is false for a value shorter than HeaderSize (not a kbench message).
func ParseHeader(b []byte) (intendedNs int64, producer uint16, seq int64, ok bool) {
	if len(b) < HeaderSize {
		return 0, 0, 0, false
	}
	intendedNs = int64(binary.LittleEndian.Uint64(b[0:8]))
	producer = binary.LittleEndian.Uint16(b[8:10])
	seq = int64(binary.LittleEndian.Uint16(b[10:12]))<<32 | int64(binary.LittleEndian.Uint32(b[12:16]))
	return intendedNs, producer, seq, true
}
