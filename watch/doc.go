// Package watch finds executions of scheduled tasks and data alerts that the
// report server ran on its own schedule — runs that never cross the proxy —
// and turns each new one into exactly one Executed event.
//
// A Watcher polls with the service account: it lists tasks and alerts, reads
// each one's execution history (with a concurrency limit), and diffs the
// execution ids against a seen-set persisted in the store. New executions
// are appended as events with deterministic ids (so a crash between the
// append and the seen mark cannot duplicate them), marked seen, and the
// delivery side is woken. The first poll on an empty store records history
// without notifying. Dates are compared on the report server's clock, read
// from the HTTP Date header of its answers, never on the local clock.
//
// A Correlator sits between the proxy's detector and the store so that an
// execute call seen by the proxy and the execution record the watcher finds
// produce one event, not two: it holds the call's event as a claim in the
// store while a resolver (Watcher.RunResolver) reads that task's or alert's
// history at once, with backoff, and the event leaves carrying the run
// (ExecutionId, date, documents) under the run's deterministic id — or,
// after RecordWait, without it, naming what it lacks. Claims live in the
// store, one key each, and are decided by compare-and-swap, so in a cluster
// sharing one store every node resolves them, whichever node took the call,
// and exactly one decides each. See docs/events.md, "Scheduled executions
// and de-duplication".
package watch
