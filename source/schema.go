package source

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// inferRows is how many CSV rows Schema looks at to guess column kinds.
const inferRows = 1000

// Schema lists the columns of the first file that path names, with the kinds
// Read(AsIs) gives them. CSV columns are the exception: their kind is inferred
// from the first 1000 rows (int64, float64, or timestamp if every non-empty
// value parses as one, else string). Parquet columns that Read cannot read
// (nested, repeated or of an unsupported type) are left out. Schema is meant
// for validating configurations before reading.
func Schema(path string) ([]ColumnInfo, error) {
	files, err := expand(path)
	if err != nil {
		return nil, err
	}
	name := files[0]
	switch strings.ToLower(filepath.Ext(name)) {
	case ".parquet":
		return parquetSchema(name)
	case ".csv":
		return csvSchema(name)
	}
	return nil, fmt.Errorf("schema of %s: unsupported file type %q; use .parquet or .csv files", name, filepath.Ext(name))
}

func parquetSchema(name string) (info []ColumnInfo, err error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("schema of %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("schema of %s: %w", name, err)
	}
	defer func() {
		if r := recover(); r != nil {
			info, err = nil, fmt.Errorf("schema of %s: corrupt Parquet file: %v", name, r)
		}
	}()
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("schema of %s: not a readable Parquet file (truncated or corrupt?): %w", name, err)
	}
	for _, c := range pf.Root().Columns() {
		if !c.Leaf() || c.Repeated() {
			continue
		}
		pt, err := typeOf(c)
		if err != nil {
			continue
		}
		info = append(info, ColumnInfo{Name: c.Name(), Kind: pt.kind})
	}
	return info, nil
}

func csvSchema(name string) ([]ColumnInfo, error) {
	f, r, header, err := openCSV(name)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	defer f.Close()
	// Per column, the kinds every value seen so far parses as.
	const canInt, canFloat, canTime = 1, 2, 4
	can := make([]uint8, len(header))
	seen := make([]bool, len(header))
	for i := range can {
		can[i] = canInt | canFloat | canTime
	}
	for n := 0; n < inferRows; n++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("schema of %s: %w", name, err)
		}
		for j, s := range rec {
			if s == "" || can[j] == 0 {
				continue
			}
			seen[j] = true
			if can[j]&canInt != 0 {
				if _, err := strconv.ParseInt(s, 10, 64); err != nil {
					can[j] &^= canInt
				}
			}
			if can[j]&canFloat != 0 {
				if _, err := strconv.ParseFloat(s, 64); err != nil { // NaN and Inf parse: the column is numeric, and Read reports their line
					can[j] &^= canFloat
				}
			}
			if can[j]&canTime != 0 {
				if _, ok := parseTime(s); !ok {
					can[j] &^= canTime
				}
			}
		}
	}
	info := make([]ColumnInfo, len(header))
	for j, h := range header {
		k := String
		switch {
		case !seen[j]:
		case can[j]&canInt != 0:
			k = Int64
		case can[j]&canFloat != 0:
			k = Float64
		case can[j]&canTime != 0:
			k = Timestamp
		}
		info[j] = ColumnInfo{Name: h, Kind: k}
	}
	return info, nil
}
