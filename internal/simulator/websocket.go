package simulator

import (
	"crypto/sha1" //nolint:gosec // RFC 6455 mandates SHA-1 for the accept key
	"encoding/base64"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
)

// wsGUID is the RFC 6455 handshake constant.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// maxWSFrame bounds one echoed frame.
const maxWSFrame = 1 << 20

// websocketEcho serves GET /_sim/ws: a minimal RFC 6455 echo server
// (SignalR-style long-lived upgrade for proxy tests). Every data frame is
// sent back unmasked with the same opcode; a close frame is echoed and ends
// the connection.
func (s *Server) websocketEcho(c *call) {
	r := c.r
	key := r.Header.Get("Sec-WebSocket-Key")
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !headerHasToken(r.Header, "Connection", "upgrade") || key == "" {
		s.write(c.w, r, badRequest("A WebSocket upgrade (Upgrade: websocket, Connection: Upgrade, Sec-WebSocket-Key) is required."))
		return
	}
	conn, rw, err := http.NewResponseController(c.w).Hijack()
	if err != nil {
		s.write(c.w, r, errResp(http.StatusInternalServerError, "hijack: %v", err))
		return
	}
	defer conn.Close()
	sum := sha1.Sum([]byte(key + wsGUID)) //nolint:gosec // protocol requirement
	_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")
	if rw.Flush() != nil {
		return
	}
	for {
		op, payload, err := readWSFrame(rw)
		if err != nil {
			return
		}
		if err := writeWSFrame(rw, op, payload); err != nil || rw.Flush() != nil || op == 8 {
			return
		}
	}
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func readWSFrame(r io.Reader) (byte, []byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	op := hdr[0] & 0x0f
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > maxWSFrame {
		return 0, nil, io.ErrShortBuffer
	}
	var mask [4]byte
	masked := hdr[1]&0x80 != 0
	if masked {
		if _, err := io.ReadFull(r, mask[:]); err != nil {
			return 0, nil, err
		}
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	if masked {
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
	}
	return op, payload, nil
}

func writeWSFrame(w io.Writer, op byte, payload []byte) error {
	hdr := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, byte(n))
	case n <= 0xffff:
		hdr = append(hdr, 126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}
