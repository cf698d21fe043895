// Package winsvc runs rswebhooks as a Windows service and manages its
// registration with the service control manager (SCM).
//
// The protocol logic — answering the SCM's Stop, Shutdown and Interrogate
// requests by cancelling the daemon's context and reporting the service
// state — is the pure function Serve in this file, so it is unit-tested on
// every platform. The golang.org/x/sys/windows/svc glue lives in the
// _windows.go files; on other platforms the management functions return
// ErrNotWindows.
package winsvc

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultName is the service name rswebhooks registers under by default.
const DefaultName = "rswebhooks"

// ErrNotWindows is returned by the service management functions on
// platforms other than Windows.
var ErrNotWindows = errors.New("service management is only available on Windows; on Linux use deploy/systemd/rswebhooks.service")

// State is a service state as reported to the SCM.
type State int

// Service states (a subset of the SCM's: rswebhooks does not pause).
const (
	Stopped State = iota + 1
	StartPending
	Running
	StopPending
)

func (s State) String() string {
	switch s {
	case Stopped:
		return "stopped"
	case StartPending:
		return "start pending"
	case Running:
		return "running"
	case StopPending:
		return "stop pending"
	}
	return "unknown"
}

// Cmd is a request from the SCM.
type Cmd int

// Requests the handler acts on; every other SCM control maps to CmdOther and
// is ignored.
const (
	CmdStop Cmd = iota + 1
	CmdShutdown
	CmdInterrogate
	CmdOther
)

// Status is what the handler reports to the SCM.
type Status struct {
	State State
	// AcceptStop is true when the service accepts Stop and Shutdown.
	AcceptStop bool
	// CheckPoint grows with every report during a pending operation.
	CheckPoint uint32
	// WaitHint is how long the SCM should wait for the next report during a
	// pending operation.
	WaitHint time.Duration
}

// Config tunes Serve.
type Config struct {
	// StopWaitHint is reported with StopPending: the time the daemon may
	// take to drain. Default 30s (the daemon's own shutdown timeout plus
	// margin).
	StopWaitHint time.Duration
	// StartWaitHint is reported with StartPending. Default 10s.
	StartWaitHint time.Duration
	// StopTimeout bounds how long Serve waits for run after a stop request;
	// then it gives up on run (ExitCode 1, Err wrapping ErrStopTimeout) so
	// the service always stops. Default StopWaitHint.
	StopTimeout time.Duration
}

// ErrStopTimeout: the daemon did not return within Config.StopTimeout.
var ErrStopTimeout = errors.New("the daemon did not stop in time")

// Result is how a service run ended.
type Result struct {
	// ExitCode is 0 for a clean stop and 1 when the daemon failed; it is
	// reported to the SCM as a service-specific exit code, so a non-zero
	// value triggers the service's recovery actions.
	ExitCode uint32
	// Err is the daemon's error, if it failed.
	Err error
	// StopRequested is true when the SCM asked the service to stop.
	StopRequested bool
}

// Serve runs run under the SCM protocol: it reports StartPending, starts run
// with a context that is cancelled on Stop or Shutdown, reports Running, and
// answers Interrogate with the current status. When run returns it returns a
// Result; the caller reports Stopped (svc.Run does this when Execute returns).
//
// A closed requests channel counts as a stop request. report must not block
// for long: it is called on the loop that reads requests.
func Serve(ctx context.Context, cfg Config, run func(ctx context.Context) error, requests <-chan Cmd, report func(Status)) Result {
	if cfg.StopWaitHint <= 0 {
		cfg.StopWaitHint = 30 * time.Second
	}
	if cfg.StartWaitHint <= 0 {
		cfg.StartWaitHint = 10 * time.Second
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = cfg.StopWaitHint
	}
	cur := Status{State: StartPending, WaitHint: cfg.StartWaitHint}
	report(cur)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(runCtx) }()

	cur = Status{State: Running, AcceptStop: true}
	report(cur)

	var res Result
	var deadline <-chan time.Time // armed by stop
	stop := func() {
		if res.StopRequested {
			return
		}
		res.StopRequested = true
		t := time.NewTimer(cfg.StopTimeout)
		defer func() { deadline = t.C }()
		cancel()
		cur = Status{State: StopPending, WaitHint: cfg.StopWaitHint, CheckPoint: 1}
		report(cur)
	}
	for {
		select {
		case err := <-done:
			stopped := res.StopRequested && errors.Is(err, context.Canceled) // the stop we asked for
			if err != nil && !stopped {
				res.Err = err
				res.ExitCode = 1
			}
			return res
		case <-deadline:
			res.Err = fmt.Errorf("%w (%s after the stop request)", ErrStopTimeout, cfg.StopTimeout)
			res.ExitCode = 1
			return res
		case <-ctx.Done():
			stop()
			ctx = context.Background() // never fires again; wait for run
		case c, ok := <-requests:
			if !ok {
				requests = nil // a nil channel blocks: wait for run
				stop()
				continue
			}
			switch c {
			case CmdStop, CmdShutdown:
				stop()
			case CmdInterrogate:
				if cur.State == StopPending {
					cur.CheckPoint++
				}
				report(cur)
			}
		}
	}
}
