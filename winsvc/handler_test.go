package winsvc

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// harness runs Serve in a goroutine and records its reports on a channel.
type harness struct {
	reqs    chan Cmd
	reports chan Status
	result  chan Result
	started chan context.Context
	finish  chan error
}

func start(t *testing.T, ctx context.Context) *harness {
	t.Helper()
	h := &harness{
		reqs:    make(chan Cmd),
		reports: make(chan Status, 16),
		result:  make(chan Result, 1),
		started: make(chan context.Context, 1),
		finish:  make(chan error, 1),
	}
	run := func(ctx context.Context) error {
		h.started <- ctx
		select {
		case err := <-h.finish:
			return err
		case <-ctx.Done():
			// Simulate a graceful drain that ends when the test says so.
			return <-h.finish
		}
	}
	go func() {
		h.result <- Serve(ctx, Config{StopWaitHint: 20 * time.Second}, run, h.reqs, func(s Status) { h.reports <- s })
	}()
	return h
}

func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}

func (h *harness) expect(t *testing.T, want State) Status {
	t.Helper()
	s := within(t, h.reports, "a status report")
	if s.State != want {
		t.Fatalf("reported %v, want %v", s.State, want)
	}
	return s
}

func (h *harness) send(t *testing.T, c Cmd) {
	t.Helper()
	select {
	case h.reqs <- c:
	case <-time.After(5 * time.Second):
		t.Fatalf("Serve did not take request %d", c)
	}
}

func TestStartThenStop(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  Cmd
	}{{"stop", CmdStop}, {"shutdown", CmdShutdown}} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, context.Background())
			if s := h.expect(t, StartPending); s.AcceptStop || s.WaitHint <= 0 {
				t.Fatalf("StartPending = %+v: must not accept stop yet and must give a wait hint", s)
			}
			if s := h.expect(t, Running); !s.AcceptStop {
				t.Fatalf("Running = %+v: must accept stop and shutdown", s)
			}
			runCtx := within(t, h.started, "run to start")

			h.send(t, tc.cmd)
			s := h.expect(t, StopPending)
			if s.WaitHint != 20*time.Second || s.AcceptStop {
				t.Fatalf("StopPending = %+v", s)
			}
			within(t, runCtx.Done(), "the run context to be cancelled")

			// Interrogate during the drain reports StopPending with progress.
			h.send(t, CmdInterrogate)
			if s2 := h.expect(t, StopPending); s2.CheckPoint <= s.CheckPoint {
				t.Fatalf("CheckPoint did not advance: %d then %d", s.CheckPoint, s2.CheckPoint)
			}
			// A second stop is harmless and reports nothing new.
			h.send(t, CmdStop)

			h.finish <- context.Canceled // the daemon returns ctx.Err()
			res := within(t, h.result, "Serve to return")
			if res.ExitCode != 0 || res.Err != nil || !res.StopRequested {
				t.Fatalf("result = %+v, want a clean stop", res)
			}
			select {
			case s := <-h.reports:
				t.Fatalf("unexpected report after stop: %+v", s)
			default:
			}
		})
	}
}

func TestInterrogateWhileRunning(t *testing.T) {
	h := start(t, context.Background())
	h.expect(t, StartPending)
	h.expect(t, Running)
	h.send(t, CmdInterrogate)
	if s := h.expect(t, Running); !s.AcceptStop {
		t.Fatalf("Interrogate = %+v", s)
	}
	h.send(t, CmdOther) // ignored: no report, still running
	h.send(t, CmdStop)
	h.expect(t, StopPending)
	h.finish <- nil
	if res := within(t, h.result, "Serve to return"); res.ExitCode != 0 {
		t.Fatalf("result = %+v", res)
	}
}

func TestDaemonFailureGivesExitCode(t *testing.T) {
	h := start(t, context.Background())
	h.expect(t, StartPending)
	h.expect(t, Running)
	boom := errors.New("listen tcp :80: bind: address already in use")
	h.finish <- boom
	res := within(t, h.result, "Serve to return")
	if res.ExitCode != 1 || !errors.Is(res.Err, boom) || res.StopRequested {
		t.Fatalf("result = %+v", res)
	}
}

func TestErrorDuringStopIsReported(t *testing.T) {
	h := start(t, context.Background())
	h.expect(t, StartPending)
	h.expect(t, Running)
	h.send(t, CmdShutdown)
	h.expect(t, StopPending)
	boom := errors.New("store: close: disk full")
	h.finish <- boom
	if res := within(t, h.result, "Serve to return"); res.ExitCode != 1 || !errors.Is(res.Err, boom) {
		t.Fatalf("result = %+v", res)
	}
}

func TestClosedRequestsAndCancelledParentStop(t *testing.T) {
	t.Run("closed requests channel", func(t *testing.T) {
		h := start(t, context.Background())
		h.expect(t, StartPending)
		h.expect(t, Running)
		close(h.reqs)
		h.expect(t, StopPending)
		h.finish <- nil
		if res := within(t, h.result, "Serve to return"); !res.StopRequested || res.ExitCode != 0 {
			t.Fatalf("result = %+v", res)
		}
	})
	t.Run("parent context cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		h := start(t, ctx)
		h.expect(t, StartPending)
		h.expect(t, Running)
		cancel()
		h.expect(t, StopPending)
		h.finish <- context.Canceled
		if res := within(t, h.result, "Serve to return"); !res.StopRequested || res.ExitCode != 0 {
			t.Fatalf("result = %+v", res)
		}
	})
}

func TestStateStrings(t *testing.T) {
	for s, want := range map[State]string{Stopped: "stopped", StartPending: "start pending", Running: "running", StopPending: "stop pending", 0: "unknown"} {
		if s.String() != want {
			t.Errorf("%d: %q", s, s.String())
		}
	}
}

// A daemon that hangs on stop (a store that cannot flush) still lets the
// service stop: after StopTimeout Serve gives up on it with exit code 1.
func TestStopTimeoutEndsAHangingRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hang := make(chan struct{})
		run := func(ctx context.Context) error {
			<-ctx.Done()
			<-hang // never returns on its own
			return nil
		}
		reqs := make(chan Cmd)
		result := make(chan Result, 1)
		var last Status
		start := time.Now()
		go func() {
			result <- Serve(context.Background(), Config{StopWaitHint: 20 * time.Second, StopTimeout: 7 * time.Second},
				run, reqs, func(s Status) { last = s })
		}()
		reqs <- CmdStop
		res := <-result
		if took := time.Since(start); took != 7*time.Second {
			t.Errorf("Serve returned %s after the stop request, want 7s", took)
		}
		if res.ExitCode != 1 || !errors.Is(res.Err, ErrStopTimeout) || !res.StopRequested {
			t.Errorf("result = %+v, want exit code 1 with ErrStopTimeout", res)
		}
		if last.State != StopPending {
			t.Errorf("last report %v, want stop pending (the caller reports stopped)", last.State)
		}
		close(hang)
	})
}
