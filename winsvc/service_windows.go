//go:build windows

package winsvc

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
)

// IsService reports whether the process was started by the Windows SCM.
func IsService() (bool, error) { return svc.IsWindowsService() }

// Run serves the SCM protocol until run returns, passing run the service
// name the SCM started (the event log source). It returns how the run
// ended; the error is non-nil only when the SCM could not be reached.
func Run(cfg Config, run func(ctx context.Context, name string) error) (Result, error) {
	h := &handler{cfg: cfg, run: run}
	// The name is ignored for a service in its own process; the SCM passes
	// the real one to Execute.
	if err := svc.Run(DefaultName, h); err != nil {
		return h.res, fmt.Errorf("windows service: %w", err)
	}
	return h.res, nil
}

type handler struct {
	cfg Config
	run func(ctx context.Context, name string) error
	res Result
}

// Execute translates svc.ChangeRequest into Cmd and Status into svc.Status
// around Serve, which holds all of the logic.
func (h *handler) Execute(args []string, r <-chan svc.ChangeRequest, s chan<- svc.Status) (bool, uint32) {
	reqs := make(chan Cmd)
	quit := make(chan struct{})
	go func() {
		for {
			select {
			case c, ok := <-r:
				if !ok {
					close(reqs)
					return
				}
				select {
				case reqs <- toCmd(c.Cmd):
				case <-quit:
					return
				}
			case <-quit:
				return
			}
		}
	}()
	name := DefaultName
	if len(args) > 0 && args[0] != "" {
		name = args[0]
	}
	run := func(ctx context.Context) error { return h.run(ctx, name) }
	h.res = Serve(context.Background(), h.cfg, run, reqs, func(st Status) { s <- toSvcStatus(st) })
	close(quit)
	return h.res.ExitCode != 0, h.res.ExitCode
}

func toCmd(c svc.Cmd) Cmd {
	switch c {
	case svc.Stop:
		return CmdStop
	case svc.Shutdown, svc.PreShutdown:
		return CmdShutdown
	case svc.Interrogate:
		return CmdInterrogate
	}
	return CmdOther
}

func toSvcStatus(st Status) svc.Status {
	out := svc.Status{CheckPoint: st.CheckPoint, WaitHint: uint32(st.WaitHint / time.Millisecond)}
	switch st.State {
	case Stopped:
		out.State = svc.Stopped
	case StartPending:
		out.State = svc.StartPending
	case Running:
		out.State = svc.Running
	case StopPending:
		out.State = svc.StopPending
	}
	if st.AcceptStop {
		out.Accepts = svc.AcceptStop | svc.AcceptShutdown
	}
	return out
}

// OpenEventLog opens the Windows event log under source (registered by
// Install) for a LevelWriter, and returns its close function.
func OpenEventLog(source string) (EventLog, func() error, error) {
	l, err := eventlog.Open(source)
	if err != nil {
		return nil, nil, fmt.Errorf("event log source %s: %w", source, err)
	}
	return l, l.Close, nil
}
