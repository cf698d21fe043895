//go:build windows

package winsvc

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
	"golang.org/x/sys/windows/svc/mgr"
)

// Install registers the service (automatic delayed start, restart on
// failure) and its event-log source.
func Install(s ServiceConfig) error {
	if err := s.Validate(); err != nil {
		return err
	}
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connecting to the service control manager (run as Administrator): %w", err)
	}
	defer m.Disconnect()
	if old, err := m.OpenService(s.Name); err == nil {
		old.Close()
		return fmt.Errorf("service %s: already installed; run \"rswebhooks service uninstall\" first", s.Name)
	}
	start := uint32(mgr.StartAutomatic)
	if s.Manual {
		start = mgr.StartManual
	}
	ws, err := m.CreateService(s.Name, s.Exe, mgr.Config{
		DisplayName:      s.DisplayName,
		Description:      s.Description,
		StartType:        start,
		DelayedAutoStart: !s.Manual,
	}, s.Args...)
	if err != nil {
		return fmt.Errorf("creating service %s: %w", s.Name, err)
	}
	defer ws.Close()
	actions := []mgr.RecoveryAction{
		{Type: mgr.ServiceRestart, Delay: 5 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 30 * time.Second},
		{Type: mgr.ServiceRestart, Delay: 2 * time.Minute},
	}
	if err := ws.SetRecoveryActions(actions, 24*60*60); err != nil {
		return fmt.Errorf("service %s: setting recovery actions: %w", s.Name, err)
	}
	if err := ws.SetRecoveryActionsOnNonCrashFailures(true); err != nil {
		return fmt.Errorf("service %s: setting recovery on failure exit codes: %w", s.Name, err)
	}
	if err := eventlog.InstallAsEventCreate(s.Name, eventlog.Error|eventlog.Warning|eventlog.Info); err != nil {
		// An existing source (left by an earlier install) is fine; x/sys
		// reports it as "… registry key already exists".
		if !strings.Contains(err.Error(), "already exists") {
			_ = ws.Delete()
			return fmt.Errorf("service %s: registering the event log source: %w", s.Name, err)
		}
	}
	return nil
}

// openService connects to the service control manager and opens the named
// service; done closes both.
func openService(name string) (s *mgr.Service, done func(), err error) {
	m, err := mgr.Connect()
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the service control manager (run as Administrator): %w", err)
	}
	s, err = m.OpenService(name)
	if err != nil {
		m.Disconnect()
		return nil, nil, fmt.Errorf("service %s: not installed: %w", name, err)
	}
	return s, func() { s.Close(); m.Disconnect() }, nil
}

// Uninstall stops the service if it runs, removes it and its event-log
// source.
func Uninstall(name string) error {
	s, done, err := openService(name)
	if err != nil {
		return err
	}
	defer done()
	if st, err := s.Query(); err == nil && st.State != svc.Stopped {
		_, _ = s.Control(svc.Stop)
	}
	if err := s.Delete(); err != nil {
		return fmt.Errorf("deleting service %s: %w", name, err)
	}
	if err := eventlog.Remove(name); err != nil {
		return fmt.Errorf("service %s: removing the event log source: %w", name, err)
	}
	return nil
}

// Start starts an installed service.
func Start(name string) error {
	s, done, err := openService(name)
	if err != nil {
		return err
	}
	defer done()
	if err := s.Start(); err != nil {
		return fmt.Errorf("starting service %s: %w", name, err)
	}
	return nil
}

// Stop asks the service to stop and waits until it has, or ctx ends.
func Stop(ctx context.Context, name string) error {
	s, done, err := openService(name)
	if err != nil {
		return err
	}
	defer done()
	st, err := s.Control(svc.Stop)
	if err != nil {
		return fmt.Errorf("stopping service %s: %w", name, err)
	}
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for st.State != svc.Stopped {
		select {
		case <-ctx.Done():
			return fmt.Errorf("service %s: still %d when giving up: %w", name, st.State, ctx.Err())
		case <-tick.C:
		}
		if st, err = s.Query(); err != nil {
			return fmt.Errorf("service %s: querying status: %w", name, err)
		}
	}
	return nil
}
