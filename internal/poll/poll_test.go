package poll

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	s := Schedule{Interval: time.Minute, MaxBackoff: 10 * time.Minute}
	for _, c := range []struct {
		fails int
		took  time.Duration
		want  time.Duration
	}{
		{0, time.Second, time.Minute},
		{1, time.Second, 2 * time.Minute},
		{3, time.Second, 8 * time.Minute},
		{10, time.Second, 10 * time.Minute},
		{100, time.Second, 10 * time.Minute},
		{0, 2 * time.Minute, 4 * time.Minute},
		{0, time.Hour, 10 * time.Minute},
	} {
		if got := s.Next(c.fails, c.took); got != c.want {
			t.Errorf("Next(%d, %s) = %s, want %s", c.fails, c.took, got, c.want)
		}
	}
	if got := (Schedule{Interval: time.Minute}).Next(5, 0); got != time.Minute {
		t.Errorf("MaxBackoff below Interval: %s, want the interval", got)
	}
	for _, r := range []float64{0, 0.5, 0.999} {
		j := Schedule{Interval: time.Minute, Jitter: 0.1, Rand: func() float64 { return r }}
		if d := j.Next(0, 0); d < 54*time.Second || d > 66*time.Second {
			t.Errorf("jittered pause %s outside ±10%%", d)
		}
	}
}

func TestLoopBacksOffAndResets(t *testing.T) {
	results := []error{errors.New("a"), errors.New("b"), nil, errors.New("c")}
	var pauses []time.Duration
	var fails []int
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	l := Loop{
		Schedule: Schedule{Interval: time.Second, MaxBackoff: time.Minute},
		Once: func(context.Context) error {
			err := results[n]
			n++
			return err
		},
		OnError: func(_ error, f int, _ time.Duration) { fails = append(fails, f) },
		Sleep: func(_ context.Context, d time.Duration) error {
			pauses = append(pauses, d)
			if len(pauses) == len(results) {
				cancel()
				return context.Canceled
			}
			return nil
		},
	}
	if err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, time.Second, 2 * time.Second}
	for i := range want {
		if pauses[i] != want[i] {
			t.Fatalf("pauses %v, want %v", pauses, want)
		}
	}
	if len(fails) != 3 || fails[0] != 1 || fails[1] != 2 || fails[2] != 1 {
		t.Fatalf("failure counts %v, want [1 2 1]", fails)
	}
}
