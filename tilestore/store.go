package tilestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/gcerrors"

	// Registers the s3:// URL scheme.
	_ "gocloud.dev/blob/azureblob" // azblob:// (credentials from the usual Azure environment)
	_ "gocloud.dev/blob/gcsblob"   // gs:// (application default credentials)
	_ "gocloud.dev/blob/s3blob"    // s3:// (credentials from the usual AWS environment)
)

// Store is a tile store opened on one location. It is safe for concurrent use,
// and several processes may share one location.
type Store struct {
	location string
	bucket   *blob.Bucket
	put      putter

	bytesRead   atomic.Int64
	objectsRead atomic.Int64

	footers       footers
	footersParsed atomic.Int64 // footers parsed by loads (for tests)

	// parsed holds the last manifest read of each tile set, by the key of
	// its file, with the bytes it was parsed from.
	parsedMu sync.Mutex
	parsed   map[string]parsedManifest

	// hookBeforePublish, when set (by tests), runs after a commit has written
	// its data objects and before it creates the manifest version.
	hookBeforePublish func(ctx context.Context) error

	// fault, when set (by tests), runs before every object store operation
	// with the operation and the key; an error it returns is the operation's
	// error. It may block (a stall) until ctx is done.
	fault func(ctx context.Context, op storeOp, key string) error
}

// storeOp names an object store operation, for fault injection.
type storeOp string

// Object store operations that faults can be injected into.
const (
	opPut   storeOp = "put"   // writing an object (data or manifest), or starting to
	opWrite storeOp = "write" // writing a chunk of an object streamed to the store
	opGet   storeOp = "get"   // reading an object or a byte range of it
	opList  storeOp = "list"  // listing keys under a prefix
)

// inject runs the fault hook, if any.
func (s *Store) inject(ctx context.Context, op storeOp, key string) error {
	if s.fault == nil {
		return nil
	}
	return s.fault(ctx, op, key)
}

// streamObject starts writing an object from chunks, replacing any of that
// name (see objectStream).
func (s *Store) streamObject(ctx context.Context, key string) (objectStream, error) {
	if err := s.inject(ctx, opPut, key); err != nil {
		return nil, err
	}
	w, err := s.put.stream(ctx, key)
	if err != nil || s.fault == nil {
		return w, err
	}
	return &faultyStream{objectStream: w, s: s, ctx: ctx, key: key}, nil
}

// faultyStream is a stream whose chunk writes go through the store's fault
// injection (opWrite) first.
type faultyStream struct {
	objectStream
	s   *Store
	ctx context.Context
	key string
}

func (f *faultyStream) write(chunk []byte) error {
	if err := f.s.inject(f.ctx, opWrite, f.key); err != nil {
		return err
	}
	return f.objectStream.write(chunk)
}

// createObject writes a whole object only if none of that name exists; it
// returns an error wrapping errExists otherwise.
func (s *Store) createObject(ctx context.Context, key string, data []byte) error {
	if err := s.inject(ctx, opPut, key); err != nil {
		return err
	}
	return s.put.create(ctx, key, data)
}

// readAll reads a whole object.
func (s *Store) readAll(ctx context.Context, key string) ([]byte, error) {
	if err := s.inject(ctx, opGet, key); err != nil {
		return nil, err
	}
	return s.bucket.ReadAll(ctx, key)
}

// readRange reads length bytes of an object from offset; a short object is
// an error.
func (s *Store) readRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	if err := s.inject(ctx, opGet, key); err != nil {
		return nil, err
	}
	rd, err := s.bucket.NewRangeReader(ctx, key, offset, length, nil)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, length)
	_, err = io.ReadFull(rd, buf)
	if cerr := rd.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("bytes [%d, %d): %w", offset, offset+length, errShort)
	}
	if err != nil {
		return nil, err
	}
	return buf, nil
}

// errShort reports an object that ends before a byte range it should hold.
var errShort = errors.New("the object is shorter than the manifest records")

// errExists reports that an exclusive create found the object already there.
var errExists = errors.New("object already exists")

// putter writes objects. create writes a whole object and must be atomic:
// either the object did not exist and now holds data, or it returns
// errExists and changes nothing. stream writes an object, replacing any,
// from chunks as they are made.
type putter interface {
	create(ctx context.Context, key string, data []byte) error
	stream(ctx context.Context, key string) (objectStream, error)
}

// objectStream writes one object from chunks given in turn, each of which
// reaches the store (a local file and its disk, an upload's parts) while
// the caller makes the next. Nothing is visible under the object's name
// before finish, which makes the whole object durable and visible; abort
// leaves no object. One of the two ends every stream.
type objectStream interface {
	write(chunk []byte) error
	finish(ctx context.Context) error
	abort()
}

// Open opens the store at location: a local directory (created if missing), a
// file:// URL, or an s3://bucket/prefix?region=...&endpoint=...&use_path_style=true URL.
func Open(ctx context.Context, location string) (*Store, error) {
	if location == "" {
		return nil, fmt.Errorf("open tile store: empty location; give a directory, file:// or s3:// URL")
	}
	s := &Store{location: location}
	scheme, _, hasScheme := strings.Cut(location, "://")
	switch {
	case !hasScheme:
		if err := s.openDir(location); err != nil {
			return nil, err
		}
	case scheme == "file":
		u, err := url.Parse(location)
		if err != nil {
			return nil, fmt.Errorf("open tile store %s: %w", location, err)
		}
		dir := u.Path
		if u.Host != "" && u.Host != "localhost" {
			dir = u.Host + u.Path // file://relative/dir
		}
		if dir == "" {
			return nil, fmt.Errorf("open tile store %s: no directory in the URL; write file:///absolute/path", location)
		}
		if err := s.openDir(filepath.FromSlash(dir)); err != nil {
			return nil, err
		}
	default:
		u, err := url.Parse(location)
		if err != nil {
			return nil, fmt.Errorf("open tile store %s: %w", location, err)
		}
		prefix := strings.Trim(u.Path, "/")
		u.Path = ""
		b, err := blob.OpenBucket(ctx, u.String())
		if err != nil {
			return nil, fmt.Errorf("open tile store %s: %w", location, err)
		}
		if prefix != "" {
			b = blob.PrefixedBucket(b, prefix+"/")
		}
		s.bucket = b
		s.put = bucketPutter{b}
	}
	return s, nil
}

func (s *Store) openDir(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("open tile store %s: %w", s.location, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return fmt.Errorf("open tile store %s: create directory: %w", s.location, err)
	}
	b, err := fileblob.OpenBucket(abs, &fileblob.Options{Metadata: fileblob.MetadataDontWrite, NoTempDir: true})
	if err != nil {
		return fmt.Errorf("open tile store %s: %w", s.location, err)
	}
	s.bucket = b
	s.put = dirPutter{abs}
	return nil
}

// Close releases the store's resources.
func (s *Store) Close() error {
	if err := s.bucket.Close(); err != nil {
		return fmt.Errorf("close tile store %s: %w", s.location, err)
	}
	return nil
}

// Location returns the location the store was opened with.
func (s *Store) Location() string { return s.location }

// BytesRead returns the bytes of tile objects read by Load since Open.
func (s *Store) BytesRead() int64 { return s.bytesRead.Load() }

// ObjectsRead returns the number of tile objects read by Load since Open.
func (s *Store) ObjectsRead() int64 { return s.objectsRead.Load() }

// Manifest returns the newest manifest of a tile set, or (nil, nil) when it
// has none.
func (s *Store) Manifest(ctx context.Context, tileSet string) (*Manifest, error) {
	if err := validTileSetID(tileSet); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	versions, err := s.versions(ctx, tileSet)
	if err != nil {
		return nil, err
	}
	if len(versions) == 0 {
		return nil, nil
	}
	return s.readManifest(ctx, tileSet, versions[len(versions)-1])
}

// List returns the newest manifest of every tile set, sorted by ID.
func (s *Store) List(ctx context.Context) ([]*Manifest, error) {
	ids, err := s.tileSets(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Manifest
	for _, id := range ids {
		m, err := s.Manifest(ctx, id)
		if err != nil {
			return nil, err
		}
		if m != nil {
			out = append(out, m)
		}
	}
	return out, nil
}

// tileSets lists the tile set IDs that have a directory, sorted.
func (s *Store) tileSets(ctx context.Context) ([]string, error) {
	objs, err := s.list(ctx, tileSetsDir, "/")
	if err != nil {
		return nil, fmt.Errorf("list tile sets in %s: %w", s.location, err)
	}
	var ids []string
	for _, obj := range objs {
		if !obj.IsDir {
			continue
		}
		id := strings.TrimSuffix(strings.TrimPrefix(obj.Key, tileSetsDir), "/")
		if validTileSetID(id) == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// versions lists the manifest versions of a tile set, ascending.
func (s *Store) versions(ctx context.Context, id string) ([]int64, error) {
	prefix := manifestPrefix(id)
	objs, err := s.list(ctx, prefix, "")
	if err != nil {
		return nil, fmt.Errorf("list manifests of tile set %s in %s: %w", id, s.location, err)
	}
	var vs []int64
	for _, obj := range objs {
		if v, ok := parseVersion(strings.TrimPrefix(obj.Key, prefix)); ok {
			vs = append(vs, v)
		}
	}
	slices.Sort(vs)
	return vs, nil
}

// list returns the objects under prefix. A local directory listing fails when
// a file vanishes between reading the directory and looking at the file (a
// concurrent delete); the listing is then taken again.
func (s *Store) list(ctx context.Context, prefix, delimiter string) ([]*blob.ListObject, error) {
	for attempt := 1; ; attempt++ {
		var objs []*blob.ListObject
		if err := s.inject(ctx, opList, prefix); err != nil {
			return nil, err
		}
		it := s.bucket.List(&blob.ListOptions{Prefix: prefix, Delimiter: delimiter})
		for {
			obj, err := it.Next(ctx)
			if err == io.EOF {
				return objs, nil
			}
			if err != nil {
				if gcerrors.Code(err) == gcerrors.NotFound && attempt < 5 && ctx.Err() == nil {
					break
				}
				return nil, err
			}
			objs = append(objs, obj)
		}
	}
}

func (s *Store) readManifest(ctx context.Context, id string, version int64) (*Manifest, error) {
	m, _, _, err := s.readManifestFull(ctx, id, version)
	return m, err
}

// readManifestFull also returns the SHA-256 of the manifest version this one
// was built on and of its own bytes.
func (s *Store) readManifestFull(ctx context.Context, id string, version int64) (m *Manifest, parent, self string, err error) {
	key := manifestKey(id, version)
	b, err := s.readAll(ctx, key)
	if err != nil {
		return nil, "", "", fmt.Errorf("read manifest %s in %s: %w", key, s.location, err)
	}
	m, parent, err = s.decodeManifest(id, key, b)
	if err != nil {
		return nil, "", "", err
	}
	if m.TileSet != id || m.Version != version {
		return nil, "", "", fmt.Errorf("read manifest %s: it names tile set %q version %d; the file was copied or renamed by hand, restore the original", key, m.TileSet, m.Version)
	}
	return m, parent, sha256Hex(b), nil
}

// parsedManifest is a manifest as decodeManifest returned it from bytes b.
type parsedManifest struct {
	key    string
	b      []byte
	m      *Manifest
	parent string
}

// decodeManifest is decodeManifest, but for bytes equal to those the tile
// set's last manifest was parsed from, which it copies instead: every query
// reads the newest manifest, whose JSON (128 KB for the 1M sample's tile
// set) took a twentieth of a materialized query's time to parse.
func (s *Store) decodeManifest(id, key string, b []byte) (*Manifest, string, error) {
	s.parsedMu.Lock()
	p, ok := s.parsed[id]
	s.parsedMu.Unlock()
	if ok && p.key == key && bytes.Equal(p.b, b) {
		return p.m.clone(), p.parent, nil
	}
	m, parent, err := decodeManifest(key, b)
	if err != nil {
		return nil, "", err
	}
	s.parsedMu.Lock()
	if s.parsed == nil {
		s.parsed = map[string]parsedManifest{}
	}
	s.parsed[id] = parsedManifest{key: key, b: b, m: m.clone(), parent: parent}
	s.parsedMu.Unlock()
	return m, parent, nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// bucketPutter writes through gocloud; create uses a conditional write
// (If-None-Match: * on S3).
type bucketPutter struct{ b *blob.Bucket }

func (p bucketPutter) stream(ctx context.Context, key string) (objectStream, error) {
	// A write whose context ends before Close leaves no object.
	ctx, cancel := context.WithCancel(ctx)
	w, err := p.b.NewWriter(ctx, key, &blob.WriterOptions{ContentType: contentType(key)})
	if err != nil {
		cancel()
		return nil, err
	}
	return &blobStream{w: w, cancel: cancel}, nil
}

// blobStream uploads an object through gocloud as its chunks come.
type blobStream struct {
	w      *blob.Writer
	cancel context.CancelFunc
}

func (b *blobStream) write(chunk []byte) error {
	_, err := b.w.Write(chunk)
	return err
}

func (b *blobStream) finish(ctx context.Context) error {
	defer b.cancel()
	if err := ctx.Err(); err != nil {
		b.abort()
		return err
	}
	return b.w.Close()
}

func (b *blobStream) abort() {
	b.cancel()
	_ = b.w.Close()
}

func (p bucketPutter) create(ctx context.Context, key string, data []byte) error {
	err := p.b.WriteAll(ctx, key, data, &blob.WriterOptions{ContentType: contentType(key), IfNotExist: true})
	if err == nil {
		return nil
	}
	if gcerrors.Code(err) == gcerrors.FailedPrecondition {
		return fmt.Errorf("%w: %w", errExists, err)
	}
	// S3 answers 409 ConditionalRequestConflict when two conditional writes
	// to one key race; neither took effect for the loser.
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) && coded.ErrorCode() == "ConditionalRequestConflict" {
		return fmt.Errorf("%w: %w", errExists, err)
	}
	return err
}

func contentType(key string) string {
	if strings.HasSuffix(key, manifestExt) {
		return "application/json"
	}
	return "application/vnd.apache.parquet"
}

// dirPutter writes to a local directory: a synced temporary file, then a
// rename (stream) or a hard link that fails if the name exists (create). fileblob's
// own IfNotExist checks then renames, which two writers can both pass.
type dirPutter struct{ root string }

// localTmpDir holds temporary files of local writes, beside tilesets/ so
// that a rename or link into place stays on one file system.
const localTmpDir = ".tmp"

func (p dirPutter) create(ctx context.Context, key string, data []byte) error {
	w, err := p.open(key, true)
	if err != nil {
		return err
	}
	if err := w.write(data); err != nil {
		w.abort()
		return err
	}
	return w.finish(ctx)
}

// open starts the temporary file of a write of key.
func (p dirPutter) open(key string, exclusive bool) (*fileStream, error) {
	path := filepath.Join(p.root, filepath.FromSlash(key))
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Temporary files live outside the listed tree: listings stay stable.
	tmpDir := filepath.Join(p.root, localTmpDir)
	if err := os.MkdirAll(tmpDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(tmpDir, "*")
	if err != nil {
		return nil, err
	}
	return &fileStream{f: f, path: path, exclusive: exclusive}, nil
}

func (p dirPutter) stream(_ context.Context, key string) (objectStream, error) {
	return p.open(key, false)
}

// fileStream writes an object of a local directory: a temporary file,
// synced, then renamed (or, exclusive, hard-linked) into place.
type fileStream struct {
	f         *os.File
	path      string
	exclusive bool
	written   int64
}

// write appends chunk to the file and starts writing it to disk, so that
// the sync at finish has little left to wait for.
func (w *fileStream) write(chunk []byte) error {
	n, err := w.f.Write(chunk)
	if err != nil {
		return err
	}
	startWriteback(w.f, w.written, int64(n))
	w.written += int64(n)
	return nil
}

func (w *fileStream) finish(ctx context.Context) (err error) {
	tmp := w.f.Name()
	defer func() {
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = rerr
		}
	}()
	if err := w.f.Chmod(0o644); err != nil {
		w.f.Close()
		return err
	}
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		return err
	}
	if err := w.f.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.exclusive {
		if err := os.Link(tmp, w.path); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%w: %w", errExists, err)
			}
			return err
		}
	} else if err := os.Rename(tmp, w.path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(w.path))
}

func (w *fileStream) abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	// Some file systems cannot sync directories; the entry is still written.
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	return err
}
