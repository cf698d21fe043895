package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// snapshotVersion is the format of the persisted snapshot.
const snapshotVersion = 1

// snapshot is what the reconciler last read, persisted under metaSnapshot.
type snapshot struct {
	V           int                    `json:"V"`
	Collections map[string]*collection `json:"C"`
	// Used are the proxy events (ids) that already absorbed a change and
	// are recent enough to fall in the next run's window again.
	Used map[string]time.Time `json:"U,omitempty"`
}

// collection is one collection as last read. A collection missing from the
// snapshot has no baseline yet: its first read is recorded silently.
type collection struct {
	// ReadAt is the local time the list request was sent.
	ReadAt time.Time `json:"T"`
	// Items by lower-case id (the report server's ids are
	// case-insensitive).
	Items map[string]entry `json:"I"`
}

// entry is one item: its id as listed, name and fingerprint.
type entry struct {
	ID   string `json:"i"`
	Name string `json:"n,omitempty"`
	FP   string `json:"f"`
}

// item is one decoded list element.
type item struct {
	entry
	// Creator of the item, when the model names it (reports: CreatedBy and
	// CreatedByName; tasks and alerts: UserId).
	UserID, UserName string
}

// perCaller lists (lower case) the fields left out of a fingerprint: they
// depend on who asks (IsFavorite, Can…), are derived from other resources
// (ReportsCount) or move on their own (locks, execution times).
var perCaller = map[string]bool{
	"isfavorite": true, "canedit": true, "canview": true, "canmodify": true, "candelete": true,
	"reportscount": true, "lockedby": true, "lockedbyname": true,
	"lastexecutiondate": true, "lastexecutiondateutc": true,
	"nextexecutiondate": true, "nextexecutiondateutc": true,
	"nextoccurrence": true, "nextoccurrenceutc": true,
}

// reportRow is the part of ReportInfo a report's fingerprint and event use.
type reportRow struct {
	ID                  string          `json:"Id"`
	Name                string          `json:"Name"`
	CategoryID          string          `json:"CategoryId"`
	Description         string          `json:"Description"`
	LastRevisionID      string          `json:"LastRevisionId"`
	LastModifiedDateUTC json.RawMessage `json:"LastModifiedDateUtc"`
	CreatedBy           string          `json:"CreatedBy"`
	CreatedByName       string          `json:"CreatedByName"`
}

func fingerprint(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// decodeItem reads one list element of collection filter.
func decodeItem(filter string, raw json.RawMessage) (item, error) {
	if filter == rswebhooks.FilterReports {
		var r reportRow
		if err := json.Unmarshal(raw, &r); err != nil {
			return item{}, err
		}
		if r.ID == "" {
			return item{}, fmt.Errorf("report without Id")
		}
		return item{
			entry: entry{ID: r.ID, Name: r.Name, FP: fingerprint([]byte(r.LastRevisionID), r.LastModifiedDateUTC,
				[]byte(r.Name), []byte(strings.ToLower(r.CategoryID)), []byte(r.Description))},
			UserID: r.CreatedBy, UserName: r.CreatedByName,
		}, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return item{}, err
	}
	var it item
	for k, v := range m {
		lk := strings.ToLower(k)
		s, _ := v.(string)
		switch lk {
		case "id":
			it.ID = s
		case "name":
			it.Name = s
		case "userid":
			it.UserID = s
		}
		if perCaller[lk] {
			delete(m, k)
		}
	}
	if it.ID == "" {
		return item{}, fmt.Errorf("item without Id")
	}
	canon, err := json.Marshal(m) // map keys sorted: canonical
	if err != nil {
		return item{}, err
	}
	it.FP = fingerprint(canon)
	return it, nil
}

// change is one difference between a collection's snapshot and its new read.
type change struct {
	filter string
	typ    string // Created, Updated, Deleted
	key    string // lower-case id
	old    entry  // zero for Created
	cur    item   // zero for Deleted (cur.entry = old for naming)
}

// diff compares a collection's snapshot with the items just read.
func diff(filter string, old map[string]entry, cur map[string]item) []change {
	var out []change
	for k, it := range cur {
		o, ok := old[k]
		switch {
		case !ok:
			out = append(out, change{filter: filter, typ: rswebhooks.EventCreated, key: k, cur: it})
		case o.FP != it.FP:
			out = append(out, change{filter: filter, typ: rswebhooks.EventUpdated, key: k, old: o, cur: it})
		}
	}
	for k, o := range old {
		if _, ok := cur[k]; !ok {
			out = append(out, change{filter: filter, typ: rswebhooks.EventDeleted, key: k, old: o, cur: item{entry: o}})
		}
	}
	return out
}

// eventID is the deterministic id of a change's event: a ULID whose time is
// the collection's previous read and whose 80 other bits hash the change
// (filter, id, type, old and new fingerprints). Re-running the same diff
// after a crash gives the same id, which the store refuses as a duplicate.
func eventID(c change, prevRead time.Time) string {
	h := sha256.Sum256([]byte("rswebhooks/reconcile\x00" + c.filter + "\x00" + c.key + "\x00" + c.typ +
		"\x00" + c.old.FP + "\x00" + c.cur.FP))
	return rswebhooks.IDFrom(prevRead, [10]byte(h[:10]))
}
