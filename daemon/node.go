package daemon

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// DefaultNodeName is the default of Options.NodeName: the hostname, or
// "rswebhooks" where the system does not say (never empty).
func DefaultNodeName() string {
	if h, err := os.Hostname(); err == nil && validNodeName(h) == nil {
		return h
	}
	return "rswebhooks"
}

// validNodeName accepts what a hostname, a Kubernetes pod name or a
// Prometheus label value can carry: 1 to 253 characters, letters, digits,
// '.', '-' and '_'.
func validNodeName(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("must be 1 to 253 characters, got %d", len(name))
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		default:
			return errors.New("may hold only letters, digits, '.', '-' and '_', got " + fmt.Sprintf("%q", name))
		}
	}
	return nil
}

// registerNodeInfo exports rswebhooks_node_info{node} = 1. The node is one
// info series rather than a label on every series: Prometheus already
// tells the nodes apart by their target labels (instance, pod), and a
// dashboard joins the node name in where it shows it
// (`… * on(instance) group_left(node) rswebhooks_node_info`), so no other
// series grows a label and no recording rule breaks.
func registerNodeInfo(reg prometheus.Registerer, node string) {
	promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{
		Name: "rswebhooks_node_info",
		Help: "Always 1; the node label is this node's --node-name (default the hostname). Join it onto other series by instance.",
	}, []string{"node"}).WithLabelValues(node).Set(1)
}

// leaseHolder names this process in the delivery leases it takes: the node
// name, the process id and 32 random bits, so leases name the node that
// holds them and two processes never share a name.
func leaseHolder(node string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%x", node, os.Getpid(), b)
}
