package proxy

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// TestStreamsFlushedAsTheyArrive: the first event must reach the client while
// the upstream is still blocked, for SSE, NDJSON and plain chunked bodies.
func TestStreamsFlushedAsTheyArrive(t *testing.T) {
	for _, ct := range []string{"text/event-stream", "application/x-ndjson", "application/json"} {
		t.Run(ct, func(t *testing.T) {
			release := make(chan struct{})
			up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", ct)
				_, _ = io.WriteString(w, "data: first\n\n")
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				_, _ = io.WriteString(w, "data: second\n\n")
			}))
			px := newTestProxy(t, up.url(t), nil)
			resp, err := client().Do(newReq(t, http.MethodGet, px.URL+"/signalr/connect", nil))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			lines := make(chan string, 4)
			go func() {
				br := bufio.NewReader(resp.Body)
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						close(lines)
						return
					}
					lines <- l
				}
			}()
			if l := recv(t, lines, "first event while the upstream is blocked"); l != "data: first\n" {
				t.Fatalf("first line %q", l)
			}
			close(release)
			var rest strings.Builder
			for l := range lines {
				rest.WriteString(l)
			}
			if rest.String() != "\ndata: second\n\n" {
				t.Fatalf("rest = %q", rest.String())
			}
		})
	}
}

func wsServer(t *testing.T) *upstream {
	return newUpstream(t, websocket.Handler(func(ws *websocket.Conn) {
		for {
			var msg string
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				return
			}
			if msg == "bye" {
				return // the upstream closes the socket
			}
			if msg == "hold" {
				<-ws.Request().Context().Done()
				return
			}
			_ = websocket.Message.Send(ws, "echo: "+msg)
		}
	}))
}

func dialWS(t *testing.T, proxyURL string) *websocket.Conn {
	t.Helper()
	ws, err := websocket.Dial("ws"+strings.TrimPrefix(proxyURL, "http")+"/signalr/connect", "", proxyURL)
	if err != nil {
		t.Fatalf("websocket dial through the proxy: %v", err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	_ = ws.SetDeadline(time.Now().Add(waitTimeout))
	return ws
}

func TestWebSocketThroughProxy(t *testing.T) {
	up := wsServer(t)
	px := newTestProxy(t, up.url(t), nil)
	ws := dialWS(t, px.URL)
	for _, m := range []string{"hello", strings.Repeat("big", 30000)} {
		if err := websocket.Message.Send(ws, m); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(ws, &got); err != nil || got != "echo: "+m {
			t.Fatalf("echo = %.40q, %v", got, err)
		}
	}
	// The upstream closes: the client side must be closed too (goproxy would leave it open).
	if err := websocket.Message.Send(ws, "bye"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := websocket.Message.Receive(ws, &got); !errors.Is(err, io.EOF) {
		t.Fatalf("after the upstream closed, client read = %q, %v; want io.EOF", got, err)
	}
	// The client may see the close before the handler has returned and
	// counted the request: wait for the handshake's handler to finish.
	px.waitServed(t, 1)
	if v := metric(t, px.reg, "rswebhooks_proxy_requests_total", map[string]string{"method": "GET", "code": "101"}); v != 1 {
		t.Fatalf("requests{GET,101} = %v", v)
	}
}

func TestWebSocketIdleTimeoutClosesTunnel(t *testing.T) {
	up := wsServer(t)
	px := newTestProxy(t, up.url(t), func(o *Options) { o.UpgradeIdleTimeout = 200 * time.Millisecond })
	ws := dialWS(t, px.URL)
	if err := websocket.Message.Send(ws, "hold"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var got string
	if err := websocket.Message.Receive(ws, &got); !errors.Is(err, io.EOF) {
		t.Fatalf("idle tunnel: read = %q, %v; want io.EOF", got, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("idle tunnel closed after %v", d)
	}
}
