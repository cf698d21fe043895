// Package store persists rswebhooks' state in an embedded Badger v4
// database: webhook registrations, events, deliveries and their attempts,
// the execution watcher's seen-set and small metadata. Every method is one
// Badger transaction (retried a few times on a transaction conflict), so
// multi-key changes such as FanOut and Complete are atomic.
//
// # Key layout
//
// Keys are ASCII prefixes followed by ids; ids are ULIDs (rswebhooks.NewID),
// so byte order is creation order. Values are encoding/json of the domain
// types in package rswebhooks unless stated. The layout is schema 3
// (m/schema); Open converts a schema-1 store and reads schema 2 as it is
// (see below).
//
//	w/<webhookID>                         Webhook; user meta bit 1 while it is Ordered
//	wo/<ownerID>/<webhookID>              empty: owner index
//	e/<eventID>                           Event
//	ef/<eventID>                          empty: event not yet fanned out
//	s/<eventID>                           {"Event": the event's snapshot, "Deliveries": ids referring to it}
//	d/<deliveryID>                        Delivery state: the Delivery without Event (then at s/<EventId>),
//	                                      or with it (pings, replays, a snapshot unlike the shared one);
//	                                      OrderKey: true while it has a dp/ key;
//	                                      FinalAttempt: the Attempt that finished it (schema 3)
//	dw/<webhookID>/<deliveryID>           empty: by-webhook index (reverse scan = newest first)
//	de/<eventID>/<deliveryID>             empty: by-event index of deliveries holding their own snapshot
//	q/<due: 8 bytes BE unix ns>/<deliveryID>  webhook id (empty in older stores): due queue, pending deliveries only
//	dp/<webhookID>/<eventID>/<deliveryID> empty: order index, pending deliveries of Ordered webhooks in event order
//	a/<deliveryID>/<n: 4 bytes BE>        Attempt number n, unless its record holds it as FinalAttempt
//	x/<executionID>                       empty: execution already seen by the watcher
//	m/<key>                               raw bytes: metadata (m/schema, m/ping, m/order-index, m/migrating reserved)
//
// # Deliveries and their event snapshot
//
// A delivery shows the event as it was at fan-out (rswebhooks.Delivery.Event)
// for all of its retention, however long the event itself is kept. The
// fan-out stores that snapshot once, at s/<eventID>, for the event's
// deliveries, and each delivery record holds only its state (about 300
// bytes), so an attempt rewrites the state and adds the attempt, not the
// snapshot. Reads reassemble the Delivery; recently read snapshots are kept
// decoded (1,024 events). A snapshot has no TTL: it stays while a delivery
// it lists is stored (pending for however long, or finished and within its
// retention), and Run's GC tick drops the ones whose deliveries are all
// gone (dropSnapshots). The by-event index de/ and the order index dp/ are
// written only where they cannot be derived: a delivery sharing the
// snapshot is listed in it, and only an Ordered webhook's pending
// deliveries are in event order (a webhook that becomes Ordered gets keys
// for its earlier ones; OrderHead of another webhook reads its pending
// deliveries one by one). A fanned-out delivery is three writes at fan-out
// (d/, dw/, q/; dp/ too if Ordered) and its share of s/, and three for an
// attempt that ends it (d/ holding the attempt, dw/ with its TTL, the q/
// removal; dp/ too): schema 1 wrote five and five, two of them the whole
// record, schema 2 three and four (the attempt at its own a/ key). An
// attempt after which the delivery stays pending has its a/ key; when a
// finished record is rewritten without its FinalAttempt (redelivered,
// finished again), that attempt moves to its a/ key, byte for byte, with
// the retention from then. Schema 3 needs no conversion: Open only sets
// m/schema to 3, so that schema-2 releases, which would list a finished
// delivery's attempts without its last one, refuse the directory.
//
// # Schema conversion
//
// Schema 1 stored the whole Delivery, snapshot included, at d/ (written at
// fan-out and again at every attempt), a de/ key with the event's TTL for
// each delivery and a dp/ key for every pending one. Open converts such a
// store before it returns: it sets m/schema to 2 and m/migrating in one
// transaction (from then on releases knowing only schema 1 refuse the
// directory), rewrites the Ordered webhooks with their user-meta bit, then
// converts the delivery records in transactions of FanOutChunk, each whole
// on its own, keeping every record's TTL, and removes m/migrating. A crash
// at any point leaves records in one form or the other (both are read);
// the next Open resumes where the marker says it must
// (TestConversionSurvivesSIGKILL kills a real process in the middle).
//
// Queue scans (Due, DueRefs, NextDue, QueueStats) read keys only and seek
// to an in-memory lower bound of the live q/ keys, so the tombstones that
// every delivered or rescheduled item leaves behind are not rescanned; Due
// stops at the first key due after now. DueRefs lists due deliveries from
// the q/ keys and their small inline values alone, without decoding them.
// UnfannedEvents does the same for the ef/ markers with a lower bound on
// event ids, which AppendEvent lowers when it writes an id below it (the
// execution watcher's ids carry the execution's time, which may be older).
//
// # Unreadable records
//
// A stored value that cannot be decoded (written by another release, by a
// bug, or damaged on disk) never fails a listing or a queue scan: it is
// skipped, logged once and counted once per process
// (rswebhooks_store_unreadable_records_total{kind}), and a read of it by
// id returns an *UnreadableError (errors.Is ErrUnreadable). A due delivery
// found unreadable leaves the queue scans (DueRefs, NextDue, QueueStats),
// so it can neither wedge nor spin the delivery engine. UnreadableRecords
// lists them; DeleteUnreadable and DeleteWebhook remove one by id without
// decoding it, index keys included.
//
// # Retention
//
// Webhooks and pending deliveries (with their dw/, de/, q/ and dp/ keys)
// never expire, and event snapshots live as long as their deliveries.
// Everything else is written with a Badger TTL of Options.Retention computed
// from Options.Now: events once fanned out (an event waiting for fan-out
// keeps no TTL, so a stalled delivery side cannot lose it), attempts,
// finished deliveries and their dw/ and de/ keys, and seen executions.
// Expired keys disappear from reads at once and are dropped physically by
// compaction; Run triggers value-log GC.
//
// # Durability
//
// With Options.SyncWrites false (the default) a committed write is in an
// mmapped file, so it survives a crash or SIGKILL of the process (tested with
// a real child process) but not a power loss or kernel crash; set
// SyncWrites (flag --sync-writes) for that, at roughly a tenth of the write
// throughput.
//
// # Degraded mode
//
// The store refuses writes, instead of letting Badger's memory-mapped writes
// fault, when its filesystem is short of Options.MinFree, its directory is
// gone, replaced or read-only, or it could not be opened (Unopened); it
// leaves degraded mode by itself. See guard.go, SalvageWebhooks and Repair.
//
// # Memory profile
//
// Badger's defaults are sized for a database server (~700 MB). Open uses a
// sidecar profile: two 8 MiB memtables, L0 2 tables (stall at 4), 1 MiB
// tables below L0 (each compaction builder holds twice its table size, and
// a compaction runs up to ten of them at once), Snappy-compressed blocks
// with an 8 MiB block cache (the mmapped tables, which count in the
// process's resident memory as page cache, shrink about threefold for our
// JSON), a 16 MiB index/bloom cache, 64 MiB value-log files, values of 128
// bytes and more (every record; index keys stay in the tree) in the value
// log, two compactors, Badger metrics off. SalvageWebhooks reads a
// registration from the value log a table points into. Compression
// and table size are recorded per table, so data dirs written with other
// values (earlier releases wrote uncompressed 2 MiB tables) open as they are
// and are rewritten by compaction.
//
// MemTableSize is part of the on-disk format: replaying a memtable WAL into
// a smaller arena after an unclean shutdown aborts the process inside Badger
// ("Arena too small"). Open records the size in the file RSWEBHOOKS-STORE
// next to Badger's files; when asked for a smaller size it first opens with
// the recorded one and closes cleanly (which flushes the WAL), then reopens
// with the new size.
package store
