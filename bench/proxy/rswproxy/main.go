// Command rswproxy runs proxy.New directly (info-level JSON access log to
// stdout through a buffer flushed every 100 ms, as `rswebhooks serve` does;
// metrics on a private registry) so the benchmark does not depend on cmd/.
// With -pprof it also serves net/http/pprof.
package main

import (
	"bufio"
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" //nolint:gosec // benchmark-only, loopback
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/rswebhooks/rswebhooks/proxy"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:18081", "listen address")
	up := flag.String("upstream", "http://127.0.0.1:18080", "upstream URL")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address")
	quiet := flag.Bool("quiet", false, "no access log (warn level), to measure what logging costs")
	traced := flag.Bool("trace", false, "record a span per request (OpenTelemetry SDK, every span sampled, exported in batches to a discarding exporter), to measure what span export costs")
	flag.Parse()
	logs := &bufferedLog{w: bufio.NewWriterSize(os.Stdout, 64<<10)}
	go func() {
		for range time.Tick(100 * time.Millisecond) {
			logs.flush()
		}
	}()
	logger := zerolog.New(logs).With().Timestamp().Logger()
	if *quiet {
		logger = logger.Level(zerolog.WarnLevel)
	}
	target, err := url.Parse(*up)
	if err != nil {
		log.Fatal(err)
	}
	opts := proxy.Options{
		Upstream:   target,
		Logger:     logger,
		Registerer: prometheus.NewRegistry(),
	}
	if *traced {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
		opts.Tracer = tp.Tracer("bench")
	}
	p, err := proxy.New(opts)
	if err != nil {
		log.Fatal(err)
	}
	if *pprofAddr != "" {
		go func() { log.Println(http.ListenAndServe(*pprofAddr, nil)) }() //nolint:gosec // benchmark-only
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal((&http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}).Serve(ln))
}

// discard is a span exporter that drops what it gets.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// bufferedLog is cmd/rswebhooks' log buffer in short: whole lines, written
// in batches.
type bufferedLog struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (b *bufferedLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(p) > b.w.Available() && b.w.Buffered() > 0 {
		_ = b.w.Flush()
	}
	return b.w.Write(p)
}

func (b *bufferedLog) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.w.Flush()
}
