// Command upstream is the fast origin server of the proxy benchmark. It counts
// the TCP connections it accepted (GET /_stats, POST /_stats/reset) so the
// benchmark can tell connection reuse from churn.
//
//	GET /            1 KiB body with Content-Length (the wrk target)
//	GET /stream?n=N  N bytes, with Content-Length unless chunked=1
//	GET /ticks?n=K&every=D  K lines "<unix nanos>\n", flushed D apart
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:18080", "listen address")
	size := flag.Int("size", 1024, "body size of GET /")
	flag.Parse()

	body := bytes.Repeat([]byte("x"), *size)
	block := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	var newConns atomic.Int64

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	mux.HandleFunc("GET /_stats", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d\n", newConns.Load())
	})
	mux.HandleFunc("POST /_stats/reset", func(w http.ResponseWriter, r *http.Request) {
		newConns.Store(0)
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		}
		for n > 0 {
			c := min(n, int64(len(block)))
			if _, err := w.Write(block[:c]); err != nil {
				return
			}
			n -= c
		}
	})
	mux.HandleFunc("GET /ticks", func(w http.ResponseWriter, r *http.Request) {
		k, _ := strconv.Atoi(r.URL.Query().Get("n"))
		every, _ := time.ParseDuration(r.URL.Query().Get("every"))
		t := time.NewTicker(every)
		defer t.Stop()
		for i := 0; i < k; i++ {
			fmt.Fprintf(w, "%d\n", time.Now().UnixNano())
			w.(http.Flusher).Flush()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
		}
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				newConns.Add(1)
			}
		},
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(srv.Serve(ln))
}
