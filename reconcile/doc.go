// Package reconcile finds the changes the proxy did not see — made in the
// manager's own routes, by storage migration or restore tools, on a
// report-server node without a sidecar, or by a cascade (deleting a report
// modifies or deletes its tasks and alerts) — and turns each into one event
// with Source "reconcile".
//
// A Reconciler reads the five collections (reports, categories, data
// connections, scheduled tasks, data alerts) with the service account, one
// request each per run, and diffs them against a snapshot persisted in the
// store: a new id is Created, a missing id Deleted, a changed fingerprint
// Updated. A report's fingerprint is its LastRevisionId,
// LastModifiedDateUtc, Name, CategoryId and Description; any other item's
// is a hash of its listed fields, leaving out per-caller and derived ones
// (IsFavorite, CanEdit, CanView, CanModify, CanDelete, ReportsCount, lock
// and next/last execution fields). The first run of a collection records
// it silently; a run that would delete most of a collection waits for the
// next run to confirm it. Event ids are derived from the change and the previous
// snapshot, so a crash between the append and the snapshot save cannot
// duplicate an event.
//
// The proxy stays the fast path. A Gate sits between the detector and the
// store; every event the proxy stored is a claim on its resource. A change
// the reconciler finds is absorbed when the proxy stored an event of the
// same type for that resource (by id, or by name for a Created without id)
// between the collection's previous read and this one; otherwise it is
// emitted, and the Gate drops the proxy's event for that very change if it
// arrives late (the reconciler's read landed between the server's write
// and the proxy's append). See docs/events.md, "Changes the proxy did not
// see".
package reconcile
