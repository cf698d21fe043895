package store

import "golang.org/x/sys/unix"

func statfsReadOnly(st *unix.Statfs_t) bool { return st.Flags&unix.ST_RDONLY != 0 }
