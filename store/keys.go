package store

import (
	"encoding/binary"
	"fmt"
	"time"
)

const (
	pWebhook    = "w/"
	pOwner      = "wo/"
	pEvent      = "e/"
	pUnfanned   = "ef/"
	pDelivery   = "d/"
	pByWebhook  = "dw/"
	pByEvent    = "de/"
	pQueue      = "q/"
	pOrder      = "dp/"
	pAttempt    = "a/"
	pSnapshot   = "s/"
	pExecution  = "x/"
	pMeta       = "m/"
	metaSchema  = "schema"
	metaPing    = "ping"
	metaOrder   = "order-index"
	metaMigrate = "migrating"
	queueKeyLen = len(pQueue) + 8 + 1
)

func key(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func webhookKey(id string) []byte          { return key(pWebhook, id) }
func ownerKey(owner, id string) []byte     { return key(pOwner, owner, "/", id) }
func ownerPrefix(owner string) []byte      { return key(pOwner, owner, "/") }
func eventKey(id string) []byte            { return key(pEvent, id) }
func unfannedKey(id string) []byte         { return key(pUnfanned, id) }
func deliveryKey(id string) []byte         { return key(pDelivery, id) }
func byWebhookKey(wh, id string) []byte    { return key(pByWebhook, wh, "/", id) }
func byWebhookPrefix(wh string) []byte     { return key(pByWebhook, wh, "/") }
func orderPrefix(wh string) []byte         { return key(pOrder, wh, "/") }
func orderKey(wh, ev, id string) []byte    { return key(pOrder, wh, "/", ev, "/", id) }
func byEventKey(ev, id string) []byte      { return key(pByEvent, ev, "/", id) }
func byEventPrefix(ev string) []byte       { return key(pByEvent, ev, "/") }
func attemptPrefix(delivery string) []byte { return key(pAttempt, delivery, "/") }
func executionKey(id string) []byte        { return key(pExecution, id) }
func metaKey(k string) []byte              { return key(pMeta, k) }

func attemptKey(delivery string, n int) []byte {
	b := attemptPrefix(delivery)
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// dueNanos maps a due time to the queue's sort key; the zero time and times
// before 1970 sort first (due at once).
func dueNanos(t time.Time) uint64 {
	if t.IsZero() || t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixNano())
}

func queueKey(due time.Time, id string) []byte {
	b := make([]byte, 0, queueKeyLen+len(id))
	b = append(b, pQueue...)
	b = binary.BigEndian.AppendUint64(b, dueNanos(due))
	b = append(b, '/')
	return append(b, id...)
}

// parseQueueKey splits q/<due>/<id>.
func parseQueueKey(k []byte) (due uint64, id string, err error) {
	if len(k) < queueKeyLen || string(k[:len(pQueue)]) != pQueue || k[queueKeyLen-1] != '/' {
		return 0, "", fmt.Errorf("malformed queue key %q", k)
	}
	return binary.BigEndian.Uint64(k[len(pQueue) : len(pQueue)+8]), string(k[queueKeyLen:]), nil
}

func nanosTime(n uint64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n)).UTC()
}
