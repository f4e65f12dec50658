package source

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// Read reads the requested columns (nil req means every column of the first
// file, AsIs) of every file that path names: a file, a glob, or a directory
// (all *.parquet and *.csv files directly in it). Files are read concurrently
// and concatenated in name order; rows keep their file order.
//
// Errors name the file and, where it applies, the row (Parquet, 1-based) or
// line (CSV) and the column: a path matching nothing, a missing column (the
// columns present are listed), a column of the wrong type for its role, a
// corrupt Parquet file, a file with no rows (a CSV with a header and no rows
// is fine and gives 0 rows), and a column whose kind differs between files.
func Read(path string, req []Request, opt Options) (*Table, error) {
	files, err := expand(path)
	if err != nil {
		return nil, err
	}
	files = pruneFiles(files, opt.Time)
	tables := make([]*Table, len(files))
	errs := make([]error, len(files))
	var byteCounts = make([]int64, len(files))

	first := 0
	if req == nil {
		// The first file decides the column set.
		tables[0], byteCounts[0], errs[0] = readFile(files[0], nil, nil)
		if errs[0] != nil {
			return nil, errs[0]
		}
		req = make([]Request, len(tables[0].Columns))
		for i, c := range tables[0].Columns {
			req[i] = Request{Name: c.Name, Role: AsIs}
		}
		first = 1
	}

	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	for i := first; i < len(files); i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tables[i], byteCounts[i], errs[i] = readFile(files[i], req, nil)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	if opt.Stats != nil {
		for i, t := range tables {
			opt.Stats.Files.Add(1)
			opt.Stats.Rows.Add(int64(t.Rows))
			opt.Stats.Bytes.Add(byteCounts[i])
		}
	}
	return concat(files, tables, req)
}

// readFile reads one file, choosing the format by its extension.
func readFile(name string, req []Request, bufs *buffers) (*Table, int64, error) {
	return readPiece(piece{file: name}, req, bufs)
}

// readPiece reads one piece of a file: a run of a Parquet file's row
// groups, or a whole file.
func readPiece(p piece, req []Request, bufs *buffers) (*Table, int64, error) {
	name := p.file
	switch strings.ToLower(filepath.Ext(name)) {
	case ".parquet":
		return readParquet(name, req, bufs, p.groups)
	case ".csv":
		return readCSV(name, req)
	}
	return nil, 0, fmt.Errorf("read %s: unsupported file type %q; use .parquet or .csv files", name, filepath.Ext(name))
}

// expand resolves path to the files it names, sorted by name.
func expand(path string) ([]string, error) {
	if path == "" {
		return nil, errors.New("read: empty path; give a file, a glob or a directory")
	}
	st, err := os.Stat(path)
	if err == nil {
		if !st.IsDir() {
			return []string{path}, nil
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("read directory %s: %w", path, err)
		}
		var files []string
		for _, e := range entries {
			ext := strings.ToLower(filepath.Ext(e.Name()))
			if e.Type().IsRegular() && (ext == ".parquet" || ext == ".csv") {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("read directory %s: it holds no .parquet or .csv file", path)
		}
		sort.Strings(files)
		return files, nil
	}
	if !strings.ContainsAny(path, "*?[") {
		return nil, fmt.Errorf("read %s: path matches no file: %w", path, err)
	}
	matches, gerr := filepath.Glob(path)
	if gerr != nil {
		return nil, fmt.Errorf("read %s: bad glob pattern: %w", path, gerr)
	}
	var files []string
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && !st.IsDir() {
			files = append(files, m)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("read %s: glob matches no file", path)
	}
	sort.Strings(files)
	return files, nil
}

// concat joins per-file tables column by column. Every table holds the
// columns of req in order.
func concat(files []string, tables []*Table, req []Request) (*Table, error) {
	if len(tables) == 1 {
		return tables[0], nil
	}
	total := 0
	for _, t := range tables {
		total += t.Rows
	}
	out := &Table{Rows: total, Columns: make([]*Column, len(req))}
	// Files without rows (a CSV with only a header) cannot tell a key's kind;
	// they take the kind of the others.
	baseFile := 0
	for i, t := range tables {
		if t.Rows > 0 {
			baseFile = i
			break
		}
	}
	for j, r := range req {
		base := tables[baseFile].Columns[j]
		anyNull := false
		for i, t := range tables {
			c := t.Columns[j]
			if t.Rows == 0 {
				continue
			}
			if err := sameKind(r, base.Kind, files[baseFile], c.Kind, files[i]); err != nil {
				return nil, err
			}
			anyNull = anyNull || c.Valid != nil
		}
		col := &Column{Name: base.Name, Kind: base.Kind}
		switch base.Kind {
		case Int64, Timestamp:
			col.Ints = make([]int64, 0, total)
		case Float64:
			col.Floats = make([]float64, 0, total)
		case String:
			col.Strs = make([]string, 0, total)
		case Bool:
			col.Bools = make([]bool, 0, total)
		}
		if anyNull {
			col.Valid = make([]bool, 0, total)
		}
		for _, t := range tables {
			if t.Rows == 0 {
				continue
			}
			c := t.Columns[j]
			col.Ints = append(col.Ints, c.Ints...)
			col.Floats = append(col.Floats, c.Floats...)
			col.Strs = append(col.Strs, c.Strs...)
			col.Bools = append(col.Bools, c.Bools...)
			if anyNull {
				if c.Valid != nil {
					col.Valid = append(col.Valid, c.Valid...)
				} else {
					n := len(col.Valid)
					col.Valid = col.Valid[:n+t.Rows]
					fillTrue(col.Valid[n:])
				}
			}
		}
		out.Columns[j] = col
	}
	return out, nil
}

func fillTrue(b []bool) {
	for i := range b {
		b[i] = true
	}
}
