package tilestore

import (
	"slices"
	"sync"
	"time"
)

// objectBuffers holds the buffers that whole-object reads read into, for
// the next load: a fresh buffer costs a clearing pass and page faults, a
// seventh of the CPU of a materialized query of the 1M sample. Decoding
// copies every value out of an object's bytes, so a buffer is free once
// its load has decoded it. Unlike a sync.Pool, which every second
// collection empties (a query of that sample, started from a small heap,
// collects twice), freed buffers wait bufferIdle, and maxBufferBytes in
// all.
var objectBuffers bufferList

const maxBufferBytes = 64 << 20

// bufferIdle is how long a freed buffer waits for a load (a variable for
// tests).
var bufferIdle = 5 * time.Second

// poisonObjectBuffers, set by tests, overwrites a buffer when it is freed,
// so that a reader of a freed buffer reads junk.
var poisonObjectBuffers bool

type bufferList struct {
	mu    sync.Mutex
	list  []freedBuffer // oldest first
	bytes int64
	timer *time.Timer
}

type freedBuffer struct {
	b     *[]byte
	freed time.Time
}

// get returns a buffer of n bytes, one that waits when its capacity is at
// least n and at most 2n, to give back with put; nil when n is not a length
// a buffer can have.
func (l *bufferList) get(n int64) *[]byte {
	if n <= 0 || n >= 1<<31 {
		return nil
	}
	l.mu.Lock()
	for i := len(l.list) - 1; i >= 0; i-- {
		if c := int64(cap(*l.list[i].b)); c >= n && c <= 2*n {
			p := l.list[i].b
			l.list = slices.Delete(l.list, i, i+1)
			l.bytes -= c
			l.mu.Unlock()
			*p = (*p)[:n]
			return p
		}
	}
	l.mu.Unlock()
	b := make([]byte, n)
	return &b
}

// put frees p for a later get, dropping the oldest buffers beyond
// maxBufferBytes.
func (l *bufferList) put(p *[]byte) {
	if p == nil {
		return
	}
	if poisonObjectBuffers {
		b := (*p)[:cap(*p)]
		for i := range b {
			b[i] = 0xa5
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, freedBuffer{p, time.Now()})
	l.bytes += int64(cap(*p))
	for l.bytes > maxBufferBytes {
		l.bytes -= int64(cap(*l.list[0].b))
		l.list = slices.Delete(l.list, 0, 1)
	}
	if l.timer == nil && len(l.list) > 0 {
		l.timer = time.AfterFunc(bufferIdle, l.expire)
	}
}

// expire drops the buffers that waited bufferIdle, and waits for the others.
func (l *bufferList) expire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer = nil
	now := time.Now()
	for len(l.list) > 0 && now.Sub(l.list[0].freed) >= bufferIdle {
		l.bytes -= int64(cap(*l.list[0].b))
		l.list = slices.Delete(l.list, 0, 1)
	}
	if len(l.list) > 0 {
		l.timer = time.AfterFunc(bufferIdle-now.Sub(l.list[0].freed), l.expire)
	}
}
