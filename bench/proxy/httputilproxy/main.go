// Command httputilproxy is the benchmark's reference: a plain
// net/http/httputil.ReverseProxy with the same tuned transport and a buffer pool.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/rswebhooks/rswebhooks/proxy"
)

type pool struct{ p sync.Pool }

func (b *pool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *pool) Put(v []byte) { b.p.Put(&v) }

func main() {
	addr := flag.String("listen", "127.0.0.1:18083", "listen address")
	up := flag.String("upstream", "http://127.0.0.1:18080", "upstream URL")
	flag.Parse()
	target, err := url.Parse(*up)
	if err != nil {
		log.Fatal(err)
	}
	tr, err := proxy.NewTransport(proxy.TransportOptions{})
	if err != nil {
		log.Fatal(err)
	}
	bp := &pool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetXForwarded()
		},
		Transport:  tr,
		BufferPool: bp,
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal((&http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}).Serve(ln))
}
