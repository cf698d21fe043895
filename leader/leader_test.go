package leader

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not within 10s", what)
	}
	var zero T
	return zero
}

// TestRunnerStopsTheJobWhenLeadershipIsLost: the job runs while the node
// leads, its context ends when leadership is lost, the node campaigns
// again, and the leader gauge follows.
func TestRunnerStopsTheJobWhenLeadershipIsLost(t *testing.T) {
	type term struct {
		lose     context.CancelFunc
		released chan struct{}
	}
	terms := make(chan term, 4)
	el := ElectorFunc(func(ctx context.Context) (context.Context, func(), error) {
		lead, cancel := context.WithCancel(ctx)
		tm := term{lose: cancel, released: make(chan struct{})}
		select {
		case terms <- tm:
		case <-ctx.Done():
			cancel()
			return nil, nil, ctx.Err()
		}
		return lead, func() { cancel(); close(tm.released) }, nil
	})
	started, stopped := make(chan struct{}, 4), make(chan error, 4)
	m := NewMetrics(prometheus.NewRegistry())
	r := &Runner{Name: "test job", Elector: el, Metrics: m, Job: func(ctx context.Context) error {
		started <- struct{}{}
		<-ctx.Done()
		stopped <- ctx.Err()
		return nil
	}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	first := within(t, terms, "first term")
	within(t, started, "job starts")
	if v := testutil.ToFloat64(m.Leader); v != 1 {
		t.Fatalf("leader gauge %v while leading, want 1", v)
	}
	first.lose()
	if err := within(t, stopped, "job stops on lost leadership"); !errors.Is(err, context.Canceled) {
		t.Fatalf("job context: %v", err)
	}
	within(t, first.released, "lost term released")
	within(t, terms, "second campaign")
	within(t, started, "job runs again")
	if v := testutil.ToFloat64(m.Changes); v != 2 {
		t.Fatalf("leader changes %v, want 2", v)
	}
	cancel()
	if err := within(t, done, "Run returns"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if v := testutil.ToFloat64(m.Leader); v != 0 {
		t.Fatalf("leader gauge %v after Run, want 0", v)
	}
}

// TestAlwaysLeads: a node alone runs the job at once.
func TestAlwaysLeads(t *testing.T) {
	ran := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	r := &Runner{Name: "watcher", Elector: Always{}, Job: func(ctx context.Context) error {
		close(ran)
		<-ctx.Done()
		return nil
	}}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	within(t, ran, "job runs")
	cancel()
	if err := within(t, done, "Run returns"); err != nil {
		t.Fatal(err)
	}
}

// TestAFailingJobGivesLeadershipUp: a job error releases leadership before
// the node campaigns again.
func TestAFailingJobGivesLeadershipUp(t *testing.T) {
	var released []bool
	campaigns := make(chan struct{}, 4)
	el := ElectorFunc(func(ctx context.Context) (context.Context, func(), error) {
		if len(released) == 2 {
			<-ctx.Done()
			return nil, nil, ctx.Err()
		}
		lead, cancel := context.WithCancel(ctx)
		i := len(released)
		released = append(released, false)
		campaigns <- struct{}{}
		return lead, func() { cancel(); released[i] = true }, nil
	})
	ctx, cancel := context.WithCancel(t.Context())
	r := &Runner{Name: "job", Elector: el, Job: func(context.Context) error { return errors.New("broken") }}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	within(t, campaigns, "first")
	within(t, campaigns, "second, after the failure")
	cancel()
	within(t, done, "Run returns")
	if !released[0] {
		t.Fatal("the failed term was not released")
	}
}
