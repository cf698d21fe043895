// Package deploy holds the deployment kit — Dockerfile, Kubernetes
// manifests, systemd unit, Windows notes, Prometheus alerts and Grafana
// dashboard — and the tests that keep them consistent with the binary. It
// has no code of its own.
package deploy
