package core

import "golang.org/x/sys/unix"

func nanosleep(d int64) {
	ts := unix.NsecToTimespec(d)
	_ = unix.Nanosleep(&ts, nil)
}
