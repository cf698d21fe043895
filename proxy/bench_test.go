package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// rawUpstream answers every request on a connection with the same canned
// 1 KiB response. It parses nothing it does not need and allocates almost
// nothing, so a benchmark's allocs/op are the proxy's (server, proxy, client).
func rawUpstream(b *testing.B) net.Listener {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	body := bytes.Repeat([]byte("x"), 1024)
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + string(body))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) <= 2 { // end of a GET request's header
						if _, err := c.Write(resp); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln
}

// rawClient sends GET / on one kept-alive connection and reads the response
// by its Content-Length, allocating nothing per request.
type rawClient struct {
	c  net.Conn
	br *bufio.Reader
}

func newRawClient(b *testing.B, addr string) *rawClient {
	b.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return &rawClient{c: c, br: bufio.NewReaderSize(c, 16<<10)}
}

var rawGet = []byte("GET / HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")

func (rc *rawClient) get() error {
	if _, err := rc.c.Write(rawGet); err != nil {
		return err
	}
	n, status := -1, 0
	for {
		line, err := rc.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if status == 0 && len(line) > 12 {
			status, _ = strconv.Atoi(string(line[9:12]))
		}
		if len(line) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if status != http.StatusOK || n < 0 {
		return io.ErrUnexpectedEOF
	}
	_, err := rc.br.Discard(n)
	return err
}

// BenchmarkProxyGET measures one 1 KiB GET through the whole proxy process
// (http.Server, goproxy, transport, access log, metrics) over loopback.
// Run with -benchmem: allocs/op are the garbage each request leaves.
//
//	go test -run '^$' -bench ProxyGET -benchmem ./proxy
func BenchmarkProxyGET(b *testing.B) {
	for _, tc := range []struct {
		name  string
		level zerolog.Level
	}{{"log", zerolog.InfoLevel}, {"nolog", zerolog.WarnLevel}} {
		b.Run(tc.name, func(b *testing.B) {
			up := rawUpstream(b)
			p, err := New(Options{
				Upstream:   mustURL(b, "http://"+up.Addr().String()),
				Logger:     zerolog.New(io.Discard).Level(tc.level).With().Timestamp().Logger(),
				Registerer: prometheus.NewRegistry(),
			})
			if err != nil {
				b.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
			go func() { _ = srv.Serve(ln) }()
			b.Cleanup(func() { srv.Close() })
			rc := newRawClient(b, ln.Addr().String())
			if err := rc.get(); err != nil { // warm the pools
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := rc.get(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func mustURL(b *testing.B, s string) *url.URL {
	b.Helper()
	u, err := url.Parse(s)
	if err != nil {
		b.Fatal(err)
	}
	return u
}
