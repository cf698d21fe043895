// Package pgstore keeps rswebhooks' state in PostgreSQL (15 or newer), so
// several nodes (sidecars of a report-server cluster) share one set of
// webhooks, events and deliveries. It implements rswebhooks.Store, the
// contract package store implements with Badger, and passes the same
// conformance suite (store/storetest).
//
// # Schema and migrations
//
// The schema is versioned SQL embedded in the binary (migrations/). Open
// applies what is missing under a session advisory lock, so nodes starting
// together migrate once, and refuses a database whose schema is newer than
// this release knows (ErrSchemaTooNew). Give rswebhooks a database of its
// own: it creates its tables in the connection's default schema.
//
// # A cluster delivers each notification once
//
// Fan-out marks the event fanned out and inserts its deliveries in one
// statement whose UPDATE … WHERE NOT fanned serialises nodes racing for
// the same event, and delivery ids derive from the event and webhook
// (rswebhooks.DeliveryID) under a primary key: a fan-out repeated by any
// node writes nothing twice. Event ids are primary keys too, so an event
// appended twice (two watchers for a moment) is stored once.
//
// A dispatcher leases a delivery (rswebhooks_lease_many: the delivery row
// locked with FOR UPDATE SKIP LOCKED, then a row in the leases table)
// before its attempt, and Complete ends the lease. A node that dies
// mid-attempt leaves its lease to expire, after which any node sends the
// delivery: at-least-once, duplicates only for the attempts in flight at
// the death. The per-webhook concurrency is counted over unexpired leases
// of all nodes under a transaction advisory lock per webhook. Lease times
// come from the nodes' clocks, which must be kept in step (NTP); a skew
// adds to the takeover delay.
//
// An attempt slot that delivered goes on with its webhook's next due
// delivery (rswebhooks.LeaseChainer): the statement that records the
// attempt also moves the slot's lease, if it is still the holder's and
// unexpired, to the webhook's earliest due delivery that no one leases
// (rows taken with FOR UPDATE SKIP LOCKED, the lease written only where no
// unexpired one is there by then). A moved lease leaves the webhook's
// count of leases as it was, so it needs no advisory lock and the limit
// still holds on every node.
//
// # Round trips
//
// Each statement is a round trip to the server, so the hot path shares
// them: concurrent Lease calls go in one call of rswebhooks_lease_many and
// concurrent Complete and CompleteAndLease calls in one statement (group
// commit: a call waits for the batch in flight, never for a timer, and
// returns once its own write is committed), so a busy slot's cycle is its
// attempt and one round trip; a Release after Complete ended the lease is
// answered without one; the delivery engine fans out a batch of events in
// one transaction (FanOutEvents) and, told by DueScanInterval, reads the
// due queue on wake-ups at most every 10 ms. That read is bounded per
// webhook (ScanDueByWebhook, rswebhooks.DueByWebhookScanner): one
// statement skips through the index of each webhook's due order
// (deliveries_hook_due) to the webhooks with pending deliveries and takes
// from each only its earliest due ones, as many as its leases leave room
// for, so a webhook's backlog of thousands costs a read a handful of rows,
// and a webhook at its limit none. Each node's fan-out reads the events
// appended through it (NodeUnfannedEvents, rswebhooks.NodeUnfanned; the
// ids are kept in memory until fanned out) and other nodes' only once
// their time is more than two seconds old, so an event is not read,
// expanded and sent by every node, and the events of a node that died are
// still fanned out. Leases live in a small table
// of their own, so taking and ending one does not rewrite the delivery's
// row and indexes, and an event's snapshot is stored once (snapshots,
// schema 4) and shared by its deliveries, whose rows hold only their
// state, so recording an attempt rewrites a small row.
//
// The server's work per statement counts too. Rows that are new in all
// but rare cases are written with plain INSERTs: an append's unique
// violation is its conflict (ErrConflict), and a fan-out finding a
// delivery or snapshot there already (one put under the id fan-out
// derives, a snapshot kept for an event id appended again) is rolled back
// and sent again tolerating them (ON CONFLICT), since an INSERT … ON
// CONFLICT is a speculative insertion: a conflict check, a lock and a WAL
// record more per row. The completion statement locks its delivery rows
// with its own UPDATE, in delivery id order, so batches of two nodes
// cannot deadlock over them (a deadlock PostgreSQL breaks anyway is sent
// again).
//
// The store's sessions plan each statement once (plan_cache_mode
// force_generic_plan: the default re-planned the larger ones on every
// execution) and read by index (enable_seqscan off, so that a plan made
// while the tables were small does not scan them whole as they grow; jit
// off), unless the connection string sets plan_cache_mode itself. Open
// opens the six connections the delivery path uses at once and the pool
// keeps them (unless the connection string sets pool_min_conns), so the
// first events after a start do not wait for new server processes; the
// first execution of each statement on each connection (its plan) still
// costs more than the later ones.
//
// # Wake-ups
//
// Writes that make deliveries due NOTIFY rswebhooks_due and webhook writes
// NOTIFY rswebhooks_webhooks; every node LISTENs on a connection of its
// own, so dispatchers everywhere wake within milliseconds (DueSignal) and
// webhook caches everywhere re-read (WebhooksVersion). The listener
// reconnects by itself; while it is down dispatchers fall back on their
// poll.
//
// The delivery engine's fan-out is the exception (rswebhooks.NodeWaker):
// each node fans out its own events with FanOutEventsHere, which signals
// only its own dispatcher and queues no notification (a transaction that
// did waits its turn on the server's notification queue at commit, and
// every node woken reads the due queue). The dispatcher wakes the other
// nodes (WakeNodes: one NOTIFY from outside any other transaction, at most
// every 10 ms) only while it holds back due deliveries another node could
// start. Redeliveries, pings and deliveries due again at once still NOTIFY
// from their write.
//
// # Retention
//
// Rows that expire carry expires_at, computed from Options.Now like
// Badger's TTLs: reads ignore expired rows at once and Run deletes them
// every Options.RetentionInterval in bounded batches. An event's snapshot
// does not expire: it is deleted with the last delivery that refers to
// it, so a delivery keeps its event for its whole retention.
//
// # Secrets
//
// The connection URL follows libpq (URL or key=value, TLS with sslmode and
// friends, password in the URL, PGPASSWORD or ~/.pgpass); its password is
// never logged: RedactURL hides it wherever the URL is shown. Learned
// report-server tokens reach the store only as hashes (meta keys).
package pgstore
