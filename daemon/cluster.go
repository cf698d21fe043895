package daemon

import (
	"github.com/rswebhooks/rswebhooks/leader"
)

// watcherElector elects the node that polls executions: a node alone
// (Badger) always leads.
func watcherElector(o Options) leader.Elector {
	return leader.Always{}
}
