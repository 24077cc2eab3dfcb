// Package tcptest provides what tests and local clusters need to run the
// tcp transport with TLS: a throwaway certificate authority that issues
// node and client certificates carrying the names and roles the transport
// checks (see docs/wire.md).
package tcptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/tcp"
)

// CA is a certificate authority that lives in memory. Its methods are safe
// for concurrent use.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

// NewCA returns a fresh authority, valid for a day.
func NewCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "corfu test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, key: key, pool: pool}, nil
}

var serialLimit = new(big.Int).Lsh(big.NewInt(1), 62)

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, serialLimit)
	if err != nil {
		panic(fmt.Sprintf("tcptest: crypto/rand: %v", err)) // never fails
	}
	return n
}

// Pool returns a pool holding the authority's certificate, for RootCAs and
// ClientCAs.
func (ca *CA) Pool() *x509.CertPool { return ca.pool }

// Issue returns a certificate and key for name (its CommonName and DNS
// name; an IP address also goes in as an IP SAN) granting roles (one
// OrganizationalUnit per role), usable by a server and a client.
func (ca *CA) Issue(name string, roles tcp.Role) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, OrganizationalUnit: tcp.RoleNames(roles)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// ServerTLS returns a server configuration for node: a certificate naming
// it and granting roles, and mutual TLS with client certificates of this
// authority.
func (ca *CA) ServerTLS(node transport.NodeID, roles tcp.Role) (*tls.Config, error) {
	cert, err := ca.Issue(string(node), roles)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.pool, MinVersion: tls.VersionTLS13}, nil
}

// ClientTLS returns a client configuration: servers must present
// certificates of this authority, and the client presents one for name
// granting the client role.
func (ca *CA) ClientTLS(name string) (*tls.Config, error) {
	cert, err := ca.Issue(name, tcp.RoleClient)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.pool, MinVersion: tls.VersionTLS13}, nil
}

// CertPEM returns the authority's certificate in PEM, for a CA bundle file.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// PEM returns cert (one that Issue returned) and its key in PEM, for the
// certificate and key files of a process.
func PEM(cert tls.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), nil
}
