package simulator

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestDateHeaderFollowsTheServerClock(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	s := New(Options{Now: func() time.Time { return at }})
	s.SetClockSkew(-10 * time.Minute)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/api/reports/version", nil))
	got, err := http.ParseTime(rec.Header().Get("Date"))
	if err != nil {
		t.Fatal(err)
	}
	if want := at.Add(-10 * time.Minute); !got.Equal(want) {
		t.Fatalf("Date %s, want %s", got, want)
	}
}
