package tcp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// errIdentity reports a peer whose identity (its hello, or its
// certificate) is not the one expected.
var errIdentity = errors.New("tcp: peer identity rejected")

// CertRoles returns the roles a certificate grants: each Subject
// OrganizationalUnit that names a role ("unit", "sequencer", "layout",
// "client"). Other units are ignored.
func CertRoles(cert *x509.Certificate) Role {
	var r Role
	for _, ou := range cert.Subject.OrganizationalUnit {
		for _, n := range roleNames {
			if ou == n.name {
				r |= n.r
			}
		}
	}
	return r
}

// RoleNames returns the names of the roles in r, as CertRoles reads them
// from a certificate's OrganizationalUnit.
func RoleNames(r Role) []string {
	var names []string
	for _, n := range roleNames {
		if r&n.r != 0 {
			names = append(names, n.name)
		}
	}
	return names
}

// checkClientRole checks the certificate a client presented, if any: it
// must grant the client role. crypto/tls has verified its chain.
func checkClientRole(st tls.ConnectionState) error {
	if len(st.PeerCertificates) == 0 {
		return nil // no mutual TLS: ClientCAs is not set
	}
	cert := st.PeerCertificates[0]
	if CertRoles(cert)&RoleClient == 0 {
		return fmt.Errorf("%w: the client's certificate (%s) grants %s, not the client role",
			errIdentity, cert.Subject, CertRoles(cert))
	}
	return nil
}

// checkServerRoles checks that the server's certificate grants every role
// its welcome announced. crypto/tls has verified its chain and that it
// names the node.
func checkServerRoles(st tls.ConnectionState, announced Role) error {
	if len(st.PeerCertificates) == 0 {
		return fmt.Errorf("%w: the server presented no certificate", errIdentity)
	}
	cert := st.PeerCertificates[0]
	if missing := announced &^ CertRoles(cert); missing != 0 {
		return fmt.Errorf("%w: the server announces %s, its certificate (%s) grants %s",
			errIdentity, announced, cert.Subject, CertRoles(cert))
	}
	return nil
}
