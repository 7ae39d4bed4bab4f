package ldlq

import (
	"hash/maphash"
	"sync"
	"unsafe"
)

// cachedMin is the fewest columns whose factors are remembered: below it
// factoring costs little more than hashing the Hessian.
const cachedMin = 256

// cacheEntries is how many factors are remembered. A layer's matrices
// that share an input (query, key and value; gate and up) are coded one
// after another, each encoding may drive several codings of its matrix,
// and column steps factor the same Hessian first: two entries catch all
// of these while holding at most two N×N float32 factors.
const cacheEntries = 2

// cacheKey identifies a factorization by the Hessian's contents: two
// independent 64-bit hashes of its bytes, so that a Hessian read back
// into a new buffer still hits and a reused buffer with other contents
// misses.
type cacheKey struct {
	n        int
	damp     float64
	sum, alt uint64
}

type cacheEntry struct {
	key  cacheKey
	done chan struct{} // closed when f and err are set
	f    *Factor
	err  error
}

var factorCache struct {
	mu      sync.Mutex
	entries []*cacheEntry // least recently used first
}

var hashSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// factorizeCached is factorize, remembering the last cacheEntries results
// for Hessians of at least cachedMin columns. A Factor is immutable, so
// callers may share it; concurrent calls for one Hessian wait for one
// factorization.
func factorizeCached(h []float64, n int, damp float64) (*Factor, error) {
	if n < cachedMin || len(h) != n*n {
		return factorize(h, n, damp)
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&h[0])), len(h)*8)
	key := cacheKey{n, damp, maphash.Bytes(hashSeeds[0], b), maphash.Bytes(hashSeeds[1], b)}
	c := &factorCache
	c.mu.Lock()
	for i, e := range c.entries {
		if e.key == key {
			c.entries = append(append(c.entries[:i:i], c.entries[i+1:]...), e)
			c.mu.Unlock()
			<-e.done
			return e.f, e.err
		}
	}
	e := &cacheEntry{key: key, done: make(chan struct{})}
	c.entries = append(c.entries, e)
	if len(c.entries) > cacheEntries {
		c.entries = append(c.entries[:0], c.entries[1:]...)
	}
	c.mu.Unlock()
	e.f, e.err = factorize(h, n, damp)
	close(e.done)
	return e.f, e.err
}
