package tilestore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Problem is one inconsistency Verify found in a tile set.
type Problem struct {
	Object  string // the object's name, or "" for the manifest itself
	Message string
}

// String describes the problem for people.
func (p Problem) String() string {
	if p.Object == "" {
		return "manifest: " + p.Message
	}
	return p.Object + ": " + p.Message
}

// Verify checks the newest manifest of a tile set against the store: every
// listed object exists with the recorded size, SHA-256 and CRC-32C (and the
// row group and footer checksums that ranged reads use match it), decodes, is sorted
// and lies within its recorded range and the coverage; no tile is held twice;
// the coverage is sorted and non-overlapping. It returns the problems found;
// the error is for failures to check at all (an unknown tile set, an
// unreachable store).
func (s *Store) Verify(ctx context.Context, tileSet string) ([]Problem, error) {
	m, err := s.Manifest(ctx, tileSet)
	if err != nil {
		return nil, fmt.Errorf("verify tile set %s: %w", tileSet, err)
	}
	if m == nil {
		return nil, fmt.Errorf("verify tile set %s: no such tile set in %s", tileSet, s.location)
	}
	var problems []Problem
	add := func(obj, format string, args ...any) {
		problems = append(problems, Problem{Object: obj, Message: fmt.Sprintf(format, args...)})
	}
	for i, r := range m.Coverage {
		if r.Empty() {
			add("", "coverage range %d [%d, %d) is empty", i, r.From, r.To)
		}
		if i > 0 && m.Coverage[i-1].To >= r.From {
			add("", "coverage ranges %d and %d are out of order, overlap or touch", i-1, i)
		}
	}
	seen := map[string]bool{}
	all := newSet(m.Needs, m.StringKeys)
	for _, o := range m.Objects {
		if seen[o.Name] {
			add(o.Name, "listed twice")
			continue
		}
		seen[o.Name] = true
		if o.Rows > 0 && !m.Covers(o.Range()) {
			add(o.Name, "holds tiles in [%d, %d), outside the coverage", o.From, o.To)
		}
		data, err := s.readObject(ctx, m, o)
		switch {
		case errors.Is(err, ErrMissingObject), errors.Is(err, ErrChecksum):
			add(o.Name, "%v", err)
			continue
		case err != nil:
			return problems, fmt.Errorf("verify tile set %s: %w", tileSet, err)
		}
		if err := decodeObject(m, o, data, Range{math.MinInt64, math.MaxInt64}, nil, all); err != nil {
			add(o.Name, "%v", err)
		}
		// The read checked the CRC-32C where there is one; the SHA-256 that
		// names the content must match too, and so must the checksums
		// ranged reads use.
		if o.CRC32C != "" {
			if bad := (recordedSum{sha: o.SHA256}).mismatch(data); bad != "" {
				add(o.Name, "%s, while the CRC-32C matches: the object or the manifest is damaged", bad)
			}
		}
		if len(o.RowGroups) > 0 {
			if bad := o.footerSum().mismatch(data[o.Footer:]); bad != "" {
				add(o.Name, "the footer (bytes [%d, %d)): %s", o.Footer, o.Bytes, bad)
			}
		}
		for i, g := range o.RowGroups {
			if bad := g.sum().mismatch(data[g.Offset : g.Offset+g.Length]); bad != "" {
				add(o.Name, "row group %d (bytes [%d, %d)): %s", i, g.Offset, g.Offset+g.Length, bad)
			}
		}
	}
	sortSet(all)
	if i := firstDuplicate(all); i >= 0 {
		add("", "key %s bucket start %d is held by two objects", keyText(all, i), all.Start[i])
	}
	return problems, nil
}

// keepVersions is how many of the newest manifest versions GC always keeps.
const keepVersions = 10

// GC removes what no current manifest needs, for every tile set: manifest
// versions older than the newest ten, and data objects that no remaining
// manifest version lists. Only manifests and objects last modified more than
// olderThan ago are removed. Data of a commit in flight is not listed yet, so
// olderThan must exceed the time a commit takes from writing its data to
// publishing its manifest; Commit re-writes data that waited 20 minutes, so an
// hour is safe. It returns the keys it removed.
func (s *Store) GC(ctx context.Context, olderThan time.Duration) (removed []string, err error) {
	ids, err := s.tileSets(ctx)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	cutoff := time.Now().Add(-olderThan)
	for _, id := range ids {
		r, err := s.gcTileSet(ctx, id, cutoff)
		removed = append(removed, r...)
		if err != nil {
			return removed, fmt.Errorf("gc tile set %s: %w", id, err)
		}
	}
	if p, ok := s.put.(dirPutter); ok {
		r, err := p.removeTemp(cutoff)
		removed = append(removed, r...)
		if err != nil {
			return removed, fmt.Errorf("gc: %w", err)
		}
	}
	return removed, nil
}

// removeTemp removes temporary files that crashed writes left behind.
func (p dirPutter) removeTemp(cutoff time.Time) ([]string, error) {
	dir := filepath.Join(p.root, localTmpDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || e.IsDir() || info.ModTime().After(cutoff) {
			continue // gone already, or possibly still being written
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, localTmpDir+"/"+e.Name())
	}
	return removed, nil
}

func (s *Store) gcTileSet(ctx context.Context, id string, cutoff time.Time) (removed []string, err error) {
	versions, err := s.versions(ctx, id)
	if err != nil {
		return nil, err
	}
	// Prune old manifest versions; a writer that still builds on one of them
	// notices (see Commit) and retries on the newest.
	keep := versions
	if len(versions) > keepVersions {
		old := versions[:len(versions)-keepVersions]
		keep = versions[len(versions)-keepVersions:]
		for i, v := range old {
			key := manifestKey(id, v)
			attrs, err := s.bucket.Attributes(ctx, key)
			if err != nil {
				return removed, err
			}
			if attrs.ModTime.After(cutoff) {
				keep = append(old[i:len(old):len(old)], keep...)
				break
			}
			if err := s.bucket.Delete(ctx, key); err != nil {
				return removed, err
			}
			removed = append(removed, key)
		}
	}
	referenced := map[string]bool{}
	for _, v := range keep {
		m, err := s.readManifest(ctx, id, v)
		if err != nil {
			return removed, err // never delete data on a manifest that cannot be read
		}
		for _, o := range m.Objects {
			referenced[o.Name] = true
		}
	}
	prefix := dataPrefix(id)
	objs, err := s.list(ctx, prefix, "")
	if err != nil {
		return removed, err
	}
	for _, obj := range objs {
		name := strings.TrimPrefix(obj.Key, prefix)
		garbage := strings.HasSuffix(name, dataExt) && !strings.Contains(name, "/") && !referenced[name]
		if !garbage || obj.ModTime.After(cutoff) {
			continue
		}
		if err := s.bucket.Delete(ctx, obj.Key); err != nil {
			return removed, err
		}
		removed = append(removed, obj.Key)
	}
	return removed, nil
}
