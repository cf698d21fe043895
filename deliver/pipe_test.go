package deliver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
)

// pipeNet serves an http.Handler with a real http.Server over in-memory
// connections (net.Pipe), so an engine and its receivers can run inside a
// testing/synctest bubble, where loopback sockets would stall the fake
// clock.
type pipeNet struct {
	conns  chan net.Conn
	srv    *http.Server
	once   sync.Once
	closed chan struct{}
}

func newPipeNet(h http.Handler) *pipeNet {
	p := &pipeNet{conns: make(chan net.Conn), srv: &http.Server{Handler: h}, closed: make(chan struct{})}
	go func() { _ = p.srv.Serve(p) }()
	return p
}

// Accept, Close and Addr make pipeNet the server's net.Listener.
func (p *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.closed:
		return nil, net.ErrClosed
	}
}

func (p *pipeNet) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

func (p *pipeNet) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// client returns an HTTP client whose every connection reaches the server.
func (p *pipeNet) client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, s := net.Pipe()
			select {
			case p.conns <- s:
				return c, nil
			case <-p.closed:
				return nil, errors.New("pipe network closed")
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
		MaxIdleConnsPerHost: 16,
	}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// shutdown stops the server and closes its connections.
func (p *pipeNet) shutdown(c *http.Client) {
	c.CloseIdleConnections()
	_ = p.srv.Close()
	_ = p.Close()
}
