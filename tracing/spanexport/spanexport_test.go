package spanexport

import (
	"context"
	"strings"
	"testing"
)

func TestEnabledAndProtocol(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, c := range []struct {
		flag bool
		env  map[string]string
		want bool
	}{
		{false, nil, false},
		{true, nil, true},
		{false, map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{true, map[string]string{"OTEL_TRACES_EXPORTER": "none"}, false},
		{true, map[string]string{"OTEL_SDK_DISABLED": "true"}, false},
	} {
		if got := Enabled(Options{Enabled: c.flag, Getenv: env(c.env)}); got != c.want {
			t.Errorf("Enabled(flag %v, env %v) = %v, want %v", c.flag, c.env, got, c.want)
		}
	}
	p, err := NewProvider(context.Background(), Options{Getenv: env(nil)})
	if p != nil || err != nil || p.Tracer() != nil || p.Shutdown(context.Background()) != nil {
		t.Fatalf("off: provider %v, %v; want nil and a nil tracer", p, err)
	}
	_, err = NewProvider(context.Background(), Options{Enabled: true, Getenv: env(map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})})
	if err == nil || !strings.Contains(err.Error(), `OTEL_EXPORTER_OTLP_PROTOCOL="grpc" is not supported`) {
		t.Fatalf("grpc protocol: %v", err)
	}
}
