// Package browser holds the end-to-end tests of the Webhooks web page in a
// real headless Chromium: the report-server simulator, the daemon, a receiver
// on loopback and the page, driven with chromedp. The tests write
// screenshots of the main states to docs/screenshots.
//
// Run them with
//
//	go test ./e2e/browser/
//
// They need Chromium (Debian: apt-get install chromium); set CHROMIUM to
// its path if it is not /usr/bin/chromium or on PATH. Without Chromium the
// tests are skipped, unless CI=true, where they fail.
package browser
