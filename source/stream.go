package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// Stream reads the requested columns of every file that path names, like
// Read, but hands them to fn a piece at a time, in order (files in name
// order; a Parquet file's row groups in runs of at least pieceRows rows,
// a CSV file whole), while the next pieces decode: memory holds a few
// pieces' columns, never the whole source. A table passed to fn is fn's to
// keep, unless fn calls its Release: later pieces then decode into its
// memory. Errors are Read's; a column whose kind differs from the first
// file's stops the stream at that file, after fn has seen the pieces
// before it. fn's error stops the stream and is returned as is.
func Stream(ctx context.Context, path string, req []Request, opt Options, fn func(file string, t *Table) error) error {
	if len(req) == 0 {
		return fmt.Errorf("stream %s: no columns requested", path)
	}
	files, err := expand(path)
	if err != nil {
		return err
	}
	files = pruneFiles(files, opt.Time)
	type result struct {
		p     piece
		t     *Table
		bytes int64
		err   error
	}
	// Decode pieces ahead of fn, delivering in order: as many as there
	// are cores (each piece's columns decode concurrently already), so
	// that the cores stay busy while fn works. Pieces rather than whole
	// files keep the first wait and the last piece's work, which no
	// decoding overlaps, short. A piece holds a token per tokenRows of its
	// rows, up to all of them, so that memory holds about ahead pieces'
	// worth of rows ahead: one file at a time where files are read whole
	// (CSV, or a single large row group).
	ahead := max(2, runtime.GOMAXPROCS(0))
	minRows, unit := pieceRows, tokenRows // read once: tests change them
	order := make(chan chan result, ahead)
	tokens := make(chan struct{}, ahead)
	bufs := &buffers{}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(order)
		for _, name := range files {
			pieces, err := piecesOf(name, minRows)
			if err != nil {
				pieces = []piece{{file: name}} // the read says what is wrong
			}
			for _, p := range pieces {
				select {
				case <-stop:
					return
				default:
				}
				for range p.tokens(ahead, unit) {
					select {
					case tokens <- struct{}{}:
					case <-stop:
						return
					}
				}
				ch := make(chan result, 1)
				order <- ch // room: a token or more is held per channel queued
				go func() {
					t, n, err := readPiece(p, req, bufs)
					if t != nil {
						t.pool = bufs
					}
					ch <- result{p, t, n, err}
				}()
			}
		}
	}()
	var base []Kind // of the first file's columns
	baseFile := ""
	for ch := range order {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("stream %s: %w", path, err)
		}
		var r result
		select {
		case r = <-ch:
		case <-ctx.Done():
			return fmt.Errorf("stream %s: %w", path, ctx.Err())
		}
		for range r.p.tokens(ahead, unit) {
			<-tokens
		}
		if r.err != nil {
			return r.err
		}
		name := r.p.file
		if opt.Stats != nil {
			if r.p.groups.lo == 0 {
				opt.Stats.Files.Add(1)
			}
			opt.Stats.Rows.Add(int64(r.t.Rows))
			opt.Stats.Bytes.Add(r.bytes)
		}
		if r.t.Rows > 0 {
			if base == nil {
				baseFile = name
				for _, c := range r.t.Columns {
					base = append(base, c.Kind)
				}
			} else {
				for j, rq := range req {
					if err := sameKind(rq, base[j], baseFile, r.t.Columns[j].Kind, name); err != nil {
						return err
					}
				}
			}
		}
		if err := fn(name, r.t); err != nil {
			return err
		}
	}
	return nil
}

// pieceRows is the fewest rows of a piece of a Parquet file that Stream
// hands over: enough that a piece's columns are worth decoding
// concurrently, few enough that the first piece arrives early (a
// variable for tests).
var pieceRows int64 = 1 << 19

// piece is a part of a file that Stream reads and hands over at once.
type piece struct {
	file   string
	groups groups // of a Parquet file; the zero value is the whole file
	rows   int64  // its rows; 0 when unknown (a CSV file)
}

// tokenRows is the rows a token of Stream's stands for: the row group of a
// common writer (and of Write). (A variable for tests.)
var tokenRows int64 = 1 << 20

// tokens returns how many of Stream's ahead tokens the piece holds while it
// decodes and waits: one per unit (tokenRows) of its rows, from 1 to
// ahead, and ahead for a piece of unknown size.
func (p piece) tokens(ahead int, unit int64) int {
	if p.rows <= 0 {
		return ahead
	}
	return int(min(int64(ahead), max(1, (p.rows+unit-1)/unit)))
}

// piecesOf cuts a Parquet file into runs of whole row groups of at least
// minRows rows each (pieceRows; the last may hold fewer); any other file is
// one piece.
func piecesOf(name string, minRows int64) ([]piece, error) {
	if strings.ToLower(filepath.Ext(name)) != ".parquet" {
		return []piece{{file: name}}, nil
	}
	sizes, err := groupSizes(name)
	if err != nil || len(sizes) <= 1 {
		var rows int64
		for _, n := range sizes {
			rows += n
		}
		return []piece{{file: name, rows: rows}}, err
	}
	var out []piece
	lo, rows, row0 := 0, int64(0), int64(0)
	for g, n := range sizes {
		rows += n
		if rows >= minRows || g == len(sizes)-1 {
			out = append(out, piece{file: name, groups: groups{lo: lo, hi: g + 1, row0: row0}, rows: rows})
			lo, row0, rows = g+1, row0+rows, 0
		}
	}
	if len(out) == 1 {
		return []piece{{file: name, rows: out[0].rows}}, nil
	}
	return out, nil
}

// sameKind checks that column r has one kind in two files.
func sameKind(r Request, kind Kind, file string, other Kind, otherFile string) error {
	if kind == other {
		return nil
	}
	fix := "make the column the same type in every file"
	if r.Role == Key {
		fix = "write the key column with one type (all integers or all strings) in every file"
	}
	return fmt.Errorf("read: column %q is %s in %s but %s in %s; %s", r.Name, kind, file, other, otherFile, fix)
}

// Rows returns how many rows the files that path names hold, leaving out
// the files that r (which may be nil) prunes as Read and Stream do: exact
// for Parquet (from the footers, reading no data), estimated from the file
// size and the first lines for CSV (exact reports whether every file was
// Parquet). It is meant for sizing work before reading.
func Rows(path string, r *TimeRange) (rows int64, exact bool, err error) {
	files, err := expand(path)
	if err != nil {
		return 0, false, err
	}
	exact = true
	for _, name := range pruneFiles(files, r) {
		var n int64
		if strings.ToLower(filepath.Ext(name)) == ".parquet" {
			n, err = parquetRows(name)
		} else {
			exact = false
			n, err = csvRowsEstimate(name)
		}
		if err != nil {
			return 0, false, err
		}
		rows += n
	}
	return rows, exact, nil
}

// openSized opens a file and returns its size.
func openSized(name string) (*os.File, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, fmt.Errorf("count rows of %s: %w", name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("count rows of %s: %w", name, err)
	}
	return f, st.Size(), nil
}

func parquetRows(name string) (n int64, err error) {
	err = withFooter(name, func(pf *parquet.File) { n = pf.NumRows() })
	return n, err
}

// groupSizes returns the rows of each row group of a Parquet file, from
// its footer.
func groupSizes(name string) (sizes []int64, err error) {
	err = withFooter(name, func(pf *parquet.File) {
		for _, rg := range pf.RowGroups() {
			sizes = append(sizes, rg.NumRows())
		}
	})
	return sizes, err
}

// withFooter calls f with the footer of a Parquet file, read and nothing
// else.
func withFooter(name string, f func(*parquet.File)) (err error) {
	file, size, err := openSized(name)
	if err != nil {
		return err
	}
	defer file.Close()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("count rows of %s: corrupt Parquet file: %v", name, r)
		}
	}()
	pf, err := parquet.OpenFile(file, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return fmt.Errorf("count rows of %s: not a readable Parquet file (truncated or corrupt?): %w", name, err)
	}
	f(pf)
	return nil
}

// csvRowsEstimate divides the file's size by the mean length of its first
// lines.
func csvRowsEstimate(name string) (int64, error) {
	f, size, err := openSized(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	n, _ := f.Read(buf)
	lines := int64(strings.Count(string(buf[:n]), "\n"))
	if lines == 0 {
		return 1, nil
	}
	return max(size*lines/int64(n)-1, 0), nil
}
