package core

import (
	"fmt"
	"time"
	_ "unsafe" // go:linkname

	"golang.org/x/sys/unix"
)

// nanotime is the Go runtime's monotonic clock: on Linux it is clock_gettime(CLOCK_MONOTONIC) read
// through the vDSO (no system call), the same clock as unix.ClockGettime(unix.CLOCK_MONOTONIC) and as
// Python's time.monotonic_ns(). runtime.nanotime is one of the symbols the runtime keeps linknamable
// (go.dev/issue/67401). CheckClock proves at start-up that both readings agree.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// Now is CLOCK_MONOTONIC in nanoseconds, cheap enough for every message.
func Now() int64 { return nanotime() }

var wallBase, monoBase = func() (int64, int64) { w := time.Now(); return w.UnixNano(), Now() }()

// Wall converts a CLOCK_MONOTONIC reading into a wall-clock time (for record timestamps), so a driver that
// already read the clock does not make the client read it again for every record.
func Wall(mono int64) time.Time { return time.Unix(0, wallBase+mono-monoBase) }

// SysNow reads CLOCK_MONOTONIC with a real clock_gettime system call.
func SysNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

// CheckClock fails unless Now() lies between two clock_gettime(CLOCK_MONOTONIC) readings.
func CheckClock() error {
	for i := 0; i < 3; i++ {
		a := SysNow()
		b := Now()
		c := SysNow()
		if a <= b && b <= c {
			return nil
		}
	}
	return fmt.Errorf("runtime.nanotime is not CLOCK_MONOTONIC on this platform")
}
