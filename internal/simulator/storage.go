package simulator

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Storage controls: changes made straight in the report server's storage,
// as a migration or restore tool, or a node without a sidecar would make
// them. No report-server route sees them, so only a reader of the server's
// state (the reconciler) can. They are served under /_sim/storage for tests
// of the real binary and exported as Go hooks for in-process tests.
//
// Kinds are the filter names: reports, categories, connections, tasks,
// alerts.

// storageRoutes registers the storage controls.
func (s *Server) storageRoutes(b *routeBuilder) {
	b.anon(http.MethodPost, "_sim/storage/{kind}", s.storageCreate)
	b.anon(http.MethodPut, "_sim/storage/{kind}/{id}", s.storageRename)
	b.anon(http.MethodDelete, "_sim/storage/{kind}/{id}", s.storageDelete)
}

// storageBody is the body of POST and PUT /_sim/storage/….
type storageBody struct {
	Name       string `json:"Name"`
	CategoryId string `json:"CategoryId"`
	ReportId   string `json:"ReportId"`
}

func storageResp(err error) *resp {
	switch {
	case err == nil:
		return noContent()
	case errors.Is(err, ErrNotFound):
		return errResp(http.StatusNotFound, "%v", err)
	}
	return badRequest("%v", err)
}

// POST /_sim/storage/{kind} {Name, CategoryId (reports), ReportId (tasks,
// alerts)}: 200 {Id}.
func (s *Server) storageCreate(c *call) *resp {
	var m storageBody
	if res := c.bind(&m); res != nil {
		return res
	}
	var id string
	var err error
	switch c.param("kind") {
	case "categories":
		id, err = s.createCategoryLocked(m.Name)
	case "reports":
		id, err = s.createReportLocked(m.CategoryId, m.Name, "")
	case "connections":
		id, err = s.createConnectionLocked(m.Name)
	case "tasks":
		id, err = s.hookCreateTask(m.ReportId, m.Name, "", false)
	case "alerts":
		id, err = s.hookCreateTask(m.ReportId, m.Name, "", true)
	default:
		err = fmt.Errorf("kind %q is not one of reports, categories, connections, tasks, alerts", c.param("kind"))
	}
	if err != nil {
		return storageResp(err)
	}
	return ok(map[string]string{"Id": id})
}

// PUT /_sim/storage/{kind}/{id} {Name}: 204.
func (s *Server) storageRename(c *call) *resp {
	var m storageBody
	if res := c.bind(&m); res != nil {
		return res
	}
	return storageResp(s.renameLocked(c.param("kind"), c.param("id"), m.Name))
}

// DELETE /_sim/storage/{kind}/{id}: 204.
func (s *Server) storageDelete(c *call) *resp {
	return storageResp(s.deleteLocked(c.param("kind"), c.param("id")))
}

// RenameResource renames a report, category, data connection, task or alert
// in storage (a report's LastModifiedDateUtc moves too), with no HTTP call.
func (s *Server) RenameResource(kind, id, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.renameLocked(kind, id, name)
}

// DeleteResource deletes a report, category, data connection, task or alert
// in storage, with no HTTP call. Deleting a report modifies or deletes its
// tasks and alerts, as the server's own delete does; a category must be
// empty.
func (s *Server) DeleteResource(kind, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleteLocked(kind, id)
}

func (s *Server) createCategoryLocked(name string) (string, error) {
	if strings.TrimSpace(name) == "" || s.categoryNameTaken(name, "") {
		return "", fmt.Errorf("name %q is empty or taken", name)
	}
	cat := &Category{Id: s.st.remember(newID()), Name: name}
	s.st.categories[cat.Id] = cat
	return cat.Id, nil
}

func (s *Server) createReportLocked(categoryID, name, owner string) (string, error) {
	u, err := s.hookOwner(owner)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(name) == "" {
		return "", fmt.Errorf("name is required")
	}
	if s.st.categories[strings.ToLower(categoryID)] == nil {
		return "", fmt.Errorf("category %q: %w", categoryID, ErrNotFound)
	}
	r := s.newReport(name, "", strings.ToLower(categoryID), ".trdp", u.Id, []byte("PK simulated report "+name))
	return r.id, nil
}

func (s *Server) createConnectionLocked(name string) (string, error) {
	if strings.TrimSpace(name) == "" || s.connectionNameTaken(name, "") {
		return "", fmt.Errorf("name %q is empty or taken", name)
	}
	d := &DataConnection{Id: s.st.remember(newID()), Name: name, Provider: "System.Data.SqlClient",
		ConnectionString: "Data Source=(local);Initial Catalog=" + name + ";Integrated Security=SSPI"}
	s.st.connections[d.Id] = d
	return d.Id, nil
}

func (s *Server) renameLocked(kind, id, name string) error {
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("name is required")
	}
	key := strings.ToLower(id)
	switch kind {
	case "reports":
		if r := s.st.reports[key]; r != nil {
			r.name, r.modified = name, s.clock()
			return nil
		}
	case "categories":
		if c := s.st.categories[key]; c != nil {
			c.Name = name
			return nil
		}
	case "connections":
		if d := s.st.connections[key]; d != nil {
			d.Name = name
			return nil
		}
	case "tasks", "alerts":
		if t := s.st.tasks[key]; t != nil && t.alert == (kind == "alerts") {
			t.Name = name
			return nil
		}
	default:
		return fmt.Errorf("kind %q is not one of reports, categories, connections, tasks, alerts", kind)
	}
	return fmt.Errorf("%s %q: %w", kind, id, ErrNotFound)
}

func (s *Server) deleteLocked(kind, id string) error {
	key := strings.ToLower(id)
	switch kind {
	case "reports":
		if s.st.reports[key] != nil {
			s.removeReport(key)
			return nil
		}
	case "categories":
		if s.st.categories[key] != nil {
			for _, r := range s.st.reports {
				if r.categoryID == key {
					return fmt.Errorf("category %q still holds reports", id)
				}
			}
			delete(s.st.categories, key)
			s.removePermsFor(CategoryCategory, key)
			return nil
		}
	case "connections":
		if s.st.connections[key] != nil {
			delete(s.st.connections, key)
			s.removePermsFor(CategoryDataConnection, key)
			return nil
		}
	case "tasks", "alerts":
		if t := s.st.tasks[key]; t != nil && t.alert == (kind == "alerts") {
			s.removeTask(key)
			return nil
		}
	default:
		return fmt.Errorf("kind %q is not one of reports, categories, connections, tasks, alerts", kind)
	}
	return fmt.Errorf("%s %q: %w", kind, id, ErrNotFound)
}
