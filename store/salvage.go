package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// Badger's value meta bits (value.go), for reading tables directly.
const (
	metaDelete       = 1 << 0
	metaValuePointer = 1 << 1
)

// Salvaged is what SalvageWebhooks could read.
type Salvaged struct {
	// Webhooks are the newest live version of every registration found,
	// by id.
	Webhooks []*rswebhooks.Webhook
	// Problems says what could not be read (a damaged table, a webhook
	// whose value lives in the value log, one that does not decode).
	Problems []string
}

// SalvageWebhooks reads the webhook registrations out of a data directory
// that Badger cannot open (a damaged MANIFEST, for instance) without changing
// it: each table file is read on its own, and the memtable logs are replayed
// in a scratch copy; for each registration the newest version wins and
// deleted ones stay deleted.
func SalvageWebhooks(dir string) (*Salvaged, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("store: salvage %s: %w", dir, err)
	}
	newest := map[string]salvageVersion{}
	var problems []string
	keep := func(key string, v salvageVersion) {
		if cur, ok := newest[key]; !ok || v.ts > cur.ts {
			newest[key] = v
		}
	}
	prefix := []byte(pWebhook)
	var mems []string
	for _, e := range entries {
		name := e.Name()
		switch filepath.Ext(name) {
		case ".mem":
			mems = append(mems, name)
			continue
		case ".sst":
		default:
			continue
		}
		id, _ := strconv.ParseUint(strings.TrimSuffix(name, ".sst"), 10, 64)
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			problems = append(problems, fmt.Sprintf("table %s: %v", name, err))
			continue
		}
		vs, err := readTableWebhooks(data, id, prefix, name)
		if err != nil {
			problems = append(problems, fmt.Sprintf("table %s is damaged: %v", name, err))
			continue
		}
		for _, v := range vs {
			keep(v.key, v.salvageVersion)
		}
	}
	if len(mems) > 0 {
		err := replayMemtables(dir, mems, func(key string, ts uint64, value []byte, gone bool, verr error) {
			if verr != nil {
				problems = append(problems, fmt.Sprintf("%s (memtable log): %v", key, verr))
				return
			}
			keep(key, salvageVersion{ts: ts, value: value, gone: gone, where: "memtable log"})
		})
		if err != nil {
			problems = append(problems, fmt.Sprintf("memtable logs %s: %v", strings.Join(mems, ", "), err))
		}
	}
	out := &Salvaged{Problems: problems}
	keys := make([]string, 0, len(newest))
	for k := range newest {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := newest[k]
		if v.gone {
			continue
		}
		if v.vptr != nil {
			val, err := readValueLog(dir, []byte(k), v.vptr)
			if err != nil {
				out.Problems = append(out.Problems, fmt.Sprintf("webhook %s: its value in the value log (%s) cannot be read: %v", strings.TrimPrefix(k, pWebhook), v.where, err))
				continue
			}
			v.value = val
		}
		var w rswebhooks.Webhook
		if err := json.Unmarshal(v.value, &w); err != nil {
			out.Problems = append(out.Problems, fmt.Sprintf("webhook %s: does not decode: %v", strings.TrimPrefix(k, pWebhook), err))
			continue
		}
		out.Webhooks = append(out.Webhooks, &w)
	}
	return out, nil
}

// replayMemtables copies the memtable logs into a scratch directory, lets
// Badger replay them there (with no MANIFEST and no tables) and reports
// every version of every w/ key.
func replayMemtables(dir string, mems []string, found func(key string, ts uint64, value []byte, gone bool, err error)) error {
	tmp, err := os.MkdirTemp("", "rswebhooks-salvage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// The value logs come along: memtable entries may point into them
	// (values of DefaultValueThreshold and more). Copies, because Badger
	// replaying the logs may truncate the last value log.
	vlogs, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	for _, v := range vlogs {
		mems = append(mems, filepath.Base(v))
	}
	for _, m := range mems {
		if err := copyFile(filepath.Join(dir, m), filepath.Join(tmp, m)); err != nil {
			return err
		}
	}
	f, _ := readFormat(dir)
	mt := max(f.MemTableSize, int64(DefaultMemTableSize))
	bdb, err := badger.Open(badger.DefaultOptions(tmp).WithLogger(newBadgerLogger(zerolog.Nop(), 0)).
		WithMemTableSize(mt).WithValueLogFileSize(64 << 20).WithValueThreshold(DefaultValueThreshold).
		WithBlockCacheSize(0).WithCompression(options.None).WithIndexCacheSize(1 << 20).WithMetricsEnabled(false))
	if err != nil {
		return err
	}
	defer bdb.Close()
	return bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pWebhook), AllVersions: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			key := string(item.KeyCopy(nil))
			if item.IsDeletedOrExpired() {
				found(key, item.Version(), nil, true, nil)
				continue
			}
			v, err := item.ValueCopy(nil)
			found(key, item.Version(), v, false, err)
		}
		return nil
	})
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// CheckResult describes a store that opened.
type CheckResult struct {
	ActiveWebhooks, PausedWebhooks int
	PendingDeliveries              int
	LSMBytes, VlogBytes            int64
}

// Check opens the store in opts.Dir without waiting for its lock, verifies
// the checksums of its tables, and reports what it holds. The error says
// why it cannot be opened (ErrLocked: a running daemon holds it).
func Check(opts Options) (*CheckResult, error) {
	opts.LockWait = -1
	db, err := Open(opts)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := db.bdb.Load().VerifyChecksum(); err != nil {
		return nil, fmt.Errorf("store: %s: checksums: %w", opts.Dir, err)
	}
	ctx := context.Background()
	var r CheckResult
	counts, err := db.CountWebhooks(ctx)
	if err != nil {
		return nil, err
	}
	r.ActiveWebhooks, r.PausedWebhooks = counts.Active+counts.OwnerMissing, counts.Paused
	if r.PendingDeliveries, _, err = db.QueueStats(ctx); err != nil {
		return nil, err
	}
	r.LSMBytes, r.VlogBytes = db.Size()
	return &r, nil
}

// RepairResult says what Repair did.
type RepairResult struct {
	// Healthy: the store opened, nothing was changed.
	Healthy bool
	// Aside is where the damaged directory was moved (kept for analysis
	// and for anything Repair could not carry over).
	Aside string
	// Export is the JSON file (in Aside) of the salvaged registrations.
	Export string
	// Restored are the ids of the registrations written to the new store.
	Restored []string
	// Problems says what could not be carried over.
	Problems []string
}

// Repair makes opts.Dir openable again when Badger refuses it: it salvages
// the webhook registrations (SalvageWebhooks), exports them to
// webhooks-export.json, moves the damaged directory aside (DIR.damaged-
// <time>), creates a new store in DIR and writes the registrations into it.
// Events and deliveries are not carried over. A store that opens is left
// alone (Healthy); a locked one is refused with ErrLocked.
func Repair(opts Options, now time.Time) (*RepairResult, error) {
	probe := opts
	probe.LockWait = -1
	db, err := Open(probe)
	if err == nil {
		return &RepairResult{Healthy: true}, db.Close()
	}
	if errors.Is(err, ErrLocked) {
		return nil, err
	}
	s, serr := SalvageWebhooks(opts.Dir)
	if serr != nil {
		return nil, serr
	}
	res := &RepairResult{Problems: s.Problems}
	res.Aside = strings.TrimRight(opts.Dir, `/\`) + ".damaged-" + now.UTC().Format("20060102T150405Z")
	if err := os.Rename(opts.Dir, res.Aside); err != nil {
		return nil, fmt.Errorf("store: repair: move %s aside: %w", opts.Dir, err)
	}
	res.Export = filepath.Join(res.Aside, "webhooks-export.json")
	b, err := json.MarshalIndent(s.Webhooks, "", "  ") //nolint:gosec // G117: the export restores webhooks, secrets included (file 0600)
	if err != nil {
		return nil, err
	}
	if err := writeSynced(res.Export, append(b, '\n')); err != nil {
		return nil, fmt.Errorf("store: repair: export registrations: %w", err)
	}
	db, err = Open(opts)
	if err != nil {
		return res, fmt.Errorf("store: repair: create a new store in %s: %w", opts.Dir, err)
	}
	for _, w := range s.Webhooks {
		if err := db.CreateWebhook(context.Background(), w); err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("webhook %s: not restored: %v", w.ID, err))
			continue
		}
		res.Restored = append(res.Restored, w.ID)
	}
	return res, db.Close()
}

// salvageVersion is one version of a registration found by SalvageWebhooks.
type salvageVersion struct {
	ts    uint64
	value []byte
	vptr  []byte // the value is in the value log, here
	gone  bool
	where string
}

// readValueLog reads the value of key that a table's value pointer vptr
// locates in the value log of dir: Badger's pointer (file id, length,
// offset, each a uint32 in the machine's byte order: the struct's memory)
// and entry layout (header: meta, user meta, then key length, value length
// and expiry as uvarints; key with its version; value; CRC-32 Castagnoli of
// all that, big-endian). The file is only read.
func readValueLog(dir string, key, vptr []byte) ([]byte, error) {
	if len(vptr) < 12 {
		return nil, fmt.Errorf("value pointer of %d bytes", len(vptr))
	}
	u32 := binary.NativeEndian.Uint32
	fid, n, off := u32(vptr[0:4]), u32(vptr[4:8]), u32(vptr[8:12])
	name := filepath.Join(dir, fmt.Sprintf("%06d.vlog", fid))
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, int64(off)); err != nil {
		return nil, fmt.Errorf("%s at %d: %w", filepath.Base(name), off, err)
	}
	if len(buf) < 2+3+crc32.Size {
		return nil, fmt.Errorf("%s at %d: entry of %d bytes", filepath.Base(name), off, len(buf))
	}
	body, sum := buf[:len(buf)-crc32.Size], buf[len(buf)-crc32.Size:]
	if crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)) != binary.BigEndian.Uint32(sum) {
		return nil, fmt.Errorf("%s at %d: checksum mismatch", filepath.Base(name), off)
	}
	i := 2
	var lens [3]uint64
	for j := range lens {
		v, c := binary.Uvarint(body[i:])
		if c <= 0 {
			return nil, fmt.Errorf("%s at %d: damaged entry header", filepath.Base(name), off)
		}
		lens[j], i = v, i+c
	}
	rest := body[i:]
	klen, vlen := lens[0], lens[1]
	if klen > uint64(len(rest)) || vlen != uint64(len(rest))-klen {
		return nil, fmt.Errorf("%s at %d: entry lengths do not add up", filepath.Base(name), off)
	}
	k, v := rest[:klen], rest[klen:]
	if !bytes.Equal(y.ParseKey(k), key) {
		return nil, fmt.Errorf("%s at %d: holds key %q, not %q", filepath.Base(name), off, y.ParseKey(k), key)
	}
	return bytes.Clone(v), nil
}

type keyedVersion struct {
	key string
	salvageVersion
}

// readTableWebhooks reads the versions of the keys under prefix from one
// table file. A table does not say how its blocks are compressed (the
// MANIFEST does), so it tries Snappy (the current profile) and then none
// (earlier releases); Badger panics on blocks it cannot parse.
func readTableWebhooks(data []byte, id uint64, prefix []byte, name string) ([]keyedVersion, error) {
	var first error
	for _, c := range []options.CompressionType{options.Snappy, options.None} {
		vs, err := readTableWith(data, id, prefix, name, c)
		if err == nil {
			return vs, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

func readTableWith(data []byte, id uint64, prefix []byte, name string, c options.CompressionType) (vs []keyedVersion, err error) {
	defer func() {
		if r := recover(); r != nil {
			vs, err = nil, fmt.Errorf("unreadable: %v", r)
		}
	}()
	// OpenInMemoryTable keeps data: each attempt gets its own copy.
	t, err := table.OpenInMemoryTable(bytes.Clone(data), id, &table.Options{ChkMode: options.OnTableAndBlockRead, BlockSize: 4 << 10, Compression: c})
	if err != nil {
		return nil, err
	}
	defer func() { _ = t.DecrRef() }()
	it := t.NewIterator(0)
	defer func() { _ = it.Close() }()
	for it.Seek(y.KeyWithTs(prefix, math.MaxUint64)); it.Valid(); it.Next() {
		k := y.ParseKey(it.Key())
		if !bytes.HasPrefix(k, prefix) {
			break
		}
		v := it.ValueCopy()
		sv := salvageVersion{ts: y.ParseTs(it.Key()), where: "table " + name}
		switch {
		case v.Meta&metaDelete != 0:
			sv.gone = true
		case v.Meta&metaValuePointer != 0:
			sv.vptr = bytes.Clone(v.Value) // read from the value log if it is the newest
		default:
			sv.value = v.Value
		}
		vs = append(vs, keyedVersion{key: string(k), salvageVersion: sv})
	}
	return vs, nil
}
