// Package simulator is a fake Telerik Report Server for tests, benchmarks
// and the demo: POST /Token, the api/reportserver management API in its v1
// (unversioned and /v1), v2 and v3 shapes (users, roles, permissions,
// reports, categories, data connections, scheduled tasks, data alerts,
// executions, documents), the api/reports rendering service, and a few
// /_sim/ streaming routes for proxy tests.
//
// It follows ../shared/reference/report-server-api.md. Behaviour the
// reference only infers is marked [I] in comments, and behaviour it could
// not confirm at all is marked [U].
//
// New returns a *Server, an http.Handler; its exported methods are hooks
// that change state without HTTP (RunTask, RunAlert, FailWith, SetClockSkew,
// SeedTasks, …). Routes lists every route served.
package simulator
