package simulator_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/rswebhooks/rswebhooks/internal/simulator"
)

// A test logs in at /Token, creates a category through the v1 API (which
// answers a bare JSON string id) and runs a seeded task "on schedule".
func Example() {
	sim := simulator.New(simulator.Options{DisableGzip: true})
	srv := httptest.NewServer(sim)
	defer srv.Close()

	res, _ := http.PostForm(srv.URL+"/Token", url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {"admin"}})
	res.Body.Close()
	fmt.Println("POST /Token:", res.StatusCode)

	tok, _ := sim.IssueToken("admin")
	req, _ := http.NewRequest("POST", srv.URL+"/api/reportserver/categories", strings.NewReader(`{"Name":"Finance"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, _ = http.DefaultClient.Do(req)
	res.Body.Close()
	fmt.Println("POST categories:", res.StatusCode)

	tasks, _ := sim.SeedTasks(2, "")
	ex, _ := sim.RunTask(tasks[0])
	fmt.Println("documents of the execution:", len(ex.DocumentIds))
	fmt.Println("POST requests to api/reportserver:", sim.Count("POST", "/api/reportserver/"))
	// Output:
	// POST /Token: 200
	// POST categories: 200
	// documents of the execution: 1
	// POST requests to api/reportserver: 1
}
