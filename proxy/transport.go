package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// TransportOptions configures NewTransport. The zero value is a good default.
type TransportOptions struct {
	// CAFile is a PEM bundle trusted in addition to the system roots (for an
	// upstream with a private CA). Default "": system roots only.
	CAFile string
	// InsecureSkipVerify turns TLS verification off. Default false.
	InsecureSkipVerify bool
	// MaxIdleConnsPerHost is how many idle upstream connections are kept for
	// reuse. It should be at least the expected client concurrency, or
	// connections churn. 0 means 256; negative is refused.
	MaxIdleConnsPerHost int
	// IdleConnTimeout closes idle upstream connections. Keep it below the
	// report server's keep-alive timeout (IIS: 120 s), because net/http
	// cannot retry a POST on a pooled connection the server just closed.
	// 0 means 60 s; negative is refused.
	IdleConnTimeout time.Duration
	// DialTimeout bounds connecting to the upstream. 0 means 10 s.
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake. 0 means 10 s.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers after the
	// request was sent. 0 means none: report rendering can take minutes.
	ResponseHeaderTimeout time.Duration
}

// NewTransport returns the transport the proxy uses for the upstream: a clone
// of http.DefaultTransport with no proxy from the environment, compression
// off (bodies pass through byte-identical), a connection pool sized for a
// busy server, bounded dial and handshake times, TLS verification on unless
// InsecureSkipVerify, and HTTP/2 attempted over TLS.
func NewTransport(o TransportOptions) (*http.Transport, error) {
	if o.MaxIdleConnsPerHost < 0 {
		return nil, fmt.Errorf("proxy: TransportOptions.MaxIdleConnsPerHost must be >= 0, got %d", o.MaxIdleConnsPerHost)
	}
	if o.IdleConnTimeout < 0 {
		return nil, fmt.Errorf("proxy: TransportOptions.IdleConnTimeout must be >= 0, got %s", o.IdleConnTimeout)
	}
	if o.MaxIdleConnsPerHost == 0 {
		o.MaxIdleConnsPerHost = 256
	}
	if o.IdleConnTimeout == 0 {
		o.IdleConnTimeout = 60 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.TLSHandshakeTimeout <= 0 {
		o.TLSHandshakeTimeout = 10 * time.Second
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // opt-in flag
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("proxy: TransportOptions.CAFile: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("proxy: TransportOptions.CAFile must contain at least one PEM certificate")
		}
		tlsConf.RootCAs = pool
	}
	base, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, errors.New("proxy: http.DefaultTransport is not an *http.Transport")
	}
	t := base.Clone()
	t.Proxy = nil
	t.DialContext = (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSClientConfig = tlsConf
	t.TLSHandshakeTimeout = o.TLSHandshakeTimeout
	t.ResponseHeaderTimeout = o.ResponseHeaderTimeout
	t.MaxIdleConns = 0 // no global cap; the per-host cap is the one that matters
	t.MaxIdleConnsPerHost = o.MaxIdleConnsPerHost
	t.IdleConnTimeout = o.IdleConnTimeout
	t.DisableCompression = true
	t.ForceAttemptHTTP2 = true
	t.WriteBufferSize = 32 << 10
	t.ReadBufferSize = 32 << 10
	return t, nil
}
