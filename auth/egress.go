package auth

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrEgressRefused means an outbound connection was refused by the egress
// policy.
var ErrEgressRefused = errors.New("address refused by the egress policy")

// Egress decides which addresses the service may connect to when it calls
// URLs named in requests (fhirServer, Endpoint addresses, attachment urls).
// The check runs on the resolved IP at connect time, so a name that
// resolves (or re-resolves) to an internal address is refused too.
type Egress struct {
	AllowPrivate bool           // loopback, private, link-local, CGNAT, unspecified
	Allowed      []netip.Prefix // always allowed, e.g. a hospital's internal FHIR server
}

// cgnat is the shared address space of RFC 6598.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// Permits reports whether ip may be connected to.
func (e Egress) Permits(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range e.Allowed {
		if p.Contains(ip) {
			return true
		}
	}
	if e.AllowPrivate {
		return true
	}
	internal := ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || cgnat.Contains(ip)
	return !internal
}

// control is a net.Dialer Control hook enforcing Permits.
func (e Egress) control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %s is not an IP address", ErrEgressRefused, host)
	}
	if !e.Permits(ip) {
		return fmt.Errorf("%w: %s (set egress.allowed_cidrs to allow it)", ErrEgressRefused, ip)
	}
	return nil
}

// Transport returns an HTTP transport that dials only permitted addresses,
// uses no proxy from the environment, and trusts tlsConfig's roots.
func (e Egress) Transport(tlsConfig *tls.Config) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: e.control}
	return &http.Transport{
		DialContext:           d.DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   5 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}
