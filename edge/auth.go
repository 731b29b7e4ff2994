// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/kesbridge/kes/identity"
)

// maxProxyHeader bounds the forwarded certificate header.
const maxProxyHeader = 16 << 10

// authenticate sets c.identity (and, behind a proxy, c.ip) and checks the
// caller's policy. Routes with authIdentify (self-describe, and routes
// with api.<path>.skip_auth) only identify: a missing certificate leaves
// the identity empty.
func (s *Server) authenticate(c *call) error {
	if c.route.Auth == authNone {
		return nil
	}
	id, ip, err := c.st.identify(c.r)
	if ip != nil {
		c.ip, c.ipSet = ip, true
	}
	c.identity = id
	if c.route.Auth == authIdentify {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.st.policies.Authorize(string(id), c.policyPath()); err != nil {
		// Why a request was denied is an operator's question, not the
		// client's, and noisy: DEBUG only.
		s.errLog.Debug("request denied by policy", "req.path", c.r.URL.Path, "req.identity", string(id))
		return err
	}
	return nil
}

// policyPath is the path that policies are matched against: the request
// path, with the trailing slash of a prefix route restored when the
// client left it out ("/v1/key/list" is authorised as "/v1/key/list/").
func (c *call) policyPath() string {
	if p := c.r.URL.Path; !strings.HasSuffix(c.route.Path, "/") || len(p) == len(c.route.Path)+len(c.resource) {
		return p // the path as sent: route.Path + resource
	}
	return c.route.Path + c.resource
}

// identify returns the identity of the client of r. If the TLS peer is a
// configured proxy (identified, like any client, by the first certificate
// it sent), the client is the one whose single certificate the proxy
// forwarded in the proxy header, and its IP is the first X-Forwarded-For
// entry.
func (st *state) identify(r *http.Request) (identity.Identity, net.IP, error) {
	id, err := identity.FromConnectionState(r.TLS)
	if err != nil {
		return identity.Unknown, nil, err
	}
	if _, ok := st.proxies[id]; !ok {
		return id, nil, nil
	}
	values := r.Header.Values(st.cfg.TLS.ProxyHeader)
	if len(values) != 1 {
		return identity.Unknown, nil, newError(http.StatusBadRequest, "tls: the proxy must forward exactly one client certificate")
	}
	if len(values[0]) > maxProxyHeader {
		return identity.Unknown, nil, newError(http.StatusBadRequest, "tls: forwarded client certificate is too large")
	}
	raw, err := url.QueryUnescape(values[0])
	if err != nil {
		return identity.Unknown, nil, newError(http.StatusBadRequest, "tls: invalid forwarded client certificate")
	}
	block, rest := pem.Decode([]byte(raw))
	if block == nil || block.Type != "CERTIFICATE" || len(strings.TrimSpace(string(rest))) != 0 {
		return identity.Unknown, nil, newError(http.StatusBadRequest, "tls: invalid forwarded client certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return identity.Unknown, nil, newError(http.StatusBadRequest, "tls: invalid forwarded client certificate")
	}
	if st.cfg.TLS.VerifyClients {
		opts := x509.VerifyOptions{Roots: st.clientCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if _, err := cert.Verify(opts); err != nil {
			return identity.Unknown, nil, newError(http.StatusBadRequest, "tls: forwarded client certificate is not trusted")
		}
	}
	var ip net.IP
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		first, _, _ := strings.Cut(xff, ",")
		ip = net.ParseIP(strings.TrimSpace(first))
	}
	return identity.FromCertificate(cert), ip, nil
}

func remoteIP(r *http.Request) net.IP {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return nil
	}
	return net.ParseIP(host)
}

func ipString(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}
