package daemon

import (
	"github.com/rswebhooks/rswebhooks/admin"
	"github.com/rswebhooks/rswebhooks/deliver"
	"github.com/rswebhooks/rswebhooks/pgstore"
	"github.com/rswebhooks/rswebhooks/reconcile"
	"github.com/rswebhooks/rswebhooks/store"
	"github.com/rswebhooks/rswebhooks/watch"
)

// The store implements every consumer's store contract; the consumers
// declare the contract and do not import the store.
var (
	_ deliver.Store    = (*store.DB)(nil)
	_ admin.Store      = (*store.DB)(nil)
	_ watch.Store      = (*store.DB)(nil)
	_ reconcile.Store  = (*store.DB)(nil)
	_ reconcile.Shared = (*store.DB)(nil)

	_ deliver.Store    = (*pgstore.DB)(nil)
	_ admin.Store      = (*pgstore.DB)(nil)
	_ watch.Store      = (*pgstore.DB)(nil)
	_ reconcile.Store  = (*pgstore.DB)(nil)
	_ reconcile.Shared = (*pgstore.DB)(nil)
)
