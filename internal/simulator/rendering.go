package simulator

import (
	"fmt"
	"net/http"
	"strings"
)

// The Telerik Reporting REST service under api/reports/..., which previews
// and viewers use. These calls are rendering sessions, never resource
// changes. It uses camelCase JSON, unlike api/reportserver. No token is
// required [I].

type renderClient struct {
	ClientID string `json:"clientId"`
}

type renderInstance struct {
	InstanceID string `json:"instanceId"`
}

type renderDocument struct {
	DocumentID string `json:"documentId"`
}

type renderInfo struct {
	DocumentReady        bool `json:"documentReady"`
	DocumentMapAvailable bool `json:"documentMapAvailable"`
	PageCount            int  `json:"pageCount"`
}

func goneClient(id string) *resp {
	// Expired client ids answer 410 (docs/report-server-api.md §7).
	return jsonResp(http.StatusGone, map[string]string{"message": fmt.Sprintf("Invalid clientID '%s'.", id),
		"error": "The client has expired."})
}

// POST api/reports/clients: 200 {"clientId"}.
func (s *Server) renderNewClient(*call) *resp {
	id := newID()
	s.st.clients[id] = map[string]bool{}
	return ok(renderClient{ClientID: id})
}

// DELETE api/reports/clients/{clientId}: 200 empty.
func (s *Server) renderDeleteClient(c *call) *resp {
	delete(s.st.clients, strings.ToLower(c.param("clientId")))
	return &resp{status: http.StatusOK}
}

// POST api/reports/clients/{clientId}/instances: 201 {"instanceId"}; 410 for
// an unknown client.
func (s *Server) renderNewInstance(c *call) *resp {
	cl := s.st.clients[strings.ToLower(c.param("clientId"))]
	if cl == nil {
		return goneClient(c.param("clientId"))
	}
	id := newID()
	cl[id] = true
	return jsonResp(http.StatusCreated, renderInstance{InstanceID: id})
}

// POST api/reports/clients/{clientId}/instances/{instanceId}/documents: 202
// {"documentId"}.
func (s *Server) renderNewDocument(c *call) *resp {
	cl := s.st.clients[strings.ToLower(c.param("clientId"))]
	if cl == nil {
		return goneClient(c.param("clientId"))
	}
	if !cl[strings.ToLower(c.param("instanceId"))] {
		return errResp(http.StatusNotFound, "Report instance '%s' was not found.", c.param("instanceId"))
	}
	return jsonResp(http.StatusAccepted, renderDocument{DocumentID: newID()})
}

// GET …/documents/{documentId}/info: always ready.
func (s *Server) renderDocumentInfo(c *call) *resp {
	if s.st.clients[strings.ToLower(c.param("clientId"))] == nil {
		return goneClient(c.param("clientId"))
	}
	return ok(renderInfo{DocumentReady: true, PageCount: 1})
}

// GET …/documents/{documentId}: a small HTML page.
func (s *Server) renderDocumentContent(c *call) *resp {
	if s.st.clients[strings.ToLower(c.param("clientId"))] == nil {
		return goneClient(c.param("clientId"))
	}
	return &resp{status: http.StatusOK, ctype: "text/html; charset=utf-8",
		raw: []byte("<html><body>simulated page of document " + c.param("documentId") + "</body></html>")}
}

// GET api/reports/version: the service version as a JSON string.
func (s *Server) renderVersion(*call) *resp { return ok("19.0.25.211") }
