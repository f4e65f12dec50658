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
// Read, but hands them to fn one file at a time, in name order, while the
// next files decode: memory holds a few files' columns, never the whole
// source. A table passed to fn is fn's to keep, unless fn calls its Release:
// later files then decode into its memory. Errors are Read's; a column
// whose kind differs from the first file's stops the stream at that file,
// after fn has seen the files before it. fn's error stops the stream and is
// returned as is.
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
		t     *Table
		bytes int64
		err   error
	}
	// Decode files ahead of fn, delivering in order: one per two cores
	// (each file's columns decode concurrently already), so that memory
	// holds few files.
	ahead := max(1, runtime.GOMAXPROCS(0)/2)
	results := make([]chan result, len(files))
	for i := range results {
		results[i] = make(chan result, 1)
	}
	tokens := make(chan struct{}, ahead)
	bufs := &buffers{}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i, name := range files {
			select {
			case tokens <- struct{}{}:
			case <-stop:
				return
			}
			go func() {
				t, n, err := readFile(name, req, bufs)
				if t != nil {
					t.pool = bufs
				}
				results[i] <- result{t, n, err}
			}()
		}
	}()
	var base []Kind // of the first file's columns
	baseFile := ""
	for i, name := range files {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("stream %s: %w", path, err)
		}
		var r result
		select {
		case r = <-results[i]:
		case <-ctx.Done():
			return fmt.Errorf("stream %s: %w", path, ctx.Err())
		}
		<-tokens
		if r.err != nil {
			return r.err
		}
		if opt.Stats != nil {
			opt.Stats.Files.Add(1)
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
	f, size, err := openSized(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("count rows of %s: corrupt Parquet file: %v", name, r)
		}
	}()
	pf, err := parquet.OpenFile(f, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return 0, fmt.Errorf("count rows of %s: not a readable Parquet file (truncated or corrupt?): %w", name, err)
	}
	return pf.NumRows(), nil
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
