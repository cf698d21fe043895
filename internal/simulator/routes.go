package simulator

import (
	"net/http"
	"strings"
)

// RouteInfo describes one served route (for docs and route-table tests).
type RouteInfo struct {
	Method string
	// Path is the template relative to the prefix, with a leading slash,
	// e.g. "/api/reportserver/v2/executions/scheduledtasks/{scheduledTaskId}".
	Path string
	// Version is v1 (unversioned and /v1), v2, v3, or "" for routes outside
	// api/reportserver.
	Version string
	// Auth is true when the route needs a bearer token.
	Auth bool
}

// Routes lists every route the simulator serves, in registration order.
func (s *Server) Routes() []RouteInfo {
	out := make([]RouteInfo, 0, len(s.routes))
	for _, rt := range s.routes {
		out = append(out, RouteInfo{Method: rt.method, Path: "/" + strings.Join(rt.segs, "/"), Version: rt.version, Auth: rt.auth})
	}
	return out
}

type base struct {
	path    string
	version string
}

var (
	unversioned = base{"api/reportserver", "v1"}
	v1          = base{"api/reportserver/v1", "v1"}
	v2          = base{"api/reportserver/v2", "v2"}
	v3          = base{"api/reportserver/v3", "v3"}
	v1v2        = []base{unversioned, v1, v2}
	v1only      = []base{unversioned, v1}
	allVersions = []base{unversioned, v1, v2, v3}
)

type routeBuilder struct{ routes []*route }

func (b *routeBuilder) add(rt *route, tmpl string) {
	rt.segs = splitPath(tmpl)
	for _, sg := range rt.segs {
		if !strings.HasPrefix(sg, "{") {
			rt.literals++
		}
	}
	rt.family = rt.method + " /" + strings.Join(rt.segs, "/")
	b.routes = append(b.routes, rt)
}

// api registers an authenticated api/reportserver route under each base.
func (b *routeBuilder) api(bases []base, method, tmpl string, h handler) {
	for _, bs := range bases {
		b.add(&route{method: method, auth: true, h: h, version: bs.version}, bs.path+"/"+tmpl)
	}
}

func (b *routeBuilder) apiStream(bases []base, method, tmpl string, h streamer) {
	for _, bs := range bases {
		b.add(&route{method: method, auth: true, stream: h, version: bs.version}, bs.path+"/"+tmpl)
	}
}

func (b *routeBuilder) anon(method, tmpl string, h handler) {
	b.add(&route{method: method, h: h}, tmpl)
}

func (b *routeBuilder) anonStream(method, tmpl string, h streamer) {
	b.add(&route{method: method, stream: h}, tmpl)
}

func (s *Server) buildRoutes() []*route {
	b := &routeBuilder{}
	const (
		get, post, put, del = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
	)

	// Authentication.
	b.anon(post, "Token", s.handleToken)
	b.api(v1v2, post, "logout", s.handleLogout)

	// Users, roles, permissions.
	b.api(allVersions, get, "users", s.listUsers)
	b.api(allVersions, get, "users/{userId}", s.getUser)
	b.api([]base{v2}, get, "users/{username}/isadmin", s.isAdminHandler)
	b.api(v1only, get, "users/{userId}/roles", s.userRoleIDs)
	b.api([]base{v2}, get, "users/{userId}/userroles", s.userRoles)
	b.api(v1v2, get, "userroles", s.listRoles)
	b.api(v1v2, get, "userroles/{userRoleId}", s.getRole)
	b.api([]base{v3}, get, "roles/{userRoleId}", s.getRole)
	b.api(allVersions, get, "users/{userId}/permissions/{category}", s.listPermissions)
	b.api(v1v2, get, "userroles/{userRoleId}/permissions/{category}", s.listPermissions)
	b.api(allVersions, post, "users/{userId}/permissions", s.createPermission)
	b.api(v1v2, post, "userroles/{userRoleId}/permissions", s.createPermission)
	b.api(allVersions, del, "permissions/{category}/{permissionId}", s.deletePermission)
	b.api([]base{v3}, get, "permissions/{category}/{permissionId}", s.getPermission)
	b.api(v1v2, post, "users/local", s.createUser)
	b.api(v1v2, del, "users/local/{userId}", s.deleteUser)
	b.api([]base{v3}, post, "users", s.createUser)
	b.api([]base{v3}, del, "users/{userId}", s.deleteUser)

	// Reports.
	b.api(allVersions, get, "reports", s.listReports)
	b.api(allVersions, post, "reports", s.createReport)
	b.api(allVersions, get, "reports/{reportId}", s.getReport)
	b.api([]base{unversioned, v1, v3}, put, "reports/{reportId}", s.updateReport)
	b.api([]base{v2}, put, "reports", s.updateReport)
	b.api(allVersions, del, "reports/{reportId}", s.deleteReport)
	b.api(v1v2, del, "reports/{reportId}/{revisionId}", s.deleteRevision)
	b.api(allVersions, get, "reports/{reportId}/revisions", s.listRevisions)
	b.api(allVersions, post, "reports/{reportId}/revisions", s.addRevision)
	b.api(v1v2, get, "reports/{reportId}/revisions/{revisionId}", s.getRevision)
	b.api(v1v2, del, "reports/{reportId}/revisions/{revisionId}", s.deleteRevision)
	b.api(v1v2, get, "reports/{reportId}/parameters", s.reportParameters)
	b.api(v1v2, get, "reports/{reportId}/shelve", s.getShelve)
	b.api(v1v2, put, "reports/{reportId}/shelve", s.putShelve)
	b.api(v1v2, del, "reports/{reportId}/shelve", s.deleteShelve)
	b.api(v1v2, put, "reports/{reportId}/favorite", s.setFavorite(true))
	b.api(v1v2, del, "reports/{reportId}/favorite", s.setFavorite(false))
	b.api(v1v2, put, "reports/{reportId}/lock", s.lockReport)
	b.api(v1v2, del, "reports/{reportId}/lock", s.unlockReport)
	b.api(v1v2, del, "reports/{reportId}/unlock", s.unlockReport)
	b.api(allVersions, post, "reports/{reportId}/publish", s.publishReport)

	// Categories.
	b.api(allVersions, get, "categories", s.listCategories)
	b.api(allVersions, get, "categories/{categoryId}", s.getCategory)
	b.api(v1v2, get, "categories/{categoryId}/reports", s.categoryReports)
	b.api(v1only, get, "categories/reportaccess/{accessPermission}", s.categoriesByReportAccess)
	b.api(allVersions, post, "categories", s.createCategory)
	b.api(v1v2, put, "categories", s.updateCategory)
	b.api([]base{v3}, put, "categories/{categoryId}", s.updateCategory)
	b.api(allVersions, del, "categories/{categoryId}", s.deleteCategory)

	// Data connections.
	b.api(v1v2, get, "dataconnections", s.listConnections)
	b.api(v1v2, get, "dataconnections/{dataConnectionId}", s.getConnection)
	b.api(v1v2, get, "dataconnectionproviders", s.listProviders)
	b.api(v1v2, post, "dataconnections", s.createConnection)
	b.api(v1v2, put, "dataconnections", s.updateConnection)
	b.api(v1v2, del, "dataconnections/{dataConnectionId}", s.deleteConnection)
	b.api([]base{v3}, get, "data-connections", s.listConnections)
	b.api([]base{v3}, get, "data-connections/providers", s.listProviders)
	b.api([]base{v3}, get, "data-connections/{dataConnectionId}", s.getConnection)
	b.api([]base{v3}, post, "data-connections", s.createConnection)
	b.api([]base{v3}, put, "data-connections/{dataConnectionId}", s.updateConnection)
	b.api([]base{v3}, del, "data-connections/{dataConnectionId}", s.deleteConnection)

	// Scheduled tasks and data alerts, with their executions.
	for _, k := range []kind{taskKind, alertKind} {
		id := "{" + k.param + "}"
		b.api(v1v2, get, k.v1Path, s.listTasks(k))
		b.api(v1v2, get, k.v1Path+"/"+id, s.getTask(k))
		b.api(v1v2, post, k.v1Path, s.createTask(k))
		b.api(v1v2, put, k.v1Path, s.updateTask(k))
		b.api(v1v2, del, k.v1Path+"/"+id, s.deleteTask(k))
		b.api(v1v2, get, "executions/"+k.v1Path+"/"+id, s.listExecutions(k))
		b.api(v1v2, post, "executions/"+k.v1Path+"/"+id, s.executeTask(k))
		b.api(v1v2, del, "executions/"+k.v1Path+"/"+id, s.deleteExecutions(k))
		b.api(v1v2, del, "executions/"+k.v1Path+"/"+id+"/{executionId}", s.deleteExecution(k))

		b.api([]base{v3}, get, k.v3Path, s.listTasks(k))
		b.api([]base{v3}, post, k.v3Path, s.createTask(k))
		b.api([]base{v3}, get, k.v3Path+"/"+id, s.getTask(k))
		b.api([]base{v3}, put, k.v3Path+"/"+id, s.updateTask(k))
		b.api([]base{v3}, del, k.v3Path+"/"+id, s.deleteTask(k))
		b.api([]base{v3}, post, k.v3Path+"/"+id+"/execute", s.executeTask(k))
		b.api([]base{v3}, get, k.v3Path+"/"+id+"/executions", s.listExecutions(k))
		b.api([]base{v3}, del, k.v3Path+"/"+id+"/executions", s.deleteExecutions(k))
		b.api([]base{v3}, del, k.v3Path+"/"+id+"/executions/{executionId}", s.deleteExecution(k))
		b.apiStream([]base{v3}, get, k.v3Path+"/"+id+"/executions/{executionId}/documents/{documentId}", s.executionDocument(k))
	}

	// Documents (rendering; not resource changes).
	b.api(allVersions, post, "documents", s.createDocument)
	b.apiStream(allVersions, get, "documents/{documentId}", s.getDocument)
	b.apiStream(allVersions, get, "documents/{documentId}/large", s.streamLarge)

	// Reporting REST service (rendering noise).
	b.anon(get, "api/reports/version", s.renderVersion)
	b.anon(post, "api/reports/clients", s.renderNewClient)
	b.anon(del, "api/reports/clients/{clientId}", s.renderDeleteClient)
	b.anon(post, "api/reports/clients/{clientId}/instances", s.renderNewInstance)
	b.anon(post, "api/reports/clients/{clientId}/instances/{instanceId}/documents", s.renderNewDocument)
	b.anon(get, "api/reports/clients/{clientId}/instances/{instanceId}/documents/{documentId}/info", s.renderDocumentInfo)
	b.anon(get, "api/reports/clients/{clientId}/instances/{instanceId}/documents/{documentId}", s.renderDocumentContent)

	// The manager's own routes (manager.go) and storage controls (storage.go).
	s.managerRoutes(b)
	s.storageRoutes(b)

	// Simulator-only helpers for proxy tests (no auth, never failed by
	// FailWith/FailNext, no latency).
	b.anonStream(get, "_sim/large", s.streamLarge)
	b.anonStream(get, "_sim/slow", s.streamSlow)
	b.anonStream(get, "_sim/sse", s.streamSSE)
	b.anonStream(get, "_sim/ws", s.websocketEcho)
	for _, m := range []string{get, post, put, del, http.MethodPatch, http.MethodOptions} {
		b.anonStream(m, "_sim/echo", s.echo)
	}
	return b.routes
}
