// Command rswproxy runs proxy.New directly (info-level JSON access log to
// stdout, metrics on a private registry) so the benchmark does not depend on
// cmd/. With -pprof it also serves net/http/pprof.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" //nolint:gosec // benchmark-only, loopback
	"net/url"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks/proxy"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:18081", "listen address")
	up := flag.String("upstream", "http://127.0.0.1:18080", "upstream URL")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address")
	quiet := flag.Bool("quiet", false, "no access log (warn level), to measure what logging costs")
	flag.Parse()
	logger := zerolog.New(os.Stdout).With().Timestamp().Logger()
	if *quiet {
		logger = logger.Level(zerolog.WarnLevel)
	}
	target, err := url.Parse(*up)
	if err != nil {
		log.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{
		Upstream:   target,
		Logger:     logger,
		Registerer: prometheus.NewRegistry(),
	})
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
