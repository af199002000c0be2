// Package integration holds tund's end-to-end tests: a real TUN device in
// a network namespace each test creates and deletes, tund (or the stack
// library) on one side, and real curl, nc, ping and kernel sockets on the
// other, with bytes checked by size and SHA-256.
//
// The tests need root and /dev/net/tun. Without them they skip with the
// reason, unless TUND_REQUIRE_INTEGRATION=1 (as CI sets), where a skip is
// a failure. No traffic ever leaves the test's namespace.
package integration
