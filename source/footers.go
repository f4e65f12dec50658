package source

import (
	"os"
	"sync"
	"time"
)

// footers remembers what the footers of Parquet files say (row counts,
// column statistics), so that the several questions a backfill asks of
// each file before reading it (how many rows, which files hold the time
// range, what bounds the keys and times) and an incremental run asks again
// on every round cost one footer read per file, not one per question. An
// entry holds for one version of a file: its name, size, modification time
// and inode, which a rewrite or a replacing rename changes.
var footers = footerMemo{facts: map[footerKey]footerFact{}}

// maxFooterFacts bounds the facts kept; past it, all are forgotten.
const maxFooterFacts = 1 << 16

type footerMemo struct {
	mu    sync.Mutex
	facts map[footerKey]footerFact
}

// footerKind is the question a fact answers.
type footerKind uint8

const (
	rowCount footerKind = iota
	boundsOfTimes
	boundsOfInts
)

type footerKey struct {
	name   string
	size   int64
	mod    time.Time
	inode  uint64
	column string
	kind   footerKind
}

// footerFact is a row count (lo) or a column's bounds.
type footerFact struct {
	lo, hi int64
	ok     bool
}

// get returns the fact kind of column of file name, calling read when the
// file's present version has none remembered. Errors are not remembered.
func (m *footerMemo) get(name, column string, kind footerKind, read func() (footerFact, error)) (footerFact, error) {
	st, err := os.Stat(name)
	if err != nil {
		return read() // let the read report it
	}
	k := footerKey{name: name, size: st.Size(), mod: st.ModTime(), column: column, kind: kind}
	k.inode = inodeOf(st)
	m.mu.Lock()
	v, ok := m.facts[k]
	m.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err = read()
	if err != nil {
		return v, err
	}
	m.mu.Lock()
	if len(m.facts) >= maxFooterFacts {
		clear(m.facts)
	}
	m.facts[k] = v
	m.mu.Unlock()
	return v, nil
}
