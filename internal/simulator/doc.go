// Package simulator is a fake Telerik Report Server for tests, benchmarks
// and the demo: POST /Token, the api/reportserver management API in its v1
// (unversioned and /v1), v2 and v3 shapes (users, roles, permissions,
// reports, categories, data connections, scheduled tasks, data alerts,
// executions, documents), the api/reports rendering service, and a few
// /_sim/ streaming routes for proxy tests.
//
// It follows docs/report-server-api.md.
// Behaviour the reference only infers is marked [I] in comments; behaviour
// it could not confirm at all is marked [U]. In particular the status codes
// are [I]: Web API 2 answers 200 for actions returning a value and 204 for
// void ones; v3 creates answer 201 + Location here.
//
// New returns a *Server, an http.Handler; Serve runs it on a listener. Its
// exported methods are concurrency-safe hooks that change state without
// HTTP: RunTask and RunAlert (an execution "on schedule"), HoldRuns and
// ReleaseRuns (execute calls whose runs the agent queues), and
// DeleteExecutionHistory, SetDocumentSize (generated, never-held documents
// of any size) and DocumentContent, SetClockSkew, FailWith/FailNext/SetLatency,
// Requests/Count/ResetCounters, SeedTasks/SeedAlerts, CreateCategory,
// CreateReport, CreateDataConnection, CreateTask, CreateAlert, Grant,
// AddUser, DisableUser, IssueToken, RevokeToken, Users, Lookup. Routes
// lists every route served.
//
// # Conventions
//
// JSON goes out in PascalCase and is read case-insensitively; paths match
// case-insensitively, with or without a trailing slash, under
// Options.Prefix. JSON responses are gzip-compressed when the client
// accepts it (unless Options.DisableGzip). Errors are {"Message": "..."}
// (Web API style) except at /Token, which answers OAuth errors
// {"error","error_description"}. Unknown routes answer 404, a known path
// with another method 405 (with Allow), unknown ids 404, bad or incomplete
// bodies 400, a missing/invalid/expired/revoked token 401, and a caller
// without the needed permission 403.
//
// Ids: 11 hex characters for resources, executions and documents, 32 hex
// characters for users and roles. Lists come out oldest first.
//
// # Users and permissions
//
// Seeded users: admin/admin (role "System Administrator", IsSystemRole
// true, Unrestricted on every Any* scope), alice/alice and bob/bob (role
// "Users": Read on AnyReport and AnyCategory). Administrators may do
// anything. Others need the permission bits for the resource (Read for any
// GET, plus Create/Modify/Delete for the change; bits may come from several
// grants). Any user may create scheduled tasks and data alerts; a
// non-administrator creator receives Unrestricted on SpecificScheduledTask
// or SpecificDataAlert for that item (removed with it). Lists are filtered
// to what the caller can read; a specific unreadable item is 403. Only
// administrators read other users, roles and permissions [I].
//
// # Routes
//
// {v1} stands for both api/reportserver and api/reportserver/v1; {v2} is
// api/reportserver/v2 and {v3} api/reportserver/v3. Everything under them
// needs Authorization: Bearer. "id" means a bare JSON string id.
//
//	POST   /Token                                         200 {access_token,token_type,expires_in,userName,.issued,.expires}; 400 {error:invalid_grant|unsupported_grant_type|invalid_request}
//	POST   {v1,v2}/logout                                 200 empty; revokes the token
//
// Users, roles, permissions (admin only unless "self"):
//
//	GET    {v1,v2,v3}/users                               200 User[]
//	GET    {v1,v2,v3}/users/{userId}                      200 User (self allowed)
//	GET    {v2}/users/{username}/isadmin                  200 true|false (self allowed) [U shape: the help page says a string collection]
//	GET    {v1}/users/{userId}/roles                      200 ["roleId", ...] (self allowed)
//	GET    {v2}/users/{userId}/userroles                  200 UserRole[] (self allowed)
//	GET    {v1,v2}/userroles                              200 UserRole[]
//	GET    {v1,v2}/userroles/{userRoleId}                 200 UserRole (members allowed)
//	GET    {v3}/roles/{userRoleId}                        200 UserRole (members allowed)
//	GET    {v1,v2,v3}/users/{userId}/permissions/{category}            200 Permission[]: a user's own plus its roles', or a role's own [U]; category 0-4 or its name
//	GET    {v1,v2}/userroles/{userRoleId}/permissions/{category}       200 Permission[]
//	POST   {v1,v2,v3}/users/{userId}/permissions          200 v1 id, v2/v3 Permission; body {Access, ResourceId, Scope}
//	POST   {v1,v2}/userroles/{userRoleId}/permissions     200 as above
//	DELETE {v1,v2,v3}/permissions/{category}/{permissionId}            204
//	GET    {v3}/permissions/{category}/{permissionId}     200 Permission
//	POST   {v1,v2}/users/local                            200 id; body CreateLocalUserData
//	DELETE {v1,v2}/users/local/{userId}                   204
//	POST   {v3}/users                                     201 User + Location
//	DELETE {v3}/users/{userId}                            204 [I]
//
// Reports (UploadReport {Name, Description, CategoryId, ReportFile: HttpFile}; v3 also multipart):
//
//	GET    {v1,v2,v3}/reports                             200 ReportInfo[]
//	POST   {v1,v2,v3}/reports                             v1 200 id; v2 200 ReportInfo; v3 201 ReportInfo + Location [U]
//	GET    {v1,v2,v3}/reports/{reportId}                  200 ReportInfo
//	PUT    {v1,v3}/reports/{reportId}                     200 ReportInfo; body {Name, Description, CategoryId}
//	PUT    {v2}/reports                                   200 ReportInfo; body Id names the report
//	DELETE {v1,v2,v3}/reports/{reportId}                  204; tasks/alerts lose the report, and go when it was their only one
//	DELETE {v1,v2}/reports/{reportId}/{revisionId}        204; 400 for the only revision
//	GET    {v1,v2,v3}/reports/{reportId}/revisions        200 RevisionInfo[] [U shape]
//	POST   {v1,v2,v3}/reports/{reportId}/revisions        204; v1/v2 body {Comment, RevisionFile}, v3 multipart
//	GET    {v1,v2}/reports/{reportId}/revisions/{revisionId}           200 ReportRevisionContent {Id, Content base64}; "latest" allowed
//	DELETE {v1,v2}/reports/{reportId}/revisions/{revisionId}           204
//	GET    {v1,v2}/reports/{reportId}/parameters          200 []
//	GET    {v1,v2}/reports/{reportId}/shelve              200 {Content, Extension}; 404 when nothing is shelved
//	PUT    {v1,v2}/reports/{reportId}/shelve              204; the raw body is the shelved definition
//	DELETE {v1,v2}/reports/{reportId}/shelve              204
//	PUT    {v1,v2}/reports/{reportId}/favorite            204 (Read suffices)
//	DELETE {v1,v2}/reports/{reportId}/favorite            204
//	PUT    {v1,v2}/reports/{reportId}/lock                204; 409 when another user holds the lock
//	DELETE {v1,v2}/reports/{reportId}/lock                204 (2016 spelling of unlock); 409 as above unless admin
//	DELETE {v1,v2}/reports/{reportId}/unlock              204
//	POST   {v1,v2,v3}/reports/{reportId}/publish          204; body a JSON string comment; shelve (or latest) becomes a revision
//
// Categories ({Id, Name}; delete refused with 400 while reports remain [U status]):
//
//	GET    {v1,v2,v3}/categories                          200 Category[]
//	GET    {v1,v2,v3}/categories/{categoryId}             200 Category
//	GET    {v1,v2}/categories/{categoryId}/reports        200 ReportInfo[]
//	GET    {v1}/categories/reportaccess/{accessPermission}             200 Category[] [I]
//	POST   {v1,v2,v3}/categories                          v1 200 id; v2 200 Category; v3 201 Category + Location
//	PUT    {v1,v2}/categories                             200 Category; body Id names it
//	PUT    {v3}/categories/{categoryId}                   200 Category; body {Name}
//	DELETE {v1,v2,v3}/categories/{categoryId}             204
//
// Data connections ({Id, Name, Description, Provider, ConnectionString}):
//
//	GET    {v1,v2}/dataconnections                        200 DataConnection[]
//	GET    {v1,v2}/dataconnections/{dataConnectionId}     200 DataConnection
//	GET    {v1,v2}/dataconnectionproviders                200 [{Name, Description}]
//	POST   {v1,v2}/dataconnections                        v1 200 id; v2 200 DataConnection
//	PUT    {v1,v2}/dataconnections                        200 DataConnection; body Id names it
//	DELETE {v1,v2}/dataconnections/{dataConnectionId}     204
//	GET    {v3}/data-connections                          200 DataConnection[]
//	GET    {v3}/data-connections/providers                200 [{Name, Description}]
//	GET    {v3}/data-connections/{dataConnectionId}       200 DataConnection
//	POST   {v3}/data-connections                          201 DataConnection + Location
//	PUT    {v3}/data-connections/{dataConnectionId}       200 DataConnection; no Id in the body
//	DELETE {v3}/data-connections/{dataConnectionId}       204
//
// Scheduled tasks (v1 shape ScheduledTaskV1 with one ReportId; v2/v3 ScheduledTask with Reports[]):
//
//	GET    {v1,v2}/scheduledtasks                         200 task[]
//	GET    {v1,v2}/scheduledtasks/{scheduledTaskId}       200 task
//	POST   {v1,v2}/scheduledtasks                         v1 200 id; v2 200 ScheduledTask [I]
//	PUT    {v1,v2}/scheduledtasks                         200 task; body Id names it
//	DELETE {v1,v2}/scheduledtasks/{scheduledTaskId}       204; its executions and documents go too
//	GET    {v1,v2}/executions/scheduledtasks/{scheduledTaskId}         200 SchedulingExecution[] {Id, DocumentIds, AlertTriggered, ExecutionDate, ExecutionDateUtc}
//	POST   {v1,v2}/executions/scheduledtasks/{scheduledTaskId}         204; the execution is recorded before the answer [I]
//	DELETE {v1,v2}/executions/scheduledtasks/{scheduledTaskId}         204 (all)
//	DELETE {v1,v2}/executions/scheduledtasks/{scheduledTaskId}/{executionId}  204; 404 if unknown
//	GET    {v3}/scheduled-tasks                           200 ScheduledTask[]
//	POST   {v3}/scheduled-tasks                           201 ScheduledTask + Location
//	GET    {v3}/scheduled-tasks/{scheduledTaskId}         200 ScheduledTask
//	PUT    {v3}/scheduled-tasks/{scheduledTaskId}         200 ScheduledTask [I]
//	DELETE {v3}/scheduled-tasks/{scheduledTaskId}         204
//	POST   {v3}/scheduled-tasks/{scheduledTaskId}/execute                 204
//	GET    {v3}/scheduled-tasks/{scheduledTaskId}/executions              200 SchedulingExecution[] [I route]
//	DELETE {v3}/scheduled-tasks/{scheduledTaskId}/executions              204
//	DELETE {v3}/scheduled-tasks/{scheduledTaskId}/executions/{executionId}  204
//	GET    {v3}/scheduled-tasks/{scheduledTaskId}/executions/{executionId}/documents/{documentId}  200 ExecutionDocument [I route]
//
// Data alerts (the task fields plus Rules[]; an alert run from the API counts as triggered [I]):
//
//	GET    {v1,v2}/dataalerts                             200 alert[]
//	GET    {v1,v2}/dataalerts/{dataAlertId}               200 alert
//	POST   {v1,v2}/dataalerts                             v1 200 id; v2 200 DataAlert [I]
//	PUT    {v1,v2}/dataalerts                             200 alert; body Id names it
//	DELETE {v1,v2}/dataalerts/{dataAlertId}               204
//	GET    {v1,v2}/executions/dataalerts/{dataAlertId}    200 SchedulingExecution[]
//	POST   {v1,v2}/executions/dataalerts/{dataAlertId}    204
//	DELETE {v1,v2}/executions/dataalerts/{dataAlertId}    204 (all)
//	DELETE {v1,v2}/executions/dataalerts/{dataAlertId}/{executionId}  204
//	GET    {v3}/data-alerts                               200 DataAlert[]
//	POST   {v3}/data-alerts                               201 DataAlert + Location
//	GET    {v3}/data-alerts/{dataAlertId}                 200 DataAlert
//	PUT    {v3}/data-alerts/{dataAlertId}                 200 DataAlert
//	DELETE {v3}/data-alerts/{dataAlertId}                 204
//	POST   {v3}/data-alerts/{dataAlertId}/execute         204
//	GET    {v3}/data-alerts/{dataAlertId}/executions      200 SchedulingExecution[]
//	DELETE {v3}/data-alerts/{dataAlertId}/executions      204
//	DELETE {v3}/data-alerts/{dataAlertId}/executions/{executionId}  204
//	GET    {v3}/data-alerts/{dataAlertId}/executions/{executionId}/documents/{documentId}  200 ExecutionDocument
//
// Documents (rendering; never a resource change):
//
//	POST   {v1,v2,v3}/documents                           201 + Location; v1/v2 id, v3 {Id, Status:"Completed"}; body {ReportId, Format}
//	GET    {v1,v2,v3}/documents/{documentId}              200 the bytes, streamed with Content-Length, Content-Type and Content-Disposition (?content-disposition=attachment); execution documents too [I]
//	GET    {v1,v2,v3}/documents/{documentId}/large        200 ?size=N deterministic bytes (default 1 MiB), streamed with Content-Length; any id
//
// Reporting REST service (camelCase, no token needed [I]):
//
//	GET    /api/reports/version                           200 "19.0.25.211"
//	POST   /api/reports/clients                           200 {clientId}
//	DELETE /api/reports/clients/{clientId}                200 empty
//	POST   /api/reports/clients/{clientId}/instances      201 {instanceId}; 410 for an unknown client
//	POST   /api/reports/clients/{clientId}/instances/{instanceId}/documents  202 {documentId}
//	GET    /api/reports/clients/{clientId}/instances/{instanceId}/documents/{documentId}/info  200 {documentReady, pageCount}
//	GET    /api/reports/clients/{clientId}/instances/{instanceId}/documents/{documentId}       200 text/html
//
// The manager's own routes (manager.go; [I] from public exploit code for
// CVE-2024-4358; bearer token instead of the manager's cookie):
//
//	POST   /Category/Create                               200 {Data: [{Id, Name, CanModify, CanDelete, ReportsCount}], Total: 1, Errors: null}; body a grid row {Name, …}
//	POST   /api/reportserver/report                       200 ReportInfo; body {reportName, categoryName, description, reportContent (base64), extension}
//	POST   /Category/Rename/{categoryId}                  200 {Data: [{Id, Name, …}], Total: 1, Errors: null}; body {Name} [I: no public evidence; a manager-style route outside the built-in rules, for tests of rule suggestions]
//
// Simulator helpers (no token; never failed by FailWith/FailNext nor delayed by SetLatency):
//
//	POST   /_sim/storage/{kind}                           200 {Id}; a change in storage, no API route sees it; body {Name, CategoryId, ReportId}
//	PUT    /_sim/storage/{kind}/{id}                      204; renames in storage (body {Name})
//	DELETE /_sim/storage/{kind}/{id}                      204; deletes in storage (a report's tasks and alerts lose it, as with the API)
//
//	GET    /_sim/large                                    200 ?size=N like documents/{id}/large
//	GET    /_sim/slow                                     200 ?chunks=N&interval=D&size=B, chunked, each chunk flushed
//	GET    /_sim/sse                                      200 ?events=N&interval=D, text/event-stream
//	GET    /_sim/ws                                       101 WebSocket echo (RFC 6455, frames up to 1 MiB)
//	GET    /_sim/echo                                     200 Echo {Method, Path, RawQuery, Host, Header, BodyLength, BodySha256}
//	POST   /_sim/echo                                     (same; the body is hashed as a stream)
//	PUT    /_sim/echo                                     (same)
//	DELETE /_sim/echo                                     (same)
//	PATCH  /_sim/echo                                     (same)
//	OPTIONS /_sim/echo                                    (same; HEAD works on every GET route)
//	                                                      ?status=N (200-599; 204/304 without body) and
//	                                                      repeatable ?header=Name:Value shape the answer
//
// Not served: the manager UI's pages and its other routes, /PersonalToken and /refresh (RS.NET), customlogin,
// and the server's own api/webhooks/registrations (404, as with the feature off).
package simulator
