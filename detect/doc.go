// Package detect maps proxied report-server calls to events.
//
// A Detector is the proxy's Tap. For every non-safe call that the report
// server answered with 2xx it looks the method and path up in a rule table
// (BuiltinRules, optionally extended by operator rules from LoadRules), pulls
// the resource id and name out of the path, the request body or the response,
// and appends an rswebhooks.Event to the store before the proxy releases the
// response to the client. Rules can also say "ignore": those calls are known
// not to be resource changes (locks, favourites, rendering, tokens, users…).
// A successful non-safe call that no rule matches is logged and counted so
// operators can see what their rules miss.
package detect
