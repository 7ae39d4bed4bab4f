package atomicfile

// StartWriteback asks the system to start writing bytes [off, off+n) of
// the file to disk now, without waiting for them. A writer that fills a
// large file in order calls it on each stretch it has finished, so that
// the disk works while the rest is produced and Commit's sync finds
// little left to write, instead of the whole file at once, and dirty
// pages do not pile up until the kernel throttles the writer. It is only
// a hint: where the system has no such call it does nothing, and an I/O
// error it would meet surfaces in Commit.
func (f *File) StartWriteback(off, n int64) {
	if n > 0 {
		startWriteback(f.File, off, n)
	}
}
