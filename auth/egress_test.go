package auth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/orthotriage/orthotriage/auth"
)

func TestEgressPermits(t *testing.T) {
	strict := auth.Egress{}
	allowLocal := auth.Egress{Allowed: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}
	tests := []struct {
		ip     string
		strict bool
		local  bool
	}{
		{"169.254.169.254", false, false}, // cloud metadata
		{"127.0.0.1", false, false},
		{"::1", false, false},
		{"10.0.0.5", false, false},
		{"10.20.3.4", false, true},
		{"192.168.1.1", false, false},
		{"172.16.0.1", false, false},
		{"100.64.0.1", false, false},
		{"0.0.0.0", false, false},
		{"fe80::1", false, false},
		{"fd00::1", false, false},
		{"::ffff:127.0.0.1", false, false},
		{"93.184.216.34", true, true},
		{"2606:4700::1111", true, true},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.ip)
		if got := strict.Permits(ip); got != tt.strict {
			t.Errorf("strict Permits(%s) = %v", tt.ip, got)
		}
		if got := allowLocal.Permits(ip); got != tt.local {
			t.Errorf("with 10.20.0.0/16 allowed, Permits(%s) = %v", tt.ip, got)
		}
	}
}

func TestEgressTransportRefusesBeforeConnecting(t *testing.T) {
	reached := false
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: auth.Egress{}.Transport(nil)}
	for _, u := range []string{srv.URL, "http://169.254.169.254/latest/meta-data/"} {
		_, err := client.Get(u)
		if !errors.Is(err, auth.ErrEgressRefused) {
			t.Errorf("GET %s: %v, want ErrEgressRefused", u, err)
		}
	}
	if reached {
		t.Error("the loopback server was reached")
	}
	allowed := &http.Client{Transport: auth.Egress{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}.Transport(nil)}
	if resp, err := allowed.Get(srv.URL); err != nil {
		t.Fatalf("allowed loopback: %v", err)
	} else {
		resp.Body.Close()
	}
}
