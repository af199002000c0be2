package rawtun

import (
	"strings"
	"testing"
)

// TestOpenRefusesTheHostNamespace: outside every named network namespace
// (a test process's own), Open makes no device and says why.
func TestOpenRefusesTheHostNamespace(t *testing.T) {
	if host, err := inHostNetns(); err != nil || !host {
		t.Skipf("this test runs in a named network namespace already (%v)", err)
	}
	fd, err := Open("rawtuntest0", false)
	if err == nil || fd != -1 || !strings.Contains(err.Error(), "no named network namespace") {
		t.Fatalf("Open in the host's namespace: fd %d, %v", fd, err)
	}
}
